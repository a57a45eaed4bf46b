// PeerChannel (qsapi/session/peer_channel.h): envelopes over the peer link, its reader thread,
// fresh QKD keys at rotation (the steps are in session/internal/fresh_keys.h) and re-establishment
// in place (the exchange is PeerEndpoint's, establishment.cc).
#include "qsapi/session/peer_channel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <variant>

#include "qsapi/log.h"
#include "session/internal/establishment_messages.h"
#include "session/internal/exchange.h"
#include "session/internal/fresh_keys.h"

namespace qsapi::session {

using internal::Clock;
using internal::kLogComponent;

namespace {

bool IsEnvelope(const Bytes& m) { return m.size() >= 2 && m[0] == kEnvelopeMagic[0] && m[1] == kEnvelopeMagic[1]; }

internal::SessionId IdOf(const PeerSession& s) {
  internal::SessionId id{};
  std::copy(s.session_id().begin(), s.session_id().end(), id.begin());
  return id;
}

}  // namespace

// Locks: send_mu (one Send, proposal or binding at a time: what leaves on the link and the epoch
// it is sealed in stay in order) is taken before mu (the state below). The SessionChannel is
// thread-safe itself. The reader thread takes send_mu only with try_lock, or to answer a proposal
// (the responder never holds send_mu while it waits for the reader).
struct PeerChannel::Impl {
  static constexpr unsigned kFreshKeyLeadDivisor = 2;

  Impl(PeerSession s, SessionChannel c) : session(std::move(s)), channel(std::move(c)), id(IdOf(session)) {
    const auto& supply = session.fresh_key_supply();
    can_propose = session.role() == SessionRole::kInitiator && supply != nullptr && supply->master != nullptr;
    who = "session with " + session.peer_name();
  }

  PeerLink* link() const { return session.link(); }

  // --- state checks (mu held) ---
  Status CheckUsableLocked(bool needs_link) const {
    if (failure) return *failure;
    if (needs_link && link_down) return *link_down;
    return OkStatus();
  }
  Status CheckDeadlineLocked() const {
    if (failure) return *failure;
    if (pending && Clock::now() >= pending->deadline()) {
      return DeadlineExceeded(who +
                              ": the peer did not answer the fresh-key proposal in time; the two sides may now "
                              "disagree on the next epoch, so the session is closed (establish a new one)");
    }
    return OkStatus();
  }

  // Fail stops the channel with `error` (the first reason wins), tells the peer with an Abort when
  // `tell_peer` is set, closes the link and destroys the keys.
  void Fail(const Error& error, std::optional<AbortCode> tell_peer) {
    {
      std::lock_guard lock(mu);
      if (failure) return;
      failure = error;
      pending.reset();
    }
    Log(LogLevel::kError, kLogComponent, "session " + session.session_id_hex() + " closed: " + error.message());
    if (tell_peer && link() != nullptr && link()->is_open()) {
      (void)link()->Send(EncodeAbort(internal::AbortMessage{.code = *tell_peer, .reason = error.message()}),
                         std::chrono::milliseconds(1000));
    }
    channel.Close();
    if (link() != nullptr) link()->Close();
    cv.notify_all();
  }
  Status FailAndReport(const Error& error, std::optional<AbortCode> tell_peer) {
    Fail(error, tell_peer);
    std::lock_guard lock(mu);
    return *failure;
  }

  void ReaderLoop();
  void OnLinkLost(const Error& error);
  void HandleOffer(const Bytes& message);
  void HandleDone(const Bytes& message);
  void HandleRefuse(const Bytes& message);
  Status StartFreshKeyLocked();
  Status WaitFreshKey(std::unique_lock<std::mutex>& lock);
  void MaybeProposeLocked(std::size_t next_payload);
  Status RotateWithFreshQkd();
  void CountRefusal(const std::string& reason) {
    std::lock_guard lock(mu);
    ++fresh_stats.refused;
    fresh_stats.last_problem = reason;
  }

