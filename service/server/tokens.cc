#include "server/tokens.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "common/internal/text.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/random.h"

namespace qsapi::server {
namespace {

Result<std::string> HashToken(std::string_view token) {
  QSAPI_ASSIGN_OR_RETURN(Bytes h, crypto::Hash(crypto::HashAlgorithm::kSha256,
                                               ByteView(reinterpret_cast<const std::uint8_t*>(token.data()),  // NOLINT
                                                        token.size())));
  return qsapi::internal::HexEncode(h);
}

std::string Now() { return qsapi::internal::FormatUtc(std::chrono::system_clock::now()); }

nlohmann::json EntryJson(const TokenEntry& e) {
  return {{"id", e.id},
          {"name", e.name},
          {"hash", e.hash},
          {"created", e.created},
          {"policy", {{"keys", e.policy.keys}, {"operations", e.policy.operations}}}};
}

// ParseEntry reads one entry strictly; the error says what is wrong, without any value.
Result<TokenEntry> ParseEntry(const nlohmann::json& t) {
  if (!t.is_object()) return DataLoss("an entry is not an object");
  TokenEntry e;
  try {
    e.id = t.at("id").get<std::string>();
    e.name = t.at("name").get<std::string>();
    e.hash = t.at("hash").get<std::string>();
    e.created = t.value("created", "");
    e.policy.keys = t.at("policy").at("keys").get<std::vector<std::string>>();
    e.policy.operations = t.at("policy").at("operations").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    return DataLoss("an entry lacks id, name, hash or policy, or has a wrong type");
  }
  if (e.id.size() != 8 || !qsapi::internal::IsLowerHex(e.id) || e.hash.size() != 64 ||
      !qsapi::internal::IsLowerHex(e.hash))
    return DataLoss("malformed id or hash");
  return e;
}

}  // namespace

const std::vector<std::string>& KnownOperations() {
  static const std::vector<std::string> ops = [] {
    std::vector<std::string> out;
    out.reserve(kAllOperations.size() + 1);
    for (const Operation op : kAllOperations) out.emplace_back(OperationName(op));
    out.emplace_back("*");
    return out;
  }();
  return ops;
}

bool Policy::AllowsOperation(Operation op) const {
  const std::string_view name = OperationName(op);
  return std::any_of(operations.begin(), operations.end(), [&](const std::string& o) { return o == "*" || o == name; });
}

bool Policy::AllowsKey(std::string_view key) const {
  return std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
    if (k.ends_with('*')) return key.starts_with(std::string_view(k).substr(0, k.size() - 1));
    return k == key;
  });
}

Result<TokenStore> TokenStore::Load(const std::filesystem::path& path) {
  TokenStore store;
  store.path_ = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!std::filesystem::exists(path)) return store;
    return Unavailable("cannot read token file " + path.string());
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return FailedPrecondition("token file " + path.string() + " is accessible by group or others; chmod 600 it");
  }
  std::stringstream s;
  s << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(s.str(), nullptr, false);
  const auto bad = [&](const std::string& why) { return DataLoss("token file " + path.string() + ": " + why); };
  if (j.is_discarded() || !j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
    return bad("expected {\"tokens\": [...]}");
  }
  for (const auto& t : j["tokens"]) {
    Result<TokenEntry> e = ParseEntry(t);
    if (!e.ok()) return bad(e.error().message());
    store.entries_.push_back(std::move(*e));
  }
  return store;
}

Result<TokenStore> TokenStore::LoadShared(keystore::Keystore& keystore) {
  TokenStore store;
  store.shared_ = &keystore;
  QSAPI_ASSIGN_OR_RETURN(std::vector<keystore::Record> records, keystore.ListRecords(kRecordKind));
  for (const keystore::Record& r : records) {
    const auto bad = [&](const std::string& why) {
      return DataLoss("API token record \"" + r.name + "\" in " + keystore.store_description() + ": " + why);
    };
    const nlohmann::json j = nlohmann::json::parse(r.value.begin(), r.value.end(), nullptr, false);
    if (j.is_discarded()) return bad("not JSON");
    Result<TokenEntry> e = ParseEntry(j);
    if (!e.ok()) return bad(e.error().message());
    if (e->name != r.name) return bad("its entry names another token");
    store.entries_.push_back(std::move(*e));
  }
  return store;
}

std::vector<keystore::RecordToAdd> TokenStore::AsRecords() const {
  std::vector<keystore::RecordToAdd> out;
  for (const TokenEntry& e : entries_) {
    const std::string value = EntryJson(e).dump();
    out.push_back({.kind = std::string(kRecordKind), .name = e.name, .value = Bytes(value.begin(), value.end())});
  }
  return out;
}

std::string TokenStore::location() const {
  if (shared_ != nullptr) return "the keystore database (" + shared_->store_description() + ")";
  return path_.string();
}

