#include "qsapi/entropy/pool.h"

#include <array>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto/internal/openssl_util.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/log.h"
#include "support/test_support.h"

namespace qsapi::entropy {
namespace {

// ScriptedSource stands in for a QRNG here, to drive the pool's policy and state machine; the real
// device I/O is tested against a FIFO in source_test.cc. It serves a deterministic uniform stream
// (SHAKE256), and turns stuck (all 0x00) after `good_bytes`, or fails reads when told to.
class ScriptedSource final : public EntropySource {
 public:
  ScriptedSource(std::string id, std::uint64_t good_bytes, std::uint8_t seed = 1)
      : id_(std::move(id)), good_bytes_(good_bytes), seed_(seed) {}
  std::string_view id() const noexcept override { return id_; }
  double claimed_min_entropy() const noexcept override { return 6.0; }
  bool is_qrng() const noexcept override { return true; }
  Status ReadRaw(std::span<std::uint8_t> out) override {
    if (fail_reads_) return Unavailable("device gone (test)");
    Bytes stream(offset_ + out.size());
    const std::array<std::uint8_t, 1> s = {seed_};
    QSAPI_RETURN_IF_ERROR(crypto::internal::Digest(crypto::internal::Shake256(), {s}, stream));
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] = offset_ + i < good_bytes_ ? stream[offset_ + i] : 0x00;
    }
    offset_ += out.size();
    return OkStatus();
  }
  bool fail_reads_ = false;

 private:
  std::string id_;
  std::uint64_t good_bytes_;
  std::uint8_t seed_;
  std::uint64_t offset_ = 0;
};

constexpr std::uint64_t kForever = ~std::uint64_t{0};

std::shared_ptr<EntropyPool> MakePool(SourcePolicy policy, std::uint64_t good_bytes, ScriptedSource** raw = nullptr) {
  auto source = std::make_unique<ScriptedSource>("qrng0", good_bytes);
  if (raw != nullptr) *raw = source.get();
  std::vector<std::unique_ptr<EntropySource>> sources;
  sources.push_back(std::move(source));
  return EntropyPool::Create({.policy = policy}, std::move(sources)).value();
}

const SourceStatus& Find(const std::vector<SourceStatus>& all, std::string_view id) {
  for (const auto& s : all) {
    if (s.id == id) return s;
  }
  ADD_FAILURE() << "no source " << id;
  return all.front();
}

TEST(EntropyPoolTest, HealthyQrngContributesAfterStartup) {
  auto pool = MakePool(SourcePolicy::kPrefer, kForever);
  auto draw = pool->Draw(32);
  QSAPI_ASSERT_OK(draw);
  EXPECT_EQ(draw->bytes.size(), 32U);
  EXPECT_EQ(draw->qrng_sources, std::vector<std::string>{"qrng0"});
  const auto status = pool->SourceStatuses();
  const SourceStatus& q = Find(status, "qrng0");
  EXPECT_EQ(q.state, SourceState::kHealthy);
  // 1024 start-up samples (discarded) + ceil(256 bits / 6 bits per sample) = 43 used.
  EXPECT_EQ(q.bytes_read, 1024U + 43U);
  EXPECT_EQ(q.bytes_used, 43U);
  EXPECT_EQ(Find(status, "os").state, SourceState::kHealthy);
}

