#include "server/api.h"

#include "server/sessions.h"

#include "qsapi/hpke/container.h"
#include "qsapi/hpke/keystore_recipient.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "common/internal/text.h"
#include "qsapi/crypto/random.h"
#include "qsapi/version.h"
#include "server/internal/request_parsing.h"

namespace qsapi::server {

using internal::BytesField;
using internal::ForEach;
using internal::ParseVersion;
using internal::PercentDecode;
using internal::PolicyFromJson;
using internal::QueryParam;
using internal::Split;
using internal::StringField;
using nlohmann::json;

std::string_view ApiRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(),
                                              [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return v;
    }
  }
  return {};
}

namespace {

unsigned HttpStatusOf(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument: return 400;
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

std::string B64(ByteView b) {
  std::string out(sodium_base64_ENCODED_LEN(b.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string JsonText(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

// Context is one request in flight: who, which request id, and the audit helper.
class Api::Context {
 public:
  Context(Api& owner, const ApiRequest& request, std::string id)
      : api(owner), req(request), request_id(std::move(id)) {}
  Api& api;
  const ApiRequest& req;
  std::string request_id;
  std::string who;  // principal name ("" before authentication)
  Policy policy;

  void Audit(const std::string& action, const std::string& key, std::uint32_t version, const std::string& result,
             const std::string& detail = {}) {
    if (api.audit_ == nullptr) return;
    (void)api.audit_->Append({.who = who.empty() ? "anonymous" : who,
                              .action = action,
                              .key = key,
                              .version = version,
                              .result = result,
                              .request_id = request_id,
                              .detail = detail});
  }

  ApiResponse Fail(const Error& e) {
    ApiResponse r;
    r.status = HttpStatusOf(e.code());
    if (e.code() == ErrorCode::kPermissionDenied && who.empty()) {
      r.status = 401;
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
    }
    r.body = JsonText(
        json{{"error", {{"code", ErrorCodeName(e.code())}, {"message", e.message()}, {"request_id", request_id}}}});
    return r;
  }

  // Allow checks the principal's policy; a denial is audited.
  Status Allow(const std::string& op, const std::string& key) {
    if (IsReservedKeyName(key)) {
      ++api.counters_.denied;
      Audit(op, key, 0, "PERMISSION_DENIED", "reserved key");
      return Error(ErrorCode::kPermissionDenied, "key names starting with \"" + std::string(kReservedKeyPrefix) +
                                                     "\" are reserved for qsapid itself");
    }
    if (!policy.AllowsOperation(op) || (!key.empty() && !policy.AllowsKey(key))) {
      ++api.counters_.denied;
      Audit(op, key, 0, "PERMISSION_DENIED", "policy");
      return Error(ErrorCode::kPermissionDenied,
                   "\"" + who + "\" may not " + op + (key.empty() ? "" : " with key \"" + key + "\""));
    }
    return OkStatus();
  }

  Result<json> Body() const { return internal::ParseRequestBody(req.body); }
};

Api::Api(ApiOptions options, keystore::Keystore* keystore, std::shared_ptr<entropy::EntropyPool> pool,
         TokenStore tokens, std::vector<ClientCertificatePolicy> clients, AuditLog* audit)
    : options_(options),
      keystore_(keystore),
      pool_(std::move(pool)),
      tokens_(std::move(tokens)),
      clients_(std::move(clients)),
      audit_(audit) {}

void Api::ReloadTokens(TokenStore tokens) {
  const std::lock_guard<std::mutex> lock(tokens_mu_);
  tokens_ = std::move(tokens);
}

namespace {

struct Route {
  const char* method;
  const char* pattern;  // "/v1/keys/{name}/rotate"
};

const Route kRoutes[] = {
    {"GET", "/v1/livez"},
    {"GET", "/v1/health"},
    {"GET", "/metrics"},
    {"GET", "/v1/keys"},
    {"POST", "/v1/keys"},
    {"GET", "/v1/keys/{name}"},
    {"DELETE", "/v1/keys/{name}"},
    {"POST", "/v1/keys/{name}/rotate"},
    {"POST", "/v1/keys/{name}/config"},
    {"GET", "/v1/keys/{name}/public"},
    {"POST", "/v1/encrypt/{name}"},
    {"POST", "/v1/decrypt/{name}"},
    {"POST", "/v1/rewrap/{name}"},
    {"POST", "/v1/datakey/{name}"},
    {"POST", "/v1/sign/{name}"},
    {"POST", "/v1/verify/{name}"},
    {"POST", "/v1/kem/{name}/encapsulate"},
    {"POST", "/v1/kem/{name}/decapsulate"},
    {"GET", "/v1/sessions"},
    {"POST", "/v1/sessions"},
    {"GET", "/v1/sessions/{name}"},
    {"DELETE", "/v1/sessions/{name}"},
    {"POST", "/v1/sessions/{name}/seal"},
    {"POST", "/v1/sessions/{name}/open"},
    {"POST", "/v1/sessions/{name}/rotate"},
    {"POST", "/v1/seal/{name}"},
    {"POST", "/v1/open/{name}"},
    {"POST", "/v1/random"},
};

// Match returns the {name} parameter when `parts` match `pattern`.
std::optional<std::string> Match(const std::vector<std::string>& parts, std::string_view pattern) {
  const std::vector<std::string> want = Split(pattern);
  if (want.size() != parts.size()) return std::nullopt;
  std::string name;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] == "{name}") {
      name = parts[i];
    } else if (want[i] != parts[i]) {
      return std::nullopt;
    }
  }
  return name;
}

json KeyJson(const keystore::KeyInfo& k) {
  json versions = json::array();
  for (const auto& v : k.versions) {
    json jv = {{"version", v.version},
               {"state", keystore::VersionStateName(v.state)},
               {"created", std::chrono::duration_cast<std::chrono::seconds>(v.created.time_since_epoch()).count()},
               {"operations", v.operations}};
    versions.push_back(jv);
  }
  return {{"name", k.name},
          {"id", keystore::KeyIdHex(k.id)},
          {"type", keystore::KeyTypeName(k.type)},
          {"purpose", keystore::KeyPurposeName(k.type.purpose)},
          {"created", std::chrono::duration_cast<std::chrono::seconds>(k.created.time_since_epoch()).count()},
          {"rotated", std::chrono::duration_cast<std::chrono::seconds>(k.rotated.time_since_epoch()).count()},
          {"current_version", k.current_version},
          {"policy",
           {{"auto_rotate_seconds", k.policy.auto_rotate_period.count()},
            {"max_operations_per_version", k.policy.max_operations_per_version},
            {"min_decryption_version", k.policy.min_decryption_version},
            {"deletion_allowed", k.policy.deletion_allowed}}},
          {"versions", versions}};
}

}  // namespace

json SessionJson(const SessionInfo& s) {
  const auto established =
      std::chrono::duration_cast<std::chrono::seconds>(s.established.time_since_epoch()).count();
  return json{{"id", s.id},
              {"peer", s.peer},
              {"role", s.role},
              {"suite", s.suite},
              {"sources", s.sources},
              {"qkd", s.qkd},
              {"qrng", s.qrng},
              {"degraded", s.degraded},
              {"notes", s.notes},
              {"qkd_keys", s.qkd_keys},
              {"tls_group", s.tls_group},
              {"tls_cipher", s.tls_cipher},
              {"peer_key_algorithm", s.peer_key_algorithm},
              {"established", established},
              {"epoch", s.stats.epoch},
              {"messages_sealed", s.stats.messages_sealed},
              {"messages_opened", s.stats.messages_opened},
              {"rotations", s.stats.rotations},
              {"failed_decryptions", s.stats.failed_decryptions},
              {"replays_rejected", s.stats.replays_rejected},
              {"fresh_qkd",
               {{"enabled", s.fresh_keys},
                {"epochs", s.stats.fresh_key_epochs},
                {"agreed", s.fresh.agreed},
                {"refused", s.fresh.refused},
                {"skipped", s.fresh.skipped},
                {"last_problem", s.fresh.last_problem}}},
              {"link", s.link},
              {"reestablishments", s.stats.reestablishments},
              {"reestablished", std::chrono::duration_cast<std::chrono::seconds>(s.reestablished.time_since_epoch()).count()},
              {"closed", s.stats.closed}};
}

std::vector<std::string> Api::Routes() {
  std::vector<std::string> out;
  for (const Route& r : kRoutes) out.push_back(std::string(r.method) + " " + r.pattern);
  return out;
}

ApiResponse Api::Handle(const ApiRequest& req) {
  ++counters_.requests;
  std::string request_id;
  if (const std::string_view given = req.Header("X-Request-Id");
      !given.empty() && given.size() <= 64 && std::all_of(given.begin(), given.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      })) {
    request_id = given;
  } else {
    Result<Bytes> random_id = crypto::RandomBytes(8);
    request_id = qsapi::internal::HexEncode(random_id.ok() ? *random_id : Bytes(8, 0));
  }
  Context ctx(*this, req, request_id);
  std::string route_name = "unknown";
  ApiResponse resp = [&]() -> ApiResponse {
    Result<std::string> path = PercentDecode(req.path);
    if (!path.ok()) return ctx.Fail(path.error());
    const std::vector<std::string> parts = Split(*path);
    const Route* route = nullptr;
    std::string name;
    bool path_known = false;
    for (const Route& r : kRoutes) {
      if (auto m = Match(parts, r.pattern)) {
        path_known = true;
        if (req.method == r.method) {
          route = &r;
          name = *m;
          break;
        }
      }
    }
    if (route == nullptr) {
      if (path_known) {
        ApiResponse r = ctx.Fail(Error(ErrorCode::kInvalidArgument, "method " + req.method + " is not allowed here"));
        r.status = 405;
        return r;
      }
      return ctx.Fail(Error(ErrorCode::kNotFound, "no such route: " + req.method + " " + req.path));
    }
    route_name = std::string(route->method) + " " + route->pattern;
    const std::string pattern = route->pattern;

    if (pattern == "/v1/livez") {  // liveness: the process answers; touches nothing else
      ApiResponse r;
      r.body = R"({"status":"alive"})";
      return r;
    }
    if (pattern == "/v1/health") {
      std::map<std::string, std::string> checks;
      bool ok = true;
      if (Status probe = keystore_->Probe(); probe.ok()) {
        checks["keystore"] = "ok: " + keystore_->token_description();
      } else {
        checks["keystore"] = "error: " + probe.error().message();
        ok = false;
      }
      json entropy = json::parse(entropy::FormatStatusJson(*pool_));
      bool qrng_ok = true;
      for (const auto& s : entropy["sources"]) {
        if (s["state"] == "failed") qrng_ok = false;
      }
      checks["entropy"] = qrng_ok ? "ok" : "degraded: a source has failed (see entropy.sources)";
      if (health_hook_) health_hook_(checks);
      for (const auto& [k, v] : checks) {
        if (!(v.starts_with("ok") || v.starts_with("off"))) ok = false;
      }
      ApiResponse r;
      r.status = ok ? 200 : 503;
      r.body = JsonText(json{
          {"status", ok ? "ok" : "degraded"},
          {"version", qsapi::VersionBanner("qsapid")},
          {"checks", checks},
          {"entropy", entropy},
          {"uptime_seconds",
           std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()}});
      return r;
    }

    // Authentication: a bearer token, else a verified client certificate with a configured policy.
    if (const std::string_view auth = req.Header("Authorization"); !auth.empty()) {
      if (!auth.starts_with("Bearer ")) {
        return ctx.Fail(Error(ErrorCode::kPermissionDenied, "the Authorization header must be \"Bearer <token>\""));
      }
      Result<TokenEntry> who = [&] {
        const std::lock_guard<std::mutex> lock(tokens_mu_);
        return tokens_.Authenticate(auth.substr(7));
      }();
      if (!who.ok()) {
        ++counters_.denied;
        ctx.Audit("authenticate", "", 0, "PERMISSION_DENIED", "bad bearer token");
        return ctx.Fail(who.error());
      }
      ctx.who = "token:" + who->name;
      ctx.policy = who->policy;
    } else if (!req.peer_common_name.empty()) {
      const auto it = std::find_if(clients_.begin(), clients_.end(), [&](const ClientCertificatePolicy& c) {
        return c.common_name == req.peer_common_name;
      });
      if (it == clients_.end()) {
        ++counters_.denied;
        ctx.who = "cert:" + req.peer_common_name;  // authenticated by TLS, but without a policy: 403
        ctx.Audit("authenticate", "", 0, "PERMISSION_DENIED", "client certificate without a policy");
        return ctx.Fail(Error(ErrorCode::kPermissionDenied,
                              "no policy is configured for client certificate CN \"" + req.peer_common_name + "\""));
      }
      ctx.who = "cert:" + it->common_name;
      ctx.policy = it->policy;
    } else {
      ++counters_.denied;
      return ctx.Fail(Error(ErrorCode::kPermissionDenied,
                            "authentication required: send \"Authorization: Bearer <token>\" or a client certificate"));
    }

    if (pattern == "/metrics") {
      if (Status s = ctx.Allow("metrics", ""); !s.ok()) return ctx.Fail(s.error());
      std::ostringstream m;
      m << "# HELP qsapi_http_requests_total Requests handled, by route and status.\n"
           "# TYPE qsapi_http_requests_total counter\n";
      {
        const std::lock_guard<std::mutex> lock(metrics_mu_);
        for (const auto& [k, v] : route_counts_) {
          const std::size_t sp = k.rfind(' ');
          m << "qsapi_http_requests_total{route=\"" << k.substr(0, sp) << "\",code=\"" << k.substr(sp + 1) << "\"} "
            << v << "\n";
        }
      }
      m << "# HELP qsapi_http_denied_total Requests refused by authentication or policy.\n"
           "# TYPE qsapi_http_denied_total counter\nqsapi_http_denied_total "
        << counters_.denied.load() << "\n";
      const auto cs = keystore_->cache_stats();
      m << "# HELP qsapi_keystore_cache_hits_total Key uses served from memory.\n"
           "# TYPE qsapi_keystore_cache_hits_total counter\nqsapi_keystore_cache_hits_total "
        << cs.hits
        << "\n# HELP qsapi_keystore_cache_misses_total Key uses that needed the token.\n"
           "# TYPE qsapi_keystore_cache_misses_total counter\nqsapi_keystore_cache_misses_total "
        << cs.misses << "\n";
      m << entropy::FormatPrometheusMetrics(*pool_);
      ApiResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = m.str();
      return r;
    }

    Result<json> body = ctx.Body();
    if (!body.ok()) return ctx.Fail(body.error());
    const json& b = *body;
    const auto done = [&](const std::string& action, const std::string& key, std::uint32_t version, Result<json> result,
                          const std::string& detail = {}) -> ApiResponse {
      if (!result.ok()) {
        ctx.Audit(action, key, version, std::string(ErrorCodeName(result.error().code())), detail);
        return ctx.Fail(result.error());
      }
      ctx.Audit(action, key, version, "ok", detail);
      ApiResponse r;
      r.body = JsonText(*result);
      return r;
    };
    const auto batch_detail = [&] {
      return b.contains("batch") && b["batch"].is_array() ? "batch of " + std::to_string(b["batch"].size())
                                                          : std::string();
    };

    if (pattern.starts_with("/v1/sessions")) {
      if (Status st = ctx.Allow("sessions", ""); !st.ok()) return ctx.Fail(st.error());
      if (sessions_ == nullptr) {
        return ctx.Fail(Error(ErrorCode::kFailedPrecondition,
                              "peer sessions are not configured on this node ([session] and [[peer]] in the "
                              "configuration; docs/OPERATIONS.md)"));
      }
      SessionManager& sm = *sessions_;
      if (route_name == "GET /v1/sessions") {
        json list = json::array();
        for (const SessionInfo& si : sm.List()) list.push_back(SessionJson(si));
        return done("sessions.list", "", 0, json{{"node", sm.node_name()}, {"sessions", list}});
      }
      if (route_name == "POST /v1/sessions") {
        Result<std::string> peer = StringField(b, "peer", true, 128);
        if (!peer.ok()) return ctx.Fail(peer.error());
        auto created = sm.Create(*peer);
        ApiResponse r = done("sessions.create", *peer, 0,
                             created.ok() ? Result<json>(SessionJson(*created)) : Result<json>(created.error()),
                             created.ok() ? "session " + created->id + " (" + created->sources + ")" : "");
        if (r.status == 200) r.status = 201;
        return r;
      }
      if (route_name == "GET /v1/sessions/{name}") {
        auto got = sm.Get(name);
        return done("sessions.read", "", 0, got.ok() ? Result<json>(SessionJson(*got)) : Result<json>(got.error()),
                    "session " + name);
      }
      if (route_name == "DELETE /v1/sessions/{name}") {
        const Status closed = sm.Close(name);
        return done("sessions.close", "", 0, closed.ok() ? Result<json>(json{{"closed", name}}) : Result<json>(closed.error()),
                    "session " + name);
      }
      if (route_name == "POST /v1/sessions/{name}/rotate") {
        bool require_fresh = false;
        bool reestablish = false;
        for (const char* field : {"fresh_qkd", "reestablish"}) {
          if (b.is_object() && b.contains(field)) {
            if (!b[field].is_boolean()) {
              return ctx.Fail(InvalidArgument("field \"" + std::string(field) + "\" must be true or false"));
            }
            (std::string_view(field) == "fresh_qkd" ? require_fresh : reestablish) = b[field].get<bool>();
          }
        }
        if (require_fresh && reestablish) {
          return ctx.Fail(InvalidArgument("give fresh_qkd or reestablish, not both"));
        }
        auto rotated = reestablish ? sm.Reestablish(name) : sm.Rotate(name, require_fresh);
        return done("sessions.rotate", "", 0,
                    rotated.ok() ? Result<json>(SessionJson(*rotated)) : Result<json>(rotated.error()), "session " + name);
      }
      if (route_name == "POST /v1/sessions/{name}/seal") {
        Result<json> r = [&]() -> Result<json> {
          QSAPI_ASSIGN_OR_RETURN(Bytes pt, BytesField(b, "plaintext", true));
          QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(b, "associated_data", false));
          Result<std::string> env = sm.Seal(name, pt, aad);
          SecureZero(pt.data(), pt.size());
          if (!env.ok()) return env.error();
          return json{{"envelope", *env}};
        }();
        return done("sessions.seal", "", 0, std::move(r), "session " + name);
      }
      if (route_name == "POST /v1/sessions/{name}/open") {
        Result<json> r = [&]() -> Result<json> {
          QSAPI_ASSIGN_OR_RETURN(std::string env, StringField(b, "envelope", true, std::size_t{3} << 20));
          QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(b, "associated_data", false));
          QSAPI_ASSIGN_OR_RETURN(Bytes pt, sm.Open(name, env, aad));
          json out{{"plaintext", B64(pt)}};
          SecureZero(pt.data(), pt.size());
          return out;
        }();
        return done("sessions.open", "", 0, std::move(r), "session " + name);
      }
      return ctx.Fail(Error(ErrorCode::kInternal, "unhandled session route " + route_name));
    }
    if (pattern == "/v1/keys" && req.method == "GET") {
      if (Status s = ctx.Allow("keys.read", ""); !s.ok()) return ctx.Fail(s.error());
      auto keys = keystore_->List();
      if (!keys.ok()) return ctx.Fail(keys.error());
      json out = json::array();
      for (const auto& k : *keys) {
        if (ctx.policy.AllowsKey(k.name) && !IsReservedKeyName(k.name)) out.push_back(KeyJson(k));
      }
      return done("keys.list", "", 0, json{{"keys", out}});
    }
    if (pattern == "/v1/keys" && req.method == "POST") {
      Result<std::string> key_name = StringField(b, "name", true, 64);
      if (!key_name.ok()) return ctx.Fail(key_name.error());
      if (Status s = ctx.Allow("keys.create", *key_name); !s.ok()) return ctx.Fail(s.error());
      Result<json> r = [&]() -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(std::string type_name, StringField(b, "type", true, 64));
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyType type, keystore::ParseKeyType(type_name));
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyPolicy policy, PolicyFromJson(b, {}));
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, keystore_->Create(*key_name, type, policy));
        return KeyJson(info);
      }();
      ApiResponse resp2 = done("keys.create", *key_name, 1, std::move(r));
      if (resp2.status == 200) resp2.status = 201;
      return resp2;
    }

    // Every other route names a key.
    const std::map<std::string, std::string> ops = {
        {"GET /v1/keys/{name}", "keys.read"},           {"DELETE /v1/keys/{name}", "keys.destroy"},
        {"POST /v1/keys/{name}/rotate", "keys.rotate"}, {"POST /v1/keys/{name}/config", "keys.config"},
        {"GET /v1/keys/{name}/public", "keys.read"},    {"POST /v1/encrypt/{name}", "encrypt"},
        {"POST /v1/decrypt/{name}", "decrypt"},         {"POST /v1/rewrap/{name}", "rewrap"},
        {"POST /v1/datakey/{name}", "datakey"},         {"POST /v1/sign/{name}", "sign"},
        {"POST /v1/verify/{name}", "verify"},           {"POST /v1/kem/{name}/encapsulate", "kem"},
        {"POST /v1/kem/{name}/decapsulate", "kem"},     {"POST /v1/random", "random"},
        {"POST /v1/seal/{name}", "seal"},               {"POST /v1/open/{name}", "open"},
    };
    const std::string op = ops.at(route_name);
    if (Status s = ctx.Allow(op, pattern == "/v1/random" ? "" : name); !s.ok()) return ctx.Fail(s.error());
    Result<std::uint32_t> qversion = ParseVersion(QueryParam(req.query, "version"));
    if (!qversion.ok()) return ctx.Fail(qversion.error());

    if (route_name == "GET /v1/keys/{name}") {
      auto k = keystore_->Get(name);
      return done("keys.read", name, 0, k.ok() ? Result<json>(KeyJson(*k)) : Result<json>(k.error()));
    }
    if (route_name == "DELETE /v1/keys/{name}") {
      const Status s = *qversion == 0 ? keystore_->Destroy(name) : keystore_->DestroyVersion(name, *qversion);
      return done("keys.destroy", name, *qversion,
                  s.ok() ? Result<json>(json{{"destroyed", name}}) : Result<json>(s.error()));
    }
    if (route_name == "POST /v1/keys/{name}/rotate") {
      auto k = keystore_->Rotate(name);
      return done("keys.rotate", name, k.ok() ? k->current_version : 0,
                  k.ok() ? Result<json>(KeyJson(*k)) : Result<json>(k.error()));
    }
    if (route_name == "POST /v1/keys/{name}/config") {
      Result<json> r = [&]() -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo current, keystore_->Get(name));
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyPolicy policy, PolicyFromJson(b, current.policy));
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, keystore_->UpdatePolicy(name, policy));
        return KeyJson(info);
      }();
      return done("keys.config", name, 0, std::move(r));
    }
    if (route_name == "GET /v1/keys/{name}/public") {
      auto p = keystore_->PublicKey(name, *qversion);
      return done("keys.public", name, *qversion,
                  p.ok() ? Result<json>(json{{"name", name}, {"public_key", B64(*p)}}) : Result<json>(p.error()));
    }
    if (route_name == "POST /v1/encrypt/{name}") {
      auto r = ForEach(b, options_.max_batch, [&](const json& item) -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(Bytes pt, BytesField(item, "plaintext", true));
        QSAPI_ASSIGN_OR_RETURN(Bytes ad, BytesField(item, "associated_data", false));
        Result<Bytes> ct = keystore_->Encrypt(name, pt, ad);
        SecureZero(pt.data(), pt.size());
        if (!ct.ok()) return ct.error();
        return json{{"ciphertext", keystore::ToText(*ct)}, {"version", keystore::ParseHeader(*ct)->version}};
      });
      return done("encrypt", name, 0, std::move(r), batch_detail());
    }
    if (route_name == "POST /v1/decrypt/{name}") {
      auto r = ForEach(b, options_.max_batch, [&](const json& item) -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(std::string text, StringField(item, "ciphertext", true, std::size_t{96} << 20));
        QSAPI_ASSIGN_OR_RETURN(Bytes ad, BytesField(item, "associated_data", false));
        QSAPI_ASSIGN_OR_RETURN(Bytes ct, keystore::FromText(text));
        QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, keystore_->DecryptSecret(name, ct, ad));
        return json{{"plaintext", B64(pt.view())}, {"version", keystore::ParseHeader(ct)->version}};
      });
      return done("decrypt", name, 0, std::move(r), batch_detail());
    }
    if (route_name == "POST /v1/rewrap/{name}") {
      auto r = ForEach(b, options_.max_batch, [&](const json& item) -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(std::string text, StringField(item, "ciphertext", true, std::size_t{96} << 20));
        QSAPI_ASSIGN_OR_RETURN(Bytes ad, BytesField(item, "associated_data", false));
        QSAPI_ASSIGN_OR_RETURN(Bytes ct, keystore::FromText(text));
        QSAPI_ASSIGN_OR_RETURN(SecretBytes pt, keystore_->DecryptSecret(name, ct, ad));
        QSAPI_ASSIGN_OR_RETURN(Bytes fresh, keystore_->Encrypt(name, pt.view(), ad));
        return json{{"ciphertext", keystore::ToText(fresh)}, {"version", keystore::ParseHeader(fresh)->version}};
      });
      return done("rewrap", name, 0, std::move(r), batch_detail());
    }
    if (route_name == "POST /v1/datakey/{name}") {
      Result<json> r = [&]() -> Result<json> {
        bool with_plaintext = true;
        if (b.contains("plaintext")) {
          if (!b["plaintext"].is_boolean()) return InvalidArgument("field \"plaintext\" must be true or false");
          with_plaintext = b["plaintext"].get<bool>();
        }
        QSAPI_ASSIGN_OR_RETURN(SecretBytes key, crypto::RandomSecret(32));
        QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, keystore_->Encrypt(name, key.view(), {}));
        json out = {{"ciphertext", keystore::ToText(wrapped)}, {"bits", 256}};
        if (with_plaintext) out["plaintext"] = B64(key.view());
        return out;
      }();
      return done("datakey", name, 0, std::move(r));
    }
    if (route_name == "POST /v1/sign/{name}") {
      auto r = ForEach(b, options_.max_batch, [&](const json& item) -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(Bytes msg, BytesField(item, "message", true));
        QSAPI_ASSIGN_OR_RETURN(Bytes sig, keystore_->Sign(name, msg));
        return json{{"signature", keystore::ToText(sig)}, {"version", keystore::ParseHeader(sig)->version}};
      });
      return done("sign", name, 0, std::move(r), batch_detail());
    }
    if (route_name == "POST /v1/verify/{name}") {
      auto r = ForEach(b, options_.max_batch, [&](const json& item) -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(Bytes msg, BytesField(item, "message", true));
        QSAPI_ASSIGN_OR_RETURN(std::string text, StringField(item, "signature", true, 1 << 20));
        QSAPI_ASSIGN_OR_RETURN(Bytes sig, keystore::FromText(text));
        const Status s = keystore_->Verify(name, msg, sig);
        if (!s.ok() && s.error().code() != ErrorCode::kAuthenticationFailed) return s.error();
        return json{{"valid", s.ok()}};
      });
      return done("verify", name, 0, std::move(r), batch_detail());
    }
    if (route_name == "POST /v1/kem/{name}/encapsulate") {
      Result<json> r = [&]() -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(crypto::KemPublicKey pub, keystore_->KemPublicKey(name, *qversion));
        QSAPI_ASSIGN_OR_RETURN(crypto::KemEncapsulation enc, pub.Encapsulate());
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, keystore_->Get(name));
        return json{{"ciphertext", B64(enc.ciphertext.view())},
                    {"shared_secret", B64(enc.shared_secret.view())},
                    {"version", *qversion == 0 ? info.current_version : *qversion}};
      }();
      return done("kem.encapsulate", name, *qversion, std::move(r));
    }
    if (route_name == "POST /v1/kem/{name}/decapsulate") {
      Result<json> r = [&]() -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(Bytes ct, BytesField(b, "ciphertext", true));
        std::uint32_t version = *qversion;
        if (b.contains("version")) {
          if (!b["version"].is_number_unsigned() || b["version"].get<std::uint64_t>() > 0xffffffffULL)
            return InvalidArgument("field \"version\" must be a positive integer below 2^32");
          version = b["version"].get<std::uint32_t>();
        }
        QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, keystore_->Decapsulate(name, version, ct));
        return json{{"shared_secret", B64(ss.view())}};
      }();
      return done("kem.decapsulate", name, *qversion, std::move(r));
    }
    if (route_name == "POST /v1/seal/{name}") {  // HPKE to the key's current (or ?version=) public key
      std::uint32_t used = 0;
      Result<json> r = [&]() -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(Bytes pt, BytesField(b, "plaintext", true));
        QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(b, "associated_data", false));
        QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, keystore_->Get(name));
        used = *qversion == 0 ? info.current_version : *qversion;
        QSAPI_ASSIGN_OR_RETURN(crypto::KemPublicKey pk, keystore_->KemPublicKey(name, used));
        hpke::SealOptions o;
        QSAPI_ASSIGN_OR_RETURN(o.suite, hpke::DefaultSuiteFor(pk.algorithm()));
        o.aad = aad;
        QSAPI_ASSIGN_OR_RETURN(Bytes sealed, hpke::SealMessage(pk, hpke::KeystoreHpkeKeyId(info.id, used), pt, o));
        SecureZero(pt.data(), pt.size());
        return json{{"sealed", B64(sealed)}, {"version", used}};
      }();
      return done("seal", name, used, std::move(r));
    }
    if (route_name == "POST /v1/open/{name}") {  // the version comes from the message's recipient key id
      Result<json> r = [&]() -> Result<json> {
        QSAPI_ASSIGN_OR_RETURN(Bytes sealed, BytesField(b, "sealed", true));
        QSAPI_ASSIGN_OR_RETURN(Bytes aad, BytesField(b, "associated_data", false));
        QSAPI_ASSIGN_OR_RETURN(hpke::ParsedHeader header, hpke::ParseHeader(sealed));
        QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<hpke::RecipientKey> key,
                               hpke::LoadKeystoreRecipient(*keystore_, name, header.header.key_id));
        hpke::OpenOptions o;
        o.aad = aad;
        QSAPI_ASSIGN_OR_RETURN(Bytes pt, hpke::OpenMessage(sealed, *key, o));
        json out{{"plaintext", B64(pt)}};
        SecureZero(pt.data(), pt.size());
        return out;
      }();
      return done("open", name, 0, std::move(r));
    }
    if (route_name == "POST /v1/random") {
      Result<json> r = [&]() -> Result<json> {
        std::size_t n = 32;
        if (b.contains("bytes")) {
          if (!b["bytes"].is_number_unsigned() || b["bytes"].get<std::uint64_t>() == 0 ||
              b["bytes"].get<std::uint64_t>() > options_.max_random_bytes) {
            return InvalidArgument("field \"bytes\" must be an integer 1.." +
                                   std::to_string(options_.max_random_bytes));
          }
          n = b["bytes"].get<std::size_t>();
        }
        QSAPI_ASSIGN_OR_RETURN(std::string source, StringField(b, "source", false, 64));
        if (source.empty() || source == "pool") {
          QSAPI_ASSIGN_OR_RETURN(entropy::PoolDraw draw, pool_->Draw(n));
          json sources = json::array({"os"});
          for (const auto& q : draw.qrng_sources) sources.push_back(q);
          return json{{"random", B64(draw.bytes.view())}, {"sources", sources}, {"conditioned", true}};
        }
        QSAPI_ASSIGN_OR_RETURN(SecretBytes raw, pool_->SampleSource(source, n));
        return json{{"random", B64(raw.view())}, {"sources", json::array({source})}, {"conditioned", false}};
      }();
      return done("random", "", 0, std::move(r));
    }
    return ctx.Fail(Internal("route without a handler: " + route_name));
  }();
  if (resp.status >= 500) ++counters_.errors;
  {
    const std::lock_guard<std::mutex> lock(metrics_mu_);
    ++route_counts_[route_name + " " + std::to_string(resp.status)];
  }
  resp.headers.emplace_back("X-Request-Id", request_id);
  resp.headers.emplace_back("Cache-Control", "no-store");
  return resp;
}

}  // namespace qsapi::server
