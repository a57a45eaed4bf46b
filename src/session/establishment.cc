// Session establishment (qsapi/session/peer_session.h; docs/PROTOCOL.md, "Session
// establishment"): PeerEndpoint's two roles over a PeerLink. Each role is the same four steps:
// exchange Init and Accept (session/internal/exchange.h), negotiate the sources
// (session/internal/negotiation.h, pure), derive and confirm the keys
// (session/internal/key_confirmation.h, shared by both roles), build the PeerSession.
#include <algorithm>
#include <cstring>
#include <utility>
#include <variant>

#include "common/internal/text.h"
#include "qsapi/crypto/random.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/log.h"
#include "qsapi/qkd/key_supply.h"
#include "qsapi/session/peer_channel.h"
#include "qsapi/session/peer_session.h"
#include "session/internal/establishment_messages.h"
#include "session/internal/exchange.h"
#include "session/internal/key_confirmation.h"
#include "session/internal/negotiation.h"

namespace qsapi::session {

using internal::Clock;
using internal::Decision;
using internal::Exchange;
using internal::kLogComponent;
using internal::Negotiated;
using internal::QkdAttempt;
using internal::Refusal;

// SessionBuilder fills a PeerSession's private fields.
struct SessionBuilder {
  struct Parts {
    SessionRole role;
    const internal::SessionId& id;
    AeadSuite suite;
    Negotiated negotiated;
    std::vector<std::string> qkd_key_ids;  // empty unless QKD was used
    SessionKeys keys;
    std::unique_ptr<PeerLink> link;
    std::shared_ptr<const FreshKeySupply> fresh_keys;
    std::optional<Reestablishment> reestablishment;
  };
  static PeerSession Build(Parts p) {
    PeerSession s;
    s.session_id_.assign(p.id.begin(), p.id.end());
    s.role_ = p.role;
    s.suite_ = p.suite;
    s.sources_ = std::move(p.negotiated.sources);
    s.notes_ = std::move(p.negotiated.notes);
    s.qkd_key_ids_ = std::move(p.qkd_key_ids);
    s.link_info_ = p.link->info();
    s.established_at_ = std::chrono::system_clock::now();
    s.keys_ = std::move(p.keys);
    s.link_ = std::move(p.link);
    s.fresh_key_supply_ = std::move(p.fresh_keys);
    s.reestablishment_ = std::move(p.reestablishment);
    if (!s.notes_.empty()) {
      Log(LogLevel::kWarning, kLogComponent,
          "session with " + s.peer_name() + " established without a preferred source: " + s.notes_.front());
    }
    return s;
  }
};

namespace {

struct Contribution {
  std::array<std::uint8_t, internal::kRandomSize> bytes{};
  internal::QrngDraw draw;
};

// DrawContribution draws this side's 32-byte random: from the entropy pool when a healthy QRNG
// source fed the draw, else (qrng = prefer or off) from the OS CSPRNG; qrng = require fails.
Result<Contribution> DrawContribution(SourcePolicy policy, entropy::EntropyPool* pool, const std::string& peer,
                                      std::string_view side) {
  Contribution c;
  if (policy != SourcePolicy::kOff) {
    std::string reason;
    if (pool == nullptr) {
      reason = "no entropy pool with a QRNG source is configured at the " + std::string(side);
    } else {
      auto d = pool->Draw(internal::kRandomSize);
      if (d.ok() && !d->qrng_sources.empty()) {
        std::memcpy(c.bytes.data(), d->bytes.data(), internal::kRandomSize);
        c.draw.from_qrng = true;
        return c;
      }
      reason = d.ok() ? "no healthy QRNG source fed the " + std::string(side) + "'s entropy pool"
                      : "the " + std::string(side) + "'s entropy pool failed: " + d.error().message();
    }
    if (policy == SourcePolicy::kRequire) {
      return FailedPrecondition("session with " + peer + ": qrng = require, but " + reason);
    }
    c.draw.note = "qrng = prefer, but " + reason + "; the " + std::string(side) + "'s random came from the OS CSPRNG";
  }
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(c.bytes));
  return c;
}

// Refuse ends the exchange with the refusal. A failed key confirmation without QKD returns the
// plain AuthenticationFailed() (the reason is in the log and the peer's Abort).
Error Refuse(Exchange& ex, Refusal refusal) {
  const bool confirm_failed = refusal.code == AbortCode::kConfirmFailed;
  Error e = ex.Fail(std::move(refusal));
  return confirm_failed ? AuthenticationFailed() : e;
}

}  // namespace

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
    if (p.qkd_keys_per_session < 1 || p.qkd_keys_per_session > internal::kMaxKeyIds) {
      return InvalidArgument(who + "qkd_keys_per_session must be 1.." + std::to_string(internal::kMaxKeyIds));
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
  if (peer == nullptr) return NotFound("no peer named \"" + std::string(peer_name) + "\" is configured");
  QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Connect(options_.link, peer->host, peer->port, peer->name));
  return InitiateOver(std::move(link), peer_name);
}