TEST(EntropyPoolTest, StuckSourceIsTakenOutAtOnceAndPreferFallsBackVisibly) {
  ScriptedSource* raw = nullptr;
  auto pool = MakePool(SourcePolicy::kPrefer, 1024 + 100, &raw);  // passes start-up, then sticks
  auto first = pool->Draw(8);
  QSAPI_ASSERT_OK(first);
  EXPECT_EQ(first->qrng_sources.size(), 1U);
  auto second = pool->Draw(64);  // needs 86 samples: the source sticks inside them
  QSAPI_ASSERT_OK(second);
  EXPECT_TRUE(second->qrng_sources.empty()) << "a failed source's samples must not be used";
  const SourceStatus q = Find(pool->SourceStatuses(), "qrng0");
  EXPECT_EQ(q.state, SourceState::kFailed);
  EXPECT_EQ(q.health_failures, 1U);
  EXPECT_NE(q.last_failure.find("repetition count"), std::string::npos) << q.last_failure;
  EXPECT_TRUE(q.last_failure_time.has_value());
  // Failed stays failed: later draws do not read the source.
  const std::uint64_t read_before = q.bytes_read;
  QSAPI_ASSERT_OK(pool->Draw(8));
  EXPECT_EQ(Find(pool->SourceStatuses(), "qrng0").bytes_read, read_before);
  // Retry sends it through start-up again, which a still-stuck source fails.
  QSAPI_ASSERT_OK(pool->Retry("qrng0"));
  auto third = pool->Draw(8);
  QSAPI_ASSERT_OK(third);
  EXPECT_TRUE(third->qrng_sources.empty());
  EXPECT_NE(Find(pool->SourceStatuses(), "qrng0").last_failure.find("start-up"), std::string::npos);
}

TEST(EntropyPoolTest, AHealthFailureIsLoggedOnceWithoutSampleData) {
  struct Line {
    LogLevel level;
    std::string component, message;
  };
  std::vector<Line> lines;
  SetLogSink([&lines](LogLevel level, std::string_view component, std::string_view message) {
    lines.push_back({level, std::string(component), std::string(message)});
  });
  auto pool = MakePool(SourcePolicy::kPrefer, 1024 + 100);
  QSAPI_ASSERT_OK(pool->Draw(64));
  QSAPI_ASSERT_OK(pool->Draw(64));  // already failed: no second line
  SetLogSink(nullptr);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0].level, LogLevel::kWarning);
  EXPECT_EQ(lines[0].component, "entropy");
  EXPECT_THAT(lines[0].message, ::testing::MatchesRegex("source \"qrng0\" taken out of use: .*repetition count.*"));
  // The line is a fixed sentence plus the test's name and counts: no run of hex or raw bytes.
  EXPECT_THAT(lines[0].message, ::testing::Not(::testing::ContainsRegex("[0-9a-f]{16}")));
  EXPECT_LT(lines[0].message.size(), 300U);
}

