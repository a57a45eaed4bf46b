// qsapi/session/peer_channel.h: an established peer session carrying traffic.
#ifndef QSAPI_SESSION_PEER_CHANNEL_H_
#define QSAPI_SESSION_PEER_CHANNEL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "qsapi/result.h"
#include "qsapi/session/envelope.h"
#include "qsapi/session/peer_session.h"

namespace qsapi::session {

// FreshKeyStats counts the fresh-key agreements of a PeerChannel.
struct FreshKeyStats {
  std::uint64_t agreed = 0;           // epochs entered with fresh QKD keys agreed over the link
  std::uint64_t refused = 0;          // proposals the peer refused (it bound nothing): ratchet alone
  std::uint64_t skipped = 0;          // rotations without a proposal: our KME could not reserve keys
  std::string last_problem;           // why the last refusal or skip happened
  std::uint64_t reestablished = 0;    // re-establishments (new TLS handshake and ML-KEM) of the session
  std::string reestablished_sources;  // the sources of the last one ("tls-exporter+qkd+...")
};

// PeerChannel is an established session ready for traffic: payloads sealed into envelopes by the
// session's SessionChannel (qsapi/session/envelope.h: epochs, rotation, replay window) and carried
// over its peer link, one envelope per link message. The link keeps order, so by default the
// channel opens envelopes only in order (Ordering::kStrict): a reordered envelope is refused like
// a replayed one. Create's `ordering` picks kWindow for envelopes that travel other ways.
//
// A reader thread owns the link's receiving side: it queues envelopes for Receive (at most
// kMaxQueuedEnvelopes; then it waits, and the peer's sends wait on TLS) and answers the session's
// control messages. When the session used QKD (fresh_key_supply() set), each new epoch the
// initiator enters mixes fresh QKD keys: it reserves keys at its KME, proposes them with the
// lowest epoch they may enter (RekeyOffer) and holds its epoch; the responder fetches them by
// key_ID, enters the first epoch past both sides with them mixed in and answers with an empty
// envelope of that epoch (RekeyDone); the initiator enters the same epoch only if that envelope
// opens. Different keys at the two KMEs close the channel with DATA_LOSS ("the QKD keys differ");
// a refusal (the peer's KME failed, a replayed key_ID) leaves the ratchet alone for that epoch.
//
// Thread safety: one thread may Send while another Receives; Rotate may be called from either.
class PeerChannel {
 public:
  static constexpr std::size_t kMaxQueuedEnvelopes = 1024;

  // Create takes the session over, builds its channel from the epoch 0 secret and, when the
  // session's link is open, starts the reader. `ordering` replaces config.ordering: kStrict suits
  // envelopes carried on the link; kWindow suits envelopes that travel other ways (Seal/Open),
  // which may be reordered. Without an open link the channel is detached: Seal, Open and Rotate
  // (by the ratchet alone) work, Send, Receive and fresh keys fail with FAILED_PRECONDITION.
  // FAILED_PRECONDITION when the session has no keys or is a re-establishment.
  static Result<std::unique_ptr<PeerChannel>> Create(PeerSession session, ChannelConfig config = {},
                                                     Ordering ordering = Ordering::kStrict);
  PeerChannel(const PeerChannel&) = delete;
  PeerChannel& operator=(const PeerChannel&) = delete;
  PeerChannel(PeerChannel&&) = delete;
  PeerChannel& operator=(PeerChannel&&) = delete;
  ~PeerChannel();

  // Send seals `plaintext` (rotating the epoch when the policy says so, with fresh QKD keys when
  // the session has them) and sends the envelope.
  Status Send(ByteView plaintext, ByteView aad = {});
  // Seal seals without sending: the envelope may travel another way and be opened by the peer's
  // Open, in the order sealed. Shares the sequence numbers of Send.
  Result<Bytes> Seal(ByteView plaintext, ByteView aad = {});
  // Receive waits for the next envelope (io_timeout of the link when zero) and opens it. Errors of
  // Open (authentication, replay, order, ...) are returned as they are and the channel goes on; it
  // closes itself after too many failed decryptions. After the link closed, the queued envelopes
  // are still returned, then the reason; Seal and Open go on without the link (no fresh keys).
  // A link lost while a fresh-key proposal is in flight closes the channel: the two sides may
  // disagree on the next epoch.
  Result<Bytes> Receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(0), ByteView aad = {});
  // Open opens an envelope that came another way (see Seal).
  Result<Bytes> Open(ByteView envelope, ByteView aad = {});
  // Rotate enters the next epoch now: as initiator of a session with QKD, with fresh QKD keys
  // agreed with the peer (waiting for its answer) when they can be had, else by the ratchet alone.
  Status Rotate();
  // RotateWithFreshQkd is Rotate that fails instead of falling back: FAILED_PRECONDITION when this
  // side cannot propose (responder, session without QKD), the KME's or the peer's error otherwise.
  Status RotateWithFreshQkd();
  [[nodiscard]] ChannelStats stats() const;
  [[nodiscard]] FreshKeyStats fresh_key_stats() const;
  // age: since establishment or the last re-establishment (the channel's clock).
  [[nodiscard]] std::chrono::steady_clock::duration age() const;

  // The initiator's side of a re-establishment (PeerEndpoint::Reestablish runs the three):
  // BeginReestablishment holds the epoch (seals go on in the current one; proposals and rotations
  // wait) and says what to re-establish; FAILED_PRECONDITION for a responder or a failed channel.
  // FinishReestablishment consumes RunReestablishment's outcome: on success it enters the
  // responder's epoch with the new session secret if the responder's confirmation opens; on a
  // failure it releases the hold and the session goes on under its keys, unless the outcome is
  // uncertain, when the channel closes. Every Begin must be followed by one Finish.
  Result<ReestablishTicket> BeginReestablishment();
  Status FinishReestablishment(ReestablishOutcome outcome);

  // AcceptReestablishment is the responder's side of a re-establishment: `fresh` is what
  // PeerEndpoint::Respond returned for a Reestablish naming this session. It mixes the new
  // session secret into the first epoch past both sides, enters it, answers RekeyDone with the
  // confirmation on fresh's link and closes that link. A Reestablish for another session, from
  // another peer or to an initiator is refused (Abort unknown-session), and so is one while the
  // channel has failed.
  Status AcceptReestablishment(PeerSession fresh);
  // RefuseReestablishment answers a Reestablish that names no session this side holds.
  static void RefuseReestablishment(PeerSession fresh, const std::string& reason,
                                    AbortCode code = AbortCode::kUnknownSession);
  // session: what the session was built from (its keys have been handed to the channel).
  [[nodiscard]] const PeerSession& session() const noexcept;
  // failure: why the channel stopped (OkStatus() while it works; a closed link alone is not a
  // failure: see link_status()).
  [[nodiscard]] Status failure() const;
  [[nodiscard]] Status link_status() const;
  // Close stops the reader, destroys the channel's keys and closes the link. Idempotent.
  void Close();

 private:
  struct Impl;
  explicit PeerChannel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsapi::session

#endif  // QSAPI_SESSION_PEER_CHANNEL_H_
