// Session establishment (see qsapi/session/peer_session.h and docs/PROTOCOL.md, "Session
// establishment"): the initiator's and the responder's state machines over a PeerLink.
#include "qsapi/session/peer_session.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

#include "common/internal/text.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/random.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/log.h"
#include "qsapi/qkd/key_supply.h"
#include "session/internal/establishment_messages.h"

namespace qsapi::session {

using Clock = std::chrono::steady_clock;
using namespace internal;  // NOLINT(google-build-using-namespace): the message types of this file

// SessionBuilder fills a PeerSession's private fields.
struct SessionBuilder {
  static PeerSession Build(SessionRole role, const SessionId& id, AeadSuite suite, std::vector<SourceId> sources,
                           std::vector<std::string> notes, std::vector<std::string> key_ids, SessionKeys keys,
                           std::unique_ptr<PeerLink> link, std::shared_ptr<const FreshKeySupply> fresh_keys) {
    PeerSession s;
    s.session_id_.assign(id.begin(), id.end());
    s.role_ = role;
    s.suite_ = suite;
    s.sources_ = std::move(sources);
    s.notes_ = std::move(notes);
    s.qkd_key_ids_ = std::move(key_ids);
    s.link_info_ = link->info();
    s.established_at_ = std::chrono::system_clock::now();
    s.keys_ = std::move(keys);
    s.link_ = std::move(link);
    s.fresh_key_supply_ = std::move(fresh_keys);
    return s;
  }
  static void SetReestablishment(PeerSession& s, std::uint32_t min_epoch, Bytes context_hash, Bytes rekey_done) {
    s.reestablish_min_epoch_ = min_epoch;
    s.context_hash_ = std::move(context_hash);
    s.rekey_done_ = std::move(rekey_done);
  }
};

namespace {

constexpr std::string_view kLog = "session";

bool Has(const std::vector<SourceId>& v, SourceId id) { return std::find(v.begin(), v.end(), id) != v.end(); }

std::string SourcesText(const std::vector<SourceId>& v) {
  std::string out;
  for (SourceId id : v) out += (out.empty() ? "" : "+") + std::string(SourceIdName(id));
  return out;
}

std::chrono::milliseconds Remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

ErrorCode CodeForAbort(AbortCode code) {
  switch (code) {
    case AbortCode::kPolicy: return ErrorCode::kFailedPrecondition;
    case AbortCode::kQkdUnavailable: return ErrorCode::kUnavailable;
    case AbortCode::kQkdKeyMismatch: return ErrorCode::kDataLoss;
    case AbortCode::kConfirmFailed: return ErrorCode::kAuthenticationFailed;
    case AbortCode::kReplayedKeyId:
    case AbortCode::kUnknownPeer: return ErrorCode::kPermissionDenied;
    case AbortCode::kMalformed: return ErrorCode::kInvalidArgument;
    case AbortCode::kUnsupported: return ErrorCode::kUnimplemented;
    case AbortCode::kInternal: return ErrorCode::kInternal;
    case AbortCode::kUnknownSession: return ErrorCode::kNotFound;
  }
  return ErrorCode::kInternal;
}

AbortCode AbortForError(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kUnimplemented: return AbortCode::kUnsupported;
    case ErrorCode::kInvalidArgument: return AbortCode::kMalformed;
    default: return AbortCode::kInternal;
  }
}

// Exchange runs one side's messages over a link with one deadline and turns every failure into
// an Error (after telling the peer with an Abort when the link still works).
class Exchange {
 public:
  Exchange(PeerLink& link, std::string peer, Clock::time_point deadline)
      : link_(link), peer_(std::move(peer)), deadline_(deadline) {}

  Status Send(const Bytes& message) { return link_.Send(message, Remaining(deadline_)); }

  // Receive returns the next message of type `type`; an Abort from the peer becomes its error.
  Result<Bytes> Receive(std::uint8_t type, std::string_view what, std::uint8_t also = 0) {
    auto m = link_.Receive(Remaining(deadline_));
    if (!m.ok()) {
      const Error& e = m.error();
      if (e.code() == ErrorCode::kDeadlineExceeded) {
        return Error(ErrorCode::kDeadlineExceeded,
                     "session with " + peer_ + ": no " + std::string(what) + " message before the deadline");
      }
      if (e.code() == ErrorCode::kUnavailable) {
        return Unavailable("session with " + peer_ + ": the peer closed the link while we waited for its " +
                           std::string(what) + " message (it may have refused us; see its log)");
      }
      return e;
    }
    if (MessageType(*m) == kTypeAbort) {
      peer_aborted_ = true;
      auto abort = ParseAbort(*m);
      link_.Close();
      if (!abort.ok()) return Error(ErrorCode::kInternal, "session with " + peer_ + ": " + abort.error().message());
      return Error(CodeForAbort(abort->code), "session with " + peer_ + ": the peer aborted (" +
                                                  std::string(AbortCodeName(abort->code)) + "): " + abort->reason);
    }
    if (MessageType(*m) != type && (also == 0 || MessageType(*m) != also)) {
      return Fail(AbortCode::kMalformed,
                  InvalidArgument("session with " + peer_ + ": expected a " + std::string(what) +
                                  " message, got type " + std::to_string(MessageType(*m))));
    }
    return m;
  }

  // Fail sends an Abort with `code` and the error's message (best effort), closes the link and
  // returns the error.
  Error Fail(AbortCode code, Error error) {
    if (link_.is_open()) {
      (void)link_.Send(EncodeAbort(AbortMessage{.code = code, .reason = error.message()}),
                       std::chrono::milliseconds(1000));
      link_.Close();
    }
    Log(LogLevel::kWarning, kLog, error.message());
    return error;
  }

  [[nodiscard]] const std::string& peer() const { return peer_; }
  [[nodiscard]] bool peer_aborted() const { return peer_aborted_; }

 private:
  bool peer_aborted_ = false;
  PeerLink& link_;
  std::string peer_;
  Clock::time_point deadline_;
};

struct Contribution {
  std::array<std::uint8_t, kRandomSize> bytes{};
  bool qrng = false;
  std::string note;  // set when qrng = prefer fell back to the OS CSPRNG
};

Result<Contribution> DrawContribution(SourcePolicy policy, entropy::EntropyPool* pool, const std::string& peer,
                                      std::string_view side) {
  Contribution c;
  if (policy != SourcePolicy::kOff) {
    std::string reason;
    if (pool == nullptr) {
      reason = "no entropy pool with a QRNG source is configured at the " + std::string(side);
    } else {
      auto d = pool->Draw(kRandomSize);
      if (d.ok() && !d->qrng_sources.empty()) {
        std::memcpy(c.bytes.data(), d->bytes.data(), kRandomSize);
        c.qrng = true;
        return c;
      }
      reason = d.ok() ? "no healthy QRNG source fed the " + std::string(side) + "'s entropy pool"
                      : "the " + std::string(side) + "'s entropy pool failed: " + d.error().message();
    }
    if (policy == SourcePolicy::kRequire) {
      return FailedPrecondition("session with " + peer + ": qrng = require, but " + reason);
    }
    c.note = "qrng = prefer, but " + reason + "; the " + std::string(side) + "'s random came from the OS CSPRNG";
  }
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(c.bytes));
  return c;
}

Result<Bytes> ContextHash(const Bytes& init, const Bytes& accept) {
  Bytes transcript;
  transcript.reserve(init.size() + accept.size());
  transcript.insert(transcript.end(), init.begin(), init.end());
  transcript.insert(transcript.end(), accept.begin(), accept.end());
  return crypto::Hash(crypto::HashAlgorithm::kSha384, transcript);
}

