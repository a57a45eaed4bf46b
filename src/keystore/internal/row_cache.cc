// The metadata row cache and the row helpers. See row_cache.h.
#include "keystore/internal/row_cache.h"

#include <algorithm>
#include <cctype>

namespace qsapi::keystore::internal {

Status CheckKeyName(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) != 0 &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                  });
  if (!ok) {
    return InvalidArgument(
        "a key name has 1 to 64 characters of a-z, 0-9, '.', '_' and '-', and starts with a letter "
        "or digit");
  }
  return OkStatus();
}

Result<KeyRow> ReadKeyRow(MetadataStore& store, std::string_view name) {
  QSAPI_RETURN_IF_ERROR(CheckKeyName(name));
  QSAPI_ASSIGN_OR_RETURN(std::optional<KeyRow> row, store.GetKey(std::string(name)));
  if (!row) return NotFound("no key named \"" + std::string(name) + "\"");
  return *row;
}

Result<KeyType> KeyTypeOf(const KeyRow& row) {
  Result<KeyType> t = ParseKeyType(row.type);
  if (!t.ok()) return DataLoss("key \"" + row.name + "\" has a corrupt type in the metadata");
  return t;
}

Status RowCache::Fresh() {
  QSAPI_ASSIGN_OR_RETURN(std::uint64_t now, store_.ChangeCounter());
  if (now != seen_at_) {
    keys_.clear();
    versions_.clear();
    seen_at_ = now;
  }
  return OkStatus();
}

Result<KeyRow> RowCache::Key(std::string_view name) {
  QSAPI_RETURN_IF_ERROR(Fresh());
  if (auto it = keys_.find(name); it != keys_.end()) return it->second;
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, ReadKeyRow(store_, name));
  keys_[row.name] = row;
  return row;
}

Result<std::optional<KeyRow>> RowCache::KeyById(const KeyId& id) {
  QSAPI_RETURN_IF_ERROR(Fresh());
  std::optional<KeyRow> row;
  for (const auto& entry : keys_) {
    if (entry.second.id == id) row = entry.second;
  }
  if (!row) {
    QSAPI_ASSIGN_OR_RETURN(row, store_.GetKeyById(id));
    if (row) keys_[row->name] = *row;
  }
  return row;
}

Result<KeyRow> RowCache::KeyUnchecked(std::string_view name) {
  if (auto it = keys_.find(name); it != keys_.end()) return it->second;
  QSAPI_ASSIGN_OR_RETURN(KeyRow row, ReadKeyRow(store_, name));
  keys_[row.name] = row;  // read now: at least as fresh as the last check
  return row;
}

Result<std::optional<VersionRow>> RowCache::VersionAsOfCheck(const KeyId& id, std::uint32_t version) {
  if (auto it = versions_.find({id, version}); it != versions_.end()) return std::optional<VersionRow>(it->second);
  QSAPI_ASSIGN_OR_RETURN(std::optional<VersionRow> v, store_.GetVersion(id, version));
  if (v) versions_[{id, version}] = *v;
  return v;
}

}  // namespace qsapi::keystore::internal
