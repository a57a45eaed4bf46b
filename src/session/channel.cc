// SessionChannel, EnvelopeStreamWriter and EnvelopeStreamReader (qsapi/session/envelope.h): the
// per-side state machine of a peer session's payload protection.
#include <algorithm>
#include <array>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "qsapi/crypto/aead.h"
#include "qsapi/session/envelope.h"
#include "session/internal/envelope_format.h"
#include "session/internal/replay_window.h"

namespace qsapi::session {
namespace internal {
namespace {

using Clock = std::chrono::steady_clock;

crypto::AeadAlgorithm AlgorithmFor(AeadSuite suite) {
  return suite == AeadSuite::kAes256Gcm ? crypto::AeadAlgorithm::kAes256Gcm : crypto::AeadAlgorithm::kXChaCha20Poly1305;
}

struct StreamFields {
  std::uint64_t stream_id;
  std::uint32_t chunk_index;
  bool final_chunk;
};

struct SendKeys {
  std::uint32_t epoch;
  crypto::Aead aead;
  Bytes nonce_prefix;
  std::uint64_t next_seq = 0;
  std::uint64_t bytes = 0;
  Clock::time_point started;
};

struct ReceiveKeys {
  std::uint32_t epoch;
  crypto::Aead aead;
  Bytes nonce_prefix;
  ReplayWindow window;
  bool retiring = false;  // an envelope of a newer epoch has been opened
  Clock::time_point retire_at;
  std::uint64_t newer_messages = 0;
};

// Candidate is an epoch derived but not yet entered: entered only once it proved itself (an
// envelope authenticated under it) or the sender decided to rotate.
struct Candidate {
  std::uint32_t epoch;
  EpochSecret chain_secret;
  crypto::Aead send_aead;
  Bytes send_prefix;
  crypto::Aead recv_aead;
  Bytes recv_prefix;
  // Epochs the peer passed through on its way to `epoch` (a jump of more than one): their receive
  // keys, for envelopes of those epochs still in flight (they enter in grace).
  std::vector<Candidate> skipped;
};

// Nonce = prefix XOR (zeros || I2OSP(seq, 8)).
std::array<std::uint8_t, 24> MakeNonce(const Bytes& prefix, std::uint64_t seq) {
  std::array<std::uint8_t, 24> nonce{};
  std::copy(prefix.begin(), prefix.end(), nonce.begin());
  const std::size_t n = prefix.size();
  for (std::size_t i = 0; i < 8; ++i) nonce[n - 1 - i] ^= static_cast<std::uint8_t>(seq >> (8 * i));
  return nonce;
}

}  // namespace

class ChannelState {
 public:
  ChannelState(SessionRole own_role, AeadSuite aead_suite, ByteView sid, ChannelConfig cfg)
      : role(own_role), suite(aead_suite), config(std::move(cfg)) {
    std::copy(sid.begin(), sid.end(), session_id.begin());
    created = Now();
  }

  Clock::time_point Now() const { return config.clock ? config.clock() : Clock::now(); }

  // Derive computes the keys of `target` (> chain_epoch) from the chain secret, through
  // ratchet-only steps for the epochs in between; `fresh` (fresh key material agreed with the peer)
  // is mixed into the step that enters `target` itself.
  Result<Candidate> Derive(std::uint32_t target, ByteView fresh = {}) const {
    EpochSecret secret = chain_secret.Clone();
    std::vector<Candidate> skipped;
    for (std::uint32_t n = chain_epoch + 1; n <= target && n != 0; ++n) {
      QSAPI_ASSIGN_OR_RETURN(secret, NextEpochSecret(secret, n == target ? fresh : ByteView(), session_id, n));
      if (n < target) {
        QSAPI_ASSIGN_OR_RETURN(Candidate passed, FromSecret(n, secret.Clone()));
        passed.chain_secret = EpochSecret();  // only its receive key is kept
        skipped.push_back(std::move(passed));
      }
    }
    QSAPI_ASSIGN_OR_RETURN(Candidate c, FromSecret(target, std::move(secret)));
    c.skipped = std::move(skipped);
    return c;
  }

