#include "server/config.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#define TOML_EXCEPTIONS 1  // NOLINT(cppcoreguidelines-macro-usage): toml++'s configuration macro
#include <toml++/toml.h>

#include "common/internal/text.h"
#include "server/tokens.h"

namespace qsapi::server {
namespace {

// Reader walks one TOML table, records every key it reads, and reports unknown ones.
class Reader {
 public:
  Reader(const toml::table& t, std::string prefix, std::string origin)
      : t_(t), prefix_(std::move(prefix)), origin_(std::move(origin)) {}

  [[nodiscard]] std::string Name(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }
  Error Bad(std::string_view key, const std::string& what) const {
    std::string where = origin_;
    if (const toml::node* n = t_.get(key); n != nullptr && n->source().begin.line != 0) {
      where += ":" + std::to_string(n->source().begin.line);
    }
    return InvalidArgument("config " + where + ": " + Name(key) + ": " + what);
  }

  [[nodiscard]] bool Has(std::string_view key) const { return t_.get(key) != nullptr; }

  Status String(std::string_view key, std::string& out) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_string()) return Bad(key, "expected a string");
    out = n->as_string()->get();
    return OkStatus();
  }
  Status Bool(std::string_view key, bool& out) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_boolean()) return Bad(key, "expected true or false");
    out = n->as_boolean()->get();
    return OkStatus();
  }
  template <typename Int>
  Status Integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return OkStatus();
    if (!n->is_integer()) return Bad(key, "expected an integer");
    const std::int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      return Bad(key, "expected " + std::to_string(min) + ".." + std::to_string(max) + ", got " + std::to_string(v));
    }
    out = static_cast<Int>(v);
    return OkStatus();
  }
  Status Number(std::string_view key, double& out, double min, double max) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return OkStatus();
    double v = 0;
    if (n->is_floating_point()) {
      v = n->as_floating_point()->get();
    } else if (n->is_integer()) {
      v = static_cast<double>(n->as_integer()->get());
    } else {
      return Bad(key, "expected a number");
    }
    if (!(v > min && v <= max))
      return Bad(key, "expected a number in (" + std::to_string(min) + ", " + std::to_string(max) + "]");
    out = v;
    return OkStatus();
  }
  Status Choice(std::string_view key, std::string& out, std::initializer_list<std::string_view> allowed) {
    std::string v = out;
    QSAPI_RETURN_IF_ERROR(String(key, v));
    for (std::string_view a : allowed) {
      if (v == a) {
        out = v;
        return OkStatus();
      }
    }
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return Bad(key, "expected one of " + list + ", got \"" + v + "\"");
  }
  Status Policy(std::string_view key, SourcePolicy& out) {
    std::string v(SourcePolicyName(out));
    QSAPI_RETURN_IF_ERROR(Choice(key, v, {"off", "prefer", "require"}));
    out = v == "off" ? SourcePolicy::kOff : v == "prefer" ? SourcePolicy::kPrefer : SourcePolicy::kRequire;
    return OkStatus();
  }
  Status Seconds(std::string_view key, std::chrono::seconds& out, std::int64_t min, std::int64_t max) {
    std::int64_t v = out.count();
    QSAPI_RETURN_IF_ERROR(Integer(key, v, min, max));
    out = std::chrono::seconds(v);
    return OkStatus();
  }
  Status Millis(std::string_view key, std::chrono::milliseconds& out, std::int64_t min, std::int64_t max) {
    std::int64_t v = out.count();
    QSAPI_RETURN_IF_ERROR(Integer(key, v, min, max));
    out = std::chrono::milliseconds(v);
    return OkStatus();
  }
  // Table returns a sub-table (or nullptr when absent); an error when the key is not a table.
  Result<const toml::table*> Table(std::string_view key) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return static_cast<const toml::table*>(nullptr);
    if (!n->is_table()) return Bad(key, "expected a table ([" + Name(key) + "])");
    return n->as_table();
  }
  Result<const toml::array*> Array(std::string_view key) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return static_cast<const toml::array*>(nullptr);
    if (!n->is_array()) return Bad(key, "expected an array of tables ([[" + Name(key) + "]])");
    return n->as_array();
  }
  Status Strings(std::string_view key, std::vector<std::string>& out) {
    seen_.insert(std::string(key));
    const toml::node* n = t_.get(key);
    if (n == nullptr) return OkStatus();
    const toml::array* a = n->as_array();
    if (a == nullptr) return Bad(key, "expected an array of strings");
    std::vector<std::string> v;
    for (const toml::node& e : *a) {
      if (!e.is_string() || e.as_string()->get().empty()) return Bad(key, "expected an array of non-empty strings");
      v.push_back(e.as_string()->get());
    }
    out = std::move(v);
    return OkStatus();
  }
  Status NoUnknownKeys() const {
    for (const auto& [k, v] : t_) {
      if (!seen_.contains(std::string(k.str()))) {
        return Bad(k.str(), "unknown key (check the spelling; docs/OPERATIONS.md lists the keys)");
      }
    }
    return OkStatus();
  }

 private:
  const toml::table& t_;
  std::string prefix_;
  std::string origin_;
  std::set<std::string> seen_;
};

