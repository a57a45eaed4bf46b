// The REST API v1 without the transport: authentication, authorisation (with audited denials),
// every route, batches, clear errors, and the audit chain afterwards.
#include "server/api.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <nlohmann/json.hpp>

#include "server/route_examples.h"
#include "support/test_support.h"

namespace qsapi::server {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("qsapi-api-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(keystore::InitEmbedded(dir_).ok());
    auto ks = keystore::Keystore::Open(keystore::EmbeddedOptions(dir_));
    ASSERT_TRUE(ks.ok()) << ks.error().ToString();
    ks_ = std::move(*ks);
    pool_ = entropy::EntropyPool::Create({}, {}).value();
    auto audit = AuditLog::Open(dir_ / "audit.log");
    ASSERT_TRUE(audit.ok());
    audit_ = std::move(*audit);
    auto tokens = TokenStore::Load(dir_ / "tokens.json").value();
    admin_ = std::string(TokenText(tokens.Create("admin", Policy{{"*"}, {"*"}}).value()));
    billing_ = std::string(
        TokenText(tokens.Create("billing", Policy{{"billing-*"}, {"encrypt", "decrypt", "keys.read"}}).value()));
    api_ = std::make_unique<Api>(ApiOptions{}, ks_.get(), pool_, std::move(tokens),
                                 std::vector<ClientCertificatePolicy>{{"svc.example", Policy{{"*"}, {"random"}}}},
                                 audit_.get());
  }
  void TearDown() override {
    api_.reset();
    ks_.reset();
    std::filesystem::remove_all(dir_);
  }
  ApiResponse Call(const std::string& method, const std::string& target, const json& body = nullptr,
                   const std::string& token = "", const std::string& cn = "") {
    ApiRequest r;
    r.method = method;
    const std::size_t q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string::npos ? "" : target.substr(q + 1);
    if (!body.is_null()) r.body = body.dump();
    if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
    r.peer_common_name = cn;
    return api_->Handle(r);
  }
  json Ok(const ApiResponse& r) {
    EXPECT_LT(r.status, 300U) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  static std::string Code(const ApiResponse& r) {
    const json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"]["code"].get<std::string>() : "";
  }

  std::filesystem::path dir_;
  std::unique_ptr<keystore::Keystore> ks_;
  std::shared_ptr<entropy::EntropyPool> pool_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Api> api_;
  std::string admin_, billing_;
};

TEST_F(ApiTest, AuthenticationAndAuthorisation) {
  auto r = Call("GET", "/v1/keys");
  EXPECT_EQ(r.status, 401U);
  EXPECT_THAT(r.body, HasSubstr("authentication required"));
  r = Call("GET", "/v1/keys", nullptr, "qsapi_00000000_forged");
  EXPECT_EQ(r.status, 401U);
  EXPECT_EQ(Code(r), "PERMISSION_DENIED");
  Ok(Call("POST", "/v1/keys", {{"name", "billing-main"}, {"type", "AES-256-GCM"}}, admin_));
  Ok(Call("POST", "/v1/keys", {{"name", "hr-main"}, {"type", "AES-256-GCM"}}, admin_));
  // billing may encrypt with billing-* keys only, and may not create keys.
  Ok(Call("POST", "/v1/encrypt/billing-main", {{"plaintext", "aGVsbG8="}}, billing_));
  r = Call("POST", "/v1/encrypt/hr-main", {{"plaintext", "aGVsbG8="}}, billing_);
  EXPECT_EQ(r.status, 403U);
  EXPECT_THAT(r.body, HasSubstr("\\\"token:billing\\\" may not encrypt with key \\\"hr-main\\\""));
  EXPECT_EQ(Call("POST", "/v1/keys", {{"name", "billing-x"}, {"type", "AES-256-GCM"}}, billing_).status, 403U);
  // The key list shows only what the policy covers.
  const json list = Ok(Call("GET", "/v1/keys", nullptr, billing_));
  ASSERT_EQ(list["keys"].size(), 1U);
  EXPECT_EQ(list["keys"][0]["name"], "billing-main");
  // A client certificate with a configured policy; an unknown CN is refused.
  Ok(Call("POST", "/v1/random", {{"bytes", 16}}, "", "svc.example"));
  EXPECT_EQ(Call("POST", "/v1/random", {{"bytes", 16}}, "", "stranger").status, 403U);
  EXPECT_EQ(Call("POST", "/v1/encrypt/billing-main", {{"plaintext", "aGVsbG8="}}, "", "svc.example").status, 403U);
  // Keys named "qsapid.*" belong to the service (they wrap its CA and TLS keys): even an admin
  // token with keys = "*" can neither create, list nor use them.
  ASSERT_TRUE(ks_->Create("qsapid.files", keystore::KeyType{}).ok());
  const auto wrapped = ks_->Encrypt("qsapid.files", ByteView(reinterpret_cast<const std::uint8_t*>("ca key"), 6));
  ASSERT_TRUE(wrapped.ok());
  r = Call("POST", "/v1/decrypt/qsapid.files", {{"ciphertext", keystore::ToText(*wrapped)}}, admin_);
  EXPECT_EQ(r.status, 403U);
  EXPECT_THAT(r.body, HasSubstr("reserved"));
  EXPECT_EQ(Call("POST", "/v1/keys", {{"name", "qsapid.mine"}, {"type", "AES-256-GCM"}}, admin_).status, 403U);
  EXPECT_EQ(Call("GET", "/v1/keys/qsapid.files", nullptr, admin_).status, 403U);
  const json all_keys = Ok(Call("GET", "/v1/keys", nullptr, admin_));
  ASSERT_FALSE(all_keys["keys"].empty());
  for (const auto& k : all_keys["keys"]) EXPECT_NE(k["name"], "qsapid.files");
  EXPECT_GE(api_->counters().denied.load(), 9U);
  // Every denial is in the audit log, and the chain holds.
  audit_.reset();
  const std::string log = testing::ReadFile(dir_ / "audit.log");
  EXPECT_THAT(log, HasSubstr("\"result\":\"PERMISSION_DENIED\""));
  EXPECT_THAT(log, HasSubstr("\"who\":\"token:billing\""));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("aGVsbG8=")));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(billing_)));
  auto v = VerifyAuditLog(dir_ / "audit.log");
  QSAPI_ASSERT_OK(v);
  EXPECT_GE(v->lines, 8U);
}

