#include "server/service.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/internal/text.h"
#include "net/https_server.h"
#include "pki/internal/tls_context.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/entropy/source.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/log.h"
#include "qsapi/qkd/etsi014.h"
#include "qsapi/qkd/key_supply.h"
#include "server/api.h"
#include "server/audit_log.h"
#include "server/deployment_ca.h"
#include "server/sessions.h"
#include "server/tokens.h"
#include "server/work_scheduler.h"

namespace qsapi::server {
namespace {

namespace fs = std::filesystem;

Error Part(std::string_view part, const Error& e) {
  return {e.code(), "qsapid start-up, " + std::string(part) + ": " + e.message()};
}

}  // namespace

Result<TokenStore> OpenTokensFor(const Config& config, keystore::Keystore& ks) {
  if (config.store.backend == keystore::StoreBackend::kSqlite) return TokenStore::Load(TokenFilePath(config.data_dir));
  return TokenStore::LoadShared(ks);
}

Result<std::unique_ptr<keystore::Keystore>> OpenKeystoreFor(const Config& c, bool create, bool* created) {
  QSAPI_ASSIGN_OR_RETURN(keystore::KeystoreOptions o, KeystoreOptionsFor(c, create, created));
  return keystore::Keystore::Open(o);
}

Result<keystore::KeystoreOptions> KeystoreOptionsFor(const Config& c, bool create, bool* created) {
  keystore::KeystoreOptions o;
  if (created != nullptr) *created = false;
  if (c.keystore.pin_file.empty() && c.keystore.pin_env.empty()) {
    if (create) {
      // The SQLite file is made only for the sqlite backend; a PostgreSQL node needs only its token.
      QSAPI_ASSIGN_OR_RETURN(const bool made, c.store.backend == keystore::StoreBackend::kSqlite
                                                  ? keystore::InitEmbedded(c.data_dir, c.keystore.pkcs11_module)
                                                  : keystore::InitEmbeddedToken(c.data_dir, c.keystore.pkcs11_module));
      if (created != nullptr) *created = made;
    } else if (!fs::exists(keystore::EmbeddedLayout{c.data_dir}.softhsm_conf())) {
      return FailedPrecondition("no embedded keystore in " + c.data_dir.string() +
                                " (start qsapid once, or run `qsapi init --data-dir " + c.data_dir.string() + "`)");
    }
    o = keystore::EmbeddedOptions(c.data_dir);
  } else {
    o.token.pin_file = c.keystore.pin_file;
    o.token.pin_env = c.keystore.pin_env;
    o.database = c.data_dir / "keystore.db";
  }
  o.token.module_path = c.keystore.pkcs11_module;
  o.token.token_label = c.keystore.token_label;
  o.backend = c.store.backend;
  if (!c.store.path.empty()) o.database = c.store.path;
  o.postgres.conninfo = c.store.conninfo;
  o.postgres.password_file = c.store.password_file;
  o.postgres.password_env = c.store.password_env;
  o.postgres.pool_size = c.store.pool_size;
  o.postgres.connect_timeout = c.store.connect_timeout;
  o.cluster_id = c.store.cluster_id;
  o.cache_ttl = c.keystore.cache_ttl;
  o.actor = "qsapid";
  return o;
}

namespace {

// ListenerMetrics: the HTTPS listener's admission counters (net::HttpsServerStats) for /metrics.
std::string ListenerMetrics(const net::HttpsServerStats& st) {
  std::ostringstream m;
  const auto metric = [&m](const char* name, const char* type, const char* help, auto value) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
  };
  metric("qsapi_connections_accepted_total", "counter", "Connections admitted by the API listener.", st.accepted);
  metric("qsapi_connections_refused_total", "counter", "Connections closed at once: nothing older could be shed.",
         st.refused);
  m << "# HELP qsapi_connections_shed_total Older connections closed to admit newer ones, by the state they were "
       "in.\n# TYPE qsapi_connections_shed_total counter\nqsapi_connections_shed_total{state=\"handshake\"} "
    << st.shed_unfinished << "\nqsapi_connections_shed_total{state=\"waiting\"} " << st.shed_idle << '\n';
  metric("qsapi_tls_handshake_timeouts_total", "counter", "TLS handshakes not finished within handshake_timeout_ms.",
         st.handshake_timeouts);
  metric("qsapi_tls_handshake_failures_total", "counter", "TLS handshakes refused or broken.", st.handshake_failures);
  metric("qsapi_connections_open", "gauge", "Connections open now.", st.open);
  metric("qsapi_connections_unfinished", "gauge", "Connections in their TLS handshake now.", st.unfinished);
  metric("qsapi_connections_busy", "gauge", "Connections with a request being answered now.", st.busy);
  metric("qsapi_connection_sources", "gauge", "Distinct client addresses with a connection open now.", st.sources);
  return m.str();
}

Result<std::string> ReadApiKey(const QrngHttp& h) {
  if (!h.api_key_file.empty()) {
    std::ifstream in(h.api_key_file);
    if (!in) return InvalidArgument("entropy.http " + h.id + ": cannot read api_key_file " + h.api_key_file);
    std::string key;
    std::getline(in, key);
    return key;
  }
  if (!h.api_key_env.empty()) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read at start-up; the only setenv (the keystore's) runs on this thread
    const char* v = std::getenv(h.api_key_env.c_str());
    if (v == nullptr)
      return InvalidArgument("entropy.http " + h.id + ": environment variable " + h.api_key_env + " is not set");
    return std::string(v);
  }
  return std::string();
}

}  // namespace

