// HPKE (RFC 9180) with the draft-ietf-hpke-pq KEMs: round trips for every suite in base and PSK
// mode, the exporter, export-only suites, and every way an open must fail.
#include "qsapi/hpke/hpke.h"

#include <limits>
#include <tuple>

#include "hpke/internal/context_state.h"
#include "qsapi/crypto/random.h"
#include "support/test_support.h"

namespace qsapi::hpke {
namespace {

const Error kAuthFailed = AuthenticationFailed();

Bytes Text(std::string_view s) { return {s.begin(), s.end()}; }

Psk MakePsk(std::uint8_t fill = 0x42, std::string_view id = "qkd-key-0001") {
  SecretBytes key(32);
  std::fill(key.data(), key.data() + key.size(), fill);
  auto psk = Psk::Create(std::move(key), Text(id));
  if (!psk.ok()) std::abort();
  return std::move(psk).value();
}

std::vector<Suite> AllSuites(bool with_export_only) {
  std::vector<Suite> out;
  for (KemId k : {KemId::kXWing, KemId::kMlKem768, KemId::kMlKem1024, KemId::kMlKem1024P384}) {
    for (KdfId d : {KdfId::kHkdfSha256, KdfId::kHkdfSha384}) {
      for (AeadId a : {AeadId::kAes256Gcm, AeadId::kChaCha20Poly1305, AeadId::kExportOnly}) {
        if (a == AeadId::kExportOnly && !with_export_only) continue;
        out.push_back({k, d, a});
      }
    }
  }
  return out;
}

std::string SuiteTestName(const Suite& s) {
  std::string name = SuiteName(s);
  std::erase_if(name, [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); });
  return name;
}

// One recipient key per KEM, generated once (ML-KEM-1024+P-384 keygen is not free).
const InMemoryRecipientKey& KeyFor(KemId kem) {
  static std::map<KemId, std::unique_ptr<InMemoryRecipientKey>> keys;
  auto& k = keys[kem];
  if (!k) {
    auto generated = InMemoryRecipientKey::Generate(KemAlgorithmFor(kem));
    if (!generated.ok()) std::abort();
    k = std::move(generated).value();
  }
  return *k;
}

class HpkeSuiteTest : public ::testing::TestWithParam<Suite> {};

TEST_P(HpkeSuiteTest, BaseAndPskRoundTripWithExporter) {
  const Suite suite = GetParam();
  const InMemoryRecipientKey& key = KeyFor(suite.kem);
  const Psk psk = MakePsk();
  for (const Psk* p : {static_cast<const Psk*>(nullptr), &psk}) {
    auto sender = SetupSender(suite, key.public_key(), Text("info"), p);
    QSAPI_ASSERT_OK(sender);
    EXPECT_EQ(sender->enc.size(), GetSuiteSizes(suite).enc);
    EXPECT_EQ(sender->context.mode(), p ? Mode::kPsk : Mode::kBase);
    auto recipient = SetupRecipient(suite, sender->enc, key, Text("info"), p);
    QSAPI_ASSERT_OK(recipient);
    for (int i = 0; i < 3; ++i) {
      const Bytes pt = Text("message " + std::to_string(i));
      auto ct = sender->context.Seal(pt, Text("aad"));
      QSAPI_ASSERT_OK(ct);
      EXPECT_EQ(ct->size(), pt.size() + 16);
      auto opened = recipient->Open(*ct, Text("aad"));
      QSAPI_ASSERT_OK(opened);
      EXPECT_EQ(*opened, pt);
    }
    EXPECT_EQ(sender->context.sequence_number(), 3U);
    EXPECT_EQ(recipient->sequence_number(), 3U);
    auto e1 = sender->context.Export(Text("ctx"), 64);
    auto e2 = recipient->Export(Text("ctx"), 64);
    QSAPI_ASSERT_OK(e1);
    QSAPI_ASSERT_OK(e2);
    EXPECT_TRUE(ConstantTimeEqual(e1->view(), e2->view()));
    auto e3 = recipient->Export(Text("ctx2"), 64);
    QSAPI_ASSERT_OK(e3);
    EXPECT_FALSE(ConstantTimeEqual(e1->view(), e3->view()));
  }
}

TEST_P(HpkeSuiteTest, SingleShotSealOpen) {
  const Suite suite = GetParam();
  const InMemoryRecipientKey& key = KeyFor(suite.kem);
  auto sealed = Seal(suite, key.public_key(), Text("info"), Text("aad"), Text("hello"));
  QSAPI_ASSERT_OK(sealed);
  auto opened = Open(suite, key, sealed->enc, Text("info"), Text("aad"), sealed->ciphertext);
  QSAPI_ASSERT_OK(opened);
  EXPECT_EQ(*opened, Text("hello"));
  // Empty plaintext, empty info, empty aad.
  auto empty = Seal(suite, key.public_key(), {}, {}, {});
  QSAPI_ASSERT_OK(empty);
  auto opened_empty = Open(suite, key, empty->enc, {}, {}, empty->ciphertext);
  QSAPI_ASSERT_OK(opened_empty);
  EXPECT_TRUE(opened_empty->empty());
}

TEST_P(HpkeSuiteTest, TamperedInputsFailAlike) {
  const Suite suite = GetParam();
  const InMemoryRecipientKey& key = KeyFor(suite.kem);
  const Psk psk = MakePsk();
  auto sealed = Seal(suite, key.public_key(), Text("info"), Text("aad"), Text("secret payload"), &psk);
  QSAPI_ASSERT_OK(sealed);
  auto open = [&](ByteView enc, ByteView info, ByteView aad, ByteView ct, const Psk* p) {
    return Open(suite, key, enc, info, aad, ct, p);
  };
  QSAPI_ASSERT_OK(open(sealed->enc, Text("info"), Text("aad"), sealed->ciphertext, &psk));

  Bytes ct = sealed->ciphertext;
  ct[3] ^= 1;
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), ct, &psk).error(), kAuthFailed);
  ct = sealed->ciphertext;
  ct.back() ^= 0x80;  // the tag
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), ct, &psk).error(), kAuthFailed);
  ct = sealed->ciphertext;
  ct.pop_back();  // truncated
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), ct, &psk).error(), kAuthFailed);
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), Bytes(5), &psk).error(), kAuthFailed);
  Bytes enc = sealed->enc;
  enc[10] ^= 4;  // ML-KEM part
  EXPECT_EQ(open(enc, Text("info"), Text("aad"), sealed->ciphertext, &psk).error(), kAuthFailed);
  enc = sealed->enc;
  enc.back() ^= 1;  // the classical part of a hybrid (or the ML-KEM ciphertext's last byte)
  EXPECT_EQ(open(enc, Text("info"), Text("aad"), sealed->ciphertext, &psk).error(), kAuthFailed);
  enc = sealed->enc;
  enc.pop_back();
  EXPECT_EQ(open(enc, Text("info"), Text("aad"), sealed->ciphertext, &psk).error(), kAuthFailed);
  EXPECT_EQ(open(sealed->enc, Text("infO"), Text("aad"), sealed->ciphertext, &psk).error(), kAuthFailed);
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aaD"), sealed->ciphertext, &psk).error(), kAuthFailed);
  // Wrong PSK, wrong PSK id, no PSK (base mode).
  const Psk other_key = MakePsk(0x43);
  const Psk other_id = MakePsk(0x42, "qkd-key-0002");
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), sealed->ciphertext, &other_key).error(), kAuthFailed);
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), sealed->ciphertext, &other_id).error(), kAuthFailed);
  EXPECT_EQ(open(sealed->enc, Text("info"), Text("aad"), sealed->ciphertext, nullptr).error(), kAuthFailed);
  // Re-suited: the same bytes opened under another KDF or AEAD of the same KEM.
  for (const Suite& other : AllSuites(false)) {
    if (other.kem != suite.kem || other == suite) continue;
    EXPECT_EQ(Open(other, key, sealed->enc, Text("info"), Text("aad"), sealed->ciphertext, &psk).error(), kAuthFailed)
        << SuiteName(other);
  }
  // Another recipient key of the same KEM.
  auto stranger = InMemoryRecipientKey::Generate(KemAlgorithmFor(suite.kem));
  QSAPI_ASSERT_OK(stranger);
  EXPECT_EQ(Open(suite, **stranger, sealed->enc, Text("info"), Text("aad"), sealed->ciphertext, &psk).error(),
            kAuthFailed);
}

