// session/internal/fresh_keys.h: one agreement of fresh QKD keys at rotation, both roles
// (docs/PROTOCOL.md, "Fresh QKD keys at rotation"). The steps are values and functions that hold
// no lock and start no thread: PeerChannel (peer_channel.cc) runs them in order, under its own
// locks, and carries their messages.
//
//   initiator                                   responder
//   SessionChannel::BeginFreshKey (hold)
//   FreshKeyProposal::Prepare (KME reserve)
//   -- RekeyOffer ------------------------------> FetchOfferedKeys (checks, replay guard, KME fetch)
//                                                 BindOfferedKeys (enter the epoch, seal the confirmation)
//   <-------------------- RekeyDone | RekeyRefuse
//   FreshKeyProposal::Complete | CancelFreshKey
#ifndef QSAPI_SESSION_INTERNAL_FRESH_KEYS_H_
#define QSAPI_SESSION_INTERNAL_FRESH_KEYS_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/session/envelope.h"
#include "qsapi/session/peer_session.h"
#include "session/internal/establishment_messages.h"
#include "session/internal/exchange.h"

namespace qsapi::session::internal {

// RekeyConfirmAad is the associated data of a fresh-key confirmation: label || the RekeyOffer.
Bytes RekeyConfirmAad(ByteView offer_message);
// ReestablishConfirmAad is that of a re-establishment's confirmation: label || context hash.
Bytes ReestablishConfirmAad(ByteView context_hash);

// FreshKeyProposal is the initiator's proposal in flight: the RekeyOffer it sent, the reserved
// keys (wiped with the proposal) and the deadline for the peer's answer.
class FreshKeyProposal {
 public:
  // Prepare reserves keys_per_epoch keys at the master supply and builds the RekeyOffer for
  // `min_epoch` (what BeginFreshKey returned). UNAVAILABLE (the KME's error) or
  // FAILED_PRECONDITION (key sizes) when there are no keys to propose; nothing is reserved then.
  static Result<FreshKeyProposal> Prepare(ByteView session_id, std::uint32_t min_epoch, const FreshKeySupply& supply,
                                          Clock::time_point now);

  [[nodiscard]] const Bytes& offer() const noexcept { return offer_; }
  [[nodiscard]] Clock::time_point deadline() const noexcept { return deadline_; }
  [[nodiscard]] const std::vector<std::string>& key_ids() const noexcept { return key_ids_; }
  // Answers checks that an answer (RekeyDone, RekeyRefuse) names this session.
  [[nodiscard]] bool Answers(const SessionId& id) const noexcept;

  // Complete enters the epoch the peer bound, if its confirmation opens under the keys with these
  // keys mixed in. DATA_LOSS naming the key_IDs when it does not (the two KMEs' keys differ); other
  // errors of CompleteFreshKey as they are, prefixed with `who`. The channel's hold stays on error.
  Status Complete(SessionChannel& channel, const RekeyDoneMessage& done, const std::string& who) const;

 private:
  FreshKeyProposal() = default;
  SessionId session_id_{};
  Bytes offer_;
  SecretBytes material_;
  std::vector<std::string> key_ids_;
  Clock::time_point deadline_{};
};

// OfferedKeys: a checked RekeyOffer and the keys the responder's KME delivered for it.
struct OfferedKeys {
  RekeyOfferMessage offer;
  SecretBytes material;
};

// FetchOfferedKeys is the responder's first step: it parses the offer and checks it names this
// session, that fresh keys are configured here (`supply` may be null) and the key_ID count, records
// the key_IDs in the replay guard and fetches the keys. It touches no channel state, so it runs
// without the channel's send lock. A Refusal says what to answer (RekeyRefuse).
std::variant<OfferedKeys, Refusal> FetchOfferedKeys(const SessionId& session_id, const FreshKeySupply* supply,
                                                    ByteView offer_message);

// BindOfferedKeys is the second step, with the channel's send lock held (RekeyDone must precede
// every envelope of the new epoch): it binds the keys to the first epoch past both sides and seals
// the confirmation. The RekeyDone message, or a Refusal when nothing was bound; an error when the
// epoch was entered but the confirmation could not be sealed (the channel must close).
Result<std::variant<Bytes, Refusal>> BindOfferedKeys(SessionChannel& channel, const OfferedKeys& keys,
                                                     ByteView offer_message);

}  // namespace qsapi::session::internal

#endif  // QSAPI_SESSION_INTERNAL_FRESH_KEYS_H_
