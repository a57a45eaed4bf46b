// Example calls for every REST route (one good request each), shared by the in-process API test
// and the over-HTTPS service test. `call(method, target, body)` performs a request as an admin and
// returns the parsed reply; it is used to create the keys and inputs the examples need.
#ifndef QSAPI_TESTS_SERVER_ROUTE_EXAMPLES_H_
#define QSAPI_TESTS_SERVER_ROUTE_EXAMPLES_H_

#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace qsapi::server {

// route ("POST /v1/encrypt/{name}") -> (target, body; null for no body)
using RouteExamples = std::map<std::string, std::pair<std::string, nlohmann::json>>;

template <typename Call>
RouteExamples MakeRouteExamples(Call&& call) {
  using nlohmann::json;
  call("POST", "/v1/keys", {{"name", "doc-aes"}, {"type", "AES-256-GCM"}, {"deletion_allowed", true}});
  call("POST", "/v1/keys", {{"name", "doc-sig"}, {"type", "ML-DSA-44"}});
  call("POST", "/v1/keys", {{"name", "doc-kem"}, {"type", "ML-KEM-768"}});
  const std::string ct = call("POST", "/v1/encrypt/doc-aes", {{"plaintext", "YQ=="}})["ciphertext"];
  const std::string sig = call("POST", "/v1/sign/doc-sig", {{"message", "YQ=="}})["signature"];
  const std::string kct = call("POST", "/v1/kem/doc-kem/encapsulate", json::object())["ciphertext"];
  const std::string sealed = call("POST", "/v1/seal/doc-kem", {{"plaintext", "YQ=="}})["sealed"];
  return {
      {"GET /v1/livez", {"/v1/livez", nullptr}},
      {"GET /v1/health", {"/v1/health", nullptr}},
      {"GET /metrics", {"/metrics", nullptr}},
      {"GET /v1/keys", {"/v1/keys", nullptr}},
      {"POST /v1/keys", {"/v1/keys", {{"name", "doc-new"}, {"type", "X-Wing"}, {"deletion_allowed", true}}}},
      {"GET /v1/keys/{name}", {"/v1/keys/doc-aes", nullptr}},
      {"DELETE /v1/keys/{name}", {"/v1/keys/doc-new", nullptr}},
      {"POST /v1/keys/{name}/rotate", {"/v1/keys/doc-sig/rotate", json::object()}},
      {"POST /v1/keys/{name}/config", {"/v1/keys/doc-aes/config", {{"auto_rotate_seconds", 3600}}}},
      {"GET /v1/keys/{name}/public", {"/v1/keys/doc-kem/public", nullptr}},
      {"POST /v1/encrypt/{name}", {"/v1/encrypt/doc-aes", {{"plaintext", "YQ=="}}}},
      {"POST /v1/decrypt/{name}", {"/v1/decrypt/doc-aes", {{"ciphertext", ct}}}},
      {"POST /v1/rewrap/{name}", {"/v1/rewrap/doc-aes", {{"ciphertext", ct}}}},
      {"POST /v1/datakey/{name}", {"/v1/datakey/doc-aes", json::object()}},
      {"POST /v1/sign/{name}", {"/v1/sign/doc-sig", {{"message", "YQ=="}}}},
      {"POST /v1/verify/{name}", {"/v1/verify/doc-sig", {{"message", "YQ=="}, {"signature", sig}}}},
      {"POST /v1/kem/{name}/encapsulate", {"/v1/kem/doc-kem/encapsulate", json::object()}},
      {"POST /v1/kem/{name}/decapsulate", {"/v1/kem/doc-kem/decapsulate", {{"ciphertext", kct}}}},
      {"POST /v1/random", {"/v1/random", {{"bytes", 8}}}},
      {"POST /v1/seal/{name}", {"/v1/seal/doc-kem", {{"plaintext", "YQ=="}}}},
      {"POST /v1/open/{name}", {"/v1/open/doc-kem", {{"sealed", sealed}}}},
  };
}

}  // namespace qsapi::server

#endif  // QSAPI_TESTS_SERVER_ROUTE_EXAMPLES_H_