// Concat joins QKD keys into one secret buffer, checking the key schedule's size range.
Result<SecretBytes> Concat(const std::vector<SecretBytes>& keys) {
  std::size_t total = 0;
  for (const auto& k : keys) total += k.size();
  if (total < kQkdKeyMinSize || total > kQkdKeyMaxSize) {
    return FailedPrecondition("the QKD keys total " + std::to_string(total) + " bytes; the key schedule takes " +
                              std::to_string(kQkdKeyMinSize) + ".." + std::to_string(kQkdKeyMaxSize) +
                              " (set key sizes and keys per session to match)");
  }
  SecretBytes out(total);
  std::size_t at = 0;
  for (const auto& k : keys) {
    if (k.size() > 0) std::memcpy(out.data() + at, k.data(), k.size());
    at += k.size();
  }
  return out;
}

std::string JoinIds(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::vector<AeadSuite> AllAeadSuites() { return {AeadSuite::kAes256Gcm, AeadSuite::kXChaCha20Poly1305}; }

std::string_view SourcePolicyName(SourcePolicy policy) noexcept {
  switch (policy) {
    case SourcePolicy::kOff: return "off";
    case SourcePolicy::kPrefer: return "prefer";
    case SourcePolicy::kRequire: return "require";
  }
  return "unknown";
}

Result<SourcePolicy> ParseSourcePolicy(std::string_view name) {
  if (name == "off") return SourcePolicy::kOff;
  if (name == "prefer") return SourcePolicy::kPrefer;
  if (name == "require") return SourcePolicy::kRequire;
  return InvalidArgument("unknown source policy \"" + std::string(name.substr(0, 32)) + "\"; use off, prefer or require");
}

std::string_view AbortCodeName(AbortCode code) noexcept {
  switch (code) {
    case AbortCode::kPolicy: return "policy";
    case AbortCode::kQkdUnavailable: return "qkd-unavailable";
    case AbortCode::kQkdKeyMismatch: return "qkd-key-mismatch";
    case AbortCode::kConfirmFailed: return "confirmation-failed";
    case AbortCode::kReplayedKeyId: return "replayed-key-id";
    case AbortCode::kUnknownPeer: return "unknown-peer";
    case AbortCode::kMalformed: return "malformed";
    case AbortCode::kUnsupported: return "unsupported";
    case AbortCode::kInternal: return "internal";
    case AbortCode::kUnknownSession: return "unknown-session";
  }
  return "unknown";
}

Status KeyIdReplayGuard::CheckAndRecord(std::span<const std::string> key_ids) {
  std::vector<std::string> folded;
  folded.reserve(key_ids.size());
  for (const auto& id : key_ids) {
    std::string f = id;
    for (char& c : f) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    folded.push_back(std::move(f));
  }
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const bool dup_here = std::find(folded.begin(), folded.begin() + static_cast<std::ptrdiff_t>(i), folded[i]) !=
                          folded.begin() + static_cast<std::ptrdiff_t>(i);
    if (seen_.contains(folded[i]) || dup_here) {
      return Error(ErrorCode::kPermissionDenied,
                   "QKD key_ID " + folded[i] + " was already used in an earlier session (replay refused)");
    }
  }
  for (auto& f : folded) {
    seen_.insert(f);
    order_.push_back(std::move(f));
    if (order_.size() > capacity_) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
  }
  return OkStatus();
}

std::size_t KeyIdReplayGuard::size() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

std::string PeerSession::session_id_hex() const { return qsapi::internal::HexEncode(session_id_); }

bool PeerSession::uses(SourceId id) const noexcept { return Has(sources_, id); }

std::string PeerSession::SourcesText() const { return session::SourcesText(sources_); }


// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// PeerChannel: envelopes over the link, and fresh QKD keys at rotation.

struct PeerChannel::PendingFreshKey {
  Bytes offer;  // the RekeyOffer message: the confirmation's associated data
  SecretBytes material;
  std::vector<std::string> key_ids;
  Clock::time_point deadline;
};

namespace {

bool IsEnvelope(const Bytes& m) { return m.size() >= 2 && m[0] == kEnvelopeMagic[0] && m[1] == kEnvelopeMagic[1]; }

Bytes ConfirmAad(const Bytes& offer) {
  Bytes aad(kRekeyConfirmLabel.begin(), kRekeyConfirmLabel.end());
  aad.insert(aad.end(), offer.begin(), offer.end());
  return aad;
}

}  // namespace

Result<std::unique_ptr<PeerChannel>> PeerChannel::Create(PeerSession session, ChannelConfig config,
                                                         Ordering ordering) {
  if (session.keys().epoch_secret.empty()) {
    return FailedPrecondition("peer channel: the session has no keys (taken, or not an established session)");
  }
  if (session.reestablishes()) {
    return FailedPrecondition("peer channel: this is a re-establishment of session " + session.session_id_hex() +
                              "; hand it to that session's PeerChannel::AcceptReestablishment (or refuse it)");
  }
  config.ordering = ordering;
  SessionKeys keys = session.TakeKeys();
  QSAPI_ASSIGN_OR_RETURN(SessionChannel channel,
                         SessionChannel::New(session.role() == SessionRole::kInitiator, session.suite(),
                                             session.session_id(), std::move(keys.epoch_secret), std::move(config)));
  const bool attached = session.link() != nullptr && session.link()->is_open();
  auto out = std::unique_ptr<PeerChannel>(new PeerChannel(std::move(session), std::move(channel)));
  if (attached) {
    out->reader_ = std::thread([p = out.get()] { p->ReaderLoop(); });
  } else {
    out->link_down_ = FailedPrecondition("session with " + out->session_.peer_name() +
                                         ": the channel has no link (envelopes travel another way; no fresh keys)");
  }
  return out;
}

PeerChannel::PeerChannel(PeerSession session, SessionChannel channel)
    : session_(std::move(session)), channel_(std::move(channel)) {
  const auto& supply = session_.fresh_key_supply();
  can_propose_ = session_.role() == SessionRole::kInitiator && supply != nullptr && supply->master != nullptr;
}

PeerChannel::~PeerChannel() { Close(); }

void PeerChannel::Close() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (!failure_) failure_ = FailedPrecondition("the peer channel is closed");
    pending_.reset();
  }
  cv_.notify_all();
  if (session_.link() != nullptr) session_.link()->Close();  // wakes the reader
  {
    std::lock_guard join_lock(join_mu_);
    if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
  }
  channel_.Close();
}

Status PeerChannel::CheckUsableLocked(bool needs_link) const {
  if (failure_) return *failure_;
  if (needs_link && link_down_) return *link_down_;
  return OkStatus();
}

Status PeerChannel::failure() const {
  std::lock_guard lock(mu_);
  return failure_ ? Status(*failure_) : OkStatus();
}

Status PeerChannel::link_status() const {
  std::lock_guard lock(mu_);
  return CheckUsableLocked(true);
}

void PeerChannel::Fail(Error error, std::optional<AbortCode> tell_peer) {
  {
    std::lock_guard lock(mu_);
    if (failure_) return;
    failure_ = error;
    pending_.reset();
  }
  Log(LogLevel::kError, kLog, "session " + session_.session_id_hex() + " closed: " + error.message());
  if (tell_peer && session_.link() != nullptr && session_.link()->is_open()) {
    (void)session_.link()->Send(EncodeAbort(AbortMessage{.code = *tell_peer, .reason = error.message()}),
                                std::chrono::milliseconds(1000));
  }
  channel_.Close();
  if (session_.link() != nullptr) session_.link()->Close();
  cv_.notify_all();
}

Status PeerChannel::CheckDeadlineLocked() {
  if (failure_) return *failure_;
  if (pending_ && Clock::now() >= pending_->deadline) {
    return Error(ErrorCode::kDeadlineExceeded, "session with " + session_.peer_name() +
                            ": the peer did not answer the fresh-key proposal in time; the two sides may now "
                            "disagree on the next epoch, so the session is closed (establish a new one)");
  }
  return OkStatus();
}

