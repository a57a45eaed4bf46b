// API bearer tokens, stored only hashed, each bound to a policy (which keys, which operations).
//
// A token is "qsapi_<id>_<secret>": id = 8 hex characters naming the entry, secret = 32 random
// bytes in base64url. The store keeps SHA-256(token) and compares in constant time. One node keeps
// them in a file (JSON, mode 0600, rewritten atomically); nodes on PostgreSQL keep them in the
// keystore's database, one record per token. qsapid reloads either when it changes (checked every
// second), so that `qsapi token create|revoke` take effect on every node without a restart.
#ifndef QSAPI_SRC_SERVER_TOKENS_H_
#define QSAPI_SRC_SERVER_TOKENS_H_

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "server/operation.h"

namespace qsapi::server {

// A Policy says which keys (names, or prefixes ending in '*'; "*" for all) and which operations
// ("encrypt", "decrypt", "keys.create", ..., "*" for all) a principal may use.
struct Policy {
  std::vector<std::string> keys;
  std::vector<std::string> operations;
  [[nodiscard]] bool AllowsOperation(Operation op) const;
  [[nodiscard]] bool AllowsKey(std::string_view key) const;
};

// The operation names a policy can hold: every OperationName and "*" (for validation and docs).
const std::vector<std::string>& KnownOperations();

// ApiToken is a bearer token as Create made it: shown once, held in secret memory (wiped when it
// goes), never stored (the store keeps its hash).
using ApiToken = Secret<struct ApiTokenTag>;
// TokenText views a token's bytes as the text it is (ASCII: "qsapi_<id>_<secret>").
std::string_view TokenText(const ApiToken& token) noexcept;

struct TokenEntry {
  std::string id;    // 8 hex
  std::string name;  // who, in audit lines ("admin", "billing-service")
  std::string hash;  // hex SHA-256 of the whole token
  Policy policy;
  std::string created;  // RFC 3339
};

class TokenStore {
 public:
  // Load reads the file; a missing file is an empty store.
  static Result<TokenStore> Load(const std::filesystem::path& path);
  // LoadShared reads the tokens kept in the keystore's database (records of kind "api-token"): the
  // store of every node of a cluster on PostgreSQL. Create and Revoke then write there, each one
  // transaction; a name taken on another node is kAlreadyExists. kDataLoss names a bad record.
  static Result<TokenStore> LoadShared(keystore::Keystore& keystore);

  // Create adds a token and writes the file; returns the token, which is shown once and never
  // stored. kAlreadyExists for a name in use; kInvalidArgument for an unknown operation.
  Result<ApiToken> Create(const std::string& name, const Policy& policy);
  Status Revoke(const std::string& name);
  // Authenticate returns the entry of a presented token, or kPermissionDenied (unknown, malformed
  // or revoked), without saying which.
  Result<TokenEntry> Authenticate(std::string_view token) const;
  [[nodiscard]] const std::vector<TokenEntry>& entries() const { return entries_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  // Where the tokens are: the file's path, or "the keystore database (<store>)".
  [[nodiscard]] std::string location() const;
  // SameAs: the two stores hold the same entries (a reload that changes nothing is skipped).
  [[nodiscard]] bool SameAs(const TokenStore& other) const;
  // AsRecords is every entry as the record LoadShared reads: how `qsapi store migrate` moves a
  // node's token file into the cluster's database.
  [[nodiscard]] std::vector<keystore::RecordToAdd> AsRecords() const;

  static constexpr std::string_view kRecordKind = "api-token";

 private:
  Status Save() const;
  std::filesystem::path path_;
  keystore::Keystore* shared_ = nullptr;  // set: the tokens live in the keystore's database
  std::vector<TokenEntry> entries_;
};

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_TOKENS_H_
