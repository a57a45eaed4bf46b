// The SQLite metadata store: WAL journal, synchronous=FULL (a committed transaction survives a
// power cut), one connection guarded by a mutex, every mutation in BEGIN IMMEDIATE ... COMMIT.
//
// The audit trail is chained: entry n stores c_n = F(c_{n-1} || encode(entry n)) with c_0 = 32 zero
// bytes and encode() length-prefixing every field, so that a removed, reordered or edited row
// breaks the chain from that row on. F is HMAC-SHA-256 under the trail key (wrapped by the KEK,
// row "keystore" of the trails table) from the entry that recorded the key's creation on, and
// SHA-256 before it (entries written before the trail was keyed): rewriting keyed entries needs
// the KEK's device. The trails table also keys and anchors qsapid's audit log.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sqlite3.h>
#include <string>
#include <string_view>
#include <utility>

#include "common/internal/text.h"
#include "keystore/internal/audit_chain.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/store_rows.h"
#include "qsapi/crypto/kdf.h"

namespace qsapi::keystore::internal {

void FaultPoint(const char* point) {
#ifdef QSAPI_FAULT_INJECTION
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, test builds only
  static const char* wanted = std::getenv("QSAPI_FAULT_POINT");
  if (wanted == nullptr) return;
  const std::string_view w(wanted);
  if (w == point) ::raise(SIGKILL);
  // "<point>:stop" freezes the process there instead (SIGSTOP, for as long as the test wants).
  if (w.ends_with(":stop") && w.substr(0, w.size() - 5) == point) ::raise(SIGSTOP);
#else
  (void)point;
#endif
}

std::int64_t FaultClockSkew() {
#ifdef QSAPI_FAULT_INJECTION
  static const std::int64_t skew = [] {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, test builds only
    const char* s = std::getenv("QSAPI_FAULT_CLOCK_SKEW_SECONDS");
    return s == nullptr ? std::int64_t{0} : std::strtoll(s, nullptr, 10);
  }();
  return skew;
#else
  return 0;
#endif
}

namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS qsapi_meta (
  name  VARCHAR(64) PRIMARY KEY,
  value VARCHAR(256) NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
  name                   VARCHAR(64) PRIMARY KEY,
  key_id                 BLOB NOT NULL UNIQUE,
  type                   VARCHAR(64) NOT NULL,
  created                BIGINT NOT NULL,
  rotated                BIGINT NOT NULL,
  current_version        INTEGER NOT NULL,
  auto_rotate_seconds    BIGINT NOT NULL,
  max_operations         BIGINT NOT NULL,
  min_decryption_version INTEGER NOT NULL,
  deletion_allowed       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS key_versions (
  key_id     BLOB NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
  version    INTEGER NOT NULL,
  state      VARCHAR(16) NOT NULL,
  created    BIGINT NOT NULL,
  ops_leased BIGINT NOT NULL,
  public_key BLOB,
  wrapped    BLOB,
  PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS audit (
  seq       INTEGER PRIMARY KEY,
  at        BIGINT NOT NULL,
  actor     VARCHAR(128) NOT NULL,
  action    VARCHAR(64) NOT NULL,
  key_name  VARCHAR(64) NOT NULL,
  version   INTEGER NOT NULL,
  result    VARCHAR(64) NOT NULL,
  detail    VARCHAR(1024) NOT NULL,
  prev_hash BLOB NOT NULL,
  hash      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
  kind    VARCHAR(32) NOT NULL,
  name    VARCHAR(128) NOT NULL,
  value   BLOB NOT NULL,
  updated BIGINT NOT NULL,
  PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS trails (
  trail     VARCHAR(64) PRIMARY KEY,
  wrapped   BLOB NOT NULL,
  first_seq BIGINT NOT NULL,
  head_seq  BIGINT NOT NULL,
  head_mac  BLOB,
  updated   BIGINT NOT NULL
);
)sql";

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : rc_(sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr)) {}
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  [[nodiscard]] bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, std::int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& Bind(int i, ByteView v) {
    if (v.empty()) {
      Check(sqlite3_bind_null(stmt_, i));
    } else {
      Check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    }
    return *this;
  }
  // Step returns SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return rc_ == SQLITE_OK ? sqlite3_step(stmt_) : rc_; }
  [[nodiscard]] std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  [[nodiscard]] std::string Text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));  // NOLINT
  }
  [[nodiscard]] Bytes Blob(int col) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? Bytes() : Bytes(p, p + n);
  }
  [[nodiscard]] int rc() const { return rc_; }
  [[nodiscard]] int Type(int col) const { return sqlite3_column_type(stmt_, col); }
  [[nodiscard]] bool IsText(int col) const { return Type(col) == SQLITE_TEXT; }
  [[nodiscard]] bool IsBlob(int col) const { return Type(col) == SQLITE_BLOB; }
  [[nodiscard]] bool IsBlobOrNull(int col) const { return Type(col) == SQLITE_BLOB || Type(col) == SQLITE_NULL; }
  [[nodiscard]] bool IsInt(int col, std::int64_t min, std::int64_t max) const {
    return Type(col) == SQLITE_INTEGER && Int(col) >= min && Int(col) <= max;
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
  }
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// Column reads of the current row for ReadKeyRow / ReadVersionRow (keystore/internal/store_rows.h).
struct SqliteColumns {
  const Stmt& s;
  bool Text(int col, std::string& out) const {
    if (!s.IsText(col)) return false;
    out = s.Text(col);
    return true;
  }
  bool Blob(int col, Bytes& out, bool nullable) const {
    if (!(nullable ? s.IsBlobOrNull(col) : s.IsBlob(col))) return false;
    out = s.Blob(col);
    return true;
  }
  bool Int(int col, std::int64_t min, std::int64_t max, std::int64_t& out) const {
    if (!s.IsInt(col, min, max)) return false;
    out = s.Int(col);
    return true;
  }
};

