// How every MetadataStore backend reads key and version rows back: strictly, with the same rules,
// so that a database edited by hand or corrupted on disk gives a clear DATA_LOSS naming the column
// instead of values that overflow later (a time of -2^63 seconds, a version number that wraps).
// A backend gives the reader an adapter over its current row with three calls, each false when
// the column does not hold that type (or is outside [min, max]):
//   bool Text(int col, std::string& out);
//   bool Blob(int col, Bytes& out, bool nullable);   // NULL is an empty Blob when nullable
//   bool Int(int col, std::int64_t min, std::int64_t max, std::int64_t& out);
#ifndef QSAPI_KEYSTORE_INTERNAL_STORE_ROWS_H_
#define QSAPI_KEYSTORE_INTERNAL_STORE_ROWS_H_

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "common/internal/text.h"
#include "keystore/internal/metadata_store.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

inline constexpr std::int64_t kMaxStoredTime = 253402300799;  // 9999-12-31T23:59:59Z
inline constexpr std::int64_t kMaxStoredU32 = 0xffffffffLL;
inline constexpr std::int64_t kMaxStoredI64 = INT64_MAX;

// The columns ReadKeyRow and ReadVersionRow expect, in this order.
inline constexpr const char* kKeyColumns =
    "name, key_id, type, created, rotated, current_version, auto_rotate_seconds, max_operations, "
    "min_decryption_version, deletion_allowed";
inline constexpr const char* kVersionColumns = "key_id, version, state, created, ops_leased, public_key, wrapped";

inline Error CorruptRow(const std::string& what, const std::string& column) {
  return DataLoss("keystore metadata: " + what + " has a corrupt " + column +
                  " (wrong type or out of range); restore the database from a backup");
}

template <typename Row>
Result<KeyRow> ReadKeyRow(const Row& r) {
  KeyRow k;
  if (!r.Text(0, k.name)) return CorruptRow("a key row", "name");
  const std::string what = "key \"" + k.name + "\"";
  Bytes id;
  if (!r.Blob(1, id, false) || id.size() != k.id.size()) return CorruptRow(what, "key_id");
  std::memcpy(k.id.data(), id.data(), id.size());
  if (!r.Text(2, k.type)) return CorruptRow(what, "type");
  std::int64_t v = 0;
  if (!r.Int(3, 0, kMaxStoredTime, k.created)) return CorruptRow(what, "created");
  if (!r.Int(4, 0, kMaxStoredTime, k.rotated)) return CorruptRow(what, "rotated");
  if (!r.Int(5, 1, kMaxStoredU32, v)) return CorruptRow(what, "current_version");
  k.current_version = static_cast<std::uint32_t>(v);
  if (!r.Int(6, 0, kMaxStoredI64, k.auto_rotate_seconds)) return CorruptRow(what, "auto_rotate_seconds");
  if (!r.Int(7, 0, kMaxStoredI64, v)) return CorruptRow(what, "max_operations");
  k.max_operations = static_cast<std::uint64_t>(v);
  if (!r.Int(8, 1, kMaxStoredU32, v)) return CorruptRow(what, "min_decryption_version");
  k.min_decryption_version = static_cast<std::uint32_t>(v);
  if (!r.Int(9, 0, 1, v)) return CorruptRow(what, "deletion_allowed");
  k.deletion_allowed = v != 0;
  return k;
}

template <typename Row>
Result<VersionRow> ReadVersionRow(const Row& r) {
  VersionRow out;
  Bytes id;
  if (!r.Blob(0, id, false) || id.size() != out.key_id.size()) return CorruptRow("a key version row", "key_id");
  std::memcpy(out.key_id.data(), id.data(), id.size());
  std::int64_t v = 0;
  if (!r.Int(1, 1, kMaxStoredU32, v)) return CorruptRow("a key version row", "version");
  out.version = static_cast<std::uint32_t>(v);
  const std::string what = "key version " + std::to_string(out.version);
  if (!r.Text(2, out.state)) return CorruptRow(what, "state");
  if (!r.Int(3, 0, kMaxStoredTime, out.created)) return CorruptRow(what, "created");
  if (!r.Int(4, 0, kMaxStoredI64, v)) return CorruptRow(what, "ops_leased");
  out.ops_leased = static_cast<std::uint64_t>(v);
  if (!r.Blob(5, out.public_key, true)) return CorruptRow(what, "public_key");
  if (!r.Blob(6, out.wrapped, true)) return CorruptRow(what, "wrapped");
  return out;
}

// The columns ReadStoredAudit expects, in this order.
inline constexpr const char* kAuditColumns =
    "seq, at, actor, action, key_name, version, result, detail, prev_hash, hash";

