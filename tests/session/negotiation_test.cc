// The negotiation step of session establishment on its own (session/internal/negotiation.h):
// every combination of the two sides' QKD policies and of what each side could obtain, without a
// link or a KME. The end-to-end cases over real TLS are in peer_session_test.cc.
#include "session/internal/negotiation.h"

#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

namespace qsapi::session::internal {
namespace {

using Outcome = QkdAttempt::Outcome;
constexpr SourcePolicy kOff = SourcePolicy::kOff;
constexpr SourcePolicy kPrefer = SourcePolicy::kPrefer;
constexpr SourcePolicy kRequire = SourcePolicy::kRequire;
const std::vector<SourceId> kTls{SourceId::kTlsExporter};
const std::vector<SourceId> kTlsQkd{SourceId::kTlsExporter, SourceId::kQkd};

PeerPolicy Qkd(SourcePolicy p) { return PeerPolicy{.qkd = p, .qrng = kOff}; }

QkdAttempt Attempt(Outcome o) {
  switch (o) {
    case Outcome::kObtained: return QkdAttempt::Obtained();
    case Outcome::kNotConfigured: return QkdAttempt::NotConfigured("no QKD link here");
    case Outcome::kFailed: return QkdAttempt::Failed("the KME is down");
    case Outcome::kNotTried: break;
  }
  return {};
}

// The responder's decision for every (responder policy, initiator policy, attempt) with QKD
// offered: what the policy table of docs/PROTOCOL.md says.
TEST(NegotiationTest, TheResponderFollowsThePolicyTableForOfferedQkd) {
  struct Row {
    SourcePolicy responder, initiator;
    Outcome attempt;
    bool refused;
    AbortCode code;  // when refused
    bool qkd;        // when not refused
    bool note;
  };
  const Row rows[] = {
      {kPrefer, kPrefer, Outcome::kObtained, false, {}, true, false},
      {kRequire, kRequire, Outcome::kObtained, false, {}, true, false},
      {kPrefer, kPrefer, Outcome::kFailed, false, {}, false, true},
      {kPrefer, kPrefer, Outcome::kNotConfigured, false, {}, false, true},
      {kOff, kPrefer, Outcome::kNotConfigured, false, {}, false, false},  // off: no note, no QKD
      {kRequire, kPrefer, Outcome::kFailed, true, AbortCode::kQkdUnavailable, false, false},
      {kPrefer, kRequire, Outcome::kFailed, true, AbortCode::kQkdUnavailable, false, false},
      {kRequire, kPrefer, Outcome::kNotConfigured, true, AbortCode::kPolicy, false, false},
      {kOff, kRequire, Outcome::kNotConfigured, true, AbortCode::kPolicy, false, false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(std::string(SourcePolicyName(r.responder)) + "/" + std::string(SourcePolicyName(r.initiator)) + "/" +
                 std::to_string(static_cast<int>(r.attempt)));
    Decision d = AcceptQkd("peer-b", Qkd(r.responder), kTlsQkd, r.initiator, Attempt(r.attempt));
    if (r.refused) {
      ASSERT_TRUE(std::holds_alternative<Refusal>(d));
      const Refusal& refusal = std::get<Refusal>(d);
      EXPECT_EQ(refusal.code, r.code);
      EXPECT_EQ(refusal.error.code(),
                r.code == AbortCode::kPolicy ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable);
      EXPECT_NE(refusal.error.message().find("session with peer-b: qkd = require ("), std::string::npos);
      EXPECT_NE(refusal.error.message().find(r.attempt == Outcome::kFailed ? "the KME is down" : "no QKD link here"),
                std::string::npos);
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<Negotiated>(d));
    const Negotiated& n = std::get<Negotiated>(d);
    EXPECT_EQ(n.sources, r.qkd ? kTlsQkd : kTls);
    EXPECT_EQ(n.notes.size(), r.note ? 1U : 0U);
  }
}

TEST(NegotiationTest, TheResponderRefusesAnOfferWithoutQkdOnlyWhenItRequiresIt) {
  Decision required = AcceptQkd("peer-b", Qkd(kRequire), kTls, kPrefer, {});
  ASSERT_TRUE(std::holds_alternative<Refusal>(required));
  EXPECT_EQ(std::get<Refusal>(required).code, AbortCode::kPolicy);
  Decision preferred = AcceptQkd("peer-b", Qkd(kPrefer), kTls, kOff, {});
  ASSERT_TRUE(std::holds_alternative<Negotiated>(preferred));
  EXPECT_EQ(std::get<Negotiated>(preferred).sources, kTls);
  EXPECT_EQ(std::get<Negotiated>(preferred).notes.size(), 1U);
  Decision off = AcceptQkd("peer-b", Qkd(kOff), kTls, kOff, {});
  ASSERT_TRUE(std::holds_alternative<Negotiated>(off));
  EXPECT_TRUE(std::get<Negotiated>(off).notes.empty());
}

TEST(NegotiationTest, TheRandomsEnterOnlyWhenTheyCameFromAQrng) {
  Negotiated n{.sources = kTls, .notes = {}};
  const std::vector<SourceId> offered{SourceId::kTlsExporter, SourceId::kQrngInitiator};
  AcceptRandoms(n, offered, QrngDraw{.from_qrng = true, .note = {}});
  EXPECT_EQ(n.sources,
            (std::vector<SourceId>{SourceId::kTlsExporter, SourceId::kQrngInitiator, SourceId::kQrngResponder}));
  Negotiated m{.sources = kTls, .notes = {}};
  AcceptRandoms(m, kTls, QrngDraw{.from_qrng = false, .note = "fell back"});
  EXPECT_EQ(m.sources, kTls);
  EXPECT_EQ(m.notes, std::vector<std::string>{"fell back"});
}

TEST(NegotiationTest, TheInitiatorOffersWhatItObtainedAndRefusesAMissingRequiredSource) {
  Decision full = PlanOffer("peer-a", Qkd(kRequire), QkdAttempt::Obtained(), QrngDraw{.from_qrng = true, .note = {}});
  ASSERT_TRUE(std::holds_alternative<Negotiated>(full));
  EXPECT_EQ(std::get<Negotiated>(full).sources,
            (std::vector<SourceId>{SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngInitiator}));
  Decision missing = PlanOffer("peer-a", Qkd(kRequire), QkdAttempt::Failed("KME down"), {});
  ASSERT_TRUE(std::holds_alternative<Refusal>(missing));
  EXPECT_EQ(std::get<Refusal>(missing).code, AbortCode::kQkdUnavailable);
  EXPECT_EQ(std::get<Refusal>(missing).error.message(), "session with peer-a: qkd = require, but KME down");
  Decision degraded = PlanOffer("peer-a", Qkd(kPrefer), QkdAttempt::NotConfigured("no link"), QrngDraw{.note = "n1"});
  ASSERT_TRUE(std::holds_alternative<Negotiated>(degraded));
  EXPECT_EQ(std::get<Negotiated>(degraded).sources, kTls);
  EXPECT_EQ(std::get<Negotiated>(degraded).notes,
            (std::vector<std::string>{"n1", "qkd = prefer, but no link; the session is without QKD"}));
  EXPECT_EQ(InitiatorQkdBlocker(Qkd(kOff), false), std::nullopt);
  EXPECT_NE(InitiatorQkdBlocker(Qkd(kPrefer), false), std::nullopt);
  EXPECT_EQ(ResponderQkdBlocker(Qkd(kPrefer), true), std::nullopt);
  EXPECT_NE(ResponderQkdBlocker(Qkd(kOff), true), std::nullopt);
}

// The initiator's check of the Accept: no QKD it did not offer, no change to its QRNG
// contribution, and dropped QKD only under prefer.
TEST(NegotiationTest, TheInitiatorRefusesDowngradesAndInventedSources) {
  auto code_of = [](const Decision& d) { return std::get<Refusal>(d).code; };
  EXPECT_EQ(code_of(CheckAccept("p", Qkd(kPrefer), kTls, kTlsQkd)), AbortCode::kMalformed);
  const std::vector<SourceId> with_qrng{SourceId::kTlsExporter, SourceId::kQrngInitiator};
  EXPECT_EQ(code_of(CheckAccept("p", Qkd(kPrefer), with_qrng, kTls)), AbortCode::kPolicy);
  EXPECT_EQ(code_of(CheckAccept("p", Qkd(kPrefer), kTls, with_qrng)), AbortCode::kPolicy);
  EXPECT_EQ(code_of(CheckAccept("p", Qkd(kRequire), kTlsQkd, kTls)), AbortCode::kPolicy);
  Decision dropped = CheckAccept("p", Qkd(kPrefer), kTlsQkd, kTls);
  ASSERT_TRUE(std::holds_alternative<Negotiated>(dropped));
  EXPECT_EQ(std::get<Negotiated>(dropped).sources, kTls);
  EXPECT_EQ(std::get<Negotiated>(dropped).notes.size(), 1U);
  const std::vector<SourceId> responder_qrng{SourceId::kTlsExporter, SourceId::kQkd, SourceId::kQrngResponder};
  Decision ok = CheckAccept("p", Qkd(kRequire), kTlsQkd, responder_qrng);
  ASSERT_TRUE(std::holds_alternative<Negotiated>(ok));
  EXPECT_EQ(std::get<Negotiated>(ok).sources, responder_qrng);
  EXPECT_TRUE(std::get<Negotiated>(ok).notes.empty());
}

}  // namespace
}  // namespace qsapi::session::internal