qkd::Etsi014ClientOptions KmeClientOptions(const KmeSection& k) {
  qkd::Etsi014ClientOptions o;
  o.kme_url = k.url;
  o.ca_file = k.ca_file;
  o.certificate_file = k.cert_file;
  o.private_key_file = k.key_file;
  o.expected_kme_id = k.kme_id;
  return o;
}

Result<std::shared_ptr<entropy::EntropyPool>> MakeEntropyPool(const EntropySection& e) {
  std::vector<std::unique_ptr<entropy::EntropySource>> sources;
  for (const QrngDevice& d : e.devices) {
    entropy::DeviceSourceOptions o;
    o.id = d.id;
    o.path = d.path;
    o.min_entropy = d.min_entropy;
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<entropy::EntropySource> s, entropy::OpenDeviceSource(o));
    sources.push_back(std::move(s));
  }
  for (const QrngHttp& h : e.http) {
    entropy::HttpSourceOptions o;
    o.id = h.id;
    o.url = h.url;
    o.api_key_header = h.api_key_header;
    o.ca_file = h.ca_file;
    o.json_field = h.json_field;
    o.min_entropy = h.min_entropy;
    o.timeout = h.timeout;
    QSAPI_ASSIGN_OR_RETURN(o.api_key, ReadApiKey(h));
    Result<std::unique_ptr<entropy::EntropySource>> s = entropy::OpenHttpSource(o);
    SecureZero(o.api_key.data(), o.api_key.size());
    if (!s.ok()) return s.error();
    sources.push_back(std::move(*s));
  }
  return entropy::EntropyPool::Create({.policy = e.qrng}, std::move(sources));
}

namespace {

Status WriteAdminToken(const fs::path& path, const ApiToken& token) {
  SecretBytes text(token.size() + 1);  // the token and a newline, in secret memory
  std::copy(token.view().begin(), token.view().end(), text.data());
  text.data()[token.size()] = '\n';
  return pki::WriteProtectedFile(path, text.view(), 0600, /*overwrite=*/false);
}

struct FileStamp {
  fs::file_time_type mtime{};
  std::uintmax_t size = 0;
  bool exists = false;
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};
FileStamp StampOf(const fs::path& p) {
  std::error_code ec;
  FileStamp s;
  s.mtime = fs::last_write_time(p, ec);
  if (ec) return {};
  s.size = fs::file_size(p, ec);
  s.exists = !ec;
  return s;
}

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "qsapid";
  return host;
}

constexpr std::string_view kSessionRecordKind = "peer-session";

// SessionDirectoryFor is the cluster's record of which node holds which session: one record of
// kind "peer-session" per session, {"node", "api", "peer"}, in the keystore's database.
SessionDirectory SessionDirectoryFor(const Config& c, keystore::Keystore& ks) {
  SessionDirectory d;
  d.node = c.store.node.empty() ? HostName() : c.store.node;
  const std::string host =
      c.server.listen_host == "0.0.0.0" || c.server.listen_host == "::" ? HostName() : c.server.listen_host;
  const std::string api = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                          std::to_string(c.server.listen_port);
  const std::string node = d.node;
  d.announce = [&ks, node, api](const std::string& id, const std::string& peer) {
    const std::string value = nlohmann::json{{"node", node}, {"api", api}, {"peer", peer}}.dump();
    return ks.CreateRecord(kSessionRecordKind, id,
                           ByteView(reinterpret_cast<const std::uint8_t*>(value.data()),  // NOLINT
                                    value.size()));
  };
  d.forget = [&ks](const std::string& id) { return ks.DeleteRecord(kSessionRecordKind, id); };
  d.find = [&ks](const std::string& id) -> Result<std::optional<SessionHolder>> {
    QSAPI_ASSIGN_OR_RETURN(std::vector<keystore::Record> records, ks.ListRecords(kSessionRecordKind));
    for (const keystore::Record& r : records) {
      if (r.name != id) continue;
      const nlohmann::json j = nlohmann::json::parse(r.value.begin(), r.value.end(), nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("node") || !j["node"].is_string()) {
        return DataLoss("the cluster's record of session " + id + " is not a session entry");
      }
      SessionHolder h{.node = j["node"].get<std::string>(), .api = {}};
      if (j.contains("api") && j["api"].is_string()) h.api = j["api"].get<std::string>();
      // The values go into headers: plain names and URLs only.
      const auto plain = [](const std::string& v, std::size_t max, bool url) {
        return v.size() <= max && std::all_of(v.begin(), v.end(), [url](char ch) {
                 return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '.' || ch == '_' || ch == '-' ||
                        (url && (ch == ':' || ch == '/' || ch == '[' || ch == ']'));
               });
      };
      if (h.node.empty() || !plain(h.node, 48, false) || !plain(h.api, 300, true)) {
        return DataLoss("the cluster's record of session " + id + " names a node or address out of shape");
      }
      return std::optional<SessionHolder>(std::move(h));
    }
    return std::optional<SessionHolder>();
  };
  d.forget_all_mine = [&ks, node]() -> Status {
    QSAPI_ASSIGN_OR_RETURN(std::vector<keystore::Record> records, ks.ListRecords(kSessionRecordKind));
    for (const keystore::Record& r : records) {
      const nlohmann::json j = nlohmann::json::parse(r.value.begin(), r.value.end(), nullptr, false);
      if (!j.is_object() || !j.contains("node") || j["node"] != node) continue;
      if (Status st = ks.DeleteRecord(kSessionRecordKind, r.name);
          !st.ok() && st.error().code() != ErrorCode::kNotFound) {
        return st;
      }
    }
    return OkStatus();
  };
  return d;
}

