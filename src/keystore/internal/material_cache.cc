// The cache of unwrapped key material. See material_cache.h.
#include "keystore/internal/material_cache.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace qsapi::keystore::internal {

std::shared_ptr<const Material> MaterialCache::Find(const VersionKey& version, Clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
  }
  if (auto it = entries_.find(version); it != entries_.end()) {
    ++hits_;
    it->second.expires = now + ttl_;
    return it->second.material;
  }
  ++misses_;
  return nullptr;
}

void MaterialCache::Insert(const VersionKey& version, std::shared_ptr<const Material> material, Clock::time_point now) {
  if (!enabled()) return;
  if (entries_.size() >= max_entries_) {
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; });
    entries_.erase(oldest);
  }
  entries_[version] = Entry{std::move(material), now + ttl_};
}

void MaterialCache::Erase(const VersionKey& version) { entries_.erase(version); }

void MaterialCache::Forget(const KeyId& id) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->first.first == id ? entries_.erase(it) : std::next(it);
  }
}

void MaterialCache::Clear() { entries_.clear(); }

Keystore::CacheStats MaterialCache::stats() const {
  return Keystore::CacheStats{.hits = hits_, .misses = misses_, .entries = entries_.size()};
}

}  // namespace qsapi::keystore::internal
