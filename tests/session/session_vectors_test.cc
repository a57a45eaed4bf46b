// The session key schedule and envelopes against tests/data/session/vectors.json, which
// tests/interop/session_vectors.mjs computes from the protocol text with node:crypto and
// @noble/ciphers (an independent implementation; ctest interop.session_vectors regenerates it).
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "qsapi/crypto/kdf.h"
#include "qsapi/session/envelope.h"
#include "qsapi/session/key_schedule.h"
#include "qsapi/session/peer_session.h"
#include "session/internal/establishment_messages.h"
#include "support/test_support.h"

namespace qsapi::session {
namespace {

using qsapi::testing::Hex;
using qsapi::testing::ToHex;

nlohmann::json LoadVectors() {
  return nlohmann::json::parse(qsapi::testing::ReadFile(qsapi::testing::DataPath("session/vectors.json")));
}

Bytes Ascii(const std::string& s) { return Bytes(s.begin(), s.end()); }

TEST(SessionVectorsTest, FileHasTheExpectedCases) {
  const auto doc = LoadVectors();
  ASSERT_EQ(doc.at("cases").size(), 4U);
}

class SessionVectors : public ::testing::TestWithParam<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Session, SessionVectors, ::testing::Range<std::size_t>(0, 4));

TEST_P(SessionVectors, KeySchedule) {
  const auto c = LoadVectors().at("cases").at(GetParam());
  SCOPED_TRACE(c.at("name").get<std::string>());
  const auto& in = c.at("input");
  const Bytes sid = Hex(in.at("session_id").get<std::string>());
  const Bytes exporter = Hex(in.at("tls_exporter").get<std::string>());
  const Bytes qkd = Hex(in.at("qkd_key").get<std::string>());
  const Bytes qrng_i = Hex(in.at("qrng_initiator").get<std::string>());
  const Bytes qrng_r = Hex(in.at("qrng_responder").get<std::string>());
  const Bytes context_hash = Hex(in.at("context_hash").get<std::string>());
  auto suite = ParseAeadSuite(in.at("suite").get<std::string>());
  QSAPI_ASSERT_OK(suite);

  auto keys = DeriveSessionKeys(KeyScheduleInput{.session_id = sid,
                                                 .suite = *suite,
                                                 .tls_exporter = exporter,
                                                 .qkd_key = qkd,
                                                 .qrng_initiator = qrng_i,
                                                 .qrng_responder = qrng_r,
                                                 .context_hash = context_hash});
  QSAPI_ASSERT_OK(keys);
  std::vector<std::string> source_names;
  for (SourceId id : keys->sources) source_names.emplace_back(SourceIdName(id));
  EXPECT_EQ(source_names, c.at("sources").get<std::vector<std::string>>());
  EXPECT_EQ(ToHex(EncodeSourceList(keys->sources)), c.at("encoded_source_list").get<std::string>());
  EXPECT_EQ(ToHex(keys->epoch_secret.view()), c.at("epoch_secret").get<std::string>());
  EXPECT_EQ(ToHex(keys->confirm_key_initiator.view()), c.at("confirm_key_initiator").get<std::string>());
  EXPECT_EQ(ToHex(keys->confirm_key_responder.view()), c.at("confirm_key_responder").get<std::string>());

  auto mac_i = ConfirmationMac(keys->confirm_key_initiator, context_hash);
  auto mac_r = ConfirmationMac(keys->confirm_key_responder, context_hash);
  QSAPI_ASSERT_OK(mac_i);
  QSAPI_ASSERT_OK(mac_r);
  EXPECT_EQ(ToHex(*mac_i), c.at("confirm_mac_initiator").get<std::string>());
  EXPECT_EQ(ToHex(*mac_r), c.at("confirm_mac_responder").get<std::string>());
  QSAPI_EXPECT_OK(VerifyConfirmationMac(keys->confirm_key_responder, context_hash,
                                        Hex(c.at("confirm_mac_responder").get<std::string>())));

  EpochSecret previous = keys->epoch_secret.Clone();
  for (const auto& e : c.at("epochs")) {
    const auto epoch = e.at("epoch").get<std::uint32_t>();
    SCOPED_TRACE("epoch " + std::to_string(epoch));
    if (epoch > 0) {
      auto next = NextEpochSecret(previous, Hex(e.at("fresh_qkd_key").get<std::string>()), sid, epoch);
      QSAPI_ASSERT_OK(next);
      EXPECT_EQ(ToHex(next->view()), e.at("secret").get<std::string>());
      previous = std::move(*next);
    }
    if (!e.contains("initiator_key")) continue;
    auto ek = DeriveEpochKeys(EpochSecret::CopyFrom(Hex(e.at("secret").get<std::string>())), *suite, sid, epoch);
    QSAPI_ASSERT_OK(ek);
    EXPECT_EQ(ToHex(ek->initiator_key.view()), e.at("initiator_key").get<std::string>());
    EXPECT_EQ(ToHex(ek->responder_key.view()), e.at("responder_key").get<std::string>());
    EXPECT_EQ(ToHex(ek->initiator_nonce_prefix), e.at("initiator_nonce_prefix").get<std::string>());
    EXPECT_EQ(ToHex(ek->responder_nonce_prefix), e.at("responder_nonce_prefix").get<std::string>());
  }
}

// Two channels replay the steps: every sealed envelope must equal the vector byte for byte (the
// nonces are counters, so sealing is deterministic), and the peer must open it.
TEST_P(SessionVectors, Envelopes) {
  const auto c = LoadVectors().at("cases").at(GetParam());
  SCOPED_TRACE(c.at("name").get<std::string>());
  const Bytes sid = Hex(c.at("input").at("session_id").get<std::string>());
  auto suite = ParseAeadSuite(c.at("input").at("suite").get<std::string>());
  QSAPI_ASSERT_OK(suite);
  const Bytes secret = Hex(c.at("epoch_secret").get<std::string>());
  std::map<std::string, SessionChannel> channels;
  for (const SessionRole role : {SessionRole::kInitiator, SessionRole::kResponder}) {
    auto ch = SessionChannel::New(role, *suite, sid, EpochSecret::CopyFrom(secret));
    QSAPI_ASSERT_OK(ch);
    channels.emplace(role == SessionRole::kInitiator ? "initiator" : "responder", std::move(*ch));
  }
  std::map<std::string, std::optional<EnvelopeStreamWriter>> writers;
  std::map<std::string, std::optional<EnvelopeStreamReader>> readers;
  std::size_t seals = 0;
  for (const auto& step : c.at("steps")) {
    const std::string op = step.at("op").get<std::string>();
    const std::string sender = step.at("sender").get<std::string>();
    const std::string receiver = sender == "initiator" ? "responder" : "initiator";
    SessionChannel& from = channels.at(sender);
    SessionChannel& to = channels.at(receiver);
    if (op == "rotate") {
      // An epoch with fresh QKD material is entered as production enters it: the sender proposes
      // (holding its epoch), the receiver binds the material to that epoch, the sender completes.
      const std::uint32_t next = from.epoch() + 1;
      Bytes fresh;
      for (const auto& e : c.at("epochs")) {
        if (e.at("epoch").get<std::uint32_t>() == next && e.contains("fresh_qkd_key")) {
          fresh = Hex(e.at("fresh_qkd_key").get<std::string>());
        }
      }
      if (fresh.empty()) {
        QSAPI_ASSERT_OK(from.Rotate());
        continue;
      }
      auto min_epoch = from.BeginFreshKey();
      QSAPI_ASSERT_OK(min_epoch);
      auto bound = to.BindFreshKey(*min_epoch, fresh);
      QSAPI_ASSERT_OK(bound);
      ASSERT_EQ(*bound, next);
      QSAPI_ASSERT_OK(from.CompleteFreshKey(*bound, fresh));
      continue;
    }
    const Bytes pt = Ascii(step.at("plaintext").get<std::string>());
    const Bytes aad = Ascii(step.at("aad").get<std::string>());
    const std::string want = step.at("envelope").get<std::string>();
    SCOPED_TRACE(op + " by " + sender + ": " + step.at("plaintext").get<std::string>());
    Result<Bytes> env = Error(ErrorCode::kInternal, "unset");
    Result<Bytes> opened = Error(ErrorCode::kInternal, "unset");
    if (op == "seal") {
      env = from.Seal(pt, aad);
      QSAPI_ASSERT_OK(env);
      opened = to.Open(*env, aad);
    } else {
      if (!writers[sender]) writers[sender].emplace(from, aad);
      if (!readers[receiver]) readers[receiver].emplace(to, aad);
      EXPECT_EQ(writers[sender]->stream_id(), step.at("stream_id").get<std::uint64_t>());
      env = op == "stream_write" ? writers[sender]->Write(pt) : writers[sender]->Finish(pt);
      QSAPI_ASSERT_OK(env);
      opened = readers[receiver]->Read(*env);
    }
    EXPECT_EQ(ToHex(*env), want);
    EXPECT_EQ(EnvelopeToText(*env), step.at("text").get<std::string>());
    QSAPI_ASSERT_OK(opened);
    EXPECT_EQ(*opened, pt);
    auto parsed = ParseEnvelope(*env);
    QSAPI_ASSERT_OK(parsed);
    EXPECT_EQ(parsed->header.epoch, step.at("epoch").get<std::uint32_t>());
    EXPECT_EQ(parsed->header.sequence, step.at("sequence").get<std::uint64_t>());
    ++seals;
  }
  EXPECT_EQ(seals, 7U);
  QSAPI_EXPECT_OK(readers["responder"]->Finish());
}

// The fresh-key agreement: the RekeyOffer and RekeyDone bytes and the responder's confirmation
// envelope must equal the independent generator's; the initiator must accept them.
TEST_P(SessionVectors, FreshKeyAgreement) {
  const auto c = LoadVectors().at("cases").at(GetParam());
  SCOPED_TRACE(c.at("name").get<std::string>());
  const auto& v = c.at("fresh_key_agreement");
  const Bytes sid = Hex(c.at("input").at("session_id").get<std::string>());
  auto suite = ParseAeadSuite(c.at("input").at("suite").get<std::string>());
  QSAPI_ASSERT_OK(suite);
  const Bytes secret = Hex(c.at("epoch_secret").get<std::string>());
  const Bytes fresh = Hex(v.at("fresh_qkd_key").get<std::string>());

  internal::RekeyOfferMessage offer;
  std::copy(sid.begin(), sid.end(), offer.session_id.begin());
  offer.min_epoch = v.at("min_epoch").get<std::uint32_t>();
  offer.key_ids = v.at("key_ids").get<std::vector<std::string>>();
  const Bytes offer_bytes = internal::EncodeRekeyOffer(offer);
  EXPECT_EQ(ToHex(offer_bytes), v.at("rekey_offer").get<std::string>());
  Bytes aad(internal::kRekeyConfirmLabel.begin(), internal::kRekeyConfirmLabel.end());
  aad.insert(aad.end(), offer_bytes.begin(), offer_bytes.end());

  auto responder = SessionChannel::New(SessionRole::kResponder, *suite, sid, EpochSecret::CopyFrom(secret));
  QSAPI_ASSERT_OK(responder);
  for (std::uint32_t e = 0; e < v.at("responder_epoch_before").get<std::uint32_t>(); ++e)
    QSAPI_ASSERT_OK(responder->Rotate());
  auto bound = responder->BindFreshKey(offer.min_epoch, fresh);
  QSAPI_ASSERT_OK(bound);
  EXPECT_EQ(*bound, v.at("bound_epoch").get<std::uint32_t>());
  auto confirm = responder->Seal({}, aad);
  QSAPI_ASSERT_OK(confirm);
  EXPECT_EQ(ToHex(*confirm), v.at("confirm_envelope").get<std::string>());
  internal::RekeyDoneMessage done;
  done.session_id = offer.session_id;
  done.epoch = *bound;
  done.confirm_envelope = *confirm;
  EXPECT_EQ(ToHex(internal::EncodeRekeyDone(done)), v.at("rekey_done").get<std::string>());

  auto initiator = SessionChannel::New(SessionRole::kInitiator, *suite, sid, EpochSecret::CopyFrom(secret));
  QSAPI_ASSERT_OK(initiator);
  auto min_epoch = initiator->BeginFreshKey();
  QSAPI_ASSERT_OK(min_epoch);
  EXPECT_EQ(*min_epoch, offer.min_epoch);
  auto parsed = internal::ParseRekeyDone(Hex(v.at("rekey_done").get<std::string>()));
  QSAPI_ASSERT_OK(parsed);
  QSAPI_ASSERT_OK(initiator->CompleteFreshKey(parsed->epoch, fresh, parsed->confirm_envelope, aad));
  EXPECT_EQ(initiator->epoch(), 2U);
  auto reply = initiator->Seal(Ascii("in the fresh-key epoch"));
  QSAPI_ASSERT_OK(reply);
  QSAPI_EXPECT_OK(responder->Open(*reply));
}

// Re-establishment: the Reestablish and Accept bytes, the new key schedule over them, and the
// responder's binding and confirmation must equal the independent generator's.
TEST_P(SessionVectors, Reestablishment) {
  const auto c = LoadVectors().at("cases").at(GetParam());
  SCOPED_TRACE(c.at("name").get<std::string>());
  const auto& v = c.at("reestablishment");
  const Bytes sid = Hex(c.at("input").at("session_id").get<std::string>());
  auto suite = ParseAeadSuite(c.at("input").at("suite").get<std::string>());
  QSAPI_ASSERT_OK(suite);

  internal::InitMessage re;
  std::copy(sid.begin(), sid.end(), re.session_id.begin());
  re.reestablish = true;
  re.min_epoch = v.at("min_epoch").get<std::uint32_t>();
  re.suite = *suite;
  re.qkd_policy = SourcePolicy::kRequire;
  re.qrng_policy = SourcePolicy::kPrefer;
  const Bytes random_i = Hex(v.at("random_initiator").get<std::string>());
  std::copy(random_i.begin(), random_i.end(), re.random.begin());
  re.sources = {SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator};
  re.key_ids = v.at("key_ids").get<std::vector<std::string>>();
  const Bytes re_bytes = internal::EncodeInit(re);
  EXPECT_EQ(ToHex(re_bytes), v.at("reestablish").get<std::string>());
  auto parsed = internal::ParseInit(re_bytes);
  QSAPI_ASSERT_OK(parsed);
  EXPECT_TRUE(parsed->reestablish);

  internal::AcceptMessage accept;
  accept.session_id = re.session_id;
  const Bytes random_r = Hex(v.at("random_responder").get<std::string>());
  std::copy(random_r.begin(), random_r.end(), accept.random.begin());
  accept.sources = {SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator, SourceId::kQrngResponder};
  const Bytes accept_bytes = internal::EncodeAccept(accept);
  EXPECT_EQ(ToHex(accept_bytes), v.at("accept").get<std::string>());
  Bytes transcript = re_bytes;
  transcript.insert(transcript.end(), accept_bytes.begin(), accept_bytes.end());
  auto context_hash = crypto::Hash(crypto::HashAlgorithm::kSha384, transcript);
  QSAPI_ASSERT_OK(context_hash);
  EXPECT_EQ(ToHex(*context_hash), v.at("context_hash").get<std::string>());
  const Bytes exporter = Hex(v.at("tls_exporter").get<std::string>());
  const Bytes qkd = Hex(v.at("qkd_key").get<std::string>());
  auto keys = DeriveSessionKeys({.session_id = sid,
                                 .suite = *suite,
                                 .tls_exporter = exporter,
                                 .qkd_key = qkd,
                                 .qrng_initiator = random_i,
                                 .qrng_responder = random_r,
                                 .context_hash = *context_hash});
  QSAPI_ASSERT_OK(keys);
  EXPECT_EQ(ToHex(keys->epoch_secret.view()), v.at("epoch_secret").get<std::string>());

  Bytes aad(internal::kReestablishConfirmLabel.begin(), internal::kReestablishConfirmLabel.end());
  aad.insert(aad.end(), context_hash->begin(), context_hash->end());
  const Bytes secret = Hex(c.at("epoch_secret").get<std::string>());
  auto responder = SessionChannel::New(SessionRole::kResponder, *suite, sid, EpochSecret::CopyFrom(secret));
  QSAPI_ASSERT_OK(responder);
  for (std::uint32_t e = 0; e < v.at("responder_epoch_before").get<std::uint32_t>(); ++e)
    QSAPI_ASSERT_OK(responder->Rotate());
  auto bound =
      responder->BindFreshKey(re.min_epoch, keys->epoch_secret.view(), SessionChannel::FreshKeyKind::kReestablishment);
  QSAPI_ASSERT_OK(bound);
  EXPECT_EQ(*bound, v.at("bound_epoch").get<std::uint32_t>());
  auto confirm = responder->Seal({}, aad);
  QSAPI_ASSERT_OK(confirm);
  EXPECT_EQ(ToHex(*confirm), v.at("confirm_envelope").get<std::string>());
  internal::RekeyDoneMessage done{.session_id = re.session_id, .epoch = *bound, .confirm_envelope = *confirm};
  EXPECT_EQ(ToHex(internal::EncodeRekeyDone(done)), v.at("rekey_done").get<std::string>());

  auto initiator = SessionChannel::New(SessionRole::kInitiator, *suite, sid, EpochSecret::CopyFrom(secret));
  QSAPI_ASSERT_OK(initiator);
  QSAPI_ASSERT_OK(initiator->BeginFreshKey());
  QSAPI_ASSERT_OK(initiator->CompleteFreshKey(*bound, keys->epoch_secret.view(), *confirm, aad,
                                              SessionChannel::FreshKeyKind::kReestablishment));
  EXPECT_EQ(initiator->stats().reestablishments, 1U);
  QSAPI_EXPECT_OK(responder->Open(*initiator->Seal(Ascii("after the re-establishment"))));
}

}  // namespace
}  // namespace qsapi::session