Status RequireNonEmpty(const Reader& r, std::string_view key, const std::string& v) {
  if (v.empty()) return r.Bad(key, "is required");
  return OkStatus();
}

Status ParseListen(Reader& r, ServerSection& s) {
  std::string listen = s.listen_host + ":" + std::to_string(s.listen_port);
  QSAPI_RETURN_IF_ERROR(r.String("listen", listen));
  Result<std::pair<std::string, std::uint16_t>> parsed = ParseListenAddress(listen);
  if (!parsed.ok()) return r.Bad("listen", parsed.error().message());
  s.listen_host = parsed->first;
  s.listen_port = parsed->second;
  return OkStatus();
}

// ParseServerTable reads the [server] table.
Status ParseServerTable(Reader& r, Config& c) {
  QSAPI_RETURN_IF_ERROR(ParseListen(r, c.server));
  QSAPI_RETURN_IF_ERROR(r.Choice("profile", c.server.profile, {"default", "cnsa2"}));
  QSAPI_RETURN_IF_ERROR(r.Choice("client_certificates", c.server.client_certificates, {"off", "optional", "required"}));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_body_bytes", c.server.max_body_bytes, 1024, 64 << 20));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_header_bytes", c.server.max_header_bytes, 1024, 1 << 20));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_connections", c.server.max_connections, 1, 100000));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_connections_per_source", c.server.max_connections_per_source, 1, 100000));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_unfinished", c.server.max_unfinished, 1, 100000));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_unfinished_per_source", c.server.max_unfinished_per_source, 1, 100000));
  QSAPI_RETURN_IF_ERROR(r.Millis("handshake_timeout_ms", c.server.handshake_timeout, 100, 600000));
  QSAPI_RETURN_IF_ERROR(r.Millis("request_timeout_ms", c.server.request_timeout, 100, 600000));
  QSAPI_RETURN_IF_ERROR(r.Millis("idle_timeout_ms", c.server.idle_timeout, 100, 3600000));
  QSAPI_RETURN_IF_ERROR(r.Integer("threads", c.server.threads, 1, 256));
  QSAPI_RETURN_IF_ERROR(r.Seconds("shutdown_drain_seconds", c.server.shutdown_drain, 0, 600));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseTlsTable reads the [tls] table.
Status ParseTlsTable(Reader& r, Config& c) {
  QSAPI_RETURN_IF_ERROR(r.String("cert_file", c.tls.cert_file));
  QSAPI_RETURN_IF_ERROR(r.String("key_file", c.tls.key_file));
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    return r.Bad(c.tls.cert_file.empty() ? "cert_file" : "key_file", "cert_file and key_file go together");
  }
  QSAPI_RETURN_IF_ERROR(r.String("ca_file", c.tls.ca_file));
  QSAPI_RETURN_IF_ERROR(r.Strings("server_names", c.tls.server_names));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseKeystoreTable reads the [keystore] table.
