// UsageLedger counts the operations of each version that has a limit, so that a version never
// exceeds max_operations_per_version.
//
// Operations are granted by the metadata store in blocks: before the first operation of a block,
// the store adds the block to the version's persisted count (ops_leased) in one atomic step that
// refuses to pass the limit (MetadataStore::GrantOperations), and the block [r - b, r) it returns
// is then used from memory. Two processes on one database (two qsapid, or qsapid and the qsapi
// CLI) never get the same block; a crash, or a process that stops with a block partly used,
// over-counts (the rest of the block is lost), but nothing ever under-counts.
//
// Thread safety: none of its own; guarded by Keystore::Impl::mu (every call is made with it held,
// and so a count and the lease it may write are one step for every other operation of this
// handle).
#ifndef QSAPI_KEYSTORE_INTERNAL_USAGE_LEDGER_H_
#define QSAPI_KEYSTORE_INTERNAL_USAGE_LEDGER_H_

#include <cstdint>
#include <map>
#include <optional>

#include "keystore/internal/metadata_store.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

// How many operations one lease writes ahead: kLeaseBlock, or a sixteenth of a smaller limit (at
// least 1), so that under a small limit the nodes of a cluster share each version instead of one
// of them leasing it whole and the others finding every new version spent before they reach it.
inline constexpr std::uint64_t kLeaseBlock = 1024;
std::uint64_t LeaseBlockFor(std::uint64_t max);

// The operation limits of a type (0: unlimited, for KEM and signature keys). DefaultMaxOps is the
// limit of a policy that sets none (AES-256-GCM with random nonces: 2^31, half the SP 800-38D
// bound; XChaCha20-Poly1305: 2^48); BoundMaxOps the highest a policy may set (AES-256-GCM: 2^32).
std::uint64_t DefaultMaxOps(const KeyType& type);
std::uint64_t BoundMaxOps(const KeyType& type);
// EffectiveMaxOps is the limit that applies to `row`: its own, else the type's default.
std::uint64_t EffectiveMaxOps(const KeyRow& row, const KeyType& type);

class UsageLedger {
 public:
  explicit UsageLedger(MetadataStore& store) : store_(store) {}

  // Use counts one operation on `row`'s current version under the limit `max` (non-zero): true
  // when it was counted (a new block leased first when the last one is spent), false when the
  // version has used all `max` (nothing counted: the caller rotates). kDataLoss when the current
  // version has no row; a lease that cannot be written counts nothing.
  Result<bool> Use(const KeyRow& row, std::uint64_t max);

  // Used is the position this process has reached in a version's operations (the operations before
  // its block, all counted as used, and those of its block it used); nullopt for a version it has
  // not counted: the persisted ops_leased is then the best bound.
  [[nodiscard]] std::optional<std::uint64_t> Used(const VersionKey& version) const;

  // Forget drops every version of a destroyed key.
  void Forget(const KeyId& id);

 private:
  // The block this process holds: operations next..end-1 of the version are ours to use.
  struct Usage {
    std::uint64_t next = 0;
    std::uint64_t end = 0;
  };

  MetadataStore& store_;               // thread-safe
  std::map<VersionKey, Usage> usage_;  // guarded by Keystore::Impl::mu
};

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_USAGE_LEDGER_H_
