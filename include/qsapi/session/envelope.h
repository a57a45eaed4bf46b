// qsapi/session/envelope.h: payload envelopes of a peer session, and the channel state machine
// that seals and opens them under rotating epoch keys.
//
// An envelope carries everything a receiver needs, so it may travel over any channel (the peer
// link, a message queue, a TLS-terminating proxy). Binary form (docs/PROTOCOL.md, "Session
// envelopes"; integers big-endian):
//
//   offset size field
//   0      2    magic "QE" (0x51 0x45)
//   2      1    version 0x01
//   3      1    suite (1 AES-256-GCM, 2 XChaCha20-Poly1305)
//   4      1    flags: 0x01 stream chunk, 0x02 final chunk (only with 0x01); other bits 0
//   5      16   session id
//   21     4    epoch
//   25     8    sequence number (per epoch and direction, from 0)
//   33     4    ct_len = payload length + 16
//   37     8    stream id      } only when flags has 0x01
//   45     4    chunk index    }
//   37|49  ct_len  ciphertext || tag
//
// The header (every byte before the ciphertext) is the associated data, followed by the
// caller's own associated data (which does not travel). nonce = the direction's nonce prefix XOR
// (zeros || I2OSP(sequence, 8)), 12 bytes (AES-256-GCM) or 24 (XChaCha20-Poly1305).
// Text form: "qse1:" || base64url without padding of the binary form.
//
// Thread safety: a SessionChannel serialises its calls with an internal mutex; the stream writer
// and reader are thread-compatible (one thread at a time each).
#ifndef QSAPI_SESSION_ENVELOPE_H_
#define QSAPI_SESSION_ENVELOPE_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/session/key_schedule.h"

namespace qsapi::session {

inline constexpr std::uint8_t kEnvelopeMagic[2] = {0x51, 0x45};  // "QE"
inline constexpr std::uint8_t kEnvelopeVersion = 0x01;
inline constexpr std::uint8_t kFlagStreamChunk = 0x01;
inline constexpr std::uint8_t kFlagFinalChunk = 0x02;
inline constexpr std::size_t kEnvelopeHeaderSize = 37;        // without the stream fields
inline constexpr std::size_t kStreamEnvelopeHeaderSize = 49;  // with them
inline constexpr std::size_t kEnvelopeTagSize = 16;
inline constexpr std::size_t kDefaultMaxEnvelopePayload = std::size_t{1} << 20;  // 1 MiB
inline constexpr std::size_t kMaxEnvelopePayloadLimit = std::size_t{64} << 20;   // the largest bound one may configure
inline constexpr std::string_view kEnvelopeTextPrefix = "qse1:";
inline constexpr std::size_t kReplayWindowSize = 1024;

// EnvelopeHeader is the parsed header of an envelope (not yet authenticated).
struct EnvelopeHeader {
  AeadSuite suite = AeadSuite::kAes256Gcm;
  std::uint8_t flags = 0;
  std::array<std::uint8_t, kSessionIdSize> session_id{};
  std::uint32_t epoch = 0;
  std::uint64_t sequence = 0;
  std::uint64_t stream_id = 0;    // 0 unless a stream chunk
  std::uint32_t chunk_index = 0;  // 0 unless a stream chunk

