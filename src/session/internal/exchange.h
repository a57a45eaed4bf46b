// session/internal/exchange.h: one side's messages of an establishment over a peer link, under
// one deadline, and the small helpers the establishment, the negotiation and the channel share.
#ifndef QSAPI_SESSION_INTERNAL_EXCHANGE_H_
#define QSAPI_SESSION_INTERNAL_EXCHANGE_H_

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/session/key_schedule.h"
#include "qsapi/session/peer_link.h"
#include "qsapi/session/peer_session.h"

namespace qsapi::session::internal {

using Clock = std::chrono::steady_clock;

inline constexpr std::string_view kLogComponent = "session";

// Refusal ends an establishment or a fresh-key agreement: `code` goes to the peer (Abort or
// RekeyRefuse, with the error's message as the reason), `error` to the caller.
struct Refusal {
  AbortCode code = AbortCode::kInternal;
  Error error;
};

[[nodiscard]] bool HasSource(std::span<const SourceId> sources, SourceId id);
// JoinSources: "tls-exporter+qkd+qrng-initiator".
[[nodiscard]] std::string JoinSources(std::span<const SourceId> sources);
// JoinKeyIds: "id1, id2".
[[nodiscard]] std::string JoinKeyIds(std::span<const std::string> ids);
// CodeForAbort is the local error code for the peer's abort `code`; AbortForError the abort code
// for a local parse or protocol error.
[[nodiscard]] ErrorCode CodeForAbort(AbortCode code);
[[nodiscard]] AbortCode AbortForError(const Error& e);
// PeerAbortError is the error for an Abort (or RekeyRefuse) the peer sent: "<who>: the peer
// <verb> (<code>): <reason>".
[[nodiscard]] Error PeerAbortError(std::string_view who, std::string_view verb, AbortCode code,
                                   std::string_view reason);
// JoinQkdKeys joins QKD keys into one secret buffer, checking the key schedule's size range
// (FAILED_PRECONDITION, saying how to fix the configuration).
Result<SecretBytes> JoinQkdKeys(std::span<const SecretBytes> keys);

// Exchange runs one side's messages over a link with one deadline and turns every failure into
// an Error (after telling the peer with an Abort while the link still works).
class Exchange {
 public:
  Exchange(PeerLink& link, std::string peer, Clock::time_point deadline)
      : link_(link), peer_(std::move(peer)), deadline_(deadline) {}

  Status Send(const Bytes& message);
  // Receive returns the next message of type `type` (or `also`, when non-zero); an Abort from the
  // peer becomes its error, any other type is refused (Abort malformed).
  Result<Bytes> Receive(std::uint8_t type, std::string_view what, std::uint8_t also = 0);
  // Fail sends an Abort with the refusal's code and message (best effort), closes the link, logs
  // and returns the error.
  Error Fail(Refusal refusal);
  Error Fail(AbortCode code, Error error) { return Fail(Refusal{code, std::move(error)}); }

  [[nodiscard]] const std::string& peer() const { return peer_; }
  // peer_aborted: the peer said Abort (so it bound nothing).
  [[nodiscard]] bool peer_aborted() const { return peer_aborted_; }

 private:
  [[nodiscard]] std::chrono::milliseconds Remaining() const;

  PeerLink& link_;
  std::string peer_;
  Clock::time_point deadline_;
  bool peer_aborted_ = false;
};

}  // namespace qsapi::session::internal

#endif  // QSAPI_SESSION_INTERNAL_EXCHANGE_H_