TEST_P(HpkeSuiteTest, ReorderedAndReplayedMessagesFail) {
  const Suite suite = GetParam();
  const InMemoryRecipientKey& key = KeyFor(suite.kem);
  auto sender = SetupSender(suite, key.public_key(), {});
  QSAPI_ASSERT_OK(sender);
  auto c0 = sender->context.Seal(Text("zero"), {});
  auto c1 = sender->context.Seal(Text("one"), {});
  QSAPI_ASSERT_OK(c0);
  QSAPI_ASSERT_OK(c1);
  auto recipient = SetupRecipient(suite, sender->enc, key, {});
  QSAPI_ASSERT_OK(recipient);
  EXPECT_EQ(recipient->Open(*c1, {}).error(), kAuthFailed);  // out of order
  EXPECT_EQ(recipient->sequence_number(), 0U);               // a failed open does not advance
  QSAPI_ASSERT_OK(recipient->Open(*c0, {}));
  EXPECT_EQ(recipient->Open(*c0, {}).error(), kAuthFailed);  // replayed
  auto one = recipient->Open(*c1, {});
  QSAPI_ASSERT_OK(one);
  EXPECT_EQ(*one, Text("one"));
}

INSTANTIATE_TEST_SUITE_P(AllSuites, HpkeSuiteTest, ::testing::ValuesIn(AllSuites(false)),
                         [](const auto& param_info) { return SuiteTestName(param_info.param); });