template <typename Row>
Result<StoredAuditEntry> ReadStoredAudit(const Row& r) {
  StoredAuditEntry e;
  std::int64_t v = 0;
  if (!r.Int(0, 1, kMaxStoredI64, v)) return CorruptRow("an audit trail entry", "seq");
  e.seq = static_cast<std::uint64_t>(v);
  const std::string what = "audit trail entry " + std::to_string(e.seq);
  if (!r.Int(1, 0, kMaxStoredTime, e.row.at)) return CorruptRow(what, "at");
  if (!r.Text(2, e.row.actor) || !r.Text(3, e.row.action) || !r.Text(4, e.row.key_name)) {
    return CorruptRow(what, "actor, action or key_name");
  }
  if (!r.Int(5, 0, kMaxStoredU32, v)) return CorruptRow(what, "version");
  e.row.version = static_cast<std::uint32_t>(v);
  if (!r.Text(6, e.row.result) || !r.Text(7, e.row.detail)) return CorruptRow(what, "result or detail");
  if (!r.Blob(8, e.prev_hash, false) || !r.Blob(9, e.hash, false)) return CorruptRow(what, "prev_hash or hash");
  return e;
}

// The columns ReadTrailRow expects, in this order.
inline constexpr const char* kTrailColumns = "trail, wrapped, first_seq, head_seq, head_mac, updated";

template <typename Row>
Result<TrailRow> ReadTrailRow(const Row& r) {
  TrailRow t;
  if (!r.Text(0, t.trail)) return CorruptRow("a trail row", "trail");
  const std::string what = "the row of trail \"" + t.trail + "\"";
  std::int64_t v = 0;
  if (!r.Blob(1, t.wrapped, false)) return CorruptRow(what, "wrapped");
  if (!r.Int(2, 1, kMaxStoredI64, v)) return CorruptRow(what, "first_seq");
  t.first_seq = static_cast<std::uint64_t>(v);
  if (!r.Int(3, 0, kMaxStoredI64, v)) return CorruptRow(what, "head_seq");
  t.head_seq = static_cast<std::uint64_t>(v);
  if (!r.Blob(4, t.head_mac, true) || (t.head_seq == 0) != t.head_mac.empty()) return CorruptRow(what, "head_mac");
  if (!r.Int(5, 0, kMaxStoredTime, t.updated)) return CorruptRow(what, "updated");
  return t;
}

inline constexpr std::size_t kMaxRecordValue = std::size_t{64} * 1024;

// ReadRecordRow reads (name, value, updated) of a record of `kind`; false for a value out of shape.
template <typename Row>
bool ReadRecordRow(const Row& r, const std::string& kind, RecordRow& out) {
  out.kind = kind;
  if (!r.Text(0, out.name) || out.name.empty() || out.name.size() > 128) return false;
  if (!r.Blob(1, out.value, false) || out.value.size() > kMaxRecordValue) return false;
  return r.Int(2, 0, kMaxStoredTime, out.updated);
}

// ReadAnyRecordRow reads (kind, name, value, updated): a record of any kind.
template <typename Row>
bool ReadAnyRecordRow(const Row& r, RecordRow& out) {
  struct Shifted {
    const Row& r;
    bool Text(int col, std::string& o) const { return r.Text(col + 1, o); }
    bool Blob(int col, Bytes& o, bool nullable) const { return r.Blob(col + 1, o, nullable); }
    bool Int(int col, std::int64_t min, std::int64_t max, std::int64_t& o) const { return r.Int(col + 1, min, max, o); }
  };
  std::string kind;
  if (!r.Text(0, kind) || kind.empty() || kind.size() > 32) return false;
  return ReadRecordRow(Shifted{r}, kind, out);
}

// The marker MarkMoved leaves in qsapi_meta, and the error every later open gives.
inline constexpr const char* kMovedMetaName = "moved_to";
inline Error MovedError(const std::string& store, const std::string& where) {
  return FailedPrecondition("keystore database " + store + " was moved to " + where +
                            " by `qsapi store migrate`; point [store] at that database (this copy is kept as a "
                            "backup and is never written again)");
}

// The deployment's identity is three rows of qsapi_meta: kClusterMetaNames, in this order.
inline constexpr const char* kClusterMetaNames[] = {"cluster_id", "cluster_canary", "cluster_created"};
inline constexpr std::size_t kMaxCanaryBytes = 128;

// ClusterFromMeta checks the three values (found[i]: whether row i exists) and builds the row;
// nullopt when none exists (no identity yet), kDataLoss when only some do or one is out of shape.
inline Result<std::optional<ClusterRow>> ClusterFromMeta(const std::string (&value)[3], const bool (&found)[3]) {
  if (!found[0] && !found[1] && !found[2]) return std::optional<ClusterRow>();
  ClusterRow row;
  if (!found[0] || value[0].size() != 32 || !qsapi::internal::IsLowerHex(value[0]))
    return CorruptRow("the cluster identity", "cluster_id");
  row.cluster_id = value[0];
  std::optional<Bytes> canary = found[1] ? qsapi::internal::HexDecode(value[1]) : std::nullopt;
  if (!canary || canary->empty() || canary->size() > kMaxCanaryBytes) {
    return CorruptRow("the cluster identity", "cluster_canary");
  }
  row.canary = std::move(*canary);
  std::int64_t created = -1;
  const char* end = value[2].data() + value[2].size();
  if (!found[2] || value[2].empty() || std::from_chars(value[2].data(), end, created).ptr != end || created < 0 ||
      created > kMaxStoredTime) {
    return CorruptRow("the cluster identity", "cluster_created");
  }
  row.created = created;
  return std::optional<ClusterRow>(std::move(row));
}

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_STORE_ROWS_H_