  PeerSession session;
  SessionChannel channel;  // thread-safe itself
  const internal::SessionId id;
  std::string who;  // "session with <peer>"
  bool can_propose = false;
  std::mutex send_mu;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Bytes> inbox;                            // guarded by mu
  std::optional<internal::FreshKeyProposal> pending;  // guarded by mu: our proposal in flight
  std::optional<Error> failure;                       // guarded by mu; the keys are gone
  std::optional<Error> link_down;                     // guarded by mu; the link is gone, the keys stay
  std::optional<Error> last_refusal;                  // guarded by mu; for RotateWithFreshQkd
  // An epoch that rotates by the ratchet alone (its proposal was refused or could not be made).
  std::atomic<std::uint32_t> skip_fresh_epoch{UINT32_MAX};
  FreshKeyStats fresh_stats;  // guarded by mu
  bool stop = false;          // guarded by mu
  std::mutex join_mu;         // Close may run on two threads at once
  std::thread reader;
};

void PeerChannel::Impl::ReaderLoop() {
  for (;;) {
    {
      std::unique_lock lock(mu);
      if (stop || failure) return;
      if (auto st = CheckDeadlineLocked(); !st.ok()) {
        lock.unlock();
        Fail(st.error(), AbortCode::kInternal);
        return;
      }
    }
    // Time-based rotations of an initiator that is not sending: propose from here, unless a Send
    // or Rotate is under way (it proposes itself when due).
    if (can_propose) {
      if (std::unique_lock send_lock(send_mu, std::try_to_lock); send_lock.owns_lock()) MaybeProposeLocked(0);
    }
    auto m = link()->Receive(std::chrono::milliseconds(1000));
    if (!m.ok()) {
      if (m.error().code() == ErrorCode::kDeadlineExceeded && link()->is_open()) continue;
      OnLinkLost(m.error());
      return;
    }
    if (IsEnvelope(*m)) {
      std::unique_lock lock(mu);
      // While our proposal is out, its answer may be behind these envelopes: keep reading (at most
      // one agreement is in flight, so the overshoot is bounded by what the peer sends meanwhile).
      cv.wait(lock, [&] { return stop || failure || pending || inbox.size() < kMaxQueuedEnvelopes; });
      if (stop || failure) return;
      inbox.push_back(std::move(*m));
      cv.notify_all();
      continue;
    }
    switch (internal::MessageType(*m)) {
      case internal::kTypeRekeyOffer: HandleOffer(*m); break;
      case internal::kTypeRekeyDone: HandleDone(*m); break;
      case internal::kTypeRekeyRefuse: HandleRefuse(*m); break;
      case internal::kTypeAbort: {
        auto abort = internal::ParseAbort(*m);
        Fail(abort.ok() ? internal::PeerAbortError(who, "closed the session", abort->code, abort->reason)
                        : Internal(who + ": " + abort.error().message()),
             std::nullopt);
        return;
      }
      default:
        Fail(InvalidArgument(who + ": unexpected message of type " + std::to_string(internal::MessageType(*m)) +
                             " on an established session"),
             AbortCode::kMalformed);
        return;
    }
  }
}

void PeerChannel::Impl::OnLinkLost(const Error& error) {
  Error lost = error.code() == ErrorCode::kUnavailable ? Unavailable(who + ": the peer closed the link") : error;
  bool keys_stay = false;
  {
    std::lock_guard lock(mu);
    if (stop || failure) return;
    keys_stay = !pending;
    if (keys_stay) {
      // The keys stay: queued envelopes still open, and Seal/Open go on (envelopes that travel
      // another way); Send, Receive and fresh keys need the link and now fail with this reason.
      link_down = lost;
      cv.notify_all();
    }
  }
  if (keys_stay) {
    Log(LogLevel::kInfo, kLogComponent, "session " + session.session_id_hex() + ": link closed: " + lost.message());
    link()->Close();
    return;
  }
  // A proposal was in flight: the peer may or may not have entered the new epoch.
  Fail(Error(lost.code(), lost.message() + ", during a fresh-key agreement (the two sides may disagree on the "
                                           "next epoch; establish a new session)"),
       std::nullopt);
}

// The responder's side of a fresh-key agreement (reader thread).
void PeerChannel::Impl::HandleOffer(const Bytes& message) {
  const std::string prefix = who + ": fresh QKD keys: ";
  if (session.role() != SessionRole::kResponder) {
    // The initiator may be waiting for its own proposal's answer with send_mu held: no refusal,
    // the peer broke the protocol.
    return Fail(InvalidArgument(prefix + "the responder proposed; only the session's initiator does"),
                AbortCode::kMalformed);
  }
  auto refuse = [&](const internal::Refusal& r) {
    Log(LogLevel::kWarning, kLogComponent, prefix + "refused: " + r.error.message());
    CountRefusal(r.error.message());
    (void)link()->Send(
        EncodeRekeyRefuse(internal::RekeyRefuseMessage{.session_id = id, .code = r.code, .reason = r.error.message()}));
  };
  auto fetched = internal::FetchOfferedKeys(id, session.fresh_key_supply().get(), message);
  if (auto* r = std::get_if<internal::Refusal>(&fetched)) {
    std::lock_guard send_lock(send_mu);
    return refuse(*r);
  }
  std::lock_guard send_lock(send_mu);  // no envelope of the new epoch leaves before RekeyDone
  auto answer = internal::BindOfferedKeys(channel, std::get<internal::OfferedKeys>(fetched), message);
  if (!answer.ok()) return Fail(Internal(prefix + answer.error().message()), AbortCode::kInternal);
  if (auto* r = std::get_if<internal::Refusal>(&*answer)) return refuse(*r);  // nothing was bound
  if (auto st = link()->Send(std::get<Bytes>(*answer)); !st.ok()) return Fail(st.error(), std::nullopt);
  std::lock_guard lock(mu);
  ++fresh_stats.agreed;
}

// The initiator's side: the answers to its proposal (reader thread).
void PeerChannel::Impl::HandleDone(const Bytes& message) {
  auto done = internal::ParseRekeyDone(message);
  if (!done.ok()) return Fail(done.error(), AbortCode::kMalformed);
  std::unique_lock lock(mu);
  if (!pending || !pending->Answers(done->session_id)) {
    lock.unlock();
    return Fail(
        InvalidArgument(who + (pending ? ": a RekeyDone names another session" : ": a RekeyDone without a proposal")),
        AbortCode::kMalformed);
  }
  if (auto st = pending->Complete(channel, *done, who); !st.ok()) {
    lock.unlock();
    return Fail(st.error(),
                st.error().code() == ErrorCode::kDataLoss ? AbortCode::kQkdKeyMismatch : AbortCode::kInternal);
  }
  pending.reset();
  ++fresh_stats.agreed;
  last_refusal.reset();
  cv.notify_all();
}

void PeerChannel::Impl::HandleRefuse(const Bytes& message) {
  auto refusal = internal::ParseRekeyRefuse(message);
  if (!refusal.ok()) return Fail(refusal.error(), AbortCode::kMalformed);
  std::unique_lock lock(mu);
  if (!pending || !pending->Answers(refusal->session_id)) {
    lock.unlock();
    return Fail(InvalidArgument(
                    who + (pending ? ": a RekeyRefuse names another session" : ": a RekeyRefuse without a proposal")),
                AbortCode::kMalformed);
  }
  channel.CancelFreshKey();  // the peer bound nothing
  pending.reset();
  const std::string reason =
      "the peer refused the fresh QKD keys (" + std::string(AbortCodeName(refusal->code)) + "): " + refusal->reason;
  ++fresh_stats.refused;
  fresh_stats.last_problem = reason;
  last_refusal = Error(internal::CodeForAbort(refusal->code), who + ": " + reason);
  skip_fresh_epoch.store(channel.epoch());  // this rotation goes on with the ratchet alone
  cv.notify_all();
  lock.unlock();
  Log(LogLevel::kWarning, kLogComponent, who + ": " + reason + "; this epoch rotates by the ratchet alone");
}

// StartFreshKeyLocked reserves keys and sends a proposal; send_mu held. An error means no
// proposal is pending (the reason is counted as a skip when our KME had no keys).
Status PeerChannel::Impl::StartFreshKeyLocked() {
  {
    std::lock_guard lock(mu);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
  }
  // The hold first: a re-establishment or another agreement in progress makes this fail before
  // any QKD key is reserved (and so wasted).
  QSAPI_ASSIGN_OR_RETURN(std::uint32_t min_epoch, channel.BeginFreshKey());
  auto proposal =
      internal::FreshKeyProposal::Prepare(session.session_id(), min_epoch, *session.fresh_key_supply(), Clock::now());
  if (!proposal.ok()) {
    channel.CancelFreshKey();
    const std::string reason = proposal.error().message();
    std::lock_guard lock(mu);
    ++fresh_stats.skipped;
    fresh_stats.last_problem = reason;
    Log(LogLevel::kWarning, kLogComponent,
        who + ": no fresh QKD keys for this rotation: " + reason + "; the ratchet alone is used");
    return Unavailable(who + ": " + reason);
  }
  const Bytes offer = proposal->offer();
  {
    std::lock_guard lock(mu);
    if (auto st = CheckUsableLocked(true); !st.ok()) {
      channel.CancelFreshKey();
      return st;
    }
    pending = std::move(proposal).value();
    last_refusal.reset();
  }
  if (!link()->is_open()) {
    // Closed before a byte of the offer went out: the peer bound nothing.
    std::lock_guard lock(mu);
    pending.reset();
    channel.CancelFreshKey();
    if (!link_down) link_down = Unavailable(who + ": the link is closed");
    cv.notify_all();
    return *link_down;
  }
  if (auto st = link()->Send(offer); !st.ok()) {
    Fail(st.error(), std::nullopt);  // part of the offer may have gone out
    return st;
  }
  return OkStatus();
}

Status PeerChannel::Impl::WaitFreshKey(std::unique_lock<std::mutex>& lock) {
  while (pending && !failure) {
    const auto deadline = pending->deadline();
    if (cv.wait_until(lock, deadline) == std::cv_status::timeout && pending && Clock::now() >= deadline) {
      // The reader fails the channel on the deadline too; whoever is first says why.
      Status st = CheckDeadlineLocked();
      lock.unlock();
      Fail(st.error(), AbortCode::kInternal);
      lock.lock();
    }
  }
  if (failure) return *failure;
  if (last_refusal) return *last_refusal;
  return OkStatus();
}

// The initiator leads the epochs of a session with fresh keys: it proposes once half of any
// rotation limit is reached, so that its fresh-key epochs come before either side's policy would
// rotate by the ratchet alone. If no proposal can be made, the policy rotates by the ratchet at
// the full limit. send_mu held.
void PeerChannel::Impl::MaybeProposeLocked(std::size_t next_payload) {
  if (!can_propose || channel.fresh_key_pending() || channel.epoch() == skip_fresh_epoch.load() ||
      !channel.RotationDue(next_payload, kFreshKeyLeadDivisor)) {
    return;
  }
  {
    std::lock_guard lock(mu);
    if (failure || link_down || pending) return;
  }
  if (!StartFreshKeyLocked().ok()) skip_fresh_epoch.store(channel.epoch());
}

Status PeerChannel::Impl::RotateWithFreshQkd() {
  if (!can_propose) {
    return FailedPrecondition(session.role() == SessionRole::kInitiator
                                  ? "this session has no QKD link for fresh keys (it was established without QKD, or "
                                    "qkd_at_rotation is off)"
                                  : "only the session's initiator proposes fresh QKD keys");
  }
  std::lock_guard send_lock(send_mu);
  {
    std::unique_lock lock(mu);
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
    if (pending) (void)WaitFreshKey(lock);  // a proposal from Send is out: let it finish first
    QSAPI_RETURN_IF_ERROR(CheckUsableLocked(true));
  }
  QSAPI_RETURN_IF_ERROR(StartFreshKeyLocked());
  std::unique_lock lock(mu);
  return WaitFreshKey(lock);
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<PeerChannel>> PeerChannel::Create(PeerSession session, ChannelConfig config, Ordering ordering) {
  if (session.keys().epoch_secret.size() == 0) {
    return FailedPrecondition("peer channel: the session has no keys (taken, or not an established session)");
  }
  if (session.reestablishes()) {
    return FailedPrecondition("peer channel: this is a re-establishment of session " + session.session_id_hex() +
                              "; hand it to that session's PeerChannel::AcceptReestablishment (or refuse it)");
  }
  config.ordering = ordering;
  SessionKeys keys = session.TakeKeys();
  QSAPI_ASSIGN_OR_RETURN(SessionChannel channel,
                         SessionChannel::New(session.role(), session.suite(), session.session_id(),
                                             std::move(keys.epoch_secret), std::move(config)));
  const bool attached = session.link() != nullptr && session.link()->is_open();
  auto impl = std::make_unique<Impl>(std::move(session), std::move(channel));
  Impl* p = impl.get();
  auto out = std::unique_ptr<PeerChannel>(new PeerChannel(std::move(impl)));
  if (attached) {
    p->reader = std::thread([p] { p->ReaderLoop(); });
  } else {
    p->link_down =
        FailedPrecondition(p->who + ": the channel has no link (envelopes travel another way; no fresh keys)");
  }
  return out;
}

PeerChannel::PeerChannel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PeerChannel::~PeerChannel() { Close(); }

void PeerChannel::Close() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    m.stop = true;
    if (!m.failure) m.failure = FailedPrecondition("the peer channel is closed");
    m.pending.reset();
  }
  m.cv.notify_all();
  if (m.link() != nullptr) m.link()->Close();  // wakes the reader
  {
    std::lock_guard join_lock(m.join_mu);
    if (m.reader.joinable() && m.reader.get_id() != std::this_thread::get_id()) m.reader.join();
  }
  m.channel.Close();
}

