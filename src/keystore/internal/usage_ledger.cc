// Operation counting with leased blocks. See usage_ledger.h.
#include "keystore/internal/usage_ledger.h"

#include <algorithm>
#include <iterator>
#include <string>

#include "qsapi/log.h"

namespace qsapi::keystore::internal {
namespace {

constexpr std::uint64_t kAesGcmBound = std::uint64_t{1} << 32;  // SP 800-38D 8.3, random nonces
constexpr std::uint64_t kAesGcmDefault = std::uint64_t{1} << 31;
constexpr std::uint64_t kXChaChaDefault = std::uint64_t{1} << 48;

}  // namespace

std::uint64_t DefaultMaxOps(const KeyType& type) {
  const std::optional<crypto::AeadAlgorithm> aead = type.aead();
  if (!aead) return 0;
  return *aead == crypto::AeadAlgorithm::kAes256Gcm ? kAesGcmDefault : kXChaChaDefault;
}

std::uint64_t BoundMaxOps(const KeyType& type) {
  const std::optional<crypto::AeadAlgorithm> aead = type.aead();
  if (!aead) return 0;
  return *aead == crypto::AeadAlgorithm::kAes256Gcm ? kAesGcmBound : kXChaChaDefault;
}

std::uint64_t EffectiveMaxOps(const KeyRow& row, const KeyType& type) {
  return row.max_operations != 0 ? row.max_operations : DefaultMaxOps(type);
}

std::uint64_t LeaseBlockFor(std::uint64_t max) { return std::clamp<std::uint64_t>(max / 16, 1, kLeaseBlock); }

Result<bool> UsageLedger::Use(const KeyRow& row, std::uint64_t max) {
  const VersionKey vk{row.id, row.current_version};
  Usage& u = usage_[vk];
  if (u.next < u.end) {
    ++u.next;
    return true;
  }
  // A new block: a whole one while the limit allows it, else what is left. Another writer may
  // take what was left between the read and the grant; then the grant is refused and re-tried
  // with what is left after it (a few rounds at most, one per concurrent writer).
  std::uint64_t block = LeaseBlockFor(max);
  for (int round = 0; round < 16; ++round) {
    if (block <= max) {
      QSAPI_ASSIGN_OR_RETURN(std::optional<std::uint64_t> granted,
                             store_.GrantOperations(row.id, row.current_version, block, max));
      if (granted) {
        u.next = *granted - block + 1;  // the block's first operation is this one
        u.end = *granted;
        // The cluster fault tests read these lines (qsapid --log-level debug) to check that no
        // two processes ever held overlapping blocks.
        Log(LogLevel::kDebug, "keystore",
            "key \"" + row.name + "\" version " + std::to_string(row.current_version) + ": operations [" +
                std::to_string(*granted - block) + ", " + std::to_string(*granted) + ") of " + std::to_string(max) +
                " leased");
        return true;
      }
    }
    QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, store_.GetVersion(row.id, row.current_version));
    if (!v) return DataLoss("key \"" + row.name + "\" has no row for its current version");
    if (v->ops_leased >= max) {
      u.next = u.end = std::max(u.end, v->ops_leased);  // spent: the caller rotates
      return false;
    }
    block = std::min(LeaseBlockFor(max), max - v->ops_leased);
  }
  return Unavailable("key \"" + row.name + "\": no operation block could be granted (too many concurrent writers)");
}

std::optional<std::uint64_t> UsageLedger::Used(const VersionKey& version) const {
  const auto it = usage_.find(version);
  if (it == usage_.end() || it->second.end == 0) return std::nullopt;  // nothing granted to us yet
  return it->second.next;
}

void UsageLedger::Forget(const KeyId& id) {
  for (auto it = usage_.begin(); it != usage_.end();) {
    it = it->first.first == id ? usage_.erase(it) : std::next(it);
  }
}

}  // namespace qsapi::keystore::internal