TEST_F(ApiTest, EncryptDecryptRewrapDatakeyAndBatches) {
  Ok(Call("POST", "/v1/keys", {{"name", "orders"}, {"type", "AES-256-GCM"}, {"deletion_allowed", true}}, admin_));
  json ct =
      Ok(Call("POST", "/v1/encrypt/orders", {{"plaintext", "c2VjcmV0"}, {"associated_data", "b3JkZXItMQ=="}}, admin_));
  const std::string c1 = ct["ciphertext"];
  EXPECT_TRUE(c1.starts_with("qsapi:v1:")) << c1;
  json pt = Ok(Call("POST", "/v1/decrypt/orders", {{"ciphertext", c1}, {"associated_data", "b3JkZXItMQ=="}}, admin_));
  EXPECT_EQ(pt["plaintext"], "c2VjcmV0");
  auto bad = Call("POST", "/v1/decrypt/orders", {{"ciphertext", c1}}, admin_);
  EXPECT_EQ(bad.status, 400U);
  EXPECT_EQ(Code(bad), "AUTHENTICATION_FAILED");
  Ok(Call("POST", "/v1/keys/orders/rotate", json::object(), admin_));
  json rewrapped =
      Ok(Call("POST", "/v1/rewrap/orders", {{"ciphertext", c1}, {"associated_data", "b3JkZXItMQ=="}}, admin_));
  EXPECT_TRUE(rewrapped["ciphertext"].get<std::string>().starts_with("qsapi:v2:"));
  // Batch: each item on its own.
  json batch =
      Ok(Call("POST", "/v1/encrypt/orders",
              {{"batch", {{{"plaintext", "YQ=="}}, {{"plaintext", "not base64!"}}, {{"plaintext", "Yg=="}}}}}, admin_));
  ASSERT_EQ(batch["batch"].size(), 3U);
  EXPECT_TRUE(batch["batch"][0].contains("ciphertext"));
  EXPECT_EQ(batch["batch"][1]["error"]["code"], "INVALID_ARGUMENT");
  EXPECT_TRUE(batch["batch"][2].contains("ciphertext"));
  json dk = Ok(Call("POST", "/v1/datakey/orders", {{"plaintext", false}}, admin_));
  EXPECT_FALSE(dk.contains("plaintext"));
  json dk2 = Ok(Call("POST", "/v1/datakey/orders", json::object(), admin_));
  json opened = Ok(Call("POST", "/v1/decrypt/orders", {{"ciphertext", dk2["ciphertext"]}}, admin_));
  EXPECT_EQ(opened["plaintext"], dk2["plaintext"]);
  // min_decryption_version through config.
  Ok(Call("POST", "/v1/keys/orders/config", {{"min_decryption_version", 2}}, admin_));
  auto old = Call("POST", "/v1/decrypt/orders", {{"ciphertext", c1}, {"associated_data", "b3JkZXItMQ=="}}, admin_);
  EXPECT_EQ(old.status, 409U);
  EXPECT_THAT(old.body, HasSubstr("minimum decryption version"));
  EXPECT_EQ(Call("POST", "/v1/keys/orders/config", {{"min_decryption_version", "2"}}, admin_).status, 400U);
  Ok(Call("DELETE", "/v1/keys/orders", nullptr, admin_));
  EXPECT_EQ(Call("GET", "/v1/keys/orders", nullptr, admin_).status, 404U);
}

