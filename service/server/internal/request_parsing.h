// Decoding of REST request parts, apart from the handlers so that a fuzz target can drive it
// (fuzz/api_request_fuzzer.cc): the path and query, the JSON body and its fields, key policies
// and batches. Every function returns kInvalidArgument with a message naming the field on bad
// input and never throws.
#ifndef QSAPI_SRC_SERVER_INTERNAL_REQUEST_PARSING_H_
#define QSAPI_SRC_SERVER_INTERNAL_REQUEST_PARSING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::server::internal {

// ParseRequestBody parses a request body: an empty body is {}, anything else must be a JSON object
// in which no object names a member twice.
Result<nlohmann::json> ParseRequestBody(std::string_view body);
// WipeJsonStrings overwrites every string value in `j` with zeros (plaintexts and tokens in a
// parsed body), before the json is freed.
void WipeJsonStrings(nlohmann::json& j) noexcept;

// FromB64 decodes standard base64 with padding (RFC 4648, 4); `field` names it in the error.
Result<Bytes> FromB64(const std::string& field, const std::string& s);
// PercentDecode decodes %XX escapes of a request path.
Result<std::string> PercentDecode(std::string_view s);
// Split returns the non-empty '/'-separated segments of a path.
std::vector<std::string> Split(std::string_view path);
// QueryParam returns the value of `name` in a query string ("" for a bare name), or nullopt.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);
// ParseVersion reads a "version" query value: absent is 0, else 1 to 9 decimal digits.
Result<std::uint32_t> ParseVersion(const std::optional<std::string>& v);

// Field readers with clear errors: a string member (at most `max` bytes), a base64 member.
Result<std::string> StringField(const nlohmann::json& j, const char* name, bool required, std::size_t max = 1 << 20);
Result<Bytes> BytesField(const nlohmann::json& j, const char* name, bool required);
// SecretField decodes a base64 member straight into secret memory (plaintexts, keys): no copy of
// the decoded bytes is left behind on any path.
Result<SecretBytes> SecretField(const nlohmann::json& j, const char* name, bool required);

// PolicyFromJson applies the policy members of a key creation or configuration body to `p`;
// unknown members are errors, and so are "name" and "type" unless `creating`.
Result<keystore::KeyPolicy> PolicyFromJson(const nlohmann::json& j, keystore::KeyPolicy p, bool creating);

// ForEach runs `one` over a single request object or over {"batch": [...]} and collects results;
// in a batch each item succeeds or fails on its own.
template <typename F>
Result<nlohmann::json> ForEach(const nlohmann::json& body, std::size_t max_batch, F one) {
  if (!body.contains("batch")) return one(body);
  if (!body["batch"].is_array()) return InvalidArgument("field \"batch\" must be an array");
  if (body["batch"].size() > max_batch) {
    return InvalidArgument("a batch may hold at most " + std::to_string(max_batch) + " items");
  }
  nlohmann::json results = nlohmann::json::array();
  for (const nlohmann::json& item : body["batch"]) {
    if (!item.is_object()) {
      results.push_back({{"error", {{"code", "INVALID_ARGUMENT"}, {"message", "a batch item must be an object"}}}});
      continue;
    }
    Result<nlohmann::json> r = one(item);
    if (r.ok()) {
      results.push_back(std::move(*r));
    } else {
      results.push_back({{"error", {{"code", ErrorCodeName(r.error().code())}, {"message", r.error().message()}}}});
    }
  }
  return nlohmann::json{{"batch", results}};
}

}  // namespace qsapi::server::internal

#endif  // QSAPI_SRC_SERVER_INTERNAL_REQUEST_PARSING_H_
