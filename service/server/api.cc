// The API pipeline (server/internal/api_internal.h gives the steps): one path for every route, so
// that authentication, authorisation, admission, audit and metrics cannot be skipped by a handler.
#include "server/api.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <future>
#include <sstream>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "common/internal/text.h"
#include "qsapi/crypto/random.h"
#include "qsapi/log.h"
#include "server/internal/api_internal.h"
#include "server/internal/request_parsing.h"
#include "server/sessions.h"

namespace qsapi::server {

using internal::json;

namespace {

bool IEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view ApiRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEqual(k, name)) return v;
  }
  return {};
}

namespace {

// Status reads are not key operations: only their denials are audited, and they are served even
// when the audit log is failing (that is when an operator needs them).
bool IsStatusRead(Operation op) { return op == Operation::kHealth || op == Operation::kMetrics; }

unsigned HttpStatusOf(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kAuthenticationFailed: return 400;
    case ErrorCode::kFailedPrecondition: return 409;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists: return 409;
    case ErrorCode::kResourceExhausted: return 429;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kDeadlineExceeded: return 504;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kDataLoss: return 500;
    case ErrorCode::kUnimplemented: return 501;
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

std::string RetryAfterSeconds(std::chrono::milliseconds wait) {
  return std::to_string(std::max<std::int64_t>(1, (wait.count() + 999) / 1000));
}

// A client's X-Request-Id is kept when it is short and plain; it never replaces ours.
std::string ClientRequestId(const ApiRequest& req) {
  const std::string_view given = req.Header("X-Request-Id");
  if (given.empty() || given.size() > 64) return {};
  const bool plain = std::all_of(given.begin(), given.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
  });
  return plain ? std::string(given) : std::string();
}

std::string NewRequestId() {
  Result<Bytes> random_id = crypto::RandomBytes(8);
  return qsapi::internal::HexEncode(random_id.ok() ? *random_id : Bytes(8, 0));
}

}  // namespace

// Flight is one request from its arrival to its answer.
struct Api::Flight {
  ApiRequest req;
  Done done;
  std::string request_id;
  std::string client_request_id;
  std::string route_name = "unknown";
  const internal::Route* route = nullptr;
  std::string name;
  std::string who;
  Policy policy;
  bool finished = false;

  Flight() = default;
  Flight(const Flight&) = delete;
  Flight& operator=(const Flight&) = delete;
  Flight(Flight&&) = delete;
  Flight& operator=(Flight&&) = delete;
  ~Flight() {
    SecureZero(req.body.data(), req.body.size());
    for (auto& [k, v] : req.headers) SecureZero(v.data(), v.size());
  }
};

Api::Api(ApiOptions options, keystore::Keystore* keystore, std::shared_ptr<entropy::EntropyPool> pool,
         TokenStore tokens, std::vector<ClientCertificatePolicy> clients, AuditLog* audit, WorkScheduler* scheduler)
    : options_(options),
      keystore_(keystore),
      pool_(std::move(pool)),
      tokens_(std::move(tokens)),
      clients_(std::move(clients)),
      audit_(audit),
      scheduler_(scheduler),
      auth_failures_(options.auth_failures) {}

void Api::ReloadTokens(TokenStore tokens) {
  const std::lock_guard<std::mutex> lock(tokens_mu_);
  tokens_ = std::move(tokens);
}

bool Api::TokensSameAs(const TokenStore& tokens) const {
  const std::lock_guard<std::mutex> lock(tokens_mu_);
  return tokens_.SameAs(tokens);
}

Api::Parts Api::parts() {
  return Parts{options_,      *keystore_, *pool_,     sessions_,      health_hook_,
               metrics_hook_, audit_,     scheduler_, auth_failures_, started_};
}

std::vector<std::string> Api::Routes() {
  std::vector<std::string> out;
  for (const internal::Route& r : internal::RouteTable())
    out.push_back(std::string(r.method) + " " + std::string(r.pattern));
  return out;
}

bool Api::Audit(const AuditEvent& event) {
  if (audit_ == nullptr) return true;
  const Status s = audit_->Append(event);
  if (s.ok()) return true;
  ++counters_.audit_failures;
  // Say it at most once a second: a full disk would otherwise fill the console too.
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (last_audit_error_log_.exchange(now) != now) {
    Log(LogLevel::kError, "qsapid", "cannot write the audit log; refusing operations (503): " + s.error().message());
  }
  return false;
}

