// The keystore against the real SoftHSM2 and SQLite: lifecycle, operations, rotation (manual,
// usage-based, time-based), versions, bad input (each changing nothing), and no plaintext key
// material on disk.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sqlite3.h>
#include <thread>

#include <gmock/gmock.h>

#include "keystore/internal/usage_ledger.h"
#include "keystore_support.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/random.h"
#include "qsapi/log.h"

namespace qsapi::keystore {
namespace {

using ::testing::HasSubstr;

KeyType Type(std::string_view name) { return ParseKeyType(name).value(); }

class KeystoreTest : public KeystoreFixture {};

TEST_F(KeystoreTest, EmbeddedInitIsIdempotentAndKeepsPinsPrivate) {
  auto again = InitEmbedded(dir_);
  QSAPI_ASSERT_OK(again);
  EXPECT_FALSE(*again);
  const EmbeddedLayout layout{dir_};
  for (const auto& f : {layout.so_pin_file(), layout.user_pin_file(), layout.database(), layout.softhsm_conf()}) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600U) << f;
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  EXPECT_THAT(ks_->token_description(), HasSubstr("token \"qsapi\""));
  QSAPI_EXPECT_OK(ks_->Probe());
}

// SoftHSM2's file backend truncates token.object while it rewrites it at login; a process killed
// there would lose the token. The embedded default restores it from the copy made at init.
TEST_F(KeystoreTest, ATruncatedSoftHsmTokenFileIsRestored) {
  QSAPI_ASSERT_OK(ks_->Create("survivor", Type("AES-256-GCM")));
  auto ct = ks_->Encrypt("survivor", AsBytes("kept"));
  QSAPI_ASSERT_OK(ct);
  ks_.reset();
  int truncated = 0;
  for (const auto& d : std::filesystem::directory_iterator(EmbeddedLayout{dir_}.token_dir())) {
    std::filesystem::resize_file(d.path() / "token.object", 0);
    ++truncated;
  }
  ASSERT_EQ(truncated, 1);
  std::vector<std::string> lines;
  SetLogSink([&lines](LogLevel, std::string_view, std::string_view m) { lines.emplace_back(m); });
  Reopen();
  SetLogSink(nullptr);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_THAT(lines[0], HasSubstr("restored"));
  QSAPI_EXPECT_OK(ks_->Decrypt("survivor", *ct));
}

TEST_F(KeystoreTest, EncryptDecryptWithAssociatedDataAndTextForm) {
  for (const char* type : {"AES-256-GCM", "XChaCha20-Poly1305"}) {
    const std::string name = std::string("data-") + (type[0] == 'A' ? "gcm" : "xchacha");
    QSAPI_ASSERT_OK(ks_->Create(name, Type(type)));
    auto ct = ks_->Encrypt(name, AsBytes("attack at dawn"), AsBytes("order-17"));
    QSAPI_ASSERT_OK(ct);
    auto header = ParseHeader(*ct);
    QSAPI_ASSERT_OK(header);
    EXPECT_EQ(header->version, 1U);
    EXPECT_EQ(header->key_id, ks_->Get(name)->id);
    auto pt = ks_->Decrypt(name, *ct, AsBytes("order-17"));
    QSAPI_ASSERT_OK(pt);
    EXPECT_EQ(std::string(pt->begin(), pt->end()), "attack at dawn");
    // Wrong associated data, a flipped bit anywhere, or the wrong key name: no plaintext.
    EXPECT_EQ(ks_->Decrypt(name, *ct, AsBytes("order-18")).error(), AuthenticationFailed());
    for (std::size_t i = kHeaderSize; i < ct->size(); i += 7) {
      Bytes bad = *ct;
      bad[i] ^= 1;
      EXPECT_EQ(ks_->Decrypt(name, bad, AsBytes("order-17")).error(), AuthenticationFailed()) << i;
    }
    const std::string text = ToText(*ct);
    EXPECT_TRUE(text.starts_with("qsapi:v1:")) << text;
    auto back = FromText(text);
    QSAPI_ASSERT_OK(back);
    EXPECT_EQ(*back, *ct);
  }
  auto ct = ks_->Encrypt("data-gcm", AsBytes("x"));
  QSAPI_ASSERT_OK(ct);
  auto other = ks_->Decrypt("data-xchacha", *ct);
  ASSERT_FALSE(other.ok());
  // It says another key made the input, never which (the caller may not be allowed to know it).
  EXPECT_THAT(other.error().message(), HasSubstr("made with another key, not with \"data-xchacha\""));
  EXPECT_THAT(other.error().message(), ::testing::Not(HasSubstr("data-gcm")));
  EXPECT_FALSE(FromText("qsapi:v2:" + ToText(*ct).substr(9)).ok()) << "version prefix must match the header";
  EXPECT_FALSE(FromText("qsapi:v1:!!!").ok());
  EXPECT_FALSE(FromText("vault:v1:abc").ok());
}

TEST_F(KeystoreTest, SignVerifyAndKemForEveryAsymmetricFamily) {
  int sig_index = 0;
  for (const char* type : {"ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "SLH-DSA-SHA2-128f", "MLDSA65-Ed25519-SHA512"}) {
    const std::string name = "sig-" + std::to_string(sig_index++);
    QSAPI_ASSERT_OK(ks_->Create(name, Type(type)));
    auto sig = ks_->Sign(name, AsBytes("release 1.0"));
    QSAPI_ASSERT_OK(sig);
    QSAPI_EXPECT_OK(ks_->VerifySignature(name, AsBytes("release 1.0"), *sig));
    QSAPI_EXPECT_OK(ks_->VerifySignature("", AsBytes("release 1.0"), *sig));  // the key is found by the header
    EXPECT_EQ(ks_->VerifySignature(name, AsBytes("release 1.1"), *sig).error(), AuthenticationFailed()) << type;
    // The signature covers the header: the same bytes under another version do not verify.
    QSAPI_ASSERT_OK(ks_->Rotate(name));
    Bytes moved = *sig;
    moved[20] = 2;
    EXPECT_EQ(ks_->VerifySignature(name, AsBytes("release 1.0"), moved).error(), AuthenticationFailed()) << type;
    EXPECT_TRUE(ks_->VerifySignature(name, AsBytes("release 1.0"), *sig).ok()) << "old versions keep verifying";
    EXPECT_FALSE(ks_->Encrypt(name, AsBytes("x")).ok());
  }
  int kem_index = 0;
  for (const char* type : {"ML-KEM-512", "ML-KEM-768", "ML-KEM-1024", "X-Wing", "MLKEM1024-P384"}) {
    const std::string name = "kem-" + std::to_string(kem_index++);
    QSAPI_ASSERT_OK(ks_->Create(name, Type(type)));
    auto pub = ks_->KemPublicKey(name);
    QSAPI_ASSERT_OK(pub);
    auto enc = pub->Encapsulate();
    QSAPI_ASSERT_OK(enc);
    auto ss = ks_->Decapsulate(name, 0, enc->ciphertext.view());
    QSAPI_ASSERT_OK(ss);
    EXPECT_TRUE(ConstantTimeEqual(ss->view(), enc->shared_secret.view())) << type;
    QSAPI_ASSERT_OK(ks_->Rotate(name));
    auto old_ss = ks_->Decapsulate(name, 1, enc->ciphertext.view());
    QSAPI_ASSERT_OK(old_ss);
    EXPECT_TRUE(ConstantTimeEqual(old_ss->view(), enc->shared_secret.view()));
    EXPECT_NE(*ks_->PublicKey(name, 1), *ks_->PublicKey(name, 2));
  }
}

TEST_F(KeystoreTest, RotationKeepsOldCiphertextsAndHonoursMinimumDecryptionVersion) {
  QSAPI_ASSERT_OK(ks_->Create("orders", Type("AES-256-GCM"), KeyPolicy{.deletion_allowed = true}));
  auto v1 = ks_->Encrypt("orders", AsBytes("one"));
  QSAPI_ASSERT_OK(ks_->Rotate("orders"));
  auto v2 = ks_->Encrypt("orders", AsBytes("two"));
  EXPECT_EQ(ParseHeader(*v2)->version, 2U);
  QSAPI_EXPECT_OK(ks_->Decrypt("orders", *v1));
  auto info = ks_->Get("orders");
  EXPECT_EQ(info->versions[0].state, VersionState::kDecryptOnly);
  EXPECT_EQ(info->versions[1].state, VersionState::kActive);

  KeyPolicy p = info->policy;
  p.min_decryption_version = 2;
  QSAPI_ASSERT_OK(ks_->UpdatePolicy("orders", p));
  auto refused = ks_->Decrypt("orders", *v1);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("below the key's minimum decryption version 2"));
  p.min_decryption_version = 3;
  EXPECT_FALSE(ks_->UpdatePolicy("orders", p).ok()) << "beyond the current version";
  p.min_decryption_version = 1;
  QSAPI_ASSERT_OK(ks_->UpdatePolicy("orders", p));

  // Disable (reversible) and destroy (not), never the current version.
  EXPECT_FALSE(ks_->DisableVersion("orders", 2).ok());
  QSAPI_ASSERT_OK(ks_->DisableVersion("orders", 1));
  EXPECT_THAT(ks_->Decrypt("orders", *v1).error().message(), HasSubstr("version 1 is disabled"));
  QSAPI_ASSERT_OK(ks_->EnableVersion("orders", 1));
  QSAPI_EXPECT_OK(ks_->Decrypt("orders", *v1));
  QSAPI_ASSERT_OK(ks_->DestroyVersion("orders", 1));
  EXPECT_THAT(ks_->Decrypt("orders", *v1).error().message(), HasSubstr("version 1 is destroyed"));
  EXPECT_FALSE(ks_->EnableVersion("orders", 1).ok());
  QSAPI_EXPECT_OK(ks_->Decrypt("orders", *v2));
  auto report = ks_->CheckIntegrity();
  QSAPI_ASSERT_OK(report);
  EXPECT_TRUE(report->problems.empty()) << report->problems.front();
  QSAPI_ASSERT_OK(ks_->Destroy("orders"));
  EXPECT_EQ(ks_->Decrypt("", *v2).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ks_->Get("orders").error().code(), ErrorCode::kNotFound);
}

// A lease is 1024 operations, or a sixteenth of a smaller limit (at least one), so that the
// nodes of a cluster share a small version instead of one of them leasing it whole.
TEST(LeaseBlockTest, ASmallLimitIsSharedInSixteenths) {
  using internal::LeaseBlockFor;
  EXPECT_EQ(LeaseBlockFor(1), 1U);
  EXPECT_EQ(LeaseBlockFor(15), 1U);
  EXPECT_EQ(LeaseBlockFor(200), 12U);
  EXPECT_EQ(LeaseBlockFor(5000), 312U);
  EXPECT_EQ(LeaseBlockFor(16383), 1023U);
  EXPECT_EQ(LeaseBlockFor(16384), internal::kLeaseBlock);
  EXPECT_EQ(LeaseBlockFor(std::uint64_t{1} << 31), internal::kLeaseBlock);
}

TEST_F(KeystoreTest, UsageBasedRotationNeverExceedsTheLimitAndSurvivesRestart) {
  QSAPI_ASSERT_OK(ks_->Create("small", Type("AES-256-GCM"), KeyPolicy{.max_operations_per_version = 3}));
  std::vector<std::uint32_t> versions;
  std::vector<Bytes> cts;
  for (int i = 0; i < 7; ++i) {
    auto ct = ks_->Encrypt("small", AsBytes("m"));
    QSAPI_ASSERT_OK(ct);
    versions.push_back(ParseHeader(*ct)->version);
    cts.push_back(*ct);
  }
  EXPECT_EQ(versions, (std::vector<std::uint32_t>{1, 1, 1, 2, 2, 2, 3}));
  for (const Bytes& ct : cts) QSAPI_EXPECT_OK(ks_->Decrypt("small", ct));
  // A restart counts every leased operation as used. Under a limit of 3 each lease is one
  // operation (LeaseBlockFor: a sixteenth of the limit, at least 1), so nothing leased was unused:
  // version 3 goes on. Under a limit of 32 a lease is 2 operations: one used, one lost.
  QSAPI_ASSERT_OK(ks_->Create("mid", Type("AES-256-GCM"), KeyPolicy{.max_operations_per_version = 32}));
  QSAPI_ASSERT_OK(ks_->Encrypt("mid", AsBytes("m")));
  Reopen();
  auto ct = ks_->Encrypt("small", AsBytes("m"));
  QSAPI_ASSERT_OK(ct);
  EXPECT_EQ(ParseHeader(*ct)->version, 3U);
  int mid_v1 = 1;
  for (int i = 0; i < 31; ++i) {
    auto m = ks_->Encrypt("mid", AsBytes("m"));
    QSAPI_ASSERT_OK(m);
    if (ParseHeader(*m)->version == 1) ++mid_v1;
  }
  EXPECT_EQ(mid_v1, 31) << "the unused half of the block leased before the restart is lost, never reused";
  auto audit = ks_->Audit(100);
  QSAPI_ASSERT_OK(audit);
  int policy_rotations = 0;
  for (const auto& e : *audit) {
    if (e.action == "rotate" && e.actor == "policy") {
      ++policy_rotations;
      EXPECT_THAT(e.detail, HasSubstr(e.key_name == "small" ? "reached its limit of 3 operations"
                                                            : "reached its limit of 32 operations"));
    }
  }
  EXPECT_EQ(policy_rotations, 3);  // small: 1 to 2, 2 to 3; mid: 1 to 2
  EXPECT_FALSE(ks_->Create("big", Type("AES-256-GCM"), KeyPolicy{.max_operations_per_version = (1ULL << 32) + 1}).ok())
      << "AES-GCM with random nonces may not exceed 2^32 invocations";
  EXPECT_FALSE(ks_->Create("sig", Type("ML-DSA-65"), KeyPolicy{.max_operations_per_version = 5}).ok());
}

TEST_F(KeystoreTest, ConcurrentEncryptionsRespectTheLimit) {
  constexpr std::uint64_t kLimit = 50;
  QSAPI_ASSERT_OK(ks_->Create("busy", Type("AES-256-GCM"), KeyPolicy{.max_operations_per_version = kLimit}));
  std::mutex mu;
  std::map<std::uint32_t, int> per_version;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 60; ++i) {
        auto ct = ks_->Encrypt("busy", AsBytes("m"));
        ASSERT_TRUE(ct.ok()) << ct.error().ToString();
        const std::lock_guard<std::mutex> lock(mu);
        ++per_version[ParseHeader(*ct)->version];
      }
    });
  }
  for (auto& t : threads) t.join();
  int total = 0;
  for (const auto& [v, n] : per_version) {
    EXPECT_LE(static_cast<std::uint64_t>(n), kLimit) << "version " << v;
    total += n;
  }
  EXPECT_EQ(total, 240);
  EXPECT_GE(per_version.size(), 5U);
}

