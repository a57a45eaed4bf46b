// The pure negotiation steps of session establishment (session/internal/negotiation.h).
#include "session/internal/negotiation.h"

namespace qsapi::session::internal {

namespace {

std::string Who(const std::string& peer) { return "session with " + peer; }

}  // namespace

std::optional<std::string> InitiatorQkdBlocker(const PeerPolicy& policy, bool has_master_supply) {
  if (policy.qkd == SourcePolicy::kOff || has_master_supply) return std::nullopt;
  return "no QKD link (master key supply) to this peer is configured";
}

Decision PlanOffer(const std::string& peer, const PeerPolicy& policy, const QkdAttempt& qkd, const QrngDraw& qrng) {
  Negotiated out;
  if (!qrng.note.empty()) out.notes.push_back(qrng.note);
  const bool have_qkd = qkd.outcome == QkdAttempt::Outcome::kObtained;
  if (policy.qkd != SourcePolicy::kOff && !have_qkd) {
    const std::string reason = qkd.reason.empty() ? "no QKD keys were obtained" : qkd.reason;
    if (policy.qkd == SourcePolicy::kRequire) {
      return Refusal{AbortCode::kQkdUnavailable, Unavailable(Who(peer) + ": qkd = require, but " + reason)};
    }
    out.notes.emplace_back("qkd = prefer, but " + reason + "; the session is without QKD");
  }
  out.sources.push_back(SourceId::kTlsExporter);
  if (have_qkd) out.sources.push_back(SourceId::kQkd);
  if (qrng.from_qrng) out.sources.push_back(SourceId::kQrngInitiator);
  return out;
}

Decision CheckAccept(const std::string& peer, const PeerPolicy& policy, std::span<const SourceId> offered,
                     std::span<const SourceId> accepted) {
  Negotiated out;
  const bool offered_qkd = HasSource(offered, SourceId::kQkd);
  if (HasSource(accepted, SourceId::kQkd) && !offered_qkd) {
    return Refusal{AbortCode::kMalformed,
                   InvalidArgument(Who(peer) + ": the peer accepted QKD, which we did not offer")};
  }
  if (HasSource(accepted, SourceId::kQrngInitiator) != HasSource(offered, SourceId::kQrngInitiator)) {
    return Refusal{AbortCode::kPolicy, FailedPrecondition(Who(peer) + ": downgraded source list: we offered " +
                                                          JoinSources(offered) + " and the peer accepted " +
                                                          JoinSources(accepted) + ", changing our QRNG contribution")};
  }
  if (offered_qkd && !HasSource(accepted, SourceId::kQkd)) {
    if (policy.qkd == SourcePolicy::kRequire) {
      return Refusal{AbortCode::kPolicy, FailedPrecondition(Who(peer) +
                                                            ": downgraded source list refused: the peer "
                                                            "accepted " +
                                                            JoinSources(accepted) + " without qkd, but qkd = require")};
    }
    out.notes.emplace_back("qkd = prefer, but the peer did not accept QKD (see its log); the session is without QKD");
  }
  out.sources.assign(accepted.begin(), accepted.end());
  return out;
}

std::optional<std::string> ResponderQkdBlocker(const PeerPolicy& policy, bool has_slave_supply) {
  if (policy.qkd == SourcePolicy::kOff) return "qkd = off at the responder for this peer";
  if (!has_slave_supply) return "no QKD link (slave key supply) to this peer is configured at the responder";
  return std::nullopt;
}

Decision AcceptQkd(const std::string& peer, const PeerPolicy& policy, std::span<const SourceId> offered,
                   SourcePolicy initiator_qkd_policy, const QkdAttempt& qkd) {
  Negotiated out;
  out.sources.push_back(SourceId::kTlsExporter);
  if (HasSource(offered, SourceId::kQkd)) {
    if (qkd.outcome == QkdAttempt::Outcome::kObtained) {
      out.sources.push_back(SourceId::kQkd);
    } else {
      const std::string reason = qkd.reason.empty() ? "the offered QKD keys were not obtained" : qkd.reason;
      const bool initiator_requires = initiator_qkd_policy == SourcePolicy::kRequire;
      if (policy.qkd == SourcePolicy::kRequire || initiator_requires) {
        const bool cannot_use = qkd.outcome != QkdAttempt::Outcome::kFailed;
        return Refusal{cannot_use ? AbortCode::kPolicy : AbortCode::kQkdUnavailable,
                       Error(cannot_use ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable,
                             Who(peer) + ": qkd = require (" + (initiator_requires ? "initiator" : "responder") +
                                 "), but " + reason)};
      }
      if (policy.qkd == SourcePolicy::kPrefer) out.notes.emplace_back("qkd = prefer, but " + reason);
    }
  } else if (policy.qkd == SourcePolicy::kRequire) {
    return Refusal{AbortCode::kPolicy,
                   FailedPrecondition(Who(peer) +
                                      ": qkd = require at the responder, but the initiator offered no "
                                      "QKD keys (" +
                                      JoinSources(offered) + ")")};
  } else if (policy.qkd == SourcePolicy::kPrefer) {
    out.notes.emplace_back("qkd = prefer, but the initiator offered no QKD keys; the session is without QKD");
  }
  return out;
}

void AcceptRandoms(Negotiated& accepted, std::span<const SourceId> offered, const QrngDraw& qrng) {
  if (HasSource(offered, SourceId::kQrngInitiator)) accepted.sources.push_back(SourceId::kQrngInitiator);
  if (!qrng.note.empty()) accepted.notes.push_back(qrng.note);
  if (qrng.from_qrng) accepted.sources.push_back(SourceId::kQrngResponder);
}

}  // namespace qsapi::session::internal