Status ParseKeystoreTable(Reader& r, Config& c) {
  QSAPI_RETURN_IF_ERROR(r.String("pkcs11_module", c.keystore.pkcs11_module));
  if (c.keystore.pkcs11_module.empty()) return r.Bad("pkcs11_module", "must not be empty");
  QSAPI_RETURN_IF_ERROR(r.String("token_label", c.keystore.token_label));
  if (c.keystore.token_label.empty() || c.keystore.token_label.size() > 32) {
    return r.Bad("token_label", "must have 1 to 32 characters");
  }
  QSAPI_RETURN_IF_ERROR(r.String("pin_file", c.keystore.pin_file));
  QSAPI_RETURN_IF_ERROR(r.String("pin_env", c.keystore.pin_env));
  if (!c.keystore.pin_file.empty() && !c.keystore.pin_env.empty()) {
    return r.Bad("pin_env", "give pin_file or pin_env, not both");
  }
  if (r.Has("database")) return r.Bad("database", "moved to [store] path (with [store] backend = \"sqlite\")");
  QSAPI_RETURN_IF_ERROR(r.Seconds("cache_ttl_seconds", c.keystore.cache_ttl, 0, 3600));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseStoreTable reads the [store] table: each backend's keys, and no key of the other one.
Status ParseStoreTable(Reader& r, Config& c) {
  StoreSection& st = c.store;
  std::string backend(keystore::StoreBackendName(st.backend));
  QSAPI_RETURN_IF_ERROR(r.String("backend", backend));
  Result<keystore::StoreBackend> parsed = keystore::ParseStoreBackend(backend);
  if (!parsed.ok()) return r.Bad("backend", "expected one of sqlite, postgresql, got \"" + backend + "\"");
  st.backend = *parsed;
  QSAPI_RETURN_IF_ERROR(r.String("path", st.path));
  QSAPI_RETURN_IF_ERROR(r.String("conninfo", st.conninfo));
  QSAPI_RETURN_IF_ERROR(r.String("password_file", st.password_file));
  QSAPI_RETURN_IF_ERROR(r.String("password_env", st.password_env));
  QSAPI_RETURN_IF_ERROR(r.Integer("pool_size", st.pool_size, 1, 64));
  QSAPI_RETURN_IF_ERROR(r.Seconds("connect_timeout_seconds", st.connect_timeout, 1, 600));
  QSAPI_RETURN_IF_ERROR(r.String("cluster_id", st.cluster_id));
  QSAPI_RETURN_IF_ERROR(r.String("node", st.node));
  if (st.node.size() > 48 || !std::all_of(st.node.begin(), st.node.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '.' || ch == '-' || ch == '_';
      })) {
    return r.Bad("node", "must be at most 48 of [A-Za-z0-9._-]");
  }
  if (st.backend == keystore::StoreBackend::kSqlite) {
    for (const char* key : {"conninfo", "password_file", "password_env", "pool_size", "connect_timeout_seconds"}) {
      if (r.Has(key)) return r.Bad(key, R"(is a key of backend "postgresql"; this store is "sqlite")");
    }
  } else {
    if (r.Has("path")) return r.Bad("path", R"(is a key of backend "sqlite"; this store is "postgresql")");
    if (st.conninfo.empty()) return r.Bad("conninfo", "is required with backend \"postgresql\"");
    if (!st.password_file.empty() && !st.password_env.empty()) {
      return r.Bad("password_env", "give password_file or password_env, not both");
    }
  }
  if (!st.cluster_id.empty() && (st.cluster_id.size() != 32 || !qsapi::internal::IsLowerHex(st.cluster_id))) {
    return r.Bad("cluster_id", "must be 32 lower-case hex characters (as `qsapi cluster init` prints it)");
  }
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseRotationTable reads the [rotation] table.
Status ParseRotationTable(Reader& r, Config& c) {
  QSAPI_RETURN_IF_ERROR(r.Seconds("sweep_interval_seconds", c.rotation.sweep_interval, 1, 86400));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseWorkTable reads the [work] table.
Status ParseWorkTable(Reader& r, Config& c) {
  WorkSection& w = c.work;
  QSAPI_RETURN_IF_ERROR(r.Integer("workers", w.workers, 0, 256));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_queued", w.max_queued, 1, 1000000));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_pending_per_principal", w.max_pending_per_principal, 1, 100000));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_running_per_principal", w.max_running_per_principal, 0, 256));
  QSAPI_RETURN_IF_ERROR(r.Integer("cpu_ms_per_second", w.cpu_ms_per_second, 1, 1000000));
  QSAPI_RETURN_IF_ERROR(r.Integer("burst_cpu_ms", w.burst_cpu_ms, 1, 100000000));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_request_cpu_ms", w.max_request_cpu_ms, 1, 100000000));
  if (w.max_request_cpu_ms > w.burst_cpu_ms) {
    return r.Bad("max_request_cpu_ms", "may not exceed burst_cpu_ms (such a request could never run)");
  }
  QSAPI_RETURN_IF_ERROR(r.Seconds("auth_failure_window_seconds", w.auth_failure_window, 1, 3600));
  QSAPI_RETURN_IF_ERROR(r.Integer("max_auth_failures_per_source", w.max_auth_failures_per_source, 1, 1000000));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseAuditTable reads the [audit] table.
Status ParseAuditTable(Reader& r, Config& c) {
  QSAPI_RETURN_IF_ERROR(r.Integer("max_file_mib", c.audit.max_file_mib, 1, 1 << 20));
  QSAPI_RETURN_IF_ERROR(r.Integer("keep_files", c.audit.keep_files, 0, 1000000));
  QSAPI_RETURN_IF_ERROR(r.Integer("min_free_mib", c.audit.min_free_mib, 0, 1 << 20));
  QSAPI_RETURN_IF_ERROR(r.Seconds("verify_interval_seconds", c.audit.verify_interval, 1, 86400));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseEntropyTable reads the [entropy] table.
Status ParseEntropyTable(Reader& r, const std::string& origin, Config& c) {
  QSAPI_RETURN_IF_ERROR(r.Policy("qrng", c.entropy.qrng));
  QSAPI_RETURN_IF_ERROR(r.Seconds("drbg_feed_interval_seconds", c.entropy.drbg_feed_interval, 1, 86400));
  std::set<std::string> ids;
  QSAPI_ASSIGN_OR_RETURN(const toml::array* devices, r.Array("device"));
  if (devices != nullptr) {
    for (std::size_t i = 0; i < devices->size(); ++i) {
      const std::string name = "entropy.device[" + std::to_string(i) + "]";
      const toml::table* t = (*devices)[i].as_table();
      if (t == nullptr) return InvalidArgument("config " + origin + ": " + name + ": expected a table");
      Reader d(*t, name, origin);
      QrngDevice dev;
      dev.id = "qrng" + std::to_string(i);
      QSAPI_RETURN_IF_ERROR(d.String("id", dev.id));
      QSAPI_RETURN_IF_ERROR(d.String("path", dev.path));
      QSAPI_RETURN_IF_ERROR(RequireNonEmpty(d, "path", dev.path));
      QSAPI_RETURN_IF_ERROR(d.Number("min_entropy", dev.min_entropy, 0.0, 8.0));
      QSAPI_RETURN_IF_ERROR(d.NoUnknownKeys());
      if (!ids.insert(dev.id).second) return d.Bad("id", "\"" + dev.id + "\" is used twice");
      c.entropy.devices.push_back(dev);
    }
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::array* https, r.Array("http"));
  if (https != nullptr) {
    for (std::size_t i = 0; i < https->size(); ++i) {
      const std::string name = "entropy.http[" + std::to_string(i) + "]";
      const toml::table* t = (*https)[i].as_table();
      if (t == nullptr) return InvalidArgument("config " + origin + ": " + name + ": expected a table");
      Reader h(*t, name, origin);
      QrngHttp src;
      src.id = "qrng-http" + std::to_string(i);
      QSAPI_RETURN_IF_ERROR(h.String("id", src.id));
      QSAPI_RETURN_IF_ERROR(h.String("url", src.url));
      QSAPI_RETURN_IF_ERROR(RequireNonEmpty(h, "url", src.url));
      QSAPI_RETURN_IF_ERROR(h.String("api_key_header", src.api_key_header));
      QSAPI_RETURN_IF_ERROR(h.String("api_key_env", src.api_key_env));
      QSAPI_RETURN_IF_ERROR(h.String("api_key_file", src.api_key_file));
      if (t->contains("api_key")) {
        return h.Bad("api_key", "API keys are not written in the config; use api_key_env or api_key_file");
      }
      QSAPI_RETURN_IF_ERROR(h.String("ca_file", src.ca_file));
      QSAPI_RETURN_IF_ERROR(h.String("json_field", src.json_field));
      QSAPI_RETURN_IF_ERROR(h.Number("min_entropy", src.min_entropy, 0.0, 8.0));
      QSAPI_RETURN_IF_ERROR(h.Millis("timeout_ms", src.timeout, 10, 120000));
      QSAPI_RETURN_IF_ERROR(h.NoUnknownKeys());
      if (!ids.insert(src.id).second) return h.Bad("id", "\"" + src.id + "\" is used twice");
      c.entropy.http.push_back(src);
    }
  }
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  return OkStatus();
}

// ParseSessionTable reads the [session] table.
Status ParseSessionTable(Reader& r, Config& c) {
  QSAPI_RETURN_IF_ERROR(r.String("name", c.session.name));
  std::string listen;
  QSAPI_RETURN_IF_ERROR(r.String("listen", listen));
  if (!listen.empty()) {
    Result<std::pair<std::string, std::uint16_t>> hp = ParseListenAddress(listen);
    if (!hp.ok()) return r.Bad("listen", hp.error().message());
    c.session.listen_host = hp->first;
    c.session.listen_port = hp->second;
  }
  QSAPI_RETURN_IF_ERROR(r.String("cert_file", c.session.cert_file));
  QSAPI_RETURN_IF_ERROR(r.String("key_file", c.session.key_file));
  if (c.session.cert_file.empty() != c.session.key_file.empty()) {
    return r.Bad(c.session.cert_file.empty() ? "cert_file" : "key_file", "cert_file and key_file go together");
  }
  QSAPI_RETURN_IF_ERROR(r.String("ca_file", c.session.ca_file));
  QSAPI_RETURN_IF_ERROR(r.Choice("suite", c.session.suite, {"AES-256-GCM", "XChaCha20-Poly1305"}));
  QSAPI_RETURN_IF_ERROR(r.Integer("rotate_after_messages", c.session.rotate_after_messages, 1, std::int64_t{1} << 32));
  QSAPI_RETURN_IF_ERROR(r.Integer("rotate_after_bytes", c.session.rotate_after_bytes, 1024, std::int64_t{1} << 38));
  QSAPI_RETURN_IF_ERROR(r.Seconds("rotate_after_seconds", c.session.rotate_after, 1, 86400));
  QSAPI_RETURN_IF_ERROR(r.Seconds("max_session_age_seconds", c.session.max_session_age, 60, std::int64_t{30} * 86400));
  QSAPI_RETURN_IF_ERROR(
      r.Seconds("reestablish_after_seconds", c.session.reestablish_after, 0, std::int64_t{30} * 86400));
  QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
  if (c.session.reestablish_after.count() != 0 && c.session.reestablish_after >= c.session.max_session_age) {
    return r.Bad("reestablish_after_seconds", "must be below max_session_age_seconds (" +
                                                  std::to_string(c.session.max_session_age.count()) +
                                                  "), or 0 to re-establish only on request");
  }
  return OkStatus();
}

// ParseKmeArray reads the [[kme]] tables and records their names.
Status ParseKmeArray(const toml::array& kmes, const std::string& origin, Config& c, std::set<std::string>& kme_names) {
  for (std::size_t i = 0; i < kmes.size(); ++i) {
    const std::string name = "kme[" + std::to_string(i) + "]";
    const toml::table* t = kmes[i].as_table();
    if (t == nullptr) return InvalidArgument("config " + origin + ": " + name + ": expected a table");
    Reader k(*t, name, origin);
    KmeSection kme;
    for (auto [key, field] : {std::pair{"name", &kme.name},
                              {"url", &kme.url},
                              {"sae_id", &kme.sae_id},
                              {"cert_file", &kme.cert_file},
                              {"key_file", &kme.key_file},
                              {"ca_file", &kme.ca_file}}) {
      QSAPI_RETURN_IF_ERROR(k.String(key, *field));
      QSAPI_RETURN_IF_ERROR(RequireNonEmpty(k, key, *field));
    }
    QSAPI_RETURN_IF_ERROR(k.String("kme_id", kme.kme_id));
    if (!kme.url.starts_with("https://")) return k.Bad("url", "must start with https://");
    QSAPI_RETURN_IF_ERROR(k.NoUnknownKeys());
    if (!kme_names.insert(kme.name).second) return k.Bad("name", "\"" + kme.name + "\" is used twice");
    c.kmes.push_back(kme);
  }
  return OkStatus();
}

// ParsePeerArray reads the [[peer]] tables; `kme_names` are the [[kme]] names they may refer to.
Status ParsePeerArray(const toml::array& peers, const std::string& origin, Config& c,
                      const std::set<std::string>& kme_names) {
  std::set<std::string> peer_names;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const std::string name = "peer[" + std::to_string(i) + "]";
    const toml::table* t = peers[i].as_table();
    if (t == nullptr) return InvalidArgument("config " + origin + ": " + name + ": expected a table");
    Reader p(*t, name, origin);
    PeerSection peer;
    QSAPI_RETURN_IF_ERROR(p.String("name", peer.name));
    QSAPI_RETURN_IF_ERROR(RequireNonEmpty(p, "name", peer.name));
    std::string address;
    QSAPI_RETURN_IF_ERROR(p.String("address", address));
    QSAPI_RETURN_IF_ERROR(RequireNonEmpty(p, "address", address));
    Result<std::pair<std::string, std::uint16_t>> hp = ParseListenAddress(address);
    if (!hp.ok() || hp->second == 0) {
      return p.Bad("address", R"(expected the peer link's "host:port", got ")" + address + "\"");
    }
    peer.host = hp->first;
    peer.port = hp->second;
    QSAPI_RETURN_IF_ERROR(p.String("kme", peer.kme));
    QSAPI_RETURN_IF_ERROR(p.String("remote_sae_id", peer.remote_sae_id));
    QSAPI_RETURN_IF_ERROR(p.Policy("qkd", peer.qkd));
    QSAPI_RETURN_IF_ERROR(p.Policy("qrng", peer.qrng));
    QSAPI_RETURN_IF_ERROR(p.Bool("qkd_at_rotation", peer.qkd_at_rotation));
    QSAPI_RETURN_IF_ERROR(p.NoUnknownKeys());
    if (peer.qkd != SourcePolicy::kOff) {
      if (peer.kme.empty()) return p.Bad("kme", "is required when qkd is prefer or require");
      if (!kme_names.contains(peer.kme)) return p.Bad("kme", "names no [[kme]] (\"" + peer.kme + "\")");
      if (peer.remote_sae_id.empty()) return p.Bad("remote_sae_id", "is required when qkd is prefer or require");
    }
    if (!peer_names.insert(peer.name).second) return p.Bad("name", "\"" + peer.name + "\" is used twice");
    c.peers.push_back(peer);
  }
  return OkStatus();
}

