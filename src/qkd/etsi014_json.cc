// The ETSI GS QKD 014 JSON objects (see qkd/internal/etsi014_json.h).
//
// Base64 key text is decoded with libsodium's sodium_base642bin, which runs in time independent
// of the characters' values, straight into SecretBytes. nlohmann::json keeps its own copy of every
// string it parses: after the keys are decoded, every string of the parsed document and the body
// are wiped (WipeStrings), on every path. What stays unwiped is the JSON lexer's transient token
// buffer, freed heap inside nlohmann (docs/THREAT_MODEL.md lists it).
#include "qkd/internal/etsi014_json.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "common/internal/text.h"
#include "qsapi/secret.h"

namespace qsapi::qkd {

bool IsValidKeyId(std::string_view id) noexcept {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

namespace internal {
namespace {

using Json = nlohmann::json;

constexpr int kMaxJsonDepth = 8;
constexpr std::size_t kMaxBodyBytes = std::size_t{16} << 20;

// Printable returns `s` with anything but printable ASCII replaced by '?', cut to `max` characters:
// what a KME sends may end up in a log line.
std::string Printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (const char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > max) out += "...";
  return out;
}

void WipeStrings(Json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    SecureZero(s.data(), s.size());
  } else if (j.is_object() || j.is_array()) {
    for (auto& child : j) WipeStrings(child);
  }
}

Result<Json> ParseBounded(std::string_view body, std::string_view what, ErrorCode code) {
  if (body.size() > kMaxBodyBytes) {
    return Error(code, std::string(what) + " is larger than " + std::to_string(kMaxBodyBytes) + " bytes");
  }
  if (!qsapi::internal::JsonDepthWithin(body, kMaxJsonDepth)) {
    return Error(code, std::string(what) + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error(code, std::string(what) + " is not valid JSON");
  if (!doc.is_object()) return Error(code, std::string(what) + " is not a JSON object");
  return doc;
}

// Members checks that every member of `obj` is in `allowed`, each with its check.
struct Member {
  std::string_view name;
  bool (*type_ok)(const Json&);
};
bool IsString(const Json& j) { return j.is_string(); }
bool IsUnsigned(const Json& j) { return j.is_number_unsigned(); }
bool IsObject(const Json& j) { return j.is_object(); }
bool IsArray(const Json& j) { return j.is_array(); }

Status CheckMembers(const Json& obj, std::initializer_list<Member> allowed, std::string_view what, ErrorCode code) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const auto m = std::find_if(allowed.begin(), allowed.end(), [&](const Member& a) { return a.name == it.key(); });
    if (m == allowed.end()) {
      return Error(code, std::string(what) + " has an unexpected member \"" + Printable(it.key(), 40) + "\"");
    }
    if (!m->type_ok(*it)) {
      return Error(code, std::string(what) + " member \"" + std::string(m->name) + "\" has the wrong type");
    }
  }
  return OkStatus();
}

Status Require(const Json& obj, std::initializer_list<std::string_view> names, std::string_view what, ErrorCode code) {
  for (const std::string_view n : names) {
    if (!obj.contains(n)) return Error(code, std::string(what) + " lacks the member \"" + std::string(n) + "\"");
  }
  return OkStatus();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return out;
}

// DecodeKey decodes RFC 4648 base64 (padded, or unpadded as some KMEs send it) into secret memory.
Result<SecretBytes> DecodeKey(std::string_view b64, const std::string& key_id) {
  const std::size_t max = b64.size() / 4 * 3 + 3;
  SecretBytes out(max == 0 ? 1 : max);
  for (const int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING}) {
    std::size_t len = 0;
    const char* end = nullptr;
    if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end, variant) == 0 &&
        end == b64.data() + b64.size()) {
      if (len == 0) break;
      out.Shrink(len);
      return out;
    }
  }
  return DataLoss("the key of key_ID " + key_id + " is not valid base64 (RFC 4648)");
}

}  // namespace