  [[nodiscard]] bool is_stream_chunk() const noexcept { return (flags & kFlagStreamChunk) != 0; }
  [[nodiscard]] bool is_final_chunk() const noexcept { return (flags & kFlagFinalChunk) != 0; }
};

// ParsedEnvelope points into the buffer given to ParseEnvelope, which must outlive it.
struct ParsedEnvelope {
  EnvelopeHeader header;
  ByteView header_bytes;  // the associated data prefix: every byte before the ciphertext
  ByteView ciphertext;    // ciphertext || tag
};

// ParseEnvelope checks the binary form strictly: magic, version, a known suite, known flags
// (final only with stream), ct_len within 16 .. max_payload + 16 and equal to the bytes that
// follow the header, nothing after. kInvalidArgument with the reason otherwise. It decrypts
// nothing. max_payload must be <= kMaxEnvelopePayloadLimit.
Result<ParsedEnvelope> ParseEnvelope(ByteView envelope, std::size_t max_payload = kDefaultMaxEnvelopePayload);

// EncodeEnvelopeHeader writes the header for `header` and a payload of `payload_size` bytes
// (the inverse of ParseEnvelope's header part).
Bytes EncodeEnvelopeHeader(const EnvelopeHeader& header, std::size_t payload_size);

// EnvelopeToText returns "qse1:" || base64url (no padding) of `envelope`.
std::string EnvelopeToText(ByteView envelope);
// EnvelopeFromText reverses EnvelopeToText; kInvalidArgument on a missing prefix, bad base64url
// or text longer than an envelope with max_payload could be. The result is not parsed further.
Result<Bytes> EnvelopeFromText(std::string_view text, std::size_t max_payload = kDefaultMaxEnvelopePayload);

// RotationPolicy: a new epoch begins before a Seal that would exceed any limit of the current
// epoch's sending key. Defaults follow reference/aead-limits.md (docs/PROTOCOL.md): 2^24
// messages (TLS 1.3 rotates AES-GCM after about 2^24.5 records), 2^36 bytes (64 GiB, well under
// the ~390 GB confidentiality bound of AES-256-GCM at p = 2^-60), 120 seconds.
struct RotationPolicy {
  std::uint64_t max_messages = std::uint64_t{1} << 24;
  std::uint64_t max_bytes = std::uint64_t{1} << 36;
  std::chrono::seconds max_age{120};
};

// Ordering says which envelope orders a channel accepts (each envelope is opened at most once
// either way).
enum class Ordering : std::uint8_t {
  // kWindow: any order within the replay window of each held epoch. For transports that may
  // reorder: message queues, parallel requests through proxies.
  kWindow,
  // kStrict: every envelope must come after (epoch, sequence) of every envelope opened before it;
  // gaps are allowed, going back is refused. For ordered transports: the peer link.
  kStrict,
};

struct ChannelConfig {
  RotationPolicy rotation;
  Ordering ordering = Ordering::kWindow;
  // A receive key of an older epoch is kept after the first envelope of a newer epoch arrives,
  // for envelopes still in flight: until grace_time has passed or grace_messages newer envelopes
  // have been opened, whichever comes first. Then it is destroyed.
  std::chrono::milliseconds grace_time{30000};
  std::uint64_t grace_messages = 1024;
  // At most this many epochs' receive keys are held (the newest and older ones in grace).
  std::size_t max_receive_epochs = 3;
  // An envelope may be at most this many epochs ahead of the channel's newest epoch.
  std::uint32_t max_epochs_ahead = 2;
  // Payload bound per envelope, 1 .. kMaxEnvelopePayloadLimit.
  std::size_t max_payload = kDefaultMaxEnvelopePayload;
  // After this many failed decryptions the channel closes itself and destroys its keys.
  std::uint32_t max_failed_decryptions = 16;
  // After this long the channel refuses to seal: the session must be established again (new TLS
  // handshake, new ML-KEM exchange).
  std::chrono::seconds max_session_age{std::chrono::hours(24)};
  // The clock (for tests); empty means std::chrono::steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

struct ChannelStats {
  std::uint32_t epoch = 0;  // the newest epoch (the sending epoch)
  std::uint64_t messages_sealed = 0;
  std::uint64_t messages_opened = 0;
  std::uint64_t bytes_sealed = 0;
  std::uint64_t rotations = 0;  // epochs entered after epoch 0, by sealing or by opening
  std::uint64_t failed_decryptions = 0;
  std::uint64_t replays_rejected = 0;
  std::uint64_t reordered_rejected = 0;  // refused by Ordering::kStrict
  std::uint64_t fresh_key_epochs = 0;    // epochs entered with fresh QKD material mixed in
  std::uint64_t reestablishments = 0;    // epochs entered with a new establishment's secret mixed in
  bool closed = false;
};

namespace internal {
class ChannelState;
}

// SessionChannel is one endpoint's state of a session: it seals envelopes in its own direction
// and opens the peer's.
//
// Epochs: both directions share one epoch chain (NextEpochSecret). The channel enters epoch e+1
// when a Seal would exceed the rotation policy (or on Rotate()), or when an envelope of a newer
// epoch (at most max_epochs_ahead ahead) authenticates. Entering an epoch replaces the chain
// secret (the previous one is zeroised: forward secrecy across epochs) and the sending key; the
// previous receive key stays until the grace rule above retires it.
//
// Errors: a malformed envelope, another session's id or another suite are kInvalidArgument; a
// replayed sequence number, one below the replay window, a retired epoch, an epoch too far ahead
// and a closed channel are kFailedPrecondition; a payload over the bound is kResourceExhausted;
// a failed decryption is AuthenticationFailed() and counts towards max_failed_decryptions.
// None of these changes the channel's state (except the failure and replay counters).
class SessionChannel {
 public:
  // New creates the channel of one side. `role` picks the sending direction. The epoch 0 secret
  // comes from DeriveSessionKeys and is taken over (zeroised when no longer needed).
  static Result<SessionChannel> New(SessionRole role, AeadSuite suite, ByteView session_id, EpochSecret epoch_secret,
                                    ChannelConfig config = {});

