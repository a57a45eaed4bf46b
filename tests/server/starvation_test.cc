// One principal floods the slowest signatures over real HTTPS while others use the service
// (issue #19, section 2): liveness and another principal's encryptions must keep a bounded
// latency, because cryptography runs on the WorkScheduler's workers under per-principal running
// limits and cost budgets, never on the threads that serve connections.
//
// A load test with figures: it runs in the dev job (docs/RELIABILITY.md, "CI jobs"). Under a
// sanitizer SLH-DSA and the TLS handshakes are many times slower and the figures would mean
// nothing; the scheduler's rules are covered there by WorkSchedulerTest.* and
// ApiTest.WorkIsPricedAndBudgeted.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/internal/http_client.h"
#include "server/deployment_ca.h"
#include "server/service.h"
#include "server/tokens.h"
#include "support/test_support.h"

namespace qsapi::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

class StarvationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsapi-starvation-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    service_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<net::HttpClient> Client() const {
    net::HttpClientOptions o;
    o.url = "https://127.0.0.1:" + std::to_string(service_->port());
    o.tls.ca_file = DeploymentCa::CertificatePath(dir_).string();
    o.connect_timeout = std::chrono::seconds(30);
    o.request_timeout = o.connect_timeout;
    return net::HttpClient::Create(o).value();
  }
  static std::vector<std::pair<std::string, std::string>> Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }

  fs::path dir_;
  std::unique_ptr<Service> service_;
};

// What a sampler saw: latencies in ms of the answers it expected, and how many it did not get.
struct Samples {
  std::vector<double> ms;
  int failures = 0;
};

// Sample sends `request` every `interval` until `stop`, timing each answer.
template <typename Request>
Samples Sample(const std::atomic<bool>& stop, std::chrono::milliseconds interval, Request request) {
  Samples s;
  while (!stop) {
    const auto t0 = Clock::now();
    const bool ok = request();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (ok) {
      s.ms.push_back(ms);
    } else {
      ++s.failures;
    }
    std::this_thread::sleep_until(t0 + interval);
  }
  return s;
}