// ParseClientArray reads the [[client]] tables.
Status ParseClientArray(const toml::array& clients, const std::string& origin, Config& c) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string name = "client[" + std::to_string(i) + "]";
    const toml::table* t = clients[i].as_table();
    if (t == nullptr) return InvalidArgument("config " + origin + ": " + name + ": expected a table");
    Reader r(*t, name, origin);
    ClientSection client;
    QSAPI_RETURN_IF_ERROR(r.String("common_name", client.common_name));
    QSAPI_RETURN_IF_ERROR(RequireNonEmpty(r, "common_name", client.common_name));
    QSAPI_RETURN_IF_ERROR(r.Strings("keys", client.keys));
    QSAPI_RETURN_IF_ERROR(r.Strings("operations", client.operations));
    if (client.keys.empty()) return r.Bad("keys", "is required (key names, prefixes ending in '*', or \"*\")");
    if (client.operations.empty()) return r.Bad("operations", "is required");
    for (const std::string& op : client.operations) {
      const auto& known = KnownOperations();
      if (op != "*" && std::find(known.begin(), known.end(), op) == known.end()) {
        std::string list;
        for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
        return r.Bad("operations", "unknown operation \"" + op + "\"; known: " + list + ", or \"*\"");
      }
    }
    QSAPI_RETURN_IF_ERROR(r.NoUnknownKeys());
    if (!names.insert(client.common_name).second) {
      return r.Bad("common_name", "\"" + client.common_name + "\" is used twice");
    }
    c.clients.push_back(client);
  }
  return OkStatus();
}

