// Parsing of QRNG service payloads: JSON (nlohmann, without exceptions) or hex.
//
// The body is untrusted. It is bounded before anything is parsed, its JSON nesting depth is
// bounded before nlohmann builds a tree (a valid payload nests at most two levels), and no error
// message quotes it: a payload is random key material.
#include "entropy/internal/qrng_payload.h"

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/internal/text.h"

namespace qsapi::entropy::internal {
namespace {

constexpr int kMaxJsonDepth = 8;

std::string_view TrimWhitespace(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const std::size_t last = s.find_last_not_of(kSpace);
  return s.substr(first, last - first + 1);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Error WrongLength(std::size_t got, std::size_t expected) {
  return InvalidArgument("QRNG payload holds " + std::to_string(got) + " bytes, expected " + std::to_string(expected));
}

Result<Bytes> DecodeHex(std::string_view hex, std::size_t expected) {
  if (hex.size() % 2 != 0) {
    return InvalidArgument("QRNG payload hex string has an odd number of digits (" + std::to_string(hex.size()) + ")");
  }
  if (hex.size() / 2 != expected) return WrongLength(hex.size() / 2, expected);
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      SecureZero(out.data(), out.size());
      return InvalidArgument("QRNG payload hex string has a non-hex character at offset " +
                             std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
    }
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

Result<Bytes> DecodeArray(const nlohmann::json& array, std::size_t expected) {
  if (array.size() != expected) return WrongLength(array.size(), expected);
  Bytes out(array.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const nlohmann::json& v = array[i];
    bool ok = false;
    if (v.is_number_unsigned()) {
      ok = v.get<std::uint64_t>() <= 255;
    } else if (v.is_number_integer()) {
      const std::int64_t n = v.get<std::int64_t>();
      ok = n >= 0 && n <= 255;
    }
    if (!ok) {
      SecureZero(out.data(), out.size());
      return InvalidArgument("QRNG payload element " + std::to_string(i) + " is not an integer in 0..255");
    }
    out[i] = static_cast<std::uint8_t>(v.get<std::uint64_t>());
  }
  return out;
}

Result<Bytes> DecodeValue(const nlohmann::json& v, std::size_t expected, std::string_view what) {
  if (v.is_array()) return DecodeArray(v, expected);
  if (v.is_string()) return DecodeHex(v.get_ref<const std::string&>(), expected);
  return InvalidArgument("QRNG payload " + std::string(what) + " is neither an array of integers nor a hex string");
}

}  // namespace

Result<Bytes> ParseQrngPayload(std::string_view body, std::size_t expected_bytes, std::string_view json_field,
                               std::size_t max_body_bytes) {
  if (body.size() > max_body_bytes) {
    return InvalidArgument("QRNG payload of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                           std::to_string(max_body_bytes) + " bytes");
  }
  const std::string_view text = TrimWhitespace(body);
  if (text.empty()) return InvalidArgument("QRNG payload is empty");
  const char first = text.front();
  if (first != '{' && first != '[' && first != '"') return DecodeHex(text, expected_bytes);

  if (!qsapi::internal::JsonDepthWithin(text, kMaxJsonDepth)) {
    return InvalidArgument("QRNG payload JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  // No callback, no exceptions: malformed input yields a discarded value.
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument("QRNG payload is not valid JSON");

  Result<Bytes> result = InvalidArgument("QRNG payload is not a JSON object, array or string");
  if (doc.is_object()) {
    const auto success = doc.find("success");
    if (success != doc.end() && success->is_boolean() && !success->get<bool>()) {
      result = Unavailable("QRNG service reported \"success\": false");
    } else {
      const auto field = doc.find(std::string(json_field));
      if (field == doc.end()) {
        result = InvalidArgument("QRNG payload JSON object has no field \"" + std::string(json_field) + "\"");
      } else {
        result = DecodeValue(*field, expected_bytes, "field \"" + std::string(json_field) + "\"");
      }
    }
  } else if (doc.is_array() || doc.is_string()) {
    result = DecodeValue(doc, expected_bytes, "JSON value");
  }
  // The parsed tree holds the random bytes too; wipe the string forms before the tree is freed.
  if (doc.is_object()) {
    const auto field = doc.find(std::string(json_field));
    if (field != doc.end() && field->is_string()) {
      auto& s = field->get_ref<std::string&>();
      SecureZero(s.data(), s.size());
    }
  } else if (doc.is_string()) {
    auto& s = doc.get_ref<std::string&>();
    SecureZero(s.data(), s.size());
  }
  return result;
}

}  // namespace qsapi::entropy::internal