void PeerChannel::ReaderLoop() {
  PeerLink* link = session_.link();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (stop_ || failure_) return;
      if (auto st = CheckDeadlineLocked(); !st.ok()) {
        lock.unlock();
        Fail(st.error(), AbortCode::kInternal);
        return;
      }
    }
    // Time-based rotations of an initiator that is not sending: propose from here, unless a Send
    // or Rotate is under way (it proposes itself when due).
    if (can_propose_) {
      if (std::unique_lock send_lock(send_mu_, std::try_to_lock); send_lock.owns_lock()) MaybeProposeLocked(0);
    }
    auto m = link->Receive(std::chrono::milliseconds(1000));
    if (!m.ok()) {
      if (m.error().code() == ErrorCode::kDeadlineExceeded && link->is_open()) continue;
      Error lost = m.error().code() == ErrorCode::kUnavailable
                       ? Unavailable("session with " + session_.peer_name() + ": the peer closed the link")
                       : m.error();
      bool keys_stay = false;
      {
        std::lock_guard lock(mu_);
        if (stop_ || failure_) return;
        keys_stay = !pending_;
        if (keys_stay) {
          // The keys stay: queued envelopes still open, and Seal/Open go on (envelopes that travel
          // another way); Send, Receive and fresh keys need the link and now fail with this reason.
          link_down_ = lost;
          cv_.notify_all();
        }
      }
      if (keys_stay) {
        Log(LogLevel::kInfo, kLog, "session " + session_.session_id_hex() + ": link closed: " + lost.message());
        link->Close();
        return;
      }
      // A proposal was in flight: the peer may or may not have entered the new epoch.
      Fail(Error(lost.code(), lost.message() + ", during a fresh-key agreement (the two sides may disagree on the "
                                               "next epoch; establish a new session)"),
           std::nullopt);
      return;
    }
    if (IsEnvelope(*m)) {
      std::unique_lock lock(mu_);
      // While our proposal is out, its answer may be behind these envelopes: keep reading (at most
      // one agreement is in flight, so the overshoot is bounded by what the peer sends meanwhile).
      cv_.wait(lock, [&] { return stop_ || failure_ || pending_ || inbox_.size() < kMaxQueuedEnvelopes; });
      if (stop_ || failure_) return;
      inbox_.push_back(std::move(*m));
      cv_.notify_all();
      continue;
    }
    switch (MessageType(*m)) {
      case kTypeRekeyOffer: HandleOffer(*m); break;
      case kTypeRekeyDone: HandleDone(*m); break;
      case kTypeRekeyRefuse: HandleRefuse(*m); break;
      case kTypeAbort: {
        auto abort = ParseAbort(*m);
        Fail(abort.ok() ? Error(CodeForAbort(abort->code), "session with " + session_.peer_name() +
                                                              ": the peer closed the session (" +
                                                              std::string(AbortCodeName(abort->code)) +
                                                              "): " + abort->reason)
                        : Error(ErrorCode::kInternal, "session with " + session_.peer_name() + ": " +
                                                          abort.error().message()),
             std::nullopt);
        return;
      }
      default:
        Fail(InvalidArgument("session with " + session_.peer_name() + ": unexpected message of type " +
                             std::to_string(MessageType(*m)) + " on an established session"),
             AbortCode::kMalformed);
        return;
    }
  }
}

// The responder's side of a fresh-key agreement (runs on the reader thread).
void PeerChannel::HandleOffer(const Bytes& message) {
  const std::string who = "session with " + session_.peer_name() + ": fresh QKD keys: ";
  if (session_.role() != SessionRole::kResponder) {
    // The initiator may be waiting for its own proposal's answer with send_mu_ held: no refusal,
    // the peer broke the protocol.
    return Fail(InvalidArgument(who + "the responder proposed; only the session's initiator does"),
                AbortCode::kMalformed);
  }
  auto refuse = [&](AbortCode code, const std::string& reason) {
    Log(LogLevel::kWarning, kLog, who + "refused: " + reason);
    RekeyRefuseMessage r;
    std::copy(session_.session_id().begin(), session_.session_id().end(), r.session_id.begin());
    r.code = code;
    r.reason = reason;
    {
      std::lock_guard lock(mu_);
      ++fresh_stats_.refused;
      fresh_stats_.last_problem = reason;
    }
    std::lock_guard send_lock(send_mu_);
    (void)session_.link()->Send(EncodeRekeyRefuse(r));
  };
  auto offer = ParseRekeyOffer(message);
  if (!offer.ok()) return refuse(AbortCode::kMalformed, offer.error().message());
  if (!std::equal(offer->session_id.begin(), offer->session_id.end(), session_.session_id().begin())) {
    return refuse(AbortCode::kMalformed, "the proposal names another session");
  }
  const auto& supply = session_.fresh_key_supply();
  if (supply == nullptr || supply->slave == nullptr) {
    return refuse(AbortCode::kPolicy, "this side has no QKD link for this session (or qkd_at_rotation is off)");
  }
  if (offer->key_ids.size() != supply->keys_per_epoch) {
    return refuse(AbortCode::kPolicy, std::to_string(offer->key_ids.size()) + " key_IDs proposed, " +
                                          std::to_string(supply->keys_per_epoch) + " expected");
  }
  if (supply->replay_guard != nullptr) {
    if (auto st = supply->replay_guard->CheckAndRecord(offer->key_ids); !st.ok()) {
      return refuse(AbortCode::kReplayedKeyId, st.error().message());
    }
  }
  auto fetched = supply->slave->Fetch(offer->key_ids);
  if (!fetched.ok()) {
    return refuse(AbortCode::kQkdUnavailable, "the responder's KME could not deliver the keys: " +
                                                  fetched.error().ToString());
  }
  auto joined = Concat(*fetched);
  if (!joined.ok()) return refuse(AbortCode::kPolicy, joined.error().message());
  std::lock_guard send_lock(send_mu_);  // no envelope of the new epoch leaves before RekeyDone
  auto epoch = channel_.BindFreshKey(offer->min_epoch, joined->view());
  if (!epoch.ok()) {
    // Nothing was bound; send_mu_ is held, so refuse inline.
    RekeyRefuseMessage r;
    r.session_id = offer->session_id;
    r.code = epoch.error().code() == ErrorCode::kFailedPrecondition ? AbortCode::kPolicy : AbortCode::kInternal;
    r.reason = epoch.error().message();
    {
      std::lock_guard lock(mu_);
      ++fresh_stats_.refused;
      fresh_stats_.last_problem = r.reason;
    }
    Log(LogLevel::kWarning, kLog, who + "refused: " + r.reason);
    (void)session_.link()->Send(EncodeRekeyRefuse(r));
    return;
  }
  auto confirm = channel_.Seal({}, ConfirmAad(message));
  if (!confirm.ok()) {
    Fail(Error(ErrorCode::kInternal, who + "cannot seal the confirmation: " + confirm.error().message()),
         AbortCode::kInternal);
    return;
  }
  RekeyDoneMessage done{.session_id = offer->session_id, .epoch = *epoch, .confirm_envelope = std::move(*confirm)};
  if (auto st = session_.link()->Send(EncodeRekeyDone(done)); !st.ok()) {
    Fail(st.error(), std::nullopt);
    return;
  }
  std::lock_guard lock(mu_);
  ++fresh_stats_.agreed;
}

