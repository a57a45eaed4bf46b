#include "server/sessions.h"

#include <atomic>

#include "common/internal/text.h"
#include "qsapi/log.h"

namespace qsapi::server {
namespace {

std::string SourcesText(const std::vector<session::SourceId>& sources) {
  std::string out;
  for (session::SourceId s : sources) out += (out.empty() ? "" : "+") + std::string(session::SourceIdName(s));
  return out;
}

}  // namespace

std::string SessionInfoRole(session::SessionRole role) {
  return role == session::SessionRole::kInitiator ? "initiator" : "responder";
}

Result<std::unique_ptr<SessionManager>> SessionManager::Start(SessionManagerOptions options) {
  auto m = std::unique_ptr<SessionManager>(new SessionManager(std::move(options)));
  QSAPI_ASSIGN_OR_RETURN(std::shared_ptr<const session::PeerLinkContext> link,
                         session::PeerLinkContext::Create(m->options_.link));
  m->node_name_ = link->common_name();
  session::PeerEndpoint::Options eo;
  eo.link = link;
  eo.entropy = m->options_.entropy;
  QSAPI_ASSIGN_OR_RETURN(m->endpoint_, session::PeerEndpoint::Create(eo, m->options_.peers));
  if (!m->options_.listen_host.empty()) {
    QSAPI_ASSIGN_OR_RETURN(m->listener_,
                           session::PeerListener::Listen(m->options_.listen_host, m->options_.listen_port));
    SessionManager* raw = m.get();
    m->acceptor_ = std::thread([raw] { raw->AcceptLoop(); });
  }
  if (m->options_.directory) {
    // Entries a previous run of this node left (it was killed): it holds no session now.
    if (Status st = m->options_.directory->forget_all_mine(); !st.ok()) {
      Log(LogLevel::kWarning, "qsapid",
          "the cluster's entries of this node's old sessions stay: " + st.error().message());
    }
  }
  return m;
}

SessionManager::~SessionManager() { Stop(); }

std::uint16_t SessionManager::port() const noexcept { return listener_ ? listener_->port() : 0; }
const std::string& SessionManager::node_name() const noexcept { return node_name_; }

void SessionManager::Stop() {
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (listener_) listener_->Close();
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Worker> workers;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (Worker& w : workers) {
    if (w.thread.joinable()) w.thread.join();
  }
  std::map<std::string, std::shared_ptr<Entry>> sessions;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    sessions.swap(sessions_);
  }
  std::vector<std::string> ids;
  for (auto& [id, e] : sessions) {
    e->channel->Close();
    ids.push_back(id);
  }
  Forget(ids);
}

void SessionManager::AcceptLoop() {
  for (;;) {
    Result<session::IncomingConnection> conn = listener_->AcceptConnection(std::chrono::milliseconds(500));
    if (!conn.ok()) {
      if (conn.error().code() == ErrorCode::kDeadlineExceeded) continue;
      return;  // closed
    }
    const std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (handshakes_ >= options_.max_concurrent_handshakes) {
      Log(LogLevel::kWarning, "qsapid",
          "peer link from " + conn->remote_address() + " refused: too many establishments in progress");
      continue;  // the connection is closed when `conn` goes out of scope
    }
    // Join the workers that have finished, so that a long-running node keeps no dead threads.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    ++handshakes_;
    auto done_flag = std::make_shared<std::atomic<bool>>(false);
    Worker& w = workers_.emplace_back();
    w.done = done_flag;
    w.thread = std::thread([this, done_flag, c = std::move(*conn)]() mutable {
      const std::string remote = c.remote_address();
      Result<std::unique_ptr<session::PeerLink>> link =
          session::PeerLink::Accept(endpoint_->link_context(), std::move(c));
      if (!link.ok()) {
        Log(LogLevel::kWarning, "qsapid", "peer link from " + remote + " refused: " + link.error().message());
      } else {
        const std::string peer = (*link)->info().peer_name;
        Result<session::PeerSession> s = endpoint_->Respond(std::move(*link));
        if (!s.ok()) {
          Log(LogLevel::kWarning, "qsapid",
              "session from " + peer + " (" + remote + ") failed: " + s.error().message());
          RecordPeer(peer, &s.error());
        } else if (s->reestablishes()) {
          const std::string id = s->session_id_hex();
          std::shared_ptr<Entry> e = Find(id);
          if (e == nullptr) {
            session::PeerChannel::RefuseReestablishment(std::move(*s), "no session " + id + " on " + node_name_);
          } else if (Status st = e->channel->AcceptReestablishment(std::move(*s)); st.ok()) {
            e->reestablished_unix.store(
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count());
            Log(LogLevel::kInfo, "qsapid", "session " + id + " re-established by " + peer);
          } else {
            Log(LogLevel::kWarning, "qsapid", "session " + id + ": " + st.error().message());
          }
        } else {
          Result<SessionInfo> added = Add(std::move(*s));
          if (added.ok()) {
            Log(LogLevel::kInfo, "qsapid",
                "session " + added->id + " from " + peer + " established (" + added->sources +
                    (added->degraded ? ", degraded" : "") + ")");
          }
        }
      }
      const std::lock_guard<std::mutex> done(mu_);
      --handshakes_;
      done_flag->store(true);
    });
  }
}