std::string Api::RouteMetrics() {
  std::ostringstream m;
  m << "# HELP qsapi_http_requests_total Requests handled, by route and status.\n"
       "# TYPE qsapi_http_requests_total counter\n";
  const std::lock_guard<std::mutex> lock(metrics_mu_);
  for (const auto& [k, v] : route_counts_) {
    const std::size_t sp = k.rfind(' ');
    m << "qsapi_http_requests_total{route=\"" << k.substr(0, sp) << "\",code=\"" << k.substr(sp + 1) << "\"} " << v
      << "\n";
  }
  m << "# HELP qsapi_http_denied_total Requests refused by authentication or policy.\n"
       "# TYPE qsapi_http_denied_total counter\nqsapi_http_denied_total "
    << counters_.denied.load() << "\n";
  m << "# HELP qsapi_http_throttled_total Requests answered 429 (queue limits, cost budgets, failed "
       "authentications).\n# TYPE qsapi_http_throttled_total counter\nqsapi_http_throttled_total "
    << counters_.throttled.load() << "\n";
  m << "# HELP qsapi_audit_write_failures_total Audit lines that could not be written (their requests "
       "were answered 503).\n# TYPE qsapi_audit_write_failures_total counter\nqsapi_audit_write_failures_total "
    << counters_.audit_failures.load() << "\n";
  const AuthFailureTracker::Stats a = auth_failures_.stats();
  m << "# HELP qsapi_auth_failures_total Failed authentications.\n# TYPE qsapi_auth_failures_total counter\n"
       "qsapi_auth_failures_total "
    << a.failures << "\n";
  return m.str();
}

void Api::FlushAuthFailures(bool all) {
  for (const AuthFailureTracker::Summary& s : auth_failures_.Drain(all)) {
    AuditEvent e{.who = "anonymous", .action = "authenticate.failures", .result = "PERMISSION_DENIED"};
    e.source = s.source;
    e.detail = std::to_string(s.count) + " failed authentications from " + s.source + " between " +
               qsapi::internal::FormatUtc(std::chrono::system_clock::time_point(std::chrono::seconds(s.window_start))) +
               " and " +
               qsapi::internal::FormatUtc(std::chrono::system_clock::time_point(std::chrono::seconds(s.window_end))) +
               (s.throttled > 0 ? " (" + std::to_string(s.throttled) + " answered 429)" : "");
    e.counts = s.reasons;
    e.request_id = NewRequestId();
    (void)Audit(e);
  }
}

ApiResponse Api::Handle(ApiRequest request) {
  std::promise<ApiResponse> answer;
  std::future<ApiResponse> got = answer.get_future();
  HandleAsync(std::move(request), [&answer](ApiResponse r) { answer.set_value(std::move(r)); });
  return got.get();
}

namespace {

ApiResponse ErrorResponse(const Error& e, const std::string& request_id) {
  ApiResponse r;
  r.status = HttpStatusOf(e.code());
  r.body = internal::JsonText(
      json{{"error", {{"code", ErrorCodeName(e.code())}, {"message", e.message()}, {"request_id", request_id}}}});
  return r;
}

std::string ResultName(const internal::ItemCounts& items, const Result<json>& result) {
  if (!result.ok()) return std::string(ErrorCodeName(result.error().code()));
  if (items.empty()) return "ok";
  const auto ok = items.find("ok");
  if (ok != items.end() && items.size() == 1) return "ok";
  if (ok == items.end() && items.size() == 1) return items.begin()->first;  // every item failed alike
  return ok == items.end() ? "failed" : "partial";
}

}  // namespace

void Api::Finish(Flight& f, ApiResponse response) {
  if (f.finished) return;
  f.finished = true;
  if (response.status >= 500) ++counters_.errors;
  if (response.status == 429) ++counters_.throttled;
  {
    const std::lock_guard<std::mutex> lock(metrics_mu_);
    ++route_counts_[f.route_name + " " + std::to_string(response.status)];
  }
  response.headers.emplace_back("X-Request-Id", f.request_id);
  if (!f.client_request_id.empty()) response.headers.emplace_back("X-Client-Request-Id", f.client_request_id);
  response.headers.emplace_back("Cache-Control", "no-store");
  f.done(std::move(response));
}

