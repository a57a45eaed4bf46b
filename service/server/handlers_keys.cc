// Handlers of the key lifecycle routes (/v1/keys...), and the JSON forms the handlers share.
#include <chrono>
#include <cstring>

#include <sodium.h>

#include "server/internal/api_internal.h"
#include "server/internal/request_parsing.h"

namespace qsapi::server::internal {
namespace {

std::int64_t Seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string B64(ByteView b) {
  std::string out(sodium_base64_ENCODED_LEN(b.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string JsonText(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json KeyJson(const keystore::KeyInfo& k) {
  json versions = json::array();
  for (const auto& v : k.versions) {
    versions.push_back({{"version", v.version},
                        {"state", keystore::VersionStateName(v.state)},
                        {"created", Seconds(v.created)},
                        {"operations", v.operations}});
  }
  return {{"name", k.name},
          {"id", keystore::KeyIdHex(k.id)},
          {"type", keystore::KeyTypeName(k.type)},
          {"purpose", keystore::KeyPurposeName(k.type.purpose())},
          {"created", Seconds(k.created)},
          {"rotated", Seconds(k.rotated)},
          {"current_version", k.current_version},
          {"policy",
           {{"auto_rotate_seconds", k.policy.auto_rotate_period.count()},
            {"max_operations_per_version", k.policy.max_operations_per_version},
            {"min_decryption_version", k.policy.min_decryption_version},
            {"deletion_allowed", k.policy.deletion_allowed}}},
          {"versions", versions}};
}

Status Request::AllowKey(const std::string& key) const {
  if (IsReservedKeyName(key)) {
    return PermissionDenied("key names starting with \"" + std::string(kReservedKeyPrefix) +
                            "\" are reserved for qsapid itself");
  }
  if (!policy.AllowsKey(key)) {
    return PermissionDenied("\"" + who + "\" may not " + std::string(OperationName(route.operation)) + " with key \"" +
                            key + "\"");
  }
  return OkStatus();
}

Outcome HandleKeysList(Request& r) {
  Outcome out;
  Result<std::vector<keystore::KeyInfo>> keys = r.api.parts().keystore.List();
  if (!keys.ok()) {
    out.result = keys.error();
    return out;
  }
  json list = json::array();
  for (const auto& k : *keys) {
    if (r.policy.AllowsKey(k.name) && !IsReservedKeyName(k.name)) list.push_back(KeyJson(k));
  }
  out.result = json{{"keys", list}};
  return out;
}

Outcome HandleKeysCreate(Request& r) {
  Outcome out;
  out.version = 1;
  out.status = 201;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(std::string name, StringField(r.body, "name", true, 64));
    out.key = name;
    if (Status allowed = r.AllowKey(name); !allowed.ok()) {
      out.detail = IsReservedKeyName(name) ? "reserved key" : "policy";
      return allowed.error();
    }
    QSAPI_ASSIGN_OR_RETURN(std::string type_name, StringField(r.body, "type", true, 64));
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyType type, keystore::ParseKeyType(type_name));
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyPolicy policy, PolicyFromJson(r.body, {}, /*creating=*/true));
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, r.api.parts().keystore.Create(name, type, policy));
    return KeyJson(info);
  }();
  return out;
}

Outcome HandleKeyRead(Request& r) {
  Outcome out;
  Result<keystore::KeyInfo> k = r.api.parts().keystore.Get(r.name);
  out.result = k.ok() ? Result<json>(KeyJson(*k)) : Result<json>(k.error());
  return out;
}

Outcome HandleKeyDestroy(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.version = r.query_version;
  const Status s = r.query_version == 0 ? ks.Destroy(r.name) : ks.DestroyVersion(r.name, r.query_version);
  out.result = s.ok() ? Result<json>(json{{"destroyed", r.name}}) : Result<json>(s.error());
  return out;
}

Outcome HandleKeyRotate(Request& r) {
  Outcome out;
  Result<keystore::KeyInfo> k = r.api.parts().keystore.Rotate(r.name);
  out.version = k.ok() ? k->current_version : 0;
  out.result = k.ok() ? Result<json>(KeyJson(*k)) : Result<json>(k.error());
  return out;
}

Outcome HandleKeyConfig(Request& r) {
  Outcome out;
  keystore::Keystore& ks = r.api.parts().keystore;
  out.result = [&]() -> Result<json> {
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo current, ks.Get(r.name));
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyPolicy policy, PolicyFromJson(r.body, current.policy, /*creating=*/false));
    QSAPI_ASSIGN_OR_RETURN(keystore::KeyInfo info, ks.UpdatePolicy(r.name, policy));
    return KeyJson(info);
  }();
  return out;
}

Outcome HandleKeyPublic(Request& r) {
  Outcome out;
  out.version = r.query_version;
  Result<Bytes> p = r.api.parts().keystore.PublicKey(r.name, r.query_version);
  out.result = p.ok() ? Result<json>(json{{"name", r.name}, {"public_key", B64(*p)}}) : Result<json>(p.error());
  return out;
}

}  // namespace qsapi::server::internal