void SessionManager::RecordPeer(const std::string& peer, const Error* error) {
  const std::lock_guard<std::mutex> lock(mu_);
  peer_errors_[peer] = error == nullptr ? "" : error->message();
}

Result<SessionInfo> SessionManager::Add(session::PeerSession s) {
  SessionInfo info;
  info.id = s.session_id_hex();
  info.peer = s.peer_name();
  info.role = SessionInfoRole(s.role());
  info.suite = std::string(session::AeadSuiteName(s.suite()));
  info.sources = SourcesText(s.sources());
  info.qkd = s.qkd_used();
  info.qrng = s.qrng_used();
  info.degraded = s.degraded();
  info.notes = s.notes();
  info.qkd_keys = s.qkd_key_ids().size();
  info.tls_group = s.link_info().tls_group;
  info.tls_cipher = s.link_info().tls_cipher;
  info.peer_key_algorithm = s.link_info().peer_key_algorithm;
  info.established = s.established_at();
  info.fresh_keys = s.fresh_key_supply() != nullptr;
  // Only a session that agrees fresh QKD keys at rotation needs its link (and a reader thread).
  if (!info.fresh_keys) s.TakeLink().reset();
  // Envelopes travel through the applications, which may reorder them: the replay window decides.
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<session::PeerChannel> channel,
                         session::PeerChannel::Create(std::move(s), options_.channel, session::Ordering::kWindow));
  auto entry = std::make_shared<Entry>(info, std::move(channel));
  bool added = false;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (sessions_.size() < options_.max_sessions) {
      sessions_[info.id] = entry;
      peer_errors_[info.peer] = "";
      added = true;
    }
  }
  if (added) {
    if (options_.directory) {
      // kAlreadyExists: another node of the cluster holds it too (its peer is a node of the same
      // cluster); the entry names that node, which can serve it as well.
      if (Status st = options_.directory->announce(info.id, info.peer);
          !st.ok() && st.error().code() != ErrorCode::kAlreadyExists) {
        Log(LogLevel::kWarning, "qsapid",
            "session " + info.id + ": the cluster will not know it is here: " + st.error().message());
      }
    }
    return entry->Snapshot();
  }
  const std::size_t held = options_.max_sessions;
  entry->channel->Close();
  return ResourceExhausted("this node holds " + std::to_string(held) +
                           " sessions already (the limit); close some first");
}

SessionInfo SessionManager::Entry::Snapshot() const {
  SessionInfo out = info;
  out.stats = channel->stats();
  out.fresh = channel->fresh_key_stats();
  const Status link = channel->link_status();
  out.link = link.ok() ? "open" : link.error().message();
  const std::int64_t re = reestablished_unix.load();
  out.reestablished = re == 0 ? info.established : std::chrono::system_clock::time_point(std::chrono::seconds(re));
  return out;
}

