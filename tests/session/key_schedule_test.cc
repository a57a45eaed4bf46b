#include "qsapi/session/key_schedule.h"

#include <set>
#include <string>

#include "support/test_support.h"

namespace qsapi::session {
namespace {

using testing::ToHex;

struct Material {
  Bytes session_id = Bytes(kSessionIdSize, 0x11);
  Bytes exporter = Bytes(kExporterSize, 0x22);
  Bytes qkd = Bytes(32, 0x33);
  Bytes qrng_i = Bytes(kQrngContributionSize, 0x44);
  Bytes qrng_r = Bytes(kQrngContributionSize, 0x55);
  Bytes context_hash = Bytes(kContextHashSize, 0x66);

  [[nodiscard]] KeyScheduleInput Full(AeadSuite suite = AeadSuite::kAes256Gcm) const {
    return KeyScheduleInput{.session_id = session_id,
                            .suite = suite,
                            .tls_exporter = exporter,
                            .qkd_key = qkd,
                            .qrng_initiator = qrng_i,
                            .qrng_responder = qrng_r,
                            .context_hash = context_hash};
  }
};

template <typename S>
std::string Hex(const S& s) {
  return ToHex(s.view());
}

TEST(SessionKeyScheduleTest, AllSourcesAreListedInOrderAndKeysHaveTheirSizes) {
  const Material m;
  auto keys = DeriveSessionKeys(m.Full());
  QSAPI_ASSERT_OK(keys);
  EXPECT_EQ(keys->sources, (std::vector<SourceId>{SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator,
                                                  SourceId::kQrngResponder}));
  EXPECT_EQ(keys->epoch_secret.size(), kEpochSecretSize);
  EXPECT_EQ(keys->confirm_key_initiator.size(), kConfirmKeySize);
  EXPECT_EQ(keys->confirm_key_responder.size(), kConfirmKeySize);
  std::set<std::string> distinct{Hex(keys->epoch_secret), Hex(keys->confirm_key_initiator),
                                 Hex(keys->confirm_key_responder)};
  EXPECT_EQ(distinct.size(), 3U);
}

TEST(SessionKeyScheduleTest, DeterministicForTheSameInput) {
  const Material m;
  auto a = DeriveSessionKeys(m.Full());
  auto b = DeriveSessionKeys(m.Full());
  QSAPI_ASSERT_OK(a);
  QSAPI_ASSERT_OK(b);
  EXPECT_EQ(Hex(a->epoch_secret), Hex(b->epoch_secret));
  EXPECT_EQ(Hex(a->confirm_key_responder), Hex(b->confirm_key_responder));
}

TEST(SessionKeyScheduleTest, ExporterOnlySession) {
  const Material m;
  KeyScheduleInput in = m.Full();
  in.qkd_key = {};
  in.qrng_initiator = {};
  in.qrng_responder = {};
  auto keys = DeriveSessionKeys(in);
  QSAPI_ASSERT_OK(keys);
  EXPECT_EQ(keys->sources, std::vector<SourceId>{SourceId::kTlsExporter});
}

// Every input changes every output: the key schedule binds each of them.
TEST(SessionKeyScheduleTest, EveryInputIsBound) {
  const Material m;
  auto base = DeriveSessionKeys(m.Full());
  QSAPI_ASSERT_OK(base);
  std::vector<Material> variants(7, m);
  variants[0].session_id[0] ^= 1;
  variants[1].exporter[47] ^= 1;
  variants[2].qkd[0] ^= 1;
  variants[3].qrng_i[31] ^= 1;
  variants[4].qrng_r[0] ^= 1;
  variants[5].context_hash[10] ^= 1;
  variants[6].qkd.push_back(0);  // a different QKD length, same prefix
  for (std::size_t i = 0; i < variants.size(); ++i) {
    auto k = DeriveSessionKeys(variants[i].Full());
    QSAPI_ASSERT_OK(k);
    EXPECT_NE(Hex(k->epoch_secret), Hex(base->epoch_secret)) << "variant " << i;
    EXPECT_NE(Hex(k->confirm_key_initiator), Hex(base->confirm_key_initiator)) << "variant " << i;
    EXPECT_NE(Hex(k->confirm_key_responder), Hex(base->confirm_key_responder)) << "variant " << i;
  }
  auto xchacha = DeriveSessionKeys(m.Full(AeadSuite::kXChaCha20Poly1305));
  QSAPI_ASSERT_OK(xchacha);
  EXPECT_NE(Hex(xchacha->epoch_secret), Hex(base->epoch_secret));
}

// A downgraded source list (one side drops QKD) gives different keys, and the confirmation MAC
// made with the full list fails under the downgraded keys.
TEST(SessionKeyScheduleTest, DowngradedSourceListFailsConfirmation) {
  const Material m;
  auto full = DeriveSessionKeys(m.Full());
  KeyScheduleInput downgraded_in = m.Full();
  downgraded_in.qkd_key = {};
  auto downgraded = DeriveSessionKeys(downgraded_in);
  QSAPI_ASSERT_OK(full);
  QSAPI_ASSERT_OK(downgraded);
  EXPECT_NE(Hex(full->epoch_secret), Hex(downgraded->epoch_secret));
  auto mac = ConfirmationMac(full->confirm_key_initiator, m.context_hash);
  QSAPI_ASSERT_OK(mac);
  QSAPI_EXPECT_OK(VerifyConfirmationMac(full->confirm_key_initiator, m.context_hash, *mac));
  auto st = VerifyConfirmationMac(downgraded->confirm_key_initiator, m.context_hash, *mac);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(), AuthenticationFailed());
}

// The source list, not only the IKM, is bound: dropping a QRNG contribution from one side and
// giving the other side's value twice cannot produce the same IKM layout and list.
TEST(SessionKeyScheduleTest, SourceListDistinguishesInitiatorFromResponderQrng) {
  const Material m;
  KeyScheduleInput only_i = m.Full();
  only_i.qkd_key = {};
  only_i.qrng_responder = {};
  KeyScheduleInput only_r = m.Full();
  only_r.qkd_key = {};
  only_r.qrng_initiator = {};
  only_r.qrng_responder = m.qrng_i;  // same bytes, same IKM, different source id
  auto a = DeriveSessionKeys(only_i);
  auto b = DeriveSessionKeys(only_r);
  QSAPI_ASSERT_OK(a);
  QSAPI_ASSERT_OK(b);
  EXPECT_NE(Hex(a->epoch_secret), Hex(b->epoch_secret));
  EXPECT_EQ(ToHex(EncodeSourceList(a->sources)),
            "0201"
            "03");
  EXPECT_EQ(ToHex(EncodeSourceList(b->sources)),
            "0201"
            "04");
}

TEST(SessionKeyScheduleTest, BadLengthsAndSuitesAreRefused) {
  const Material m;
  auto expect_invalid = [](const KeyScheduleInput& in, const std::string& needle) {
    auto r = DeriveSessionKeys(in);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
  };
  const Bytes b15(15);
  const Bytes b31(31);
  const Bytes b47(47);
  const Bytes b65(65);
  const Bytes b33(33);
  KeyScheduleInput in = m.Full();
  in.session_id = b15;
  expect_invalid(in, "session id");
  in = m.Full();
  in.tls_exporter = b47;
  expect_invalid(in, "TLS exporter");
  in = m.Full();
  in.tls_exporter = {};
  expect_invalid(in, "TLS exporter");
  in = m.Full();
  in.qkd_key = b31;
  expect_invalid(in, "QKD");
  in = m.Full();
  in.qkd_key = b65;
  expect_invalid(in, "QKD");
  in = m.Full();
  in.qrng_initiator = b33;
  expect_invalid(in, "initiator QRNG");
  in = m.Full();
  in.qrng_responder = b31;
  expect_invalid(in, "responder QRNG");
  in = m.Full();
  in.context_hash = b47;
  expect_invalid(in, "context hash");
  in = m.Full();
  in.suite = static_cast<AeadSuite>(3);
  expect_invalid(in, "suite");
  in = m.Full();
  in.suite = static_cast<AeadSuite>(0);
  expect_invalid(in, "suite");
}

TEST(SessionConfirmationMacTest, RolesDifferAndTamperingFails) {
  // The same bytes as either role's key: the role byte follows from the key's type.
  const auto ki = InitiatorConfirmKey::CopyFrom(Bytes(kConfirmKeySize, 7));
  const auto kr = ResponderConfirmKey::CopyFrom(Bytes(kConfirmKeySize, 7));
  const Bytes ctx(kContextHashSize, 9);
  auto mi = ConfirmationMac(ki, ctx);
  auto mr = ConfirmationMac(kr, ctx);
  QSAPI_ASSERT_OK(mi);
  QSAPI_ASSERT_OK(mr);
  EXPECT_EQ(mi->size(), kConfirmMacSize);
  EXPECT_NE(*mi, *mr);
  // The initiator's MAC is not accepted as the responder's (reflection).
  EXPECT_FALSE(VerifyConfirmationMac(kr, ctx, *mi).ok());
  QSAPI_EXPECT_OK(VerifyConfirmationMac(kr, ctx, *mr));
  Bytes bad = *mi;
  bad[0] ^= 0x80;
  EXPECT_EQ(VerifyConfirmationMac(ki, ctx, bad).error(), AuthenticationFailed());
  EXPECT_EQ(VerifyConfirmationMac(ki, ctx, ByteView(*mi).first(32)).error(), AuthenticationFailed());
  Bytes ctx2 = ctx;
  ctx2[47] ^= 1;
  EXPECT_EQ(VerifyConfirmationMac(ki, ctx2, *mi).error(), AuthenticationFailed());
  EXPECT_EQ(ConfirmationMac(InitiatorConfirmKey::CopyFrom(Bytes(32)), ctx).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(VerifyConfirmationMac(ki, Bytes(32), *mi).error().code(), ErrorCode::kInvalidArgument);
}

TEST(SessionEpochKeysTest, DirectionsEpochsAndSuitesGiveDistinctKeys) {
  const auto secret = EpochSecret::CopyFrom(Bytes(kEpochSecretSize, 0x5a));
  const Bytes sid(kSessionIdSize, 0x01);
  auto e0 = DeriveEpochKeys(secret, AeadSuite::kAes256Gcm, sid, 0);
  auto e1 = DeriveEpochKeys(secret, AeadSuite::kAes256Gcm, sid, 1);
  auto x0 = DeriveEpochKeys(secret, AeadSuite::kXChaCha20Poly1305, sid, 0);
  QSAPI_ASSERT_OK(e0);
  QSAPI_ASSERT_OK(e1);
  QSAPI_ASSERT_OK(x0);
  EXPECT_EQ(e0->initiator_key.size(), kAeadKeySize);
  EXPECT_EQ(e0->initiator_nonce_prefix.size(), 12U);
  EXPECT_EQ(e0->responder_nonce_prefix.size(), 12U);
  EXPECT_EQ(x0->initiator_nonce_prefix.size(), 24U);
  std::set<std::string> keys{Hex(e0->initiator_key), Hex(e0->responder_key), Hex(e1->initiator_key),
                             Hex(e1->responder_key), Hex(x0->initiator_key), Hex(x0->responder_key)};
  EXPECT_EQ(keys.size(), 6U);
  EXPECT_NE(e0->initiator_nonce_prefix, e0->responder_nonce_prefix);
  EXPECT_NE(e0->initiator_nonce_prefix, e1->initiator_nonce_prefix);
  EXPECT_EQ(DeriveEpochKeys(EpochSecret::CopyFrom(Bytes(32)), AeadSuite::kAes256Gcm, sid, 0).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DeriveEpochKeys(secret, static_cast<AeadSuite>(9), sid, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DeriveEpochKeys(secret, AeadSuite::kAes256Gcm, Bytes(8), 0).error().code(), ErrorCode::kInvalidArgument);
}

TEST(SessionRatchetTest, FreshQkdMaterialAndEpochNumberChangeTheNextSecret) {
  const auto secret = EpochSecret::CopyFrom(Bytes(kEpochSecretSize, 0x5a));
  const Bytes sid(kSessionIdSize, 0x01);
  auto plain = NextEpochSecret(secret, {}, sid, 1);
  auto plain_again = NextEpochSecret(secret, {}, sid, 1);
  auto mixed = NextEpochSecret(secret, Bytes(32, 0xaa), sid, 1);
  auto mixed_other = NextEpochSecret(secret, Bytes(32, 0xab), sid, 1);
  auto epoch2 = NextEpochSecret(secret, {}, sid, 2);
  QSAPI_ASSERT_OK(plain);
  QSAPI_ASSERT_OK(plain_again);
  QSAPI_ASSERT_OK(mixed);
  QSAPI_ASSERT_OK(mixed_other);
  QSAPI_ASSERT_OK(epoch2);
  EXPECT_EQ(plain->size(), kEpochSecretSize);
  EXPECT_EQ(Hex(*plain), Hex(*plain_again));
  std::set<std::string> all{Hex(*plain), Hex(*mixed), Hex(*mixed_other), Hex(*epoch2), Hex(secret)};
  EXPECT_EQ(all.size(), 5U);
  EXPECT_EQ(NextEpochSecret(secret, {}, sid, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(NextEpochSecret(secret, Bytes(16), sid, 1).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(NextEpochSecret(EpochSecret::CopyFrom(Bytes(47)), {}, sid, 1).error().code(), ErrorCode::kInvalidArgument);
}

TEST(SessionSuiteTest, NamesAndNonceSizes) {
  EXPECT_EQ(AeadSuiteName(AeadSuite::kAes256Gcm), "AES-256-GCM");
  EXPECT_EQ(NonceSize(AeadSuite::kXChaCha20Poly1305), 24U);
  EXPECT_EQ(*ParseAeadSuite("xchacha20-poly1305"), AeadSuite::kXChaCha20Poly1305);
  EXPECT_FALSE(ParseAeadSuite("chacha20-poly1305").ok());
  EXPECT_EQ(SourceIdName(SourceId::kQrngResponder), "qrng-responder");
}

}  // namespace
}  // namespace qsapi::session