Result<PeerSession> PeerEndpoint::InitiateOver(std::unique_ptr<PeerLink> link, std::string_view peer_name) {
  if (link == nullptr) return InvalidArgument("session: no link");
  const PeerConfig* peer = FindPeer(peer_name);
  if (peer == nullptr) return NotFound("no peer named \"" + std::string(peer_name) + "\" is configured");
  EstablishOutcome outcome;
  return Establish(std::move(link), *peer, nullptr, outcome);
}

// The initiator: Init (or Reestablish), then Accept and the responder's Confirm, then ours (and,
// re-establishing, the responder's RekeyDone).
Result<PeerSession> PeerEndpoint::Establish(std::unique_ptr<PeerLink> link, const PeerConfig& peer,
                                            const ReestablishRequest* re, EstablishOutcome& outcome) {
  Exchange ex(*link, peer.name, Clock::now() + peer.establishment_timeout);
  outcome = {};
  if (link->info().peer_name != peer.name) {
    return ex.Fail(AbortCode::kUnknownPeer, PermissionDenied("session: the link's peer is \"" + link->info().peer_name +
                                                             "\", not \"" + peer.name + "\""));
  }
  internal::InitMessage init;
  if (re != nullptr) {
    init.session_id = re->session_id;
    init.reestablish = true;
    init.min_epoch = re->min_epoch;
  } else {
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(init.session_id));
  }
  init.suite = re != nullptr ? re->suite : peer.suite;
  init.qkd_policy = peer.policy.qkd;
  init.qrng_policy = peer.policy.qrng;
  auto contribution = DrawContribution(peer.policy.qrng, options_.entropy.get(), peer.name, "initiator");
  if (!contribution.ok()) return ex.Fail(AbortCode::kPolicy, contribution.error());
  init.random = contribution->bytes;

  // QKD: reserve keys at our KME for this peer.
  SecretBytes qkd_material;
  QkdAttempt qkd;
  if (auto blocker = internal::InitiatorQkdBlocker(peer.policy, peer.qkd_master != nullptr)) {
    qkd = QkdAttempt::NotConfigured(*blocker);
  } else if (peer.policy.qkd != SourcePolicy::kOff) {
    auto reserved = peer.qkd_master->Reserve(peer.qkd_keys_per_session);
    if (!reserved.ok()) {
      qkd = QkdAttempt::Failed("our KME could not supply keys: " + reserved.error().ToString());
    } else if (auto joined = internal::JoinQkdKeys(reserved->keys); !joined.ok()) {
      qkd = QkdAttempt::Failed(joined.error().message());
    } else {
      qkd_material = std::move(joined).value();
      init.key_ids = reserved->key_ids;
      qkd = QkdAttempt::Obtained();
    }
  }
  Decision offer = internal::PlanOffer(peer.name, peer.policy, qkd, contribution->draw);
  if (auto* r = std::get_if<Refusal>(&offer)) return ex.Fail(std::move(*r));
  Negotiated offered = std::get<Negotiated>(std::move(offer));
  init.sources = offered.sources;

  const Bytes init_bytes = EncodeInit(init);
  QSAPI_RETURN_IF_ERROR(ex.Send(init_bytes));
  QSAPI_ASSIGN_OR_RETURN(Bytes accept_bytes, ex.Receive(internal::kTypeAccept, "Accept"));
  auto accept = internal::ParseAccept(accept_bytes);
  if (!accept.ok()) return ex.Fail(internal::AbortForError(accept.error()), accept.error());
  if (accept->session_id != init.session_id) {
    return ex.Fail(AbortCode::kMalformed,
                   InvalidArgument("session with " + peer.name + ": the Accept message names another session id"));
  }
  Decision checked = internal::CheckAccept(peer.name, peer.policy, init.sources, accept->sources);
  if (auto* r = std::get_if<Refusal>(&checked)) return ex.Fail(std::move(*r));
  Negotiated negotiated = std::get<Negotiated>(std::move(checked));
  negotiated.notes.insert(negotiated.notes.begin(), offered.notes.begin(), offered.notes.end());

  auto derived = internal::DeriveKeys(*link, internal::Transcript{.session_id = init.session_id,
                                                                  .suite = init.suite,
                                                                  .accepted = negotiated.sources,
                                                                  .qkd_key = qkd_material.view(),
                                                                  .initiator_random = init.random,
                                                                  .responder_random = accept->random,
                                                                  .init_message = init_bytes,
                                                                  .accept_message = accept_bytes});
  qkd_material = SecretBytes();  // use-once: wiped now
  if (!derived.ok()) return ex.Fail(AbortCode::kInternal, derived.error());
  const bool qkd_used = internal::HasSource(negotiated.sources, SourceId::kQkd);
  std::vector<std::string> used_key_ids = qkd_used ? init.key_ids : std::vector<std::string>{};
  // The responder confirms first (it sent its Confirm right after Accept); ours completes the
  // exchange, so the initiator waits for one round trip after the handshake's, not two.
  QSAPI_ASSIGN_OR_RETURN(Bytes confirm_bytes, ex.Receive(internal::kTypeConfirm, "Confirm"));
  if (auto r = internal::CheckPeerConfirm(*derived, SessionRole::kInitiator, confirm_bytes, peer.name, used_key_ids)) {
    return Refuse(ex, std::move(*r));
  }
  auto own_confirm = internal::EncodeOwnConfirm(*derived, SessionRole::kInitiator);
  if (!own_confirm.ok()) return ex.Fail(AbortCode::kInternal, own_confirm.error());
  QSAPI_RETURN_IF_ERROR(ex.Send(*own_confirm));
  outcome.confirm_sent = true;  // from here a re-establishing responder may bind the new keys
  std::optional<Reestablishment> reestablishment;
  if (re != nullptr) {
    auto done = ex.Receive(internal::kTypeRekeyDone, "RekeyDone");
    if (!done.ok()) {
      outcome.peer_aborted = ex.peer_aborted();
      return done.error();
    }
    reestablishment = Reestablishment{
        .min_epoch = re->min_epoch, .context_hash = derived->context_hash, .rekey_done = std::move(done).value()};
  }
  return SessionBuilder::Build({.role = SessionRole::kInitiator,
                                .id = init.session_id,
                                .suite = init.suite,
                                .negotiated = std::move(negotiated),
                                .qkd_key_ids = std::move(used_key_ids),
                                .keys = std::move(derived->keys),
                                .link = std::move(link),
                                .fresh_keys = FreshKeysFor(peer, SessionRole::kInitiator, qkd_used),
                                .reestablishment = std::move(reestablishment)});
}

