// The PostgreSQL metadata store (several qsapid nodes on one database): libpq, a small pool of
// connections, every mutation one READ COMMITTED transaction, every read strict.
//
// Concurrency across nodes rests on the database, never on this process:
// - operation blocks: one UPDATE ... SET ops_leased = ops_leased + b WHERE ... AND ops_leased + b
//   <= max RETURNING (PostgreSQL re-checks the WHERE on the row it locked, so two sessions never
//   get overlapping blocks);
// - rotation: the key row is locked (SELECT ... FOR UPDATE) and its current version checked, so a
//   version is made current once;
// - the keystore's trail is one chain for the whole cluster: every entry is appended under the
//   lock of the one `audit_head` row, which also serves as the change counter other nodes poll.
//
// The chain is the SQLite store's (keystore/internal/audit_chain.h), so a trail moves between
// backends unchanged. Connection strings are libpq's; the password is passed apart (from a file or
// an environment variable) and is never in a message. Every connection sets TCP keepalives and
// tcp_user_timeout so that a dead database is noticed in seconds, and target_session_attrs=
// read-write so that a multi-host string finds the primary.
#include "keystore/internal/pg_store.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <libpq-fe.h>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "keystore/internal/audit_chain.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/store_rows.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {
namespace {

constexpr int kSchemaVersion = 1;

// One statement each: PQexec runs a multi-statement string as one implicit transaction.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS qsapi_meta (
  name  VARCHAR(64) PRIMARY KEY,
  value VARCHAR(256) NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
  name                   VARCHAR(64) PRIMARY KEY,
  key_id                 BYTEA NOT NULL UNIQUE,
  type                   VARCHAR(64) NOT NULL,
  created                BIGINT NOT NULL,
  rotated                BIGINT NOT NULL,
  current_version        BIGINT NOT NULL,
  auto_rotate_seconds    BIGINT NOT NULL,
  max_operations         BIGINT NOT NULL,
  min_decryption_version BIGINT NOT NULL,
  deletion_allowed       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS key_versions (
  key_id     BYTEA NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
  version    BIGINT NOT NULL,
  state      VARCHAR(16) NOT NULL,
  created    BIGINT NOT NULL,
  ops_leased BIGINT NOT NULL,
  public_key BYTEA,
  wrapped    BYTEA,
  PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS audit (
  seq       BIGINT PRIMARY KEY,
  at        BIGINT NOT NULL,
  actor     VARCHAR(128) NOT NULL,
  action    VARCHAR(64) NOT NULL,
  key_name  VARCHAR(64) NOT NULL,
  version   BIGINT NOT NULL,
  result    VARCHAR(64) NOT NULL,
  detail    VARCHAR(1024) NOT NULL,
  prev_hash BYTEA NOT NULL,
  hash      BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  BIGINT NOT NULL,
  hash BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
  kind    VARCHAR(32) NOT NULL,
  name    VARCHAR(128) NOT NULL,
  value   BYTEA NOT NULL,
  updated BIGINT NOT NULL,
  PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS trails (
  trail     VARCHAR(64) PRIMARY KEY,
  wrapped   BYTEA NOT NULL,
  first_seq BIGINT NOT NULL,
  head_seq  BIGINT NOT NULL,
  head_mac  BYTEA,
  updated   BIGINT NOT NULL
);
)sql";

constexpr std::int64_t kMaxTime = kMaxStoredTime;
constexpr std::int64_t kMaxU32 = kMaxStoredU32;
constexpr std::int64_t kMaxI64 = kMaxStoredI64;

// A parameter of a statement: text, or binary bytes (bytea), or NULL.
struct Param {
  std::string value;
  bool binary = false;
  bool null = false;
};
Param P(std::int64_t v) { return {.value = std::to_string(v)}; }
Param P(const std::string& v) { return {.value = v}; }
Param P(ByteView v) {
  if (v.empty()) {
    Param null;
    null.null = true;
    return null;
  }
  return {.value = std::string(reinterpret_cast<const char*>(v.data()), v.size()), .binary = true};  // NOLINT
}

// Result wraps a PGresult (text format).
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r) {}
  ~Rows() { PQclear(r_); }
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  Rows(Rows&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  Rows& operator=(Rows&&) = delete;

  [[nodiscard]] ExecStatusType status() const { return r_ == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r_); }
  [[nodiscard]] std::string Field(int field) const {
    const char* v = r_ == nullptr ? nullptr : PQresultErrorField(r_, field);
    return v == nullptr ? std::string() : std::string(v);
  }
  [[nodiscard]] int size() const { return PQntuples(r_); }
  [[nodiscard]] bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  [[nodiscard]] std::string Text(int row, int col) const { return {PQgetvalue(r_, row, col), Len(row, col)}; }
  // Int parses a BIGINT column; false when it is NULL or not in [min, max].
  [[nodiscard]] bool Int(int row, int col, std::int64_t min, std::int64_t max, std::int64_t& out) const {
    if (IsNull(row, col)) return false;
    const char* v = PQgetvalue(r_, row, col);
    const auto [end, err] = std::from_chars(v, v + Len(row, col), out);
    return err == std::errc() && end == v + Len(row, col) && out >= min && out <= max;
  }
  // Blob decodes a BYTEA column (NULL: empty).
  [[nodiscard]] Bytes Blob(int row, int col) const {
    if (IsNull(row, col)) return {};
    std::size_t n = 0;
    unsigned char* raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);  // NOLINT
    if (raw == nullptr) return {};
    Bytes out(raw, raw + n);
    PQfreemem(raw);
    return out;
  }

 private:
  [[nodiscard]] std::size_t Len(int row, int col) const { return static_cast<std::size_t>(PQgetlength(r_, row, col)); }
  PGresult* r_;
};

struct ConnDeleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

class PgStore final : public MetadataStore {
 public:
  explicit PgStore(PostgresStoreOptions o) : o_(std::move(o)) {}
  ~PgStore() override = default;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;
  PgStore(PgStore&&) = delete;
  PgStore& operator=(PgStore&&) = delete;