TEST_F(ApiTest, SignVerifyKemRandomHealthMetrics) {
  Ok(Call("POST", "/v1/keys", {{"name", "release"}, {"type", "ML-DSA-65"}}, admin_));
  json sig = Ok(Call("POST", "/v1/sign/release", {{"message", "bWVzc2FnZQ=="}}, admin_));
  json ok =
      Ok(Call("POST", "/v1/verify/release", {{"message", "bWVzc2FnZQ=="}, {"signature", sig["signature"]}}, admin_));
  EXPECT_EQ(ok["valid"], true);
  json no = Ok(Call("POST", "/v1/verify/release", {{"message", "b3RoZXI="}, {"signature", sig["signature"]}}, admin_));
  EXPECT_EQ(no["valid"], false);
  Ok(Call("POST", "/v1/keys", {{"name", "inbox"}, {"type", "X-Wing"}}, admin_));
  json pub = Ok(Call("GET", "/v1/keys/inbox/public", nullptr, admin_));
  EXPECT_FALSE(pub["public_key"].get<std::string>().empty());
  json enc = Ok(Call("POST", "/v1/kem/inbox/encapsulate", json::object(), admin_));
  json dec = Ok(Call("POST", "/v1/kem/inbox/decapsulate", {{"ciphertext", enc["ciphertext"]}}, admin_));
  EXPECT_EQ(dec["shared_secret"], enc["shared_secret"]);
  json rnd = Ok(Call("POST", "/v1/random", {{"bytes", 48}}, admin_));
  EXPECT_EQ(rnd["sources"], json::array({"os"}));
  EXPECT_EQ(Call("POST", "/v1/random", {{"bytes", 0}}, admin_).status, 400U);
  EXPECT_EQ(Call("POST", "/v1/random", {{"bytes", 16}, {"source", "qrng9"}}, admin_).status, 404U);
  // Without credentials, health says only its status: no versions, token labels or counters.
  const json summary = Ok(Call("GET", "/v1/health"));
  EXPECT_EQ(summary, json({{"status", "ok"}}));
  json health = Ok(Call("GET", "/v1/health", nullptr, admin_));
  EXPECT_EQ(health["status"], "ok");
  EXPECT_TRUE(health.contains("version"));
  EXPECT_THAT(health["checks"]["keystore"].get<std::string>(), HasSubstr("ok"));
  auto metrics = Call("GET", "/metrics", nullptr, admin_);
  EXPECT_EQ(metrics.status, 200U);
  EXPECT_THAT(metrics.body, HasSubstr("qsapi_http_requests_total{route=\"POST /v1/sign/{name}\",code=\"200\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("qsapi_entropy_source_state"));
  EXPECT_EQ(Call("GET", "/metrics", nullptr, billing_).status, 403U);
}

TEST_F(ApiTest, SealAndOpenWithStoredKemKeysAcrossRotation) {
  Ok(Call("POST", "/v1/keys", {{"name", "inbox"}, {"type", "X-Wing"}}, admin_));
  const json s1 = Ok(Call("POST", "/v1/seal/inbox", {{"plaintext", "aGVsbG8="}, {"associated_data", "YWQ="}}, admin_));
  EXPECT_EQ(s1["version"], 1);
  Ok(Call("POST", "/v1/keys/inbox/rotate", json::object(), admin_));
  const json s2 = Ok(Call("POST", "/v1/seal/inbox", {{"plaintext", "d29ybGQ="}}, admin_));
  EXPECT_EQ(s2["version"], 2);
  // Both open: the version is read from the message's recipient key id.
  EXPECT_EQ(
      Ok(Call("POST", "/v1/open/inbox", {{"sealed", s1["sealed"]}, {"associated_data", "YWQ="}}, admin_))["plaintext"],
      "aGVsbG8=");
  EXPECT_EQ(Ok(Call("POST", "/v1/open/inbox", {{"sealed", s2["sealed"]}}, admin_))["plaintext"], "d29ybGQ=");
  // Wrong aad, another key, a flipped byte, a non-KEM key, garbage: clear errors, no plaintext.
  auto r = Call("POST", "/v1/open/inbox", {{"sealed", s1["sealed"]}}, admin_);
  EXPECT_EQ(Code(r), "AUTHENTICATION_FAILED");
  Ok(Call("POST", "/v1/keys", {{"name", "other"}, {"type", "ML-KEM-768"}}, admin_));
  r = Call("POST", "/v1/open/other", {{"sealed", s2["sealed"]}}, admin_);
  EXPECT_EQ(Code(r), "INVALID_ARGUMENT");
  EXPECT_THAT(r.body, HasSubstr("not sealed to key"));
  std::string bytes = s2["sealed"];
  bytes[bytes.size() - 6] = bytes[bytes.size() - 6] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Code(Call("POST", "/v1/open/inbox", {{"sealed", bytes}}, admin_)), "AUTHENTICATION_FAILED");
  Ok(Call("POST", "/v1/keys", {{"name", "aes"}, {"type", "AES-256-GCM"}}, admin_));
  EXPECT_EQ(Code(Call("POST", "/v1/seal/aes", {{"plaintext", "YQ=="}}, admin_)), "FAILED_PRECONDITION");
  EXPECT_EQ(Code(Call("POST", "/v1/open/inbox", {{"sealed", "bm90IGEgbWVzc2FnZQ=="}}, admin_)), "INVALID_ARGUMENT");
  EXPECT_EQ(Call("POST", "/v1/open/inbox", {{"sealed", s2["sealed"]}}, billing_).status, 403U);
}

TEST_F(ApiTest, BadRequestsGetClearErrors) {
  EXPECT_EQ(Call("GET", "/v1/nothing", nullptr, admin_).status, 404U);
  EXPECT_EQ(Call("PUT", "/v1/keys", nullptr, admin_).status, 405U);
  ApiRequest raw;
  raw.method = "POST";
  raw.path = "/v1/keys";
  raw.body = "{not json";
  raw.headers.emplace_back("Authorization", "Bearer " + admin_);
  auto r = api_->Handle(raw);
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("not valid JSON"));
  EXPECT_THAT(r.body, HasSubstr("request_id"));
  EXPECT_THAT(Call("POST", "/v1/keys", {{"name", "k"}}, admin_).body, HasSubstr("field \\\"type\\\" is required"));
  EXPECT_THAT(Call("POST", "/v1/keys", {{"name", "k"}, {"type", "RSA"}}, admin_).body, HasSubstr("unknown key type"));
  EXPECT_THAT(Call("POST", "/v1/keys", {{"name", "k"}, {"type", "AES-256-GCM"}, {"colour", 1}}, admin_).body,
              HasSubstr("unknown field \\\"colour\\\""));
  EXPECT_EQ(Call("POST", "/v1/encrypt/missing", {{"plaintext", "YQ=="}}, admin_).status, 404U);
  EXPECT_EQ(Call("GET", "/v1/keys/x?version=abc", nullptr, admin_).status, 400U);
  EXPECT_EQ(Call("GET", "/v1/keys/%zz", nullptr, admin_).status, 400U);
  // A version beyond 32 bits is refused, not truncated (4294967297 would have become version 1).
  r = Call("POST", "/v1/kem/x/decapsulate", {{"ciphertext", "AAAA"}, {"version", 4294967297ULL}}, admin_);
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("below 2^32"));
  r = Call("POST", "/v1/decrypt/x", {{"ciphertext", "vault:v1:abc"}}, admin_);
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("qsapi:v"));
}