// The responder: Init (or Reestablish), then Accept with our Confirm, then the initiator's.
Result<PeerSession> PeerEndpoint::Respond(std::unique_ptr<PeerLink> link) {
  if (link == nullptr) return InvalidArgument("session: no link");
  const std::string name = link->info().peer_name;
  const PeerConfig* peer = FindPeer(name);
  if (peer == nullptr) {
    Exchange ex(*link, name, Clock::now() + std::chrono::seconds(1));
    return ex.Fail(AbortCode::kUnknownPeer,
                   PermissionDenied("session: the peer \"" + name + "\" (from " + link->info().remote_address +
                                    ") is not a configured peer of " + options_.link->common_name()));
  }
  Exchange ex(*link, peer->name, Clock::now() + peer->establishment_timeout);
  QSAPI_ASSIGN_OR_RETURN(Bytes init_bytes, ex.Receive(internal::kTypeInit, "Init", internal::kTypeReestablish));
  auto init = internal::ParseInit(init_bytes);
  if (!init.ok()) return ex.Fail(internal::AbortForError(init.error()), init.error());
  if (std::find(peer->accepted_suites.begin(), peer->accepted_suites.end(), init->suite) ==
      peer->accepted_suites.end()) {
    return ex.Fail(AbortCode::kUnsupported,
                   Unimplemented("session with " + peer->name + ": suite " + std::string(AeadSuiteName(init->suite)) +
                                 " is not accepted for this peer"));
  }

  // QKD: fetch the offered keys by key_ID at our KME (after the replay guard).
  SecretBytes qkd_material;
  QkdAttempt qkd;
  if (internal::HasSource(init->sources, SourceId::kQkd)) {
    if (auto blocker = internal::ResponderQkdBlocker(peer->policy, peer->qkd_slave != nullptr)) {
      qkd = QkdAttempt::NotConfigured(*blocker);
    } else {
      if (auto st = replay_guard_->CheckAndRecord(init->key_ids); !st.ok()) {
        return ex.Fail(AbortCode::kReplayedKeyId,
                       PermissionDenied("session with " + peer->name + ": " + st.error().message()));
      }
      auto fetched = peer->qkd_slave->Fetch(init->key_ids);
      if (!fetched.ok()) {
        qkd = QkdAttempt::Failed("the responder's KME could not deliver the keys: " + fetched.error().ToString());
      } else if (auto joined = internal::JoinQkdKeys(*fetched); !joined.ok()) {
        qkd = QkdAttempt::Failed(joined.error().message());
      } else {
        qkd_material = std::move(joined).value();
        qkd = QkdAttempt::Obtained();
      }
    }
  }
  Decision decided = internal::AcceptQkd(peer->name, peer->policy, init->sources, init->qkd_policy, qkd);
  if (auto* r = std::get_if<Refusal>(&decided)) return ex.Fail(std::move(*r));
  Negotiated accepted = std::get<Negotiated>(std::move(decided));
  auto contribution = DrawContribution(peer->policy.qrng, options_.entropy.get(), peer->name, "responder");
  if (!contribution.ok()) return ex.Fail(AbortCode::kPolicy, contribution.error());
  internal::AcceptRandoms(accepted, init->sources, contribution->draw);

  const internal::AcceptMessage accept{
      .session_id = init->session_id, .random = contribution->bytes, .sources = accepted.sources};
  const Bytes accept_bytes = EncodeAccept(accept);
  auto derived = internal::DeriveKeys(*link, internal::Transcript{.session_id = init->session_id,
                                                                  .suite = init->suite,
                                                                  .accepted = accepted.sources,
                                                                  .qkd_key = qkd_material.view(),
                                                                  .initiator_random = init->random,
                                                                  .responder_random = accept.random,
                                                                  .init_message = init_bytes,
                                                                  .accept_message = accept_bytes});
  qkd_material = SecretBytes();  // use-once: wiped now
  if (!derived.ok()) return ex.Fail(AbortCode::kInternal, derived.error());
  const bool qkd_used = internal::HasSource(accepted.sources, SourceId::kQkd);
  std::vector<std::string> used_key_ids = qkd_used ? init->key_ids : std::vector<std::string>{};
  // Accept and our Confirm go out together: the initiator checks ours before it sends its own.
  auto own_confirm = internal::EncodeOwnConfirm(*derived, SessionRole::kResponder);
  if (!own_confirm.ok()) return ex.Fail(AbortCode::kInternal, own_confirm.error());
  QSAPI_RETURN_IF_ERROR(ex.Send(accept_bytes));
  QSAPI_RETURN_IF_ERROR(ex.Send(*own_confirm));
  QSAPI_ASSIGN_OR_RETURN(Bytes confirm_bytes, ex.Receive(internal::kTypeConfirm, "Confirm"));
  if (auto r = internal::CheckPeerConfirm(*derived, SessionRole::kResponder, confirm_bytes, peer->name, used_key_ids)) {
    return Refuse(ex, std::move(*r));
  }
  std::optional<Reestablishment> reestablishment;
  if (init->reestablish) {
    reestablishment =
        Reestablishment{.min_epoch = init->min_epoch, .context_hash = derived->context_hash, .rekey_done = {}};
  }
  return SessionBuilder::Build({.role = SessionRole::kResponder,
                                .id = init->session_id,
                                .suite = init->suite,
                                .negotiated = std::move(accepted),
                                .qkd_key_ids = std::move(used_key_ids),
                                .keys = std::move(derived->keys),
                                .link = std::move(link),
                                .fresh_keys = FreshKeysFor(*peer, SessionRole::kResponder, qkd_used),
                                .reestablishment = std::move(reestablishment)});
}

