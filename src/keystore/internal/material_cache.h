// MaterialCache keeps unwrapped key material for a while after use, so that a warm key costs no
// call into the token.
//
// Zeroisation: an entry holds a reference to the material, whose keys live in secret memory and
// are wiped when the last reference goes. The cache drops its reference when the entry expires
// (checked on every Find), is evicted for room, or is erased (Erase, Forget, Clear); an operation
// that took the material before keeps it alive until it returns, and no longer.
//
// Thread safety: none of its own. Every call but enabled() is made with the keystore's lock held
// (guarded by Keystore::Impl::mu); enabled() reads what the constructor fixed.
#ifndef QSAPI_KEYSTORE_INTERNAL_MATERIAL_CACHE_H_
#define QSAPI_KEYSTORE_INTERNAL_MATERIAL_CACHE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>

#include "keystore/internal/material.h"
#include "qsapi/keystore/keystore.h"

namespace qsapi::keystore::internal {

class MaterialCache {
 public:
  using Clock = std::chrono::steady_clock;

  // An entry lives `ttl` after its last use; at most `max_entries` are kept. A zero TTL or
  // maximum keeps nothing.
  MaterialCache(std::chrono::seconds ttl, std::size_t max_entries) : ttl_(ttl), max_entries_(max_entries) {}

  // enabled says whether Insert keeps anything.
  [[nodiscard]] bool enabled() const noexcept { return ttl_.count() > 0 && max_entries_ > 0; }

  // Find first drops the entries expired at `now`, then returns the material of `version` (a hit,
  // which extends its life by the TTL) or nullptr (a miss). Either is counted.
  std::shared_ptr<const Material> Find(const VersionKey& version, Clock::time_point now);
  // Insert keeps `material` until now + TTL, evicting the entry closest to expiry when full. A
  // no-op unless enabled().
  void Insert(const VersionKey& version, std::shared_ptr<const Material> material, Clock::time_point now);

  // Erase drops one version (disabled or destroyed); Forget every version of a key (destroyed);
  // Clear everything (Keystore::FlushCache).
  void Erase(const VersionKey& version);
  void Forget(const KeyId& id);
  void Clear();

  // stats: hits and misses since the keystore opened, and the entries held now.
  [[nodiscard]] Keystore::CacheStats stats() const;

 private:
  struct Entry {
    std::shared_ptr<const Material> material;
    Clock::time_point expires;
  };

  const std::chrono::seconds ttl_;
  const std::size_t max_entries_;
  std::map<VersionKey, Entry> entries_;  // guarded by Keystore::Impl::mu
  std::uint64_t hits_ = 0;               // guarded by Keystore::Impl::mu
  std::uint64_t misses_ = 0;             // guarded by Keystore::Impl::mu
};

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_MATERIAL_CACHE_H_