// SessionOptionsFor builds the peer-session side of a node from [session], [[kme]] and [[peer]].
Result<SessionManagerOptions> SessionOptionsFor(const Config& c, keystore::Keystore& ks, const DeploymentCa& ca,
                                                const TlsProfile& profile, std::shared_ptr<entropy::EntropyPool> pool,
                                                std::string* node_name) {
  SessionManagerOptions o;
  o.listen_host = c.session.listen_host;
  o.listen_port = c.session.listen_port;
  o.entropy = std::move(pool);
  QSAPI_ASSIGN_OR_RETURN(o.link.profile, session::ParsePeerProfile(profile.name));
  *node_name = c.session.name.empty() ? HostName() : c.session.name;
  if (c.session.cert_file.empty()) {
    QSAPI_ASSIGN_OR_RETURN(ServerCredentials creds, EnsurePeerCertificate(ks, ca, c.data_dir, profile, *node_name));
    o.link.certificate_file = creds.chain_file.string();
    o.link.private_key = creds.key;
  } else {
    o.link.certificate_file = c.session.cert_file;
    o.link.private_key_file = c.session.key_file;
  }
  o.link.ca_file = c.session.ca_file.empty() ? DeploymentCa::CertificatePath(c.data_dir).string() : c.session.ca_file;
  QSAPI_ASSIGN_OR_RETURN(const session::AeadSuite suite, session::ParseAeadSuite(c.session.suite));
  o.channel.rotation.max_messages = c.session.rotate_after_messages;
  o.channel.rotation.max_bytes = c.session.rotate_after_bytes;
  o.channel.rotation.max_age = c.session.rotate_after;
  o.channel.max_session_age = c.session.max_session_age;
  if (c.store.backend == keystore::StoreBackend::kPostgresql) o.directory = SessionDirectoryFor(c, ks);

  std::map<std::string, std::shared_ptr<qkd::Etsi014Client>> kmes;
  for (const KmeSection& k : c.kmes) {
    auto client = qkd::Etsi014Client::Create(KmeClientOptions(k));
    if (!client.ok()) return Error(client.error().code(), "kme " + k.name + ": " + client.error().message());
    kmes[k.name] = std::shared_ptr<qkd::Etsi014Client>(std::move(*client));
  }
  for (const PeerSection& p : c.peers) {
    session::PeerConfig pc;
    pc.name = p.name;
    pc.host = p.host;
    pc.port = p.port;
    pc.policy = session::PeerPolicy{.qkd = p.qkd, .qrng = p.qrng};
    pc.suite = suite;
    pc.reestablish_interval = c.session.reestablish_after;
    pc.qkd_at_rotation = p.qkd_at_rotation;
    if (p.qkd != SourcePolicy::kOff) {
      const std::shared_ptr<qkd::Etsi014Client>& client = kmes.at(p.kme);  // the parser checked the name
      qkd::MasterKeySupplyOptions mo;
      mo.slave_sae_id = p.remote_sae_id;
      mo.key_size_bits = 256;
      QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<qkd::MasterKeySupply> master, qkd::MasterKeySupply::Create(client, mo));
      pc.qkd_master = std::move(master);
      pc.qkd_slave = std::make_shared<qkd::SlaveKeySupply>(client, p.remote_sae_id, 256);
    }
    o.peers.push_back(std::move(pc));
  }
  return o;
}

// The keystore keys qsapid's audit log under this trail name and records its head.

AuditKeying KeyingOf(keystore::TrailKey k) {
  return AuditKeying{.key = std::move(k.key),
                     .first_seq = k.first_seq,
                     .head_seq = k.head_seq,
                     .head_mac = qsapi::internal::HexEncode(k.head_mac)};
}

// CheckKeystoreAnchor checks the keystore's own trail against the head the trail's last
// audit.anchor line recorded: each store checks the other's tail.
Status CheckKeystoreAnchor(keystore::Keystore& ks, const AuditVerifyReport& r) {
  if (r.anchor_seq == 0) return OkStatus();
  const std::optional<Bytes> value = qsapi::internal::HexDecode(r.anchor_value);
  if (!value) return DataLoss("audit log: its last audit.anchor line holds no valid value");
  return ks.CheckAuditHead({.seq = r.anchor_seq, .value = *value});
}

