// The keystore's metadata behind a narrow interface. SQLite is the embedded default; a PostgreSQL
// backend for several nodes implements the same calls (the SQL is kept portable: no SQLite-only
// types or functions beyond the PRAGMAs at open). Every mutating call is one transaction and
// appends its audit entry in the same transaction, so that a crash leaves the old or the new state,
// and the trail never disagrees with the keys.
#ifndef QSAPI_KEYSTORE_INTERNAL_METADATA_STORE_H_
#define QSAPI_KEYSTORE_INTERNAL_METADATA_STORE_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {

// FaultClockSkew is QSAPI_FAULT_CLOCK_SKEW_SECONDS in builds with QSAPI_FAULT_INJECTION (a node
// whose clock is off, for the cluster fault tests), 0 otherwise.
std::int64_t FaultClockSkew();

// UnixNow is this machine's time as the rows hold it: unix seconds. Rows take the store's clock
// (MetadataStore::Now), which is the database's for a shared store.
inline std::int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
         FaultClockSkew();
}

// VersionKey names one version of one key: the key id and the version number.
using VersionKey = std::pair<KeyId, std::uint32_t>;

struct KeyRow {
  std::string name;
  KeyId id{};
  std::string type;          // KeyTypeName
  std::int64_t created = 0;  // unix seconds
  std::int64_t rotated = 0;
  std::uint32_t current_version = 0;
  std::int64_t auto_rotate_seconds = 0;
  std::uint64_t max_operations = 0;
  std::uint32_t min_decryption_version = 1;
  bool deletion_allowed = false;

  friend bool operator==(const KeyRow&, const KeyRow&) = default;  // every field
};

struct VersionRow {
  KeyId key_id{};
  std::uint32_t version = 0;
  std::string state;  // VersionStateName
  std::int64_t created = 0;
  std::uint64_t ops_leased = 0;
  Bytes public_key;
  Bytes wrapped;  // empty once destroyed

  friend bool operator==(const VersionRow&, const VersionRow&) = default;  // every field
};

struct AuditRow {
  std::int64_t at = 0;
  std::string actor, action, key_name;
  std::uint32_t version = 0;
  std::string result, detail;

  friend bool operator==(const AuditRow&, const AuditRow&) = default;  // every field
};

// An audit trail the keystore keys and anchors (its own, and qsapid's audit log): the trail's
// HMAC-SHA-256 key wrapped by the KEK (the wrapping binds the trail's name and first_seq), the
// first sequence number whose entry carries a MAC (older entries, from before the trail was
// keyed, are SHA-256-chained), and the head last recorded (head_seq 0: none yet).
struct TrailRow {
  std::string trail{};
  Bytes wrapped{};
  std::uint64_t first_seq = 1;
  std::uint64_t head_seq = 0;
  Bytes head_mac{};
  std::int64_t updated = 0;

  friend bool operator==(const TrailRow&, const TrailRow&) = default;  // every field
};

// The deployment's identity, written once when the first node opens an empty database: a random
// cluster id and a canary (32 random bytes wrapped by the KEK, bound to the cluster id) that every
// node unwraps at start to show that its KEK is the cluster's.
struct ClusterRow {
  std::string cluster_id;  // 32 lower-case hex characters
  Bytes canary;            // the KEK's wrapping of 32 random bytes, associated data ClusterCanaryAad
  std::int64_t created = 0;

  friend bool operator==(const ClusterRow&, const ClusterRow&) = default;  // every field
};

// A record of the deployment's shared state beside the keys (qsapid's API tokens): a kind, a
// name, an opaque value, and when it was written.
struct RecordRow {
  std::string kind, name;
  Bytes value;
  std::int64_t updated = 0;

  friend bool operator==(const RecordRow&, const RecordRow&) = default;  // every field
};

// One entry of the store's own audit trail as stored: the entry, its sequence number and the
// chain values (prev_hash is c_{seq-1}, hash is c_seq: keystore/internal/audit_chain.h).
struct StoredAuditEntry {
  std::uint64_t seq = 0;
  AuditRow row;
  Bytes prev_hash, hash;

  friend bool operator==(const StoredAuditEntry&, const StoredAuditEntry&) = default;  // every field
};