Result<PeerSession> PeerEndpoint::AcceptAndRespond(PeerListener& listener, std::chrono::milliseconds timeout) {
  QSAPI_ASSIGN_OR_RETURN(IncomingConnection conn, listener.AcceptConnection(timeout));
  QSAPI_ASSIGN_OR_RETURN(auto link, PeerLink::Accept(options_.link, std::move(conn)));
  return Respond(std::move(link));
}

// ---------------------------------------------------------------------------------------------
// Re-establishment in place: the channel holds its epoch, this endpoint runs the exchange, the
// channel consumes the outcome. Nothing here calls back into the channel.

ReestablishOutcome PeerEndpoint::RunReestablishment(const ReestablishTicket& ticket) {
  ReestablishOutcome out;
  const PeerConfig* peer = FindPeer(ticket.peer_name);
  if (peer == nullptr) {
    out.session = NotFound("session " + qsapi::internal::HexEncode(ticket.session_id) + ": its peer \"" +
                           ticket.peer_name + "\" is no longer configured");
    return out;
  }
  auto link = PeerLink::Connect(options_.link, peer->host, peer->port, peer->name);
  if (!link.ok()) {
    out.session = link.error();
    return out;
  }
  const ReestablishRequest re{.session_id = ticket.session_id, .suite = ticket.suite, .min_epoch = ticket.min_epoch};
  EstablishOutcome exchange;
  out.session = Establish(std::move(link).value(), *peer, &re, exchange);
  out.uncertain = !out.session.ok() && exchange.confirm_sent && !exchange.peer_aborted;
  return out;
}

Status PeerEndpoint::Reestablish(PeerChannel& channel) {
  QSAPI_ASSIGN_OR_RETURN(ReestablishTicket ticket, channel.BeginReestablishment());
  return channel.FinishReestablishment(RunReestablishment(ticket));
}

}  // namespace qsapi::session
