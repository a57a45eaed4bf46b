// Tests of qsapi::pki: key generation and PEM, CA and certificate issuance (checked with OpenSSL's
// own chain verification), private-key files (mode 0600, atomic, no overwrite by default), and the
// TLS helpers that do not need a connection.
#include "qsapi/pki/pki.h"

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "net/test_tls.h"
#include "pki/internal/tls_context.h"
#include "support/test_support.h"

namespace qsapi::pki {
namespace {

using qsapi::testing::TempDir;

class PkiAlgorithmTest : public ::testing::TestWithParam<KeyAlgorithm> {};

TEST_P(PkiAlgorithmTest, KeyPemRoundTrip) {
  auto key = PrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(key);
  EXPECT_EQ(key->algorithm(), GetParam());
  auto pem = key->ToPem();
  QSAPI_ASSERT_OK(pem);
  const std::string text(pem->view().begin(), pem->view().end());
  EXPECT_TRUE(text.starts_with("-----BEGIN PRIVATE KEY-----")) << "PKCS#8 expected";
  auto again = PrivateKey::FromPem(pem->view());
  QSAPI_ASSERT_OK(again);
  EXPECT_EQ(again->algorithm(), GetParam());
  EXPECT_EQ(EVP_PKEY_eq(key->native_handle(), again->native_handle()), 1);
}

TEST_P(PkiAlgorithmTest, CaIssuesCertificatesThatVerify) {
  auto ca_key = PrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(ca_key);
  auto ca = CreateSelfSignedCa(*ca_key, "Test CA", std::chrono::hours(48));
  QSAPI_ASSERT_OK(ca);
  EXPECT_EQ(*ca->CommonName(), "Test CA");
  EXPECT_EQ(X509_check_ca(ca->native_handle()), 1);

  auto leaf_key = PrivateKey::Generate(GetParam());
  QSAPI_ASSERT_OK(leaf_key);
  CertificateProfile p;
  p.common_name = "SAE-A";
  p.dns_names = {"localhost", "kme.example"};
  p.ip_addresses = {"127.0.0.1", "::1"};
  p.server_auth = true;
  p.client_auth = true;
  p.validity = std::chrono::hours(24);
  auto leaf = IssueCertificate(*ca, *ca_key, *leaf_key, p);
  QSAPI_ASSERT_OK(leaf);
  EXPECT_EQ(*leaf->CommonName(), "SAE-A");
  const auto left = leaf->NotAfter() - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::hours(23));
  EXPECT_LT(left, std::chrono::hours(25));
  EXPECT_EQ(X509_check_host(leaf->native_handle(), "kme.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf->native_handle(), "::1", 0), 1);
  EXPECT_NE(X509_check_host(leaf->native_handle(), "other.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_purpose(leaf->native_handle(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_purpose(leaf->native_handle(), X509_PURPOSE_SSL_CLIENT, 0), 1);

  // OpenSSL's own path validation accepts the chain, and rejects it under another CA.
  auto verify = [&](const Certificate& anchor) {
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
    X509_STORE_add_cert(store.get(), anchor.native_handle());
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
    X509_STORE_CTX_init(ctx.get(), store.get(), leaf->native_handle(), nullptr);
    return X509_verify_cert(ctx.get()) == 1;
  };
  EXPECT_TRUE(verify(*ca));
  auto other_key = PrivateKey::Generate(GetParam());
  auto other_ca = CreateSelfSignedCa(*other_key, "Test CA");
  EXPECT_FALSE(verify(*other_ca));

  // PEM round trip of the certificate.
  auto pem = leaf->ToPem();
  QSAPI_ASSERT_OK(pem);
  auto again = Certificate::FromPem(*pem);
  QSAPI_ASSERT_OK(again);
  EXPECT_EQ(X509_cmp(again->native_handle(), leaf->native_handle()), 0);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PkiAlgorithmTest,
                         ::testing::Values(KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kMlDsa44, KeyAlgorithm::kMlDsa65,
                                           KeyAlgorithm::kMlDsa87),
                         [](const auto& param_info) {
                           std::string name(KeyAlgorithmName(param_info.param));
                           std::erase(name, '-');
                           return name;
                         });

TEST(Pki, AlgorithmNames) {
  EXPECT_EQ(*ParseKeyAlgorithm("mldsa65"), KeyAlgorithm::kMlDsa65);
  EXPECT_EQ(*ParseKeyAlgorithm("ecdsa-p256"), KeyAlgorithm::kEcdsaP256);
  auto bad = ParseKeyAlgorithm("rsa");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("mldsa65"), std::string::npos);
}

TEST(Pki, IssueRejectsInjectionAndBadProfiles) {
  auto key = PrivateKey::Generate(KeyAlgorithm::kEcdsaP256);
  auto ca = CreateSelfSignedCa(*key, "CA");
  CertificateProfile p;
  p.common_name = "x";
  p.server_auth = true;
  p.dns_names = {"a.example,IP:1.2.3.4"};
  EXPECT_EQ(IssueCertificate(*ca, *key, *key, p).error().code(), ErrorCode::kInvalidArgument);
  p.dns_names = {};
  p.ip_addresses = {"300.1.1.1"};
  EXPECT_EQ(IssueCertificate(*ca, *key, *key, p).error().code(), ErrorCode::kInvalidArgument);
  p.ip_addresses = {};
  p.server_auth = false;
  EXPECT_EQ(IssueCertificate(*ca, *key, *key, p).error().code(), ErrorCode::kInvalidArgument);
  p.server_auth = true;
  p.common_name = "";
  EXPECT_EQ(IssueCertificate(*ca, *key, *key, p).error().code(), ErrorCode::kInvalidArgument);
  // A name with a control character would forge lines where it is shown (logs, audit, policies).
  for (const std::string& cn : {std::string("site-b\nINFO qsapid: forged"), std::string("a\tb"),
                                std::string("\x1b[2Jx"), std::string("x\x7f"), std::string("nul\0here", 8)}) {
    p.common_name = cn;
    auto r = IssueCertificate(*ca, *key, *key, p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("control characters"), std::string::npos) << r.error().message();
  }
  p.common_name = "site-b.example Ünïcode";
  EXPECT_TRUE(IssueCertificate(*ca, *key, *key, p).ok()) << "printable UTF-8 is fine";
}

TEST(Pki, PrivateKeyFilesAreOwnerOnlyAndNotOverwritten) {
  TempDir dir;
  auto key = PrivateKey::Generate(KeyAlgorithm::kMlDsa65);
  QSAPI_ASSERT_OK(key);
  const auto path = dir.path() / "key.pem";
  QSAPI_ASSERT_OK(WritePrivateKeyPem(path, *key));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);

  auto again = WritePrivateKeyPem(path, *key);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  QSAPI_EXPECT_OK(WritePrivateKeyPem(path, *key, /*overwrite=*/true));
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  auto read = ReadPrivateKeyPem(path);
  QSAPI_ASSERT_OK(read);
  EXPECT_EQ(EVP_PKEY_eq(key->native_handle(), read->native_handle()), 1);

  // A key file others may read is refused, with the fix in the message.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto loose = ReadPrivateKeyPem(path);
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(loose.error().message().find("chmod 600"), std::string::npos);
}

TEST(Pki, MalformedPemIsRejectedWithoutQuotingIt) {
  const std::string junk = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n";
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  auto key = PrivateKey::FromPem(ByteView(reinterpret_cast<const std::uint8_t*>(junk.data()), junk.size()));
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().message().find("c2VjcmV0"), std::string::npos);
  EXPECT_FALSE(Certificate::FromPem("not a certificate").ok());
  EXPECT_EQ(ReadCertificatePem("/nonexistent/cert.pem").error().code(), ErrorCode::kNotFound);
}

TEST(Tls, ContextConfiguration) {
  TempDir dir;
  const auto t = qsapi::testing::MakeTestPki(dir);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  TlsOptions o;
  o.certificate_file = t.server_cert;
  o.private_key_file = t.server_key;
  o.ca_file = t.ca;
  QSAPI_EXPECT_OK(ConfigureServerContext(ctx.get(), o));
  o.groups = "NoSuchGroup";
  EXPECT_EQ(ConfigureServerContext(ctx.get(), o).error().code(), ErrorCode::kInvalidArgument);
  o.groups = std::string(kKmeClientGroups);
  o.private_key_file = t.client_key;  // does not match the certificate
  auto mismatch = ConfigureServerContext(ctx.get(), o);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().message().find("does not match"), std::string::npos);
  o.private_key_file = t.server_key;
  o.min_version = TlsVersion::kTls13;
  o.max_version = TlsVersion::kTls12;
  EXPECT_FALSE(ConfigureClientContext(ctx.get(), o).ok());