  Status Init() {
    Lease c = Acquire();
    if (!c.ok()) return c.error();
    QSAPI_RETURN_IF_ERROR(Exec(*c, "BEGIN"));
    Status st = [&]() -> Status {
      // One creator at a time: two nodes starting on an empty database.
      QSAPI_RETURN_IF_ERROR(Exec(*c, "SELECT pg_advisory_xact_lock(7140517)"));
      QSAPI_RETURN_IF_ERROR(Exec(*c, kSchema));
      QSAPI_RETURN_IF_ERROR(Exec(*c,
                                 "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, "
                                 "'\\x0000000000000000000000000000000000000000000000000000000000000000') "
                                 "ON CONFLICT (id) DO NOTHING"));
      QSAPI_ASSIGN_OR_RETURN(Rows v, Query(*c, "SELECT value FROM qsapi_meta WHERE name = 'schema_version'", {}));
      if (v.size() == 0) {
        return Run(*c, "INSERT INTO qsapi_meta (name, value) VALUES ('schema_version', $1)",
                   {P(std::to_string(kSchemaVersion))});
      }
      if (v.Text(0, 0) != std::to_string(kSchemaVersion)) {
        return FailedPrecondition("keystore database " + Where() + " has schema version " + v.Text(0, 0) +
                                  "; this build reads version " + std::to_string(kSchemaVersion));
      }
      QSAPI_ASSIGN_OR_RETURN(
          Rows moved, Query(*c, "SELECT value FROM qsapi_meta WHERE name = $1", {P(std::string(kMovedMetaName))}));
      if (moved.size() != 0) return MovedError(Where(), moved.Text(0, 0));
      return OkStatus();
    }();
    if (!st.ok()) {
      (void)Exec(*c, "ROLLBACK");
      return st;
    }
    return Exec(*c, "COMMIT");
  }