// VerifyAnchored verifies the trail (with its key and recorded head), then the keystore's.
Result<AuditVerifyReport> VerifyAnchored(AuditLog& log, keystore::Keystore& ks) {
  QSAPI_ASSIGN_OR_RETURN(AuditVerifyReport r, log.VerifyNow());
  QSAPI_RETURN_IF_ERROR(CheckKeystoreAnchor(ks, r));
  return r;
}

// OpenVerifiedAuditLog opens the audit log, keys it with its trail key from the keystore (made on
// first use) and verifies the whole trail. A broken trail stops the start, unless the operator
// accepts it: then its files move to audit-broken-<time>/, the trail gets a new key, and a new
// chain begins with an "audit.chain_restart" line saying what was wrong and where the old trail is.
Result<std::unique_ptr<AuditLog>> OpenVerifiedAuditLog(const fs::path& path, const AuditLogOptions& options,
                                                       bool accept_broken, keystore::Keystore& ks,
                                                       const std::string& trail, AuditVerifyReport* report) {
  Result<std::unique_ptr<AuditLog>> log = AuditLog::Open(path, options);
  if (log.ok()) {
    Result<keystore::TrailKey> key = ks.OpenTrail(trail, (*log)->next_seq());
    if (!key.ok()) return key.error();  // the keystore's own problem: not for --accept-broken-audit-log
    (*log)->UseKeying(KeyingOf(std::move(*key)));
  }
  Result<AuditVerifyReport> verified = log.ok() ? VerifyAnchored(**log, ks) : Result<AuditVerifyReport>(log.error());
  if (verified.ok()) {
    *report = *verified;
    return log;
  }
  if (!accept_broken) {
    return DataLoss(verified.error().message() +
                    ". qsapid does not continue a broken audit trail: keep the files for investigation "
                    "(`qsapi audit verify` names the first bad line; a partial last line alone is fixed by "
                    "`qsapi audit repair`), then start with --accept-broken-audit-log to move them aside and "
                    "begin a new chain (that start is recorded in it)");
  }
  log = Result<std::unique_ptr<AuditLog>>(Internal("closed"));  // release the file before moving it
  std::string stamp = qsapi::internal::FormatUtc(std::chrono::system_clock::now());
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  const fs::path aside = path.parent_path() / ("audit-broken-" + stamp);
  std::error_code ec;
  fs::create_directories(aside, ec);
  if (ec) return Unavailable("cannot create " + aside.string() + ": " + ec.message());
  for (const auto& e : fs::directory_iterator(path.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && (name == path.filename().string() ||
                                (name.starts_with(path.stem().string() + "-") && name.ends_with(".log")))) {
      fs::rename(e.path(), aside / name, ec);
      if (ec) return Unavailable("cannot move " + e.path().string() + " to " + aside.string() + ": " + ec.message());
    }
  }
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<AuditLog> fresh, AuditLog::Open(path, options));
  QSAPI_ASSIGN_OR_RETURN(
      keystore::TrailKey key,
      ks.RestartTrail(trail, fresh->next_seq(),
                      "a new chain after --accept-broken-audit-log; the old trail is in " + aside.filename().string()));
  fresh->UseKeying(KeyingOf(std::move(key)));
  Log(LogLevel::kWarning, "qsapid",
      "the audit trail failed verification and was moved to " + aside.string() +
          " (--accept-broken-audit-log): " + verified.error().message());
  QSAPI_RETURN_IF_ERROR(
      fresh->Append({.who = "qsapid",
                     .action = "audit.chain_restart",
                     .result = "ok",
                     .detail = "started with --accept-broken-audit-log; the old trail, which "
                               "failed verification (" +
                               verified.error().message() + "), is in " + aside.filename().string()}));
  QSAPI_ASSIGN_OR_RETURN(*report, fresh->VerifyNow());
  report->anchor_seq = 0;  // the keystore is anchored anew by the next audit.anchor line
  return fresh;
}

pki::PeerVerification VerificationOf(const std::string& mode) {
  if (mode == "required") return pki::PeerVerification::kRequired;
  if (mode == "optional") return pki::PeerVerification::kOptional;
  return pki::PeerVerification::kNone;
}

}  // namespace

class Service::Impl {
 public:
  DataDirLock dir_lock;  // first member: released last, after everything else stopped
  Config config;
  StartupReport report;
  std::unique_ptr<keystore::Keystore> keystore;
  std::shared_ptr<entropy::EntropyPool> pool;
  entropy::DrbgFeeder feeder;
  std::unique_ptr<AuditLog> audit;
  std::unique_ptr<WorkScheduler> scheduler;
  std::unique_ptr<Api> api;
  std::unique_ptr<SessionManager> sessions;
  std::unique_ptr<net::HttpsServer> server;
  std::atomic<const net::HttpsServer*> listener{nullptr};  // `server` for the metrics hook, once started
  FileStamp token_stamp;
  bool token_error_reported = false;
  std::string audit_trail;  // AuditTrailName(config)  // the shared tokens' last read failed (reported once)

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread maintenance;
  std::uint64_t anchored_keystore_seq = 0;  // the keystore trail entry the last audit.anchor line names
  std::string anchor_error;                 // the last anchoring failure, logged once
  std::atomic<std::uint64_t> rotations{0};
  std::mutex sweep_mu;
  std::string last_sweep_error;  // guarded by sweep_mu
  std::string audit_chain;       // the last verification, for health; guarded by sweep_mu