TEST_F(KeystoreTest, TimeBasedRotation) {
  QSAPI_ASSERT_OK(
      ks_->Create("hourly", Type("XChaCha20-Poly1305"), KeyPolicy{.auto_rotate_period = std::chrono::seconds(1)}));
  QSAPI_ASSERT_OK(ks_->Create("still", Type("XChaCha20-Poly1305")));
  auto due = ks_->RotateDue();
  QSAPI_ASSERT_OK(due);
  EXPECT_TRUE(due->empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // timestamps have one-second resolution
  due = ks_->RotateDue();
  QSAPI_ASSERT_OK(due);
  EXPECT_EQ(*due, std::vector<std::string>{"hourly"});
  EXPECT_EQ(ks_->Get("hourly")->current_version, 2U);
  EXPECT_EQ(ks_->Get("still")->current_version, 1U);
}

TEST_F(KeystoreTest, CacheServesWarmUsesAndFlushWipes) {
  QSAPI_ASSERT_OK(ks_->Create("hot", Type("AES-256-GCM")));
  QSAPI_ASSERT_OK(ks_->Encrypt("hot", AsBytes("a")));
  QSAPI_ASSERT_OK(ks_->Encrypt("hot", AsBytes("b")));
  auto s = ks_->cache_stats();
  EXPECT_EQ(s.misses, 1U);
  EXPECT_EQ(s.hits, 1U);
  EXPECT_EQ(s.entries, 1U);
  ks_->FlushCache();
  EXPECT_EQ(ks_->cache_stats().entries, 0U);
  QSAPI_ASSERT_OK(ks_->Encrypt("hot", AsBytes("c")));
  EXPECT_EQ(ks_->cache_stats().misses, 2U);
  // A zero TTL keeps nothing.
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.cache_ttl = std::chrono::seconds(0);
  Reopen(o);
  QSAPI_ASSERT_OK(ks_->Encrypt("hot", AsBytes("d")));
  EXPECT_EQ(ks_->cache_stats().entries, 0U);
}

TEST_F(KeystoreTest, NamesAndTypesAreValidated) {
  for (const char* bad : {"", "Upper", "-lead", "sp ace", "slash/x", "x\n"}) {
    EXPECT_EQ(ks_->Create(bad, Type("AES-256-GCM")).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ks_->Create(std::string(65, 'a'), Type("AES-256-GCM")).error().code(), ErrorCode::kInvalidArgument);
  auto t = ParseKeyType("rsa-2048");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.error().message(), HasSubstr("valid types: AES-256-GCM"));
  QSAPI_ASSERT_OK(ks_->Create("dup", Type("AES-256-GCM")));
  EXPECT_EQ(ks_->Create("dup", Type("ML-DSA-65")).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(ks_->Get("dup")->type, Type("AES-256-GCM"));
}

// A KeyType holds one algorithm of one kind: the accessors of the other kinds have nothing, and
// every name ParseKeyType lists parses back, in any case, to a type of that name.
TEST(KeystoreKeyTypeTest, HoldsOneAlgorithmOfOneKindAndRoundTripsItsName) {
  const KeyType gcm;
  EXPECT_EQ(KeyTypeName(gcm), "AES-256-GCM");
  EXPECT_EQ(gcm.purpose(), KeyPurpose::kEncrypt);
  EXPECT_TRUE(gcm.is_aead());
  EXPECT_EQ(gcm.aead(), crypto::AeadAlgorithm::kAes256Gcm);
  EXPECT_FALSE(gcm.kem().has_value());
  EXPECT_FALSE(gcm.signature().has_value());
  const KeyType xwing(crypto::KemAlgorithm::kXWing);
  EXPECT_EQ(xwing.purpose(), KeyPurpose::kKem);
  EXPECT_TRUE(xwing.is_kem());
  EXPECT_EQ(xwing.kem(), crypto::KemAlgorithm::kXWing);
  EXPECT_FALSE(xwing.aead().has_value());
  const KeyType mldsa(crypto::SignatureAlgorithm::kMlDsa65);
  EXPECT_EQ(mldsa.purpose(), KeyPurpose::kSign);
  EXPECT_TRUE(mldsa.is_signature());
  EXPECT_EQ(mldsa.signature(), crypto::SignatureAlgorithm::kMlDsa65);
  EXPECT_FALSE(mldsa.kem().has_value());
  EXPECT_NE(xwing, KeyType(crypto::KemAlgorithm::kMlKem768));
  EXPECT_EQ(Type("x-wing"), xwing);
  EXPECT_EQ(Type("ML-DSA-65"), mldsa);

  const std::string message = ParseKeyType("").error().message();
  const std::string list = message.substr(message.find("valid types: ") + 13);
  std::size_t names = 0;
  for (std::size_t at = 0; at <= list.size();) {
    const std::size_t comma = std::min(list.find(", ", at), list.size());
    const std::string name = list.substr(at, comma - at);
    auto parsed = ParseKeyType(name);
    QSAPI_ASSERT_OK(parsed);
    EXPECT_EQ(KeyTypeName(*parsed), name);
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(ParseKeyType(lower).value(), *parsed) << lower;
    ++names;
    at = comma + 2;
  }
  EXPECT_EQ(names, 2U + 5U + 16U);  // 2 AEADs (ChaCha20-Poly1305 is HPKE's only), 5 KEMs, 16 signatures
}

// Bad input changes nothing: the audit trail and the key list are the same afterwards.
class KeystoreBadInputTest : public KeystoreFixture {
 protected:
  std::size_t AuditSize() { return ks_->Audit(1000)->size(); }
};

TEST_F(KeystoreBadInputTest, WrongPinIsRefusedClearly) {
  const auto wrong = dir_ / "wrong.pin";
  std::ofstream(wrong) << "not-the-pin\n";
  std::filesystem::permissions(wrong, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.token.pin_file = wrong.string();
  ks_.reset();
  auto ks = Keystore::Open(o);
  ASSERT_FALSE(ks.ok());
  EXPECT_EQ(ks.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(ks.error().message(), HasSubstr("user PIN is wrong"));
  EXPECT_THAT(ks.error().message(), ::testing::Not(HasSubstr("not-the-pin")));
  Reopen();  // the right PIN still works
}

TEST_F(KeystoreBadInputTest, LoosePinFilePermissionsAreRefused) {
  const auto loose = dir_ / "loose.pin";
  std::filesystem::copy_file(EmbeddedLayout{dir_}.user_pin_file(), loose);
  std::filesystem::permissions(loose, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.token.pin_file = loose.string();
  auto ks = Keystore::Open(o);
  ASSERT_FALSE(ks.ok());
  EXPECT_THAT(ks.error().message(), HasSubstr("chmod 600"));
}

TEST_F(KeystoreBadInputTest, MissingModuleAndMissingTokenAreNamed) {
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.token.module_path = "/nonexistent/libpkcs11.so";
  auto ks = Keystore::Open(o);
  ASSERT_FALSE(ks.ok());
  EXPECT_THAT(ks.error().message(), HasSubstr("/nonexistent/libpkcs11.so does not exist"));
  o = EmbeddedOptions(dir_);
  o.token.module_path = "/lib/x86_64-linux-gnu/libc.so.6";
  ks = Keystore::Open(o);
  ASSERT_FALSE(ks.ok());
  EXPECT_THAT(ks.error().message(), HasSubstr("is not a PKCS#11 module"));
  o = EmbeddedOptions(dir_);
  o.token.token_label = "other";
  ks = Keystore::Open(o);
  ASSERT_FALSE(ks.ok());
  EXPECT_THAT(ks.error().message(), HasSubstr("no token labelled \"other\""));
}

TEST_F(KeystoreBadInputTest, TamperedWrappedBlobIsDetectedAndChangesNothing) {
  QSAPI_ASSERT_OK(ks_->Create("a", Type("AES-256-GCM")));
  QSAPI_ASSERT_OK(ks_->Create("b", Type("AES-256-GCM")));
  auto ct = ks_->Encrypt("a", AsBytes("secret"));
  QSAPI_ASSERT_OK(ct);
  const std::size_t audit_before = AuditSize();
  ks_.reset();
  // Move b's wrapped key into a's row: the AAD (key id) no longer matches.
  Sql(EmbeddedLayout{dir_}.database(),
      "UPDATE key_versions SET wrapped = (SELECT v.wrapped FROM key_versions v JOIN keys k ON v.key_id = k.key_id "
      "WHERE k.name = 'b') WHERE key_id = (SELECT key_id FROM keys WHERE name = 'a')");
  Reopen();
  auto pt = ks_->Decrypt("a", *ct);
  ASSERT_FALSE(pt.ok());
  EXPECT_EQ(pt.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(pt.error().message(), HasSubstr("fails authentication under the KEK"));
  auto report = ks_->CheckIntegrity();
  QSAPI_ASSERT_OK(report);
  ASSERT_EQ(report->problems.size(), 1U);
  EXPECT_THAT(report->problems[0], HasSubstr("key \"a\" version 1"));
  EXPECT_EQ(AuditSize(), audit_before);
  QSAPI_EXPECT_OK(ks_->Encrypt("b", AsBytes("still fine")));
}

TEST_F(KeystoreBadInputTest, CorruptMetadataRowGivesDataLoss) {
  QSAPI_ASSERT_OK(ks_->Create("c", Type("ML-DSA-65")));
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(), "UPDATE keys SET type = 'ROT13' WHERE name = 'c'");
  Reopen();
  auto sig = ks_->Sign("c", AsBytes("m"));
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(sig.error().message(), HasSubstr("corrupt type"));
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(),
      "UPDATE keys SET type = 'ML-DSA-65' WHERE name = 'c'; UPDATE key_versions SET state = 'bogus'");
  Reopen();
  EXPECT_EQ(ks_->Get("c").error().code(), ErrorCode::kDataLoss);
}

// Found by fuzz/keystore_rows_fuzzer.cc: a row whose values the writer could never have stored
// (a time of -2^63 seconds overflowed the conversion to a time point; a text where a number
// belongs read as 0; a short key id read as all zeros; the last version number wrapped to 0 on
// rotation) is refused as it is read, with kDataLoss naming the column.
TEST_F(KeystoreBadInputTest, OutOfRangeMetadataValuesGiveDataLoss) {
  KeyPolicy hourly;
  hourly.auto_rotate_period = std::chrono::hours(1);
  QSAPI_ASSERT_OK(ks_->Create("e", Type("AES-256-GCM"), hourly));
  QSAPI_ASSERT_OK(ks_->Create("f", Type("AES-256-GCM")));
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(),
      "CREATE TABLE saved_keys AS SELECT * FROM keys; CREATE TABLE saved_versions AS SELECT * FROM key_versions");
  const auto expect_corrupt = [&](const std::string& sql, const std::string& column) {
    ks_.reset();
    Sql(EmbeddedLayout{dir_}.database(),
        "BEGIN; DELETE FROM key_versions; DELETE FROM keys; INSERT INTO keys SELECT * FROM saved_keys; "
        "INSERT INTO key_versions SELECT * FROM saved_versions; " +
            sql + "; COMMIT");
    Reopen();
    auto got = ks_->Get("e");
    ASSERT_FALSE(got.ok()) << sql;
    EXPECT_EQ(got.error().code(), ErrorCode::kDataLoss) << sql;
    EXPECT_THAT(got.error().message(), HasSubstr("corrupt " + column)) << sql;
    auto all = ks_->List();
    ASSERT_FALSE(all.ok()) << sql;
    EXPECT_EQ(all.error().code(), ErrorCode::kDataLoss) << sql;
  };
  expect_corrupt("UPDATE keys SET rotated = -9223372036854775808 WHERE name = 'e'", "rotated");
  expect_corrupt("UPDATE keys SET created = 'yesterday' WHERE name = 'e'", "created");
  expect_corrupt("UPDATE keys SET key_id = x'0102' WHERE name = 'e'", "key_id");
  expect_corrupt("UPDATE keys SET current_version = 0 WHERE name = 'e'", "current_version");
  expect_corrupt("UPDATE keys SET max_operations = -1 WHERE name = 'e'", "max_operations");
  expect_corrupt("UPDATE key_versions SET created = 1e300", "created");
  // The largest version number is readable, but cannot be rotated past (it would wrap to 0).
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(),
      "UPDATE key_versions SET created = 0; UPDATE keys SET current_version = 4294967295 WHERE name = 'f'");
  Reopen();
  auto last = ks_->Rotate("f");
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(last.error().message(), HasSubstr("every version number"));
}

TEST_F(KeystoreBadInputTest, EditedAuditTrailIsDetected) {
  QSAPI_ASSERT_OK(ks_->Create("d", Type("AES-256-GCM")));
  QSAPI_ASSERT_OK(ks_->Rotate("d"));
  auto clean = ks_->CheckIntegrity();
  QSAPI_ASSERT_OK(clean);
  EXPECT_TRUE(clean->problems.empty());
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(), "UPDATE audit SET actor = 'someone-else' WHERE action = 'rotate'");
  Reopen();
  auto edited = ks_->CheckIntegrity();
  QSAPI_ASSERT_OK(edited);
  ASSERT_EQ(edited->problems.size(), 1U);
  EXPECT_THAT(edited->problems[0], HasSubstr("was altered"));
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(), "DELETE FROM audit WHERE seq = 2");
  Reopen();
  EXPECT_THAT(ks_->CheckIntegrity()->problems.at(0), HasSubstr("entry 2 is missing"));
}