TEST(EntropyPoolTest, RequireRefusesWithAClearErrorWhenNoQrngIsHealthy) {
  auto pool = MakePool(SourcePolicy::kRequire, 0);  // stuck from the first sample
  auto draw = pool->Draw(32);
  ASSERT_FALSE(draw.ok());
  EXPECT_EQ(draw.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(draw.error().message().find("qrng = require"), std::string::npos);
  EXPECT_NE(draw.error().message().find("qrng0: failed"), std::string::npos) << draw.error().message();

  auto empty = EntropyPool::Create({.policy = SourcePolicy::kRequire}, {});
  QSAPI_ASSERT_OK(empty);
  EXPECT_NE((*empty)->Draw(8).error().message().find("none is configured"), std::string::npos);
}

TEST(EntropyPoolTest, RequireHoldsBackKeyGenerationThroughTheRandomSource) {
  auto pool = MakePool(SourcePolicy::kRequire, 0);
  crypto::SetRandomSource(std::make_shared<PoolRandomSource>(pool));
  auto key = crypto::KemPrivateKey::Generate(crypto::KemAlgorithm::kMlKem768);
  crypto::SetRandomSource(nullptr);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(key.error().message().find("qrng = require"), std::string::npos);
}

TEST(EntropyPoolTest, OffNeverReadsTheQrng) {
  auto pool = MakePool(SourcePolicy::kOff, kForever);
  QSAPI_ASSERT_OK(pool->Draw(32));
  EXPECT_EQ(Find(pool->SourceStatuses(), "qrng0").bytes_read, 0U);
}

TEST(EntropyPoolTest, ReadErrorsFailTheSourceAndAreCounted) {
  ScriptedSource* raw = nullptr;
  auto pool = MakePool(SourcePolicy::kPrefer, kForever, &raw);
  raw->fail_reads_ = true;
  auto draw = pool->Draw(8);
  QSAPI_ASSERT_OK(draw);
  EXPECT_TRUE(draw->qrng_sources.empty());
  const SourceStatus q = Find(pool->SourceStatuses(), "qrng0");
  EXPECT_EQ(q.read_errors, 1U);
  EXPECT_NE(q.last_failure.find("device gone"), std::string::npos);
}

TEST(EntropyPoolTest, TheOsCsprngIsAlwaysMixedIn) {
  // Two pools over identical QRNG streams still give different output: the OS bytes differ.
  auto a = MakePool(SourcePolicy::kPrefer, kForever);
  auto b = MakePool(SourcePolicy::kPrefer, kForever);
  auto da = a->Draw(32);
  auto db = b->Draw(32);
  QSAPI_ASSERT_OK(da);
  QSAPI_ASSERT_OK(db);
  EXPECT_FALSE(ConstantTimeEqual(da->bytes.view(), db->bytes.view()));
  // Large draws span several HKDF-Expand blocks.
  auto big = a->Draw(40000);
  QSAPI_ASSERT_OK(big);
  EXPECT_EQ(big->bytes.size(), 40000U);
}

TEST(EntropyPoolTest, ConfigurationErrorsAreClear) {
  std::vector<std::unique_ptr<EntropySource>> dup;
  dup.push_back(std::make_unique<ScriptedSource>("q", kForever));
  dup.push_back(std::make_unique<ScriptedSource>("q", kForever));
  EXPECT_NE(EntropyPool::Create({}, std::move(dup)).error().message().find("used twice"), std::string::npos);
  EXPECT_EQ(ParseSourcePolicy("always").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*ParseSourcePolicy("require"), SourcePolicy::kRequire);
  auto pool = MakePool(SourcePolicy::kPrefer, kForever);
  EXPECT_EQ(pool->Retry("nope").error().code(), ErrorCode::kNotFound);
  QSAPI_ASSERT_OK(pool->Disable("qrng0"));
  auto draw = pool->Draw(8);
  QSAPI_ASSERT_OK(draw);
  EXPECT_TRUE(draw->qrng_sources.empty());
  EXPECT_EQ(Find(pool->SourceStatuses(), "qrng0").state, SourceState::kDisabled);
}

std::uint32_t PrimaryReseedCounter() {
  EVP_RAND_CTX* primary = RAND_get0_primary(nullptr);
  unsigned int counter = 0;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_uint(OSSL_DRBG_PARAM_RESEED_COUNTER, &counter),
                         OSSL_PARAM_construct_end()};
  EXPECT_EQ(EVP_RAND_CTX_get_params(primary, params), 1);
  return counter;
}

TEST(EntropyPoolTest, FeedingOpenSslReseedsItsPrimaryDrbg) {
  auto pool = MakePool(SourcePolicy::kPrefer, kForever);
  const std::uint32_t before = PrimaryReseedCounter();
  QSAPI_ASSERT_OK(FeedOpenSslDrbg(*pool));
  EXPECT_GT(PrimaryReseedCounter(), before);
}

