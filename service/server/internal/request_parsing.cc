#include "server/internal/request_parsing.h"

#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <sodium.h>

#include "common/internal/text.h"

namespace qsapi::server::internal {

using nlohmann::json;

namespace {

// WipingAllocator zeroes what it frees. The parsed body's own type uses it for its strings and its
// nodes, so that neither the parser's token buffer nor any intermediate string leaves a plaintext
// or a token in freed heap.
template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>& /*other*/) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    SecureZero(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
};
template <typename T, typename U>
bool operator==(const WipingAllocator<T>& /*a*/, const WipingAllocator<U>& /*b*/) noexcept {
  return true;
}

using WipedString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;
using WipedJson = nlohmann::basic_json<std::map, std::vector, WipedString, bool, std::int64_t, std::uint64_t, double,
                                       WipingAllocator>;

constexpr int kMaxBodyDepth = 32;

// ToJson moves a parsed body into the json the handlers read (iteratively: the depth is bounded
// before, but no recursion is needed). Its strings are wiped with the request (WipeJsonStrings).
json ToJson(WipedJson& in) {
  json out;
  std::vector<std::pair<WipedJson*, json*>> todo{{&in, &out}};
  while (!todo.empty()) {
    auto [from, to] = todo.back();
    todo.pop_back();
    switch (from->type()) {
      case WipedJson::value_t::string: {
        const auto& v = from->get_ref<const WipedString&>();
        *to = std::string(v.data(), v.size());
        break;
      }
      case WipedJson::value_t::boolean: *to = from->get<bool>(); break;
      case WipedJson::value_t::number_integer: *to = from->get<std::int64_t>(); break;
      case WipedJson::value_t::number_unsigned: *to = from->get<std::uint64_t>(); break;
      case WipedJson::value_t::number_float: *to = from->get<double>(); break;
      case WipedJson::value_t::array: {
        *to = json::array();
        for (std::size_t i = 0; i < from->size(); ++i) to->push_back(nullptr);
        for (std::size_t i = 0; i < from->size(); ++i) todo.emplace_back(&(*from)[i], &(*to)[i]);
        break;
      }
      case WipedJson::value_t::object: {
        *to = json::object();
        for (auto it = from->begin(); it != from->end(); ++it) {
          json& slot = (*to)[std::string(it.key().data(), it.key().size())];
          todo.emplace_back(&it.value(), &slot);
        }
        break;
      }
      default: *to = nullptr; break;  // null (binary and discarded do not come out of parse)
    }
  }
  return out;
}

// The walks below reach the values through get_ptr (noexcept: nullptr for another type) and the
// containers behind it, so that nothing on the way can throw.
void WipeWipedStrings(WipedJson& j) noexcept {
  std::vector<WipedJson*> todo{&j};
  while (!todo.empty()) {
    WipedJson* v = todo.back();
    todo.pop_back();
    if (auto* s = v->get_ptr<WipedJson::string_t*>()) {
      SecureZero(s->data(), s->size());  // a short string lives inside its node (no allocation to wipe)
    } else if (auto* a = v->get_ptr<WipedJson::array_t*>()) {
      for (WipedJson& item : *a) todo.push_back(&item);
    } else if (auto* o = v->get_ptr<WipedJson::object_t*>()) {
      for (auto& member : *o) todo.push_back(&member.second);
    }
  }
}

}  // namespace

Result<json> ParseRequestBody(std::string_view body) {
  if (body.empty()) return json::object();
  if (!qsapi::internal::JsonDepthWithin(body, kMaxBodyDepth)) {
    return InvalidArgument("the request body nests deeper than " + std::to_string(kMaxBodyDepth) + " levels");
  }
  // A key given twice is refused rather than read as its last value: a proxy or a policy engine in
  // front of qsapid may have read the first.
  std::vector<std::set<std::string>> objects;
  std::string duplicate;
  const WipedJson::parser_callback_t check = [&](int, WipedJson::parse_event_t event, WipedJson& parsed) {
    if (event == WipedJson::parse_event_t::object_start) {
      objects.emplace_back();
    } else if (event == WipedJson::parse_event_t::object_end) {
      if (!objects.empty()) objects.pop_back();
    } else if (event == WipedJson::parse_event_t::key && !objects.empty() && duplicate.empty()) {
      const auto& k = parsed.get_ref<const WipedString&>();
      std::string key(k.data(), k.size());
      if (!objects.back().insert(key).second) duplicate = std::move(key);
    }
    return true;
  };
  WipedJson parsed = WipedJson::parse(body, check, false);
  if (parsed.is_discarded()) return InvalidArgument("the request body is not valid JSON");
  const struct Wipe {
    explicit Wipe(WipedJson& json_in) : j(json_in) {}
    Wipe(const Wipe&) = delete;
    Wipe& operator=(const Wipe&) = delete;
    Wipe(Wipe&&) = delete;
    Wipe& operator=(Wipe&&) = delete;
    ~Wipe() { WipeWipedStrings(j); }
    WipedJson& j;
  } wipe{parsed};
  if (!duplicate.empty()) {
    return InvalidArgument("the request body names field \"" + duplicate.substr(0, 64) + "\" twice in one object");
  }
  if (!parsed.is_object()) return InvalidArgument("the request body must be a JSON object");
  return ToJson(parsed);
}

