// qsapid as a whole (server::Service) over real HTTPS on loopback: first start, the REST API with
// good and bad input, restart, concurrency, client certificates, token reload, the rotation sweep,
// classical clients refused, and damaged credentials refused with nothing changed.
#include "server/service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <nlohmann/json.hpp>

#include "net/internal/http_client.h"
#include "qsapi/crypto/kdf.h"
#include "server/api.h"
#include "server/deployment_ca.h"
#include "server/route_examples.h"
#include "server/tokens.h"
#include "support/test_support.h"

namespace qsapi::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsapi-service-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    config_ = DefaultConfig(dir_);
    config_.server.listen_port = 0;
    config_.server.threads = 2;
    config_.server.shutdown_drain = std::chrono::seconds(2);
  }
  void TearDown() override {
    service_.reset();
    fs::remove_all(dir_);
  }
  void StartService() {
    auto s = Service::Start(config_);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    service_ = std::move(*s);
  }
  std::string AdminToken() {
    std::ifstream in(AdminTokenPath(dir_));
    std::string t;
    std::getline(in, t);
    return t;
  }
  std::unique_ptr<net::HttpClient> Client(const std::string& groups = std::string(pki::kPqHybridGroups),
                                          const std::string& cert = "", const std::string& key = "") {
    net::HttpClientOptions o;
    o.url = "https://127.0.0.1:" + std::to_string(service_->port());
    o.tls.ca_file = DeploymentCa::CertificatePath(dir_).string();
    o.tls.groups = groups;
    o.tls.certificate_file = cert;
    o.tls.private_key_file = key;
    o.connect_timeout = std::chrono::seconds(20);
    o.request_timeout = o.connect_timeout;
    return net::HttpClient::Create(o).value();
  }
  static std::vector<std::pair<std::string, std::string>> Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }
  static json Json(const net::HttpReply& r) { return json::parse(r.body, nullptr, false); }
  static std::string Code(const net::HttpReply& r) {
    const json j = Json(r);
    return j.is_object() && j.contains("error") ? j["error"]["code"].get<std::string>() : "";
  }

  fs::path dir_;
  Config config_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, FirstStartCreatesCredentialsAndServesTheApiOverPqTls) {
  StartService();
  const StartupReport& r = service_->report();
  EXPECT_TRUE(r.keystore_created);
  EXPECT_TRUE(r.ca_created);
  EXPECT_TRUE(r.certificate_issued);
  EXPECT_EQ(r.admin_token_file, AdminTokenPath(dir_));
  struct stat st {};
  ASSERT_EQ(::stat(AdminTokenPath(dir_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const std::string admin = AdminToken();
  ASSERT_THAT(admin, ::testing::StartsWith("qsapi_"));

  auto c = Client();
  auto health = c->Request("GET", "/v1/health", "", Bearer(admin));
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->status, 200U) << health->body;
  EXPECT_EQ(c->tls_group(), "X25519MLKEM768");
  EXPECT_THAT(Json(*health)["checks"]["tls_certificate"].get<std::string>(), HasSubstr("ok: expires in 8"));

  // Good input.
  auto created = c->Request("POST", "/v1/keys", R"({"name":"orders","type":"AES-256-GCM"})", Bearer(admin));
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->status, 201U) << created->body;
  auto enc = c->Request("POST", "/v1/encrypt/orders", R"({"plaintext":"aGVsbG8=","associated_data":"b3JkZXI="})",
                        Bearer(admin));
  ASSERT_TRUE(enc.ok());
  ASSERT_EQ(enc->status, 200U) << enc->body;
  const std::string ct = Json(*enc)["ciphertext"];
  EXPECT_THAT(ct, ::testing::StartsWith("qsapi:v1:"));
  auto dec = c->Request("POST", "/v1/decrypt/orders", json{{"ciphertext", ct}, {"associated_data", "b3JkZXI="}}.dump(),
                        Bearer(admin));
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(Json(*dec)["plaintext"], "aGVsbG8=") << dec->body;
  EXPECT_EQ(c->connections(), 1U);  // keep-alive: one handshake for all of these

  // Bad input: each gets a JSON error with a stable code.
  auto r1 = c->Request("GET", "/v1/keys");
  EXPECT_EQ(r1->status, 401U);
  auto r2 = c->Request("GET", "/v1/keys", "", Bearer("qsapi_deadbeef_forged"));
  EXPECT_EQ(r2->status, 401U);
  auto r3 = c->Request("POST", "/v1/encrypt/orders", "{not json", Bearer(admin));
  EXPECT_EQ(r3->status, 400U);
  EXPECT_EQ(Code(*r3), "INVALID_ARGUMENT");
  auto r4 = c->Request("POST", "/v1/encrypt/orders", R"({"plaintext":42})", Bearer(admin));
  EXPECT_EQ(r4->status, 400U);
  auto r5 = c->Request("POST", "/v1/encrypt/nosuchkey", R"({"plaintext":"aGVsbG8="})", Bearer(admin));
  EXPECT_EQ(r5->status, 404U);
  EXPECT_EQ(Code(*r5), "NOT_FOUND");
  std::string wrong_version = ct;
  wrong_version.replace(0, 8, "qsapi:v7");
  auto r6 = c->Request("POST", "/v1/decrypt/orders", json{{"ciphertext", wrong_version}}.dump(), Bearer(admin));
  EXPECT_GE(r6->status, 400U);
  auto r7 = c->Request("POST", "/v1/decrypt/orders", json{{"ciphertext", ct}}.dump(), Bearer(admin));  // AD missing
  EXPECT_EQ(Code(*r7), "AUTHENTICATION_FAILED") << r7->body;
  auto r8 = c->Request("POST", "/v1/encrypt/orders", std::string(2 << 20, 'x'), Bearer(admin));  // over 1 MiB
  if (r8.ok()) {
    EXPECT_EQ(r8->status, 413U);
  } else {
    EXPECT_EQ(r8.error().code(), ErrorCode::kUnavailable);  // the server may close before reading it all
  }
  auto r9 = Client()->Request("GET", "/v1/keys/qsapid.files", "", Bearer(admin));
  EXPECT_EQ(r9->status, 403U);

  // No private key is on disk in the clear: the CA and server keys are keystore ciphertexts.
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    if (!e.is_regular_file()) continue;
    const std::string content = testing::ReadFile(e.path());
    EXPECT_EQ(content.find("PRIVATE KEY"), std::string::npos) << e.path();
  }
  EXPECT_THAT(testing::ReadFile(DeploymentCa::KeyPath(dir_)), ::testing::StartsWith("qsapi:v1:"));
}