TEST(EntropyPoolTest, DrbgFeederReseedsOpenSslPeriodicallyAndStops) {
  auto pool = MakePool(SourcePolicy::kPrefer, kForever);
  const std::uint32_t before = PrimaryReseedCounter();
  DrbgFeeder feeder;
  QSAPI_ASSERT_OK(feeder.Start(pool, std::chrono::milliseconds(20)));
  EXPECT_FALSE(feeder.Start(pool, std::chrono::milliseconds(20)).ok()) << "a second Start must be refused";
  for (int i = 0; i < 500 && feeder.status().feeds < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  feeder.Stop();
  const DrbgFeeder::Status st = feeder.status();
  EXPECT_GE(st.feeds, 3U);
  EXPECT_EQ(st.failures, 0U);
  EXPECT_GE(PrimaryReseedCounter(), before + 3);
  const std::uint64_t after_stop = feeder.status().feeds;
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(feeder.status().feeds, after_stop) << "no feed after Stop";
}

TEST(EntropyPoolTest, DrbgFeederReportsAFailingPoolAndLogsOnce) {
  auto pool = MakePool(SourcePolicy::kRequire, 0);  // stuck from the first byte: require cannot be met
  std::vector<std::string> lines;
  SetLogSink([&lines](LogLevel level, std::string_view, std::string_view m) {
    if (level == LogLevel::kWarning && m.find("DRBG") != std::string_view::npos) lines.emplace_back(m);
  });
  DrbgFeeder feeder;
  QSAPI_ASSERT_OK(feeder.Start(pool, std::chrono::milliseconds(10)));
  for (int i = 0; i < 500 && feeder.status().failures < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  feeder.Stop();
  SetLogSink(nullptr);
  EXPECT_GE(feeder.status().failures, 3U);
  EXPECT_EQ(feeder.status().feeds, 0U);
  EXPECT_NE(feeder.status().last_error.find("require"), std::string::npos) << feeder.status().last_error;
  EXPECT_EQ(lines.size(), 1U) << "one line per run of failures, not one per attempt";
}

TEST(EntropyPoolTest, MetricsAndJsonShowAFailedSource) {
  auto pool = MakePool(SourcePolicy::kPrefer, 1024 + 100);
  QSAPI_ASSERT_OK(pool->Draw(8));
  QSAPI_ASSERT_OK(pool->Draw(64));  // the source sticks inside this draw
  const std::string m = FormatPrometheusMetrics(*pool);
  EXPECT_NE(m.find("qsapi_entropy_source_state{source=\"qrng0\",kind=\"qrng\",state=\"failed\"} 1\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("qsapi_entropy_source_state{source=\"qrng0\",kind=\"qrng\",state=\"healthy\"} 0\n"),
            std::string::npos);
  EXPECT_NE(m.find("qsapi_entropy_source_health_failures_total{source=\"qrng0\",kind=\"qrng\"} 1\n"),
            std::string::npos);
  EXPECT_NE(m.find("qsapi_entropy_source_state{source=\"os\",kind=\"os\",state=\"healthy\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("qsapi_entropy_qrng_policy{policy=\"prefer\"} 1\n"), std::string::npos);
  EXPECT_EQ(m.find("qsapi_entropy_source_last_failure_timestamp_seconds{source=\"qrng0\",kind=\"qrng\"} 0\n"),
            std::string::npos)
      << "the failure time must be set";
  // Every sample line is "name{labels} value" and every family has HELP and TYPE.
  std::istringstream lines(m);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("#")) {
      EXPECT_TRUE(line.starts_with("# HELP qsapi_") || line.starts_with("# TYPE qsapi_")) << line;
    } else {
      EXPECT_THAT(line, ::testing::MatchesRegex("qsapi_[a-z_]+\\{[^}]*\\} [0-9.e+]+")) << line;
      ++samples;
    }
  }
  EXPECT_GT(samples, 10);

  const nlohmann::json j = nlohmann::json::parse(FormatStatusJson(*pool));
  EXPECT_EQ(j["policy"], "prefer");
  ASSERT_EQ(j["sources"].size(), 2U);
  const auto& q = j["sources"][1]["id"] == "qrng0" ? j["sources"][1] : j["sources"][0];
  EXPECT_EQ(q["state"], "failed");
  EXPECT_EQ(q["health_failures"], 1);
  EXPECT_NE(q["last_failure"].get<std::string>().find("repetition count"), std::string::npos);
  EXPECT_TRUE(q["last_failure_time"].is_string());
}

}  // namespace
}  // namespace qsapi::entropy
