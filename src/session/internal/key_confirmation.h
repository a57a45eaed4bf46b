// session/internal/key_confirmation.h: the tail both roles of an establishment share once the
// sources are agreed: derive the session keys over the transcript, make this side's key
// confirmation and check the peer's (docs/PROTOCOL.md, "Session establishment", steps 4-6).
#ifndef QSAPI_SESSION_INTERNAL_KEY_CONFIRMATION_H_
#define QSAPI_SESSION_INTERNAL_KEY_CONFIRMATION_H_

#include <optional>
#include <span>
#include <string>

#include "qsapi/result.h"
#include "qsapi/session/key_schedule.h"
#include "qsapi/session/peer_link.h"
#include "qsapi/session/peer_session.h"
#include "session/internal/establishment_messages.h"
#include "session/internal/exchange.h"

namespace qsapi::session::internal {

// Transcript is what both sides hold after Init and Accept. `qkd_key` and the randoms are used
// only for the sources in `accepted` that name them.
struct Transcript {
  const SessionId& session_id;
  AeadSuite suite;
  std::span<const SourceId> accepted;
  ByteView qkd_key;
  ByteView initiator_random;
  ByteView responder_random;
  const Bytes& init_message;    // as sent: Init or Reestablish
  const Bytes& accept_message;  // as sent
};

struct DerivedKeys {
  SessionKeys keys;
  Bytes context_hash;  // SHA-384(Init || Accept)
};

// DeriveKeys exports the TLS keying material of `link` for the session id, hashes the transcript
// and runs the key schedule; the schedule's sources must be the accepted ones. Any error is the
// caller's internal refusal.
Result<DerivedKeys> DeriveKeys(PeerLink& link, const Transcript& transcript);

// EncodeOwnConfirm is this side's Confirm message.
Result<Bytes> EncodeOwnConfirm(const DerivedKeys& derived, SessionRole own_role);

// CheckPeerConfirm checks the peer's Confirm message. A refusal: malformed; DATA_LOSS naming the
// key_IDs when QKD keys were mixed in (`qkd_key_ids` non-empty: the two KMEs' keys differ);
// otherwise AUTHENTICATION_FAILED (abort confirmation-failed; the caller returns the plain
// AuthenticationFailed()).
std::optional<Refusal> CheckPeerConfirm(const DerivedKeys& derived, SessionRole own_role, const Bytes& confirm_message,
                                        const std::string& peer, std::span<const std::string> qkd_key_ids);

}  // namespace qsapi::session::internal

#endif  // QSAPI_SESSION_INTERNAL_KEY_CONFIRMATION_H_
