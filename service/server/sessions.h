// SessionManager: qsapid's peer sessions (issue #6 through the API of issue #7).
//
// Each qsapid is a node with a peer name (the CN of its peer certificate from the deployment CA).
// It listens for peer links ([session] listen) and establishes sessions to configured [[peer]]s
// when an API client asks (POST /v1/sessions). Establishment is the session part's protocol
// (qsapi/session/peer_session.h): TLS 1.3 with hybrid ML-KEM groups and ML-DSA certificates both
// ways, the TLS exporter, QKD keys (ETSI 014, reserved at our KME and fetched by key_ID at the
// peer's), QRNG contributions, confirmation MACs. Both nodes then hold the session's channel under
// the same session id. A session with QKD keeps its link open (qkd_at_rotation) to agree fresh
// QKD keys for new epochs (session::PeerChannel); any other session's link is closed.
//
// Applications use the session end to end: the sender's qsapid seals a payload into an envelope
// (POST /v1/sessions/{id}/seal: "qse1:..." text, carrying session id, epoch and sequence), the
// application carries it over any channel (a queue, HTTP through proxies), and the receiver's
// qsapid opens it (POST /v1/sessions/{id}/open): replays, reordering beyond the window and
// tampering fail. Epochs rotate by message count, bytes and time: the initiator's node mixes fresh
// QKD keys into each new epoch when the session has a QKD link, the ratchet alone otherwise; a
// session refuses to seal after max_session_age, when a new establishment (new TLS handshake, new
// ML-KEM, new QKD keys) replaces it. Closing is local to each node (DELETE /v1/sessions/{id}): the keys
// are destroyed.
//
// Thread safety: every method may be called from any thread.
#ifndef QSAPI_SRC_SERVER_SESSIONS_H_
#define QSAPI_SRC_SERVER_SESSIONS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/session/envelope.h"
#include "qsapi/session/peer_channel.h"
#include "qsapi/session/peer_session.h"

namespace qsapi::server {

// SessionDirectory tells the nodes of a cluster which node holds which session (the record of
// kind "peer-session" in the keystore's database, written by the node that holds it), so that a
// request for a session held elsewhere gets that node's name instead of "not found". Unset on one
// node. Each call may fail (the database is away): a session works without its entry.
struct SessionHolder {
  std::string node;  // [store] node of the holder
  std::string api;   // its API address as it announced it ("https://10.0.0.2:8443"), may be empty
};
struct SessionDirectory {
  std::string node;  // this node's name in the cluster
  std::function<Status(const std::string& id, const std::string& peer)> announce;
  std::function<Status(const std::string& id)> forget;
  std::function<Result<std::optional<SessionHolder>>(const std::string& id)> find;
  std::function<Status()> forget_all_mine;  // at start: this node holds no session yet
};

struct SessionManagerOptions {
  std::string listen_host = "127.0.0.1";  // the peer-link listener; empty: do not listen
  std::uint16_t listen_port = 0;
  session::PeerLinkOptions link;  // our peer certificate and key, the deployment CA, profile
  std::vector<session::PeerConfig> peers;
  std::shared_ptr<entropy::EntropyPool> entropy;
  session::ChannelConfig channel;
  std::size_t max_sessions = 4096;
  std::size_t max_concurrent_handshakes = 8;
  std::optional<SessionDirectory> directory;  // set on a node of a cluster
};

// SessionInfo is what the API reports about a session.
struct SessionInfo {
  std::string id;    // hex
  std::string peer;  // the peer's name
  std::string role;  // "initiator" / "responder"
  std::string suite;
  std::string sources;  // "tls-exporter+qkd+qrng-initiator+qrng-responder"
  bool qkd = false, qrng = false, degraded = false;
  std::vector<std::string> notes;  // why a preferred source is missing
  std::size_t qkd_keys = 0;
  std::string tls_group, tls_cipher, peer_key_algorithm;
  std::chrono::system_clock::time_point established;
  std::chrono::system_clock::time_point reestablished;  // the last re-establishment (or established)
  session::ChannelStats stats;
  bool fresh_keys = false;  // the session can agree fresh QKD keys at rotation (link kept open)
  std::string link;         // "open", or why it is closed
  session::FreshKeyStats fresh;
};

// PeerState is a peer's entry in health and status.
struct PeerState {
  std::string name;
  std::size_t sessions = 0;
  std::string last_error;  // of the last failed establishment with it, "" after a success
};

class SessionManager {
 public:
  static Result<std::unique_ptr<SessionManager>> Start(SessionManagerOptions options);
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;
  SessionManager(SessionManager&&) = delete;
  SessionManager& operator=(SessionManager&&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] const std::string& node_name() const noexcept;

  Result<SessionInfo> Create(const std::string& peer);
  Result<std::string> Seal(const std::string& id, ByteView plaintext, ByteView aad);  // envelope text
  Result<Bytes> Open(const std::string& id, std::string_view envelope_text, ByteView aad);
  // Rotate enters the next epoch: with fresh QKD keys when the session can agree them (falling
  // back to the ratchet, unless require_fresh_qkd, when the failure is returned).
  Result<SessionInfo> Rotate(const std::string& id, bool require_fresh_qkd = false);
  // Reestablish renews a session's keys in place (new TLS handshake, new ML-KEM, new QKD keys and
  // randoms; same id). Only on the node that initiated it.
  Result<SessionInfo> Reestablish(const std::string& id);
  // ReestablishDue re-establishes this node's initiated sessions whose reestablish interval has
  // passed (the maintenance thread calls it); returns how many succeeded.
  std::size_t ReestablishDue();
  static constexpr std::size_t kReestablishmentsPerTick = 4;
  Status Close(const std::string& id);
  Result<SessionInfo> Get(const std::string& id);
  // Holder says which other node of the cluster holds session `id` (nullopt: none, or no
  // directory); for the API's answer to a request sent to the wrong node.
  std::optional<SessionHolder> Holder(const std::string& id);
  std::vector<SessionInfo> List();
  std::vector<PeerState> Peers();
  // Expire closes sessions past max_session_age (the maintenance thread calls it).
  std::size_t Expire();
  void Stop();

 private:
  struct Entry {
    SessionInfo info;                               // fixed at establishment; stats refreshed on read
    std::unique_ptr<session::PeerChannel> channel;  // thread-safe
    std::mutex reestablish_mu;                      // one re-establishment at a time
    std::atomic<std::int64_t> reestablished_unix{0};
    std::chrono::steady_clock::time_point retry_reestablish_at{};  // guarded by SessionManager::mu_
    Entry(SessionInfo i, std::unique_ptr<session::PeerChannel> c) : info(std::move(i)), channel(std::move(c)) {}
    [[nodiscard]] SessionInfo Snapshot() const;
  };
  explicit SessionManager(SessionManagerOptions options) : options_(std::move(options)) {}
  Result<SessionInfo> Add(session::PeerSession session);
  std::shared_ptr<Entry> Find(const std::string& id);
  void AcceptLoop();
  void RecordPeer(const std::string& peer, const Error* error);
  void Forget(const std::vector<std::string>& ids);

  SessionManagerOptions options_;
  std::unique_ptr<session::PeerEndpoint> endpoint_;
  std::unique_ptr<session::PeerListener> listener_;
  std::string node_name_;
  std::thread acceptor_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> sessions_;  // guarded by mu_
  std::map<std::string, std::string> peer_errors_;          // guarded by mu_
  std::size_t handshakes_ = 0;                              // guarded by mu_
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
};

std::string SessionInfoRole(session::SessionRole role);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_SESSIONS_H_
