// qsapid's REST API v1, independent of the transport: an ApiRequest in, an ApiResponse out.
// qsapid binds it to the HTTPS server; tests call Handle() directly as well as over HTTPS.
//
// Every request but GET /v1/livez (and the summary of GET /v1/health) is authenticated with a
// bearer token or a client certificate, authorised against the principal's policy (key patterns
// and operations), and every key operation and every denial is written to the audit log; an
// operation whose audit line cannot be written fails with 503. Failed authentications are limited
// per source address and aggregated in the audit log (server/auth_failures.h). Cryptography runs
// on a WorkScheduler's workers under per-principal limits and cost budgets, never on the threads
// that serve connections. The pipeline is described in server/internal/api_internal.h.
//
// Bodies are JSON, binary fields base64 (RFC 4648, with padding); ciphertexts and signatures use
// the keystore's text form "qsapi:v<N>:<base64url>". Errors are
// {"error": {"code", "message", "request_id"}} with a stable code (the canonical error names) and
// the matching HTTP status.
#ifndef QSAPI_SRC_SERVER_API_H_
#define QSAPI_SRC_SERVER_API_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qsapi/entropy/pool.h"
#include "qsapi/keystore/keystore.h"
#include "server/audit_log.h"
#include "server/auth_failures.h"
#include "server/tokens.h"
#include "server/work_scheduler.h"

namespace qsapi::server {

class SessionManager;  // server/sessions.h

// Keys whose names start with kReservedKeyPrefix belong to qsapid itself (the key that wraps the
// deployment CA's and the TLS server's private keys): no API principal may list or use them,
// whatever its policy says.
inline constexpr std::string_view kReservedKeyPrefix = "qsapid.";
inline bool IsReservedKeyName(std::string_view name) { return name.starts_with(kReservedKeyPrefix); }

struct ApiRequest {
  std::string method;
  std::string path;   // percent-decoding is the router's job
  std::string query;  // after '?'
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer_common_name;                  // verified client certificate CN, "" if none
  bool peer_certificate_serves_servers = false;  // it is a peer-link or server certificate
  std::string tls_group;
  std::string remote_address;  // the client's IP address ("" when unknown: in-process callers)
  [[nodiscard]] std::string_view Header(std::string_view name) const;
};

struct ApiResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// A principal authenticated by client certificate: its CN and policy (from the configuration).
struct ClientCertificatePolicy {
  std::string common_name;
  Policy policy;
};

struct ApiOptions {
  std::size_t max_batch = 1000;  // items; the real bound is the batch's cost (WorkSchedulerOptions)
  std::size_t max_random_bytes = 1 << 16;
  AuthFailureOptions auth_failures;
};

class Api {
 public:
  // `scheduler` runs the worker routes (not owned; must outlive the Api); nullptr runs them on the
  // calling thread (tests and tools), under the same cost rules when one is given later.
  Api(ApiOptions options, keystore::Keystore* keystore, std::shared_ptr<entropy::EntropyPool> pool, TokenStore tokens,
      std::vector<ClientCertificatePolicy> clients, AuditLog* audit, WorkScheduler* scheduler = nullptr);

  using Done = std::function<void(ApiResponse)>;
  // HandleAsync answers `request` through `done`, exactly once: before it returns for public,
  // refused and inline routes, later from a worker thread for the others.
  void HandleAsync(ApiRequest request, Done done);
  // Handle is HandleAsync waited for.
  ApiResponse Handle(ApiRequest request);

  // ReloadTokens swaps in a freshly loaded token store (qsapid calls it when the file changes).
  void ReloadTokens(TokenStore tokens);
  // TokensSameAs: the tokens in use hold the same entries as `tokens`.
  [[nodiscard]] bool TokensSameAs(const TokenStore& tokens) const;
  // set_sessions enables the /v1/sessions routes (not owned; must outlive the Api).
  void set_sessions(SessionManager* sessions) { sessions_ = sessions; }
  void set_scheduler(WorkScheduler* scheduler) { scheduler_ = scheduler; }

  // Hooks for health output that the API does not own (peers, KME links, rotations).
  using HealthHook = std::function<void(std::map<std::string, std::string>& checks)>;
  void set_health_hook(HealthHook hook) { health_hook_ = std::move(hook); }
  // A hook that appends Prometheus text for parts the API does not own (the HTTPS server).
  using MetricsHook = std::function<void(std::string& out)>;
  void set_metrics_hook(MetricsHook hook) { metrics_hook_ = std::move(hook); }

  // FlushAuthFailures writes the aggregated audit lines of failure windows that have ended
  // (qsapid's maintenance thread calls it every second; `all` at shutdown).
  void FlushAuthFailures(bool all = false);

  struct Counters {
    std::atomic<std::uint64_t> requests{0}, denied{0}, errors{0}, audit_failures{0}, throttled{0};
  };
  [[nodiscard]] const Counters& counters() const { return counters_; }

  // Routes lists "METHOD /path/template" for every route (the OpenAPI test checks it).
  static std::vector<std::string> Routes();

  // What the route handlers (server/handlers_*.cc) use.
  struct Parts {
    const ApiOptions& options;
    keystore::Keystore& keystore;
    entropy::EntropyPool& pool;
    SessionManager* sessions = nullptr;
    const HealthHook& health_hook;
    const MetricsHook& metrics_hook;
    AuditLog* audit = nullptr;
    WorkScheduler* scheduler = nullptr;
    const AuthFailureTracker& auth_failures;
    std::chrono::steady_clock::time_point started;
  };
  [[nodiscard]] Parts parts();
  [[nodiscard]] std::string RouteMetrics();
  void CountDenied() { ++counters_.denied; }
  // Audit writes one line; false when it could not be written (logged; counted).
  bool Audit(const AuditEvent& event);

 private:
  struct Flight;
  void Run(const std::shared_ptr<Flight>& f);
  void Finish(Flight& f, ApiResponse response);

  ApiOptions options_;
  keystore::Keystore* keystore_;
  std::shared_ptr<entropy::EntropyPool> pool_;
  mutable std::mutex tokens_mu_;
  TokenStore tokens_;
  std::vector<ClientCertificatePolicy> clients_;
  AuditLog* audit_;
  WorkScheduler* scheduler_;
  SessionManager* sessions_ = nullptr;
  HealthHook health_hook_;
  MetricsHook metrics_hook_;
  AuthFailureTracker auth_failures_;
  Counters counters_;
  std::mutex metrics_mu_;
  std::map<std::string, std::uint64_t> route_counts_;  // "route code" -> count
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> last_audit_error_log_{0};
};

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_API_H_