// Every route over real HTTPS: the good example call succeeds; without credentials it is 401
// (except the two unauthenticated probes); a malformed JSON body is 400; an unknown key is 404;
// and a token without the operation in its policy is 403.
TEST_F(ServiceTest, EveryRouteOverHttpsWithGoodAndBadInput) {
  StartService();
  const std::string admin = AdminToken();
  auto store = TokenStore::Load(TokenFilePath(dir_)).value();
  const std::string weak(TokenText(store.Create("weak", Policy{{"*"}, {"keys.read"}}).value()));
  auto c = Client();
  const RouteExamples examples = MakeRouteExamples([&](const std::string& m, const std::string& t, const json& b) {
    auto r = c->Request(m, t, b.is_null() ? "" : b.dump(), Bearer(admin));
    EXPECT_TRUE(r.ok() && r->status < 300) << m << " " << t << ": " << (r.ok() ? r->body : r.error().ToString());
    return r.ok() ? Json(*r) : json();
  });
  for (int i = 0; i < 50 && c->Request("POST", "/v1/random", "{}", Bearer(weak))->status == 401; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the token file is re-read within a second
  }
  for (const std::string& route : Api::Routes()) {
    if (route.find("/v1/sessions") != std::string::npos) continue;  // two nodes: sessions_test.cc
    ASSERT_TRUE(examples.contains(route)) << "no example call for " << route;
    const auto& [target, body] = examples.at(route);
    const std::string method = route.substr(0, route.find(' '));
    const std::string text = body.is_null() ? "" : body.dump();
    auto good = c->Request(method, target, text, Bearer(admin));
    ASSERT_TRUE(good.ok()) << route << ": " << good.error().ToString();
    EXPECT_LT(good->status, 300U) << route << ": " << good->body;
    const bool open = route == "GET /v1/livez" || route == "GET /v1/health";
    if (!open) {
      auto anon = c->Request(method, target, text);
      EXPECT_EQ(anon->status, 401U) << route;
      EXPECT_EQ(Code(*anon), "PERMISSION_DENIED") << route;
    }
    if (method == "POST") {
      auto bad = c->Request(method, target, "{\"truncated\":", Bearer(admin));
      EXPECT_EQ(bad->status, 400U) << route << ": " << bad->body;
    }
    if (route.find("{name}") != std::string::npos && route != "POST /v1/keys") {
      std::string unknown = target;
      const std::size_t at = unknown.find("doc-");
      unknown.replace(at, unknown.find('/', at) == std::string::npos ? std::string::npos : unknown.find('/', at) - at,
                      "no-such-key");
      auto missing = c->Request(method, unknown, text, Bearer(admin));
      // 404, or (for inputs whose header names their key) 400 saying another key made it (never which).
      EXPECT_TRUE(
          missing->status == 404U ||
          (missing->status == 400U && missing->body.find("the input was made with another key") != std::string::npos))
          << route << " " << unknown << ": " << missing->body;
    }
    if (!open && route != "GET /v1/keys" && route != "GET /v1/keys/{name}" && route != "GET /v1/keys/{name}/public") {
      auto denied = c->Request(method, target, text, Bearer(weak));
      EXPECT_EQ(denied->status, 403U) << route << ": " << denied->body;
    }
  }
}