const PeerSession& PeerChannel::session() const noexcept { return impl_->session; }

Status PeerChannel::failure() const {
  std::lock_guard lock(impl_->mu);
  return impl_->failure ? Status(*impl_->failure) : OkStatus();
}

Status PeerChannel::link_status() const {
  std::lock_guard lock(impl_->mu);
  return impl_->CheckUsableLocked(true);
}

Status PeerChannel::Send(ByteView plaintext, ByteView aad) {
  Impl& m = *impl_;
  std::lock_guard send_lock(m.send_mu);
  {
    std::lock_guard lock(m.mu);
    QSAPI_RETURN_IF_ERROR(m.CheckUsableLocked(true));
  }
  m.MaybeProposeLocked(plaintext.size());
  Bytes envelope;
  QSAPI_RETURN_IF_ERROR(m.channel.SealTo(plaintext, aad, envelope));
  return m.link()->Send(envelope);
}

Result<Bytes> PeerChannel::Seal(ByteView plaintext, ByteView aad) {
  Impl& m = *impl_;
  std::lock_guard send_lock(m.send_mu);
  {
    std::lock_guard lock(m.mu);
    QSAPI_RETURN_IF_ERROR(m.CheckUsableLocked(false));
  }
  m.MaybeProposeLocked(plaintext.size());
  return m.channel.Seal(plaintext, aad);
}