void WipeJsonStrings(json& j) noexcept {
  std::vector<json*> todo{&j};
  while (!todo.empty()) {
    json* v = todo.back();
    todo.pop_back();
    if (auto* s = v->get_ptr<json::string_t*>()) {
      SecureZero(s->data(), s->size());
    } else if (auto* a = v->get_ptr<json::array_t*>()) {
      for (json& item : *a) todo.push_back(&item);
    } else if (auto* o = v->get_ptr<json::object_t*>()) {
      for (auto& member : *o) todo.push_back(&member.second);
    }
  }
}

Result<Bytes> FromB64(const std::string& field, const std::string& s) {
  Bytes out(s.size() / 4 * 3 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != s.data() + s.size()) {
    return InvalidArgument("field \"" + field + "\" is not valid base64 (RFC 4648, with padding)");
  }
  out.resize(len);
  return out;
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || std::isxdigit(static_cast<unsigned char>(s[i + 1])) == 0 ||
        std::isxdigit(static_cast<unsigned char>(s[i + 2])) == 0) {
      return InvalidArgument("malformed percent-encoding in the path");
    }
    out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return out;
}

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::string_view part =
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!part.empty()) parts.emplace_back(part);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  std::size_t start = 0;
  while (start < query.size()) {
    const std::size_t amp = query.find('&', start);
    const std::string_view kv =
        query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    const std::size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) return std::string(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return std::nullopt;
}

Result<std::uint32_t> ParseVersion(const std::optional<std::string>& v) {
  if (!v) return 0U;
  if (v->empty() || v->size() > 9 || v->find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("version must be a positive integer");
  }
  return static_cast<std::uint32_t>(std::stoul(*v));
}

Result<std::string> StringField(const json& j, const char* name, bool required, std::size_t max) {
  if (!j.contains(name)) {
    if (required) return InvalidArgument(std::string("field \"") + name + "\" is required");
    return std::string();
  }
  if (!j[name].is_string()) return InvalidArgument(std::string("field \"") + name + "\" must be a string");
  std::string s = j[name].get<std::string>();
  if (s.size() > max) return InvalidArgument(std::string("field \"") + name + "\" is too long");
  return s;
}
Result<Bytes> BytesField(const json& j, const char* name, bool required) {
  QSAPI_ASSIGN_OR_RETURN(std::string s, StringField(j, name, required, std::size_t{96} << 20));
  return FromB64(name, s);
}

Result<keystore::KeyPolicy> PolicyFromJson(const json& j, keystore::KeyPolicy p, bool creating) {
  const auto uint_field = [&](const char* name, auto& out, std::uint64_t max) -> Status {
    if (!j.contains(name)) return OkStatus();
    if (!j[name].is_number_unsigned() || j[name].get<std::uint64_t>() > max) {
      return InvalidArgument(std::string("field \"") + name + "\" must be an integer 0.." + std::to_string(max));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(j[name].get<std::uint64_t>());
    return OkStatus();
  };
  std::int64_t rotate = p.auto_rotate_period.count();
  QSAPI_RETURN_IF_ERROR(uint_field("auto_rotate_seconds", rotate, 10ULL * 365 * 86400));
  p.auto_rotate_period = std::chrono::seconds(rotate);
  QSAPI_RETURN_IF_ERROR(uint_field("max_operations_per_version", p.max_operations_per_version, ~0ULL));
  QSAPI_RETURN_IF_ERROR(uint_field("min_decryption_version", p.min_decryption_version, 0xffffffffULL));
  if (j.contains("deletion_allowed")) {
    if (!j["deletion_allowed"].is_boolean()) return InvalidArgument("field \"deletion_allowed\" must be true or false");
    p.deletion_allowed = j["deletion_allowed"].get<bool>();
  }
  for (const auto& [k, v] : j.items()) {
    if (!creating && (k == "name" || k == "type")) {
      return InvalidArgument("field \"" + k +
                             "\" cannot be changed: a key's name and type are fixed (create another key)");
    }
    if (k != "auto_rotate_seconds" && k != "max_operations_per_version" && k != "min_decryption_version" &&
        k != "deletion_allowed" && k != "name" && k != "type") {
      return InvalidArgument("unknown field \"" + k.substr(0, 64) +
                             "\" (a key's policy has auto_rotate_seconds, max_operations_per_version, "
                             "min_decryption_version and deletion_allowed)");
    }
  }
  return p;
}

}  // namespace qsapi::server::internal

namespace qsapi::server::internal {

Result<SecretBytes> SecretField(const json& j, const char* name, bool required) {
  if (!j.is_object() || !j.contains(name)) {
    if (required) return InvalidArgument(std::string("field \"") + name + "\" is required");
    return SecretBytes();
  }
  if (!j[name].is_string()) return InvalidArgument(std::string("field \"") + name + "\" must be a base64 string");
  const auto& s = j[name].get_ref<const std::string&>();
  SecretBytes out(s.size() / 4 * 3 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != s.data() + s.size()) {
    return InvalidArgument(std::string("field \"") + name + "\" is not valid base64 (RFC 4648, with padding)");
  }
  out.Shrink(len);
  return out;
}

}  // namespace qsapi::server::internal
