// The parts of the REST API that the route handlers share (server/api.cc runs the pipeline,
// server/routes.cc holds the table, server/handlers_*.cc the handlers by area).
//
// A request goes through one pipeline, whatever the route (server/api.cc):
//   1. a server-made request id (the client's X-Request-Id is kept beside it, never instead);
//   2. the route table: 404 / 405, else one Route row;
//   3. public routes (livez; health's summary) are answered at once;
//   4. authentication (a bearer token, else a verified client certificate with a policy), with
//      failures limited and aggregated per source (server/auth_failures.h);
//   5. authorisation of the row's operation, and of the key when the path names one;
//   6. the audit log must be writable, else 503 before anything is done;
//   7. inline rows (metrics, health details, listings) run now; worker rows are queued on the
//      WorkScheduler under the principal's limits (429 with Retry-After), then the body is parsed,
//      the request priced (server/cost_model.h: 413 past the per-request limit, 429 past the
//      budget) and the handler runs on a worker thread;
//   8. one audit line for the outcome (per-item counts for a batch); if it cannot be written the
//      answer is 503 and the result is withheld;
//   9. metrics, and the response headers.
#ifndef QSAPI_SRC_SERVER_INTERNAL_API_INTERNAL_H_
#define QSAPI_SRC_SERVER_INTERNAL_API_INTERNAL_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "server/api.h"
#include "server/cost_model.h"
#include "server/internal/request_parsing.h"
#include "server/operation.h"
#include "server/sessions.h"

namespace qsapi::server::internal {

using nlohmann::json;

// What a handler returns: the JSON answer or the error, and what the audit line records.
struct Outcome {
  Result<json> result = json::object();
  std::string key;            // the key named in the audit line (defaults to the path's name)
  std::uint32_t version = 0;  // the version used, when one
  std::string detail;         // short and public
  unsigned status = 200;      // on success (201 for creations)
  // On failure: a status other than the error code's (421 for a session held by another node)
  // and headers for the client (QSAPI-Session-Node).
  unsigned error_status = 0;
  std::vector<std::pair<std::string, std::string>> error_headers;
};

struct Request;
using Handler = Outcome (*)(Request& r);

enum class Access : std::uint8_t {
  kPublic,        // no authentication (livez)
  kSummaryOpen,   // a summary without authentication, the details with it (health)
  kAuthenticated  // everything else
};
enum class Where : std::uint8_t {
  kInline,  // cheap: on the I/O thread
  kWorker   // cryptography or the token: on the WorkScheduler
};
enum class KeyIn : std::uint8_t { kNone, kPath, kBody };

struct Route {
  std::string_view method;
  std::string_view pattern;  // "/v1/keys/{name}/rotate"
  Operation operation;
  std::string_view action;  // the audit line's action ("keys.rotate")
  Access access;
  Where where;
  KeyIn key;
  WorkKind work;
  bool batch;  // the body may be {"batch": [...]}
  Handler handler;
};

// The route table, one row per route (server/routes.cc).
const std::vector<Route>& RouteTable();
// MatchRoute finds the row of a method and a decoded path; sets *path_known when the path exists
// under another method (405) and *name to the path's {name}.
const Route* MatchRoute(std::string_view method, std::string_view path, bool* path_known, std::string* name);

// Per-item outcome counts of a batch ("ok" and error code names).
using ItemCounts = std::map<std::string, std::uint64_t>;

// Request is one request in flight, as a handler sees it.
struct Request {
  Request(Api& api_in, const ApiRequest& http_in, const Route& route_in, std::string name_in, std::string who_in,
          Policy policy_in)
      : api(api_in),
        http(http_in),
        route(route_in),
        name(std::move(name_in)),
        who(std::move(who_in)),
        policy(std::move(policy_in)) {}
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  Request(Request&&) = delete;
  Request& operator=(Request&&) = delete;
  ~Request() { WipeJsonStrings(body); }

  Api& api;
  const ApiRequest& http;
  const Route& route;
  std::string name;  // the path's {name}, decoded; "" when none
  std::string who;   // "token:admin", "cert:svc.example"
  Policy policy;
  json body = json::object();  // parsed before a worker handler runs; its strings are wiped with the request
  std::uint32_t query_version = 0;
  ItemCounts items;  // filled by Batch

  // AllowKey checks a key named in the body against the policy (denials are audited).
  [[nodiscard]] Status AllowKey(const std::string& key) const;

  // Batch runs `one` over the body or over {"batch": [...]} and counts the outcomes in `items`.
  template <typename F>
  Result<json> Batch(F one) {
    if (!body.contains("batch")) {
      Result<json> r = one(body);
      ++items[r.ok() ? "ok" : std::string(ErrorCodeName(r.error().code()))];
      return r;
    }
    json results = json::array();
    for (const json& item : body["batch"]) {
      Result<json> r = item.is_object() ? one(item) : Result<json>(InvalidArgument("a batch item must be an object"));
      if (r.ok()) {
        ++items["ok"];
        results.push_back(std::move(*r));
      } else {
        ++items[std::string(ErrorCodeName(r.error().code()))];
        results.push_back({{"error", {{"code", ErrorCodeName(r.error().code())}, {"message", r.error().message()}}}});
      }
    }
    return json{{"batch", std::move(results)}};
  }
};

// WipeOnExit wipes a buffer when the scope ends, on every path (Tink's cleanup pattern), for
// library results that come back as Bytes (an HPKE plaintext). Inputs are decoded straight into
// SecretBytes instead (SecretField).
class WipeOnExit {
 public:
  explicit WipeOnExit(Bytes& b) noexcept : b_(b) {}
  ~WipeOnExit() { SecureZero(b_.data(), b_.size()); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  WipeOnExit(WipeOnExit&&) = delete;
  WipeOnExit& operator=(WipeOnExit&&) = delete;

 private:
  Bytes& b_;
};

// JSON forms shared by handlers.
json KeyJson(const keystore::KeyInfo& k);
json SessionJson(const SessionInfo& s);
std::string B64(ByteView b);
std::string JsonText(const json& j);

// Handlers by area.
Outcome HandleKeysList(Request& r);
Outcome HandleKeysCreate(Request& r);
Outcome HandleKeyRead(Request& r);
Outcome HandleKeyDestroy(Request& r);
Outcome HandleKeyRotate(Request& r);
Outcome HandleKeyConfig(Request& r);
Outcome HandleKeyPublic(Request& r);
Outcome HandleEncrypt(Request& r);
Outcome HandleDecrypt(Request& r);
Outcome HandleRewrap(Request& r);
Outcome HandleDatakey(Request& r);
Outcome HandleSign(Request& r);
Outcome HandleVerify(Request& r);
Outcome HandleEncapsulate(Request& r);
Outcome HandleDecapsulate(Request& r);
Outcome HandleSeal(Request& r);
Outcome HandleOpen(Request& r);
Outcome HandleRandom(Request& r);
Outcome HandleSessionsList(Request& r);
Outcome HandleSessionsCreate(Request& r);
Outcome HandleSessionRead(Request& r);
Outcome HandleSessionClose(Request& r);
Outcome HandleSessionRotate(Request& r);
Outcome HandleSessionSeal(Request& r);
Outcome HandleSessionOpen(Request& r);
Outcome HandleLivez(Request& r);
Outcome HandleHealth(Request& r);
Outcome HandleMetrics(Request& r);

}  // namespace qsapi::server::internal

#endif  // QSAPI_SRC_SERVER_INTERNAL_API_INTERNAL_H_