  Status CreateKey(const KeyRow& k, const VersionRow& v, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_RETURN_IF_ERROR(InsertKey(c, k));
      QSAPI_RETURN_IF_ERROR(InsertVersion(c, v));
      return InsertAudit(c, audit);
    });
  }

  Status AddVersion(const std::string& name, const VersionRow& next, const std::string& previous_state,
                    std::int64_t rotated_at, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      // The key row is locked: another node's rotation waits, then finds a newer current version.
      QSAPI_ASSIGN_OR_RETURN(Rows now,
                             Query(c, "SELECT current_version FROM keys WHERE name = $1 FOR UPDATE", {P(name)}));
      if (now.size() == 0) return NotFound("no key named \"" + name + "\"");
      std::int64_t current = 0;
      if (!now.Int(0, 0, 1, kMaxU32, current)) return CorruptRow("key \"" + name + "\"", "current_version");
      if (current != std::int64_t{next.version} - 1)
        return FailedPrecondition("the key was rotated concurrently; retry");
      QSAPI_RETURN_IF_ERROR(Run(c, "UPDATE key_versions SET state = $1 WHERE key_id = $2 AND version = $3",
                                {P(previous_state), P(ByteView(next.key_id)), P(current)}));
      QSAPI_RETURN_IF_ERROR(InsertVersion(c, next));
      FaultPoint("keystore.rotate.between_rows");
      QSAPI_RETURN_IF_ERROR(Run(c, "UPDATE keys SET current_version = $1, rotated = $2 WHERE name = $3",
                                {P(std::int64_t{next.version}), P(rotated_at), P(name)}));
      return InsertAudit(c, audit);
    });
  }

  Status SetVersionState(const KeyId& id, std::uint32_t version, const std::string& state, bool wipe,
                         const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_ASSIGN_OR_RETURN(
          Rows up,
          Query(c,
                wipe ? "UPDATE key_versions SET state = $1, wrapped = NULL WHERE key_id = $2 AND version = $3 "
                       "RETURNING version"
                     : "UPDATE key_versions SET state = $1 WHERE key_id = $2 AND version = $3 RETURNING version",
                {P(state), P(ByteView(id)), P(std::int64_t{version})}));
      if (up.size() != 1) return NotFound("no such key version");
      FaultPoint("keystore.destroy_version.before_commit");
      return InsertAudit(c, audit);
    });
  }

  Status DeleteKey(const std::string& name, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_RETURN_IF_ERROR(Run(c,
                                "UPDATE key_versions SET wrapped = NULL, state = 'destroyed' WHERE key_id = "
                                "(SELECT key_id FROM keys WHERE name = $1)",
                                {P(name)}));
      FaultPoint("keystore.destroy.between_rows");
      QSAPI_RETURN_IF_ERROR(
          Run(c, "DELETE FROM key_versions WHERE key_id = (SELECT key_id FROM keys WHERE name = $1)", {P(name)}));
      QSAPI_ASSIGN_OR_RETURN(Rows del, Query(c, "DELETE FROM keys WHERE name = $1 RETURNING name", {P(name)}));
      if (del.size() != 1) return NotFound("no key named \"" + name + "\"");
      return InsertAudit(c, audit);
    });
  }

  Status UpdatePolicy(const KeyRow& k, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_ASSIGN_OR_RETURN(
          Rows up,
          Query(c,
                "UPDATE keys SET auto_rotate_seconds = $1, max_operations = $2, min_decryption_version = $3, "
                "deletion_allowed = $4 WHERE name = $5 RETURNING name",
                {P(k.auto_rotate_seconds), P(static_cast<std::int64_t>(k.max_operations)),
                 P(std::int64_t{k.min_decryption_version}), P(std::int64_t{k.deletion_allowed ? 1 : 0}), P(k.name)}));
      if (up.size() != 1) return NotFound("no key named \"" + k.name + "\"");
      return InsertAudit(c, audit);
    });
  }

  Result<std::optional<std::uint64_t>> GrantOperations(const KeyId& id, std::uint32_t version, std::uint64_t block,
                                                       std::uint64_t max) override {
    if (block == 0 || block > max || max > static_cast<std::uint64_t>(kMaxI64)) {
      return InvalidArgument("an operation grant needs 0 < block <= max < 2^63");
    }
    QSAPI_ASSIGN_OR_RETURN(Rows r,
                           QueryOnce("UPDATE key_versions SET ops_leased = ops_leased + $1::bigint WHERE key_id = $2 "
                                     "AND version = $3::bigint AND ops_leased <= $4::bigint - $1::bigint "
                                     "RETURNING ops_leased",
                                     {P(static_cast<std::int64_t>(block)), P(ByteView(id)), P(std::int64_t{version}),
                                      P(static_cast<std::int64_t>(max))}));
    if (r.size() == 0) return std::optional<std::uint64_t>();
    std::int64_t granted = 0;
    if (!r.Int(0, 0, static_cast<std::int64_t>(block), static_cast<std::int64_t>(max), granted)) {
      return CorruptRow("key version", "ops_leased");
    }
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(granted));
  }

  Status AppendAudit(const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status { return InsertAudit(c, audit); });
  }

  Result<std::optional<KeyRow>> GetKey(const std::string& name) override {
    return OneKey(std::string("SELECT ") + kKeyColumns + " FROM keys WHERE name = $1", {P(name)});
  }
  Result<std::optional<KeyRow>> GetKeyById(const KeyId& id) override {
    return OneKey(std::string("SELECT ") + kKeyColumns + " FROM keys WHERE key_id = $1", {P(ByteView(id))});
  }

  Result<std::vector<KeyRow>> ListKeys() override {
    QSAPI_ASSIGN_OR_RETURN(Rows r, QueryOnce(std::string("SELECT ") + kKeyColumns + " FROM keys ORDER BY name", {}));
    std::vector<KeyRow> out;
    for (int i = 0; i < r.size(); ++i) {
      QSAPI_ASSIGN_OR_RETURN(KeyRow row, ReadKey(r, i));
      out.push_back(std::move(row));
    }
    return out;
  }

  Result<std::vector<VersionRow>> GetVersions(const KeyId& id) override {
    QSAPI_ASSIGN_OR_RETURN(Rows r, QueryOnce(std::string("SELECT ") + kVersionColumns +
                                                 " FROM key_versions WHERE key_id = $1 ORDER BY version",
                                             {P(ByteView(id))}));
    std::vector<VersionRow> out;
    for (int i = 0; i < r.size(); ++i) {
      QSAPI_ASSIGN_OR_RETURN(VersionRow row, ReadVersion(r, i));
      out.push_back(std::move(row));
    }
    return out;
  }

  Result<std::optional<VersionRow>> GetVersion(const KeyId& id, std::uint32_t version) override {
    QSAPI_ASSIGN_OR_RETURN(Rows r, QueryOnce(std::string("SELECT ") + kVersionColumns +
                                                 " FROM key_versions WHERE key_id = $1 AND version = $2",
                                             {P(ByteView(id)), P(std::int64_t{version})}));
    if (r.size() == 0) return std::optional<VersionRow>();
    QSAPI_ASSIGN_OR_RETURN(VersionRow row, ReadVersion(r, 0));
    return std::optional<VersionRow>(std::move(row));
  }

  // The change counter is the trail's head: every mutation of keys, versions, policies and trails
  // appends an entry in its transaction, on any node.
  // It carries the database's clock too (Now), at no extra round trip.
  Result<std::uint64_t> ChangeCounter() override {
    QSAPI_ASSIGN_OR_RETURN(
        Rows r,
        QueryOnce("SELECT seq, floor(extract(epoch FROM clock_timestamp()))::bigint FROM audit_head WHERE id = 1", {}));
    std::int64_t seq = 0;
    std::int64_t now = 0;
    if (r.size() != 1 || !r.Int(0, 0, 0, kMaxI64, seq)) return CorruptRow("the audit head", "seq");
    if (!r.Int(0, 1, 0, kMaxTime, now)) return CorruptRow("the database's clock", "now");
    clock_offset_.store(now - UnixNow(), std::memory_order_relaxed);
    clock_known_.store(true, std::memory_order_release);
    return static_cast<std::uint64_t>(seq);
  }

  std::int64_t Now() override {
    if (!clock_known_.load(std::memory_order_acquire)) (void)DatabaseNow();  // sets the offset, or stays local
    return UnixNow() + clock_offset_.load(std::memory_order_relaxed);
  }

  Result<std::vector<AuditEntry>> ReadAudit(std::size_t max) override {
    QSAPI_ASSIGN_OR_RETURN(Rows r,
                           QueryOnce("SELECT seq, at, actor, action, key_name, version, result, detail FROM audit "
                                     "ORDER BY seq DESC LIMIT $1",
                                     {P(static_cast<std::int64_t>(std::min<std::size_t>(max, kMaxI64)))}));
    std::vector<AuditEntry> out;
    for (int i = r.size() - 1; i >= 0; --i) {
      std::int64_t seq = 0;
      std::int64_t at = 0;
      std::int64_t version = 0;
      if (!r.Int(i, 0, 1, kMaxI64, seq) || !r.Int(i, 1, 0, kMaxTime, at) || !r.Int(i, 5, 0, kMaxU32, version)) {
        return CorruptRow("an audit trail entry", "seq, at or version");
      }
      AuditEntry e;
      e.seq = static_cast<std::uint64_t>(seq);
      e.at = std::chrono::system_clock::time_point(std::chrono::seconds(at));
      e.actor = r.Text(i, 2);
      e.action = r.Text(i, 3);
      e.key_name = r.Text(i, 4);
      e.version = static_cast<std::uint32_t>(version);
      e.result = r.Text(i, 6);
      e.detail = r.Text(i, 7);
      out.push_back(std::move(e));
    }
    return out;
  }

  Status VerifyAuditChain() override {
    Lease c = Acquire();
    if (!c.ok()) return c.error();
    // Pages of entries, so that a long trail is never read into memory at once.
    Bytes prev(kAuditChainSize, 0);
    std::int64_t expected = 1;
    for (;;) {
      QSAPI_ASSIGN_OR_RETURN(Rows r,
                             Query(*c,
                                   "SELECT seq, at, actor, action, key_name, version, result, detail, prev_hash, hash "
                                   "FROM audit WHERE seq >= $1 ORDER BY seq LIMIT 1000",
                                   {P(expected)}));
      if (r.size() == 0) break;
      for (int i = 0; i < r.size(); ++i) {
        AuditRow a;
        std::int64_t seq = 0;
        std::int64_t version = 0;
        if (!r.Int(i, 0, 1, kMaxI64, seq) || !r.Int(i, 1, 0, kMaxTime, a.at) || !r.Int(i, 5, 0, kMaxU32, version)) {
          return CorruptRow("an audit trail entry", "seq, at or version");
        }
        if (seq != expected) return DataLoss("audit trail: entry " + std::to_string(expected) + " is missing");
        a.actor = r.Text(i, 2);
        a.action = r.Text(i, 3);
        a.key_name = r.Text(i, 4);
        a.version = static_cast<std::uint32_t>(version);
        a.result = r.Text(i, 6);
        a.detail = r.Text(i, 7);
        const SecretBytes key = KeyFor(seq);
        QSAPI_ASSIGN_OR_RETURN(Bytes h, AuditChainValue(prev, seq, a, key.view()));
        if (r.Blob(i, 8) != prev || r.Blob(i, 9) != h) {
          return DataLoss("audit trail: entry " + std::to_string(seq) + " was altered (its " +
                          (key.empty() ? "hash" : "MAC") + " does not chain)");
        }
        prev = std::move(h);
        ++expected;
      }
    }
    // The head row must name the last entry: a trail cut at its end no longer matches it.
    QSAPI_ASSIGN_OR_RETURN(Rows head, Query(*c, "SELECT seq, hash FROM audit_head WHERE id = 1", {}));
    std::int64_t head_seq = 0;
    if (head.size() != 1 || !head.Int(0, 0, 0, kMaxI64, head_seq)) return CorruptRow("the audit head", "seq");
    if (head_seq != expected - 1 || (head_seq > 0 && head.Blob(0, 1) != prev)) {
      return DataLoss("audit trail: the head row names entry " + std::to_string(head_seq) + ", but the trail ends at " +
                      std::to_string(expected - 1));
    }
    return OkStatus();
  }

  void UseAuditKey(SecretBytes key, std::uint64_t first_seq) override {
    const std::lock_guard<std::mutex> lock(key_mu_);
    audit_key_ = std::move(key);
    audit_first_seq_ = first_seq;
  }

  Result<std::pair<std::uint64_t, Bytes>> AuditHead() override {
    QSAPI_ASSIGN_OR_RETURN(Rows r, QueryOnce("SELECT seq, hash FROM audit_head WHERE id = 1", {}));
    std::int64_t seq = 0;
    if (r.size() != 1 || !r.Int(0, 0, 0, kMaxI64, seq)) return CorruptRow("the audit head", "seq");
    if (seq == 0) return std::pair<std::uint64_t, Bytes>{0, {}};
    return std::pair<std::uint64_t, Bytes>{static_cast<std::uint64_t>(seq), r.Blob(0, 1)};
  }

  Result<bool> HasAuditEntry(std::uint64_t seq, ByteView value) override {
    QSAPI_ASSIGN_OR_RETURN(Rows r,
                           QueryOnce("SELECT hash FROM audit WHERE seq = $1", {P(static_cast<std::int64_t>(seq))}));
    if (r.size() == 0) return false;
    const Bytes h = r.Blob(0, 0);
    return h.size() == value.size() && std::equal(h.begin(), h.end(), value.begin());
  }

  Status CreateRecord(const RecordRow& row, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_RETURN_IF_ERROR(InsertRecord(c, row));
      return InsertAudit(c, audit);
    });
  }

  Status DeleteRecord(const std::string& kind, const std::string& name, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_ASSIGN_OR_RETURN(
          Rows del, Query(c, "DELETE FROM records WHERE kind = $1 AND name = $2 RETURNING name", {P(kind), P(name)}));
      if (del.size() != 1) return NotFound("no " + kind + " named \"" + name + "\"");
      return InsertAudit(c, audit);
    });
  }

  Result<std::vector<RecordRow>> ListRecords(const std::string& kind) override {
    QSAPI_ASSIGN_OR_RETURN(
        Rows r, QueryOnce("SELECT name, value, updated FROM records WHERE kind = $1 ORDER BY name", {P(kind)}));
    std::vector<RecordRow> out;
    for (int row = 0; row < r.size(); ++row) {
      RecordRow rec;
      if (!ReadRecordRow(PgColumns{r, row}, kind, rec))
        return CorruptRow("a " + kind + " record", "name, value or updated");
      out.push_back(std::move(rec));
    }
    return out;
  }

  Result<bool> RunExclusive(const std::string& job, const std::function<Status()>& body) override {
    // A connection of its own: the body uses the pool (which may have one connection only).
    QSAPI_ASSIGN_OR_RETURN(ConnPtr c, Connect());
    QSAPI_RETURN_IF_ERROR(Exec(c.get(), "BEGIN"));
    QSAPI_RETURN_IF_ERROR(Exec(c.get(), "SET LOCAL idle_in_transaction_session_timeout = '15s'"));
    QSAPI_ASSIGN_OR_RETURN(Rows got,
                           Query(c.get(), "SELECT pg_try_advisory_xact_lock(7140518, hashtext($1))", {P(job)}));
    if (got.size() != 1 || got.IsNull(0, 0)) return Unavailable("keystore database " + Where() + ": no lock answer");
    if (got.Text(0, 0) != "t") {
      (void)Exec(c.get(), "ROLLBACK");
      return false;  // another node runs it now
    }
    const Status ran = body();
    const Status released = Exec(c.get(), "COMMIT");  // releases the lock
    QSAPI_RETURN_IF_ERROR(ran);
    QSAPI_RETURN_IF_ERROR(released);
    return true;
  }

  Result<std::int64_t> DatabaseNow() override {
    QSAPI_ASSIGN_OR_RETURN(Rows r, QueryOnce("SELECT floor(extract(epoch FROM clock_timestamp()))::bigint", {}));
    std::int64_t now = 0;
    if (r.size() != 1 || !r.Int(0, 0, 0, kMaxTime, now)) return CorruptRow("the database's clock", "now");
    clock_offset_.store(now - UnixNow(), std::memory_order_relaxed);
    clock_known_.store(true, std::memory_order_release);
    return now;
  }

  Result<std::optional<ClusterRow>> GetCluster() override {
    Lease c = Acquire();
    if (!c.ok()) return c.error();
    return ClusterOn(*c);
  }

  // ClusterOn reads the cluster identity on connection `c` (inside its transaction, if any).
  Result<std::optional<ClusterRow>> ClusterOn(PGconn* c) {
    QSAPI_ASSIGN_OR_RETURN(Rows r, Query(c, "SELECT name, value FROM qsapi_meta WHERE name IN ($1, $2, $3)",
                                         {P(std::string(kClusterMetaNames[0])), P(std::string(kClusterMetaNames[1])),
                                          P(std::string(kClusterMetaNames[2]))}));
    std::string value[3];
    bool found[3] = {false, false, false};
    for (int row = 0; row < r.size(); ++row) {
      for (int i = 0; i < 3; ++i) {
        if (!r.IsNull(row, 0) && r.Text(row, 0) == kClusterMetaNames[i]) {
          if (r.IsNull(row, 1)) return CorruptRow("the cluster identity", kClusterMetaNames[i]);
          value[i] = r.Text(row, 1);
          found[i] = true;
        }
      }
    }
    return ClusterFromMeta(value, found);
  }

  Status CreateCluster(const ClusterRow& row, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_RETURN_IF_ERROR(InsertCluster(c, row));
      return InsertAudit(c, audit);
    });
  }

  Result<std::optional<TrailRow>> GetTrail(const std::string& trail) override {
    QSAPI_ASSIGN_OR_RETURN(
        Rows r,
        QueryOnce("SELECT wrapped, first_seq, head_seq, head_mac, updated FROM trails WHERE trail = $1", {P(trail)}));
    if (r.size() == 0) return std::optional<TrailRow>();
    std::int64_t first = 0;
    std::int64_t head = 0;
    std::int64_t updated = 0;
    if (r.IsNull(0, 0) || !r.Int(0, 1, 1, kMaxI64, first) || !r.Int(0, 2, 0, kMaxI64, head) ||
        !r.Int(0, 4, 0, kMaxTime, updated)) {
      return CorruptRow("the row of trail \"" + trail + "\"", "wrapped, first_seq, head_seq, head_mac or updated");
    }
    TrailRow row{.trail = trail,
                 .wrapped = r.Blob(0, 0),
                 .first_seq = static_cast<std::uint64_t>(first),
                 .head_seq = static_cast<std::uint64_t>(head),
                 .head_mac = r.Blob(0, 3),
                 .updated = updated};
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
    Status st = Transaction([&](PGconn* c) -> Status {
      if (own_key != nullptr) {
        // The next entry's seq, with the head locked so that no other node takes it first.
        QSAPI_ASSIGN_OR_RETURN(Rows head, Query(c, "SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE", {}));
        std::int64_t seq = 0;
        if (head.size() != 1 || !head.Int(0, 0, 0, kMaxI64 - 1, seq)) return CorruptRow("the audit head", "seq");
        first = static_cast<std::uint64_t>(seq) + 1;
        const std::lock_guard<std::mutex> lock(key_mu_);
        saved_key = std::move(audit_key_);
        saved_first = audit_first_seq_;
        audit_key_ = own_key->Clone();
        audit_first_seq_ = first;
        swapped = true;
      }
      QSAPI_ASSIGN_OR_RETURN(row.wrapped, wrap(first));
      Result<Rows> ins =
          Query(c,
                "INSERT INTO trails (trail, wrapped, first_seq, head_seq, head_mac, updated) "
                "VALUES ($1,$2,$3,0,NULL,$4)",
                {P(row.trail), P(ByteView(row.wrapped)), P(static_cast<std::int64_t>(first)), P(row.updated)});
      if (!ins.ok()) {
        if (ins.error().code() == ErrorCode::kAlreadyExists) return AlreadyExists("trail \"" + row.trail + "\" exists");
        return ins.error();
      }
      return InsertAudit(c, audit);
    });
    if (!st.ok() && swapped) {  // the entry was not written: the trail stays as it was
      const std::lock_guard<std::mutex> lock(key_mu_);
      audit_key_ = std::move(saved_key);
      audit_first_seq_ = saved_first;
    }
    if (!st.ok()) return st.error();
    return first;
  }

  Status SetTrailHead(const std::string& trail, std::uint64_t seq, ByteView mac) override {
    if (seq == 0 || mac.empty()) return InvalidArgument("a trail head needs a sequence number and a MAC");
    QSAPI_ASSIGN_OR_RETURN(Rows up, QueryOnce("UPDATE trails SET head_seq = $1, head_mac = $2, updated = $3 "
                                              "WHERE trail = $4 AND head_seq <= $1 RETURNING trail",
                                              {P(static_cast<std::int64_t>(seq)), P(mac), P(UnixNow()), P(trail)}));
    if (up.size() != 1) {
      return FailedPrecondition("trail \"" + trail + "\" is unknown or already records a later head than entry " +
                                std::to_string(seq));
    }
    return OkStatus();
  }

  Status ReplaceTrail(const TrailRow& row, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_ASSIGN_OR_RETURN(
          Rows up,
          Query(c,
                "UPDATE trails SET wrapped = $1, first_seq = $2, head_seq = 0, head_mac = NULL, "
                "updated = $3 WHERE trail = $4 RETURNING trail",
                {P(ByteView(row.wrapped)), P(static_cast<std::int64_t>(row.first_seq)), P(row.updated), P(row.trail)}));
      if (up.size() != 1) return NotFound("no trail \"" + row.trail + "\"");
      return InsertAudit(c, audit);
    });
  }

  Result<StoreContents> ExportAll() override {
    Lease c = Acquire();
    if (!c.ok()) return c.error();
    // One snapshot of every table.
    QSAPI_RETURN_IF_ERROR(Exec(*c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    Result<StoreContents> out = ExportOn(*c);
    (void)Exec(*c, "COMMIT");
    if (!out.ok()) return out.error();
    SecretBytes key;
    std::uint64_t first = 0;
    {
      const std::lock_guard<std::mutex> lock(key_mu_);
      key = audit_key_.Clone();
      first = audit_first_seq_;
    }
    QSAPI_RETURN_IF_ERROR(VerifyStoredChain(out->audit, key.view(), first));
    return out;
  }

  Status ImportAll(const StoreContents& in) override {
    return Transaction([&](PGconn* c) -> Status {
      // Two imports at once: the second waits here, then finds rows.
      QSAPI_RETURN_IF_ERROR(Exec(c, "SELECT pg_advisory_xact_lock(7140517)"));
      QSAPI_ASSIGN_OR_RETURN(
          Rows count,
          Query(c,
                "SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM key_versions) + "
                "(SELECT count(*) FROM audit) + (SELECT count(*) FROM records) + (SELECT count(*) FROM trails) + "
                "(SELECT count(*) FROM qsapi_meta WHERE name <> 'schema_version')",
                {}));
      std::int64_t rows = -1;
      if (count.size() != 1 || !count.Int(0, 0, 0, kMaxI64, rows)) return CorruptRow("the row count", "count");
      if (rows != 0) {
        return FailedPrecondition("the target database " + Where() + " is not empty (" + std::to_string(rows) +
                                  " rows): migrate only into a database that holds no keystore yet");
      }
      if (in.cluster) QSAPI_RETURN_IF_ERROR(InsertCluster(c, *in.cluster));
      for (const KeyRow& k : in.keys) QSAPI_RETURN_IF_ERROR(InsertKey(c, k));
      for (const VersionRow& v : in.versions) QSAPI_RETURN_IF_ERROR(InsertVersion(c, v));
      for (const RecordRow& r : in.records) QSAPI_RETURN_IF_ERROR(InsertRecord(c, r));
      for (const TrailRow& t : in.trails) {
        QSAPI_RETURN_IF_ERROR(Run(c,
                                  "INSERT INTO trails (trail, wrapped, first_seq, head_seq, head_mac, updated) "
                                  "VALUES ($1,$2,$3,$4,$5,$6)",
                                  {P(t.trail), P(ByteView(t.wrapped)), P(static_cast<std::int64_t>(t.first_seq)),
                                   P(static_cast<std::int64_t>(t.head_seq)), P(ByteView(t.head_mac)), P(t.updated)}));
      }
      for (const StoredAuditEntry& e : in.audit) {
        const AuditRow& a = e.row;
        QSAPI_RETURN_IF_ERROR(
            Run(c, std::string("INSERT INTO audit (") + kAuditColumns + ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                {P(static_cast<std::int64_t>(e.seq)), P(a.at), P(a.actor), P(a.action), P(a.key_name),
                 P(std::int64_t{a.version}), P(a.result), P(a.detail), P(ByteView(e.prev_hash)), P(ByteView(e.hash))}));
      }
      if (!in.audit.empty()) {
        QSAPI_RETURN_IF_ERROR(
            Run(c, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                {P(static_cast<std::int64_t>(in.audit.back().seq)), P(ByteView(in.audit.back().hash))}));
      }
      return OkStatus();
    });
  }

  Status MarkMoved(const std::string& where, const AuditRow& audit) override {
    return Transaction([&](PGconn* c) -> Status {
      QSAPI_RETURN_IF_ERROR(Run(c, "INSERT INTO qsapi_meta (name, value) VALUES ($1, $2)",
                                {P(std::string(kMovedMetaName)), P(where.substr(0, 256))}));
      return InsertAudit(c, audit);
    });
  }

 private:
  // Lease is a connection taken from the pool, given back when it goes.
  class Lease {
   public:
    Lease(PgStore* store, PGconn* c) : store_(store), c_(c) {}
    explicit Lease(Error e) : error_(std::move(e)) {}
    ~Lease() {
      if (c_ != nullptr) store_->Release(c_);
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&& o) noexcept : store_(o.store_), c_(std::exchange(o.c_, nullptr)), error_(std::move(o.error_)) {}
    Lease& operator=(Lease&&) = delete;
    [[nodiscard]] bool ok() const { return c_ != nullptr; }
    [[nodiscard]] const Error& error() const { return error_; }
    PGconn* operator*() const { return c_; }

   private:
    PgStore* store_ = nullptr;
    PGconn* c_ = nullptr;
    Error error_{ErrorCode::kInternal, ""};
  };

  [[nodiscard]] std::string Where() const { return o_.display.empty() ? "(PostgreSQL)" : o_.display; }

  Lease Acquire() {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return !idle_.empty() || open_ < o_.pool_size; });
    if (!idle_.empty()) {
      PGconn* c = idle_.back().release();
      idle_.pop_back();
      if (PQstatus(c) == CONNECTION_OK) return {this, c};
      PQreset(c);  // a broken connection (the server restarted): once more, then the error
      if (PQstatus(c) == CONNECTION_OK) return {this, c};
      std::string why = PQerrorMessage(c);
      PQfinish(c);
      --open_;
      pool_cv_.notify_one();
      return Lease(Unavailable("keystore database " + Where() + ": the connection was lost: " + Clean(why)));
    }
    ++open_;
    lock.unlock();
    Result<ConnPtr> c = Connect();
    if (!c.ok()) {
      lock.lock();
      --open_;
      pool_cv_.notify_one();
      return Lease(c.error());
    }
    return {this, c->release()};
  }

  void Release(PGconn* c) {
    const std::lock_guard lock(pool_mu_);
    if (PQtransactionStatus(c) != PQTRANS_IDLE) {  // a transaction left open: never reuse it
      PQfinish(c);
      --open_;
    } else {
      idle_.emplace_back(c);
    }
    pool_cv_.notify_one();
  }

  Result<ConnPtr> Connect() {
    // Our defaults first; the operator's connection string may override them; the password last.
    std::vector<const char*> keys = {"connect_timeout",      "keepalives",       "keepalives_idle",
                                     "keepalives_interval",  "keepalives_count", "tcp_user_timeout",
                                     "target_session_attrs", "application_name", "dbname"};
    const std::string timeout = std::to_string(std::max<std::int64_t>(1, o_.connect_timeout.count()));
    std::vector<const char*> values = {timeout.c_str(),    "1", "5", "2", "3", "10000", "read-write", "qsapid",
                                       o_.conninfo.c_str()};
    SecretBytes password(o_.password.size() + 1);  // NUL-terminated for libpq, in secret memory
    std::copy(o_.password.view().begin(), o_.password.view().end(), password.data());
    password.data()[o_.password.size()] = 0;
    if (!o_.password.empty()) {
      keys.push_back("password");
      values.push_back(
          reinterpret_cast<const char*>(password.data()));  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    ConnPtr c(PQconnectdbParams(keys.data(), values.data(), 1));
    if (c == nullptr) return Unavailable("keystore database " + Where() + ": out of memory");
    if (PQstatus(c.get()) != CONNECTION_OK) {
      return Unavailable("keystore database " + Where() + ": cannot connect: " + Clean(PQerrorMessage(c.get())));
    }
    // The server's notices ("relation ... already exists, skipping" at every start) are not
    // errors; libpq would print them on stderr.
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    return c;
  }

  // Clean keeps one line of libpq's message (it never holds the password).
  static std::string Clean(std::string m) {
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    std::replace(m.begin(), m.end(), '\n', ' ');
    return m;
  }

  Status Exec(PGconn* c, const char* sql) {
    Result<Rows> r = Check(c, Rows(PQexec(c, sql)));
    if (!r.ok()) return r.error();
    return OkStatus();
  }

  Status Run(PGconn* c, const std::string& sql, const std::vector<Param>& params) {
    Result<Rows> r = Query(c, sql, params);
    if (!r.ok()) return r.error();
    return OkStatus();
  }

  // QueryOnce runs one statement on a connection of the pool (a read, or one atomic update).
  Result<Rows> QueryOnce(const std::string& sql, const std::vector<Param>& params) {
    Lease c = Acquire();
    if (!c.ok()) return c.error();
    return Query(*c, sql, params);
  }

  Result<Rows> Query(PGconn* c, const std::string& sql, const std::vector<Param>& params) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const Param& p : params) {
      values.push_back(p.null ? nullptr : p.value.data());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.binary ? 1 : 0);
    }
    Rows r(PQexecParams(c, sql.c_str(), static_cast<int>(params.size()), nullptr, values.data(), lengths.data(),
                        formats.data(), 0));
    return Check(c, std::move(r));
  }

  // Check turns a failed statement into an error: ALREADY_EXISTS for a unique violation (SQLSTATE
  // 23505: the caller names what exists), else UNAVAILABLE (the database, the connection or a
  // conflict to retry), naming the database and PostgreSQL's primary message, never row data.
  Result<Rows> Check(PGconn* c, Rows r) const {
    const ExecStatusType st = r.status();
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    const std::string sqlstate = r.Field(PG_DIAG_SQLSTATE);
    std::string why = r.Field(PG_DIAG_MESSAGE_PRIMARY);
    if (why.empty()) why = Clean(PQerrorMessage(c));
    if (sqlstate == "23505") return AlreadyExists("keystore database " + Where() + ": " + why);
    return Unavailable("keystore database " + Where() + ": " + why +
                       (sqlstate.empty() ? std::string() : " (SQLSTATE " + sqlstate + ")"));
  }

  template <typename F>
  Status Transaction(F body) {
    Lease c = Acquire();
    if (!c.ok()) return c.error();
    QSAPI_RETURN_IF_ERROR(Exec(*c, "BEGIN"));
    Status st = body(*c);
    if (!st.ok()) {
      (void)Exec(*c, "ROLLBACK");
      return st;
    }
    FaultPoint("keystore.before_commit");
    return Exec(*c, "COMMIT");
  }

  Status InsertVersion(PGconn* c, const VersionRow& v) {
    return Run(c,
               "INSERT INTO key_versions (key_id, version, state, created, ops_leased, public_key, wrapped) "
               "VALUES ($1,$2,$3,$4,$5,$6,$7)",
               {P(ByteView(v.key_id)), P(std::int64_t{v.version}), P(v.state), P(v.created),
                P(static_cast<std::int64_t>(v.ops_leased)), P(ByteView(v.public_key)), P(ByteView(v.wrapped))});
  }

  Status InsertKey(PGconn* c, const KeyRow& k) {
    Result<Rows> ins =
        Query(c,
              "INSERT INTO keys (name, key_id, type, created, rotated, current_version, auto_rotate_seconds, "
              "max_operations, min_decryption_version, deletion_allowed) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
              {P(k.name), P(ByteView(k.id)), P(k.type), P(k.created), P(k.rotated), P(std::int64_t{k.current_version}),
               P(k.auto_rotate_seconds), P(static_cast<std::int64_t>(k.max_operations)),
               P(std::int64_t{k.min_decryption_version}), P(std::int64_t{k.deletion_allowed ? 1 : 0})});
    if (!ins.ok()) {
      if (ins.error().code() == ErrorCode::kAlreadyExists)
        return AlreadyExists("a key named \"" + k.name + "\" exists");
      return ins.error();
    }
    return OkStatus();
  }

  Status InsertRecord(PGconn* c, const RecordRow& row) {
    Result<Rows> ins = Query(c, "INSERT INTO records (kind, name, value, updated) VALUES ($1, $2, $3, $4)",
                             {P(row.kind), P(row.name), P(ByteView(row.value)), P(row.updated)});
    if (!ins.ok()) {
      if (ins.error().code() == ErrorCode::kAlreadyExists) {
        return AlreadyExists("a " + row.kind + " named \"" + row.name + "\" exists");
      }
      return ins.error();
    }
    return OkStatus();
  }

  Status InsertCluster(PGconn* c, const ClusterRow& row) {
    const std::string values[3] = {row.cluster_id, qsapi::internal::HexEncode(row.canary), std::to_string(row.created)};
    for (int i = 0; i < 3; ++i) {
      Result<Rows> ins = Query(c, "INSERT INTO qsapi_meta (name, value) VALUES ($1, $2)",
                               {P(std::string(kClusterMetaNames[i])), P(values[i])});
      if (!ins.ok()) {
        if (ins.error().code() == ErrorCode::kAlreadyExists) {
          return AlreadyExists("the database already holds a cluster identity");
        }
        return ins.error();
      }
    }
    return OkStatus();
  }

  // ExportOn reads every table on `c`, inside the caller's transaction.
  Result<StoreContents> ExportOn(PGconn* c) {
    StoreContents out;
    QSAPI_ASSIGN_OR_RETURN(out.cluster, ClusterOn(c));
    QSAPI_ASSIGN_OR_RETURN(Rows keys, Query(c, std::string("SELECT ") + kKeyColumns + " FROM keys ORDER BY name", {}));
    for (int i = 0; i < keys.size(); ++i) {
      QSAPI_ASSIGN_OR_RETURN(KeyRow k, ReadKey(keys, i));
      out.keys.push_back(std::move(k));
    }
    QSAPI_ASSIGN_OR_RETURN(
        Rows versions,
        Query(c, std::string("SELECT ") + kVersionColumns + " FROM key_versions ORDER BY key_id, version", {}));
    for (int i = 0; i < versions.size(); ++i) {
      QSAPI_ASSIGN_OR_RETURN(VersionRow v, ReadVersion(versions, i));
      out.versions.push_back(std::move(v));
    }
    QSAPI_ASSIGN_OR_RETURN(Rows records,
                           Query(c, "SELECT kind, name, value, updated FROM records ORDER BY kind, name", {}));
    for (int i = 0; i < records.size(); ++i) {
      RecordRow r;
      if (!ReadAnyRecordRow(PgColumns{records, i}, r)) return CorruptRow("a record", "kind, name, value or updated");
      out.records.push_back(std::move(r));
    }
    QSAPI_ASSIGN_OR_RETURN(Rows trails,
                           Query(c, std::string("SELECT ") + kTrailColumns + " FROM trails ORDER BY trail", {}));
    for (int i = 0; i < trails.size(); ++i) {
      QSAPI_ASSIGN_OR_RETURN(TrailRow t, ReadTrailRow(PgColumns{trails, i}));
      out.trails.push_back(std::move(t));
    }
    QSAPI_ASSIGN_OR_RETURN(Rows audit,
                           Query(c, std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY seq", {}));
    for (int i = 0; i < audit.size(); ++i) {
      QSAPI_ASSIGN_OR_RETURN(StoredAuditEntry e, ReadStoredAudit(PgColumns{audit, i}));
      out.audit.push_back(std::move(e));
    }
    return out;
  }

  // InsertAudit appends under the head row's lock: one chain for every node.
  Status InsertAudit(PGconn* c, const AuditRow& a) {
    QSAPI_ASSIGN_OR_RETURN(Rows head, Query(c, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", {}));
    std::int64_t last = 0;
    if (head.size() != 1 || !head.Int(0, 0, 0, kMaxI64 - 1, last)) return CorruptRow("the audit head", "seq");
    const std::int64_t seq = last + 1;
    const Bytes prev = last == 0 ? Bytes(kAuditChainSize, 0) : head.Blob(0, 1);
    const SecretBytes key = KeyFor(seq);
    QSAPI_ASSIGN_OR_RETURN(Bytes h, AuditChainValue(prev, seq, a, key.view()));
    QSAPI_RETURN_IF_ERROR(
        Run(c,
            "INSERT INTO audit (seq, at, actor, action, key_name, version, result, detail, prev_hash, "
            "hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            {P(seq), P(a.at), P(a.actor), P(a.action), P(a.key_name), P(std::int64_t{a.version}), P(a.result),
             P(a.detail), P(ByteView(prev)), P(ByteView(h))}));
    return Run(c, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", {P(seq), P(ByteView(h))});
  }

  // KeyFor is a copy, in secret memory, of the chain key of entry `seq` (empty: SHA-256).
  SecretBytes KeyFor(std::int64_t seq) {
    const std::lock_guard<std::mutex> lock(key_mu_);
    if (audit_key_.empty() || static_cast<std::uint64_t>(seq) < audit_first_seq_) return {};
    return audit_key_.Clone();
  }

  Result<std::optional<KeyRow>> OneKey(const std::string& sql, const std::vector<Param>& params) {
    QSAPI_ASSIGN_OR_RETURN(Rows r, QueryOnce(sql, params));
    if (r.size() == 0) return std::optional<KeyRow>();
    QSAPI_ASSIGN_OR_RETURN(KeyRow row, ReadKey(r, 0));
    return std::optional<KeyRow>(std::move(row));
  }

  // Column reads of one result row for ReadKeyRow / ReadVersionRow (keystore/internal/store_rows.h).
  struct PgColumns {
    const Rows& r;
    int row;
    bool Text(int col, std::string& out) const {
      if (r.IsNull(row, col)) return false;
      out = r.Text(row, col);
      return true;
    }
    bool Blob(int col, Bytes& out, bool nullable) const {
      if (r.IsNull(row, col)) {
        out.clear();
        return nullable;
      }
      out = r.Blob(row, col);
      return true;
    }
    bool Int(int col, std::int64_t min, std::int64_t max, std::int64_t& out) const {
      return r.Int(row, col, min, max, out);
    }
  };
  static Result<KeyRow> ReadKey(const Rows& r, int i) { return ReadKeyRow(PgColumns{r, i}); }
  static Result<VersionRow> ReadVersion(const Rows& r, int i) { return ReadVersionRow(PgColumns{r, i}); }

  const PostgresStoreOptions o_;
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<ConnPtr> idle_;  // guarded by pool_mu_
  int open_ = 0;               // guarded by pool_mu_: connections made and not closed
  std::mutex key_mu_;
  SecretBytes audit_key_;                       // guarded by key_mu_
  std::uint64_t audit_first_seq_ = UINT64_MAX;  // guarded by key_mu_
  // The database's clock minus this machine's (seconds), from its last answer that carried it.
  std::atomic<std::int64_t> clock_offset_{0};
  std::atomic<bool> clock_known_{false};
};

}  // namespace

Result<std::string> PostgresDisplayName(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);
  if (opts == nullptr) {
    return InvalidArgument(
        "the PostgreSQL connection string is not valid (libpq keyword=value pairs or a "
        "postgresql:// URI)");
  }
  // Named in this order, whatever the order libpq keeps them in.
  static constexpr std::array<std::string_view, 5> kShown = {"host", "hostaddr", "port", "dbname", "user"};
  std::array<std::string, kShown.size()> shown;
  bool has_password = false;
  for (const PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const std::string_view k = o->keyword;
    if (k == "password") has_password = true;
    for (std::size_t i = 0; i < kShown.size(); ++i) {
      if (k == kShown[i]) shown[i] = std::string(k) + "=" + o->val;
    }
  }
  std::string display;
  for (const std::string& part : shown) {
    if (part.empty()) continue;
    if (!display.empty()) display += ' ';
    display += part;
  }
  // The parsed values may hold the password: wipe them before libpq frees them.
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) SecureZero(o->val, std::strlen(o->val));
  }
  PQconninfoFree(opts);
  if (has_password) {
    return InvalidArgument(
        "the PostgreSQL connection string holds a password; give it in a password file "
        "(mode 0600) or an environment variable instead");
  }
  return display.empty() ? std::string("(libpq defaults)") : display;
}

Result<std::unique_ptr<MetadataStore>> OpenPostgresStore(PostgresStoreOptions options) {
  if (options.conninfo.empty()) return InvalidArgument("the PostgreSQL connection string is empty");
  if (options.pool_size < 1 || options.pool_size > 64) return InvalidArgument("the PostgreSQL pool size must be 1..64");
  auto store = std::make_unique<PgStore>(std::move(options));
  QSAPI_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<MetadataStore>(std::move(store));
}

}  // namespace qsapi::keystore::internal