// CheckAnswerLocked: an answer is only valid for this session while a proposal is out.
Status PeerChannel::CheckAnswerLocked(std::string_view what, const std::array<std::uint8_t, kSessionIdSize>& id) const {
  if (!pending_) {
    return InvalidArgument("session with " + session_.peer_name() + ": a " + std::string(what) + " without a proposal");
  }
  if (!std::equal(id.begin(), id.end(), session_.session_id().begin())) {
    return InvalidArgument("session with " + session_.peer_name() + ": a " + std::string(what) +
                           " names another session");
  }
  return OkStatus();
}

// The initiator's side: the answers to its proposal (reader thread).
void PeerChannel::HandleDone(const Bytes& message) {
  auto done = ParseRekeyDone(message);
  if (!done.ok()) return Fail(done.error(), AbortCode::kMalformed);
  std::unique_lock lock(mu_);
  if (auto bad = CheckAnswerLocked("RekeyDone", done->session_id); !bad.ok()) {
    lock.unlock();
    return Fail(bad.error(), AbortCode::kMalformed);
  }
  auto st = channel_.CompleteFreshKey(done->epoch, pending_->material.view(), done->confirm_envelope,
                                      ConfirmAad(pending_->offer));
  if (!st.ok()) {
    const std::string ids = JoinIds(pending_->key_ids);
    lock.unlock();
    if (st.error() == AuthenticationFailed()) {
      return Fail(Error(ErrorCode::kDataLoss, "session with " + session_.peer_name() +
                                                  ": fresh-key confirmation failed: the QKD keys differ between the "
                                                  "two KMEs (key_IDs " + ids + ")"),
                  AbortCode::kQkdKeyMismatch);
    }
    return Fail(Error(st.error().code(), "session with " + session_.peer_name() + ": " + st.error().message()),
                AbortCode::kInternal);
  }
  pending_.reset();
  ++fresh_stats_.agreed;
  last_refusal_.reset();
  cv_.notify_all();
}

void PeerChannel::HandleRefuse(const Bytes& message) {
  auto refuse = ParseRekeyRefuse(message);
  if (!refuse.ok()) return Fail(refuse.error(), AbortCode::kMalformed);
  std::unique_lock lock(mu_);
  if (auto bad = CheckAnswerLocked("RekeyRefuse", refuse->session_id); !bad.ok()) {
    lock.unlock();
    return Fail(bad.error(), AbortCode::kMalformed);
  }
  channel_.CancelFreshKey();  // the peer bound nothing
  pending_.reset();
  const std::string reason = "the peer refused the fresh QKD keys (" + std::string(AbortCodeName(refuse->code)) +
                             "): " + refuse->reason;
  ++fresh_stats_.refused;
  fresh_stats_.last_problem = reason;
  last_refusal_ = Error(CodeForAbort(refuse->code), "session with " + session_.peer_name() + ": " + reason);
  skip_fresh_epoch_.store(channel_.epoch());  // this rotation goes on with the ratchet alone
  cv_.notify_all();
  lock.unlock();
  Log(LogLevel::kWarning, kLog, "session with " + session_.peer_name() + ": " + reason +
                                    "; this epoch rotates by the ratchet alone");
}

Status PeerChannel::StartFreshKeyLocked() {
  const auto& supply = session_.fresh_key_supply();
  auto skip = [&](const std::string& reason) -> Status {
    std::lock_guard lock(mu_);
    ++fresh_stats_.skipped;
    fresh_stats_.last_problem = reason;
    Log(LogLevel::kWarning, kLog, "session with " + session_.peer_name() + ": no fresh QKD keys for this rotation: " +
                                      reason + "; the ratchet alone is used");
    return Unavailable("session with " + session_.peer_name() + ": " + reason);
  };
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
  }
  // The hold first: a re-establishment or another agreement in progress makes this fail before
  // any QKD key is reserved (and so wasted).
  QSAPI_ASSIGN_OR_RETURN(std::uint32_t min_epoch, channel_.BeginFreshKey());
  auto reserved = supply->master->Reserve(supply->keys_per_epoch);
  if (!reserved.ok()) {
    channel_.CancelFreshKey();
    return skip("our KME could not supply keys: " + reserved.error().ToString());
  }
  auto joined = Concat(reserved->keys);
  if (!joined.ok()) {
    channel_.CancelFreshKey();
    return skip(joined.error().message());
  }
  RekeyOfferMessage offer;
  std::copy(session_.session_id().begin(), session_.session_id().end(), offer.session_id.begin());
  offer.min_epoch = min_epoch;
  offer.key_ids = reserved->key_ids;
  auto pending = std::make_unique<PendingFreshKey>();
  pending->offer = EncodeRekeyOffer(offer);
  pending->material = std::move(joined).value();
  pending->key_ids = reserved->key_ids;
  pending->deadline = Clock::now() + supply->timeout;
  const Bytes offer_bytes = pending->offer;
  {
    std::lock_guard lock(mu_);
    if (auto st = CheckUsableLocked(true); !st.ok()) {
      channel_.CancelFreshKey();
      return st;
    }
    pending_ = std::move(pending);
    last_refusal_.reset();
  }
  if (!session_.link()->is_open()) {
    // Closed before a byte of the offer went out: the peer bound nothing.
    std::lock_guard lock(mu_);
    pending_.reset();
    channel_.CancelFreshKey();
    if (!link_down_) link_down_ = Unavailable("session with " + session_.peer_name() + ": the link is closed");
    cv_.notify_all();
    return *link_down_;
  }
  if (auto st = session_.link()->Send(offer_bytes); !st.ok()) {
    Fail(st.error(), std::nullopt);  // part of the offer may have gone out
    return st;
  }
  return OkStatus();
}

Status PeerChannel::WaitFreshKey(std::unique_lock<std::mutex>& lock) {
  while (pending_ && !failure_) {
    const auto deadline = pending_->deadline;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && pending_ && Clock::now() >= deadline) {
      // The reader fails the channel on the deadline too; whoever is first says why.
      Status st = CheckDeadlineLocked();
      lock.unlock();
      Fail(st.error(), AbortCode::kInternal);
      lock.lock();
    }
  }
  if (failure_) return *failure_;
  if (last_refusal_) return *last_refusal_;
  return OkStatus();
}

// The initiator leads the epochs of a session with fresh keys: it proposes once half of any
// rotation limit is reached, so that its fresh-key epochs come before either side's policy would
// rotate by the ratchet alone. If no proposal can be made, the policy rotates by the ratchet at
// the full limit.
void PeerChannel::MaybeProposeLocked(std::size_t next_payload) {
  if (!can_propose_ || channel_.fresh_key_pending() || channel_.epoch() == skip_fresh_epoch_.load() ||
      !channel_.RotationDue(next_payload, kFreshKeyLeadDivisor)) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (failure_ || link_down_ || pending_) return;
  }
  if (!StartFreshKeyLocked().ok()) skip_fresh_epoch_.store(channel_.epoch());
}

Status PeerChannel::Send(ByteView plaintext, ByteView aad) {
  std::lock_guard send_lock(send_mu_);
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
  }
  MaybeProposeLocked(plaintext.size());
  Bytes envelope;
  QSAPI_RETURN_IF_ERROR(channel_.SealTo(plaintext, aad, envelope));
  return session_.link()->Send(envelope);
}

Result<Bytes> PeerChannel::Seal(ByteView plaintext, ByteView aad) {
  std::lock_guard send_lock(send_mu_);
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(false));
  }
  MaybeProposeLocked(plaintext.size());
  return channel_.Seal(plaintext, aad);
}