  Result<Candidate> FromSecret(std::uint32_t epoch, EpochSecret secret) const {
    QSAPI_ASSIGN_OR_RETURN(EpochKeys keys, DeriveEpochKeys(secret, suite, session_id, epoch));
    const bool initiator = role == SessionRole::kInitiator;
    const SymmetricKey& send_key = initiator ? keys.initiator_key : keys.responder_key;
    const SymmetricKey& recv_key = initiator ? keys.responder_key : keys.initiator_key;
    QSAPI_ASSIGN_OR_RETURN(crypto::Aead send_aead, crypto::Aead::New(AlgorithmFor(suite), send_key));
    QSAPI_ASSIGN_OR_RETURN(crypto::Aead recv_aead, crypto::Aead::New(AlgorithmFor(suite), recv_key));
    return Candidate{.epoch = epoch,
                     .chain_secret = std::move(secret),
                     .send_aead = std::move(send_aead),
                     .send_prefix = initiator ? keys.initiator_nonce_prefix : keys.responder_nonce_prefix,
                     .recv_aead = std::move(recv_aead),
                     .recv_prefix = initiator ? keys.responder_nonce_prefix : keys.initiator_nonce_prefix,
                     .skipped = {}};
  }

  void Enter(Candidate c, Clock::time_point now, bool count_rotation) {
    chain_secret = std::move(c.chain_secret);  // the previous chain secret is zeroised here
    chain_epoch = c.epoch;
    send.reset();
    send.emplace(SendKeys{.epoch = c.epoch,
                          .aead = std::move(c.send_aead),
                          .nonce_prefix = std::move(c.send_prefix),
                          .next_seq = 0,
                          .bytes = 0,
                          .started = now});
    for (Candidate& passed : c.skipped) {
      recv.push_back(ReceiveKeys{.epoch = passed.epoch,
                                 .aead = std::move(passed.recv_aead),
                                 .nonce_prefix = std::move(passed.recv_prefix),
                                 .window = {},
                                 .retiring = true,
                                 .retire_at = now + config.grace_time,
                                 .newer_messages = 0});
    }
    recv.push_back(ReceiveKeys{.epoch = c.epoch,
                               .aead = std::move(c.recv_aead),
                               .nonce_prefix = std::move(c.recv_prefix),
                               .window = {},
                               .retiring = false,
                               .retire_at = {},
                               .newer_messages = 0});
    while (recv.size() > config.max_receive_epochs) recv.erase(recv.begin());
    stats.epoch = chain_epoch;
    if (count_rotation) ++stats.rotations;
  }

  [[nodiscard]] bool PolicyDue(Clock::time_point now, std::size_t next_payload) const {
    const RotationPolicy& policy = config.rotation;
    return send->next_seq >= policy.max_messages || send->bytes + next_payload > policy.max_bytes ||
           now - send->started >= policy.max_age;
  }

  // EnterWithMaterial enters `target` (> chain_epoch) with `key` mixed into the step that enters
  // it; nothing changes on failure.
  // When `confirm` is given it must be an envelope of `target` from the peer that opens (empty
  // payload, `confirm_aad`) under the new epoch's receive key, or nothing changes and the result
  // is AuthenticationFailed(); its sequence number is then marked as received.
  Status EnterWithMaterial(std::uint32_t target, ByteView key, const ParsedEnvelope* confirm = nullptr,
                           ByteView confirm_aad = {},
                           SessionChannel::FreshKeyKind kind = SessionChannel::FreshKeyKind::kQkd) {
    QSAPI_ASSIGN_OR_RETURN(Candidate c, Derive(target, key));
    if (confirm != nullptr) {
      Bytes plaintext;
      if (confirm->header.epoch != target || confirm->header.session_id != session_id ||
          confirm->header.suite != suite || confirm->header.is_stream_chunk() ||
          confirm->ciphertext.size() != kEnvelopeTagSize) {
        return InvalidArgument("the confirmation is not an empty envelope of this session's epoch " +
                               std::to_string(target));
      }
      if (!OpenWith(c.recv_aead, c.recv_prefix, *confirm, confirm_aad, plaintext)) {
        return AuthenticationFailed();
      }
    }
    Enter(std::move(c), Now(), true);
    if (confirm != nullptr) recv.back().window.Accept(confirm->header.sequence);
    if (kind == SessionChannel::FreshKeyKind::kReestablishment) {
      ++stats.reestablishments;
      created = Now();
    } else {
      ++stats.fresh_key_epochs;
    }
    return OkStatus();
  }