Result<KeyRow> ReadKey(const Stmt& s) { return ReadKeyRow(SqliteColumns{s}); }
Result<VersionRow> ReadVersion(const Stmt& s) { return ReadVersionRow(SqliteColumns{s}); }

constexpr std::int64_t kMaxTime = kMaxStoredTime;
constexpr std::int64_t kMaxU32 = kMaxStoredU32;
constexpr std::int64_t kMaxI64 = kMaxStoredI64;

class SqliteStore final : public MetadataStore {
 public:
  explicit SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  SqliteStore(SqliteStore&&) = delete;
  SqliteStore& operator=(SqliteStore&&) = delete;

  Status Init() {
    QSAPI_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
    QSAPI_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
    QSAPI_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
    sqlite3_busy_timeout(db_, 5000);
    QSAPI_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status st = Exec(kSchema);
    if (st.ok()) {
      Stmt get(db_, "SELECT value FROM qsapi_meta WHERE name = 'schema_version'");
      const int rc = get.Step();
      if (rc == SQLITE_ROW) {
        if (get.Text(0) != std::to_string(kSchemaVersion)) {
          st = FailedPrecondition("keystore database " + path_ + " has schema version " + get.Text(0) +
                                  "; this build reads version " + std::to_string(kSchemaVersion));
        }
      } else if (rc == SQLITE_DONE) {
        Stmt put(db_, "INSERT INTO qsapi_meta (name, value) VALUES ('schema_version', ?)");
        put.Bind(1, std::to_string(kSchemaVersion));
        if (put.Step() != SQLITE_DONE) st = DbError("writing the schema version");
      } else {
        st = DbError("reading the schema version");
      }
    }
    if (st.ok()) {
      Stmt moved(db_, "SELECT value FROM qsapi_meta WHERE name = ?");
      moved.Bind(1, std::string(kMovedMetaName));
      const int rc = moved.Step();
      if (rc == SQLITE_ROW) st = MovedError(path_, moved.Text(0));
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = DbError("reading the moved marker");
    }
    if (!st.ok()) {
      (void)Exec("ROLLBACK");
      return st;
    }
    return Exec("COMMIT");
  }