// Everything a store holds, as `qsapi store migrate` moves it from one backend to another
// unchanged: blobs stay wrapped by the same KEK, the trail keeps its chain values. Held in memory
// (a few hundred bytes per audit entry).
struct StoreContents {
  std::optional<ClusterRow> cluster;
  std::vector<KeyRow> keys;
  std::vector<VersionRow> versions;
  std::vector<RecordRow> records;
  std::vector<TrailRow> trails;
  std::vector<StoredAuditEntry> audit;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  virtual Status CreateKey(const KeyRow& key, const VersionRow& first, const AuditRow& audit) = 0;
  // AddVersion inserts `next`, makes it current and sets the previous current version's state.
  virtual Status AddVersion(const std::string& name, const VersionRow& next, const std::string& previous_state,
                            std::int64_t rotated_at, const AuditRow& audit) = 0;
  // SetVersionState changes one version's state; with wipe, also deletes its wrapped material.
  virtual Status SetVersionState(const KeyId& id, std::uint32_t version, const std::string& state, bool wipe,
                                 const AuditRow& audit) = 0;
  // DeleteKey wipes every version's material and removes the key's rows (the audit trail stays).
  virtual Status DeleteKey(const std::string& name, const AuditRow& audit) = 0;
  virtual Status UpdatePolicy(const KeyRow& key, const AuditRow& audit) = 0;
  // GrantOperations reserves the next `block` operations of a version, never beyond `max`, in one
  // atomic step (UPDATE ... SET ops_leased = ops_leased + block WHERE ... AND ops_leased + block <=
  // max RETURNING ops_leased), so that two writers on one database never get the same block. The
  // caller owns [r - block, r) for the returned r; nullopt when fewer than `block` operations remain
  // under `max` (or the version has no row): nothing changed.
  virtual Result<std::optional<std::uint64_t>> GrantOperations(const KeyId& id, std::uint32_t version,
                                                               std::uint64_t block, std::uint64_t max) = 0;
  virtual Status AppendAudit(const AuditRow& audit) = 0;

  virtual Result<std::optional<KeyRow>> GetKey(const std::string& name) = 0;
  virtual Result<std::optional<KeyRow>> GetKeyById(const KeyId& id) = 0;
  virtual Result<std::vector<KeyRow>> ListKeys() = 0;
  virtual Result<std::vector<VersionRow>> GetVersions(const KeyId& id) = 0;
  virtual Result<std::optional<VersionRow>> GetVersion(const KeyId& id, std::uint32_t version) = 0;
  // ChangeCounter changes whenever the stored metadata may have changed, by this handle or by any
  // other process; callers cache rows and drop them when it moves.
  virtual Result<std::uint64_t> ChangeCounter() = 0;
  // Now is the store's clock, in unix seconds: what every row's time (created, rotated, an audit
  // entry's `at`) is written in and what rotation periods are judged by. A database shared by
  // several nodes is the one clock they agree on: PostgreSQL's, from the offset to this machine's
  // clock that every ChangeCounter (one per operation) and DatabaseNow answer refreshes. SQLite:
  // this machine's clock.
  virtual std::int64_t Now() { return UnixNow(); }
  // ReadAudit returns the newest `max` entries, oldest first.
  virtual Result<std::vector<AuditEntry>> ReadAudit(std::size_t max) = 0;
  // VerifyAuditChain recomputes the chain (SHA-256 before the audit key's first_seq, HMAC from
  // it on); kDataLoss names the first bad entry.
  virtual Status VerifyAuditChain() = 0;

  // UseAuditKey keys this store's own trail: entries from first_seq on are chained with
  // HMAC-SHA-256 under `key` (the "keystore" TrailRow's key, unwrapped by the caller).
  virtual void UseAuditKey(SecretBytes key, std::uint64_t first_seq) = 0;
  // AuditHead returns the newest entry's seq and chain value (0 and empty for an empty trail).
  virtual Result<std::pair<std::uint64_t, Bytes>> AuditHead() = 0;
  // HasAuditEntry says whether entry `seq` exists with chain value `value` (the trail's head as
  // recorded elsewhere: a trail cut short or rolled back no longer has it).
  virtual Result<bool> HasAuditEntry(std::uint64_t seq, ByteView value) = 0;