Status ParseTables(const toml::table& root, const std::string& origin, Config& c) {
  Reader top(root, "", origin);
  if (!root.contains("data_dir")) return InvalidArgument("config " + origin + ": data_dir is required");
  std::string data_dir = c.data_dir.string();
  QSAPI_RETURN_IF_ERROR(top.String("data_dir", data_dir));
  if (data_dir.empty()) return top.Bad("data_dir", "must not be empty");
  c.data_dir = data_dir;

  QSAPI_ASSIGN_OR_RETURN(const toml::table* server, top.Table("server"));
  if (server != nullptr) {
    Reader r(*server, "server", origin);
    QSAPI_RETURN_IF_ERROR(ParseServerTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* tls, top.Table("tls"));
  if (tls != nullptr) {
    Reader r(*tls, "tls", origin);
    QSAPI_RETURN_IF_ERROR(ParseTlsTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* ks, top.Table("keystore"));
  if (ks != nullptr) {
    Reader r(*ks, "keystore", origin);
    QSAPI_RETURN_IF_ERROR(ParseKeystoreTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* store, top.Table("store"));
  if (store != nullptr) {
    Reader r(*store, "store", origin);
    QSAPI_RETURN_IF_ERROR(ParseStoreTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* rot, top.Table("rotation"));
  if (rot != nullptr) {
    Reader r(*rot, "rotation", origin);
    QSAPI_RETURN_IF_ERROR(ParseRotationTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* work, top.Table("work"));
  if (work != nullptr) {
    Reader r(*work, "work", origin);
    QSAPI_RETURN_IF_ERROR(ParseWorkTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* audit, top.Table("audit"));
  if (audit != nullptr) {
    Reader r(*audit, "audit", origin);
    QSAPI_RETURN_IF_ERROR(ParseAuditTable(r, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* ent, top.Table("entropy"));
  if (ent != nullptr) {
    Reader r(*ent, "entropy", origin);
    QSAPI_RETURN_IF_ERROR(ParseEntropyTable(r, origin, c));
  }
  QSAPI_ASSIGN_OR_RETURN(const toml::table* sess, top.Table("session"));
  if (sess != nullptr) {
    Reader r(*sess, "session", origin);
    QSAPI_RETURN_IF_ERROR(ParseSessionTable(r, c));
  }
  std::set<std::string> kme_names;
  QSAPI_ASSIGN_OR_RETURN(const toml::array* kmes, top.Array("kme"));
  if (kmes != nullptr) QSAPI_RETURN_IF_ERROR(ParseKmeArray(*kmes, origin, c, kme_names));
  QSAPI_ASSIGN_OR_RETURN(const toml::array* peers, top.Array("peer"));
  if (peers != nullptr) QSAPI_RETURN_IF_ERROR(ParsePeerArray(*peers, origin, c, kme_names));
  QSAPI_ASSIGN_OR_RETURN(const toml::array* clients, top.Array("client"));
  if (clients != nullptr) QSAPI_RETURN_IF_ERROR(ParseClientArray(*clients, origin, c));
  return top.NoUnknownKeys();
}

}  // namespace

Result<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view listen) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument(R"(expected "host:port", got ")" + std::string(listen) + "\"");
  }
  std::string host(listen.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port(listen.substr(colon + 1));
  if (host.empty()) return InvalidArgument(R"(expected "host:port", got ")" + std::string(listen) + "\"");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return InvalidArgument("expected a port 0..65535 after the colon, got \"" + port + "\"");
  }
  return std::pair{host, static_cast<std::uint16_t>(std::stoi(port))};
}

Config DefaultConfig(const std::filesystem::path& data_dir) {
  Config c;
  c.data_dir = data_dir;
  return c;
}

namespace {

// CheckTomlText refuses, before toml++ sees them, inputs that toml++ 3.3 (Debian 12) mishandles,
// found by fuzz/config_toml_fuzzer.cc and fixed upstream later:
//  - any non-ASCII character: wherever toml++ tests one for whitespace (outside strings, after an
//    invalid token, after a backslash in a multi-line string) code points from U+00A1 reach
//    __builtin_unreachable(), i.e. undefined behaviour (marzer/tomlplusplus#295, #190). So the
//    file is ASCII; strings still hold any character as a \uXXXX escape.
//  - a table header without a key after its brackets ("[[[a]]", "[[="; #301): toml++ enters its
//    key parser with a broken precondition (an assertion in its debug build, unchecked in release).
//    qsapid's configuration has no nested arrays and no multi-line strings, so a line that starts
//    with '[' is a table header here.
Status CheckTomlText(std::string_view text, const std::string& origin) {
  const auto is_space = [](char ch) { return ch == ' ' || ch == '\t'; };
  const auto starts_key = [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '-' || ch == '"' || ch == '\'';
  };
  std::size_t line_no = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    ++line_no;
    const std::size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const auto bad = [&](const std::string& what) {
      return InvalidArgument("config " + origin + ":" + std::to_string(line_no) + ": " + what);
    };
    if (std::any_of(line.begin(), line.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; })) {
      return bad("a non-ASCII character (the file is ASCII; write other characters in strings as \\uXXXX)");
    }
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    if (line.starts_with('[')) {
      line.remove_prefix(line.starts_with("[[") ? 2 : 1);
      while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
      if (line.empty() || !starts_key(line.front())) {
        return bad("a table header must name a table (a bare or quoted key) after its brackets");
      }
    }
  }
  return OkStatus();
}

}  // namespace

Result<Config> ParseConfig(std::string_view toml_text, const std::string& origin) {
  Config c = DefaultConfig("");
  QSAPI_RETURN_IF_ERROR(CheckTomlText(toml_text, origin));
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    return InvalidArgument("config " + origin + ":" + std::to_string(e.source().begin.line) + ":" +
                           std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  QSAPI_RETURN_IF_ERROR(ParseTables(root, origin, c));
  if (c.data_dir.empty()) return InvalidArgument("config " + origin + ": data_dir is required");
  return c;
}

Result<Config> LoadConfig(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot read config file " + path.string());
  std::string text;
  text.resize(1 << 20);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.peek() != std::char_traits<char>::eof())
    return InvalidArgument("config file " + path.string() + " is larger than 1 MiB");
  return ParseConfig(text, path.string());
}

}  // namespace qsapi::server