Result<Bytes> PeerChannel::Receive(std::chrono::milliseconds timeout, ByteView aad) {
  Impl& m = *impl_;
  if (timeout.count() <= 0) timeout = m.link() != nullptr ? m.link()->io_timeout() : std::chrono::milliseconds(1);
  Bytes envelope;
  {
    std::unique_lock lock(m.mu);
    if (!m.cv.wait_for(lock, timeout, [&] { return !m.inbox.empty() || m.failure || m.link_down; })) {
      return DeadlineExceeded(m.who + ": no envelope arrived in time");
    }
    if (m.inbox.empty()) return m.CheckUsableLocked(true).error();
    envelope = std::move(m.inbox.front());
    m.inbox.pop_front();
  }
  m.cv.notify_all();  // room in the queue for the reader
  auto opened = m.channel.Open(envelope, aad);
  if (!opened.ok() && opened.error().code() == ErrorCode::kUnavailable) {
    // An envelope of the epoch our held fresh-key agreement or re-establishment is entering (it
    // can overtake the answer when that comes over another link): open it once the hold ends.
    const auto until = Clock::now() + timeout;
    while (m.channel.fresh_key_pending() && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    opened = m.channel.Open(envelope, aad);
    if (!opened.ok() && opened.error().code() == ErrorCode::kUnavailable) {
      std::lock_guard lock(m.mu);
      m.inbox.push_front(std::move(envelope));  // the next Receive tries it again, in order
    }
  }
  return opened;
}

Result<Bytes> PeerChannel::Open(ByteView envelope, ByteView aad) {
  {
    std::lock_guard lock(impl_->mu);
    QSAPI_RETURN_IF_ERROR(impl_->CheckUsableLocked(false));
  }
  return impl_->channel.Open(envelope, aad);
}

Status PeerChannel::RotateWithFreshQkd() { return impl_->RotateWithFreshQkd(); }

Status PeerChannel::Rotate() {
  Impl& m = *impl_;
  bool with_link = false;
  {
    std::lock_guard lock(m.mu);
    QSAPI_RETURN_IF_ERROR(m.CheckUsableLocked(false));
    with_link = !m.link_down.has_value();
  }
  if (m.can_propose && with_link && m.RotateWithFreshQkd().ok()) return OkStatus();
  {
    std::lock_guard lock(m.mu);
    QSAPI_RETURN_IF_ERROR(m.CheckUsableLocked(false));
  }
  return m.channel.Rotate();
}

ChannelStats PeerChannel::stats() const { return impl_->channel.stats(); }

FreshKeyStats PeerChannel::fresh_key_stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->fresh_stats;
}