// What `qsapi audit verify` once accepted: rows edited and the chain recomputed with SHA-256 by
// someone who can write the database. Keyed rows need the trail key, which only the KEK unwraps.
TEST_F(KeystoreBadInputTest, AKeyedTrailCannotBeRewrittenWithRecomputedHashes) {
  QSAPI_ASSERT_OK(ks_->Create("d", Type("AES-256-GCM")));
  QSAPI_ASSERT_OK(ks_->Rotate("d"));
  ks_.reset();
  const auto db = EmbeddedLayout{dir_}.database();
  Sql(db, "UPDATE audit SET actor = 'someone-else' WHERE action = 'rotate'");
  // Recompute every row's chain value as the old, unkeyed trail did.
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* rows = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(h, "SELECT seq, at, actor, action, key_name, version, result, detail FROM audit ORDER BY seq",
                         -1, &rows, nullptr),
      SQLITE_OK);
  Bytes prev(32, 0);
  std::vector<std::pair<std::int64_t, std::pair<Bytes, Bytes>>> updates;
  while (sqlite3_step(rows) == SQLITE_ROW) {
    Bytes enc = prev;
    const auto put = [&](const std::string& v) {
      for (int sh = 24; sh >= 0; sh -= 8) enc.push_back(static_cast<std::uint8_t>(v.size() >> sh));
      enc.insert(enc.end(), v.begin(), v.end());
    };
    const std::int64_t seq = sqlite3_column_int64(rows, 0);
    put(std::to_string(seq));
    put(std::to_string(sqlite3_column_int64(rows, 1)));
    for (int c = 2; c <= 4; ++c) put(reinterpret_cast<const char*>(sqlite3_column_text(rows, c)));  // NOLINT
    put(std::to_string(sqlite3_column_int64(rows, 5)));
    for (int c = 6; c <= 7; ++c) put(reinterpret_cast<const char*>(sqlite3_column_text(rows, c)));  // NOLINT
    Bytes hash = crypto::Hash(crypto::HashAlgorithm::kSha256, enc).value();
    updates.push_back({seq, {prev, hash}});
    prev = hash;
  }
  sqlite3_finalize(rows);
  for (const auto& [seq, ph] : updates) {
    sqlite3_stmt* up = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(h, "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", -1, &up, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(up, 1, ph.first.data(), static_cast<int>(ph.first.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(up, 2, ph.second.data(), static_cast<int>(ph.second.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(up, 3, seq);
    EXPECT_EQ(sqlite3_step(up), SQLITE_DONE);
    sqlite3_finalize(up);
  }
  sqlite3_close(h);
  Reopen();
  auto edited = ks_->CheckIntegrity();
  QSAPI_ASSERT_OK(edited);
  ASSERT_FALSE(edited->problems.empty());
  EXPECT_THAT(edited->problems[0], HasSubstr("its MAC does not chain"));
}

TEST_F(KeystoreBadInputTest, TrailKeysAreBoundToTheirTrailAndFirstEntryAndHeadsOnlyMoveOn) {
  auto made = ks_->OpenTrail("other.audit", 5);
  QSAPI_ASSERT_OK(made);
  EXPECT_EQ(made->first_seq, 5U);
  EXPECT_EQ(made->key.size(), 32U);
  auto found = ks_->FindTrail("other.audit");
  QSAPI_ASSERT_OK(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_TRUE(ConstantTimeEqual((*found)->key.view(), made->key.view())) << "the same key is found again";
  EXPECT_FALSE(ks_->FindTrail("never.keyed")->has_value());
  EXPECT_EQ(ks_->FindTrail("keystore").error().code(), ErrorCode::kInvalidArgument)
      << "the keystore's own key stays inside";

  QSAPI_EXPECT_OK(ks_->RecordTrailHead("other.audit", 10, AsBytes("0123456789abcdef0123456789abcdef")));
  auto back = ks_->RecordTrailHead("other.audit", 9, AsBytes("0123456789abcdef0123456789abcdef"));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ((*ks_->FindTrail("other.audit"))->head_seq, 10U);
  auto restarted = ks_->RestartTrail("other.audit", 1, "test");
  QSAPI_ASSERT_OK(restarted);
  EXPECT_FALSE(ConstantTimeEqual(restarted->key.view(), made->key.view())) << "a new chain gets a new key";
  EXPECT_EQ((*ks_->FindTrail("other.audit"))->head_seq, 0U);

  ks_.reset();
  // first_seq raised (to pass forged unkeyed lines off as older than the key): the key no longer unwraps.
  Sql(EmbeddedLayout{dir_}.database(), "UPDATE trails SET first_seq = 7 WHERE trail = 'other.audit'");
  Reopen();
  auto moved = ks_->FindTrail("other.audit");
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(moved.error().message(), HasSubstr("does not unwrap"));
  ks_.reset();
  // The keystore's own trail key altered: the keystore does not open on a trail it cannot check.
  Sql(EmbeddedLayout{dir_}.database(), "UPDATE trails SET first_seq = first_seq + 1 WHERE trail = 'keystore'");
  auto refused = Keystore::Open(EmbeddedOptions(dir_));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kDataLoss);
  Sql(EmbeddedLayout{dir_}.database(), "UPDATE trails SET first_seq = first_seq - 1 WHERE trail = 'keystore'");
  Reopen();
}

TEST_F(KeystoreBadInputTest, AHeadRecordedElsewhereCatchesATrailCutShort) {
  QSAPI_ASSERT_OK(ks_->Create("a", Type("AES-256-GCM")));
  QSAPI_ASSERT_OK(ks_->Create("b", Type("AES-256-GCM")));
  auto head = ks_->AuditHead();
  QSAPI_ASSERT_OK(head);
  ASSERT_GT(head->seq, 2U);
  QSAPI_EXPECT_OK(ks_->CheckAuditHead(*head));
  ks_.reset();
  Sql(EmbeddedLayout{dir_}.database(), "DELETE FROM audit WHERE seq = " + std::to_string(head->seq));
  Reopen();
  EXPECT_TRUE(ks_->CheckIntegrity()->problems.empty()) << "a cut at the end leaves a chain that holds";
  auto cut = ks_->CheckAuditHead(*head);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(cut.error().message(), HasSubstr("no longer holds its entry " + std::to_string(head->seq)));
}

TEST_F(KeystoreBadInputTest, NotADatabaseIsRefused) {
  ks_.reset();
  const auto db = dir_ / "garbage.db";
  std::ofstream(db) << std::string(4096, 'x');
  KeystoreOptions o = EmbeddedOptions(dir_);
  o.database = db;
  auto ks = Keystore::Open(o);
  ASSERT_FALSE(ks.ok());
  EXPECT_EQ(ks.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(ks.error().message(), HasSubstr("not a SQLite database"));
}

// A deterministic random source, so that the test knows every byte the keystore drew: none of
// the drawn key material may appear in any file under the data directory.
class RecordingRandom final : public crypto::RandomSource {
 public:
  Status Fill(std::span<std::uint8_t> out) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Bytes seed = {static_cast<std::uint8_t>(counter_ >> 8), static_cast<std::uint8_t>(counter_)};
    ++counter_;
    auto block = crypto::Hkdf(crypto::HashAlgorithm::kSha512, {}, seed, {}, out.size());
    if (!block.ok()) return block.error();
    std::copy(block->view().begin(), block->view().end(), out.begin());
    drawn_.emplace_back(out.begin(), out.end());
    return OkStatus();
  }
  std::string_view Name() const noexcept override { return "recording"; }
  std::vector<Bytes> drawn() {
    const std::lock_guard<std::mutex> lock(mu_);
    return drawn_;
  }

 private:
  std::mutex mu_;
  int counter_ = 0;
  std::vector<Bytes> drawn_;
};

TEST_F(KeystoreTest, NoPlaintextKeyMaterialReachesTheDisk) {
  auto recorder = std::make_shared<RecordingRandom>();
  crypto::SetRandomSource(recorder);
  for (const char* type : {"AES-256-GCM", "XChaCha20-Poly1305", "ML-KEM-768", "X-Wing", "ML-DSA-65"}) {
    const std::string name =
        "k" + std::to_string(std::strlen(type)) + std::string(1, static_cast<char>(std::tolower(type[0])));
    QSAPI_ASSERT_OK(ks_->Create(name, Type(type)));
    QSAPI_ASSERT_OK(ks_->Rotate(name));
  }
  crypto::SetRandomSource(nullptr);
  ks_.reset();  // everything flushed and closed
  std::vector<Bytes> secrets;
  for (const Bytes& d : recorder->drawn()) {
    if (d.size() >= 24) secrets.push_back(d);  // seeds and keys (ids are 16 bytes, IVs 12)
  }
  ASSERT_GE(secrets.size(), 10U);
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string content = testing::ReadFile(entry.path());
    for (const Bytes& s : secrets) {
      for (std::size_t off = 0; off + 16 <= s.size(); off += 8) {
        const std::string window(reinterpret_cast<const char*>(s.data() + off), 16);  // NOLINT
        EXPECT_EQ(content.find(window), std::string::npos) << "key material in " << entry.path();
      }
    }
  }
  EXPECT_GE(files, 4U);
}

}  // namespace
}  // namespace qsapi::keystore