  SessionChannel(SessionChannel&& other) noexcept;
  SessionChannel& operator=(SessionChannel&& other) noexcept;
  SessionChannel(const SessionChannel&) = delete;
  SessionChannel& operator=(const SessionChannel&) = delete;
  ~SessionChannel();

  // Seal returns the binary envelope of `plaintext`, rotating first when the policy says so.
  Result<Bytes> Seal(ByteView plaintext, ByteView aad = {});
  // Open authenticates and decrypts a (non-stream) envelope and returns its plaintext.
  Result<Bytes> Open(ByteView envelope, ByteView aad = {});
  // SealTo and OpenTo are Seal and Open into a caller's buffer, resized to the output's size, so
  // that a loop can reuse one buffer. After a failure `out` holds no plaintext of the envelope.
  Status SealTo(ByteView plaintext, ByteView aad, Bytes& out);
  Status OpenTo(ByteView envelope, ByteView aad, Bytes& out);

  // Rotate enters the next epoch now, by the ratchet alone (FAILED_PRECONDITION during a hold).
  Status Rotate();

  // Fresh key material agreed with the peer for one epoch (docs/PROTOCOL.md, "Fresh QKD keys at
  // rotation"): the one way fresh material enters a session. The proposing side calls BeginFreshKey, sends its proposal
  // with the epoch it returns (the lowest epoch the peer may bind the key to) and, once the peer answered, calls
  // CompleteFreshKey with the epoch the peer bound, or CancelFreshKey when the peer refused and
  // bound nothing. Between the two the channel holds its epoch: Seal keeps the current epoch past
  // the rotation policy's limits and Rotate fails; opening the peer's envelopes may still enter
  // newer epochs (the peer sealed those before it bound the key). An envelope of a newer epoch
  // that fails to authenticate during the hold fails with kUnavailable (retry after the
  // agreement) and does not count towards max_failed_decryptions. One agreement at a time.
  Result<std::uint32_t> BeginFreshKey();
  // FreshKeyKind says what the fresh material is: QKD keys, or the epoch 0 secret of a new
  // establishment of this session (a re-establishment: new TLS handshake, new ML-KEM), which also
  // restarts the session's age (max_session_age).
  enum class FreshKeyKind : std::uint8_t { kQkd, kReestablishment };
  // CompleteFreshKey enters `epoch` now (through ratchet-only steps for epochs in between), mixing
  // `qkd_key` (kQkdKeyMinSize..kQkdKeyMaxSize bytes) into the step that enters it, and ends the
  // hold. FAILED_PRECONDITION without a hold or when the channel is already at or past `epoch`.
  // With a `confirm_envelope` (the peer's empty-payload envelope of `epoch`, sealed with
  // `confirm_aad` right after it bound the key) the epoch is entered only if that envelope opens
  // under the new keys; otherwise AuthenticationFailed() and nothing changes (the hold stays): the
  // two sides hold different keys (a confirmation that is not an empty envelope of `epoch` of this
  // session is INVALID_ARGUMENT). The confirmation is marked received in the replay window but
  // does not move the kStrict order, so envelopes the peer sent before it stay in order.
  Status CompleteFreshKey(std::uint32_t epoch, ByteView qkd_key, ByteView confirm_envelope = {},
                          ByteView confirm_aad = {}, FreshKeyKind kind = FreshKeyKind::kQkd);
  void CancelFreshKey() noexcept;
  // BindFreshKey is the answering side: it enters epoch max(current + 1, min_epoch) now, mixing
  // `qkd_key` into the step that enters it, and returns that epoch. min_epoch may be at most
  // max_epochs_ahead + 1 ahead of the current epoch, and the current epoch at most
  // max_epochs_ahead past min_epoch (the proposer, at min_epoch - 1 or later, must be able to
  // follow); otherwise FAILED_PRECONDITION and nothing changes.
  Result<std::uint32_t> BindFreshKey(std::uint32_t min_epoch, ByteView qkd_key, FreshKeyKind kind = FreshKeyKind::kQkd);
  // RotationDue says whether the next Seal of `next_payload` bytes would enter a new epoch under
  // the rotation policy (ignoring a hold); with lead_divisor d > 1, whether 1/d of any of the
  // policy's limits has been reached (a side that leads rotations starts early).
  [[nodiscard]] bool RotationDue(std::size_t next_payload = 0, unsigned lead_divisor = 1) const;
  [[nodiscard]] bool fresh_key_pending() const;
  [[nodiscard]] std::uint32_t epoch() const;
  // age: time since the channel was created or last re-established.
  [[nodiscard]] std::chrono::steady_clock::duration age() const;

