#include "qsapi/session/envelope.h"

#include <algorithm>
#include <set>
#include <string>
#include <thread>

#include "qsapi/crypto/aead.h"
#include "session/channel_test_util.h"
#include "session/internal/replay_window.h"
#include "support/test_support.h"

namespace qsapi::session {
namespace {

using testing::ChannelPair;
using testing::MakePair;
using testing::TestEpochSecret;
using testing::TestSessionId;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

class BothSuites : public ::testing::TestWithParam<AeadSuite> {};
INSTANTIATE_TEST_SUITE_P(Session, BothSuites, ::testing::Values(AeadSuite::kAes256Gcm, AeadSuite::kXChaCha20Poly1305),
                         [](const auto& param_info) {
                           return param_info.param == AeadSuite::kAes256Gcm ? std::string("Aes256Gcm")
                                                                            : std::string("XChaCha20Poly1305");
                         });

TEST_P(BothSuites, RoundTripBothDirectionsWithAssociatedData) {
  ChannelPair p = MakePair(GetParam());
  auto e1 = p.initiator->Seal(B("hello responder"), B("route=/a"));
  QSAPI_ASSERT_OK(e1);
  EXPECT_EQ(e1->size(), kEnvelopeHeaderSize + 15 + kEnvelopeTagSize);
  auto m1 = p.responder->Open(*e1, B("route=/a"));
  QSAPI_ASSERT_OK(m1);
  EXPECT_EQ(*m1, B("hello responder"));
  auto e2 = p.responder->Seal(B("hello initiator"));
  QSAPI_ASSERT_OK(e2);
  auto m2 = p.initiator->Open(*e2);
  QSAPI_ASSERT_OK(m2);
  EXPECT_EQ(*m2, B("hello initiator"));
  // An envelope is not accepted by its own sender (the directions have different keys).
  auto e3 = p.initiator->Seal(B("x"));
  QSAPI_ASSERT_OK(e3);
  EXPECT_EQ(p.initiator->Open(*e3).error(), AuthenticationFailed());
}

TEST_P(BothSuites, WrongAssociatedDataFails) {
  ChannelPair p = MakePair(GetParam());
  auto e = p.initiator->Seal(B("m"), B("aad-1"));
  QSAPI_ASSERT_OK(e);
  EXPECT_EQ(p.responder->Open(*e, B("aad-2")).error(), AuthenticationFailed());
  EXPECT_EQ(p.responder->Open(*e).error(), AuthenticationFailed());
  QSAPI_EXPECT_OK(p.responder->Open(*e, B("aad-1")));  // the failures changed no state
}

// The nonce construction, checked with the raw AEAD and the epoch keys: prefix XOR seq, header as AAD.
TEST_P(BothSuites, NonceIsPrefixXorSequenceAndHeaderIsAad) {
  ChannelPair p = MakePair(GetParam());
  auto keys = DeriveEpochKeys(TestEpochSecret(), GetParam(), TestSessionId(), 0);
  QSAPI_ASSERT_OK(keys);
  auto aead = crypto::Aead::New(GetParam() == AeadSuite::kAes256Gcm ? crypto::AeadAlgorithm::kAes256Gcm
                                                                    : crypto::AeadAlgorithm::kXChaCha20Poly1305,
                                SymmetricKey(keys->initiator_key.Clone()));
  QSAPI_ASSERT_OK(aead);
  for (std::uint64_t seq = 0; seq < 3; ++seq) {
    auto env = p.initiator->Seal(B("payload"), B("ad"));
    QSAPI_ASSERT_OK(env);
    auto parsed = ParseEnvelope(*env);
    QSAPI_ASSERT_OK(parsed);
    EXPECT_EQ(parsed->header.sequence, seq);
    EXPECT_EQ(parsed->header.epoch, 0U);
    Bytes nonce = keys->initiator_nonce_prefix;
    nonce[nonce.size() - 1] ^= static_cast<std::uint8_t>(seq);
    Bytes ad(parsed->header_bytes.begin(), parsed->header_bytes.end());
    ad.push_back('a');
    ad.push_back('d');
    Bytes pt(7);
    QSAPI_EXPECT_OK(aead->OpenWithNonce(nonce, parsed->ciphertext, ad, pt));
    EXPECT_EQ(pt, B("payload"));
  }
}

TEST(SessionEnvelopeFormatTest, HeaderFieldsAndTextForm) {
  ChannelPair p = MakePair(AeadSuite::kXChaCha20Poly1305);
  auto env = p.initiator->Seal(B("abc"));
  QSAPI_ASSERT_OK(env);
  EXPECT_EQ(qsapi::testing::ToHex(ByteView(*env).first(5)), "5145010200");
  auto parsed = ParseEnvelope(*env);
  QSAPI_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->header.suite, AeadSuite::kXChaCha20Poly1305);
  EXPECT_EQ(Bytes(parsed->header.session_id.begin(), parsed->header.session_id.end()), TestSessionId());
  EXPECT_FALSE(parsed->header.is_stream_chunk());
  EXPECT_EQ(parsed->ciphertext.size(), 3 + kEnvelopeTagSize);
  EXPECT_EQ(EncodeEnvelopeHeader(parsed->header, 3), Bytes(parsed->header_bytes.begin(), parsed->header_bytes.end()));