  // The key may be held in memory instead of a file (qsapid's keystore-wrapped server key).
  auto pem = ReadPrivateKeyPem(t.server_key);
  ASSERT_TRUE(pem.ok()) << pem.error().ToString();
  TlsOptions in_memory;
  in_memory.certificate_file = t.server_cert;
  in_memory.verify_peer = PeerVerification::kNone;
  in_memory.private_key = std::make_shared<const PrivateKey>(std::move(*pem));
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx2(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  QSAPI_EXPECT_OK(ConfigureServerContext(ctx2.get(), in_memory));
  in_memory.private_key_file = t.server_key;  // both: ambiguous
  EXPECT_EQ(ConfigureServerContext(ctx2.get(), in_memory).error().code(), ErrorCode::kInvalidArgument);
  auto other = ReadPrivateKeyPem(t.client_key);
  ASSERT_TRUE(other.ok());
  in_memory.private_key_file.clear();
  in_memory.private_key = std::make_shared<const PrivateKey>(std::move(*other));
  auto wrong = ConfigureServerContext(ctx2.get(), in_memory);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("held in memory does not match"), std::string::npos);

  EXPECT_TRUE(IsPqHybridGroup("X25519MLKEM768"));
  EXPECT_TRUE(IsPqHybridGroup("secp384r1mlkem1024"));
  EXPECT_FALSE(IsPqHybridGroup("x25519"));
  EXPECT_FALSE(IsPqHybridGroup(""));
}

}  // namespace
}  // namespace qsapi::pki