Result<Bytes> PeerChannel::Receive(std::chrono::milliseconds timeout, ByteView aad) {
  if (timeout.count() <= 0) {
    timeout = session_.link() != nullptr ? session_.link()->io_timeout() : std::chrono::milliseconds(1);
  }
  Bytes envelope;
  {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !inbox_.empty() || failure_ || link_down_; })) {
      return Error(ErrorCode::kDeadlineExceeded, "session with " + session_.peer_name() + ": no envelope arrived in time");
    }
    if (inbox_.empty()) return CheckUsableLocked(true).error();
    envelope = std::move(inbox_.front());
    inbox_.pop_front();
  }
  cv_.notify_all();  // room in the queue for the reader
  auto opened = channel_.Open(envelope, aad);
  if (!opened.ok() && opened.error().code() == ErrorCode::kUnavailable) {
    // An envelope of the epoch our held fresh-key agreement or re-establishment is entering (it
    // can overtake the answer when that comes over another link): open it once the hold ends.
    const auto until = Clock::now() + timeout;
    while (channel_.fresh_key_pending() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    opened = channel_.Open(envelope, aad);
    if (!opened.ok() && opened.error().code() == ErrorCode::kUnavailable) {
      std::lock_guard lock(mu_);
      inbox_.push_front(std::move(envelope));  // the next Receive tries it again, in order
    }
  }
  return opened;
}

Result<Bytes> PeerChannel::Open(ByteView envelope, ByteView aad) {
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(false));
  }
  return channel_.Open(envelope, aad);
}

Status PeerChannel::RotateWithFreshQkd() {
  if (!can_propose_) {
    return FailedPrecondition(session_.role() == SessionRole::kInitiator
                                  ? "this session has no QKD link for fresh keys (it was established without QKD, or "
                                    "qkd_at_rotation is off)"
                                  : "only the session's initiator proposes fresh QKD keys");
  }
  std::lock_guard send_lock(send_mu_);
  {
    std::unique_lock lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
    if (pending_) (void)WaitFreshKey(lock);  // a proposal from Send is out: let it finish first
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
  }
  QSAPI_RETURN_IF_ERROR(StartFreshKeyLocked());
  std::unique_lock lock(mu_);
  return WaitFreshKey(lock);
}

Status PeerChannel::Rotate() {
  bool with_link = false;
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(false));
    with_link = !link_down_.has_value();
  }
  if (can_propose_ && with_link && RotateWithFreshQkd().ok()) return OkStatus();
  {
    std::lock_guard lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(false));
  }
  return channel_.Rotate();
}

// ---------------------------------------------------------------------------------------------
// Re-establishment in place.

namespace {

Bytes ReestablishAad(const Bytes& context_hash) {
  Bytes aad(kReestablishConfirmLabel.begin(), kReestablishConfirmLabel.end());
  aad.insert(aad.end(), context_hash.begin(), context_hash.end());
  return aad;
}

}  // namespace

Status PeerEndpoint::Reestablish(PeerChannel& channel) {
  const PeerSession& s = channel.session();
  if (s.role() != SessionRole::kInitiator) {
    return FailedPrecondition("session " + s.session_id_hex() + ": only the session's initiator re-establishes it");
  }
  const PeerConfig* peer = FindPeer(s.peer_name());
  if (peer == nullptr) {
    return Error(ErrorCode::kNotFound, "session " + s.session_id_hex() + ": its peer \"" + s.peer_name() +
                                           "\" is no longer configured");
  }
  return channel.ReestablishWith([&](std::uint32_t min_epoch, bool& uncertain) -> Result<PeerSession> {
    ReestablishRequest re;
    std::copy(s.session_id().begin(), s.session_id().end(), re.session_id.begin());
    re.suite = s.suite();
    re.min_epoch = min_epoch;
    QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Connect(options_.link, peer->host, peer->port, peer->name));
    EstablishOutcome outcome;
    auto fresh = Establish(std::move(link), *peer, &re, outcome);
    uncertain = !fresh.ok() && outcome.confirm_sent && !outcome.peer_aborted;
    return fresh;
  });
}

Status PeerChannel::ReestablishWith(const std::function<Result<PeerSession>(std::uint32_t, bool&)>& establish) {
  std::uint32_t min_epoch = 0;
  {
    // The hold, not send_mu_, keeps the epoch during the handshake: seals go on in the current
    // epoch, proposals and rotations wait for the outcome.
    std::lock_guard send_lock(send_mu_);
    std::unique_lock lock(mu_);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(false));
    if (pending_) (void)WaitFreshKey(lock);  // a fresh-key proposal is out: let it finish first
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(false));
    QSAPI_ASSIGN_OR_RETURN(min_epoch, channel_.BeginFreshKey());
  }
  bool uncertain = false;
  auto fresh = establish(min_epoch, uncertain);
  const std::string who = "session " + session_.session_id_hex() + " with " + session_.peer_name();
  if (!fresh.ok()) {
    if (uncertain) {
      Fail(Error(fresh.error().code(), who + ": re-establishment failed after our confirmation (" +
                                           fresh.error().message() +
                                           "); the peer may have entered the new epoch, so the session is closed"),
           std::nullopt);
      return failure();
    }
    channel_.CancelFreshKey();
    Log(LogLevel::kWarning, kLog, who + ": re-establishment failed; the session goes on under its keys: " +
                                      fresh.error().message());
    return Error(fresh.error().code(), who + ": re-establishment failed: " + fresh.error().message());
  }
  auto done = ParseRekeyDone(fresh->rekey_done_);
  Status st = done.ok() ? OkStatus() : Status(done.error());
  if (st.ok() && !std::equal(done->session_id.begin(), done->session_id.end(), session_.session_id().begin())) {
    st = InvalidArgument("the RekeyDone names another session");
  }
  if (st.ok()) {
    st = channel_.CompleteFreshKey(done->epoch, fresh->keys().epoch_secret.view(), done->confirm_envelope,
                                   ReestablishAad(fresh->context_hash_), SessionChannel::FreshKeyKind::kReestablishment);
  }
  if (fresh->link() != nullptr) fresh->link()->Close();
  if (!st.ok()) {
    Fail(Error(st.error() == AuthenticationFailed() ? ErrorCode::kDataLoss : st.error().code(),
               who + ": the peer's confirmation of the re-established keys failed (" + st.error().message() +
                   "); the session is closed"),
         std::nullopt);
    return failure();
  }
  std::lock_guard lock(mu_);
  ++fresh_stats_.reestablished;
  fresh_stats_.reestablished_sources = fresh->SourcesText();
  Log(LogLevel::kInfo, kLog, who + ": re-established (new TLS handshake and ML-KEM; " +
                                 fresh_stats_.reestablished_sources + "), epoch " + std::to_string(done->epoch));
  return OkStatus();
}

void PeerChannel::RefuseReestablishment(PeerSession fresh, const std::string& reason, AbortCode code) {
  if (fresh.link() == nullptr) return;
  Log(LogLevel::kWarning, kLog, "re-establishment of session " + fresh.session_id_hex() + " from " +
                                    fresh.peer_name() + " refused: " + reason);
  (void)fresh.link()->Send(EncodeAbort(AbortMessage{.code = code, .reason = reason}), std::chrono::milliseconds(1000));
  fresh.link()->Close();
}