void Api::HandleAsync(ApiRequest request, Done done) {
  ++counters_.requests;
  auto f = std::make_shared<Flight>();
  f->req = std::move(request);
  f->done = std::move(done);
  f->request_id = NewRequestId();
  f->client_request_id = ClientRequestId(f->req);
  Flight& fl = *f;
  const auto event = [&fl](std::string action, std::string key, std::string result, std::string detail) {
    AuditEvent e;
    e.who = fl.who.empty() ? "anonymous" : fl.who;
    e.action = std::move(action);
    e.key = std::move(key);
    e.result = std::move(result);
    e.request_id = fl.request_id;
    e.client_request_id = fl.client_request_id;
    e.detail = std::move(detail);
    return e;
  };
  const auto fail = [&](const Error& e) {
    ApiResponse r = ErrorResponse(e, fl.request_id);
    if (e.code() == ErrorCode::kPermissionDenied && fl.who.empty()) {
      r.status = 401;
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
    }
    Finish(fl, std::move(r));
  };

  // 2. The route.
  Result<std::string> path = internal::PercentDecode(fl.req.path);
  if (!path.ok()) return fail(path.error());
  bool path_known = false;
  fl.route = internal::MatchRoute(fl.req.method, *path, &path_known, &fl.name);
  if (fl.route == nullptr) {
    if (path_known) {
      ApiResponse r = ErrorResponse(InvalidArgument("method " + fl.req.method + " is not allowed here"), fl.request_id);
      r.status = 405;
      return Finish(fl, std::move(r));
    }
    return fail(NotFound("no such route: " + fl.req.method + " " + fl.req.path));
  }
  const internal::Route& route = *fl.route;
  fl.route_name = std::string(route.method) + " " + std::string(route.pattern);

  // 3. Public routes.
  if (route.access == internal::Access::kPublic) {
    internal::Request r(*this, fl.req, route, fl.name, "", {});
    internal::Outcome out = route.handler(r);
    ApiResponse resp;
    resp.status = out.status;
    resp.body = internal::JsonText(*out.result);
    return Finish(fl, std::move(resp));
  }

  // 4. Authentication. Failures are counted per source; only the first of a window is a line.
  const auto auth_failed = [&](const Error& e, std::string_view reason, std::string who_hint) {
    ++counters_.denied;
    const AuthFailureTracker::Verdict v = auth_failures_.Record(fl.req.remote_address, reason);
    if (v.write_line) {
      AuditEvent line = event("authenticate", "", "PERMISSION_DENIED", std::string(reason));
      if (!who_hint.empty()) line.who = std::move(who_hint);
      line.source = fl.req.remote_address.empty() ? "local" : fl.req.remote_address;
      (void)Audit(line);  // a refusal needs no result withheld
    }
    if (v.throttled) {
      ApiResponse r = ErrorResponse(
          ResourceExhausted("too many failed authentications from this address; retry after the time given"),
          fl.request_id);
      r.headers.emplace_back("Retry-After", RetryAfterSeconds(v.retry_after));
      return Finish(fl, std::move(r));
    }
    fail(e);
  };
  const std::size_t auth_headers = std::count_if(fl.req.headers.begin(), fl.req.headers.end(),
                                                 [](const auto& h) { return IEqual(h.first, "Authorization"); });
  if (auth_headers > 1) {
    return fail(InvalidArgument("more than one Authorization header"));
  }
  const std::string_view auth = fl.req.Header("Authorization");
  if (!auth.empty()) {
    if (!auth.starts_with("Bearer ")) {
      return auth_failed(PermissionDenied("the Authorization header must be \"Bearer <token>\""), "not a bearer token",
                         "");
    }
    Result<TokenEntry> who = [&] {
      const std::lock_guard<std::mutex> lock(tokens_mu_);
      return tokens_.Authenticate(auth.substr(7));
    }();
    if (!who.ok()) return auth_failed(who.error(), "bad bearer token", "");
    fl.who = "token:" + who->name;
    fl.policy = who->policy;
  } else if (!fl.req.peer_common_name.empty()) {
    // Authenticated by TLS, but not allowed: 403, not 401.
    const auto cert_denied = [&](const char* reason, const char* detail, const std::string& message) {
      ++counters_.denied;
      fl.who = "cert:" + fl.req.peer_common_name;
      const AuthFailureTracker::Verdict v = auth_failures_.Record(fl.req.remote_address, reason);
      if (v.write_line) {
        AuditEvent line = event("authenticate", "", "PERMISSION_DENIED", detail);
        line.source = fl.req.remote_address.empty() ? "local" : fl.req.remote_address;
        (void)Audit(line);
      }
      return fail(PermissionDenied(message));
    };
    // API client identities and peer identities are apart: a certificate also valid for server
    // authentication (a peer-link certificate of another site, a server's) is no API client, even
    // when its CN is a [[client]]'s.
    if (fl.req.peer_certificate_serves_servers) {
      return cert_denied("certificate valid for server authentication", "a peer or server certificate, not a client's",
                         "the client certificate CN \"" + fl.req.peer_common_name +
                             "\" is also valid for server authentication (a peer-link or server certificate); API "
                             "clients authenticate with client-only certificates (`qsapi ca issue NAME --client`)");
    }
    const auto it = std::find_if(clients_.begin(), clients_.end(), [&](const ClientCertificatePolicy& c) {
      return c.common_name == fl.req.peer_common_name;
    });
    if (it == clients_.end()) {
      return cert_denied("certificate without a policy", "client certificate without a policy",
                         "no policy is configured for client certificate CN \"" + fl.req.peer_common_name + "\"");
    }
    fl.who = "cert:" + it->common_name;
    fl.policy = it->policy;
  } else if (route.access == internal::Access::kSummaryOpen) {
    // Health without credentials: the status only, no versions, devices or counters.
    internal::Request r(*this, fl.req, route, fl.name, "", {});
    internal::Outcome out = route.handler(r);
    ApiResponse resp;
    resp.status = out.status;
    resp.body = internal::JsonText(json{{"status", (*out.result)["status"]}});
    return Finish(fl, std::move(resp));
  } else {
    return auth_failed(
        PermissionDenied("authentication required: send \"Authorization: Bearer <token>\" or a client certificate"),
        "no credentials", "");
  }

  // 5. Authorisation of the operation, and of a key named by the path.
  const std::string path_key = route.key == internal::KeyIn::kPath ? fl.name : std::string();
  if (IsReservedKeyName(path_key)) {
    ++counters_.denied;
    (void)Audit(event(std::string(route.action), path_key, "PERMISSION_DENIED", "reserved key"));
    return fail(PermissionDenied("key names starting with \"" + std::string(kReservedKeyPrefix) +
                                 "\" are reserved for qsapid itself"));
  }
  if (!fl.policy.AllowsOperation(route.operation) || (!path_key.empty() && !fl.policy.AllowsKey(path_key))) {
    ++counters_.denied;
    (void)Audit(event(std::string(route.action), path_key, "PERMISSION_DENIED", "policy"));
    return fail(PermissionDenied("\"" + fl.who + "\" may not " + std::string(OperationName(route.operation)) +
                                 (path_key.empty() ? "" : " with key \"" + path_key + "\"")));
  }

  // 6. No operation without its audit line: refuse before doing anything when the log is failing.
  if (audit_ != nullptr && !IsStatusRead(route.operation)) {
    if (Status ready = audit_->Ready(); !ready.ok()) {
      ++counters_.audit_failures;
      return fail(
          Unavailable("the audit log cannot be written, so no operation is performed: " + ready.error().message()));
    }
  }

  // 7. Inline now, or on a worker under the principal's limits.
  if (route.where == internal::Where::kInline || scheduler_ == nullptr) return Run(f);
  std::optional<Refusal> refused = scheduler_->Submit(fl.who, [this, f](bool cancelled) {
    if (cancelled) {
      Finish(*f, ErrorResponse(Unavailable("qsapid is shutting down"), f->request_id));
      return;
    }
    Run(f);
  });
  if (refused) {
    ApiResponse r = ErrorResponse(refused->error, fl.request_id);
    r.headers.emplace_back("Retry-After", RetryAfterSeconds(refused->retry_after));
    Finish(fl, std::move(r));
  }
}