// A member named twice is refused, not read as its last value (a proxy in front may have read the
// first); /config refuses what it cannot change, and nothing is created or changed by either.
TEST_F(ApiTest, DuplicateMembersAndUnchangeableFieldsAreRefused) {
  const auto raw = [&](const std::string& method, const std::string& path, const std::string& body) {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.body = body;
    req.headers.emplace_back("Authorization", "Bearer " + admin_);
    return api_->Handle(req);
  };
  ApiResponse r = raw("POST", "/v1/keys", R"({"name":"dup","type":"AES-256-GCM","name":"other"})");
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("names field \\\"name\\\" twice"));
  r = raw("POST", "/v1/keys", R"({"name":"nested","type":"AES-256-GCM"})");
  ASSERT_EQ(r.status, 201U) << r.body;
  r = raw("POST", "/v1/encrypt/nested", R"({"batch":[{"plaintext":"YQ==","plaintext":"Yg=="}]})");
  EXPECT_EQ(r.status, 400U) << "a duplicate inside a batch item too";
  r = raw("POST", "/v1/encrypt/nested", R"({"batch":[{"plaintext":"YQ=="},{"plaintext":"Yg=="}]})");
  EXPECT_EQ(r.status, 200U) << "the same member in two objects is no duplicate: " << r.body;
  EXPECT_EQ(Call("GET", "/v1/keys/dup", nullptr, admin_).status, 404U);
  r = Call("POST", "/v1/keys/nested/config", {{"type", "ML-DSA-65"}}, admin_);
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("cannot be changed"));
  r = Call("POST", "/v1/keys/nested/config", {{"auto_rotate_seconds", 60}, {"colour", "red"}}, admin_);
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("unknown field \\\"colour\\\""));
  r = Call("GET", "/v1/keys/nested", nullptr, admin_);
  EXPECT_THAT(r.body, HasSubstr("\"auto_rotate_seconds\":0")) << "nothing was changed by the refused calls";
  // Nesting is bounded before anything walks the body.
  r = raw("POST", "/v1/encrypt/nested", "{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("nests deeper than 32"));
}

}  // namespace
}  // namespace qsapi::server