TEST_F(ServiceTest, ARestartKeepsKeysCredentialsAndTokens) {
  StartService();
  const std::string admin = AdminToken();
  auto c = Client();
  ASSERT_EQ(c->Request("POST", "/v1/keys", R"({"name":"k","type":"XChaCha20-Poly1305"})", Bearer(admin))->status, 201U);
  const std::string ct =
      Json(*c->Request("POST", "/v1/encrypt/k", R"({"plaintext":"AAEC"})", Bearer(admin)))["ciphertext"];
  const std::string ca_before = testing::ReadFile(DeploymentCa::CertificatePath(dir_));
  const std::string leaf_before = testing::ReadFile(dir_ / "tls" / "server.pem");
  service_->Stop();
  service_.reset();

  fs::remove(AdminTokenPath(dir_));  // as the operator is told to do
  StartService();
  const StartupReport& r = service_->report();
  EXPECT_FALSE(r.keystore_created);
  EXPECT_FALSE(r.ca_created);
  EXPECT_FALSE(r.certificate_issued);
  EXPECT_TRUE(r.admin_token_file.empty());  // shown once: not created again
  EXPECT_FALSE(fs::exists(AdminTokenPath(dir_)));
  EXPECT_EQ(testing::ReadFile(DeploymentCa::CertificatePath(dir_)), ca_before);
  EXPECT_EQ(testing::ReadFile(dir_ / "tls" / "server.pem"), leaf_before);
  auto dec = Client()->Request("POST", "/v1/decrypt/k", json{{"ciphertext", ct}}.dump(), Bearer(admin));
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(Json(*dec)["plaintext"], "AAEC") << dec->body;
}

