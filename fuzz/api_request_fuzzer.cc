// Fuzzes the decoding of REST requests (service/server/internal/request_parsing.h) the way
// Api::Handle uses it: the first line of the input is the request target ("path?query"), the rest
// is the body. Every field any route reads is decoded from the body, and from each item of a
// {"batch": [...]}: strings, base64 fields, key types, key policies, ciphertext and signature text
// forms, and the numeric and boolean members.
// Invariants checked: no crash, exception or sanitizer report; every failure is kInvalidArgument;
// a decoded version is 1..999999999 or 0 when absent; a body accepted is a JSON object (with no
// member twice in one object); a /config body never changes name or type; the wipe leaves no
// string byte set. fuzz/dict/api_request.dict is its dictionary.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "qsapi/keystore/keystore.h"
#include "server/internal/request_parsing.h"

namespace {

using nlohmann::json;
namespace rp = qsapi::server::internal;

using qsapi::fuzz::Check;

template <typename T>
void ExpectInvalidOnError(const qsapi::Result<T>& r) {
  if (!r.ok()) Check(r.error().code() == qsapi::ErrorCode::kInvalidArgument);
}

// DecodeItem reads what the key-operation routes read from one request object.
qsapi::Result<json> DecodeItem(const json& item) {
  for (const char* f : {"plaintext", "associated_data", "message"})
    ExpectInvalidOnError(rp::BytesField(item, f, false));
  for (const char* f : {"ciphertext", "signature"}) {
    auto text = rp::StringField(item, f, false, std::size_t{96} << 20);
    ExpectInvalidOnError(text);
    if (text.ok() && !text->empty()) {
      auto blob = qsapi::keystore::FromText(*text);
      ExpectInvalidOnError(blob);
      if (blob.ok()) Check(qsapi::keystore::ParseHeader(*blob).ok());
    }
  }
  auto name = rp::StringField(item, "name", false, 64);
  ExpectInvalidOnError(name);
  if (name.ok()) Check(name->size() <= 64);
  auto type = rp::StringField(item, "type", false, 64);
  if (type.ok() && !type->empty()) ExpectInvalidOnError(qsapi::keystore::ParseKeyType(*type));
  auto policy = rp::PolicyFromJson(item, {}, /*creating=*/true);
  ExpectInvalidOnError(policy);
  if (policy.ok()) Check(policy->auto_rotate_period.count() >= 0);
  auto config = rp::PolicyFromJson(item, {}, /*creating=*/false);  // /v1/keys/NAME/config
  ExpectInvalidOnError(config);
  if (config.ok()) Check(!item.contains("name") && !item.contains("type"));
  ExpectInvalidOnError(rp::StringField(item, "source", false, 64));
  // The inline checks of the datakey, decapsulate and random routes.
  if (item.contains("plaintext") && item["plaintext"].is_boolean()) (void)item["plaintext"].get<bool>();
  if (item.contains("version") && item["version"].is_number_unsigned()) (void)item["version"].get<std::uint32_t>();
  if (item.contains("bytes") && item["bytes"].is_number_unsigned()) (void)item["bytes"].get<std::uint64_t>();
  return json{{"ok", true}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = input.find('\n');
  const std::string_view target = input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);

  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  auto decoded = rp::PercentDecode(path);
  ExpectInvalidOnError(decoded);
  if (decoded.ok()) {
    Check(decoded->size() <= path.size());
    for (const std::string& part : rp::Split(*decoded)) Check(!part.empty() && part.find('/') == std::string::npos);
  }
  const std::optional<std::string> v = rp::QueryParam(query, "version");
  auto version = rp::ParseVersion(v);
  ExpectInvalidOnError(version);
  if (version.ok()) Check(v ? *version <= 999999999U : *version == 0);

  auto parsed = rp::ParseRequestBody(body);
  ExpectInvalidOnError(parsed);
  if (!parsed.ok()) return 0;
  Check(parsed->is_object());
  auto r = rp::ForEach(*parsed, 1000, DecodeItem);
  ExpectInvalidOnError(r);
  if (r.ok()) (void)r->dump(-1, ' ', false, json::error_handler_t::replace);
  // The wipe every request's parsed body gets: afterwards no string holds a non-zero byte.
  rp::WipeJsonStrings(*parsed);
  std::vector<const json*> todo{&*parsed};
  while (!todo.empty()) {
    const json* j = todo.back();
    todo.pop_back();
    if (j->is_string()) {
      for (const char c : j->get_ref<const std::string&>()) Check(c == '\0');
    } else if (j->is_structured()) {
      for (const auto& item : *j) todo.push_back(&item);
    }
  }
  return 0;
}
