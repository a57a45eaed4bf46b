// Rotation makes key versions: the first one of a new key and each next one, manual, time-based
// (the policy's period) or usage-based (the operation that would exceed the version's limit
// rotates first, counted by the UsageLedger).
//
// A rotation is one store transaction (AddVersion, with its audit entry); the new material is
// generated and wrapped in the token before it, so a crash leaves the old or the new version
// current, never a version without material.
//
// Thread safety: none of its own. Rotate, ReserveOperation and RotateDue are called with the
// keystore's lock held (Keystore::Impl::mu), which serialises them with every other lifecycle
// change of this handle and guards the ledger they update. NewVersion touches no shared state.
#ifndef QSAPI_KEYSTORE_INTERNAL_ROTATION_H_
#define QSAPI_KEYSTORE_INTERNAL_ROTATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "keystore/internal/audit_trails.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "keystore/internal/usage_ledger.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

// CheckPolicyLimits checks what a policy must keep for a key of `type` (named `type_name` in the
// errors), new or not: an operation limit only for encryption keys and never above the type's
// bound, and a period that is not negative (kInvalidArgument).
Status CheckPolicyLimits(const KeyType& type, const std::string& type_name, const KeyPolicy& policy);

class Rotation {
 public:
  Rotation(KeyProtector& protector, MetadataStore& store, const AuditTrails& audit, UsageLedger& usage)
      : protector_(protector), store_(store), audit_(audit), usage_(usage) {}

  // NewVersion generates the material of `version` and wraps it in the token: the row to store,
  // active, with no operations leased.
  Result<VersionRow> NewVersion(const KeyId& id, std::uint32_t version, const KeyType& type);

  // Rotate adds version current+1 of `row`, the previous one becoming decrypt-only, with `why` in
  // the audit entry (and `actor`, when not this handle's). Returns the row as it is now.
  // kFailedPrecondition when the key has used every version number.
  // `at` is the rotation's time (unix seconds; 0: this host's clock now).
  Result<KeyRow> Rotate(const KeyRow& row, const std::string& why, const std::string& actor = {}, std::int64_t at = 0);

  // Due says whether `row`'s time-based rotation period has elapsed at `now` (unix seconds; 0:
  // this host's clock).
  [[nodiscard]] static bool Due(const KeyRow& row, std::int64_t now);

  // ReserveOperation counts one operation on the current version of `row` (of type `type`),
  // rotating first when the period has elapsed or the version's budget is spent. Returns the row
  // to use (its current version is the one counted).
  Result<KeyRow> ReserveOperation(KeyRow row, const KeyType& type);

  // RotateDue rotates each of `rows` that is Due at `now` (the database's clock), in order;
  // returns their names. A key another process rotated since `rows` were read is skipped (its
  // rotation happened). It stops at the first rotation that fails otherwise (those before it stay
  // rotated).
  Result<std::vector<std::string>> RotateDue(const std::vector<KeyRow>& rows, std::int64_t now);

 private:
  KeyProtector& protector_;   // thread-safe
  MetadataStore& store_;      // thread-safe
  const AuditTrails& audit_;  // thread-safe
  UsageLedger& usage_;        // guarded by Keystore::Impl::mu
};

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_ROTATION_H_