namespace qsapi::server {
namespace {

// docs/openapi.json must list exactly the server's routes, and a call to each route it lists must
// reach a handler and answer with a status the document declares for that operation.
TEST_F(ApiTest, OpenApiDocumentMatchesTheServer) {
  const json doc = json::parse(
      testing::ReadFile(std::filesystem::path(QSAPI_TEST_DATA_DIR) / ".." / ".." / "docs" / "openapi.json"));
  std::set<std::string> documented;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      if (method == "parameters") continue;
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::toupper(c); });
      documented.insert(m + " " + path);
    }
  }
  const std::vector<std::string> routes = Api::Routes();
  EXPECT_EQ(documented, std::set<std::string>(routes.begin(), routes.end()));

  const RouteExamples calls =
      MakeRouteExamples([&](const std::string& method, const std::string& target, const json& body) {
        return Ok(Call(method, target, body, admin_));
      });
  for (const std::string& route : routes) {
    if (route.find("/v1/sessions") != std::string::npos) continue;  // two nodes: sessions_test.cc
    ASSERT_TRUE(calls.contains(route)) << "no example call for " << route;
    const auto& [target, body] = calls.at(route);
    const std::string method = route.substr(0, route.find(' '));
    const ApiResponse r = Call(method, target, body, admin_);
    std::string path = route.substr(route.find(' ') + 1);
    std::string m = method;
    std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::tolower(c); });
    const json& responses = doc["paths"][path][m]["responses"];
    EXPECT_TRUE(responses.contains(std::to_string(r.status))) << route << " answered " << r.status << ": " << r.body;
    EXPECT_LT(r.status, 300U) << route << ": " << r.body;
  }
}

}  // namespace
}  // namespace qsapi::server

