// Operation counting with leased blocks. See usage_ledger.h.
#include "keystore/internal/usage_ledger.h"

#include <algorithm>
#include <iterator>
#include <string>

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

Result<bool> UsageLedger::Use(const KeyRow& row, std::uint64_t max) {
  const VersionKey vk{row.id, row.current_version};
  auto it = usage_.find(vk);
  if (it == usage_.end()) {
    QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, store_.GetVersion(row.id, row.current_version));
    if (!v) return DataLoss("key \"" + row.name + "\" has no row for its current version");
    // Whatever was leased before this process is counted as used: a crash over-counts.
    it = usage_.emplace(vk, Usage{v->ops_leased, v->ops_leased}).first;
  }
  Usage& u = it->second;
  if (u.used >= max) return false;
  if (u.used == u.leased) {
    const std::uint64_t next = std::min(u.leased + kLeaseBlock, max);
    QSAPI_RETURN_IF_ERROR(store_.LeaseOperations(row.id, row.current_version, next));
    u.leased = next;
  }
  ++u.used;
  return true;
}

std::optional<std::uint64_t> UsageLedger::Used(const VersionKey& version) const {
  const auto it = usage_.find(version);
  if (it == usage_.end()) return std::nullopt;
  return it->second.used;
}

void UsageLedger::Forget(const KeyId& id) {
  for (auto it = usage_.begin(); it != usage_.end();) {
    it = it->first.first == id ? usage_.erase(it) : std::next(it);
  }
}

}  // namespace qsapi::keystore::internal