  Status RotateLocked(Clock::time_point now) {
    if (chain_epoch == UINT32_MAX) {
      return FailedPrecondition("the session has used all its epochs: establish a new session");
    }
    QSAPI_ASSIGN_OR_RETURN(Candidate c, Derive(chain_epoch + 1));
    Enter(std::move(c), now, true);
    return OkStatus();
  }

  void ExpireGrace(Clock::time_point now) {
    std::erase_if(recv, [&](const ReceiveKeys& r) {
      return r.retiring && (now >= r.retire_at || r.newer_messages >= config.grace_messages);
    });
  }

  void CloseLocked() noexcept {
    closed = true;
    stats.closed = true;
    chain_secret = EpochSecret();
    send.reset();
    recv.clear();
  }

  Status CheckOpen() const {
    if (closed) return FailedPrecondition("the session channel is closed; establish a new session");
    return OkStatus();
  }

  Status Seal(ByteView plaintext, ByteView aad, const StreamFields* stream, Bytes& out) {
    std::lock_guard lock(mu);
    QSAPI_RETURN_IF_ERROR(CheckOpen());
    if (plaintext.size() > config.max_payload) {
      return ResourceExhausted("payload of " + std::to_string(plaintext.size()) +
                               " bytes exceeds the envelope bound of " + std::to_string(config.max_payload) +
                               " bytes (use a stream)");
    }
    const auto now = Now();
    if (now - created >= config.max_session_age) {
      return FailedPrecondition("the session is older than its maximum age: establish a new session");
    }
    if (recv.size() > 1) ExpireGrace(now);
    if (send->next_seq == UINT64_MAX) {
      QSAPI_RETURN_IF_ERROR(RotateLocked(now));  // even during a hold: a nonce must never repeat
    } else if (PolicyDue(now, plaintext.size()) && !hold) {
      QSAPI_RETURN_IF_ERROR(RotateLocked(now));
    }

    EnvelopeHeader h;
    h.suite = suite;
    h.session_id = session_id;
    h.epoch = send->epoch;
    h.sequence = send->next_seq;
    if (stream != nullptr) {
      h.flags = static_cast<std::uint8_t>(kFlagStreamChunk | (stream->final_chunk ? kFlagFinalChunk : 0));
      h.stream_id = stream->stream_id;
      h.chunk_index = stream->chunk_index;
    }
    const std::size_t header_size = HeaderSize(h);
    out.resize(header_size + plaintext.size() + kEnvelopeTagSize);
    WriteEnvelopeHeader(h, plaintext.size(), out.data());
    const auto nonce = MakeNonce(send->nonce_prefix, h.sequence);
    Bytes full_aad;
    ByteView ad(out.data(), header_size);
    if (!aad.empty()) {
      full_aad.reserve(header_size + aad.size());
      full_aad.assign(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(header_size));
      full_aad.insert(full_aad.end(), aad.begin(), aad.end());
      ad = full_aad;
    }
    if (auto st = send->aead.SealWithNonce(ByteView(nonce).first(send->nonce_prefix.size()), plaintext, ad,
                                           std::span(out).subspan(header_size));
        !st.ok()) {
      out.clear();
      return st.error();
    }
    ++send->next_seq;
    send->bytes += plaintext.size();
    ++stats.messages_sealed;
    stats.bytes_sealed += plaintext.size();
    return OkStatus();
  }