// Attacks of issue #19 on the API pipeline: each test fails on the code before the fix.
namespace qsapi::server {
namespace {

std::vector<json> AuditLines(const std::filesystem::path& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(json::parse(l));
  return out;
}

// An operation whose audit line cannot be written is not answered with its result (it was 200
// with no line and nothing said), and the next ones are refused before anything is done.
TEST_F(ApiTest, NoOperationWithoutItsAuditLine) {
  Ok(Call("POST", "/v1/keys", {{"name", "orders"}, {"type", "AES-256-GCM"}}, admin_));
  auto full = AuditLog::Open("/dev/full");  // every write fails with ENOSPC, like a full volume
  ASSERT_TRUE(full.ok()) << full.error().ToString();
  Api api(ApiOptions{}, ks_.get(), pool_, TokenStore::Load(dir_ / "tokens.json").value(), {}, full->get());
  ApiRequest req;
  req.method = "POST";
  req.path = "/v1/encrypt/orders";
  req.body = R"({"plaintext":"c2VjcmV0"})";
  req.headers.emplace_back("Authorization", "Bearer " + admin_);
  const ApiResponse first = api.Handle(req);
  EXPECT_EQ(first.status, 503U) << first.body;
  EXPECT_THAT(first.body, HasSubstr("result is withheld"));
  EXPECT_THAT(first.body, ::testing::Not(HasSubstr("qsapi:v1:")));
  // /dev/full fails every write but its volume shows free space: each operation is done and its
  // result withheld (a volume short of space refuses before: AuditLogTest.AFailedWrite...).
  const ApiResponse next = api.Handle(req);
  EXPECT_EQ(next.status, 503U);
  EXPECT_THAT(next.body, ::testing::Not(HasSubstr("qsapi:v1:")));
  EXPECT_GE(api.counters().audit_failures.load(), 2U);
}

// One bad-token request used to append one line each, without limit. Now: one line per source
// and window, then one line with the count; past the limit, 429 with Retry-After.
TEST_F(ApiTest, FailedAuthenticationsAreAggregatedAndLimited) {
  ApiOptions o;
  o.auth_failures.max_failures_per_source = 50;
  o.auth_failures.window = std::chrono::seconds(60);
  Api api(o, ks_.get(), pool_, TokenStore::Load(dir_ / "tokens.json").value(), {}, audit_.get());
  const std::uint64_t before = audit_->next_seq();
  unsigned throttled = 0;
  for (int i = 0; i < 80; ++i) {
    ApiRequest req;
    req.method = "GET";
    req.path = "/v1/keys";
    req.remote_address = "192.0.2.7";
    if (i % 2 == 0) req.headers.emplace_back("Authorization", "Bearer qsapi_00000000_forged");
    const ApiResponse r = api.Handle(req);
    if (r.status == 429) {
      ++throttled;
      EXPECT_TRUE(
          std::any_of(r.headers.begin(), r.headers.end(), [](const auto& h) { return h.first == "Retry-After"; }));
    } else {
      EXPECT_EQ(r.status, 401U);
    }
  }
  EXPECT_EQ(throttled, 30U);
  EXPECT_EQ(audit_->next_seq() - before, 1U);  // only the first failure of the window
  api.FlushAuthFailures(/*all=*/true);
  ASSERT_EQ(audit_->next_seq() - before, 2U);
  audit_.reset();
  const std::vector<json> lines = AuditLines(dir_ / "audit.log");
  const json& first = lines[lines.size() - 2];
  EXPECT_EQ(first["action"], "authenticate");
  EXPECT_EQ(first["source"], "192.0.2.7");
  const json& sum = lines.back();
  EXPECT_EQ(sum["action"], "authenticate.failures");
  EXPECT_EQ(sum["counts"]["bad bearer token"], 40);
  EXPECT_EQ(sum["counts"]["no credentials"], 40);  // 401s without credentials are recorded too
  EXPECT_THAT(sum["detail"].get<std::string>(), HasSubstr("80 failed authentications from 192.0.2.7"));
  QSAPI_EXPECT_OK(VerifyAuditLog(dir_ / "audit.log"));
}

// A denial whose line would pass 16 KiB was dropped; a batch with 140 of 141 items failing was one
// "ok" line; a client's X-Request-Id replaced ours (and could collide).
TEST_F(ApiTest, AuditLinesAreNeverDroppedAndSayWhatHappened) {
  Ok(Call("POST", "/v1/keys", {{"name", "billing-main"}, {"type", "AES-256-GCM"}}, admin_));
  const std::string huge(20000, 'k');
  EXPECT_EQ(Call("POST", "/v1/encrypt/" + huge, {{"plaintext", "YQ=="}}, billing_).status, 403U);
  json batch = json::array({{{"plaintext", "YQ=="}}});
  for (int i = 0; i < 140; ++i) batch.push_back({{"plaintext", 7}});
  const json answer = Ok(Call("POST", "/v1/encrypt/billing-main", {{"batch", batch}}, billing_));
  EXPECT_EQ(answer["batch"].size(), 141U);
  ApiRequest req;
  req.method = "POST";
  req.path = "/v1/encrypt/billing-main";
  req.body = R"({"plaintext":"YQ=="})";
  req.headers = {{"Authorization", "Bearer " + billing_}, {"X-Request-Id", "same-id"}};
  const ApiResponse a = api_->Handle(req);
  const ApiResponse b = api_->Handle(req);
  const auto header = [](const ApiResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return std::string();
  };
  EXPECT_NE(header(a, "X-Request-Id"), header(b, "X-Request-Id"));
  EXPECT_NE(header(a, "X-Request-Id"), "same-id");
  EXPECT_EQ(header(a, "X-Client-Request-Id"), "same-id");
  audit_.reset();
  const std::vector<json> lines = AuditLines(dir_ / "audit.log");
  ASSERT_GE(lines.size(), 4U);
  const json& denial = lines[lines.size() - 4];
  EXPECT_EQ(denial["result"], "PERMISSION_DENIED");
  EXPECT_THAT(denial["key"].get<std::string>(), HasSubstr("more bytes cut]"));
  const json& partial = lines[lines.size() - 3];
  EXPECT_EQ(partial["result"], "partial");
  EXPECT_EQ(partial["items"]["ok"], 1);
  EXPECT_EQ(partial["items"]["INVALID_ARGUMENT"], 140);
  EXPECT_EQ(lines.back()["client_request_id"], "same-id");
  EXPECT_NE(lines.back()["request_id"], "same-id");
  QSAPI_EXPECT_OK(VerifyAuditLog(dir_ / "audit.log"));
}

// Two Authorization headers: a proxy checking one and qsapid using the other would see two
// principals. And an input made with another key does not name that key.
TEST_F(ApiTest, AmbiguousCredentialsAndForeignInputsTellNothing) {
  ApiRequest req;
  req.method = "GET";
  req.path = "/v1/keys";
  req.headers = {{"Authorization", "Bearer " + admin_}, {"authorization", "Bearer " + billing_}};
  const ApiResponse r = api_->Handle(req);
  EXPECT_EQ(r.status, 400U);
  EXPECT_THAT(r.body, HasSubstr("more than one Authorization header"));
  Ok(Call("POST", "/v1/keys", {{"name", "hr-secret-plans"}, {"type", "AES-256-GCM"}}, admin_));
  Ok(Call("POST", "/v1/keys", {{"name", "billing-main"}, {"type", "AES-256-GCM"}}, admin_));
  const std::string ct = Ok(Call("POST", "/v1/encrypt/hr-secret-plans", {{"plaintext", "YQ=="}}, admin_))["ciphertext"];
  const ApiResponse d = Call("POST", "/v1/decrypt/billing-main", {{"ciphertext", ct}}, billing_);
  EXPECT_EQ(d.status, 400U);
  EXPECT_THAT(d.body, HasSubstr("made with another key"));
  EXPECT_THAT(d.body, ::testing::Not(HasSubstr("hr-secret-plans")));
}

// A batch is limited by what it costs: 60 SLH-DSA-SHA2-128s signatures (15 s of CPU) are refused
// at once with how to split them (they took both I/O threads for 15 s before), and a principal past its budget is told
// when to come back.
TEST_F(ApiTest, WorkIsPricedAndBudgeted) {
  WorkSchedulerOptions wo;
  wo.workers = 2;
  wo.cost_per_second = 1000;  // 1 ms of CPU per second: the second signature waits
  wo.burst = 800'000;         // 0.8 s: three SLH-DSA-SHA2-128s signatures
  wo.max_request_cost = 800'000;
  auto scheduler = WorkScheduler::Start(wo);
  ASSERT_TRUE(scheduler.ok());
  Api api(ApiOptions{}, ks_.get(), pool_, TokenStore::Load(dir_ / "tokens.json").value(), {}, audit_.get(),
          scheduler->get());
  const auto call = [&](const std::string& path, const json& body) {
    ApiRequest req;
    req.method = "POST";
    req.path = path;
    req.body = body.dump();
    req.headers.emplace_back("Authorization", "Bearer " + admin_);
    return api.Handle(req);
  };
  ASSERT_EQ(call("/v1/keys", {{"name", "slow"}, {"type", "SLH-DSA-SHA2-128s"}}).status, 201U);
  json batch = json::array();
  for (int i = 0; i < 60; ++i) batch.push_back({{"message", "YQ=="}});
  ApiResponse r = call("/v1/sign/slow", {{"batch", batch}});
  EXPECT_EQ(r.status, 413U) << r.body;
  EXPECT_THAT(r.body, HasSubstr("split it into batches of at most 3"));
  r = call("/v1/sign/slow",
           {{"batch", json::array({{{"message", "YQ=="}}, {{"message", "Yg=="}}, {{"message", "Yw=="}}})}});
  EXPECT_EQ(r.status, 200U) << r.body;
  r = call("/v1/sign/slow", {{"message", "YQ=="}});
  EXPECT_EQ(r.status, 429U) << r.body;
  bool retry_after = false;
  for (const auto& [k, v] : r.headers) retry_after = retry_after || (k == "Retry-After" && std::stoi(v) >= 1);
  EXPECT_TRUE(retry_after);
  (*scheduler)->Stop();
}

}  // namespace
}  // namespace qsapi::server
