// API bearer tokens, stored only hashed, each bound to a policy (which keys, which operations).
//
// A token is "qsapi_<id>_<secret>": id = 8 hex characters naming the entry, secret = 32 random
// bytes in base64url. The store keeps SHA-256(token) and compares in constant time. The file
// (JSON, mode 0600) is rewritten atomically; qsapid reloads it when it changes, so that
// `qsapi token create|revoke` take effect without a restart.
#ifndef QSAPI_SRC_SERVER_TOKENS_H_
#define QSAPI_SRC_SERVER_TOKENS_H_

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

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

  // Create adds a token and writes the file; returns the token, which is shown once and never
  // stored. kAlreadyExists for a name in use; kInvalidArgument for an unknown operation.
  Result<ApiToken> Create(const std::string& name, const Policy& policy);
  Status Revoke(const std::string& name);
  // Authenticate returns the entry of a presented token, or kPermissionDenied (unknown, malformed
  // or revoked), without saying which.
  Result<TokenEntry> Authenticate(std::string_view token) const;
  [[nodiscard]] const std::vector<TokenEntry>& entries() const { return entries_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  Status Save() const;
  std::filesystem::path path_;
  std::vector<TokenEntry> entries_;
};

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_TOKENS_H_