TEST(HpkeExportOnlyTest, SendReceiveExportAndNoSealing) {
  for (KemId kem : {KemId::kXWing, KemId::kMlKem768, KemId::kMlKem1024, KemId::kMlKem1024P384}) {
    const Suite suite{kem, KdfId::kHkdfSha384, AeadId::kExportOnly};
    const InMemoryRecipientKey& key = KeyFor(kem);
    auto sent = SendExport(suite, key.public_key(), Text("info"), Text("label"), 32);
    QSAPI_ASSERT_OK(sent);
    auto received = ReceiveExport(suite, key, sent->enc, Text("info"), Text("label"), 32);
    QSAPI_ASSERT_OK(received);
    EXPECT_TRUE(ConstantTimeEqual(sent->secret.view(), received->view()));
    auto setup = SetupSender(suite, key.public_key(), {});
    QSAPI_ASSERT_OK(setup);
    auto sealed = setup->context.Seal(Text("x"), {});
    ASSERT_FALSE(sealed.ok());
    EXPECT_EQ(sealed.error().code(), ErrorCode::kFailedPrecondition);
    auto recipient = SetupRecipient(suite, setup->enc, key, {});
    QSAPI_ASSERT_OK(recipient);
    EXPECT_EQ(recipient->Open(Bytes(16), {}).error().code(), ErrorCode::kFailedPrecondition);
    // Export length bounds: 1 .. 255 * Nh.
    EXPECT_FALSE(recipient->Export({}, 0).ok());
    EXPECT_FALSE(recipient->Export({}, 255 * 48 + 1).ok());
    QSAPI_EXPECT_OK(recipient->Export({}, 255 * 48));
  }
}

