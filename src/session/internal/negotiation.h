// session/internal/negotiation.h: which sources a session is derived from, decided from the two
// sides' policies and from what each side could obtain (docs/PROTOCOL.md, "Session
// establishment", the policy table). Pure: no I/O, no clock, no randomness. The establishment
// (establishment.cc) does the I/O around it: it reserves or fetches the QKD keys, draws the
// randoms from the entropy pool and carries the messages; these functions say what the outcome
// means.
#ifndef QSAPI_SESSION_INTERNAL_NEGOTIATION_H_
#define QSAPI_SESSION_INTERNAL_NEGOTIATION_H_

#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "qsapi/session/key_schedule.h"
#include "qsapi/session/peer_session.h"
#include "session/internal/exchange.h"

namespace qsapi::session::internal {

// QkdAttempt: what this side's attempt to obtain the session's QKD keys gave.
struct QkdAttempt {
  enum class Outcome : std::uint8_t {
    kNotTried,       // the policy is off (initiator), or nothing was offered (responder)
    kObtained,       // the keys are here
    kNotConfigured,  // this side has no QKD link for the peer, or the responder's policy is off
    kFailed,         // the KME could not deliver, or the keys do not fit the key schedule
  };
  Outcome outcome = Outcome::kNotTried;
  std::string reason;  // for kNotConfigured and kFailed: why, for the operator

  static QkdAttempt Obtained() { return {Outcome::kObtained, {}}; }
  static QkdAttempt NotConfigured(std::string why) { return {Outcome::kNotConfigured, std::move(why)}; }
  static QkdAttempt Failed(std::string why) { return {Outcome::kFailed, std::move(why)}; }
};

// QrngDraw: whether this side's 32-byte random came from a healthy QRNG source; `note` says why
// not when qrng = prefer fell back to the OS CSPRNG (qrng = require fails before negotiation).
struct QrngDraw {
  bool from_qrng = false;
  std::string note;
};

// Negotiated: the sources, in key-schedule order, and the notes of every preferred source that
// is missing (the session is degraded, never silently).
struct Negotiated {
  std::vector<SourceId> sources;
  std::vector<std::string> notes;
};

using Decision = std::variant<Negotiated, Refusal>;

// InitiatorQkdBlocker says why the initiator cannot even try to reserve QKD keys (its policy is
// on but it has no master key supply); nullopt when it can try or the policy is off.
std::optional<std::string> InitiatorQkdBlocker(const PeerPolicy& policy, bool has_master_supply);

// PlanOffer is the initiator's offer: tls-exporter, qkd when the keys were obtained,
// qrng-initiator when its random came from a QRNG. qkd = require without the keys is refused
// (qkd-unavailable); qkd = prefer without them is a note.
Decision PlanOffer(const std::string& peer, const PeerPolicy& policy, const QkdAttempt& qkd, const QrngDraw& qrng);

// CheckAccept is the initiator's check of the responder's source list against its offer:
// accepting QKD that was not offered is malformed; changing the initiator's QRNG contribution is
// a downgrade (policy); dropping offered QKD is refused under qkd = require and a note otherwise.
Decision CheckAccept(const std::string& peer, const PeerPolicy& policy, std::span<const SourceId> offered,
                     std::span<const SourceId> accepted);

// ResponderQkdBlocker says why the responder will not fetch offered QKD keys (qkd = off for this
// peer, or no slave key supply); nullopt when it should fetch them.
std::optional<std::string> ResponderQkdBlocker(const PeerPolicy& policy, bool has_slave_supply);

// AcceptQkd is the responder's decision on QKD for an offer: tls-exporter, and qkd when the
// offered keys were obtained. Missing QKD is refused when either side requires it (policy when
// this side cannot use QKD at all, qkd-unavailable when its KME failed), and a note under this
// side's qkd = prefer. Decided before the responder draws its random, so a refusal wastes none.
Decision AcceptQkd(const std::string& peer, const PeerPolicy& policy, std::span<const SourceId> offered,
                   SourcePolicy initiator_qkd_policy, const QkdAttempt& qkd);

// AcceptRandoms completes the responder's list: qrng-initiator when offered, qrng-responder when
// its own random came from a QRNG (and the note when it did not under qrng = prefer).
void AcceptRandoms(Negotiated& accepted, std::span<const SourceId> offered, const QrngDraw& qrng);

}  // namespace qsapi::session::internal

#endif  // QSAPI_SESSION_INTERNAL_NEGOTIATION_H_