Status PeerChannel::AcceptReestablishment(PeerSession fresh) {
  if (!fresh.reestablishes()) return InvalidArgument("not a re-establishment");
  const std::string who = "session " + session_.session_id_hex() + " with " + session_.peer_name();
  auto refuse = [&](const std::string& reason, AbortCode code = AbortCode::kUnknownSession) -> Status {
    RefuseReestablishment(std::move(fresh), reason, code);
    return FailedPrecondition(who + ": re-establishment refused: " + reason);
  };
  if (fresh.session_id_hex() != session_.session_id_hex()) return refuse("another session's re-establishment");
  if (fresh.peer_name() != session_.peer_name()) {
    return refuse("the re-establishment comes from \"" + fresh.peer_name() + "\", not the session's peer");
  }
  if (session_.role() != SessionRole::kResponder || fresh.role() != SessionRole::kResponder) {
    return refuse("only the session's initiator re-establishes it");
  }
  if (fresh.suite() != session_.suite()) {
    return refuse("the re-establishment proposes another suite", AbortCode::kUnsupported);
  }
  std::lock_guard send_lock(send_mu_);  // RekeyDone before any envelope of the new epoch
  {
    std::lock_guard lock(mu_);
    if (failure_) return refuse("the session has failed: " + failure_->message(), AbortCode::kPolicy);
  }
  auto epoch = channel_.BindFreshKey(fresh.reestablish_min_epoch_, fresh.keys().epoch_secret.view(),
                                     SessionChannel::FreshKeyKind::kReestablishment);
  if (!epoch.ok()) return refuse(epoch.error().message(), AbortCode::kPolicy);
  const Bytes aad = ReestablishAad(fresh.context_hash_);
  auto confirm = channel_.Seal({}, aad);
  if (!confirm.ok()) {
    Fail(Error(ErrorCode::kInternal, who + ": cannot seal the re-establishment's confirmation: " +
                                         confirm.error().message()),
         AbortCode::kInternal);
    return failure();
  }
  RekeyDoneMessage done;
  std::copy(session_.session_id().begin(), session_.session_id().end(), done.session_id.begin());
  done.epoch = *epoch;
  done.confirm_envelope = std::move(*confirm);
  Status sent = fresh.link()->Send(EncodeRekeyDone(done));
  fresh.link()->Close();
  if (!sent.ok()) {
    // We entered the new epoch; the initiator will not (it got no RekeyDone): the session is lost.
    Fail(Error(sent.error().code(), who + ": re-establishment: RekeyDone could not be sent (" +
                                        sent.error().message() + "); the session is closed"),
         AbortCode::kInternal);
    return failure();
  }
  std::lock_guard lock(mu_);
  ++fresh_stats_.reestablished;
  fresh_stats_.reestablished_sources = fresh.SourcesText();
  Log(LogLevel::kInfo, kLog, who + ": re-established by the peer (" + fresh_stats_.reestablished_sources +
                                 "), epoch " + std::to_string(*epoch));
  return OkStatus();
}

ChannelStats PeerChannel::stats() const { return channel_.stats(); }

FreshKeyStats PeerChannel::fresh_key_stats() const {
  std::lock_guard lock(mu_);
  return fresh_stats_;
}

Result<std::unique_ptr<PeerEndpoint>> PeerEndpoint::Create(Options options, std::vector<PeerConfig> peers) {
  if (options.link == nullptr) return InvalidArgument("peer endpoint: a peer link context is required");
  std::map<std::string, PeerConfig, std::less<>> by_name;
  for (auto& p : peers) {
    const std::string who = "peer \"" + p.name + "\": ";
    if (p.name.empty()) return InvalidArgument("peer endpoint: a peer has an empty name");
    if (p.accepted_suites.empty()) return InvalidArgument(who + "accepted_suites is empty");
    for (AeadSuite s : p.accepted_suites) {
      if (NonceSize(s) == 0) return InvalidArgument(who + "unknown suite in accepted_suites");
    }
    if (NonceSize(p.suite) == 0) return InvalidArgument(who + "unknown suite");
    if (p.qkd_keys_per_session < 1 || p.qkd_keys_per_session > kMaxKeyIds) {
      return InvalidArgument(who + "qkd_keys_per_session must be 1.." + std::to_string(kMaxKeyIds));
    }
    if (p.policy.qkd == SourcePolicy::kRequire && p.qkd_master == nullptr && p.qkd_slave == nullptr) {
      return InvalidArgument(who + "qkd = require, but no QKD key supply (master or slave) is configured");
    }
    if (p.policy.qrng == SourcePolicy::kRequire && options.entropy == nullptr) {
      return InvalidArgument(who + "qrng = require, but no entropy pool is configured");
    }
    if (p.establishment_timeout.count() <= 0) return InvalidArgument(who + "establishment_timeout must be positive");
    std::string name = p.name;
    if (by_name.contains(name)) return InvalidArgument("peer endpoint: two peers are named \"" + name + "\"");
    by_name.emplace(std::move(name), std::move(p));
  }
  return std::unique_ptr<PeerEndpoint>(new PeerEndpoint(std::move(options), std::move(by_name)));
}

std::shared_ptr<const FreshKeySupply> PeerEndpoint::FreshKeysFor(const PeerConfig& peer, SessionRole role,
                                                                  bool qkd_used) const {
  if (!qkd_used || !peer.qkd_at_rotation || peer.policy.qkd == SourcePolicy::kOff) return nullptr;
  auto supply = std::make_shared<FreshKeySupply>();
  if (role == SessionRole::kInitiator) {
    if (peer.qkd_master == nullptr) return nullptr;
    supply->master = peer.qkd_master;
  } else {
    if (peer.qkd_slave == nullptr) return nullptr;
    supply->slave = peer.qkd_slave;
    supply->replay_guard = replay_guard_;
  }
  supply->keys_per_epoch = peer.qkd_keys_per_session;
  supply->timeout = peer.establishment_timeout;
  return supply;
}

const PeerConfig* PeerEndpoint::FindPeer(std::string_view name) const {
  auto it = peers_.find(name);
  return it == peers_.end() ? nullptr : &it->second;
}

Result<PeerSession> PeerEndpoint::Initiate(std::string_view peer_name) {
  const PeerConfig* peer = FindPeer(peer_name);
  if (peer == nullptr) return Error(ErrorCode::kNotFound, "no peer named \"" + std::string(peer_name) + "\" is configured");
  QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Connect(options_.link, peer->host, peer->port, peer->name));
  return InitiateOver(std::move(link), peer_name);
}

Result<PeerSession> PeerEndpoint::InitiateOver(std::unique_ptr<PeerLink> link, std::string_view peer_name) {
  if (link == nullptr) return InvalidArgument("session: no link");
  const PeerConfig* peer = FindPeer(peer_name);
  if (peer == nullptr) return Error(ErrorCode::kNotFound, "no peer named \"" + std::string(peer_name) + "\" is configured");
  EstablishOutcome outcome;
  return Establish(std::move(link), *peer, nullptr, outcome);
}