TEST_F(ServiceTest, ConcurrentClientsGetCorrectAnswers) {
  StartService();
  const std::string admin = AdminToken();
  ASSERT_EQ(Client()->Request("POST", "/v1/keys", R"({"name":"c","type":"AES-256-GCM"})", Bearer(admin))->status, 201U);
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {  // NOLINT(bugprone-exception-escape)
      auto c = Client();
      for (int i = 0; i < 25; ++i) {
        // Each thread and iteration encrypts its own 3 bytes (base64 of 4 characters).
        const std::string pt(1, static_cast<char>('A' + t));
        const std::string b64 = pt + "AA" + static_cast<char>('A' + (i % 26));
        auto e = c->Request("POST", "/v1/encrypt/c", json{{"plaintext", b64}}.dump(), Bearer(admin));
        if (!e.ok() || e->status != 200) {
          ++bad;
          continue;
        }
        auto d =
            c->Request("POST", "/v1/decrypt/c", json{{"ciphertext", Json(*e)["ciphertext"]}}.dump(), Bearer(admin));
        (d.ok() && Json(*d)["plaintext"] == b64 ? good : bad)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 100);
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(ServiceTest, ClassicalKeyExchangeIsRefused) {
  StartService();
  auto classical = Client("X25519:secp256r1");
  auto r = classical->Request("GET", "/v1/health");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("TLS handshake failed"));
  EXPECT_EQ(Client("SecP384r1MLKEM1024")->Request("GET", "/v1/health")->status, 200U);
}

TEST_F(ServiceTest, ClientCertificatesFromTheDeploymentCaMapToPolicies) {
  config_.clients.push_back({"reporting", {"*"}, {"random"}});
  StartService();
  // Issue client certificates with a second keystore handle, as `qsapi ca issue` would.
  auto ks = keystore::Keystore::Open(keystore::EmbeddedOptions(dir_));
  ASSERT_TRUE(ks.ok()) << ks.error().ToString();
  auto ca = DeploymentCa::Open(**ks, dir_);
  ASSERT_TRUE(ca.ok()) << ca.error().ToString();
  auto issue = [&](const std::string& cn) {
    auto key = pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65).value();
    pki::CertificateProfile p;
    p.common_name = cn;
    p.client_auth = true;
    auto cert = ca->Issue(key, p).value();
    EXPECT_TRUE(pki::WritePrivateKeyPem(dir_ / (cn + ".key"), key).ok());
    EXPECT_TRUE(pki::WriteCertificatePem(dir_ / (cn + ".pem"), {cert, ca->certificate()}).ok());
  };
  issue("reporting");
  issue("stranger");
  auto c =
      Client(std::string(pki::kPqHybridGroups), (dir_ / "reporting.pem").string(), (dir_ / "reporting.key").string());
  auto r = c->Request("POST", "/v1/random", R"({"bytes":16})");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200U) << r->body;
  EXPECT_EQ(c->Request("GET", "/v1/keys")->status, 403U);  // not in its policy
  auto s =
      Client(std::string(pki::kPqHybridGroups), (dir_ / "stranger.pem").string(), (dir_ / "stranger.key").string());
  EXPECT_EQ(s->Request("POST", "/v1/random", R"({"bytes":16})")->status, 403U);
  // A peer-link certificate of the same name (client and server authentication, as `qsapi ca issue
  // --peer` makes for another site) is not that API client.
  {
    auto key = pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65).value();
    pki::CertificateProfile p;
    p.common_name = "reporting";
    p.dns_names = {"reporting"};
    p.client_auth = true;
    p.server_auth = true;
    auto cert = ca->Issue(key, p).value();
    ASSERT_TRUE(pki::WritePrivateKeyPem(dir_ / "peer-reporting.key", key).ok());
    ASSERT_TRUE(pki::WriteCertificatePem(dir_ / "peer-reporting.pem", {cert, ca->certificate()}).ok());
  }
  auto peer = Client(std::string(pki::kPqHybridGroups), (dir_ / "peer-reporting.pem").string(),
                     (dir_ / "peer-reporting.key").string());
  auto pr = peer->Request("POST", "/v1/random", R"({"bytes":16})");
  ASSERT_TRUE(pr.ok());
  EXPECT_EQ(pr->status, 403U);
  EXPECT_THAT(pr->body, HasSubstr("also valid for server authentication"));
}