TEST(HpkeContextTest, SequenceNumberOverflowIsRefused) {
  const Suite suite{KemId::kXWing, KdfId::kHkdfSha256, AeadId::kAes256Gcm};
  const InMemoryRecipientKey& key = KeyFor(suite.kem);
  auto sender = SetupSender(suite, key.public_key(), {});
  QSAPI_ASSERT_OK(sender);
  auto recipient = SetupRecipient(suite, sender->enc, key, {});
  QSAPI_ASSERT_OK(recipient);
  constexpr std::uint64_t kLast = std::numeric_limits<std::uint64_t>::max() - 1;
  sender->context.state().SetSequenceNumberForTesting(kLast);
  recipient->state().SetSequenceNumberForTesting(kLast);
  auto ct = sender->context.Seal(Text("last"), {});
  QSAPI_ASSERT_OK(ct);  // sequence number 2^64 - 2 is the last one used
  auto opened = recipient->Open(*ct, {});
  QSAPI_ASSERT_OK(opened);
  auto refused = sender->context.Seal(Text("one too many"), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(recipient->Open(*ct, {}).error().code(), ErrorCode::kResourceExhausted);
}

TEST(HpkeContextTest, ByteBudgetIsEnforced) {
  const Suite suite{KemId::kMlKem768, KdfId::kHkdfSha256, AeadId::kAes256Gcm};
  EXPECT_EQ(internal::MaxBytesPerContext(AeadId::kAes256Gcm), std::uint64_t{1} << 38);
  const InMemoryRecipientKey& key = KeyFor(suite.kem);
  auto sender = SetupSender(suite, key.public_key(), {});
  QSAPI_ASSERT_OK(sender);
  sender->context.state().SetByteBudgetForTesting(10);
  QSAPI_ASSERT_OK(sender->context.Seal(Bytes(6), {}));
  auto refused = sender->context.Seal(Bytes(5), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kResourceExhausted);
  QSAPI_ASSERT_OK(sender->context.Seal(Bytes(4), {}));
}

TEST(HpkePskTest, CreateEnforcesRfc9180Rules) {
  EXPECT_FALSE(Psk::Create(SecretBytes(32), {}).ok());               // PSK without id
  EXPECT_FALSE(Psk::Create(SecretBytes(), Text("id")).ok());         // id without PSK
  EXPECT_FALSE(Psk::Create(SecretBytes(31), Text("id")).ok());       // too short
  EXPECT_FALSE(Psk::Create(SecretBytes(32), Bytes(256, 'a')).ok());  // id too long
  QSAPI_EXPECT_OK(Psk::Create(SecretBytes(32), Bytes(255, 'a')));
}

TEST(HpkeSetupTest, KeyOfAnotherKemIsRefused) {
  const Suite suite{KemId::kXWing, KdfId::kHkdfSha256, AeadId::kAes256Gcm};
  auto sender = SetupSender(suite, KeyFor(KemId::kMlKem768).public_key(), {});
  ASSERT_FALSE(sender.ok());
  EXPECT_EQ(sender.error().code(), ErrorCode::kInvalidArgument);
  auto recipient = SetupRecipient(suite, Bytes(1120), KeyFor(KemId::kMlKem768), {});
  ASSERT_FALSE(recipient.ok());
  EXPECT_EQ(recipient.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(SetupSender(suite, KeyFor(KemId::kXWing).public_key(), Bytes(kMaxInfoSize + 1)).ok());
}

TEST(HpkeSuiteIdsTest, FromIdsAndNames) {
  auto s = Suite::FromIds(0x647a, 0x0001, 0x0003);
  QSAPI_ASSERT_OK(s);
  EXPECT_EQ(*s, kDefaultSuite);
  EXPECT_EQ(SuiteName(*s), "X-Wing/HKDF-SHA256/ChaCha20-Poly1305");
  EXPECT_FALSE(Suite::FromIds(0x0040, 1, 3).ok());  // ML-KEM-512 is not offered
  EXPECT_FALSE(Suite::FromIds(0x0020, 1, 3).ok());  // DHKEM(X25519): classical only
  EXPECT_FALSE(Suite::FromIds(0x647a, 3, 3).ok());  // HKDF-SHA512
  EXPECT_FALSE(Suite::FromIds(0x647a, 1, 1).ok());  // AES-128-GCM
  auto k = ParseKemName("MLKEM768-X25519");
  QSAPI_ASSERT_OK(k);
  EXPECT_EQ(*k, KemId::kXWing);
  EXPECT_FALSE(KemIdFor(crypto::KemAlgorithm::kMlKem512).ok());
  EXPECT_EQ(internal::HpkeSuiteId(internal::ToRawSuite(kDefaultSuite)),
            (Bytes{'H', 'P', 'K', 'E', 0x64, 0x7a, 0, 1, 0, 3}));
}

TEST(RecipientKeyTest, DefaultKeyIdIsStableAndBounded) {
  const InMemoryRecipientKey& key = KeyFor(KemId::kXWing);
  auto id = DefaultKeyId(key.public_key());
  QSAPI_ASSERT_OK(id);
  EXPECT_EQ(id->size(), kDefaultKeyIdSize);
  EXPECT_EQ(Bytes(key.key_id().begin(), key.key_id().end()), *id);
  auto seed = crypto::RandomSecret(32);
  QSAPI_ASSERT_OK(seed);
  EXPECT_FALSE(
      InMemoryRecipientKey::FromSeed(crypto::KemAlgorithm::kXWing, KemSeed(seed->Clone()), Bytes(kMaxKeyIdSize + 1, 1))
          .ok());
  auto named = InMemoryRecipientKey::FromSeed(crypto::KemAlgorithm::kXWing, KemSeed(std::move(seed).value()),
                                              Text("payments-2026/v3"));
  QSAPI_ASSERT_OK(named);
  EXPECT_EQ(Bytes((*named)->key_id().begin(), (*named)->key_id().end()), Text("payments-2026/v3"));
}

}  // namespace
}  // namespace qsapi::hpke