  // AnchorTrails records each trail's newest entry in the other store: qsapid's audit log head in
  // the keystore's database (AuditLog::Checkpoint), the keystore trail's head in an audit.anchor
  // line. Called every second by the maintenance thread, at start and at stop.
  void AnchorTrails() {
    Result<keystore::TrailHead> head = keystore->AuditHead();
    if (head.ok() && head->seq != anchored_keystore_seq) {
      const Status st = audit->Append({.who = "qsapid",
                                       .action = "audit.anchor",
                                       .result = "ok",
                                       .detail = "the keystore's audit trail",
                                       .anchor_seq = head->seq,
                                       .anchor_value = qsapi::internal::HexEncode(head->value)});
      if (st.ok()) anchored_keystore_seq = head->seq;
    }
    const Status st = audit->Checkpoint([this](std::uint64_t seq, const std::string& mac) -> Status {
      const std::optional<Bytes> value = qsapi::internal::HexDecode(mac);
      if (!value) return Internal("the audit log's head is not hex");
      return keystore->RecordTrailHead(audit_trail, seq, *value);
    });
    const std::string error = !head.ok() ? head.error().message() : !st.ok() ? st.error().message() : "";
    if (!error.empty() && error != anchor_error) {
      Log(LogLevel::kWarning, "qsapid", "cannot anchor the audit trails: " + error);
    }
    anchor_error = error;
  }

  void NoteAuditVerified(const Result<AuditVerifyReport>& r) {
    const std::lock_guard<std::mutex> lock(sweep_mu);
    const std::string was = audit_chain;
    audit_chain = r.ok() ? "ok: " + std::to_string(r->lines) + " lines verified at " +
                               qsapi::internal::FormatUtc(std::chrono::system_clock::now())
                         : "FAIL: " + r.error().message();
    if (!r.ok() && !was.starts_with("FAIL")) {
      Log(LogLevel::kError, "qsapid", "the audit trail no longer verifies: " + r.error().message());
    }
  }

  Result<std::vector<std::string>> Sweep() {
    Result<std::vector<std::string>> rotated = keystore->RotateDue();
    const std::lock_guard<std::mutex> lock(sweep_mu);
    if (!rotated.ok()) {
      if (last_sweep_error != rotated.error().message()) {
        Log(LogLevel::kWarning, "qsapid", "rotation sweep failed: " + rotated.error().message());
      }
      last_sweep_error = rotated.error().message();
      (void)audit->Append({"qsapid", "keys.rotate_due", "", 0, std::string(ErrorCodeName(rotated.error().code())), "",
                           "rotation sweep"});
      return rotated;
    }
    last_sweep_error.clear();
    for (const std::string& name : *rotated) {
      ++rotations;
      Log(LogLevel::kInfo, "qsapid", "rotated key \"" + name + "\" (its period elapsed)");
      (void)audit->Append({"qsapid", "keys.rotate", name, 0, "ok", "", "rotation sweep: period elapsed"});
    }
    return rotated;
  }

  void CheckTokens() {
    if (config.store.backend != keystore::StoreBackend::kSqlite) {
      // Shared tokens: read every second (one query), swapped in only when they changed.
      Result<TokenStore> tokens = TokenStore::LoadShared(*keystore);
      if (!tokens.ok()) {
        if (!token_error_reported) {
          Log(LogLevel::kWarning, "qsapid", "keeping the previous API tokens: " + tokens.error().message());
        }
        token_error_reported = true;
        return;
      }
      token_error_reported = false;
      if (api->TokensSameAs(*tokens)) return;
      api->ReloadTokens(std::move(*tokens));
      Log(LogLevel::kInfo, "qsapid", "reloaded the API tokens from the keystore database");
      return;
    }
    const fs::path path = TokenFilePath(config.data_dir);
    const FileStamp now = StampOf(path);
    if (now == token_stamp) return;
    Result<TokenStore> tokens = TokenStore::Load(path);
    if (!tokens.ok()) {
      Log(LogLevel::kWarning, "qsapid", "keeping the previous API tokens: " + tokens.error().message());
      token_stamp = now;  // report once per change
      return;
    }
    api->ReloadTokens(std::move(*tokens));
    token_stamp = now;
    Log(LogLevel::kInfo, "qsapid", "reloaded the API tokens from " + path.string());
  }