std::shared_ptr<SessionManager::Entry> SessionManager::Find(const std::string& id) {
  const std::lock_guard<std::mutex> lock(mu_);
  const auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

Result<SessionInfo> SessionManager::Create(const std::string& peer) {
  if (endpoint_->FindPeer(peer) == nullptr) {
    return NotFound("no peer named \"" + peer + "\" is configured ([[peer]] in the configuration)");
  }
  Result<session::PeerSession> s = endpoint_->Initiate(peer);
  if (!s.ok()) {
    RecordPeer(peer, &s.error());
    return Error(s.error().code(), "session to " + peer + ": " + s.error().message());
  }
  return Add(std::move(*s));
}

Result<std::string> SessionManager::Seal(const std::string& id, ByteView plaintext, ByteView aad) {
  std::shared_ptr<Entry> e = Find(id);
  if (e == nullptr) return NotFound("no session " + id + " on this node");
  QSAPI_ASSIGN_OR_RETURN(Bytes envelope, e->channel->Seal(plaintext, aad));
  return session::EnvelopeToText(envelope);
}

Result<Bytes> SessionManager::Open(const std::string& id, std::string_view envelope_text, ByteView aad) {
  std::shared_ptr<Entry> e = Find(id);
  if (e == nullptr) return NotFound("no session " + id + " on this node");
  QSAPI_ASSIGN_OR_RETURN(Bytes envelope, session::EnvelopeFromText(envelope_text, options_.channel.max_payload));
  QSAPI_ASSIGN_OR_RETURN(session::ParsedEnvelope parsed,
                         session::ParseEnvelope(envelope, options_.channel.max_payload));
  if (qsapi::internal::HexEncode(ByteView(parsed.header.session_id.data(), parsed.header.session_id.size())) != id) {
    return InvalidArgument("the envelope belongs to another session");
  }
  return e->channel->Open(envelope, aad);
}

Result<SessionInfo> SessionManager::Reestablish(const std::string& id) {
  std::shared_ptr<Entry> e = Find(id);
  if (e == nullptr) return NotFound("no session " + id + " on this node");
  const std::lock_guard<std::mutex> lock(e->reestablish_mu);
  QSAPI_RETURN_IF_ERROR(endpoint_->Reestablish(*e->channel));
  e->reestablished_unix.store(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  return e->Snapshot();
}

std::size_t SessionManager::ReestablishDue() {
  std::vector<std::shared_ptr<Entry>> due;
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, e] : sessions_) {
      if (e->info.role != "initiator" || now < e->retry_reestablish_at || !e->channel->failure().ok()) continue;
      const session::PeerConfig* peer = endpoint_->FindPeer(e->info.peer);
      if (peer == nullptr || peer->reestablish_interval.count() == 0) continue;
      if (e->channel->age() >= peer->reestablish_interval) due.push_back(e);
      // A few per tick: the maintenance thread also reloads tokens and expires sessions, and an
      // unreachable peer costs a connect timeout each. The rest come on the next ticks.
      if (due.size() >= kReestablishmentsPerTick) break;
    }
  }
  std::size_t done = 0;
  for (const auto& e : due) {
    auto r = Reestablish(e->info.id);
    if (r.ok()) {
      ++done;
    } else {
      // The session goes on under its keys (until max_session_age); try again in a minute.
      const std::lock_guard<std::mutex> lock(mu_);
      e->retry_reestablish_at = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      Log(LogLevel::kWarning, "qsapid",
          "session " + e->info.id + ": scheduled re-establishment failed (next try in 60 s): " + r.error().message());
    }
  }
  return done;
}

Result<SessionInfo> SessionManager::Rotate(const std::string& id, bool require_fresh_qkd) {
  std::shared_ptr<Entry> e = Find(id);
  if (e == nullptr) return NotFound("no session " + id + " on this node");
  QSAPI_RETURN_IF_ERROR(require_fresh_qkd ? e->channel->RotateWithFreshQkd() : e->channel->Rotate());
  return e->Snapshot();
}

Status SessionManager::Close(const std::string& id) {
  std::shared_ptr<Entry> e;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) return NotFound("no session " + id + " on this node");
    e = it->second;
    sessions_.erase(it);
  }
  e->channel->Close();  // destroys the keys and closes the link
  Forget({id});
  return OkStatus();
}

void SessionManager::Forget(const std::vector<std::string>& ids) {
  if (!options_.directory) return;
  for (const std::string& id : ids) {
    if (Status st = options_.directory->forget(id); !st.ok() && st.error().code() != ErrorCode::kNotFound) {
      Log(LogLevel::kWarning, "qsapid", "session " + id + ": its cluster entry stays: " + st.error().message());
    }
  }
}

std::optional<SessionHolder> SessionManager::Holder(const std::string& id) {
  if (!options_.directory || Find(id) != nullptr) return std::nullopt;
  Result<std::optional<SessionHolder>> found = options_.directory->find(id);
  if (!found.ok() || !*found || (*found)->node == options_.directory->node) return std::nullopt;
  return *std::move(*found);
}

Result<SessionInfo> SessionManager::Get(const std::string& id) {
  std::shared_ptr<Entry> e = Find(id);
  if (e == nullptr) return NotFound("no session " + id + " on this node");
  return e->Snapshot();
}

std::vector<SessionInfo> SessionManager::List() {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, e] : sessions_) entries.push_back(e);
  }
  std::vector<SessionInfo> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(e->Snapshot());
  return out;
}

std::vector<PeerState> SessionManager::Peers() {
  std::vector<PeerState> out;
  const std::lock_guard<std::mutex> lock(mu_);
  for (const session::PeerConfig& p : options_.peers) {
    PeerState st;
    st.name = p.name;
    for (const auto& [id, e] : sessions_) {
      if (e->info.peer == p.name) ++st.sessions;
    }
    if (const auto it = peer_errors_.find(p.name); it != peer_errors_.end()) st.last_error = it->second;
    out.push_back(std::move(st));
  }
  return out;
}

std::size_t SessionManager::Expire() {
  std::vector<std::shared_ptr<Entry>> expired;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    // Kept for the grace time after they stop sealing, so that envelopes in flight still open.
    const auto limit = options_.channel.max_session_age +
                       std::chrono::duration_cast<std::chrono::seconds>(options_.channel.grace_time);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second->channel->age() > limit) {  // the age restarts at each re-establishment
        expired.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<std::string> ids;
  for (const auto& e : expired) {
    e->channel->Close();
    ids.push_back(e->info.id);
  }
  Forget(ids);
  return expired.size();
}

}  // namespace qsapi::server
