// Making key versions and the rotation policy. See rotation.h.
#include "keystore/internal/rotation.h"

#include <cstdint>

#include "keystore/internal/material.h"
#include "keystore/internal/row_cache.h"
#include "qsapi/log.h"

namespace qsapi::keystore::internal {

Status CheckPolicyLimits(const KeyType& type, const std::string& type_name, const KeyPolicy& policy) {
  const std::uint64_t bound = BoundMaxOps(type);
  if (bound == 0 && policy.max_operations_per_version != 0) {
    return InvalidArgument("max_operations_per_version applies to encryption keys only");
  }
  if (bound != 0 && policy.max_operations_per_version > bound) {
    return InvalidArgument("max_operations_per_version for " + type_name + " may not exceed " + std::to_string(bound));
  }
  if (policy.auto_rotate_period.count() < 0) return InvalidArgument("auto_rotate_period must not be negative");
  return OkStatus();
}

Result<VersionRow> Rotation::NewVersion(const KeyId& id, std::uint32_t version, const KeyType& type) {
  QSAPI_ASSIGN_OR_RETURN(NewMaterial m, Generate(type));
  QSAPI_ASSIGN_OR_RETURN(Bytes wrapped, protector_.Wrap(m.secret.view(), WrapAad(id, version, type)));
  return VersionRow{.key_id = id,
                    .version = version,
                    .state = std::string(VersionStateName(VersionState::kActive)),
                    .created = store_.Now(),
                    .ops_leased = 0,
                    .public_key = std::move(m.public_key),
                    .wrapped = std::move(wrapped)};
}

Result<KeyRow> Rotation::Rotate(const KeyRow& row, const std::string& why, const std::string& actor, std::int64_t at) {
  const std::int64_t when = at != 0 ? at : store_.Now();
  QSAPI_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(row));
  if (row.current_version == UINT32_MAX) {
    return FailedPrecondition("key \"" + row.name + "\" has used every version number; create a new key");
  }
  const std::uint32_t next = row.current_version + 1;
  QSAPI_ASSIGN_OR_RETURN(VersionRow v, NewVersion(row.id, next, type));
  FaultPoint("keystore.rotate.after_wrap");
  QSAPI_RETURN_IF_ERROR(store_.AddVersion(row.name, v, std::string(VersionStateName(VersionState::kDecryptOnly)), when,
                                          audit_.Entry("rotate", row.name, next, why, actor)));
  Log(LogLevel::kInfo, "keystore",
      "key \"" + row.name + "\" rotated to version " + std::to_string(next) + " (" + why + ")");
  KeyRow out = row;
  out.current_version = next;
  out.rotated = when;
  return out;
}

bool Rotation::Due(const KeyRow& row, std::int64_t now) {
  return row.auto_rotate_seconds > 0 && now - row.rotated >= row.auto_rotate_seconds;
}

Result<KeyRow> Rotation::ReserveOperation(KeyRow row, const KeyType& type) {
  if (Due(row, store_.Now())) {  // the store's clock: the one every node of a cluster agrees on
    QSAPI_ASSIGN_OR_RETURN(row, Rotate(row, "time-based: the rotation period elapsed", "policy"));
  }
  const std::uint64_t max = EffectiveMaxOps(row, type);
  if (max == 0) return row;
  // A version just made has its whole budget: the second attempt counts unless other handles on
  // the database spent it in between.
  for (int attempt = 0; attempt < 4; ++attempt) {
    QSAPI_ASSIGN_OR_RETURN(bool counted, usage_.Use(row, max));
    if (counted) return row;
    Result<KeyRow> rotated = Rotate(row,
                                    "usage-based: version " + std::to_string(row.current_version) +
                                        " reached its limit of " + std::to_string(max) + " operations",
                                    "policy");
    if (rotated.ok()) {
      row = std::move(rotated).value();
      continue;
    }
    // Another process on the database rotated the spent version first: use its new version.
    if (rotated.error().code() != ErrorCode::kFailedPrecondition) return rotated.error();
    QSAPI_ASSIGN_OR_RETURN(std::optional<KeyRow> now, store_.GetKey(row.name));
    if (!now || now->current_version <= row.current_version) return rotated.error();
    row = std::move(*now);
  }
  return Internal("key \"" + row.name + "\": no usable version after rotation");
}

Result<std::vector<std::string>> Rotation::RotateDue(const std::vector<KeyRow>& rows, std::int64_t now) {
  std::vector<std::string> rotated;
  for (const KeyRow& r : rows) {
    if (!Due(r, now)) continue;
    FaultPoint("keystore.sweep.before_rotate");  // the sweep's lock is held here
    Result<KeyRow> done = Rotate(r, "time-based: the rotation period elapsed", "policy", now);
    if (!done.ok()) {
      // Rotated by another process since the rows were read (on use, or a sweep that lost its
      // lock): that rotation is the one this sweep would have made.
      if (done.error().code() == ErrorCode::kFailedPrecondition) {
        Result<std::optional<KeyRow>> current = store_.GetKey(r.name);
        if (current.ok() && *current && (*current)->current_version > r.current_version) continue;
      }
      return done.error();
    }
    rotated.push_back(r.name);
  }
  return rotated;
}

}  // namespace qsapi::keystore::internal