  void Maintain() {
    auto next_sweep = std::chrono::steady_clock::now() + config.rotation.sweep_interval;
    auto next_verify = std::chrono::steady_clock::now() + config.audit.verify_interval;
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::seconds(1));
      if (stopping) break;
      lock.unlock();
      CheckTokens();
      api->FlushAuthFailures();
      if (sessions) {
        if (const std::size_t n = sessions->Expire(); n > 0) {
          Log(LogLevel::kInfo, "qsapid", std::to_string(n) + " session(s) reached their maximum age and were closed");
        }
        sessions->ReestablishDue();
      }
      AnchorTrails();
      if (std::chrono::steady_clock::now() >= next_verify) {
        NoteAuditVerified(VerifyAnchored(*audit, *keystore));
        next_verify = std::chrono::steady_clock::now() + config.audit.verify_interval;
      }
      if (std::chrono::steady_clock::now() >= next_sweep) {
        (void)Sweep();
        next_sweep = std::chrono::steady_clock::now() + config.rotation.sweep_interval;
      }
      lock.lock();
    }
  }

  void Health(std::map<std::string, std::string>& checks) {
    const auto left = report.certificate_not_after - std::chrono::system_clock::now();
    const auto days = std::chrono::duration_cast<std::chrono::hours>(left).count() / 24;
    checks["tls_certificate"] = left < std::chrono::hours(24 * 7)
                                    ? "expiring: in " + std::to_string(days) + " days; restart qsapid to renew it"
                                    : "ok: expires in " + std::to_string(days) + " days";
    const entropy::DrbgFeeder::Status f = feeder.status();
    checks["drbg_feeder"] =
        f.last_error.empty() ? "ok: " + std::to_string(f.feeds) + " reseeds" : "failing: " + f.last_error;
    const std::lock_guard<std::mutex> lock(sweep_mu);
    if (sessions) {
      for (const PeerState& p : sessions->Peers()) {
        checks["peer:" + p.name] = "ok: " + std::to_string(p.sessions) + " session(s)" +
                                   (p.last_error.empty() ? "" : "; last establishment failed: " + p.last_error);
      }
    }
    checks["audit_chain"] = audit_chain;
    checks["rotation"] = last_sweep_error.empty()
                             ? "ok: " + std::to_string(rotations.load()) + " scheduled rotations done"
                             : "failing: " + last_sweep_error;
  }

  void Stop() {
    if (server) server->Stop(std::chrono::duration_cast<std::chrono::milliseconds>(config.server.shutdown_drain));
    // After the server: requests in flight had their drain time; what is still queued is answered 503.
    if (scheduler) scheduler->Stop();
    if (sessions) sessions->Stop();
    {
      const std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (maintenance.joinable()) maintenance.join();
    if (api) api->FlushAuthFailures(/*all=*/true);
    if (audit && keystore) AnchorTrails();
    feeder.Stop();
  }
};

Result<DataDirLock> DataDirLock::Acquire(const fs::path& data_dir) {
  const fs::path path = data_dir / "qsapid.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Unavailable("cannot open " + path.string() + ": " + qsapi::internal::ErrnoText(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) return Unavailable("cannot lock " + path.string() + ": " + qsapi::internal::ErrnoText(err));
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    pid.erase(std::remove_if(pid.begin(), pid.end(), [](char c) { return c < '0' || c > '9'; }), pid.end());
    return FailedPrecondition("another qsapid" + (pid.empty() ? std::string() : " (pid " + pid + ")") +
                              " is running on data directory " + data_dir.string() +
                              "; one process per data directory (several nodes share state through the "
                              "PostgreSQL store, not a directory)");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return Unavailable("cannot write " + path.string() + ": " + qsapi::internal::ErrnoText(err));
  }
  return DataDirLock(fd);
}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock; the file stays (its pid is stale then)
}

std::string AuditTrailName(const Config& config) {
  if (config.store.backend == keystore::StoreBackend::kSqlite) return kSingleNodeAuditTrail;
  return std::string(kSingleNodeAuditTrail) + "@" + (config.store.node.empty() ? HostName() : config.store.node);
}

Result<AuditVerifyReport> VerifyAuditTrail(keystore::Keystore& ks, const fs::path& log, const std::string& trail) {
  QSAPI_ASSIGN_OR_RETURN(std::optional<keystore::TrailKey> key, ks.FindTrail(trail));
  if (!key) return VerifyAuditLog(log);
  const AuditKeying keying = KeyingOf(std::move(*key));
  QSAPI_ASSIGN_OR_RETURN(AuditVerifyReport r, VerifyAuditLog(log, &keying));
  QSAPI_RETURN_IF_ERROR(CheckKeystoreAnchor(ks, r));
  return r;
}

Result<AuditRepairReport> RepairAuditTrail(keystore::Keystore& ks, const fs::path& log, const std::string& who,
                                           const std::string& trail) {
  QSAPI_ASSIGN_OR_RETURN(std::optional<keystore::TrailKey> key, ks.FindTrail(trail));
  if (!key) return RepairAuditLog(log, who);
  const AuditKeying keying = KeyingOf(std::move(*key));
  return RepairAuditLog(log, who, &keying);
}