std::chrono::steady_clock::duration PeerChannel::age() const { return impl_->channel.age(); }

// ---------------------------------------------------------------------------------------------
// Re-establishment in place.

Result<ReestablishTicket> PeerChannel::BeginReestablishment() {
  Impl& m = *impl_;
  if (m.session.role() != SessionRole::kInitiator) {
    return FailedPrecondition("session " + m.session.session_id_hex() +
                              ": only the session's initiator re-establishes it");
  }
  // The hold, not send_mu, keeps the epoch during the handshake: seals go on in the current
  // epoch, proposals and rotations wait for the outcome.
  std::lock_guard send_lock(m.send_mu);
  std::unique_lock lock(m.mu);
  QSAPI_RETURN_IF_ERROR(m.CheckUsableLocked(false));
  if (m.pending) (void)m.WaitFreshKey(lock);  // a fresh-key proposal is out: let it finish first
  QSAPI_RETURN_IF_ERROR(m.CheckUsableLocked(false));
  QSAPI_ASSIGN_OR_RETURN(std::uint32_t min_epoch, m.channel.BeginFreshKey());
  return ReestablishTicket{
      .session_id = m.id, .suite = m.session.suite(), .min_epoch = min_epoch, .peer_name = m.session.peer_name()};
}

Status PeerChannel::FinishReestablishment(ReestablishOutcome outcome) {
  Impl& m = *impl_;
  const std::string who = "session " + m.session.session_id_hex() + " with " + m.session.peer_name();
  Result<PeerSession>& fresh = outcome.session;
  if (!fresh.ok()) {
    if (outcome.uncertain) {
      return m.FailAndReport(Error(fresh.error().code(), who + ": re-establishment failed after our confirmation (" +
                                                             fresh.error().message() +
                                                             "); the peer may have entered the new epoch, so the "
                                                             "session is closed"),
                             std::nullopt);
    }
    m.channel.CancelFreshKey();
    Log(LogLevel::kWarning, kLogComponent,
        who + ": re-establishment failed; the session goes on under its keys: " + fresh.error().message());
    return Error(fresh.error().code(), who + ": re-establishment failed: " + fresh.error().message());
  }
  Status st = OkStatus();
  std::uint32_t epoch = 0;
  if (!fresh->reestablishment() || fresh->session_id_hex() != m.session.session_id_hex()) {
    st = InvalidArgument("the outcome is not a re-establishment of this session");
  } else {
    auto done = internal::ParseRekeyDone(fresh->reestablishment()->rekey_done);
    st = done.ok() ? OkStatus() : Status(done.error());
    if (st.ok() && done->session_id != m.id) st = InvalidArgument("the RekeyDone names another session");
    if (st.ok()) {
      epoch = done->epoch;
      st = m.channel.CompleteFreshKey(done->epoch, fresh->keys().epoch_secret.view(), done->confirm_envelope,
                                      internal::ReestablishConfirmAad(fresh->reestablishment()->context_hash),
                                      SessionChannel::FreshKeyKind::kReestablishment);
    }
  }
  if (fresh->link() != nullptr) fresh->link()->Close();
  if (!st.ok()) {
    return m.FailAndReport(Error(st.error() == AuthenticationFailed() ? ErrorCode::kDataLoss : st.error().code(),
                                 who + ": the peer's confirmation of the re-established keys failed (" +
                                     st.error().message() + "); the session is closed"),
                           std::nullopt);
  }
  std::lock_guard lock(m.mu);
  ++m.fresh_stats.reestablished;
  m.fresh_stats.reestablished_sources = fresh->SourcesText();
  Log(LogLevel::kInfo, kLogComponent,
      who + ": re-established (new TLS handshake and ML-KEM; " + m.fresh_stats.reestablished_sources + "), epoch " +
          std::to_string(epoch));
  return OkStatus();
}