TEST_F(ServiceTest, OneProcessPerDataDirectory) {
  StartService();
  auto second = Service::Start(config_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(second.error().message(), HasSubstr("another qsapid (pid " + std::to_string(::getpid()) + ")"));
  EXPECT_EQ(Client()->Request("GET", "/v1/livez")->status, 200U) << "the first one is untouched";
  service_.reset();
  StartService();  // the lock went with the first
  EXPECT_EQ(Client()->Request("GET", "/v1/livez")->status, 200U);
}

TEST_F(ServiceTest, TokensCreatedWhileRunningWorkWithoutARestart) {
  StartService();
  auto store = TokenStore::Load(TokenFilePath(dir_));
  ASSERT_TRUE(store.ok());
  const std::string token(TokenText(store->Create("late", Policy{{"*"}, {"random"}}).value()));
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {  // the maintenance thread checks every second
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = static_cast<int>(Client()->Request("POST", "/v1/random", R"({"bytes":8})", Bearer(token))->status);
  }
  EXPECT_EQ(status, 200);
  ASSERT_TRUE(store->Revoke("late").ok());
  for (int i = 0; i < 50 && status == 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = static_cast<int>(Client()->Request("POST", "/v1/random", R"({"bytes":8})", Bearer(token))->status);
  }
  EXPECT_EQ(status, 401);
}

TEST_F(ServiceTest, TheRotationSweepRotatesDueKeysAndAuditsIt) {
  StartService();
  const std::string admin = AdminToken();
  auto c = Client();
  ASSERT_EQ(
      c->Request("POST", "/v1/keys", R"({"name":"short","type":"AES-256-GCM","auto_rotate_seconds":1})", Bearer(admin))
          ->status,
      201U);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto rotated = service_->SweepNow();
  ASSERT_TRUE(rotated.ok()) << rotated.error().ToString();
  EXPECT_THAT(*rotated, ::testing::Contains("short"));
  EXPECT_EQ(Json(*c->Request("GET", "/v1/keys/short", "", Bearer(admin)))["current_version"], 2);
  EXPECT_THAT(testing::ReadFile(dir_ / "audit.log"), HasSubstr("\"action\":\"keys.rotate\""));
}

TEST_F(ServiceTest, DamagedCredentialsStopTheStartWithNothingChanged) {
  StartService();
  service_.reset();
  // A wrapped server key that was edited: the start fails, naming the file; nothing is replaced.
  const fs::path key = dir_ / "tls" / "server.key.wrapped";
  std::string text = testing::ReadFile(key);
  text[20] = text[20] == 'A' ? 'B' : 'A';
  fs::permissions(key, fs::perms::owner_write | fs::perms::owner_read);
  std::ofstream(key, std::ios::trunc) << text;
  const std::string chain_before = testing::ReadFile(dir_ / "tls" / "server.pem");
  auto s = Service::Start(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("TLS certificate"));
  EXPECT_THAT(s.error().message(), HasSubstr("server.key.wrapped"));
  EXPECT_EQ(testing::ReadFile(key), text);
  EXPECT_EQ(testing::ReadFile(dir_ / "tls" / "server.pem"), chain_before);

  // The next start after repairing nothing fails the same way (no half-started state is left).
  EXPECT_FALSE(Service::Start(config_).ok());
}

TEST_F(ServiceTest, AnInterruptedRenewalIsRepaired) {
  StartService();
  service_.reset();
  // Simulate a crash after the new key was written but before the new chain: the key no longer
  // matches the certificate. The next start issues a fresh pair.
  auto ks = keystore::Keystore::Open(keystore::EmbeddedOptions(dir_)).value();
  auto other = pki::PrivateKey::Generate(pki::KeyAlgorithm::kMlDsa65).value();
  ASSERT_TRUE(WriteWrappedPrivateKey(*ks, dir_ / "tls" / "server.key.wrapped", other, "qsapid TLS server", true).ok());
  ks.reset();
  StartService();
  EXPECT_TRUE(service_->report().certificate_issued);
  EXPECT_EQ(Client()->Request("GET", "/v1/health")->status, 200U);
}

// A restarting or running qsapid noticed nothing of an edited audit log (it read only the last
// line). Now the whole trail is verified at start and every [audit] verify_interval_seconds: a
// break stops the start (naming the line) and shows as FAIL in /v1/health; the operator may start
// on a broken trail only with --accept-broken-audit-log, which moves it aside and is recorded.
TEST_F(ServiceTest, ABrokenAuditTrailIsNoticedAtStartAndWhileRunning) {
  config_.audit.verify_interval = std::chrono::seconds(1);
  StartService();
  const std::string admin = AdminToken();
  auto c = Client();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c->Request("POST", "/v1/keys", json{{"name", "k" + std::to_string(i)}, {"type", "AES-256-GCM"}}.dump(),
                         Bearer(admin))
                  ->status,
              201U);
  }
  // An edit while running: the next periodic verification reports it.
  const fs::path log = dir_ / "audit.log";
  const std::string text = testing::ReadFile(log);
  const std::string was = "\"key\":\"k1\"";
  const std::size_t at = text.find(was);
  ASSERT_NE(at, std::string::npos);
  {
    std::fstream out(log, std::ios::binary | std::ios::in | std::ios::out);  // in place, same length
    out.seekp(static_cast<std::streamoff>(at));
    out << "\"key\":\"kX\"";
  }
  std::string check;
  for (int i = 0; i < 100 && !check.starts_with("FAIL"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto h = c->Request("GET", "/v1/health", "", Bearer(admin));
    ASSERT_TRUE(h.ok());
    check = Json(*h)["checks"]["audit_chain"].get<std::string>();
    if (check.starts_with("FAIL")) {
      EXPECT_EQ(h->status, 503U);
    }
  }
  EXPECT_THAT(check, HasSubstr("FAIL: audit log line"));
  EXPECT_THAT(check, HasSubstr("altered"));
  service_.reset();

  // A restart refuses the broken trail, naming the line and the way out.
  auto refused = Service::Start(config_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(refused.error().message(), HasSubstr("its content was altered"));
  EXPECT_THAT(refused.error().message(), HasSubstr("--accept-broken-audit-log"));

  // Accepted: the old trail is kept aside, the new chain says why it began.
  config_.accept_broken_audit_log = true;
  StartService();
  bool moved = false;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.is_directory() && e.path().filename().string().starts_with("audit-broken-")) {
      moved = fs::exists(e.path() / "audit.log");
    }
  }
  EXPECT_TRUE(moved);
  service_.reset();
  const std::string fresh = testing::ReadFile(log);
  EXPECT_THAT(fresh, HasSubstr("\"action\":\"audit.chain_restart\""));
  EXPECT_THAT(fresh, HasSubstr("its content was altered"));
  auto ks = keystore::Keystore::Open(keystore::EmbeddedOptions(dir_));
  ASSERT_TRUE(ks.ok()) << ks.error().ToString();
  QSAPI_EXPECT_OK(VerifyAuditTrail(**ks, log));
}