Result<PeerSession> PeerEndpoint::Establish(std::unique_ptr<PeerLink> link, const PeerConfig& peer_config,
                                            const ReestablishRequest* re, EstablishOutcome& outcome) {
  const PeerConfig* peer = &peer_config;
  Exchange ex(*link, peer->name, Clock::now() + peer->establishment_timeout);
  outcome.confirm_sent = false;
  outcome.peer_aborted = false;
  if (link->info().peer_name != peer->name) {
    return ex.Fail(AbortCode::kUnknownPeer, Error(ErrorCode::kPermissionDenied,
                                                  "session: the link's peer is \"" + link->info().peer_name +
                                                      "\", not \"" + peer->name + "\""));
  }
  std::vector<std::string> notes;

  InitMessage init;
  if (re != nullptr) {
    init.session_id = re->session_id;
    init.reestablish = true;
    init.min_epoch = re->min_epoch;
  } else {
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(init.session_id));
  }
  init.suite = re != nullptr ? re->suite : peer->suite;
  init.qkd_policy = peer->policy.qkd;
  init.qrng_policy = peer->policy.qrng;
  auto contribution = DrawContribution(peer->policy.qrng, options_.entropy.get(), peer->name, "initiator");
  if (!contribution.ok()) return ex.Fail(AbortCode::kPolicy, contribution.error());
  init.random = contribution->bytes;
  if (!contribution->note.empty()) notes.push_back(contribution->note);

  // QKD: reserve keys at our KME for this peer.
  SecretBytes qkd_material;
  if (peer->policy.qkd != SourcePolicy::kOff) {
    std::string reason;
    if (peer->qkd_master == nullptr) {
      reason = "no QKD link (master key supply) to this peer is configured";
    } else {
      auto reserved = peer->qkd_master->Reserve(peer->qkd_keys_per_session);
      if (reserved.ok()) {
        auto joined = Concat(reserved->keys);
        if (joined.ok()) {
          qkd_material = std::move(joined).value();
          init.key_ids = reserved->key_ids;
        } else {
          reason = joined.error().message();
        }
      } else {
        reason = "our KME could not supply keys: " + reserved.error().ToString();
      }
    }
    if (!reason.empty()) {
      if (peer->policy.qkd == SourcePolicy::kRequire) {
        return ex.Fail(AbortCode::kQkdUnavailable,
                       Unavailable("session with " + peer->name + ": qkd = require, but " + reason));
      }
      notes.emplace_back("qkd = prefer, but " + reason + "; the session is without QKD");
    }
  }
  init.sources.push_back(SourceId::kTlsExporter);
  if (!init.key_ids.empty()) init.sources.push_back(SourceId::kQkd);
  if (contribution->qrng) init.sources.push_back(SourceId::kQrngInitiator);

  const Bytes init_bytes = EncodeInit(init);
  QSAPI_RETURN_IF_ERROR(ex.Send(init_bytes));

  QSAPI_ASSIGN_OR_RETURN(Bytes accept_bytes, ex.Receive(kTypeAccept, "Accept"));
  auto accept = ParseAccept(accept_bytes);
  if (!accept.ok()) return ex.Fail(AbortForError(accept.error()), accept.error());
  if (!std::equal(accept->session_id.begin(), accept->session_id.end(), init.session_id.begin())) {
    return ex.Fail(AbortCode::kMalformed, InvalidArgument("session with " + peer->name +
                                                          ": the Accept message names another session id"));
  }
  const auto& acc = accept->sources;
  const bool offered_qkd = Has(init.sources, SourceId::kQkd);
  if (Has(acc, SourceId::kQkd) && !offered_qkd) {
    return ex.Fail(AbortCode::kMalformed, InvalidArgument("session with " + peer->name +
                                                          ": the peer accepted QKD, which we did not offer"));
  }
  if (Has(acc, SourceId::kQrngInitiator) != Has(init.sources, SourceId::kQrngInitiator)) {
    return ex.Fail(AbortCode::kPolicy,
                   FailedPrecondition("session with " + peer->name + ": downgraded source list: we offered " +
                                      SourcesText(init.sources) + " and the peer accepted " + SourcesText(acc) +
                                      ", changing our QRNG contribution"));
  }
  if (offered_qkd && !Has(acc, SourceId::kQkd)) {
    if (peer->policy.qkd == SourcePolicy::kRequire) {
      return ex.Fail(AbortCode::kPolicy,
                     FailedPrecondition("session with " + peer->name + ": downgraded source list refused: the peer "
                                        "accepted " + SourcesText(acc) + " without qkd, but qkd = require"));
    }
    notes.emplace_back("qkd = prefer, but the peer did not accept QKD (see its log); the session is without QKD");
  }

  auto exporter = link->ExportKeyingMaterial(kExporterLabel, init.session_id, kExporterSize);
  if (!exporter.ok()) return ex.Fail(AbortCode::kInternal, exporter.error());
  auto context_hash = ContextHash(init_bytes, accept_bytes);
  if (!context_hash.ok()) return ex.Fail(AbortCode::kInternal, context_hash.error());
  const bool qkd_used = Has(acc, SourceId::kQkd);
  KeyScheduleInput in{
      .session_id = init.session_id,
      .suite = init.suite,
      .tls_exporter = exporter->view(),
      .qkd_key = qkd_used ? qkd_material.view() : ByteView(),
      .qrng_initiator = Has(acc, SourceId::kQrngInitiator) ? ByteView(init.random) : ByteView(),
      .qrng_responder = Has(acc, SourceId::kQrngResponder) ? ByteView(accept->random) : ByteView(),
      .context_hash = *context_hash,
  };
  auto keys = DeriveSessionKeys(in);
  qkd_material = SecretBytes();  // use-once: wiped now
  if (!keys.ok()) return ex.Fail(AbortCode::kInternal, keys.error());
  if (keys->sources != acc) {
    return ex.Fail(AbortCode::kInternal, Internal("session: the key schedule used " + SourcesText(keys->sources) +
                                                  ", not the accepted " + SourcesText(acc)));
  }
  // The responder confirms first (it sent its Confirm right after Accept); ours completes the
  // exchange, so the initiator waits for one round trip after the handshake's, not two.
  QSAPI_ASSIGN_OR_RETURN(Bytes confirm_bytes, ex.Receive(kTypeConfirm, "Confirm"));
  auto confirm = ParseConfirm(confirm_bytes);
  if (!confirm.ok()) return ex.Fail(AbortForError(confirm.error()), confirm.error());
  if (!VerifyConfirmationMac(keys->confirm_key_responder.view(), false, *context_hash, confirm->mac).ok()) {
    if (qkd_used) {
      return ex.Fail(AbortCode::kQkdKeyMismatch,
                     Error(ErrorCode::kDataLoss, "session with " + peer->name +
                                                     ": key confirmation failed: the QKD keys differ between the two "
                                                     "KMEs (key_IDs " + JoinIds(init.key_ids) + ")"));
    }
    (void)ex.Fail(AbortCode::kConfirmFailed, Error(ErrorCode::kAuthenticationFailed,
                                                   "session with " + peer->name + ": key confirmation failed"));
    return AuthenticationFailed();
  }
  auto mac = ConfirmationMac(keys->confirm_key_initiator.view(), true, *context_hash);
  if (!mac.ok()) return ex.Fail(AbortCode::kInternal, mac.error());
  QSAPI_RETURN_IF_ERROR(ex.Send(EncodeConfirm(ConfirmMessage{.mac = *mac})));
  outcome.confirm_sent = true;  // from here a re-establishing responder may bind the new keys
  Bytes done_bytes;
  if (re != nullptr) {
    auto done = ex.Receive(kTypeRekeyDone, "RekeyDone");
    if (!done.ok()) {
      outcome.peer_aborted = ex.peer_aborted();
      return done.error();
    }
    done_bytes = std::move(done).value();
  }
  if (!notes.empty()) {
    Log(LogLevel::kWarning, kLog, "session with " + peer->name + " established without a preferred source: " + notes.front());
  }
  PeerSession out = SessionBuilder::Build(SessionRole::kInitiator, init.session_id, init.suite, acc, std::move(notes),
                                          qkd_used ? init.key_ids : std::vector<std::string>{}, std::move(keys).value(),
                                          std::move(link), FreshKeysFor(*peer, SessionRole::kInitiator, qkd_used));
  if (re != nullptr) SessionBuilder::SetReestablishment(out, re->min_epoch, *context_hash, std::move(done_bytes));
  return out;
}

