#include "qsapi/crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "support/test_support.h"

namespace qsapi::crypto {
namespace {

using testing::Hex;
using testing::ToHex;

TEST(HkdfTest, Rfc5869TestCase1ThroughExtractAndExpand) {
  const Bytes ikm(22, 0x0b);
  const Bytes salt = Hex("000102030405060708090a0b0c");
  const Bytes info = Hex("f0f1f2f3f4f5f6f7f8f9");
  auto prk = HkdfExtract(HashAlgorithm::kSha256, salt, ikm);
  QSAPI_ASSERT_OK(prk);
  EXPECT_EQ(ToHex(prk->view()), "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  auto okm = HkdfExpand(HashAlgorithm::kSha256, *prk, info, 42);
  QSAPI_ASSERT_OK(okm);
  EXPECT_EQ(ToHex(okm->view()), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  // The one-shot Hkdf takes its arguments in the same order as Extract: salt, then IKM.
  auto one_shot = Hkdf(HashAlgorithm::kSha256, salt, ikm, info, 42);
  QSAPI_ASSERT_OK(one_shot);
  EXPECT_EQ(ToHex(one_shot->view()), ToHex(okm->view()));
}

TEST(HkdfTest, LengthBounds) {
  const auto prk = PseudorandomKey::CopyFrom(Bytes(32, 1));
  EXPECT_TRUE(HkdfExpand(HashAlgorithm::kSha256, prk, {}, 255 * 32).ok());
  EXPECT_EQ(HkdfExpand(HashAlgorithm::kSha256, prk, {}, 255 * 32 + 1).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HkdfExpand(HashAlgorithm::kSha256, prk, {}, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HkdfExpand(HashAlgorithm::kSha256, PseudorandomKey::CopyFrom(Bytes(31, 1)), {}, 32).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(HkdfExtract(HashAlgorithm::kSha3_256, {}, prk.view()).error().code(), ErrorCode::kInvalidArgument);
}

// HkdfExpandLabel with the "tls13 " prefix must equal OpenSSL's own TLS 1.3 KDF (an independent
// implementation of RFC 8446 7.1 inside OpenSSL's TLS code path).
Bytes OpenSslTls13ExpandLabel(const char* digest, ByteView secret, const std::string& label, ByteView context,
                              std::size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "TLS13-KDF", nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  std::string prefix = "tls13 ";
  std::string label_copy = label;
  static std::uint8_t empty = 0;  // OpenSSL refuses a null pointer even with length 0
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),  // NOLINT
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret.data()),  // NOLINT
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, prefix.data(), prefix.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, label_copy.data(), label_copy.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA,
                                        context.empty() ? &empty : const_cast<std::uint8_t*>(context.data()),  // NOLINT
                                        context.size()),
      OSSL_PARAM_construct_end(),
  };
  Bytes out(length);
  const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  EXPECT_EQ(ok, 1);
  return out;
}

TEST(HkdfExpandLabelTest, MatchesOpenSslTls13Kdf) {
  const Bytes secret = Hex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a");
  const Bytes context = Hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  for (const char* label : {"derived", "key", "iv", "c hs traffic"}) {
    for (std::size_t len : {12, 16, 32}) {
      auto ours =
          HkdfExpandLabel(HashAlgorithm::kSha256, PseudorandomKey::CopyFrom(secret), label, context, len, "tls13 ");
      QSAPI_ASSERT_OK(ours);
      EXPECT_EQ(ToHex(ours->view()), ToHex(OpenSslTls13ExpandLabel("SHA2-256", secret, label, context, len)))
          << label << " " << len;
    }
  }
  auto sha384 =
      HkdfExpandLabel(HashAlgorithm::kSha384, PseudorandomKey::CopyFrom(Bytes(48, 7)), "finished", {}, 48, "tls13 ");
  QSAPI_ASSERT_OK(sha384);
  EXPECT_EQ(ToHex(sha384->view()), ToHex(OpenSslTls13ExpandLabel("SHA2-384", Bytes(48, 7), "finished", {}, 48)));
}

TEST(HkdfExpandLabelTest, QsapiPrefixSeparatesFromTls) {
  const auto secret = PseudorandomKey::CopyFrom(Bytes(32, 9));
  auto tls = HkdfExpandLabel(HashAlgorithm::kSha256, secret, "key", {}, 32, "tls13 ");
  auto ours = HkdfExpandLabel(HashAlgorithm::kSha256, secret, "key", {}, 32);
  QSAPI_ASSERT_OK(tls);
  QSAPI_ASSERT_OK(ours);
  EXPECT_NE(ToHex(tls->view()), ToHex(ours->view()));
  EXPECT_EQ(HkdfExpandLabel(HashAlgorithm::kSha256, secret, std::string(250, 'l'), {}, 32).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(HkdfExpandLabel(HashAlgorithm::kSha256, secret, "key", Bytes(256, 0), 32).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST(HmacTest, Rfc4231TestCase2AndConstantTimeVerify) {
  const Bytes key = {'J', 'e', 'f', 'e'};
  const std::string data = "what do ya want for nothing?";
  const ByteView msg(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());  // NOLINT
  auto mac = Hmac(HashAlgorithm::kSha256, key, msg);
  QSAPI_ASSERT_OK(mac);
  EXPECT_EQ(ToHex(*mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  QSAPI_EXPECT_OK(HmacVerify(HashAlgorithm::kSha256, key, msg, *mac));
  Bytes bad = *mac;
  bad[31] ^= 1;
  EXPECT_EQ(HmacVerify(HashAlgorithm::kSha256, key, msg, bad).error(), AuthenticationFailed());
  EXPECT_EQ(HmacVerify(HashAlgorithm::kSha256, key, msg, ByteView(*mac).first(16)).error(), AuthenticationFailed());
}

TEST(HashTest, KnownAnswers) {
  const Bytes abc = {'a', 'b', 'c'};
  EXPECT_EQ(ToHex(*Hash(HashAlgorithm::kSha256, abc)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ToHex(*Hash(HashAlgorithm::kSha3_256, abc)),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
}

}  // namespace
}  // namespace qsapi::crypto