void Api::Run(const std::shared_ptr<Flight>& f) {
  Flight& fl = *f;
  const internal::Route& route = *fl.route;
  const auto audit_event = [&fl](const internal::Outcome& out, const internal::ItemCounts& items) {
    AuditEvent e;
    e.who = fl.who;
    e.action = std::string(fl.route->action);
    e.key = out.key;
    e.version = out.version;
    e.result = ResultName(items, out.result);
    e.request_id = fl.request_id;
    e.client_request_id = fl.client_request_id;
    e.detail = out.detail;
    e.items = items;
    return e;
  };
  internal::Request r(*this, fl.req, route, fl.name, fl.who, fl.policy);

  const auto refuse = [&](const Error& e, std::string detail, std::optional<std::chrono::milliseconds> retry,
                          unsigned status = 0) {
    internal::Outcome out;
    out.result = e;
    out.key = route.key == internal::KeyIn::kPath ? fl.name : "";
    out.detail = std::move(detail);
    const bool written = Audit(audit_event(out, {}));
    ApiResponse resp = ErrorResponse(written ? e : Unavailable("the audit log cannot be written"), fl.request_id);
    if (retry && written) resp.headers.emplace_back("Retry-After", RetryAfterSeconds(*retry));
    if (status != 0 && written) resp.status = status;
    Finish(fl, std::move(resp));
  };

  // The body and the query.
  Result<json> body = internal::ParseRequestBody(fl.req.body);
  if (!body.ok()) return refuse(body.error(), "", std::nullopt);
  r.body = std::move(*body);
  Result<std::uint32_t> qversion = internal::ParseVersion(internal::QueryParam(fl.req.query, "version"));
  if (!qversion.ok()) return refuse(qversion.error(), "", std::nullopt);
  r.query_version = *qversion;

  // The price: per item, by the key's algorithm, with the batch's size.
  if (route.batch && r.body.contains("batch")) {
    if (!r.body["batch"].is_array())
      return refuse(InvalidArgument("field \"batch\" must be an array"), "", std::nullopt);
    if (r.body["batch"].size() > options_.max_batch) {
      return refuse(InvalidArgument("a batch may hold at most " + std::to_string(options_.max_batch) + " items"), "",
                    std::nullopt);
    }
  }
  if (scheduler_ != nullptr && route.where == internal::Where::kWorker) {
    keystore::KeyType type;
    if (route.key == internal::KeyIn::kPath) {
      if (Result<keystore::KeyType> t = keystore_->TypeOf(fl.name); t.ok()) type = *t;
    } else if (route.key == internal::KeyIn::kBody && r.body.contains("type") && r.body["type"].is_string()) {
      if (Result<keystore::KeyType> t = keystore::ParseKeyType(r.body["type"].get<std::string>()); t.ok()) type = *t;
    }
    const std::size_t items = route.batch && r.body.contains("batch") ? r.body["batch"].size() : 1;
    const std::size_t per_item_bytes = items == 0 ? 0 : fl.req.body.size() / items;
    const double item_cost = ItemCost(route.work, type, per_item_bytes);
    const double cost = item_cost * static_cast<double>(std::max<std::size_t>(items, 1));
    const WorkSchedulerOptions& so = scheduler_->options();
    if (cost > so.max_request_cost) {
      const auto fit = static_cast<std::size_t>(so.max_request_cost / item_cost);
      return refuse(InvalidArgument(
                        "this request would cost about " + CostText(cost) + " of CPU (" + std::to_string(items) +
                        " x " + CostText(item_cost) + " for " + std::string(OperationName(route.operation)) + " with " +
                        keystore::KeyTypeName(type) + "); the limit per request is " + CostText(so.max_request_cost) +
                        (fit > 0 ? ": split it into batches of at most " + std::to_string(fit) + " items" : "")),
                    "cost " + CostText(cost), std::nullopt, 413);
    }
    if (std::optional<Refusal> over = scheduler_->Charge(fl.who, cost)) {
      return refuse(over->error, "cost " + CostText(cost), over->retry_after);
    }
  }

  internal::Outcome out;
  out.key = route.key == internal::KeyIn::kPath ? fl.name : "";
  {
    internal::Outcome got = route.handler(r);
    if (got.key.empty()) got.key = out.key;
    out = std::move(got);
  }
  if (route.batch && r.body.contains("batch")) {
    out.detail = "batch of " + std::to_string(r.body["batch"].size()) + (out.detail.empty() ? "" : "; " + out.detail);
  }
  // 8. The audit line, or no answer.
  if (!out.result.ok() && out.result.error().code() == ErrorCode::kPermissionDenied) ++counters_.denied;
  const bool audited = (IsStatusRead(route.operation) && out.result.ok()) || Audit(audit_event(out, r.items));
  // The result's strings (a decrypted plaintext, a data key) are wiped once answered or withheld.
  struct WipeResult {
    explicit WipeResult(internal::Outcome& outcome) : o(outcome) {}
    WipeResult(const WipeResult&) = delete;
    WipeResult& operator=(const WipeResult&) = delete;
    WipeResult(WipeResult&&) = delete;
    WipeResult& operator=(WipeResult&&) = delete;
    ~WipeResult() {
      if (o.result.ok()) internal::WipeJsonStrings(*o.result);
    }
    internal::Outcome& o;
  } const wipe_result{out};
  if (!audited) {
    return Finish(
        fl, ErrorResponse(Unavailable("the audit log cannot be written, so the result is withheld"), fl.request_id));
  }
  if (!out.result.ok()) {
    ApiResponse failed = ErrorResponse(out.result.error(), fl.request_id);
    if (out.error_status != 0) failed.status = out.error_status;
    failed.headers = std::move(out.error_headers);
    return Finish(fl, std::move(failed));
  }
  ApiResponse resp;
  resp.status = out.status;
  if (route.operation == Operation::kMetrics) {
    resp.content_type = "text/plain; version=0.0.4";
    resp.body = (*out.result)["text"].get<std::string>();
  } else {
    resp.body = internal::JsonText(*out.result);
  }
  Finish(fl, std::move(resp));
}

}  // namespace qsapi::server