Result<KmeStatus> ParseStatus(std::string_view body) {
  constexpr std::string_view kWhat = "the KME's Status";
  constexpr ErrorCode kCode = ErrorCode::kDataLoss;
  QSAPI_ASSIGN_OR_RETURN(Json doc, ParseBounded(body, kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(CheckMembers(doc,
                                     {{"source_KME_ID", IsString},
                                      {"target_KME_ID", IsString},
                                      {"master_SAE_ID", IsString},
                                      {"slave_SAE_ID", IsString},
                                      {"key_size", IsUnsigned},
                                      {"stored_key_count", IsUnsigned},
                                      {"max_key_count", IsUnsigned},
                                      {"max_key_per_request", IsUnsigned},
                                      {"max_key_size", IsUnsigned},
                                      {"min_key_size", IsUnsigned},
                                      {"max_SAE_ID_count", IsUnsigned},
                                      {"status_extension", IsObject}},
                                     kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(
      Require(doc,
              {"source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID", "key_size", "stored_key_count",
               "max_key_count", "max_key_per_request", "max_key_size", "min_key_size"},
              kWhat, kCode));
  KmeStatus s;
  s.source_kme_id = doc["source_KME_ID"].get<std::string>();
  s.target_kme_id = doc["target_KME_ID"].get<std::string>();
  s.master_sae_id = doc["master_SAE_ID"].get<std::string>();
  s.slave_sae_id = doc["slave_SAE_ID"].get<std::string>();
  s.key_size = doc["key_size"].get<std::uint64_t>();
  s.stored_key_count = doc["stored_key_count"].get<std::uint64_t>();
  s.max_key_count = doc["max_key_count"].get<std::uint64_t>();
  s.max_key_per_request = doc["max_key_per_request"].get<std::uint64_t>();
  s.max_key_size = doc["max_key_size"].get<std::uint64_t>();
  s.min_key_size = doc["min_key_size"].get<std::uint64_t>();
  if (doc.contains("max_SAE_ID_count")) s.max_sae_id_count = doc["max_SAE_ID_count"].get<std::uint64_t>();
  if (s.min_key_size > s.max_key_size) return Error(kCode, "the KME's Status has min_key_size > max_key_size");
  return s;
}

Result<std::vector<QkdKey>> ParseKeyContainer(std::string& body, const KeyContainerExpectation& expect) {
  constexpr std::string_view kWhat = "the KME's Key container";
  constexpr ErrorCode kCode = ErrorCode::kDataLoss;
  Json doc;
  // Wipes the body and the parsed document's strings on every return path.
  struct Wiper {
    std::string& body;
    Json& doc;
    Wiper(std::string& b, Json& d) : body(b), doc(d) {}
    Wiper(const Wiper&) = delete;
    Wiper& operator=(const Wiper&) = delete;
    Wiper(Wiper&&) = delete;
    Wiper& operator=(Wiper&&) = delete;
    ~Wiper() noexcept {  // NOLINT(bugprone-exception-escape): walks and zeroes strings, allocates nothing
      WipeStrings(doc);
      SecureZero(body.data(), body.size());
    }
  } wiper(body, doc);

  QSAPI_ASSIGN_OR_RETURN(doc, ParseBounded(body, kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(CheckMembers(doc, {{"keys", IsArray}, {"key_container_extension", IsObject}}, kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(Require(doc, {"keys"}, kWhat, kCode));
  const Json& keys = doc["keys"];
  if (keys.empty()) return Error(kCode, std::string(kWhat) + " holds no keys");
  if (keys.size() > kMaxKeysPerContainer) return Error(kCode, std::string(kWhat) + " holds too many keys");
  if (expect.number != 0 && keys.size() != expect.number) {
    return Error(kCode, std::string(kWhat) + " holds " + std::to_string(keys.size()) + " keys, " +
                            std::to_string(expect.number) + " were requested");
  }
  std::vector<QkdKey> out;
  out.reserve(keys.size());
  std::set<std::string> seen;
  std::size_t first_size = 0;
  for (const Json& k : keys) {
    if (!k.is_object()) return Error(kCode, std::string(kWhat) + ": a key is not a JSON object");
    QSAPI_RETURN_IF_ERROR(CheckMembers(
        k, {{"key_ID", IsString}, {"key_ID_extension", IsObject}, {"key", IsString}, {"key_extension", IsObject}},
        "a key of the Key container", kCode));
    QSAPI_RETURN_IF_ERROR(Require(k, {"key_ID", "key"}, "a key of the Key container", kCode));
    const auto& id = k["key_ID"].get_ref<const std::string&>();
    if (!IsValidKeyId(id)) return Error(kCode, "malformed key_ID \"" + Printable(id, 40) + "\" (not a UUID)");
    if (!seen.insert(Lower(id)).second) return Error(kCode, "duplicate key_ID " + id + " in one response");
    QSAPI_ASSIGN_OR_RETURN(SecretBytes key, DecodeKey(k["key"].get_ref<const std::string&>(), id));
    const std::size_t bits = key.size() * 8;
    if (bits > kMaxKeySizeBits) return Error(kCode, "the key of key_ID " + id + " is larger than 65536 bits");
    if (expect.size_bits != 0 && bits != expect.size_bits) {
      return Error(kCode, "the key of key_ID " + id + " has " + std::to_string(bits) + " bits, " +
                              std::to_string(expect.size_bits) + " were requested");
    }
    if (first_size == 0) first_size = bits;
    if (bits != first_size) return Error(kCode, std::string(kWhat) + " holds keys of different sizes");
    out.push_back(QkdKey{id, std::move(key)});
  }
  if (!expect.key_ids.empty()) {
    if (out.size() != expect.key_ids.size()) {
      return Error(kCode, std::string(kWhat) + " holds " + std::to_string(out.size()) + " keys, " +
                              std::to_string(expect.key_ids.size()) + " key_IDs were asked for");
    }
    std::vector<QkdKey> ordered;
    ordered.reserve(out.size());
    for (const std::string& want : expect.key_ids) {
      const std::string w = Lower(want);
      auto it =
          std::find_if(out.begin(), out.end(), [&](const QkdKey& q) { return !q.key.empty() && Lower(q.key_id) == w; });
      if (it == out.end()) return Error(kCode, "the KME did not return key_ID " + want + " (it returned other keys)");
      ordered.push_back(QkdKey{want, std::move(it->key)});
    }
    out = std::move(ordered);
  }
  return out;
}

std::optional<std::string> ErrorMessage(std::string_view body) {
  if (body.empty() || body.size() > std::size_t{64} * 1024 || !qsapi::internal::JsonDepthWithin(body, kMaxJsonDepth))
    return std::nullopt;
  const Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const auto it = doc.find("message");
  if (it == doc.end() || !it->is_string()) return std::nullopt;
  return Printable(it->get_ref<const std::string&>());
}

std::string KeyRequestJson(const KeyRequest& request) {
  Json j = Json::object();
  j["number"] = request.number;
  if (request.size != 0) j["size"] = request.size;
  if (!request.additional_slave_sae_ids.empty()) j["additional_slave_SAE_IDs"] = request.additional_slave_sae_ids;
  return j.dump();
}

std::string KeyIdsJson(std::span<const std::string> key_ids) {
  Json ids = Json::array();
  for (const std::string& id : key_ids) ids.push_back(Json{{"key_ID", id}});
  return Json{{"key_IDs", ids}}.dump();
}

Result<KeyRequest> ParseKeyRequest(std::string_view body, bool* has_mandatory_extensions) {
  constexpr std::string_view kWhat = "the Key request";
  constexpr ErrorCode kCode = ErrorCode::kInvalidArgument;
  KeyRequest r;
  if (has_mandatory_extensions != nullptr) *has_mandatory_extensions = false;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return r;
  QSAPI_ASSIGN_OR_RETURN(Json doc, ParseBounded(body, kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(CheckMembers(doc,
                                     {{"number", IsUnsigned},
                                      {"size", IsUnsigned},
                                      {"additional_slave_SAE_IDs", IsArray},
                                      {"extension_mandatory", IsArray},
                                      {"extension_optional", IsArray}},
                                     kWhat, kCode));
  if (doc.contains("number")) {
    const auto n = doc["number"].get<std::uint64_t>();
    if (n < 1 || n > kMaxKeysPerContainer) return Error(kCode, "number shall be between 1 and 4096");
    r.number = static_cast<std::uint32_t>(n);
  }
  if (doc.contains("size")) {
    const auto s = doc["size"].get<std::uint64_t>();
    if (s > kMaxKeySizeBits) return Error(kCode, "size is larger than 65536 bits");
    r.size = static_cast<std::uint32_t>(s);
  }
  if (doc.contains("additional_slave_SAE_IDs")) {
    for (const Json& id : doc["additional_slave_SAE_IDs"]) {
      if (!id.is_string()) return Error(kCode, "additional_slave_SAE_IDs must hold strings");
      r.additional_slave_sae_ids.push_back(id.get<std::string>());
    }
  }
  for (const char* ext : {"extension_mandatory", "extension_optional"}) {
    if (!doc.contains(ext)) continue;
    for (const Json& e : doc[ext]) {
      if (!e.is_object()) return Error(kCode, std::string(ext) + " must hold objects");
    }
    if (std::string_view(ext) == "extension_mandatory" && !doc[ext].empty() && has_mandatory_extensions != nullptr) {
      *has_mandatory_extensions = true;
    }
  }
  return r;
}

Result<std::vector<std::string>> ParseKeyIds(std::string_view body) {
  constexpr std::string_view kWhat = "the Key IDs object";
  constexpr ErrorCode kCode = ErrorCode::kInvalidArgument;
  QSAPI_ASSIGN_OR_RETURN(Json doc, ParseBounded(body, kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(CheckMembers(doc, {{"key_IDs", IsArray}, {"key_IDs_extension", IsObject}}, kWhat, kCode));
  QSAPI_RETURN_IF_ERROR(Require(doc, {"key_IDs"}, kWhat, kCode));
  std::vector<std::string> ids;
  for (const Json& k : doc["key_IDs"]) {
    if (!k.is_object()) return Error(kCode, "key_IDs must hold objects");
    QSAPI_RETURN_IF_ERROR(
        CheckMembers(k, {{"key_ID", IsString}, {"key_ID_extension", IsObject}}, "a key_IDs entry", kCode));
    QSAPI_RETURN_IF_ERROR(Require(k, {"key_ID"}, "a key_IDs entry", kCode));
    const auto& id = k["key_ID"].get_ref<const std::string&>();
    if (!IsValidKeyId(id)) return Error(kCode, "key_ID \"" + Printable(id, 40) + "\" is not a UUID");
    ids.push_back(id);
  }
  if (ids.empty()) return Error(kCode, "key_IDs is empty");
  if (ids.size() > kMaxKeysPerContainer) return Error(kCode, "too many key_IDs");
  return ids;
}

std::string StatusJson(const KmeStatus& s) {
  return Json{{"source_KME_ID", s.source_kme_id},
              {"target_KME_ID", s.target_kme_id},
              {"master_SAE_ID", s.master_sae_id},
              {"slave_SAE_ID", s.slave_sae_id},
              {"key_size", s.key_size},
              {"stored_key_count", s.stored_key_count},
              {"max_key_count", s.max_key_count},
              {"max_key_per_request", s.max_key_per_request},
              {"max_key_size", s.max_key_size},
              {"min_key_size", s.min_key_size},
              {"max_SAE_ID_count", s.max_sae_id_count}}
      .dump();
}

std::string KeyContainerJson(std::span<const QkdKey> keys) {
  // Written by hand into one pre-sized buffer: the base64 text of the keys must not be left behind
  // in buffers a growing string would free.
  constexpr std::string_view kOpen = R"({"keys":[)";
  constexpr std::string_view kClose = "]}";
  constexpr std::string_view kId = R"({"key_ID":")";
  constexpr std::string_view kKey = R"(","key":")";
  constexpr std::string_view kEnd = R"("})";
  std::size_t total = kOpen.size() + kClose.size();
  for (const QkdKey& k : keys) {
    total += kId.size() + k.key_id.size() + kKey.size() + kEnd.size() + 1 +
             sodium_base64_encoded_len(k.key.size(), sodium_base64_VARIANT_ORIGINAL);
  }
  std::string out;
  out.reserve(total);
  out += kOpen;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i != 0) out += ',';
    out += kId;
    out += keys[i].key_id;
    out += kKey;
    const std::size_t at = out.size();
    const std::size_t len = sodium_base64_encoded_len(keys[i].key.size(), sodium_base64_VARIANT_ORIGINAL);
    out.resize(at + len);  // within the reserved capacity: no reallocation
    sodium_bin2base64(out.data() + at, len, keys[i].key.data(), keys[i].key.size(), sodium_base64_VARIANT_ORIGINAL);
    out.resize(at + len - 1);  // drop the terminating NUL
    out += kEnd;
  }
  out += kClose;
  return out;
}

std::string ErrorJson(std::string_view message) { return Json{{"message", std::string(message)}}.dump(); }

}  // namespace internal
}  // namespace qsapi::qkd
