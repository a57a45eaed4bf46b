// RowCache keeps the metadata rows the operations read on every call (a key by name or id, a
// version), so that a warm encrypt or sign reads one counter instead of its rows.
//
// The rows are valid while the store's change counter stays where it was when they were read:
// every lookup first reads the counter and drops every row when it moved (a commit by this handle
// or by any other process on the database). What a cached version row says of its usage
// (ops_leased) may lag: usage is read from the store or the UsageLedger, never from here.
//
// Thread safety: none of its own; guarded by Keystore::Impl::mu (every call is made with it held).
// The free functions below keep no state and need no lock.
#ifndef QSAPI_KEYSTORE_INTERNAL_ROW_CACHE_H_
#define QSAPI_KEYSTORE_INTERNAL_ROW_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "keystore/internal/metadata_store.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

// CheckKeyName: 1 to 64 of [a-z0-9._-], starting with a letter or digit (kInvalidArgument).
Status CheckKeyName(std::string_view name);

// ReadKeyRow reads key `name` from the store, uncached: the row that lifecycle changes start from.
// kInvalidArgument for a name that is not valid, kNotFound for an unknown one.
Result<KeyRow> ReadKeyRow(MetadataStore& store, std::string_view name);

// KeyTypeOf parses a row's type; kDataLoss names the key when the stored type is not one.
Result<KeyType> KeyTypeOf(const KeyRow& row);

class RowCache {
 public:
  explicit RowCache(MetadataStore& store) : store_(store) {}

  // Key is ReadKeyRow through the cache.
  Result<KeyRow> Key(std::string_view name);
  // KeyById finds the key a ciphertext or signature header names (nullopt: no such key).
  Result<std::optional<KeyRow>> KeyById(const KeyId& id);
  // VersionAsOfCheck returns one version's row (nullopt: the key has no such version) without
  // reading the change counter again: for an operation that has just read its key row through Key
  // or KeyById, which checked it, so that one operation costs one counter read. The row is as
  // fresh as that check, or fresher.
  Result<std::optional<VersionRow>> VersionAsOfCheck(const KeyId& id, std::uint32_t version);
  // KeyUnchecked is Key without reading the change counter: a cached row may be stale. Only for
  // what never changes in a key's life (its type), and only for estimates: a name destroyed and
  // made again with another type is seen with the old one until the next checked lookup.
  Result<KeyRow> KeyUnchecked(std::string_view name);

 private:
  // Fresh drops every row when the store's change counter moved since they were read.
  Status Fresh();

  MetadataStore& store_;                             // thread-safe
  std::uint64_t seen_at_ = ~std::uint64_t{0};        // guarded by Keystore::Impl::mu
  std::map<std::string, KeyRow, std::less<>> keys_;  // by name; guarded by Keystore::Impl::mu
  std::map<VersionKey, VersionRow> versions_;        // guarded by Keystore::Impl::mu
};

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_ROW_CACHE_H_
