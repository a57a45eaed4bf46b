// Service: qsapid assembled from its parts, so that the program and the tests start the same thing.
//
// Start, in order (docs/ARCHITECTURE.md, "qsapid start-up"):
//   1. the data directory (0700) and the keystore: the embedded SoftHSM2 default, created on first
//      start, or the configured PKCS#11 module and PIN source;
//   2. the entropy pool from [entropy] and a DrbgFeeder that keeps reseeding OpenSSL's DRBG from it;
//   3. the deployment CA (created on first start) and qsapid's TLS certificate (issued on first
//      start, re-issued before it expires), both private keys wrapped by the keystore;
//   4. API tokens: on first start an "admin" token is created and written, once, to a 0600 file
//      whose path the start-up report gives; the token file is re-read when it changes, so that
//      `qsapi token create|revoke` takes effect without a restart;
//   5. the audit log, the REST API and the HTTPS server (TLS 1.3, the profile's hybrid groups);
//   6. a maintenance thread: the rotation sweep every [rotation] sweep_interval_seconds (each
//      rotation is audited) and the token-file check.
// Any failure stops start-up with an error that names the part and what to fix; nothing started
// before it keeps running.
//
// Stop (or the destructor) stops accepting connections, lets requests in flight finish for up to
// [server] shutdown_drain_seconds, then stops the maintenance thread and the feeder.
#ifndef QSAPI_SRC_SERVER_SERVICE_H_
#define QSAPI_SRC_SERVER_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qsapi/entropy/pool.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/qkd/etsi014.h"
#include "qsapi/result.h"
#include "server/audit_log.h"
#include "server/config.h"
#include "server/tokens.h"

namespace qsapi::server {

// StartupReport says what the start did, for the console and for tests.
struct StartupReport {
  std::string url;                         // "https://127.0.0.1:8443"
  std::filesystem::path ca_certificate;    // the trust anchor for clients (curl --cacert)
  std::filesystem::path admin_token_file;  // set when the admin token was created by this start
  bool keystore_created = false;
  std::string store;       // "SQLite /path/keystore.db" / "PostgreSQL host=... dbname=..."
  std::string cluster_id;  // the database's cluster
  bool ca_created = false;
  bool certificate_issued = false;
  std::string tls_profile;  // "default" / "cnsa2"
  std::string tls_groups;
  std::chrono::system_clock::time_point certificate_not_after;
  std::string node_name;        // our peer name, when peer sessions are configured
  std::uint16_t peer_port = 0;  // the peer-link listener's port (0: none)
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> Start(const Config& config);

  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  Service(Service&&) = delete;
  Service& operator=(Service&&) = delete;
  ~Service();  // NOLINT(bugprone-exception-escape): Stop(); see its definition

  [[nodiscard]] const StartupReport& report() const noexcept;
  [[nodiscard]] std::uint16_t port() const noexcept;
  // Stop drains and stops everything (idempotent).
  void Stop();
  // SweepNow runs one rotation sweep and returns the keys it rotated (the maintenance thread does
  // this on its own schedule).
  Result<std::vector<std::string>> SweepNow();

  class Impl;

 private:
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// OpenKeystoreFor opens the keystore a configuration names: the embedded default under data_dir
// (created first when `create`; FAILED_PRECONDITION saying how to create it otherwise) or the
// configured PKCS#11 module and PIN source.
Result<std::unique_ptr<keystore::Keystore>> OpenKeystoreFor(const Config& config, bool create, bool* created);
// KeystoreOptionsFor is what OpenKeystoreFor opens (with create, the embedded token is made first).
Result<keystore::KeystoreOptions> KeystoreOptionsFor(const Config& config, bool create, bool* created);
// OpenTokensFor opens the API tokens a configuration names: the token file under data_dir (sqlite
// store), or the records in the keystore's database (postgresql store: shared by every node).
Result<TokenStore> OpenTokensFor(const Config& config, keystore::Keystore& ks);
// MakeEntropyPool builds the pool [entropy] describes (QRNG devices and HTTP sources, policy).
Result<std::shared_ptr<entropy::EntropyPool>> MakeEntropyPool(const EntropySection& entropy);
// KmeClientOptions are the ETSI 014 client options a [[kme]] section describes.
qkd::Etsi014ClientOptions KmeClientOptions(const KmeSection& kme);

// DataDirLock holds <data_dir>/qsapid.lock (flock, exclusive) for as long as it lives: one
// qsapid per data directory, so that two processes never fork the audit chain or race on the
// files. Several nodes share state through the PostgreSQL store instead (issue #16).
class DataDirLock {
 public:
  // Acquire takes the lock and writes our pid into the file. kFailedPrecondition naming the pid
  // of the process holding it; kUnavailable when the file cannot be opened.
  static Result<DataDirLock> Acquire(const std::filesystem::path& data_dir);
  DataDirLock() = default;
  DataDirLock(DataDirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The keystore trail that keys and anchors this node's audit log: "qsapid.audit" on one node
// (sqlite store); "qsapid.audit@<node>" on PostgreSQL, one per node, since each node writes a log
// of its own ([store] node, default the host name).
inline constexpr const char* kSingleNodeAuditTrail = "qsapid.audit";
std::string AuditTrailName(const Config& config);

// VerifyAuditTrail verifies qsapid's audit trail `log` as qsapid does at start: every MAC with
// the trail's key from the keystore, the head the keystore recorded, and the keystore's own trail
// against the head the last audit.anchor line recorded. A trail the keystore never keyed (an
// older qsapid's) is checked by its hashes alone (report.macs is 0).
Result<AuditVerifyReport> VerifyAuditTrail(keystore::Keystore& ks, const std::filesystem::path& log,
                                           const std::string& trail = kSingleNodeAuditTrail);
// RepairAuditTrail is RepairAuditLog with the trail's key (its repair line carries a MAC).
Result<AuditRepairReport> RepairAuditTrail(keystore::Keystore& ks, const std::filesystem::path& log,
                                           const std::string& who, const std::string& trail = kSingleNodeAuditTrail);

// AdminTokenPath is where the first start writes the admin token.
inline std::filesystem::path AdminTokenPath(const std::filesystem::path& data_dir) { return data_dir / "admin-token"; }
inline std::filesystem::path TokenFilePath(const std::filesystem::path& data_dir) {
  return data_dir / "api-tokens.json";
}

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_SERVICE_H_