  // OpenWith decrypts `env` with one receive key; on failure `plaintext` is cleared.
  static bool OpenWith(const crypto::Aead& aead, const Bytes& prefix, const ParsedEnvelope& env, ByteView aad,
                       Bytes& plaintext) {
    const auto nonce = MakeNonce(prefix, env.header.sequence);
    Bytes full_aad;
    ByteView ad = env.header_bytes;
    if (!aad.empty()) {
      full_aad.reserve(ad.size() + aad.size());
      full_aad.assign(ad.begin(), ad.end());
      full_aad.insert(full_aad.end(), aad.begin(), aad.end());
      ad = full_aad;
    }
    plaintext.resize(env.ciphertext.size() - kEnvelopeTagSize);
    if (!aead.OpenWithNonce(ByteView(nonce).first(prefix.size()), env.ciphertext, ad, plaintext).ok()) {
      plaintext.clear();  // OpenWithNonce has zeroised it
      return false;
    }
    return true;
  }

  Status Open(const ParsedEnvelope& env, ByteView aad, Bytes& plaintext) {
    std::lock_guard lock(mu);
    QSAPI_RETURN_IF_ERROR(CheckOpen());
    const EnvelopeHeader& h = env.header;
    if (h.suite != suite) {
      return InvalidArgument("envelope suite " + std::string(AeadSuiteName(h.suite)) +
                             " does not match the session's " + std::string(AeadSuiteName(suite)));
    }
    if (h.session_id != session_id) return InvalidArgument("envelope belongs to another session");
    // The clock is read only when something depends on it (an older epoch in grace, a new epoch).
    Clock::time_point now_value{};
    bool have_now = false;
    auto now = [&] {
      if (!have_now) {
        now_value = Now();
        have_now = true;
      }
      return now_value;
    };
    if (recv.size() > 1) ExpireGrace(now());

    ReceiveKeys* keys = nullptr;
    for (auto& r : recv) {
      if (r.epoch == h.epoch) keys = &r;
    }
    std::optional<Candidate> candidate;
    if (keys == nullptr) {
      if (h.epoch < chain_epoch) {
        return FailedPrecondition("envelope of retired epoch " + std::to_string(h.epoch) +
                                  " (the session no longer holds its receive key)");
      }
      if (h.epoch - chain_epoch > config.max_epochs_ahead) {
        return FailedPrecondition("envelope epoch " + std::to_string(h.epoch) + " is more than " +
                                  std::to_string(config.max_epochs_ahead) + " epochs ahead of the session's " +
                                  std::to_string(chain_epoch));
      }
      QSAPI_ASSIGN_OR_RETURN(Candidate c, Derive(h.epoch));
      candidate.emplace(std::move(c));
    }
    const ReplayWindow fresh_window;
    const ReplayWindow& window = keys != nullptr ? keys->window : fresh_window;
    switch (window.Check(h.sequence)) {
      case ReplayWindow::Verdict::kFresh: break;
      case ReplayWindow::Verdict::kReplayed:
        ++stats.replays_rejected;
        return FailedPrecondition("replayed envelope: sequence " + std::to_string(h.sequence) + " of epoch " +
                                  std::to_string(h.epoch) + " was already opened");
      case ReplayWindow::Verdict::kTooOld:
        ++stats.replays_rejected;
        return FailedPrecondition("envelope sequence " + std::to_string(h.sequence) +
                                  " is below the replay window of epoch " + std::to_string(h.epoch));
    }
    if (config.ordering == Ordering::kStrict && last_opened &&
        (h.epoch < last_opened->first || (h.epoch == last_opened->first && h.sequence <= last_opened->second))) {
      ++stats.reordered_rejected;
      return FailedPrecondition("envelope out of order: epoch " + std::to_string(h.epoch) + " sequence " +
                                std::to_string(h.sequence) + " after epoch " + std::to_string(last_opened->first) +
                                " sequence " + std::to_string(last_opened->second) +
                                " (this channel requires envelopes in order)");
    }

    const crypto::Aead& aead = keys != nullptr ? keys->aead : candidate->recv_aead;
    const Bytes& prefix = keys != nullptr ? keys->nonce_prefix : candidate->recv_prefix;
    if (!OpenWith(aead, prefix, env, aad, plaintext)) {
      if (hold && candidate) {
        return Unavailable("envelope of epoch " + std::to_string(h.epoch) +
                           " does not open while a fresh-key agreement is in progress; retry after it completes");
      }
      ++stats.failed_decryptions;
      if (stats.failed_decryptions >= config.max_failed_decryptions) CloseLocked();
      return AuthenticationFailed();
    }

    if (candidate) {
      Enter(std::move(*candidate), now(), true);
      keys = &recv.back();
    }
    keys->window.Accept(h.sequence);
    last_opened.emplace(h.epoch, h.sequence);
    ++stats.messages_opened;
    // Grace: once the peer shows it has moved to epoch h.epoch, older receive keys start retiring.
    for (auto& r : recv) {
      if (r.epoch >= h.epoch) continue;
      if (!r.retiring) {
        r.retiring = true;
        r.retire_at = now() + config.grace_time;
      }
      ++r.newer_messages;
    }
    if (recv.size() > 1) ExpireGrace(now());
    return OkStatus();
  }