  Status CreateKey(const KeyRow& k, const VersionRow& v, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      QSAPI_RETURN_IF_ERROR(InsertKey(k));
      FaultPoint("keystore.create.between_rows");
      QSAPI_RETURN_IF_ERROR(InsertVersion(v));
      return InsertAudit(audit);
    });
  }

  Status AddVersion(const std::string& name, const VersionRow& next, const std::string& previous_state,
                    std::int64_t rotated_at, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      // Another writer on this database (a second process) may have rotated first: then nothing
      // is written, and the caller reads the key again.
      Stmt now(db_, "SELECT current_version FROM keys WHERE name = ?");
      now.Bind(1, name);
      if (now.Step() != SQLITE_ROW) return NotFound("no key named \"" + name + "\"");
      if (now.Int(0) != std::int64_t{next.version} - 1) {
        return FailedPrecondition("the key was rotated concurrently; retry");
      }
      Stmt prev(db_,
                "UPDATE key_versions SET state = ? WHERE key_id = ? AND version = "
                "(SELECT current_version FROM keys WHERE name = ?)");
      prev.Bind(1, previous_state).Bind(2, ByteView(next.key_id)).Bind(3, name);
      if (prev.Step() != SQLITE_DONE) return DbError("updating the previous version");
      QSAPI_RETURN_IF_ERROR(InsertVersion(next));
      FaultPoint("keystore.rotate.between_rows");
      Stmt cur(db_, "UPDATE keys SET current_version = ?, rotated = ? WHERE name = ? AND current_version = ?");
      cur.Bind(1, std::int64_t{next.version}).Bind(2, rotated_at).Bind(3, name);
      cur.Bind(4, std::int64_t{next.version} - 1);
      if (cur.Step() != SQLITE_DONE) return DbError("making the new version current");
      if (sqlite3_changes(db_) != 1) return FailedPrecondition("the key was rotated concurrently; retry");
      return InsertAudit(audit);
    });
  }

  Status SetVersionState(const KeyId& id, std::uint32_t version, const std::string& state, bool wipe,
                         const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      Stmt up(db_, wipe ? "UPDATE key_versions SET state = ?, wrapped = NULL WHERE key_id = ? AND version = ?"
                        : "UPDATE key_versions SET state = ? WHERE key_id = ? AND version = ?");
      up.Bind(1, state).Bind(2, ByteView(id)).Bind(3, std::int64_t{version});
      if (up.Step() != SQLITE_DONE) return DbError("updating the version state");
      if (sqlite3_changes(db_) != 1) return NotFound("no such key version");
      FaultPoint("keystore.destroy_version.before_commit");
      return InsertAudit(audit);
    });
  }

  Status DeleteKey(const std::string& name, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      Stmt wipe(db_,
                "UPDATE key_versions SET wrapped = NULL, state = 'destroyed' WHERE key_id = "
                "(SELECT key_id FROM keys WHERE name = ?)");
      wipe.Bind(1, name);
      if (wipe.Step() != SQLITE_DONE) return DbError("wiping the key's versions");
      FaultPoint("keystore.destroy.between_rows");
      Stmt del_v(db_, "DELETE FROM key_versions WHERE key_id = (SELECT key_id FROM keys WHERE name = ?)");
      del_v.Bind(1, name);
      if (del_v.Step() != SQLITE_DONE) return DbError("deleting the key's versions");
      Stmt del(db_, "DELETE FROM keys WHERE name = ?");
      del.Bind(1, name);
      if (del.Step() != SQLITE_DONE) return DbError("deleting the key");
      if (sqlite3_changes(db_) != 1) return NotFound("no key named \"" + name + "\"");
      return InsertAudit(audit);
    });
  }

  Status UpdatePolicy(const KeyRow& k, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      Stmt up(db_,
              "UPDATE keys SET auto_rotate_seconds = ?, max_operations = ?, min_decryption_version = ?, "
              "deletion_allowed = ? WHERE name = ?");
      up.Bind(1, k.auto_rotate_seconds).Bind(2, static_cast<std::int64_t>(k.max_operations));
      up.Bind(3, std::int64_t{k.min_decryption_version}).Bind(4, std::int64_t{k.deletion_allowed ? 1 : 0});
      up.Bind(5, k.name);
      if (up.Step() != SQLITE_DONE) return DbError("updating the policy");
      if (sqlite3_changes(db_) != 1) return NotFound("no key named \"" + k.name + "\"");
      return InsertAudit(audit);
    });
  }

  Result<std::uint64_t> ChangeCounter() override {
    const std::lock_guard<std::mutex> lock(mu_);
    // data_version moves on commits by other connections; our own commits are counted here.
    Stmt s(db_, "PRAGMA data_version");
    if (s.Step() != SQLITE_ROW) return DbError("reading data_version");
    return (static_cast<std::uint64_t>(s.Int(0)) << 32) + own_commits_;
  }

  Result<std::optional<std::uint64_t>> GrantOperations(const KeyId& id, std::uint32_t version, std::uint64_t block,
                                                       std::uint64_t max) override {
    if (block == 0 || block > max || max > static_cast<std::uint64_t>(kMaxI64)) {
      return InvalidArgument("an operation grant needs 0 < block <= max < 2^63");
    }
    const std::lock_guard<std::mutex> lock(mu_);
    // One statement: SQLite runs it under the database's write lock, so another process's grant
    // is either wholly before or wholly after this one.
    Stmt up(db_,
            "UPDATE key_versions SET ops_leased = ops_leased + ?1 "
            "WHERE key_id = ?2 AND version = ?3 AND ops_leased <= ?4 - ?1 RETURNING ops_leased");
    up.Bind(1, static_cast<std::int64_t>(block)).Bind(2, ByteView(id)).Bind(3, std::int64_t{version});
    up.Bind(4, static_cast<std::int64_t>(max));
    const int rc = up.Step();
    if (rc == SQLITE_DONE) return std::optional<std::uint64_t>();
    if (rc != SQLITE_ROW) return DbError("recording key usage");
    if (!up.IsInt(0, static_cast<std::int64_t>(block), static_cast<std::int64_t>(max))) {
      return CorruptRow("key version", "ops_leased");
    }
    const auto granted = static_cast<std::uint64_t>(up.Int(0));
    if (up.Step() != SQLITE_DONE) return DbError("recording key usage");
    return std::optional<std::uint64_t>(granted);
  }

  Status AppendAudit(const AuditRow& audit) override {
    return Transaction([&]() -> Status { return InsertAudit(audit); });
  }

  Result<std::optional<KeyRow>> GetKey(const std::string& name) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, (std::string("SELECT ") + kKeyColumns + " FROM keys WHERE name = ?").c_str());
    s.Bind(1, name);
    return OneKey(s);
  }

  Result<std::optional<KeyRow>> GetKeyById(const KeyId& id) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, (std::string("SELECT ") + kKeyColumns + " FROM keys WHERE key_id = ?").c_str());
    s.Bind(1, ByteView(id));
    return OneKey(s);
  }

  Result<std::vector<KeyRow>> ListKeys() override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, (std::string("SELECT ") + kKeyColumns + " FROM keys ORDER BY name").c_str());
    std::vector<KeyRow> out;
    int rc = SQLITE_OK;
    while ((rc = s.Step()) == SQLITE_ROW) {
      QSAPI_ASSIGN_OR_RETURN(KeyRow row, ReadKey(s));
      out.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) return DbError("listing keys");
    return out;
  }

  Result<std::vector<VersionRow>> GetVersions(const KeyId& id) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_,
           (std::string("SELECT ") + kVersionColumns + " FROM key_versions WHERE key_id = ? ORDER BY version").c_str());
    s.Bind(1, ByteView(id));
    std::vector<VersionRow> out;
    int rc = SQLITE_OK;
    while ((rc = s.Step()) == SQLITE_ROW) {
      QSAPI_ASSIGN_OR_RETURN(VersionRow row, ReadVersion(s));
      out.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) return DbError("reading key versions");
    return out;
  }

  Result<std::optional<VersionRow>> GetVersion(const KeyId& id, std::uint32_t version) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_,
           (std::string("SELECT ") + kVersionColumns + " FROM key_versions WHERE key_id = ? AND version = ?").c_str());
    s.Bind(1, ByteView(id)).Bind(2, std::int64_t{version});
    const int rc = s.Step();
    if (rc == SQLITE_DONE) return std::optional<VersionRow>();
    if (rc != SQLITE_ROW) return DbError("reading a key version");
    QSAPI_ASSIGN_OR_RETURN(VersionRow row, ReadVersion(s));
    return std::optional<VersionRow>(std::move(row));
  }

  Result<std::vector<AuditEntry>> ReadAudit(std::size_t max) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_,
           "SELECT seq, at, actor, action, key_name, version, result, detail FROM audit ORDER BY seq DESC LIMIT ?");
    s.Bind(1, static_cast<std::int64_t>(max));
    std::vector<AuditEntry> out;
    int rc = SQLITE_OK;
    while ((rc = s.Step()) == SQLITE_ROW) {
      if (!s.IsInt(0, 1, kMaxI64) || !s.IsInt(1, 0, kMaxTime) || !s.IsInt(5, 0, kMaxU32)) {
        return CorruptRow("an audit trail entry", "seq, at or version");
      }
      AuditEntry e;
      e.seq = static_cast<std::uint64_t>(s.Int(0));
      e.at = std::chrono::system_clock::time_point(std::chrono::seconds(s.Int(1)));
      e.actor = s.Text(2);
      e.action = s.Text(3);
      e.key_name = s.Text(4);
      e.version = static_cast<std::uint32_t>(s.Int(5));
      e.result = s.Text(6);
      e.detail = s.Text(7);
      out.insert(out.begin(), std::move(e));
    }
    if (rc != SQLITE_DONE) return DbError("reading the audit trail");
    return out;
  }

  Status VerifyAuditChain() override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_,
           "SELECT seq, at, actor, action, key_name, version, result, detail, prev_hash, hash FROM audit ORDER BY seq");
    Bytes prev(32, 0);
    std::int64_t expected_seq = 1;
    int rc = SQLITE_OK;
    while ((rc = s.Step()) == SQLITE_ROW) {
      AuditRow a;
      const std::int64_t seq = s.Int(0);
      a.at = s.Int(1);
      a.actor = s.Text(2);
      a.action = s.Text(3);
      a.key_name = s.Text(4);
      a.version = static_cast<std::uint32_t>(s.Int(5));
      a.result = s.Text(6);
      a.detail = s.Text(7);
      if (seq != expected_seq) {
        return DataLoss("audit trail: entry " + std::to_string(expected_seq) + " is missing");
      }
      QSAPI_ASSIGN_OR_RETURN(Bytes h, AuditChainValue(prev, seq, a, KeyFor(seq)));
      if (s.Blob(8) != prev || s.Blob(9) != h) {
        return DataLoss("audit trail: entry " + std::to_string(seq) + " was altered (its " +
                        (KeyFor(seq).empty() ? "hash" : "MAC") + " does not chain)");
      }
      prev = std::move(h);
      ++expected_seq;
    }
    if (rc != SQLITE_DONE) return DbError("reading the audit trail");
    return OkStatus();
  }

  void UseAuditKey(SecretBytes key, std::uint64_t first_seq) override {
    const std::lock_guard<std::mutex> lock(mu_);
    audit_key_ = std::move(key);
    audit_first_seq_ = first_seq;
  }

  Result<std::pair<std::uint64_t, Bytes>> AuditHead() override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    const int rc = s.Step();
    if (rc == SQLITE_DONE) return std::pair<std::uint64_t, Bytes>{0, {}};
    if (rc != SQLITE_ROW) return DbError("reading the audit trail");
    if (!s.IsInt(0, 1, kMaxI64) || !s.IsBlob(1)) return CorruptRow("an audit trail entry", "seq or hash");
    return std::pair<std::uint64_t, Bytes>{static_cast<std::uint64_t>(s.Int(0)), s.Blob(1)};
  }

  Result<bool> HasAuditEntry(std::uint64_t seq, ByteView value) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, "SELECT hash FROM audit WHERE seq = ?");
    s.Bind(1, static_cast<std::int64_t>(seq));
    const int rc = s.Step();
    if (rc == SQLITE_DONE) return false;
    if (rc != SQLITE_ROW) return DbError("reading the audit trail");
    const Bytes h = s.Blob(0);
    return h.size() == value.size() && std::equal(h.begin(), h.end(), value.begin());
  }

  Status CreateRecord(const RecordRow& row, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      QSAPI_RETURN_IF_ERROR(InsertRecord(row));
      return InsertAudit(audit);
    });
  }

  Status DeleteRecord(const std::string& kind, const std::string& name, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      Stmt del(db_, "DELETE FROM records WHERE kind = ? AND name = ?");
      del.Bind(1, kind).Bind(2, name);
      if (del.Step() != SQLITE_DONE) return DbError("deleting a record");
      if (sqlite3_changes(db_) != 1) return NotFound("no " + kind + " named \"" + name + "\"");
      return InsertAudit(audit);
    });
  }

  Result<std::vector<RecordRow>> ListRecords(const std::string& kind) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, "SELECT name, value, updated FROM records WHERE kind = ? ORDER BY name");
    s.Bind(1, kind);
    std::vector<RecordRow> out;
    for (int rc = s.Step(); rc != SQLITE_DONE; rc = s.Step()) {
      if (rc != SQLITE_ROW) return DbError("reading records");
      RecordRow r;
      if (!ReadRecordRow(SqliteColumns{s}, kind, r))
        return CorruptRow("a " + kind + " record", "name, value or updated");
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<bool> RunExclusive(const std::string& /*job*/, const std::function<Status()>& body) override {
    QSAPI_RETURN_IF_ERROR(body());
    return true;
  }

  Result<std::int64_t> DatabaseNow() override { return UnixNow(); }

  Result<std::optional<ClusterRow>> GetCluster() override {
    const std::lock_guard<std::mutex> lock(mu_);
    return ClusterLocked();
  }

  Status CreateCluster(const ClusterRow& row, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      QSAPI_RETURN_IF_ERROR(InsertCluster(row));
      return InsertAudit(audit);
    });
  }

  Result<std::optional<TrailRow>> GetTrail(const std::string& trail) override {
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt s(db_, "SELECT wrapped, first_seq, head_seq, head_mac, updated FROM trails WHERE trail = ?");
    s.Bind(1, trail);
    const int rc = s.Step();
    if (rc == SQLITE_DONE) return std::optional<TrailRow>();
    if (rc != SQLITE_ROW) return DbError("reading a trail");
    if (!s.IsBlob(0) || !s.IsInt(1, 1, kMaxI64) || !s.IsInt(2, 0, kMaxI64) || !s.IsBlobOrNull(3) ||
        !s.IsInt(4, 0, kMaxTime)) {
      return CorruptRow("the row of trail \"" + trail + "\"", "wrapped, first_seq, head_seq, head_mac or updated");
    }
    TrailRow row{.trail = trail,
                 .wrapped = s.Blob(0),
                 .first_seq = static_cast<std::uint64_t>(s.Int(1)),
                 .head_seq = static_cast<std::uint64_t>(s.Int(2)),
                 .head_mac = s.Blob(3),
                 .updated = s.Int(4)};
    if ((row.head_seq == 0) != row.head_mac.empty()) {
      return CorruptRow("the row of trail \"" + trail + "\"", "head_seq or head_mac");
    }
    return std::optional<TrailRow>(std::move(row));
  }

  Result<std::uint64_t> CreateTrail(TrailRow row, const AuditRow& audit, const SecretBytes* own_key,
                                    const std::function<Result<Bytes>(std::uint64_t)>& wrap) override {
    std::uint64_t first = row.first_seq;
    SecretBytes saved_key;
    std::uint64_t saved_first = 0;
    bool swapped = false;
    Status st = Transaction([&]() -> Status {
      if (own_key != nullptr) {
        QSAPI_ASSIGN_OR_RETURN(first, NextSeqLocked());
        saved_key = std::move(audit_key_);
        saved_first = audit_first_seq_;
        audit_key_ = own_key->Clone();
        audit_first_seq_ = first;
        swapped = true;
      }
      QSAPI_ASSIGN_OR_RETURN(row.wrapped, wrap(first));
      Stmt ins(db_,
               "INSERT INTO trails (trail, wrapped, first_seq, head_seq, head_mac, updated) VALUES (?,?,?,0,NULL,?)");
      ins.Bind(1, row.trail).Bind(2, ByteView(row.wrapped)).Bind(3, static_cast<std::int64_t>(first));
      ins.Bind(4, row.updated);
      if (const int rc = ins.Step(); rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT) return AlreadyExists("trail \"" + row.trail + "\" exists");
        return DbError("creating a trail");
      }
      return InsertAudit(audit);
    });
    if (!st.ok() && swapped) {  // the entry was not written: the trail stays as it was
      const std::lock_guard<std::mutex> lock(mu_);
      audit_key_ = std::move(saved_key);
      audit_first_seq_ = saved_first;
    }
    if (!st.ok()) return st.error();
    return first;
  }

  Status SetTrailHead(const std::string& trail, std::uint64_t seq, ByteView mac) override {
    if (seq == 0 || mac.empty()) return InvalidArgument("a trail head needs a sequence number and a MAC");
    const std::lock_guard<std::mutex> lock(mu_);
    Stmt up(db_, "UPDATE trails SET head_seq = ?, head_mac = ?, updated = ? WHERE trail = ? AND head_seq <= ?");
    up.Bind(1, static_cast<std::int64_t>(seq)).Bind(2, mac).Bind(3, NowSeconds()).Bind(4, trail);
    up.Bind(5, static_cast<std::int64_t>(seq));
    if (up.Step() != SQLITE_DONE) return DbError("recording a trail head");
    if (sqlite3_changes(db_) != 1) {
      return FailedPrecondition("trail \"" + trail + "\" is unknown or already records a later head than entry " +
                                std::to_string(seq));
    }
    return OkStatus();
  }

  Status ReplaceTrail(const TrailRow& row, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      Stmt up(
          db_,
          "UPDATE trails SET wrapped = ?, first_seq = ?, head_seq = 0, head_mac = NULL, updated = ? WHERE trail = ?");
      up.Bind(1, ByteView(row.wrapped)).Bind(2, static_cast<std::int64_t>(row.first_seq)).Bind(3, row.updated);
      up.Bind(4, row.trail);
      if (up.Step() != SQLITE_DONE) return DbError("replacing a trail");
      if (sqlite3_changes(db_) != 1) return NotFound("no trail \"" + row.trail + "\"");
      return InsertAudit(audit);
    });
  }

  Result<StoreContents> ExportAll() override {
    const std::lock_guard<std::mutex> lock(mu_);
    QSAPI_RETURN_IF_ERROR(Exec("BEGIN"));  // one snapshot of every table
    Result<StoreContents> out = ExportLocked();
    (void)Exec("COMMIT");
    if (!out.ok()) return out.error();
    QSAPI_RETURN_IF_ERROR(VerifyStoredChain(out->audit, audit_key_.view(), audit_first_seq_));
    return out;
  }

  Status ImportAll(const StoreContents& in) override {
    return Transaction([&]() -> Status {
      Stmt count(db_,
                 "SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM key_versions) + "
                 "(SELECT count(*) FROM audit) + (SELECT count(*) FROM records) + (SELECT count(*) FROM trails) + "
                 "(SELECT count(*) FROM qsapi_meta WHERE name <> 'schema_version')");
      if (count.Step() != SQLITE_ROW) return DbError("counting rows");
      if (count.Int(0) != 0) return NotEmpty(count.Int(0));
      if (in.cluster) QSAPI_RETURN_IF_ERROR(InsertCluster(*in.cluster));
      for (const KeyRow& k : in.keys) QSAPI_RETURN_IF_ERROR(InsertKey(k));
      for (const VersionRow& v : in.versions) QSAPI_RETURN_IF_ERROR(InsertVersion(v));
      for (const RecordRow& r : in.records) QSAPI_RETURN_IF_ERROR(InsertRecord(r));
      for (const TrailRow& t : in.trails) {
        Stmt ins(db_,
                 "INSERT INTO trails (trail, wrapped, first_seq, head_seq, head_mac, updated) VALUES (?,?,?,?,?,?)");
        ins.Bind(1, t.trail).Bind(2, ByteView(t.wrapped)).Bind(3, static_cast<std::int64_t>(t.first_seq));
        ins.Bind(4, static_cast<std::int64_t>(t.head_seq)).Bind(5, ByteView(t.head_mac)).Bind(6, t.updated);
        if (ins.Step() != SQLITE_DONE) return DbError("writing a trail");
      }
      for (const StoredAuditEntry& e : in.audit) {
        Stmt ins(db_, (std::string("INSERT INTO audit (") + kAuditColumns + ") VALUES (?,?,?,?,?,?,?,?,?,?)").c_str());
        const AuditRow& a = e.row;
        ins.Bind(1, static_cast<std::int64_t>(e.seq)).Bind(2, a.at).Bind(3, a.actor).Bind(4, a.action);
        ins.Bind(5, a.key_name).Bind(6, std::int64_t{a.version}).Bind(7, a.result).Bind(8, a.detail);
        ins.Bind(9, ByteView(e.prev_hash)).Bind(10, ByteView(e.hash));
        if (ins.Step() != SQLITE_DONE) return DbError("writing the audit trail");
      }
      return OkStatus();
    });
  }

  Status MarkMoved(const std::string& where, const AuditRow& audit) override {
    return Transaction([&]() -> Status {
      Stmt ins(db_, "INSERT INTO qsapi_meta (name, value) VALUES (?, ?)");
      ins.Bind(1, std::string(kMovedMetaName)).Bind(2, where.substr(0, 256));
      if (ins.Step() != SQLITE_DONE) return DbError("marking the database as moved");
      return InsertAudit(audit);
    });
  }

 private:
  // KeyFor is the chain key of entry `seq` (empty: SHA-256). mu_ held.
  [[nodiscard]] ByteView KeyFor(std::int64_t seq) const {
    return !audit_key_.empty() && static_cast<std::uint64_t>(seq) >= audit_first_seq_ ? audit_key_.view() : ByteView();
  }

  static std::int64_t NowSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // NextSeqLocked is the seq the next audit entry gets. mu_ held.
  Result<std::uint64_t> NextSeqLocked() {
    Stmt last(db_, "SELECT seq FROM audit ORDER BY seq DESC LIMIT 1");
    const int rc = last.Step();
    if (rc == SQLITE_DONE) return std::uint64_t{1};
    if (rc != SQLITE_ROW) return DbError("reading the audit trail");
    return static_cast<std::uint64_t>(last.Int(0)) + 1;
  }

  Error DbError(const std::string& what) const {
    return Unavailable("keystore database " + path_ + ": " + what + " failed: " + sqlite3_errmsg(db_));
  }

  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "?";
      sqlite3_free(err);
      return Unavailable("keystore database " + path_ + ": " + msg);
    }
    return OkStatus();
  }

  template <typename F>
  Status Transaction(F body) {
    const std::lock_guard<std::mutex> lock(mu_);
    QSAPI_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status st = body();
    if (!st.ok()) {
      (void)Exec("ROLLBACK");
      return st;
    }
    FaultPoint("keystore.before_commit");
    ++own_commits_;
    return Exec("COMMIT");
  }

  Status InsertVersion(const VersionRow& v) {
    Stmt ins(db_,
             "INSERT INTO key_versions (key_id, version, state, created, ops_leased, public_key, wrapped) "
             "VALUES (?,?,?,?,?,?,?)");
    ins.Bind(1, ByteView(v.key_id)).Bind(2, std::int64_t{v.version}).Bind(3, v.state).Bind(4, v.created);
    ins.Bind(5, static_cast<std::int64_t>(v.ops_leased)).Bind(6, ByteView(v.public_key)).Bind(7, ByteView(v.wrapped));
    if (ins.Step() != SQLITE_DONE) return DbError("inserting a key version");
    return OkStatus();
  }

  Status InsertKey(const KeyRow& k) {
    Stmt ins(db_,
             "INSERT INTO keys (name, key_id, type, created, rotated, current_version, auto_rotate_seconds, "
             "max_operations, min_decryption_version, deletion_allowed) VALUES (?,?,?,?,?,?,?,?,?,?)");
    ins.Bind(1, k.name).Bind(2, ByteView(k.id)).Bind(3, k.type).Bind(4, k.created).Bind(5, k.rotated);
    ins.Bind(6, std::int64_t{k.current_version}).Bind(7, k.auto_rotate_seconds);
    ins.Bind(8, static_cast<std::int64_t>(k.max_operations)).Bind(9, std::int64_t{k.min_decryption_version});
    ins.Bind(10, std::int64_t{k.deletion_allowed ? 1 : 0});
    const int rc = ins.Step();
    if (rc == SQLITE_CONSTRAINT) return AlreadyExists("a key named \"" + k.name + "\" exists");
    if (rc != SQLITE_DONE) return DbError("inserting the key");
    return OkStatus();
  }

  Status InsertRecord(const RecordRow& row) {
    Stmt ins(db_, "INSERT INTO records (kind, name, value, updated) VALUES (?, ?, ?, ?)");
    ins.Bind(1, row.kind).Bind(2, row.name).Bind(3, ByteView(row.value)).Bind(4, row.updated);
    const int rc = ins.Step();
    if (rc == SQLITE_CONSTRAINT) return AlreadyExists("a " + row.kind + " named \"" + row.name + "\" exists");
    if (rc != SQLITE_DONE) return DbError("writing a record");
    return OkStatus();
  }

  Status InsertCluster(const ClusterRow& row) {
    const std::string values[3] = {row.cluster_id, qsapi::internal::HexEncode(row.canary), std::to_string(row.created)};
    for (int i = 0; i < 3; ++i) {
      Stmt ins(db_, "INSERT INTO qsapi_meta (name, value) VALUES (?, ?)");
      ins.Bind(1, std::string(kClusterMetaNames[i])).Bind(2, values[i]);
      const int rc = ins.Step();
      if (rc == SQLITE_CONSTRAINT) return AlreadyExists("the database already holds a cluster identity");
      if (rc != SQLITE_DONE) return DbError("writing the cluster identity");
    }
    return OkStatus();
  }

  // ClusterLocked reads the cluster identity. mu_ held.
  Result<std::optional<ClusterRow>> ClusterLocked() {
    std::string value[3];
    bool found[3] = {false, false, false};
    for (int i = 0; i < 3; ++i) {
      Stmt s(db_, "SELECT value FROM qsapi_meta WHERE name = ?");
      s.Bind(1, std::string(kClusterMetaNames[i]));
      const int rc = s.Step();
      if (rc == SQLITE_DONE) continue;
      if (rc != SQLITE_ROW) return DbError("reading the cluster identity");
      if (!s.IsText(0)) return CorruptRow("the cluster identity", kClusterMetaNames[i]);
      value[i] = s.Text(0);
      found[i] = true;
    }
    return ClusterFromMeta(value, found);
  }

  // ExportLocked reads every table inside the caller's transaction. mu_ held.
  Result<StoreContents> ExportLocked() {
    StoreContents out;
    QSAPI_ASSIGN_OR_RETURN(out.cluster, ClusterLocked());
    auto each = [&](const std::string& sql, const char* what, const auto& take) -> Status {
      Stmt s(db_, sql.c_str());
      int rc = SQLITE_OK;
      while ((rc = s.Step()) == SQLITE_ROW) QSAPI_RETURN_IF_ERROR(take(s));
      if (rc != SQLITE_DONE) return DbError(what);
      return OkStatus();
    };
    QSAPI_RETURN_IF_ERROR(each(std::string("SELECT ") + kKeyColumns + " FROM keys ORDER BY name", "reading keys",
                               [&](const Stmt& s) -> Status {
                                 QSAPI_ASSIGN_OR_RETURN(KeyRow k, ReadKey(s));
                                 out.keys.push_back(std::move(k));
                                 return OkStatus();
                               }));
    QSAPI_RETURN_IF_ERROR(each(std::string("SELECT ") + kVersionColumns + " FROM key_versions ORDER BY key_id, version",
                               "reading key versions", [&](const Stmt& s) -> Status {
                                 QSAPI_ASSIGN_OR_RETURN(VersionRow v, ReadVersion(s));
                                 out.versions.push_back(std::move(v));
                                 return OkStatus();
                               }));
    QSAPI_RETURN_IF_ERROR(each("SELECT kind, name, value, updated FROM records ORDER BY kind, name", "reading records",
                               [&](const Stmt& s) -> Status {
                                 RecordRow r;
                                 if (!ReadAnyRecordRow(SqliteColumns{s}, r)) {
                                   return CorruptRow("a record", "kind, name, value or updated");
                                 }
                                 out.records.push_back(std::move(r));
                                 return OkStatus();
                               }));
    QSAPI_RETURN_IF_ERROR(each(std::string("SELECT ") + kTrailColumns + " FROM trails ORDER BY trail", "reading trails",
                               [&](const Stmt& s) -> Status {
                                 QSAPI_ASSIGN_OR_RETURN(TrailRow t, ReadTrailRow(SqliteColumns{s}));
                                 out.trails.push_back(std::move(t));
                                 return OkStatus();
                               }));
    QSAPI_RETURN_IF_ERROR(each(std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY seq",
                               "reading the audit trail", [&](const Stmt& s) -> Status {
                                 QSAPI_ASSIGN_OR_RETURN(StoredAuditEntry e, ReadStoredAudit(SqliteColumns{s}));
                                 out.audit.push_back(std::move(e));
                                 return OkStatus();
                               }));
    return out;
  }

  static Error NotEmpty(std::int64_t rows) {
    return FailedPrecondition("the target database is not empty (" + std::to_string(rows) +
                              " rows): migrate only into a database that holds no keystore yet");
  }

  Status InsertAudit(const AuditRow& a) {
    Stmt last(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    std::int64_t seq = 1;
    Bytes prev(32, 0);
    const int rc = last.Step();
    if (rc == SQLITE_ROW) {
      seq = last.Int(0) + 1;
      prev = last.Blob(1);
    } else if (rc != SQLITE_DONE) {
      return DbError("reading the audit trail");
    }
    QSAPI_ASSIGN_OR_RETURN(Bytes h, AuditChainValue(prev, seq, a, KeyFor(seq)));
    Stmt ins(db_,
             "INSERT INTO audit (seq, at, actor, action, key_name, version, result, detail, prev_hash, hash) "
             "VALUES (?,?,?,?,?,?,?,?,?,?)");
    ins.Bind(1, seq).Bind(2, a.at).Bind(3, a.actor).Bind(4, a.action).Bind(5, a.key_name);
    ins.Bind(6, std::int64_t{a.version})
        .Bind(7, a.result)
        .Bind(8, a.detail)
        .Bind(9, ByteView(prev))
        .Bind(10, ByteView(h));
    if (ins.Step() != SQLITE_DONE) return DbError("appending to the audit trail");
    return OkStatus();
  }

  Result<std::optional<KeyRow>> OneKey(Stmt& s) {
    const int rc = s.Step();
    if (rc == SQLITE_DONE) return std::optional<KeyRow>();
    if (rc != SQLITE_ROW) return DbError("reading a key");
    QSAPI_ASSIGN_OR_RETURN(KeyRow row, ReadKey(s));
    return std::optional<KeyRow>(std::move(row));
  }

  std::mutex mu_;
  std::uint64_t own_commits_ = 0;               // guarded by mu_
  SecretBytes audit_key_;                       // guarded by mu_; empty: the trail is not keyed (yet)
  std::uint64_t audit_first_seq_ = UINT64_MAX;  // guarded by mu_
  sqlite3* db_;
  std::string path_;
};

}  // namespace

Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::filesystem::path& path) {
  // Create the file ourselves so that it (and the -wal and -shm files SQLite derives from it) is 0600.
  if (const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  } else {
    return Unavailable("cannot open keystore database " + path.string() + ": " + qsapi::internal::ErrnoText(errno));
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Unavailable("cannot open keystore database " + path.string() + ": " + msg);
  }
  auto store = std::make_unique<SqliteStore>(db, path.string());
  Status st = store->Init();
  if (!st.ok()) {
    if (st.error().message().find("file is not a database") != std::string::npos) {
      return DataLoss("keystore database " + path.string() + " is not a SQLite database");
    }
    return st.error();
  }
  return std::unique_ptr<MetadataStore>(std::move(store));
}

}  // namespace qsapi::keystore::internal