  // Close destroys every key; every later call fails with kFailedPrecondition.
  void Close() noexcept;

  [[nodiscard]] ChannelStats stats() const;
  [[nodiscard]] SessionRole role() const noexcept;
  [[nodiscard]] AeadSuite suite() const noexcept;
  // receive_epochs lists the epochs whose receive keys are held, oldest first.
  [[nodiscard]] std::vector<std::uint32_t> receive_epochs() const;

 private:
  friend class EnvelopeStreamWriter;
  friend class EnvelopeStreamReader;
  explicit SessionChannel(std::unique_ptr<internal::ChannelState> state) noexcept;
  std::unique_ptr<internal::ChannelState> state_;
};

// EnvelopeStreamWriter seals a large payload as a stream of chunk envelopes on a channel: each
// chunk carries the stream id (fresh per writer) and its index from 0; the last one has the
// final flag. The channel must outlive the writer.
class EnvelopeStreamWriter {
 public:
  explicit EnvelopeStreamWriter(SessionChannel& channel, ByteView aad = {});
  // Write seals a non-final chunk (1 .. max_payload bytes).
  Result<Bytes> Write(ByteView chunk);
  // Finish seals the final chunk (0 .. max_payload bytes); the writer accepts nothing afterwards.
  Result<Bytes> Finish(ByteView last_chunk);
  [[nodiscard]] std::uint64_t stream_id() const noexcept { return stream_id_; }

 private:
  SessionChannel& channel_;
  Bytes aad_;
  std::uint64_t stream_id_ = 0;
  std::uint32_t next_index_ = 0;
  bool finished_ = false;
};

// EnvelopeStreamReader opens the chunks of one stream, in order. The first chunk must have
// index 0 and fixes the stream id; every later chunk must have the same id and the next index.
// A chunk out of order, of another stream or after the final chunk is refused
// (kFailedPrecondition) before decryption, without touching the channel; Finish() fails
// (kDataLoss) when the final chunk has not been seen, so a truncated stream is detected. Memory:
// one chunk at a time.
class EnvelopeStreamReader {
 public:
  explicit EnvelopeStreamReader(SessionChannel& channel, ByteView aad = {});
  // Read returns the plaintext of the next chunk.
  Result<Bytes> Read(ByteView envelope);
  // Finish returns OkStatus() when the final chunk was read.
  [[nodiscard]] Status Finish() const;
  [[nodiscard]] bool finished() const noexcept { return finished_; }

 private:
  SessionChannel& channel_;
  Bytes aad_;
  bool started_ = false;
  bool finished_ = false;
  std::uint64_t stream_id_ = 0;
  std::uint32_t next_index_ = 0;
};

}  // namespace qsapi::session

#endif  // QSAPI_SESSION_ENVELOPE_H_