  std::mutex mu;
  const SessionRole role;
  const AeadSuite suite;
  std::array<std::uint8_t, kSessionIdSize> session_id{};
  const ChannelConfig config;
  Clock::time_point created;
  EpochSecret chain_secret;
  std::uint32_t chain_epoch = 0;
  std::optional<SendKeys> send;
  std::vector<ReceiveKeys> recv;
  std::uint64_t next_stream_id = 1;
  ChannelStats stats;
  bool closed = false;
  bool hold = false;  // a fresh-key agreement is in progress (BeginFreshKey)
  std::optional<std::pair<std::uint32_t, std::uint64_t>> last_opened;  // (epoch, sequence), for kStrict
};

}  // namespace internal

using internal::ChannelState;
using internal::SendKeys;

Result<SessionChannel> SessionChannel::New(SessionRole role, AeadSuite suite, ByteView session_id,
                                           EpochSecret epoch_secret, ChannelConfig config) {
  if (suite != AeadSuite::kAes256Gcm && suite != AeadSuite::kXChaCha20Poly1305) {
    return InvalidArgument("unknown session AEAD suite " + std::to_string(static_cast<unsigned>(suite)));
  }
  if (session_id.size() != kSessionIdSize) return InvalidArgument("session id must be 16 bytes");
  if (epoch_secret.size() != kEpochSecretSize) return InvalidArgument("epoch secret must be 48 bytes");
  if (config.max_payload == 0 || config.max_payload > kMaxEnvelopePayloadLimit) {
    return InvalidArgument("max_payload must be 1.." + std::to_string(kMaxEnvelopePayloadLimit) + " bytes");
  }
  if (config.rotation.max_messages == 0 || config.rotation.max_bytes < config.max_payload ||
      config.rotation.max_age.count() <= 0) {
    return InvalidArgument("rotation policy needs max_messages >= 1, max_bytes >= max_payload and max_age > 0");
  }
  if (config.max_receive_epochs == 0 || config.max_failed_decryptions == 0 || config.grace_messages == 0) {
    return InvalidArgument("max_receive_epochs, max_failed_decryptions and grace_messages must be >= 1");
  }
  auto state = std::make_unique<ChannelState>(role, suite, session_id, std::move(config));
  const auto now = state->Now();
  QSAPI_ASSIGN_OR_RETURN(internal::Candidate c, state->FromSecret(0, std::move(epoch_secret)));
  state->Enter(std::move(c), now, false);
  return SessionChannel(std::move(state));
}

SessionChannel::SessionChannel(std::unique_ptr<ChannelState> state) noexcept : state_(std::move(state)) {}
SessionChannel::SessionChannel(SessionChannel&&) noexcept = default;
SessionChannel& SessionChannel::operator=(SessionChannel&&) noexcept = default;
SessionChannel::~SessionChannel() = default;

namespace {
Error MovedFrom() { return FailedPrecondition("the session channel was moved from"); }
}  // namespace

Result<Bytes> SessionChannel::Seal(ByteView plaintext, ByteView aad) {
  Bytes out;
  QSAPI_RETURN_IF_ERROR(SealTo(plaintext, aad, out));
  return out;
}

Status SessionChannel::SealTo(ByteView plaintext, ByteView aad, Bytes& out) {
  if (!state_) return MovedFrom();
  return state_->Seal(plaintext, aad, nullptr, out);
}

Result<Bytes> SessionChannel::Open(ByteView envelope, ByteView aad) {
  Bytes out;
  QSAPI_RETURN_IF_ERROR(OpenTo(envelope, aad, out));
  return out;
}

Status SessionChannel::OpenTo(ByteView envelope, ByteView aad, Bytes& out) {
  if (!state_) return MovedFrom();
  QSAPI_ASSIGN_OR_RETURN(ParsedEnvelope env, ParseEnvelope(envelope, state_->config.max_payload));
  if (env.header.is_stream_chunk()) {
    return InvalidArgument("the envelope is a stream chunk: open it with an EnvelopeStreamReader");
  }
  return state_->Open(env, aad, out);
}

Status SessionChannel::Rotate() {
  if (!state_) return MovedFrom();
  std::lock_guard lock(state_->mu);
  QSAPI_RETURN_IF_ERROR(state_->CheckOpen());
  if (state_->hold) return FailedPrecondition("a fresh-key agreement is in progress; rotate after it completes");
  return state_->RotateLocked(state_->Now());
}

namespace {
Status CheckMaterialSize(ByteView qkd_key) {
  if (qkd_key.size() < kQkdKeyMinSize || qkd_key.size() > kQkdKeyMaxSize) {
    return InvalidArgument("fresh QKD material must be " + std::to_string(kQkdKeyMinSize) + ".." +
                           std::to_string(kQkdKeyMaxSize) + " bytes, got " + std::to_string(qkd_key.size()));
  }
  return OkStatus();
}
}  // namespace

Result<std::uint32_t> SessionChannel::BeginFreshKey() {
  if (!state_) return MovedFrom();
  std::lock_guard lock(state_->mu);
  QSAPI_RETURN_IF_ERROR(state_->CheckOpen());
  if (state_->hold) return FailedPrecondition("a fresh-key agreement is already in progress");
  if (state_->chain_epoch == UINT32_MAX) {
    return FailedPrecondition("the session has used all its epochs: establish a new session");
  }
  state_->hold = true;
  return state_->chain_epoch + 1;
}

Status SessionChannel::CompleteFreshKey(std::uint32_t epoch, ByteView qkd_key, ByteView confirm_envelope,
                                        ByteView confirm_aad, FreshKeyKind kind) {
  if (!state_) return MovedFrom();
  QSAPI_RETURN_IF_ERROR(CheckMaterialSize(qkd_key));
  std::optional<ParsedEnvelope> confirm;
  if (!confirm_envelope.empty()) {
    auto parsed = ParseEnvelope(confirm_envelope, state_->config.max_payload);
    if (!parsed.ok()) return InvalidArgument("the confirmation is not an envelope: " + parsed.error().message());
    confirm.emplace(*parsed);
  }
  std::lock_guard lock(state_->mu);
  QSAPI_RETURN_IF_ERROR(state_->CheckOpen());
  if (!state_->hold) return FailedPrecondition("no fresh-key agreement is in progress");
  if (epoch <= state_->chain_epoch) {
    return FailedPrecondition("the peer bound the fresh key to epoch " + std::to_string(epoch) +
                              ", but this side is already at epoch " + std::to_string(state_->chain_epoch));
  }
  if (epoch - state_->chain_epoch > state_->config.max_epochs_ahead + 1) {
    return FailedPrecondition("the peer bound the fresh key to epoch " + std::to_string(epoch) + ", too far ahead of " +
                              std::to_string(state_->chain_epoch));
  }
  QSAPI_RETURN_IF_ERROR(state_->EnterWithMaterial(epoch, qkd_key, confirm ? &*confirm : nullptr, confirm_aad, kind));
  state_->hold = false;
  return OkStatus();
}

void SessionChannel::CancelFreshKey() noexcept {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  state_->hold = false;
}

Result<std::uint32_t> SessionChannel::BindFreshKey(std::uint32_t min_epoch, ByteView qkd_key, FreshKeyKind kind) {
  if (!state_) return MovedFrom();
  QSAPI_RETURN_IF_ERROR(CheckMaterialSize(qkd_key));
  std::lock_guard lock(state_->mu);
  QSAPI_RETURN_IF_ERROR(state_->CheckOpen());
  if (state_->hold) return FailedPrecondition("this side is itself proposing a fresh key; one agreement at a time");
  const std::uint32_t current = state_->chain_epoch;
  if (current == UINT32_MAX) return FailedPrecondition("the session has used all its epochs: establish a new session");
  if (min_epoch > current && min_epoch - current > state_->config.max_epochs_ahead + 1) {
    return FailedPrecondition("fresh key proposed for epoch " + std::to_string(min_epoch) + ", too far ahead of " +
                              std::to_string(current));
  }
  const std::uint32_t target = std::max(current + 1, min_epoch);
  if (target - min_epoch > state_->config.max_epochs_ahead) {
    // The proposer may still be at min_epoch - 1; it could not follow a bigger jump.
    return FailedPrecondition("this side is at epoch " + std::to_string(current) + ", more than " +
                              std::to_string(state_->config.max_epochs_ahead) + " epochs past the proposed " +
                              std::to_string(min_epoch) + ": the proposer could not follow");
  }
  QSAPI_RETURN_IF_ERROR(state_->EnterWithMaterial(target, qkd_key, nullptr, {}, kind));
  return target;
}

bool SessionChannel::RotationDue(std::size_t next_payload, unsigned lead_divisor) const {
  if (!state_) return false;
  std::lock_guard lock(state_->mu);
  if (state_->closed || !state_->send) return false;
  const SendKeys& send = *state_->send;
  if (send.next_seq == UINT64_MAX) return true;
  const std::uint64_t d = lead_divisor == 0 ? 1 : lead_divisor;
  const RotationPolicy& policy = state_->config.rotation;
  return send.next_seq >= std::max<std::uint64_t>(policy.max_messages / d, 1) ||
         send.bytes + next_payload > policy.max_bytes / d ||
         state_->Now() - send.started >= policy.max_age / static_cast<std::int64_t>(d);
}

bool SessionChannel::fresh_key_pending() const {
  if (!state_) return false;
  std::lock_guard lock(state_->mu);
  return state_->hold;
}

std::chrono::steady_clock::duration SessionChannel::age() const {
  if (!state_) return {};
  std::lock_guard lock(state_->mu);
  return state_->Now() - state_->created;
}

std::uint32_t SessionChannel::epoch() const {
  if (!state_) return 0;
  std::lock_guard lock(state_->mu);
  return state_->chain_epoch;
}

void SessionChannel::Close() noexcept {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  state_->CloseLocked();
}

ChannelStats SessionChannel::stats() const {
  if (!state_) return ChannelStats{.closed = true};
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

SessionRole SessionChannel::role() const noexcept { return state_ ? state_->role : SessionRole::kInitiator; }
AeadSuite SessionChannel::suite() const noexcept { return state_ ? state_->suite : AeadSuite::kAes256Gcm; }

std::vector<std::uint32_t> SessionChannel::receive_epochs() const {
  std::vector<std::uint32_t> out;
  if (!state_) return out;
  std::lock_guard lock(state_->mu);
  state_->ExpireGrace(state_->Now());
  for (const auto& r : state_->recv) out.push_back(r.epoch);
  return out;
}

// Streams.

EnvelopeStreamWriter::EnvelopeStreamWriter(SessionChannel& channel, ByteView aad)
    : channel_(channel), aad_(aad.begin(), aad.end()) {
  if (channel_.state_) {
    std::lock_guard lock(channel_.state_->mu);
    stream_id_ = channel_.state_->next_stream_id++;
  }
}

Result<Bytes> EnvelopeStreamWriter::Write(ByteView chunk) {
  if (finished_) return FailedPrecondition("the stream is finished");
  if (chunk.empty()) return InvalidArgument("a non-final stream chunk must not be empty");
  if (next_index_ == UINT32_MAX) return ResourceExhausted("the stream has reached its maximum number of chunks");
  if (!channel_.state_) return MovedFrom();
  const internal::StreamFields fields{.stream_id = stream_id_, .chunk_index = next_index_, .final_chunk = false};
  Bytes out;
  QSAPI_RETURN_IF_ERROR(channel_.state_->Seal(chunk, aad_, &fields, out));
  ++next_index_;
  return out;
}

Result<Bytes> EnvelopeStreamWriter::Finish(ByteView last_chunk) {
  if (finished_) return FailedPrecondition("the stream is finished");
  if (!channel_.state_) return MovedFrom();
  const internal::StreamFields fields{.stream_id = stream_id_, .chunk_index = next_index_, .final_chunk = true};
  Bytes out;
  QSAPI_RETURN_IF_ERROR(channel_.state_->Seal(last_chunk, aad_, &fields, out));
  finished_ = true;
  return out;
}

EnvelopeStreamReader::EnvelopeStreamReader(SessionChannel& channel, ByteView aad)
    : channel_(channel), aad_(aad.begin(), aad.end()) {}

Result<Bytes> EnvelopeStreamReader::Read(ByteView envelope) {
  if (!channel_.state_) return MovedFrom();
  if (finished_) return FailedPrecondition("stream chunk after the final chunk");
  QSAPI_ASSIGN_OR_RETURN(ParsedEnvelope env, ParseEnvelope(envelope, channel_.state_->config.max_payload));
  const EnvelopeHeader& h = env.header;
  if (!h.is_stream_chunk()) return InvalidArgument("the envelope is not a stream chunk");
  if (!started_) {
    if (h.chunk_index != 0) {
      return FailedPrecondition("stream chunk " + std::to_string(h.chunk_index) + " where chunk 0 was expected");
    }
  } else {
    if (h.stream_id != stream_id_) return FailedPrecondition("stream chunk of another stream");
    if (h.chunk_index != next_index_) {
      return FailedPrecondition("stream chunk " + std::to_string(h.chunk_index) + " where chunk " +
                                std::to_string(next_index_) + " was expected (reordered or lost)");
    }
  }
  if (!h.is_final_chunk() && env.ciphertext.size() == kEnvelopeTagSize) {
    return InvalidArgument("a non-final stream chunk must not be empty");
  }
  Bytes plaintext;
  QSAPI_RETURN_IF_ERROR(channel_.state_->Open(env, aad_, plaintext));
  started_ = true;
  stream_id_ = h.stream_id;
  ++next_index_;
  if (h.is_final_chunk()) finished_ = true;
  return plaintext;
}

Status EnvelopeStreamReader::Finish() const {
  if (finished_) return OkStatus();
  return DataLoss("the stream ended before its final chunk (truncated after " + std::to_string(next_index_) +
                  " chunks)");
}

}  // namespace qsapi::session
