// The audit trails' keys and the keystore's own trail. See audit_trails.h.
#include "keystore/internal/audit_trails.h"

#include "qsapi/crypto/random.h"

namespace qsapi::keystore::internal {
namespace {

constexpr std::size_t kTrailKeySize = 32;
constexpr const char* kOwnTrail = "keystore";

// TrailAad binds a trail key's wrapping to the trail's name and first keyed entry, so that a row
// moved to another trail, or a first_seq raised to pass forged unkeyed entries off, does not unwrap.
Bytes TrailAad(std::string_view trail, std::uint64_t first_seq) {
  const std::string text =
      std::string("qsapi trail key v1") + '\0' + std::string(trail) + '\0' + std::to_string(first_seq);
  return {text.begin(), text.end()};
}

Result<TrailKey> UnwrapTrail(KeyProtector& protector, const TrailRow& row) {
  Result<SecretBytes> key = protector.Unwrap(row.wrapped, TrailAad(row.trail, row.first_seq));
  if (!key.ok() || key->size() != kTrailKeySize) {
    return DataLoss("the key of audit trail \"" + row.trail +
                    "\" does not unwrap with this token's KEK (its row in the keystore database was altered, or "
                    "the database belongs to another token)");
  }
  return TrailKey{
      .key = std::move(*key), .first_seq = row.first_seq, .head_seq = row.head_seq, .head_mac = row.head_mac};
}

// The trails handed out are named, and never the keystore's own (its key stays inside).
Status CheckTrailName(std::string_view name) {
  if (name.empty() || name == kOwnTrail) return InvalidArgument("not a trail name: \"" + std::string(name) + "\"");
  return OkStatus();
}

}  // namespace

AuditRow AuditTrails::Entry(std::string action, const std::string& key, std::uint32_t version, std::string detail,
                            const std::string& actor) const {
  return AuditRow{.at = store_.Now(),
                  .actor = actor.empty() ? actor_ : actor,
                  .action = std::move(action),
                  .key_name = key,
                  .version = version,
                  .result = "ok",
                  .detail = std::move(detail)};
}

Status AuditTrails::KeyOwnTrail() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    QSAPI_ASSIGN_OR_RETURN(std::optional<TrailRow> row, store_.GetTrail(kOwnTrail));
    if (row) {
      QSAPI_ASSIGN_OR_RETURN(TrailKey k, UnwrapTrail(protector_, *row));
      store_.UseAuditKey(std::move(k.key), k.first_seq);
      return OkStatus();
    }
    SecretBytes key(kTrailKeySize);
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(key.span()));
    Result<std::uint64_t> made = store_.CreateTrail(
        TrailRow{.trail = kOwnTrail, .updated = UnixNow()},
        Entry("trail.create", "", 0, "this trail is keyed from here on (HMAC-SHA-256, key wrapped by the KEK)"), &key,
        [&](std::uint64_t first) { return protector_.Wrap(key.view(), TrailAad(kOwnTrail, first)); });
    if (made.ok()) return OkStatus();
    if (made.error().code() != ErrorCode::kAlreadyExists) return made.error();
    // Another process keyed it first: read its row.
  }
  return Unavailable("the keystore audit trail's key could not be read or created");
}

Result<std::vector<AuditEntry>> AuditTrails::Read(std::size_t max_entries) { return store_.ReadAudit(max_entries); }

Result<std::optional<TrailKey>> AuditTrails::Find(std::string_view name) {
  QSAPI_RETURN_IF_ERROR(CheckTrailName(name));
  QSAPI_ASSIGN_OR_RETURN(std::optional<TrailRow> row, store_.GetTrail(std::string(name)));
  if (!row) return std::optional<TrailKey>();
  QSAPI_ASSIGN_OR_RETURN(TrailKey k, UnwrapTrail(protector_, *row));
  return std::optional<TrailKey>(std::move(k));
}

Result<TrailKey> AuditTrails::Open(std::string_view name, std::uint64_t next_seq) {
  if (next_seq == 0) return InvalidArgument("a trail's first entry is 1 or later");
  for (int attempt = 0; attempt < 2; ++attempt) {
    QSAPI_ASSIGN_OR_RETURN(std::optional<TrailKey> found, Find(name));
    if (found) return std::move(*found);
    SecretBytes key(kTrailKeySize);
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(key.span()));
    Result<std::uint64_t> made = store_.CreateTrail(
        TrailRow{.trail = std::string(name), .first_seq = next_seq, .updated = UnixNow()},
        Entry("trail.create", "", 0,
              "audit trail \"" + std::string(name) + "\" keyed from its entry " + std::to_string(next_seq)),
        nullptr, [&](std::uint64_t first) { return protector_.Wrap(key.view(), TrailAad(name, first)); });
    if (made.ok()) return TrailKey{.key = std::move(key), .first_seq = next_seq};
    if (made.error().code() != ErrorCode::kAlreadyExists) return made.error();
  }
  return Unavailable("the key of audit trail \"" + std::string(name) + "\" could not be read or created");
}

Status AuditTrails::RecordHead(std::string_view name, std::uint64_t seq, ByteView mac) {
  QSAPI_RETURN_IF_ERROR(CheckTrailName(name));
  return store_.SetTrailHead(std::string(name), seq, mac);
}

Result<TrailKey> AuditTrails::Restart(std::string_view name, std::uint64_t first_seq, std::string_view why) {
  QSAPI_RETURN_IF_ERROR(CheckTrailName(name));
  if (first_seq == 0) return InvalidArgument("a trail's first entry is 1 or later");
  SecretBytes key(kTrailKeySize);
  QSAPI_RETURN_IF_ERROR(crypto::RandomFill(key.span()));
  QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, protector_.Wrap(key.view(), TrailAad(name, first_seq)));
  const Status st = store_.ReplaceTrail(
      TrailRow{.trail = std::string(name), .wrapped = std::move(wrapped), .first_seq = first_seq, .updated = UnixNow()},
      Entry("trail.restart", "", 0, "audit trail \"" + std::string(name) + "\": " + std::string(why)));
  if (st.ok()) return TrailKey{.key = std::move(key), .first_seq = first_seq};
  if (st.error().code() != ErrorCode::kNotFound) return st.error();
  return Open(name, first_seq);  // never keyed before: key it now
}

Result<TrailRow> AuditTrails::Renamed(TrailRow row, std::string_view name) {
  QSAPI_RETURN_IF_ERROR(CheckTrailName(row.trail));
  QSAPI_RETURN_IF_ERROR(CheckTrailName(name));
  QSAPI_ASSIGN_OR_RETURN(TrailKey k, UnwrapTrail(protector_, row));
  QSAPI_ASSIGN_OR_RETURN(row.wrapped, protector_.Wrap(k.key.view(), TrailAad(name, row.first_seq)));
  row.trail = std::string(name);
  return row;
}

Result<TrailHead> AuditTrails::Head() {
  QSAPI_ASSIGN_OR_RETURN(auto head, store_.AuditHead());
  return TrailHead{.seq = head.first, .value = std::move(head.second)};
}

Status AuditTrails::CheckHead(const TrailHead& head) {
  if (head.seq == 0) return OkStatus();
  QSAPI_ASSIGN_OR_RETURN(bool has, store_.HasAuditEntry(head.seq, head.value));
  if (has) return OkStatus();
  return DataLoss("the keystore's audit trail no longer holds its entry " + std::to_string(head.seq) +
                  " as qsapid's audit log recorded it (the keystore database was cut short or rolled back)");
}

Status AuditTrails::VerifyChain() { return store_.VerifyAuditChain(); }

}  // namespace qsapi::keystore::internal