  // RunExclusive runs `body` if no other node runs job `job` now, and returns whether it ran:
  // the cluster's leader-only jobs (the rotation sweep). PostgreSQL: a transaction-scoped advisory
  // lock on a connection of its own, with an idle-in-transaction timeout so that a node frozen
  // while holding it loses it within seconds; the body's writes stay conditional, so a second
  // runner after such a loss changes nothing twice. SQLite: one node; runs the body.
  virtual Result<bool> RunExclusive(const std::string& job, const std::function<Status()>& body) = 0;
  // DatabaseNow is the database's clock in unix seconds (SQLite: this host's), so that every node
  // of a cluster judges a rotation period by the same clock.
  virtual Result<std::int64_t> DatabaseNow() = 0;

  // GetCluster returns the deployment's identity (nullopt: not written yet); CreateCluster writes
  // it with its audit entry, kAlreadyExists when another node wrote one first (read it again).
  virtual Result<std::optional<ClusterRow>> GetCluster() = 0;
  virtual Status CreateCluster(const ClusterRow& row, const AuditRow& audit) = 0;

  // CreateRecord inserts a record with its audit entry (kAlreadyExists when one of that kind and
  // name exists); DeleteRecord removes one (kNotFound when there is none); ListRecords returns a
  // kind's records by name.
  virtual Status CreateRecord(const RecordRow& row, const AuditRow& audit) = 0;
  virtual Status DeleteRecord(const std::string& kind, const std::string& name, const AuditRow& audit) = 0;
  virtual Result<std::vector<RecordRow>> ListRecords(const std::string& kind) = 0;

  virtual Result<std::optional<TrailRow>> GetTrail(const std::string& trail) = 0;
  // CreateTrail inserts `row` with its audit entry, in one transaction. kAlreadyExists when the
  // trail exists (another process made it first: read it again). With own_key (the row is this
  // store's own trail), row.first_seq is ignored: the trail is keyed from the entry that records
  // its creation, whose seq is returned (and `wrap` is called with it to make row.wrapped);
  // otherwise row.first_seq is kept and returned.
  virtual Result<std::uint64_t> CreateTrail(TrailRow row, const AuditRow& audit, const SecretBytes* own_key,
                                            const std::function<Result<Bytes>(std::uint64_t first_seq)>& wrap) = 0;
  // SetTrailHead records a trail's head. kFailedPrecondition when seq is below the recorded head
  // (a head never moves back but through ReplaceTrail).
  virtual Status SetTrailHead(const std::string& trail, std::uint64_t seq, ByteView mac) = 0;
  // ReplaceTrail gives a trail a new key and first_seq and forgets its head (a new chain begun
  // after a broken one was moved aside), with its audit entry. kNotFound for an unknown trail.
  virtual Status ReplaceTrail(const TrailRow& row, const AuditRow& audit) = 0;

  // ExportAll reads every row in one read transaction, strictly (a corrupt row is kDataLoss), and
  // checks the store's own trail on the way (kDataLoss names the first entry that does not chain).
  virtual Result<StoreContents> ExportAll() = 0;
  // ImportAll writes `contents` as they are, in one transaction, into a store that holds nothing
  // yet (kFailedPrecondition otherwise: nothing is written).
  virtual Status ImportAll(const StoreContents& contents) = 0;
  // MarkMoved records, with its audit entry, that the store's contents now live at `where`: every
  // later open of this store is refused with an error that names it (so that no node goes on
  // writing to the old copy).
  virtual Status MarkMoved(const std::string& where, const AuditRow& audit) = 0;
};

// OpenSqliteStore opens (creating if needed) the database: WAL, synchronous=FULL, foreign keys,
// a busy timeout, and the schema (its version checked).
Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::filesystem::path& path);

// FaultPoint kills the process with SIGKILL when the environment variable QSAPI_FAULT_POINT names
// `point`, and freezes it with SIGSTOP when it is "<point>:stop" (builds with QSAPI_FAULT_INJECTION
// only; a no-op otherwise). For crash-safety and cluster fault tests.
void FaultPoint(const char* point);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_METADATA_STORE_H_