void PeerChannel::RefuseReestablishment(PeerSession fresh, const std::string& reason, AbortCode code) {
  if (fresh.link() == nullptr) return;
  Log(LogLevel::kWarning, kLogComponent,
      "re-establishment of session " + fresh.session_id_hex() + " from " + fresh.peer_name() + " refused: " + reason);
  (void)fresh.link()->Send(EncodeAbort(internal::AbortMessage{.code = code, .reason = reason}),
                           std::chrono::milliseconds(1000));
  fresh.link()->Close();
}

Status PeerChannel::AcceptReestablishment(PeerSession fresh) {
  Impl& m = *impl_;
  if (!fresh.reestablishes()) return InvalidArgument("not a re-establishment");
  const std::string who = "session " + m.session.session_id_hex() + " with " + m.session.peer_name();
  auto refuse = [&](const std::string& reason, AbortCode code = AbortCode::kUnknownSession) -> Status {
    RefuseReestablishment(std::move(fresh), reason, code);
    return FailedPrecondition(who + ": re-establishment refused: " + reason);
  };
  if (fresh.session_id_hex() != m.session.session_id_hex()) return refuse("another session's re-establishment");
  if (fresh.peer_name() != m.session.peer_name()) {
    return refuse("the re-establishment comes from \"" + fresh.peer_name() + "\", not the session's peer");
  }
  if (m.session.role() != SessionRole::kResponder || fresh.role() != SessionRole::kResponder) {
    return refuse("only the session's initiator re-establishes it");
  }
  if (fresh.suite() != m.session.suite()) {
    return refuse("the re-establishment proposes another suite", AbortCode::kUnsupported);
  }
  std::lock_guard send_lock(m.send_mu);  // RekeyDone before any envelope of the new epoch
  {
    std::lock_guard lock(m.mu);
    if (m.failure) return refuse("the session has failed: " + m.failure->message(), AbortCode::kPolicy);
  }
  const Reestablishment& re = *fresh.reestablishment();
  auto epoch = m.channel.BindFreshKey(re.min_epoch, fresh.keys().epoch_secret.view(),
                                      SessionChannel::FreshKeyKind::kReestablishment);
  if (!epoch.ok()) return refuse(epoch.error().message(), AbortCode::kPolicy);
  auto confirm = m.channel.Seal({}, internal::ReestablishConfirmAad(re.context_hash));
  if (!confirm.ok()) {
    return m.FailAndReport(
        Internal(who + ": cannot seal the re-establishment's confirmation: " + confirm.error().message()),
        AbortCode::kInternal);
  }
  const internal::RekeyDoneMessage done{.session_id = m.id, .epoch = *epoch, .confirm_envelope = std::move(*confirm)};
  Status sent = fresh.link()->Send(EncodeRekeyDone(done));
  fresh.link()->Close();
  if (!sent.ok()) {
    // We entered the new epoch; the initiator will not (it got no RekeyDone): the session is lost.
    return m.FailAndReport(Error(sent.error().code(), who + ": re-establishment: RekeyDone could not be sent (" +
                                                          sent.error().message() + "); the session is closed"),
                           AbortCode::kInternal);
  }
  std::lock_guard lock(m.mu);
  ++m.fresh_stats.reestablished;
  m.fresh_stats.reestablished_sources = fresh.SourcesText();
  Log(LogLevel::kInfo, kLogComponent,
      who + ": re-established by the peer (" + m.fresh_stats.reestablished_sources + "), epoch " +
          std::to_string(*epoch));
  return OkStatus();
}

}  // namespace qsapi::session