bool TokenStore::SameAs(const TokenStore& other) const {
  if (entries_.size() != other.entries_.size()) return false;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const TokenEntry& a = entries_[i];
    const TokenEntry& b = other.entries_[i];
    if (a.id != b.id || a.name != b.name || a.hash != b.hash || a.policy.keys != b.policy.keys ||
        a.policy.operations != b.policy.operations) {
      return false;
    }
  }
  return true;
}

Status TokenStore::Save() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const TokenEntry& e : entries_) arr.push_back(EntryJson(e));
  const std::string text = nlohmann::json{{"tokens", arr}}.dump(2) + "\n";
  const std::string tmp = path_.string() + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot write " + tmp + ": " + qsapi::internal::ErrnoText(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot write token file " + path_.string());
  }
  return OkStatus();
}

std::string_view TokenText(const ApiToken& token) noexcept {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the token's bytes are its text
  return {reinterpret_cast<const char*>(token.view().data()), token.size()};
}

Result<ApiToken> TokenStore::Create(const std::string& name, const Policy& policy) {
  if (name.empty() || name.size() > 64) return InvalidArgument("a token name has 1 to 64 characters");
  for (const TokenEntry& e : entries_) {
    if (e.name == name) return AlreadyExists("a token named \"" + name + "\" exists");
  }
  if (policy.operations.empty() || policy.keys.empty()) {
    return InvalidArgument("a token's policy needs at least one key pattern and one operation");
  }
  for (const std::string& op : policy.operations) {
    if (std::find(KnownOperations().begin(), KnownOperations().end(), op) == KnownOperations().end()) {
      std::string all;
      for (const auto& k : KnownOperations()) all += (all.empty() ? "" : ", ") + k;
      return InvalidArgument("unknown operation \"" + op + "\"; known: " + all);
    }
  }
  QSAPI_ASSIGN_OR_RETURN(Bytes id, crypto::RandomBytes(4));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes secret, crypto::RandomSecret(32));
  // "qsapi_" || hex(id) || "_" || base64url(secret), built in secret memory.
  const std::string id_hex = qsapi::internal::HexEncode(id);
  SecretBytes b64(sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
  sodium_bin2base64(reinterpret_cast<char*>(b64.data()), b64.size(), secret.data(), secret.size(),  // NOLINT
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  const std::size_t b64_len = b64.size() - 1;  // without the terminator
  const std::string prefix = "qsapi_" + id_hex + "_";
  SecretBytes bytes(prefix.size() + b64_len);
  std::copy(prefix.begin(), prefix.end(), bytes.data());
  std::copy(b64.data(), b64.data() + b64_len, bytes.data() + prefix.size());
  ApiToken token(std::move(bytes));
  TokenEntry e;
  e.id = id_hex;
  e.name = name;
  QSAPI_ASSIGN_OR_RETURN(e.hash, HashToken(TokenText(token)));
  e.policy = policy;
  e.created = Now();
  if (shared_ != nullptr) {
    const std::string value = EntryJson(e).dump();
    QSAPI_RETURN_IF_ERROR(shared_->CreateRecord(
        kRecordKind, name, ByteView(reinterpret_cast<const std::uint8_t*>(value.data()), value.size())));  // NOLINT
    entries_.push_back(e);
    return token;
  }
  entries_.push_back(e);
  if (Status s = Save(); !s.ok()) {
    entries_.pop_back();
    return s.error();
  }
  return token;
}

Status TokenStore::Revoke(const std::string& name) {
  const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const TokenEntry& e) { return e.name == name; });
  if (shared_ != nullptr) {  // the database decides: the token may have been made on another node
    Status deleted = shared_->DeleteRecord(kRecordKind, name);
    if (!deleted.ok() && deleted.error().code() == ErrorCode::kNotFound) {
      return NotFound("no token named \"" + name + "\"");
    }
    QSAPI_RETURN_IF_ERROR(deleted);
    if (it != entries_.end()) entries_.erase(it);
    return OkStatus();
  }
  if (it == entries_.end()) return NotFound("no token named \"" + name + "\"");
  const TokenEntry removed = *it;
  entries_.erase(it);
  if (Status s = Save(); !s.ok()) {
    entries_.push_back(removed);
    return s;
  }
  return OkStatus();
}

Result<TokenEntry> TokenStore::Authenticate(std::string_view token) const {
  const Error denied(ErrorCode::kPermissionDenied, "the bearer token is not valid");
  if (token.size() < 16 || token.size() > 128 || !token.starts_with("qsapi_") || token[14] != '_') return denied;
  const std::string_view id = token.substr(6, 8);
  QSAPI_ASSIGN_OR_RETURN(std::string hash, HashToken(token));
  for (const TokenEntry& e : entries_) {
    if (e.id != id) continue;
    if (ConstantTimeEqual(ByteView(reinterpret_cast<const std::uint8_t*>(hash.data()), hash.size()),         // NOLINT
                          ByteView(reinterpret_cast<const std::uint8_t*>(e.hash.data()), e.hash.size()))) {  // NOLINT
      return e;
    }
  }
  return denied;
}

}  // namespace qsapi::server