TEST_F(StarvationTest, ASlowSignatureFloodLeavesLivenessAndOtherPrincipalsServed) {
  if (testing::kUnderSanitizer) GTEST_SKIP() << "a load test; run in the dev build";
  Config config = DefaultConfig(dir_);  // qsapid's defaults: 2 I/O threads, workers = CPUs (>= 2)
  config.server.listen_port = 0;
  config.server.shutdown_drain = std::chrono::seconds(2);
  auto started = Service::Start(config);
  ASSERT_TRUE(started.ok()) << started.error().ToString();
  service_ = std::move(*started);

  std::string admin;
  std::getline(std::ifstream(AdminTokenPath(dir_)), admin);
  auto setup = Client();
  ASSERT_EQ(setup->Request("POST", "/v1/keys", R"({"name":"slow","type":"SLH-DSA-SHA2-128s"})", Bearer(admin))->status,
            201U);
  ASSERT_EQ(setup->Request("POST", "/v1/keys", R"({"name":"fast","type":"AES-256-GCM"})", Bearer(admin))->status, 201U);
  auto store = TokenStore::Load(TokenFilePath(dir_));
  ASSERT_TRUE(store.ok());
  // The attacker: a token that may only sign with the slow key.
  const std::string flooder(TokenText(store->Create("flooder", Policy{{"slow"}, {"sign"}}).value()));
  const std::string other(TokenText(store->Create("billing", Policy{{"fast"}, {"encrypt"}}).value()));
  unsigned status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {  // the token file is re-read every second
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = setup->Request("POST", "/v1/encrypt/fast", R"({"plaintext":"YQ=="})", Bearer(other))->status;
  }
  ASSERT_EQ(status, 200U) << "the new tokens were not picked up";

  // The largest batch the default price list lets through (2 s of CPU at 240 ms a signature),
  // sent again at once whatever the answer: a hostile client ignores Retry-After.
  json items = json::array();
  for (int i = 0; i < 7; ++i) items.push_back({{"message", "YXR0YWNr"}});
  const std::string batch = json{{"batch", items}}.dump();
  const std::string plaintext = json{{"plaintext", std::string(1368, 'A')}}.dump();  // 1 KiB, base64

  const auto measure = [&](std::chrono::milliseconds how_long, Samples* livez, Samples* encrypt) {
    std::atomic<bool> stop{false};
    std::thread l([&] {
      auto c = Client();
      *livez = Sample(stop, std::chrono::milliseconds(20), [&] {
        auto r = c->Request("GET", "/v1/livez");
        return r.ok() && r->status == 200;
      });
    });
    std::thread e([&] {
      auto c = Client();
      *encrypt = Sample(stop, std::chrono::milliseconds(20), [&] {
        auto r = c->Request("POST", "/v1/encrypt/fast", plaintext, Bearer(other));
        return r.ok() && r->status == 200;
      });
    });
    std::this_thread::sleep_for(how_long);
    stop = true;
    l.join();
    e.join();
  };

  // Baseline: the same samplers with nothing else running.
  Samples quiet_livez, quiet_encrypt;
  measure(std::chrono::seconds(2), &quiet_livez, &quiet_encrypt);

  std::atomic<bool> stop_flood{false};
  std::atomic<int> signed_batches{0}, refused{0}, other_answers{0};
  std::vector<std::thread> flood;
  for (int t = 0; t < 4; ++t) {
    flood.emplace_back([&] {
      auto c = Client();
      while (!stop_flood) {
        auto r = c->Request("POST", "/v1/sign/slow", batch, Bearer(flooder));
        if (!r.ok()) {
          ++other_answers;
        } else if (r->status == 200) {
          ++signed_batches;
        } else if (r->status == 429) {
          ++refused;
        } else {
          ++other_answers;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the workers are taken
  Samples livez, encrypt;
  measure(std::chrono::seconds(5), &livez, &encrypt);
  stop_flood = true;
  for (auto& th : flood) th.join();

  const double livez_p50 = Percentile(livez.ms, 0.50), livez_p99 = Percentile(livez.ms, 0.99);
  const double enc_p50 = Percentile(encrypt.ms, 0.50), enc_p99 = Percentile(encrypt.ms, 0.99);
  std::printf(
      "quiet: livez p50 %.1f p99 %.1f ms, encrypt p50 %.1f p99 %.1f ms (%zu, %zu samples)\n"
      "flood: livez p50 %.1f p99 %.1f ms, encrypt p50 %.1f p99 %.1f ms (%zu, %zu samples)\n"
      "flooder: %d batches of 7 signed, %d refused with 429, %d other answers\n",
      Percentile(quiet_livez.ms, 0.5), Percentile(quiet_livez.ms, 0.99), Percentile(quiet_encrypt.ms, 0.5),
      Percentile(quiet_encrypt.ms, 0.99), quiet_livez.ms.size(), quiet_encrypt.ms.size(), livez_p50, livez_p99, enc_p50,
      enc_p99, livez.ms.size(), encrypt.ms.size(), signed_batches.load(), refused.load(), other_answers.load());
  RecordProperty("livez_p99_ms", std::to_string(livez_p99));
  RecordProperty("encrypt_p99_ms", std::to_string(enc_p99));

  // The flood was real: a worker signed for the flooder the whole time (its other requests wait
  // in its own queue, or get 429 once its budget or queue is spent), and nothing failed.
  EXPECT_GE(signed_batches.load(), 3);
  EXPECT_EQ(other_answers.load(), 0);
  // Everyone else was served, and quickly.
  EXPECT_EQ(livez.failures, 0);
  EXPECT_EQ(encrypt.failures, 0);
  EXPECT_GE(livez.ms.size(), 100U);
  EXPECT_GE(encrypt.ms.size(), 100U);
  EXPECT_LT(livez_p99, 50.0);
  EXPECT_LT(enc_p99, 150.0);
}

}  // namespace
}  // namespace qsapi::server