Result<PeerSession> PeerEndpoint::Respond(std::unique_ptr<PeerLink> link) {
  if (link == nullptr) return InvalidArgument("session: no link");
  const std::string name = link->info().peer_name;
  const PeerConfig* peer = FindPeer(name);
  if (peer == nullptr) {
    Exchange ex(*link, name, Clock::now() + std::chrono::seconds(1));
    return ex.Fail(AbortCode::kUnknownPeer,
                   Error(ErrorCode::kPermissionDenied, "session: the peer \"" + name + "\" (from " +
                                                           link->info().remote_address +
                                                           ") is not a configured peer of " +
                                                           options_.link->common_name()));
  }
  Exchange ex(*link, peer->name, Clock::now() + peer->establishment_timeout);
  std::vector<std::string> notes;

  QSAPI_ASSIGN_OR_RETURN(Bytes init_bytes, ex.Receive(kTypeInit, "Init", kTypeReestablish));
  auto init = ParseInit(init_bytes);
  if (!init.ok()) return ex.Fail(AbortForError(init.error()), init.error());
  if (std::find(peer->accepted_suites.begin(), peer->accepted_suites.end(), init->suite) ==
      peer->accepted_suites.end()) {
    return ex.Fail(AbortCode::kUnsupported, Error(ErrorCode::kUnimplemented,
                                                  "session with " + peer->name + ": suite " +
                                                      std::string(AeadSuiteName(init->suite)) +
                                                      " is not accepted for this peer"));
  }

  std::vector<SourceId> accepted{SourceId::kTlsExporter};
  SecretBytes qkd_material;
  const bool offered_qkd = Has(init->sources, SourceId::kQkd);
  const bool initiator_requires_qkd = init->qkd_policy == SourcePolicy::kRequire;
  if (offered_qkd) {
    std::string reason;
    if (peer->policy.qkd == SourcePolicy::kOff) {
      reason = "qkd = off at the responder for this peer";
    } else if (peer->qkd_slave == nullptr) {
      reason = "no QKD link (slave key supply) to this peer is configured at the responder";
    } else {
      if (auto st = replay_guard_->CheckAndRecord(init->key_ids); !st.ok()) {
        return ex.Fail(AbortCode::kReplayedKeyId,
                       Error(ErrorCode::kPermissionDenied, "session with " + peer->name + ": " + st.error().message()));
      }
      auto fetched = peer->qkd_slave->Fetch(init->key_ids);
      if (fetched.ok()) {
        auto joined = Concat(*fetched);
        if (joined.ok()) {
          qkd_material = std::move(joined).value();
          accepted.push_back(SourceId::kQkd);
        } else {
          reason = joined.error().message();
        }
      } else {
        reason = "the responder's KME could not deliver the keys: " + fetched.error().ToString();
      }
    }
    if (!reason.empty()) {
      if (peer->policy.qkd == SourcePolicy::kRequire || initiator_requires_qkd) {
        const AbortCode code = peer->policy.qkd == SourcePolicy::kOff || peer->qkd_slave == nullptr
                                   ? AbortCode::kPolicy
                                   : AbortCode::kQkdUnavailable;
        return ex.Fail(code, Error(code == AbortCode::kPolicy ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable,
                                   "session with " + peer->name + ": qkd = require (" +
                                       (initiator_requires_qkd ? "initiator" : "responder") + "), but " + reason));
      }
      if (peer->policy.qkd == SourcePolicy::kPrefer) notes.emplace_back("qkd = prefer, but " + reason);
    }
  } else if (peer->policy.qkd == SourcePolicy::kRequire) {
    return ex.Fail(AbortCode::kPolicy,
                   FailedPrecondition("session with " + peer->name +
                                      ": qkd = require at the responder, but the initiator offered no QKD keys (" +
                                      SourcesText(init->sources) + ")"));
  } else if (peer->policy.qkd == SourcePolicy::kPrefer) {
    notes.emplace_back("qkd = prefer, but the initiator offered no QKD keys; the session is without QKD");
  }
  if (Has(init->sources, SourceId::kQrngInitiator)) accepted.push_back(SourceId::kQrngInitiator);
  auto contribution = DrawContribution(peer->policy.qrng, options_.entropy.get(), peer->name, "responder");
  if (!contribution.ok()) return ex.Fail(AbortCode::kPolicy, contribution.error());
  if (!contribution->note.empty()) notes.push_back(contribution->note);
  if (contribution->qrng) accepted.push_back(SourceId::kQrngResponder);

  AcceptMessage accept{.session_id = init->session_id, .random = contribution->bytes, .sources = accepted};
  const Bytes accept_bytes = EncodeAccept(accept);

  auto exporter = link->ExportKeyingMaterial(kExporterLabel, init->session_id, kExporterSize);
  if (!exporter.ok()) return ex.Fail(AbortCode::kInternal, exporter.error());
  auto context_hash = ContextHash(init_bytes, accept_bytes);
  if (!context_hash.ok()) return ex.Fail(AbortCode::kInternal, context_hash.error());
  const bool qkd_used = Has(accepted, SourceId::kQkd);
  KeyScheduleInput in{
      .session_id = init->session_id,
      .suite = init->suite,
      .tls_exporter = exporter->view(),
      .qkd_key = qkd_used ? qkd_material.view() : ByteView(),
      .qrng_initiator = Has(accepted, SourceId::kQrngInitiator) ? ByteView(init->random) : ByteView(),
      .qrng_responder = Has(accepted, SourceId::kQrngResponder) ? ByteView(accept.random) : ByteView(),
      .context_hash = *context_hash,
  };
  auto keys = DeriveSessionKeys(in);
  qkd_material = SecretBytes();  // use-once: wiped now
  if (!keys.ok()) return ex.Fail(AbortCode::kInternal, keys.error());
  if (keys->sources != accepted) {
    return ex.Fail(AbortCode::kInternal, Internal("session: the key schedule used " + SourcesText(keys->sources) +
                                                  ", not the accepted " + SourcesText(accepted)));
  }
  // Accept and our Confirm go out together: the initiator checks ours before it sends its own.
  auto mac = ConfirmationMac(keys->confirm_key_responder.view(), false, *context_hash);
  if (!mac.ok()) return ex.Fail(AbortCode::kInternal, mac.error());
  QSAPI_RETURN_IF_ERROR(ex.Send(accept_bytes));
  QSAPI_RETURN_IF_ERROR(ex.Send(EncodeConfirm(ConfirmMessage{.mac = *mac})));

  QSAPI_ASSIGN_OR_RETURN(Bytes confirm_bytes, ex.Receive(kTypeConfirm, "Confirm"));
  auto confirm = ParseConfirm(confirm_bytes);
  if (!confirm.ok()) return ex.Fail(AbortForError(confirm.error()), confirm.error());
  if (!VerifyConfirmationMac(keys->confirm_key_initiator.view(), true, *context_hash, confirm->mac).ok()) {
    if (qkd_used) {
      return ex.Fail(AbortCode::kQkdKeyMismatch,
                     Error(ErrorCode::kDataLoss, "session with " + peer->name +
                                                     ": key confirmation failed: the QKD keys differ between the two "
                                                     "KMEs (key_IDs " + JoinIds(init->key_ids) + ")"));
    }
    (void)ex.Fail(AbortCode::kConfirmFailed, Error(ErrorCode::kAuthenticationFailed,
                                                   "session with " + peer->name + ": key confirmation failed"));
    return AuthenticationFailed();
  }
  if (!notes.empty()) {
    Log(LogLevel::kWarning, kLog, "session with " + peer->name + " established without a preferred source: " + notes.front());
  }
  PeerSession out = SessionBuilder::Build(SessionRole::kResponder, init->session_id, init->suite, accepted,
                                          std::move(notes), qkd_used ? init->key_ids : std::vector<std::string>{},
                                          std::move(keys).value(), std::move(link),
                                          FreshKeysFor(*peer, SessionRole::kResponder, qkd_used));
  if (init->reestablish) SessionBuilder::SetReestablishment(out, init->min_epoch, *context_hash, {});
  return out;
}

Result<PeerSession> PeerEndpoint::AcceptAndRespond(PeerListener& listener, std::chrono::milliseconds timeout) {
  QSAPI_ASSIGN_OR_RETURN(IncomingConnection conn, listener.AcceptConnection(timeout));
  QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Accept(options_.link, std::move(conn)));
  return Respond(std::move(link));
}

}  // namespace qsapi::session
