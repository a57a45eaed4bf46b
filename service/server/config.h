// qsapid's configuration: one TOML file, validated at start. Every error names the offending key
// ("peer[1].qkd: expected one of off, prefer, require, got \"sometimes\"") and unknown keys are
// errors, so a typo never silently falls back to a default.
#ifndef QSAPI_SRC_SERVER_CONFIG_H_
#define QSAPI_SRC_SERVER_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/source_policy.h"

namespace qsapi::server {

struct ServerSection {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8443;
  std::string profile = "default";  // "default" (ML-DSA-65, X25519MLKEM768) or "cnsa2" (ML-DSA-87, SecP384r1MLKEM1024)
  std::string client_certificates = "optional";  // off | optional | required
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  std::size_t max_connections = 256;
  std::size_t max_connections_per_source = 64;  // from one client address
  std::size_t max_unfinished = 64;              // connections in their TLS handshake
  std::size_t max_unfinished_per_source = 8;    // of which from one client address
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000};
  int threads = 2;
  std::chrono::seconds shutdown_drain{10};
};

struct TlsSection {
  std::string cert_file;                  // empty: the certificate qsapid issues itself under the data directory
  std::string key_file;                   // the PEM private key of cert_file (mode 0600); required with cert_file
  std::vector<std::string> server_names;  // names of the self-issued certificate; empty: DefaultServerNames
  std::string ca_file;                    // trust anchors for client certificates; empty: the deployment CA
};

struct KeystoreSection {
  std::string pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so";
  std::string token_label = "qsapi";
  std::string pin_file;  // empty (with pin_env empty): the embedded default's PIN file
  std::string pin_env;
  std::chrono::seconds cache_ttl{30};
};

// [store]: where the keystore's metadata lives (keystore/keystore.h, StoreBackend).
struct StoreSection {
  keystore::StoreBackend backend = keystore::StoreBackend::kSqlite;
  std::string path;                                   // sqlite: the file; empty: <data_dir>/keystore.db
  std::string conninfo, password_file, password_env;  // postgresql
  int pool_size = 4;
  std::chrono::seconds connect_timeout{5};
  std::string cluster_id;  // empty: the database's (made at the first start on an empty one)
  std::string node;        // this node's name in the cluster (its audit trail); empty: the host name
};

struct RotationSection {
  std::chrono::seconds sweep_interval{60};
};

// [work]: the worker pool that runs cryptography, and what one principal may take of it
// (server/work_scheduler.h; docs/OPERATIONS.md, "Work limits").
struct WorkSection {
  int workers = 0;  // 0: the number of CPUs (at least 2)
  std::size_t max_queued = 1024;
  std::size_t max_pending_per_principal = 32;
  std::size_t max_running_per_principal = 0;  // 0: workers - 1 (at least 1)
  std::int64_t cpu_ms_per_second = 1000;      // each principal's budget refill
  std::int64_t burst_cpu_ms = 4000;
  std::int64_t max_request_cpu_ms = 2000;  // a batch costlier than this is refused (413)
  std::chrono::seconds auth_failure_window{10};
  std::uint64_t max_auth_failures_per_source = 100;
};

// [audit]: the audit log's size and the space it must keep free (server/audit_log.h).
struct AuditSection {
  std::uint64_t max_file_mib = 64;            // rotate past this
  std::size_t keep_files = 0;                 // rotated files kept; 0: all
  std::uint64_t min_free_mib = 8;             // below this, operations are refused (503)
  std::chrono::seconds verify_interval{300};  // the whole chain is verified this often while running
};

struct QrngDevice {
  std::string id, path;
  double min_entropy = 7.0;
};
struct QrngHttp {
  std::string id, url, api_key_header, api_key_env, api_key_file, ca_file, json_field = "data";
  double min_entropy = 7.0;
  std::chrono::milliseconds timeout{2000};
};
struct EntropySection {
  SourcePolicy qrng = SourcePolicy::kPrefer;
  std::chrono::seconds drbg_feed_interval{60};
  std::vector<QrngDevice> devices;
  std::vector<QrngHttp> http;
};

struct KmeSection {
  std::string name, url, sae_id, cert_file, key_file, ca_file, kme_id;
};

struct PeerSection {
  std::string name;  // the CN of the peer's certificate
  std::string host;  // its peer-link address ("address" = "host:port")
  std::uint16_t port = 0;
  std::string kme, remote_sae_id;
  SourcePolicy qkd = SourcePolicy::kOff;
  SourcePolicy qrng = SourcePolicy::kPrefer;
  bool qkd_at_rotation = true;  // sessions with QKD agree fresh QKD keys for each new epoch
};

// [session]: this node's side of peer sessions.
struct SessionSection {
  std::string name;         // our peer name (the CN of our peer certificate); empty: the host name
  std::string listen_host;  // the peer-link listener ("listen" = "host:port"); empty: do not listen
  std::uint16_t listen_port = 0;
  std::string cert_file, key_file;  // our peer certificate and PEM key; empty: issued by the deployment CA
  std::string ca_file;              // the trust anchor of peer links; empty: the deployment CA
  std::string suite = "AES-256-GCM";
  std::uint64_t rotate_after_messages = std::uint64_t{1} << 24;
  std::uint64_t rotate_after_bytes = std::uint64_t{1} << 36;
  std::chrono::seconds rotate_after{120};
  std::chrono::seconds max_session_age{86400};
  // The initiating node re-establishes a session in place (new TLS handshake, new ML-KEM, new QKD
  // keys) this long after its establishment or last re-establishment; 0: only on request.
  std::chrono::seconds reestablish_after{3600};
};

// A client certificate's CN bound to a policy (which keys, which operations), like a token's.
struct ClientSection {
  std::string common_name;
  std::vector<std::string> keys, operations;
};

struct Config {
  std::filesystem::path data_dir;
  ServerSection server;
  TlsSection tls;
  KeystoreSection keystore;
  StoreSection store;
  RotationSection rotation;
  WorkSection work;
  AuditSection audit;
  EntropySection entropy;
  std::vector<KmeSection> kmes;
  SessionSection session;
  std::vector<PeerSection> peers;
  std::vector<ClientSection> clients;
  // qsapid --accept-broken-audit-log: start on an audit trail that fails verification, moving it
  // aside and beginning a new chain whose first line records why (never from the file).
  bool accept_broken_audit_log = false;
};

// ParseConfig parses TOML text; `origin` names the file in errors. kInvalidArgument on any error.
Result<Config> ParseConfig(std::string_view toml_text, const std::string& origin);
// LoadConfig reads and parses a file (max 1 MiB).
Result<Config> LoadConfig(const std::filesystem::path& path);
// DefaultConfig is the embedded default for a data directory (no file needed).
Config DefaultConfig(const std::filesystem::path& data_dir);

// ParseListenAddress parses "host:port" ("[::1]:8443" for IPv6; port 0 means any free port).
Result<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view listen);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_CONFIG_H_