Service::Service(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
// NOLINTNEXTLINE(bugprone-exception-escape): an exception from Stop() is a bug; std::terminate reports it
Service::~Service() { Stop(); }
const StartupReport& Service::report() const noexcept { return impl_->report; }
std::uint16_t Service::port() const noexcept { return impl_->server ? impl_->server->port() : 0; }
void Service::Stop() {
  if (impl_) impl_->Stop();
}
Result<std::vector<std::string>> Service::SweepNow() { return impl_->Sweep(); }

Result<std::unique_ptr<Service>> Service::Start(const Config& config) {
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.config = config;
  s.audit_trail = AuditTrailName(config);
  const fs::path& dir = config.data_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Part("data directory", Unavailable("cannot create " + dir.string() + ": " + ec.message()));
  ::chmod(dir.c_str(), 0700);
  auto lock = DataDirLock::Acquire(dir);
  if (!lock.ok()) return Part("data directory", lock.error());
  s.dir_lock = std::move(*lock);

  auto ks = OpenKeystoreFor(config, /*create=*/true, &s.report.keystore_created);
  if (!ks.ok()) return Part("keystore", ks.error());
  s.keystore = std::move(*ks);
  s.report.store = s.keystore->store_description();
  s.report.cluster_id = s.keystore->cluster_id();

  auto pool = MakeEntropyPool(config.entropy);
  if (!pool.ok()) return Part("entropy", pool.error());
  s.pool = *pool;
  // One draw now runs every source's start-up health tests, so that a stuck QRNG is known before
  // the first request and qrng = require refuses to start without a healthy one.
  if (Result<entropy::PoolDraw> first = s.pool->Draw(32); !first.ok()) return Part("entropy", first.error());
  if (Status f = s.feeder.Start(s.pool, config.entropy.drbg_feed_interval); !f.ok()) return Part("entropy", f.error());

  auto profile = TlsProfileNamed(config.server.profile);
  if (!profile.ok()) return Part("server.profile", profile.error());
  s.report.tls_profile = profile->name;
  s.report.tls_groups = profile->groups;

  pki::TlsOptions tls;
  tls.groups = profile->groups;
  tls.verify_peer = VerificationOf(config.server.client_certificates);
  auto ca = config.store.backend == keystore::StoreBackend::kSqlite
                ? DeploymentCa::OpenOrCreate(*s.keystore, dir, *profile, &s.report.ca_created)
                : DeploymentCa::OpenShared(*s.keystore, dir, *profile, &s.report.ca_created);
  if (!ca.ok()) return Part("deployment CA", ca.error());
  s.report.ca_certificate = DeploymentCa::CertificatePath(dir);
  if (config.tls.cert_file.empty()) {
    const std::vector<std::string> names =
        config.tls.server_names.empty() ? DefaultServerNames(config.server.listen_host) : config.tls.server_names;
    auto creds = EnsureServerCertificate(*s.keystore, *ca, dir, *profile, names);
    if (!creds.ok()) return Part("TLS certificate", creds.error());
    tls.certificate_file = creds->chain_file.string();
    tls.private_key = creds->key;
    s.report.certificate_issued = creds->issued_now;
    s.report.certificate_not_after = creds->not_after;
  } else {
    tls.certificate_file = config.tls.cert_file;
    tls.private_key_file = config.tls.key_file;
    auto leaf = pki::ReadCertificatePem(config.tls.cert_file);
    if (!leaf.ok()) return Part("tls.cert_file", leaf.error());
    s.report.certificate_not_after = leaf->NotAfter();
  }
  tls.ca_file = config.tls.ca_file.empty() ? s.report.ca_certificate.string() : config.tls.ca_file;

  const fs::path token_path = TokenFilePath(dir);
  auto tokens = OpenTokensFor(config, *s.keystore);
  if (!tokens.ok()) return Part("API tokens", tokens.error());
  if (tokens->entries().empty()) {
    const fs::path admin_path = AdminTokenPath(dir);
    if (fs::exists(admin_path)) {
      return Part("API tokens",
                  FailedPrecondition(admin_path.string() + " exists but " + tokens->location() +
                                     " holds no tokens; remove the stale file to create a new admin token"));
    }
    auto token = tokens->Create("admin", Policy{{"*"}, {"*"}});
    if (!token.ok() && token.error().code() == ErrorCode::kAlreadyExists) {
      // Another node of the cluster made the admin token first: its start wrote the file.
      tokens = OpenTokensFor(config, *s.keystore);
      if (!tokens.ok()) return Part("API tokens", tokens.error());
    } else {
      if (!token.ok()) return Part("API tokens", token.error());
      Status w = WriteAdminToken(admin_path, *token);
      if (!w.ok()) return Part("API tokens", w.error());
      s.report.admin_token_file = admin_path;
    }
  }
  s.token_stamp = StampOf(token_path);

  AuditLogOptions audit_options;
  audit_options.max_file_bytes = config.audit.max_file_mib << 20;
  audit_options.keep_files = config.audit.keep_files;
  audit_options.min_free_bytes = config.audit.min_free_mib << 20;
  AuditVerifyReport verified;
  auto audit = OpenVerifiedAuditLog(dir / "audit.log", audit_options, config.accept_broken_audit_log, *s.keystore,
                                    s.audit_trail, &verified);
  if (!audit.ok()) return Part("audit log", audit.error());
  s.audit = std::move(*audit);
  s.NoteAuditVerified(verified);
  s.anchored_keystore_seq = verified.anchor_seq;
  s.AnchorTrails();

  std::vector<ClientCertificatePolicy> clients;
  for (const ClientSection& c : config.clients) clients.push_back({c.common_name, Policy{c.keys, c.operations}});
  WorkSchedulerOptions wo;
  wo.workers = config.work.workers > 0 ? config.work.workers
                                       : std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  wo.max_queued = config.work.max_queued;
  wo.max_pending_per_principal = config.work.max_pending_per_principal;
  wo.max_running_per_principal = config.work.max_running_per_principal;
  wo.cost_per_second = static_cast<double>(config.work.cpu_ms_per_second) * 1000.0;
  wo.burst = static_cast<double>(config.work.burst_cpu_ms) * 1000.0;
  wo.max_request_cost = static_cast<double>(config.work.max_request_cpu_ms) * 1000.0;
  auto scheduler = WorkScheduler::Start(wo);
  if (!scheduler.ok()) return Part("work", scheduler.error());
  s.scheduler = std::move(*scheduler);
  ApiOptions api_options;
  api_options.auth_failures.window = config.work.auth_failure_window;
  api_options.auth_failures.max_failures_per_source = config.work.max_auth_failures_per_source;
  s.api = std::make_unique<Api>(api_options, s.keystore.get(), s.pool, std::move(*tokens), std::move(clients),
                                s.audit.get(), s.scheduler.get());
  if (!config.peers.empty() || !config.session.listen_host.empty()) {
    auto so = SessionOptionsFor(config, *s.keystore, *ca, *profile, s.pool, &s.report.node_name);
    if (!so.ok()) return Part("peer sessions", so.error());
    auto sm = SessionManager::Start(std::move(*so));
    if (!sm.ok()) return Part("peer sessions", sm.error());
    s.sessions = std::move(*sm);
    s.report.peer_port = s.sessions->port();
    s.api->set_sessions(s.sessions.get());
  }
  Impl* raw = &s;
  s.api->set_health_hook([raw](std::map<std::string, std::string>& checks) { raw->Health(checks); });

  s.api->set_metrics_hook([raw](std::string& out) {
    if (const net::HttpsServer* listener = raw->listener.load()) out += ListenerMetrics(listener->stats());
  });

  net::HttpsServerOptions o;
  o.bind_address = config.server.listen_host;
  o.port = config.server.listen_port;
  o.tls = tls;
  o.max_header_bytes = config.server.max_header_bytes;
  o.max_body_bytes = config.server.max_body_bytes;
  o.request_timeout = config.server.request_timeout;
  o.idle_timeout = config.server.idle_timeout;
  o.max_connections = config.server.max_connections;
  o.max_connections_per_source = config.server.max_connections_per_source;
  o.max_unfinished = config.server.max_unfinished;
  o.max_unfinished_per_source = config.server.max_unfinished_per_source;
  o.handshake_timeout = config.server.handshake_timeout;
  o.threads = config.server.threads;
  o.server_header = "qsapid";
  Api* api = s.api.get();
  // Cryptography answers later from a worker (Api::HandleAsync): the I/O threads only parse,
  // authenticate and route, so livez, health and metrics answer however busy the workers are.
  auto server =
      net::HttpsServer::Start(o, net::HttpAsyncHandler([api](net::HttpRequest req, const net::HttpResponder& respond) {
                                ApiRequest a;
                                a.method = std::move(req.method);
                                a.path = std::move(req.path);
                                a.query = std::move(req.query);
                                a.headers = std::move(req.headers);
                                a.body = std::move(req.body);
                                a.peer_common_name = std::move(req.peer_common_name);
                                a.peer_certificate_serves_servers = req.peer_certificate_serves_servers;
                                a.tls_group = std::move(req.tls_group);
                                a.remote_address = std::move(req.remote_address);
                                api->HandleAsync(std::move(a), [respond](ApiResponse r) {
                                  net::HttpResponse h;
                                  h.status = r.status;
                                  h.content_type = std::move(r.content_type);
                                  h.body = std::move(r.body);
                                  h.headers = std::move(r.headers);
                                  respond(std::move(h));
                                });
                              }));
  if (!server.ok()) return Part("HTTPS server", server.error());
  s.server = std::move(*server);
  s.listener.store(s.server.get());
  const bool v6 = config.server.listen_host.find(':') != std::string::npos;
  const std::string host = config.server.listen_host == "0.0.0.0" ? "127.0.0.1"
                           : config.server.listen_host == "::"    ? "[::1]"
                           : v6                                   ? "[" + config.server.listen_host + "]"
                                                                  : config.server.listen_host;
  s.report.url = "https://" + host + ":" + std::to_string(s.server->port());
  s.maintenance = std::thread([raw] { raw->Maintain(); });
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

}  // namespace qsapi::server