// The trail cannot be rewritten by someone who can write the files but not use the HSM: a rewrite
// with the chain recomputed, a cut while qsapid is stopped, an older copy put back, and the
// keystore's database rolled back each stop the next start, naming what was found.
TEST_F(ServiceTest, TheAuditTrailIsKeyedAndAnchoredInTheKeystore) {
  StartService();
  const std::string admin = AdminToken();
  auto c = Client();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c->Request("POST", "/v1/keys", json{{"name", "k" + std::to_string(i)}, {"type", "AES-256-GCM"}}.dump(),
                         Bearer(admin))
                  ->status,
              201U);
  }
  const fs::path log = dir_ / "audit.log";
  const std::string older = testing::ReadFile(log);
  ASSERT_EQ(c->Request("POST", "/v1/keys", R"({"name":"k3","type":"AES-256-GCM"})", Bearer(admin))->status, 201U);
  service_.reset();  // stopping records the head and anchors the keystore trail
  const std::string original = testing::ReadFile(log);
  EXPECT_THAT(original, HasSubstr("\"mac\""));
  EXPECT_THAT(original, HasSubstr("\"action\":\"audit.anchor\""));
  {
    auto ks = keystore::Keystore::Open(keystore::EmbeddedOptions(dir_));
    ASSERT_TRUE(ks.ok()) << ks.error().ToString();
    auto r = VerifyAuditTrail(**ks, log);
    QSAPI_ASSERT_OK(r);
    EXPECT_TRUE(r->head_checked);
    EXPECT_EQ(r->macs, r->lines);
  }
  const auto put = [&](const std::string& text) { std::ofstream(log, std::ios::trunc | std::ios::binary) << text; };
  const auto refused = [&](const std::string& what) {
    auto s = Service::Start(config_);
    EXPECT_FALSE(s.ok()) << what;
    return s.ok() ? std::string() : s.error().message();
  };
  // 1. The key creation lines removed and the chain recomputed with SHA-256.
  {
    std::vector<std::string> lines;
    std::istringstream in(original);
    std::string prev(64, '0');
    std::uint64_t seq = 0;
    std::string out;
    for (std::string l; std::getline(in, l);) {
      json j = json::parse(l);
      if (j["action"] == "keys.create" && j["key"] == "k1") continue;
      j.erase("mac");
      j.erase("hash");
      j["seq"] = ++seq;
      j["prev"] = prev;
      const std::string canonical = prev + j.dump();
      prev = testing::ToHex(crypto::Hash(crypto::HashAlgorithm::kSha256,
                                         ByteView(reinterpret_cast<const std::uint8_t*>(canonical.data()),  // NOLINT
                                                  canonical.size()))
                                .value());
      j["hash"] = prev;
      out += j.dump() + "\n";
    }
    put(out);
    EXPECT_THAT(refused("recomputed"), HasSubstr("has no MAC, but the trail is keyed"));
  }
  // 2. Cut short while stopped.
  put(original.substr(0, original.rfind('\n', original.size() - 2) + 1));
  EXPECT_THAT(refused("cut"), HasSubstr("the log was cut short, or an older copy was put in its place"));
  // 3. An older copy.
  put(older);
  EXPECT_THAT(refused("older"), HasSubstr("but the keystore recorded entry"));
  // 4. The keystore's database rolled back to before k3 (its trail loses entries qsapid anchored).
  put(original);
  const fs::path db = keystore::EmbeddedLayout{dir_}.database();
  fs::copy_file(db, dir_ / "keystore.db.saved");
  StartService();
  ASSERT_EQ(Client()->Request("POST", "/v1/keys", R"({"name":"k4","type":"AES-256-GCM"})", Bearer(admin))->status,
            201U);
  service_.reset();
  fs::remove(db.string() + "-wal");
  fs::remove(db.string() + "-shm");
  fs::copy_file(dir_ / "keystore.db.saved", db, fs::copy_options::overwrite_existing);
  EXPECT_THAT(refused("rolled back"), HasSubstr("keystore's audit trail no longer holds its entry"));
}

}  // namespace
}  // namespace qsapi::server