  const std::string text = EnvelopeToText(*env);
  EXPECT_EQ(text.rfind("qse1:", 0), 0U);
  EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
  auto back = EnvelopeFromText(text);
  QSAPI_ASSERT_OK(back);
  EXPECT_EQ(*back, *env);
  EXPECT_EQ(EnvelopeFromText("qse2:" + text.substr(5)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(EnvelopeFromText(text + "=").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(EnvelopeFromText("qse1:" + std::string(2'000'000, 'A')).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(EnvelopeFromText("qse1:abc+").error().code(), ErrorCode::kInvalidArgument);
}

TEST(SessionEnvelopeFormatTest, StrictParserErrors) {
  ChannelPair p = MakePair();
  auto env = p.initiator->Seal(B("abcdef"));
  QSAPI_ASSERT_OK(env);
  auto expect_invalid = [](const Bytes& e, const std::string& needle, std::size_t max = kDefaultMaxEnvelopePayload) {
    auto r = ParseEnvelope(e, max);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
  };
  expect_invalid(Bytes(), "too short");
  expect_invalid(Bytes(env->begin(), env->begin() + 36), "too short");
  Bytes e = *env;
  e[0] = 'X';
  expect_invalid(e, "magic");
  e = *env;
  e[2] = 2;
  expect_invalid(e, "version");
  e = *env;
  e[3] = 3;
  expect_invalid(e, "suite");
  e = *env;
  e[4] = 0x04;
  expect_invalid(e, "flags");
  e = *env;
  e[4] = kFlagFinalChunk;
  expect_invalid(e, "final-chunk flag without");
  e = *env;
  e.pop_back();
  expect_invalid(e, "length mismatch");
  e = *env;
  e.push_back(0);
  expect_invalid(e, "length mismatch");
  e = *env;
  e[33] = 0x7f;  // ct_len far over the bound
  expect_invalid(e, "out of bounds");
  e = *env;
  e[36] = 15;  // ct_len below the tag size
  e[35] = 0;
  expect_invalid(e, "out of bounds");
  expect_invalid(*env, "out of bounds", 5);  // a 6-byte payload over a 5-byte bound
  e = *env;
  e[4] = kFlagStreamChunk;  // stream flag: the stream fields are missing
  expect_invalid(Bytes(e.begin(), e.begin() + 40), "too short for its stream fields");
  EXPECT_EQ(ParseEnvelope(*env, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseEnvelope(*env, kMaxEnvelopePayloadLimit + 1).error().code(), ErrorCode::kInvalidArgument);
}

// Every single-byte change of an envelope is refused, and none of them changes the receiver's state.
TEST_P(BothSuites, EveryTamperedByteIsRejected) {
  ChannelConfig config;
  config.max_failed_decryptions = 100000;
  ChannelPair p = MakePair(GetParam(), config);
  auto env = p.initiator->Seal(B("tamper with me"), B("ad"));
  QSAPI_ASSERT_OK(env);
  for (std::size_t i = 0; i < env->size(); ++i) {
    for (std::uint8_t bit : {0x01, 0x80}) {
      Bytes t = *env;
      t[i] ^= bit;
      auto r = p.responder->Open(t, B("ad"));
      ASSERT_FALSE(r.ok()) << "byte " << i;
      if (i >= 37) {
        EXPECT_EQ(r.error(), AuthenticationFailed()) << "byte " << i;
      }
    }
  }
  const auto stats = p.responder->stats();
  EXPECT_EQ(stats.messages_opened, 0U);
  EXPECT_EQ(stats.epoch, 0U);
  EXPECT_EQ(p.responder->receive_epochs(), std::vector<std::uint32_t>{0});
  auto ok = p.responder->Open(*env, B("ad"));
  QSAPI_ASSERT_OK(ok);
  EXPECT_EQ(*ok, B("tamper with me"));
}

TEST(SessionChannelTest, ReplayIsRejected) {
  ChannelPair p = MakePair();
  auto env = p.initiator->Seal(B("once"));
  QSAPI_ASSERT_OK(env);
  QSAPI_ASSERT_OK(p.responder->Open(*env));
  auto again = p.responder->Open(*env);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.error().message().find("replayed"), std::string::npos);
  EXPECT_EQ(p.responder->stats().replays_rejected, 1U);
  EXPECT_EQ(p.responder->stats().failed_decryptions, 0U);
}

// Independent envelopes may arrive out of order within the window (queues reorder); each opens
// once. Anything older than the window is refused.
TEST(SessionChannelTest, ReorderWithinWindowOpensOnceAndOutOfWindowIsRefused) {
  ChannelPair p = MakePair();
  std::vector<Bytes> envs;
  for (int i = 0; i < 1100; ++i) {
    auto e = p.initiator->Seal(B("m"));
    QSAPI_ASSERT_OK(e);
    envs.push_back(std::move(*e));
  }
  QSAPI_ASSERT_OK(p.responder->Open(envs[1099]));
  QSAPI_ASSERT_OK(p.responder->Open(envs[1099 - 1023]));  // the oldest still in the window
  EXPECT_EQ(p.responder->Open(envs[1099 - 1023]).error().code(), ErrorCode::kFailedPrecondition);
  auto old = p.responder->Open(envs[1099 - 1024]);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(old.error().message().find("below the replay window"), std::string::npos);
  EXPECT_FALSE(p.responder->Open(envs[0]).ok());
  for (int i = 1098; i > 1099 - 1023; --i) QSAPI_ASSERT_OK(p.responder->Open(envs[static_cast<std::size_t>(i)]));
}

TEST(SessionChannelTest, TruncatedEnvelopeIsRejected) {
  ChannelPair p = MakePair();
  auto env = p.initiator->Seal(B("some payload"));
  QSAPI_ASSERT_OK(env);
  for (std::size_t cut = 1; cut < env->size(); ++cut) {
    auto r = p.responder->Open(ByteView(*env).first(env->size() - cut));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
  // A truncation that also rewrites ct_len fails authentication.
  Bytes t(env->begin(), env->end() - 1);
  t[36] = static_cast<std::uint8_t>(t[36] - 1);
  EXPECT_EQ(p.responder->Open(t).error(), AuthenticationFailed());
}

TEST(SessionChannelTest, WrongSuiteAndWrongSessionAreRefused) {
  ChannelPair aes = MakePair(AeadSuite::kAes256Gcm);
  ChannelPair xchacha = MakePair(AeadSuite::kXChaCha20Poly1305);
  auto env = aes.initiator->Seal(B("m"));
  QSAPI_ASSERT_OK(env);
  auto r = xchacha.responder->Open(*env);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("does not match the session's XChaCha20-Poly1305"), std::string::npos);
  Bytes relabelled = *env;
  relabelled[3] = static_cast<std::uint8_t>(AeadSuite::kXChaCha20Poly1305);  // re-suiting fails too
  EXPECT_FALSE(xchacha.responder->Open(relabelled).ok());
  EXPECT_FALSE(aes.responder->Open(relabelled).ok());

  auto other = SessionChannel::New(SessionRole::kResponder, AeadSuite::kAes256Gcm, Bytes(kSessionIdSize, 0x01),
                                   TestEpochSecret());
  QSAPI_ASSERT_OK(other);
  auto o = other->Open(*env);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message().find("another session"), std::string::npos);

  EXPECT_EQ(SessionChannel::New(SessionRole::kInitiator, static_cast<AeadSuite>(7), TestSessionId(), TestEpochSecret())
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      SessionChannel::New(SessionRole::kInitiator, AeadSuite::kAes256Gcm, Bytes(8), TestEpochSecret()).error().code(),
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      SessionChannel::New(SessionRole::kInitiator, AeadSuite::kAes256Gcm, TestSessionId(), EpochSecret(SecretBytes(32)))
          .error()
          .code(),
      ErrorCode::kInvalidArgument);
}

TEST(SessionChannelTest, SizeBoundIsEnforced) {
  ChannelConfig config;
  config.max_payload = 1000;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  QSAPI_ASSERT_OK(p.initiator->Seal(Bytes(1000)));
  auto big = p.initiator->Seal(Bytes(1001));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kResourceExhausted);
  // A peer with a larger bound sends 1001 bytes: refused by the parser before any decryption.
  ChannelConfig large;
  large.max_payload = 4096;
  auto sender =
      SessionChannel::New(SessionRole::kInitiator, AeadSuite::kAes256Gcm, TestSessionId(), TestEpochSecret(), large);
  QSAPI_ASSERT_OK(sender);
  auto env = sender->Seal(Bytes(1001));
  QSAPI_ASSERT_OK(env);
  auto r = p.responder->Open(*env);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(p.responder->stats().failed_decryptions, 0U);
  // Default: 1 MiB.
  ChannelPair d = MakePair();
  EXPECT_TRUE(d.initiator->Seal(Bytes(kDefaultMaxEnvelopePayload)).ok());
  EXPECT_FALSE(d.initiator->Seal(Bytes(kDefaultMaxEnvelopePayload + 1)).ok());
  config.max_payload = kMaxEnvelopePayloadLimit + 1;
  EXPECT_FALSE(
      SessionChannel::New(SessionRole::kInitiator, AeadSuite::kAes256Gcm, TestSessionId(), TestEpochSecret(), config)
          .ok());
}

TEST(SessionChannelTest, FailedDecryptionsTearTheChannelDown) {
  ChannelConfig config;
  config.max_failed_decryptions = 5;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  auto good = p.initiator->Seal(B("good"));
  QSAPI_ASSERT_OK(good);
  for (int i = 0; i < 5; ++i) {
    auto bad = p.initiator->Seal(B("bad"));
    QSAPI_ASSERT_OK(bad);
    bad->back() ^= 1;
    EXPECT_EQ(p.responder->Open(*bad).error(), AuthenticationFailed());
  }
  EXPECT_TRUE(p.responder->stats().closed);
  EXPECT_TRUE(p.responder->receive_epochs().empty());
  auto r = p.responder->Open(*good);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("closed"), std::string::npos);
  EXPECT_EQ(p.responder->Seal(B("x")).error().code(), ErrorCode::kFailedPrecondition);
}

TEST(SessionChannelTest, RotationByMessagesBytesAndTime) {
  ChannelConfig config;
  config.rotation.max_messages = 3;
  config.rotation.max_bytes = 1 << 20;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  for (std::uint32_t i = 0; i < 9; ++i) {
    auto e = p.initiator->Seal(B("m"));
    QSAPI_ASSERT_OK(e);
    auto parsed = ParseEnvelope(*e);
    QSAPI_ASSERT_OK(parsed);
    EXPECT_EQ(parsed->header.epoch, i / 3);
    EXPECT_EQ(parsed->header.sequence, i % 3);
    QSAPI_ASSERT_OK(p.responder->Open(*e));
  }
  EXPECT_EQ(p.initiator->stats().rotations, 2U);
  EXPECT_EQ(p.responder->stats().epoch, 2U);

  ChannelConfig bytes;
  bytes.max_payload = 100;
  bytes.rotation.max_bytes = 250;
  ChannelPair b = MakePair(AeadSuite::kAes256Gcm, bytes);
  std::vector<std::uint32_t> epochs;
  for (int i = 0; i < 5; ++i) {
    auto e = b.initiator->Seal(Bytes(100));
    QSAPI_ASSERT_OK(e);
    epochs.push_back(ParseEnvelope(*e)->header.epoch);
  }
  EXPECT_EQ(epochs, (std::vector<std::uint32_t>{0, 0, 1, 1, 2}));

  ChannelPair t = MakePair();
  auto e0 = t.initiator->Seal(B("m"));
  t.clock.Advance(std::chrono::seconds(119));
  auto e1 = t.initiator->Seal(B("m"));
  t.clock.Advance(std::chrono::seconds(1));
  auto e2 = t.initiator->Seal(B("m"));
  QSAPI_ASSERT_OK(e2);
  EXPECT_EQ(ParseEnvelope(*e0)->header.epoch, 0U);
  EXPECT_EQ(ParseEnvelope(*e1)->header.epoch, 0U);
  EXPECT_EQ(ParseEnvelope(*e2)->header.epoch, 1U);
}

// 100k messages both ways with a small N: every one opens, epochs advance on both sides in step,
// and no (epoch, sequence) pair repeats in either direction.
TEST(SessionChannelTest, RotationUnderSustainedTraffic) {
  ChannelConfig config;
  config.rotation.max_messages = 97;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  std::set<std::pair<std::uint32_t, std::uint64_t>> seen_i;
  std::set<std::pair<std::uint32_t, std::uint64_t>> seen_r;
  Bytes msg(64, 0x42);
  for (int i = 0; i < 50000; ++i) {
    msg[0] = static_cast<std::uint8_t>(i);
    auto a = p.initiator->Seal(msg);
    ASSERT_TRUE(a.ok()) << i;
    auto h = ParseEnvelope(*a);
    ASSERT_TRUE(seen_i.emplace(h->header.epoch, h->header.sequence).second);
    // Every third message the responder's reply is lost in transit; the other replies are delivered.
    auto ra = p.responder->Open(*a);
    ASSERT_TRUE(ra.ok()) << i << ": " << ra.error().ToString();
    ASSERT_EQ(*ra, msg);
    auto b = p.responder->Seal(msg);
    ASSERT_TRUE(b.ok()) << i;
    auto hb = ParseEnvelope(*b);
    ASSERT_TRUE(seen_r.emplace(hb->header.epoch, hb->header.sequence).second);
    if (i % 3 != 0) {
      auto rb = p.initiator->Open(*b);
      ASSERT_TRUE(rb.ok()) << i << ": " << rb.error().ToString();
    }
  }
  const auto si = p.initiator->stats();
  const auto sr = p.responder->stats();
  EXPECT_EQ(si.messages_sealed + sr.messages_sealed, 100000U);
  EXPECT_GT(si.epoch, 50000U / 97 - 1);
  EXPECT_LE(si.epoch, 50000U / 97 * 2);
  EXPECT_EQ(si.epoch, sr.epoch);
  EXPECT_EQ(si.failed_decryptions + sr.failed_decryptions, 0U);
  EXPECT_LE(p.initiator->receive_epochs().size(), 3U);
}

// Grace: after a rotation the old receive key stays while the peer has not moved; once an envelope
// of the new epoch arrives, envelopes of the old one still open for grace_time, then the key is gone.
TEST(SessionChannelTest, GraceWindowThenOldKeysAreGone) {
  ChannelConfig config;
  config.grace_time = std::chrono::seconds(30);
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  // The responder seals three envelopes in epoch 0 that are delayed in transit.
  std::vector<Bytes> delayed;
  for (int i = 0; i < 3; ++i) delayed.push_back(*p.responder->Seal(B("late")));
  // The initiator rotates and sends in epoch 1.
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  auto i1 = p.initiator->Seal(B("epoch one"));
  QSAPI_ASSERT_OK(i1);
  EXPECT_EQ(p.initiator->receive_epochs(), (std::vector<std::uint32_t>{0, 1}));
  // The peer has not moved: epoch 0 envelopes open even long after the rotation.
  p.clock.Advance(std::chrono::minutes(10));
  QSAPI_ASSERT_OK(p.initiator->Open(delayed[0]));
  // The responder sees epoch 1 and follows; its next envelope is epoch 1.
  QSAPI_ASSERT_OK(p.responder->Open(*i1));
  EXPECT_EQ(p.responder->stats().epoch, 1U);
  auto r1 = p.responder->Seal(B("reply"));
  QSAPI_ASSERT_OK(r1);
  EXPECT_EQ(ParseEnvelope(*r1)->header.epoch, 1U);
  QSAPI_ASSERT_OK(p.initiator->Open(*r1));  // grace for epoch 0 begins now
  p.clock.Advance(std::chrono::seconds(29));
  QSAPI_ASSERT_OK(p.initiator->Open(delayed[1]));  // in flight, within grace
  p.clock.Advance(std::chrono::seconds(1));
  auto late = p.initiator->Open(delayed[2]);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(late.error().message().find("retired epoch 0"), std::string::npos);
  EXPECT_EQ(p.initiator->receive_epochs(), std::vector<std::uint32_t>{1});
}

TEST(SessionChannelTest, GraceEndsAfterGraceMessages) {
  ChannelConfig config;
  config.grace_messages = 4;
  ChannelPair p = MakePair(AeadSuite::kXChaCha20Poly1305, config);
  auto old = p.responder->Seal(B("old"));
  QSAPI_ASSERT_OK(old);
  QSAPI_ASSERT_OK(p.responder->Rotate());
  for (int i = 0; i < 3; ++i) QSAPI_ASSERT_OK(p.initiator->Open(*p.responder->Seal(B("new"))));
  EXPECT_EQ(p.initiator->receive_epochs(), (std::vector<std::uint32_t>{0, 1}));
  QSAPI_ASSERT_OK(p.initiator->Open(*p.responder->Seal(B("new"))));
  EXPECT_EQ(p.initiator->receive_epochs(), std::vector<std::uint32_t>{1});
  EXPECT_FALSE(p.initiator->Open(*old).ok());
}

TEST(SessionChannelTest, EpochsAheadAreBounded) {
  ChannelPair p = MakePair();
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  auto two_ahead = p.initiator->Seal(B("2"));
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  auto three_ahead = p.initiator->Seal(B("3"));
  QSAPI_ASSERT_OK(three_ahead);
  auto r = p.responder->Open(*three_ahead);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("ahead"), std::string::npos);
  EXPECT_EQ(p.responder->stats().epoch, 0U);
  QSAPI_ASSERT_OK(p.responder->Open(*two_ahead));
  EXPECT_EQ(p.responder->stats().epoch, 2U);
  // The epoch passed over (1) has a receive key in grace, for envelopes of it still in flight.
  EXPECT_EQ(p.responder->receive_epochs(), (std::vector<std::uint32_t>{0, 1, 2}));
  QSAPI_ASSERT_OK(p.responder->Open(*three_ahead));
  EXPECT_EQ(p.responder->stats().epoch, 3U);
}

// The peer rotates twice; its epoch 1 envelope arrives after its epoch 2 envelope and still opens.
TEST(SessionChannelTest, EnvelopeOfASkippedEpochOpensInGrace) {
  ChannelPair p = MakePair();
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  auto one = p.initiator->Seal(B("one"));
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  auto two = p.initiator->Seal(B("two"));
  QSAPI_ASSERT_OK(one);
  QSAPI_ASSERT_OK(two);
  QSAPI_ASSERT_OK(p.responder->Open(*two));
  auto late = p.responder->Open(*one);
  QSAPI_ASSERT_OK(late);
  EXPECT_EQ(*late, B("one"));
  p.clock.Advance(std::chrono::seconds(31));
  EXPECT_EQ(p.responder->receive_epochs(), std::vector<std::uint32_t>{2});
}

// A forged envelope that claims a newer epoch derives a candidate but does not move the channel.
TEST(SessionChannelTest, ForgedNewerEpochDoesNotAdvance) {
  ChannelPair p = MakePair();
  auto env = p.initiator->Seal(B("m"));
  QSAPI_ASSERT_OK(env);
  Bytes forged = *env;
  forged[24] = 1;  // epoch 1
  EXPECT_EQ(p.responder->Open(forged).error(), AuthenticationFailed());
  EXPECT_EQ(p.responder->stats().epoch, 0U);
  EXPECT_EQ(p.responder->receive_epochs(), std::vector<std::uint32_t>{0});
  QSAPI_ASSERT_OK(p.responder->Open(*env));
}

// Fresh material enters a session one way only: the proposer's BeginFreshKey / CompleteFreshKey
// and the answerer's BindFreshKey, for the same epoch. Both must hold the same material.
TEST(SessionChannelTest, RatchetMixesFreshQkdMaterial) {
  ChannelPair p = MakePair();
  const Bytes qkd(32, 0x77);
  auto min_epoch = p.initiator->BeginFreshKey();
  QSAPI_ASSERT_OK(min_epoch);
  auto bound = p.responder->BindFreshKey(*min_epoch, qkd);
  QSAPI_ASSERT_OK(bound);
  EXPECT_EQ(*bound, 1U);
  QSAPI_ASSERT_OK(p.initiator->CompleteFreshKey(*bound, qkd));
  auto e = p.initiator->Seal(B("mixed"));
  QSAPI_ASSERT_OK(e);
  QSAPI_ASSERT_OK(p.responder->Open(*e));
  EXPECT_EQ(p.responder->stats().epoch, 1U);
  EXPECT_EQ(p.initiator->stats().fresh_key_epochs, 1U);
  EXPECT_EQ(p.responder->stats().fresh_key_epochs, 1U);

  // Mismatched material: the new epoch's keys differ and the envelope fails.
  ChannelPair m = MakePair();
  QSAPI_ASSERT_OK(m.initiator->BeginFreshKey());
  QSAPI_ASSERT_OK(m.responder->BindFreshKey(1, Bytes(32, 0x78)));
  QSAPI_ASSERT_OK(m.initiator->CompleteFreshKey(1, qkd));
  EXPECT_EQ(m.responder->Open(*m.initiator->Seal(B("x"))).error(), AuthenticationFailed());
  // Material on one side only (the other rotated by the ratchet alone): also a failure.
  ChannelPair o = MakePair();
  QSAPI_ASSERT_OK(o.initiator->BeginFreshKey());
  QSAPI_ASSERT_OK(o.initiator->CompleteFreshKey(1, qkd));
  QSAPI_ASSERT_OK(o.responder->Rotate());
  EXPECT_EQ(o.responder->Open(*o.initiator->Seal(B("x"))).error(), AuthenticationFailed());

  // Sizes are checked before anything changes.
  EXPECT_EQ(p.responder->BindFreshKey(2, Bytes(16)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(p.responder->BindFreshKey(2, Bytes(65)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(p.responder->stats().epoch, 1U);
  QSAPI_ASSERT_OK(p.initiator->BeginFreshKey());
  EXPECT_EQ(p.initiator->CompleteFreshKey(2, Bytes(16)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(p.initiator->stats().epoch, 1U);
  p.initiator->CancelFreshKey();
}

// The fresh-key agreement: the proposer holds its epoch, the answerer binds the key to the first
// epoch past both sides and enters it, the proposer enters the same epoch with the same key.
TEST(SessionChannelTest, FreshKeyAgreementBindsBothSidesToOneEpoch) {
  ChannelConfig config;
  config.rotation.max_messages = 4;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  const Bytes qkd(32, 0x5a);
  // The responder raced ahead by the ratchet before the proposal arrived: it sealed in epoch 2.
  QSAPI_ASSERT_OK(p.responder->Rotate());
  QSAPI_ASSERT_OK(p.responder->Rotate());
  auto early = p.responder->Seal(B("sealed in epoch 2 before the proposal"));
  QSAPI_ASSERT_OK(early);

  auto min_epoch = p.initiator->BeginFreshKey();
  QSAPI_ASSERT_OK(min_epoch);
  EXPECT_EQ(*min_epoch, 1U);
  EXPECT_TRUE(p.initiator->fresh_key_pending());
  EXPECT_EQ(p.initiator->BeginFreshKey().error().code(), ErrorCode::kFailedPrecondition);  // one at a time
  EXPECT_EQ(p.initiator->Rotate().error().code(), ErrorCode::kFailedPrecondition);
  // During the hold the proposer keeps its epoch past the policy's limits...
  for (int i = 0; i < 6; ++i) {
    auto e = p.initiator->Seal(B("held"));
    QSAPI_ASSERT_OK(e);
    EXPECT_EQ(ParseEnvelope(*e)->header.epoch, 0U);
    QSAPI_ASSERT_OK(p.responder->Open(*e));
  }
  EXPECT_TRUE(p.initiator->RotationDue());
  // ...and still follows the peer's ratchet-only epochs sealed before the peer saw the proposal.
  QSAPI_ASSERT_OK(p.initiator->Open(*early));
  EXPECT_EQ(p.initiator->epoch(), 2U);

  auto bound = p.responder->BindFreshKey(*min_epoch, qkd);
  QSAPI_ASSERT_OK(bound);
  EXPECT_EQ(*bound, 3U);  // past the responder's own epoch 2
  EXPECT_EQ(p.responder->stats().fresh_key_epochs, 1U);
  auto after = p.responder->Seal(B("sealed in epoch 3 with the fresh key"));
  QSAPI_ASSERT_OK(after);
  // A forged or early newer-epoch envelope during the hold: UNAVAILABLE, not counted as a failure.
  EXPECT_EQ(p.initiator->Open(*after).error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(p.initiator->stats().failed_decryptions, 0U);

  EXPECT_EQ(p.initiator->CompleteFreshKey(3, Bytes(8)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(p.initiator->CompleteFreshKey(2, qkd).error().code(), ErrorCode::kFailedPrecondition);  // not ahead
  QSAPI_ASSERT_OK(p.initiator->CompleteFreshKey(*bound, qkd));
  EXPECT_FALSE(p.initiator->fresh_key_pending());
  EXPECT_EQ(p.initiator->epoch(), 3U);
  EXPECT_EQ(p.initiator->stats().fresh_key_epochs, 1U);
  auto opened = p.initiator->Open(*after);
  QSAPI_ASSERT_OK(opened);
  EXPECT_EQ(*opened, B("sealed in epoch 3 with the fresh key"));
  auto reply = p.initiator->Seal(B("reply in epoch 3"));
  QSAPI_ASSERT_OK(reply);
  EXPECT_EQ(ParseEnvelope(*reply)->header.epoch, 3U);
  QSAPI_ASSERT_OK(p.responder->Open(*reply));
  EXPECT_EQ(p.initiator->CompleteFreshKey(4, qkd).error().code(), ErrorCode::kFailedPrecondition);  // no hold

  // Different keys on the two sides: the peer's confirmation does not open, nothing changes and
  // the hold stays; without a confirmation the bound epoch's envelopes do not open.
  ChannelPair m = MakePair();
  auto m_min = m.initiator->BeginFreshKey();
  QSAPI_ASSERT_OK(m_min);
  auto m_bound = m.responder->BindFreshKey(*m_min, Bytes(32, 0x01));
  QSAPI_ASSERT_OK(m_bound);
  auto confirm = m.responder->Seal({}, B("offer bytes"));
  QSAPI_ASSERT_OK(confirm);
  EXPECT_EQ(m.initiator->CompleteFreshKey(*m_bound, Bytes(32, 0x02), *confirm, B("offer bytes")).error(),
            AuthenticationFailed());
  EXPECT_EQ(m.initiator->epoch(), 0U);
  EXPECT_TRUE(m.initiator->fresh_key_pending());
  // The right key but the wrong associated data (another offer): also refused.
  EXPECT_EQ(m.initiator->CompleteFreshKey(*m_bound, Bytes(32, 0x01), *confirm, B("other offer")).error(),
            AuthenticationFailed());
  QSAPI_ASSERT_OK(m.initiator->CompleteFreshKey(*m_bound, Bytes(32, 0x01), *confirm, B("offer bytes")));
  EXPECT_EQ(m.initiator->epoch(), 1U);
  EXPECT_EQ(m.initiator->Open(*confirm).error().code(), ErrorCode::kFailedPrecondition);  // marked received
  QSAPI_ASSERT_OK(m.initiator->Open(*m.responder->Seal(B("after the confirmation"))));
  ChannelPair u = MakePair();
  QSAPI_ASSERT_OK(u.initiator->BeginFreshKey());
  QSAPI_ASSERT_OK(u.responder->BindFreshKey(1, Bytes(32, 0x01)));
  QSAPI_ASSERT_OK(u.initiator->CompleteFreshKey(1, Bytes(32, 0x02)));
  EXPECT_EQ(u.initiator->Open(*u.responder->Seal(B("x"))).error(), AuthenticationFailed());

  // Cancel ends the hold with nothing bound; a bind too far ahead is refused and changes nothing.
  ChannelPair c = MakePair();
  QSAPI_ASSERT_OK(c.initiator->BeginFreshKey());
  c.initiator->CancelFreshKey();
  EXPECT_FALSE(c.initiator->fresh_key_pending());
  QSAPI_ASSERT_OK(c.initiator->Rotate());
  EXPECT_EQ(c.responder->BindFreshKey(100, qkd).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(c.responder->epoch(), 0U);
  QSAPI_ASSERT_OK(c.responder->Open(*c.initiator->Seal(B("still in step"))));
  // A binding the proposer could not follow (this side more than max_epochs_ahead past min_epoch)
  // is refused and changes nothing.
  ChannelPair far = MakePair();
  for (int i = 0; i < 3; ++i) QSAPI_ASSERT_OK(far.responder->Rotate());
  auto too_far = far.responder->BindFreshKey(1, qkd);
  ASSERT_FALSE(too_far.ok());
  EXPECT_TRUE(too_far.error().message().find("could not follow") != std::string::npos) << too_far.error().ToString();
  EXPECT_EQ(far.responder->epoch(), 3U);
  QSAPI_ASSERT_OK(far.responder->BindFreshKey(2, qkd));  // 3 - 2 <= 2: fine, enters 4
  EXPECT_EQ(far.responder->epoch(), 4U);
  // A confirmation that is not an empty envelope of the bound epoch: INVALID_ARGUMENT, not "keys differ".
  ChannelPair bad = MakePair();
  QSAPI_ASSERT_OK(bad.initiator->BeginFreshKey());
  QSAPI_ASSERT_OK(bad.responder->BindFreshKey(1, qkd));
  auto not_empty = bad.responder->Seal(B("payload"));
  EXPECT_EQ(bad.initiator->CompleteFreshKey(1, qkd, *not_empty).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.initiator->CompleteFreshKey(1, qkd, B("garbage")).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(bad.initiator->fresh_key_pending());
  // The answering side cannot bind while it is itself proposing.
  QSAPI_ASSERT_OK(c.responder->BeginFreshKey());
  EXPECT_EQ(c.responder->BindFreshKey(2, qkd).error().code(), ErrorCode::kFailedPrecondition);
}

TEST(SessionChannelTest, AReestablishmentRestartsTheSessionAge) {
  ChannelConfig config;
  config.max_session_age = std::chrono::seconds(10);
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  p.clock.Advance(std::chrono::seconds(9));
  auto min_epoch = p.initiator->BeginFreshKey();
  QSAPI_ASSERT_OK(min_epoch);
  const Bytes secret(kEpochSecretSize, 0x42);  // a new establishment's epoch 0 secret
  auto bound = p.responder->BindFreshKey(*min_epoch, secret, SessionChannel::FreshKeyKind::kReestablishment);
  QSAPI_ASSERT_OK(bound);
  auto confirm = p.responder->Seal({}, B("context"));
  QSAPI_ASSERT_OK(confirm);
  QSAPI_ASSERT_OK(p.initiator->CompleteFreshKey(*bound, secret, *confirm, B("context"),
                                                SessionChannel::FreshKeyKind::kReestablishment));
  EXPECT_EQ(p.initiator->stats().reestablishments, 1U);
  EXPECT_EQ(p.initiator->stats().fresh_key_epochs, 0U);
  EXPECT_EQ(p.responder->stats().reestablishments, 1U);
  p.clock.Advance(std::chrono::seconds(5));  // 14 s after creation, 5 s after the re-establishment
  QSAPI_ASSERT_OK(p.responder->Open(*p.initiator->Seal(B("still young"))));
  p.clock.Advance(std::chrono::seconds(6));
  EXPECT_EQ(p.initiator->Seal(B("too old")).error().code(), ErrorCode::kFailedPrecondition);
}

TEST(SessionChannelTest, StrictOrderingRefusesReorderedEnvelopes) {
  ChannelConfig config;
  config.ordering = Ordering::kStrict;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  std::vector<Bytes> sent;
  for (int i = 0; i < 4; ++i) sent.push_back(*p.initiator->Seal(B("m" + std::to_string(i))));
  QSAPI_ASSERT_OK(p.responder->Open(sent[0]));
  QSAPI_ASSERT_OK(p.responder->Open(sent[2]));  // a gap is allowed (a lost message)...
  auto back = p.responder->Open(sent[1]);       // ...going back is not
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(back.error().message().find("out of order"), std::string::npos) << back.error().message();
  EXPECT_EQ(p.responder->stats().reordered_rejected, 1U);
  EXPECT_EQ(p.responder->Open(sent[2]).error().code(), ErrorCode::kFailedPrecondition);  // replay
  EXPECT_EQ(p.responder->stats().replays_rejected, 1U);
  QSAPI_ASSERT_OK(p.responder->Open(sent[3]));
  // Across epochs: an envelope of an older epoch after a newer one opened is refused.
  auto old_epoch = p.initiator->Seal(B("epoch 0"));
  QSAPI_ASSERT_OK(p.initiator->Rotate());
  auto new_epoch = p.initiator->Seal(B("epoch 1"));
  QSAPI_ASSERT_OK(p.responder->Open(*new_epoch));
  EXPECT_EQ(p.responder->Open(*old_epoch).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(p.responder->stats().reordered_rejected, 2U);
  // The default (kWindow) opens the same older-epoch envelope in grace.
  ChannelPair w = MakePair();
  auto w_old = w.initiator->Seal(B("epoch 0"));
  QSAPI_ASSERT_OK(w.initiator->Rotate());
  QSAPI_ASSERT_OK(w.responder->Open(*w.initiator->Seal(B("epoch 1"))));
  QSAPI_EXPECT_OK(w.responder->Open(*w_old));
}

// Zeroisation where it can be observed: secret memory held by the channel (the chain secret,
// fresh QKD material, the XChaCha keys) is released (and so wiped) when used up or on Close.
TEST(SessionChannelTest, SecretsAreReleasedWhenUsedOrClosed) {
  ChannelPair p = MakePair(AeadSuite::kXChaCha20Poly1305);
  const std::size_t before = GetSecureMemoryStats().bytes_in_use;
  QSAPI_ASSERT_OK(p.initiator->BeginFreshKey());
  QSAPI_ASSERT_OK(p.initiator->CompleteFreshKey(1, Bytes(64, 0x11)));  // no copy of the material stays
  // epoch 0's receive key stays (grace): 32 bytes more than before, nothing of the 64 of material
  EXPECT_LE(GetSecureMemoryStats().bytes_in_use, before + 32);
  const std::size_t held = GetSecureMemoryStats().bytes_in_use;
  p.initiator->Close();
  // chain secret (48) + send key (32) + two receive keys (2 x 32) released
  EXPECT_LE(GetSecureMemoryStats().bytes_in_use + 48 + 32 + 64, held);
  EXPECT_TRUE(p.initiator->stats().closed);
}

TEST(SessionChannelTest, SessionAgeForcesReestablishment) {
  ChannelPair p = MakePair();
  QSAPI_ASSERT_OK(p.initiator->Seal(B("m")));
  p.clock.Advance(std::chrono::hours(24));
  auto r = p.initiator->Seal(B("m"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("establish a new session"), std::string::npos);
}

TEST(SessionChannelTest, SealingIsDeterministicForTheSameSecret) {
  ChannelPair a = MakePair();
  ChannelPair b = MakePair();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*a.initiator->Seal(B("same"), B("ad")), *b.initiator->Seal(B("same"), B("ad")));
}

TEST(SessionEnvelopeStreamTest, ChunksRoundTripAndEndWithFinal) {
  ChannelConfig config;
  config.max_payload = 1024;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  EnvelopeStreamWriter w(*p.initiator, B("file.bin"));
  EnvelopeStreamReader r(*p.responder, B("file.bin"));
  Bytes all;
  for (int i = 0; i < 10; ++i) {
    Bytes chunk(1024, static_cast<std::uint8_t>(i));
    auto e = w.Write(chunk);
    QSAPI_ASSERT_OK(e);
    auto parsed = ParseEnvelope(*e, 1024);
    QSAPI_ASSERT_OK(parsed);
    EXPECT_EQ(parsed->header.chunk_index, static_cast<std::uint32_t>(i));
    EXPECT_EQ(parsed->header.stream_id, w.stream_id());
    EXPECT_EQ(e->size(), kStreamEnvelopeHeaderSize + 1024 + kEnvelopeTagSize);
    auto pt = r.Read(*e);
    QSAPI_ASSERT_OK(pt);
    all.insert(all.end(), pt->begin(), pt->end());
    EXPECT_FALSE(r.Finish().ok());
  }
  auto last = w.Finish(B("end"));
  QSAPI_ASSERT_OK(last);
  EXPECT_TRUE(ParseEnvelope(*last, 1024)->header.is_final_chunk());
  QSAPI_ASSERT_OK(r.Read(*last));
  QSAPI_EXPECT_OK(r.Finish());
  EXPECT_EQ(all.size(), 10240U);
  EXPECT_EQ(w.Write(B("more")).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(r.Read(*last).error().code(), ErrorCode::kFailedPrecondition);
  // A second writer gets a new stream id.
  EnvelopeStreamWriter w2(*p.initiator);
  EXPECT_NE(w2.stream_id(), w.stream_id());
}

TEST(SessionEnvelopeStreamTest, ReorderedTruncatedAndForeignChunksAreDetected) {
  ChannelPair p = MakePair();
  EnvelopeStreamWriter w(*p.initiator);
  std::vector<Bytes> chunks;
  for (int i = 0; i < 4; ++i) chunks.push_back(*w.Write(Bytes(100, static_cast<std::uint8_t>(i))));
  chunks.push_back(*w.Finish(Bytes(10)));

  {  // reordered
    EnvelopeStreamReader r(*p.responder);
    QSAPI_ASSERT_OK(r.Read(chunks[0]));
    auto bad = r.Read(chunks[2]);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(bad.error().message().find("reordered"), std::string::npos);
    QSAPI_ASSERT_OK(r.Read(chunks[1]));  // the refusal touched nothing
  }
  {  // starts in the middle
    ChannelPair q = MakePair();
    EnvelopeStreamWriter wq(*q.initiator);
    QSAPI_ASSERT_OK(wq.Write(B("a")));
    auto second = wq.Write(B("b"));
    EnvelopeStreamReader r(*q.responder);
    EXPECT_EQ(r.Read(*second).error().code(), ErrorCode::kFailedPrecondition);
  }
  {  // truncated: the final chunk never arrives
    ChannelPair q = MakePair();
    EnvelopeStreamWriter wq(*q.initiator);
    EnvelopeStreamReader r(*q.responder);
    for (int i = 0; i < 3; ++i) QSAPI_ASSERT_OK(r.Read(*wq.Write(B("chunk"))));
    auto st = r.Finish();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), ErrorCode::kDataLoss);
  }
  {  // a non-final chunk relabelled final fails authentication
    ChannelPair q = MakePair();
    EnvelopeStreamWriter wq(*q.initiator);
    Bytes c = *wq.Write(B("chunk"));
    c[4] |= kFlagFinalChunk;
    EnvelopeStreamReader r(*q.responder);
    EXPECT_EQ(r.Read(c).error(), AuthenticationFailed());
    EXPECT_FALSE(r.finished());
  }
  {  // a chunk of another stream
    ChannelPair q = MakePair();
    EnvelopeStreamWriter w1(*q.initiator);
    EnvelopeStreamWriter w2(*q.initiator);
    auto a0 = w1.Write(B("a"));
    auto b0 = w2.Write(B("b"));
    auto b1 = w2.Write(B("b"));
    EnvelopeStreamReader r(*q.responder);
    QSAPI_ASSERT_OK(r.Read(*a0));
    EXPECT_NE(r.Read(*b1).error().message().find("another stream"), std::string::npos);
    QSAPI_ASSERT_OK(EnvelopeStreamReader(*q.responder).Read(*b0));
  }
  // Stream chunks and plain envelopes do not mix.
  EXPECT_EQ(p.responder->Open(chunks[3]).error().code(), ErrorCode::kInvalidArgument);
  EnvelopeStreamReader r(*p.responder);
  EXPECT_EQ(r.Read(*p.initiator->Seal(B("plain"))).error().code(), ErrorCode::kInvalidArgument);
}

TEST(SessionReplayWindowTest, SlidingBitmap) {
  internal::ReplayWindow w;
  using V = internal::ReplayWindow::Verdict;
  EXPECT_EQ(w.Check(0), V::kFresh);
  EXPECT_EQ(w.Check(5000), V::kFresh);
  w.Accept(5);
  EXPECT_EQ(w.Check(5), V::kReplayed);
  EXPECT_EQ(w.Check(0), V::kFresh);
  w.Accept(0);
  EXPECT_EQ(w.Check(0), V::kReplayed);
  w.Accept(1028);  // the window is 5 .. 1028 (1024 wide): 4 falls out, 5 stays remembered
  EXPECT_EQ(w.Check(4), V::kTooOld);
  EXPECT_EQ(w.Check(5), V::kReplayed);
  EXPECT_EQ(w.Check(6), V::kFresh);
  EXPECT_EQ(w.Check(1028), V::kReplayed);
  w.Accept(6);
  w.Accept(1029);  // 5 falls out; its bit (the slot of 1029) must not make 1029's neighbours look replayed
  EXPECT_EQ(w.Check(5), V::kTooOld);
  EXPECT_EQ(w.Check(6), V::kReplayed);
  EXPECT_EQ(w.Check(7), V::kFresh);
  EXPECT_EQ(w.Check(1029), V::kReplayed);
  w.Accept(100000);  // a jump beyond the window clears everything
  EXPECT_EQ(w.Check(100000 - 1023), V::kFresh);
  EXPECT_EQ(w.Check(100000 - 1024), V::kTooOld);
  EXPECT_EQ(w.Check(UINT64_MAX), V::kFresh);
}

}  // namespace
}  // namespace qsapi::session

namespace qsapi::session {
namespace {

TEST(SessionChannelTest, SealToAndOpenToReuseTheCallersBuffer) {
  ChannelPair p = MakePair();
  Bytes env;
  Bytes pt;
  for (int i = 0; i < 3; ++i) {
    const Bytes msg(100 + static_cast<std::size_t>(i), static_cast<std::uint8_t>(i));
    QSAPI_ASSERT_OK(p.initiator->SealTo(msg, {}, env));
    EXPECT_EQ(env.size(), kEnvelopeHeaderSize + msg.size() + kEnvelopeTagSize);
    QSAPI_ASSERT_OK(p.responder->OpenTo(env, {}, pt));
    EXPECT_EQ(pt, msg);
  }
  QSAPI_ASSERT_OK(p.initiator->SealTo(Bytes(10), {}, env));
  env.back() ^= 1;
  auto st = p.responder->OpenTo(env, {}, pt);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(), AuthenticationFailed());
  EXPECT_TRUE(pt.empty());  // no partial plaintext
}

}  // namespace
}  // namespace qsapi::session

namespace qsapi::session {
namespace {

// Two threads seal on one channel (its mutex serialises them): every envelope gets its own
// sequence number, and the peer opens all of them once.
TEST(SessionChannelTest, ConcurrentSealsGetDistinctSequenceNumbers) {
  ChannelConfig config;
  config.rotation.max_messages = 50;
  ChannelPair p = MakePair(AeadSuite::kAes256Gcm, config);
  constexpr int kPerThread = 500;
  std::vector<Bytes> a;
  std::vector<Bytes> b;
  std::thread t1([&] {
    for (int i = 0; i < kPerThread; ++i) a.push_back(*p.initiator->Seal(B("a")));
  });
  std::thread t2([&] {
    for (int i = 0; i < kPerThread; ++i) b.push_back(*p.initiator->Seal(B("b")));
  });
  t1.join();
  t2.join();
  std::set<std::pair<std::uint32_t, std::uint64_t>> ids;
  for (const auto* list : {&a, &b}) {
    for (const Bytes& e : *list) {
      auto h = ParseEnvelope(e);
      QSAPI_ASSERT_OK(h);
      EXPECT_TRUE(ids.emplace(h->header.epoch, h->header.sequence).second);
    }
  }
  EXPECT_EQ(ids.size(), 2U * kPerThread);
  // Opened in epoch order (the receiver follows at most two epochs ahead), every one opens once.
  std::vector<Bytes> all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::sort(all.begin(), all.end(), [](const Bytes& x, const Bytes& y) {
    return std::make_pair(ParseEnvelope(x)->header.epoch, ParseEnvelope(x)->header.sequence) <
           std::make_pair(ParseEnvelope(y)->header.epoch, ParseEnvelope(y)->header.sequence);
  });
  for (const Bytes& e : all) QSAPI_ASSERT_OK(p.responder->Open(e));
  EXPECT_EQ(p.responder->stats().messages_opened, 2U * kPerThread);
}

}  // namespace
}  // namespace qsapi::session
