#include "qsapi/entropy/health_tests.h"

#include <array>
#include <vector>

#include "crypto/internal/openssl_util.h"
#include "support/test_support.h"

namespace qsapi::entropy {
namespace {

constexpr double kAlpha = 1.0 / (1 << 20);

// SP 800-90B 4.4.1 / 4.4.2 published cutoffs for alpha = 2^-20 (the standard's own tables).
TEST(HealthTestCutoffsTest, ReproduceSp80090bTables) {
  const std::array<std::pair<double, std::uint32_t>, 9> rct = {
      {{0.5, 41}, {1, 21}, {2, 11}, {3, 8}, {4, 6}, {5, 5}, {6, 5}, {7, 4}, {8, 4}}};
  for (auto [h, c] : rct) EXPECT_EQ(*RepetitionCountCutoff(h, kAlpha), c) << "H=" << h;
  const std::array<std::pair<double, std::uint32_t>, 9> apt512 = {
      {{0.5, 410}, {1, 311}, {2, 177}, {3, 103}, {4, 62}, {5, 39}, {6, 25}, {7, 18}, {8, 13}}};
  for (auto [h, c] : apt512) EXPECT_EQ(*AdaptiveProportionCutoff(h, kAlpha, 512), c) << "H=" << h;
  EXPECT_EQ(*AdaptiveProportionCutoff(1, kAlpha, 1024), 589U);
  EXPECT_EQ(*AdaptiveProportionCutoff(0.5, kAlpha, 1024), 793U);
}

TEST(HealthTestCutoffsTest, RejectsParametersOutsideTheStandard) {
  EXPECT_EQ(RepetitionCountCutoff(0, kAlpha).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(RepetitionCountCutoff(8.5, kAlpha).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(RepetitionCountCutoff(4, 0.01).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(AdaptiveProportionCutoff(4, 1e-15, 512).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HealthTests::Create(2, kAlpha, /*binary=*/true).error().code(), ErrorCode::kInvalidArgument);
}

TEST(HealthTestsTest, StuckSourceTripsTheRepetitionCountTestAtTheCutoff) {
  auto tests = HealthTests::Create(8);  // C = 4
  QSAPI_ASSERT_OK(tests);
  const std::vector<std::uint8_t> stuck(100, 0x42);
  // Samples 1..3 pass; the 4th identical sample makes B = C.
  EXPECT_EQ(tests->Process(stuck), tests->repetition_cutoff() - 1);
  EXPECT_EQ(tests->state(), HealthState::kFailed);
  EXPECT_EQ(tests->last_failure(), HealthFailure::kRepetitionCount);
  EXPECT_EQ(tests->Process(stuck), 0U);  // nothing passes while failed
}

TEST(HealthTestsTest, BiasedSourceTripsTheAdaptiveProportionTestWithinOneWindow) {
  auto tests = HealthTests::Create(8);  // W = 512, C = 13
  QSAPI_ASSERT_OK(tests);
  // Every 4th sample is 0x00, the others count upwards (never two equal in a row): no repetition,
  // but 0x00 has probability 1/4, far above the 2^-8 the claim allows.
  std::vector<std::uint8_t> biased;
  for (int i = 0; i < 2048; ++i) biased.push_back(i % 4 == 0 ? 0 : static_cast<std::uint8_t>(1 + (i % 250)));
  const std::size_t passed = tests->Process(biased);
  EXPECT_EQ(tests->last_failure(), HealthFailure::kAdaptiveProportion);
  // The window starts with A = 0x00 and sees it again every 4 samples: B reaches C = 13 at
  // sample 4 * 12 + 1 = 49, so 48 samples pass.
  EXPECT_EQ(passed, 4U * (tests->proportion_cutoff() - 1));
}

// A deterministic stream of uniform bytes (SHAKE256 of a fixed seed), so the test never flakes.
std::vector<std::uint8_t> UniformBytes(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> out(n);
  const std::array<std::uint8_t, 1> s = {seed};
  EXPECT_TRUE(crypto::internal::Digest(crypto::internal::Shake256(), {s}, out).ok());
  return out;
}

TEST(HealthTestsTest, SourceThatDiesMidStreamTripsWithinTheCutoff) {
  auto tests = HealthTests::Create(6);  // RCT C = 5
  QSAPI_ASSERT_OK(tests);
  std::vector<std::uint8_t> stream = UniformBytes(100000, 1);
  const std::size_t death = stream.size();
  stream.resize(death + 1000, 0x00);  // the device starts returning zeros
  const std::size_t passed = tests->Process(stream);
  EXPECT_EQ(tests->state(), HealthState::kFailed);
  EXPECT_GE(passed, death - 1);
  EXPECT_LE(passed, death + tests->repetition_cutoff());
}

// alpha bounds the false-alarm probability per sample when the source has exactly the claimed
// min-entropy: at H = 8 for uniform bytes, 10^7 samples would expect about 0.6 repetition alarms.
// Real claims are assessed lower bounds (SP 800-90B 3.1.5), and a good source exceeds them; this
// test claims H = 6 for uniform bytes (RCT C = 5: 2^-32 per sample) and H = 0.5 for uniform bits.
TEST(HealthTestsTest, GoodSourcePassesTenMillionSamplesWithoutFalseAlarm) {
  auto tests = HealthTests::Create(6);  // alpha = 2^-20
  QSAPI_ASSERT_OK(tests);
  const std::vector<std::uint8_t> good = UniformBytes(10'000'000, 2);
  EXPECT_EQ(tests->Process(good), good.size());
  EXPECT_EQ(tests->state(), HealthState::kHealthy);
  EXPECT_EQ(tests->samples_tested(), 10'000'000U);

  auto binary = HealthTests::Create(0.5, kAlpha, /*binary=*/true);  // W = 1024, C = 793; RCT C = 41
  QSAPI_ASSERT_OK(binary);
  std::vector<std::uint8_t> bits;
  bits.reserve(good.size());
  for (std::size_t i = 0; i < 1'000'000; ++i) {
    for (int b = 0; b < 8; ++b) bits.push_back((good[i] >> b) & 1);
  }
  EXPECT_EQ(binary->Process(bits), bits.size());
}

TEST(HealthTestsTest, StartupHoldsBackOutputUntil1024SamplesAndAgainAfterReset) {
  auto tests = HealthTests::Create(6);
  QSAPI_ASSERT_OK(tests);
  const std::vector<std::uint8_t> good = UniformBytes(4096, 3);
  EXPECT_EQ(tests->state(), HealthState::kStartup);
  EXPECT_EQ(tests->Process(std::span(good).first(1023)), 1023U);
  EXPECT_EQ(tests->state(), HealthState::kStartup);
  EXPECT_EQ(tests->Process(std::span(good).subspan(1023, 1)), 1U);
  EXPECT_EQ(tests->state(), HealthState::kHealthy);
  const std::vector<std::uint8_t> stuck(10, 7);
  tests->Process(stuck);
  EXPECT_EQ(tests->state(), HealthState::kFailed);
  tests->Reset();
  EXPECT_EQ(tests->state(), HealthState::kStartup);
  EXPECT_EQ(tests->Process(std::span(good).subspan(2048, 1024)), 1024U);
  EXPECT_EQ(tests->state(), HealthState::kHealthy);
  EXPECT_EQ(HealthStateName(tests->state()), "healthy");
}

TEST(HealthTestsTest, StateCarriesAcrossCallBoundaries) {
  // A run split over several Process calls must trip exactly as one call would.
  auto tests = HealthTests::Create(8);
  QSAPI_ASSERT_OK(tests);
  const std::array<std::uint8_t, 2> two = {9, 9};
  EXPECT_EQ(tests->Process(two), 2U);
  EXPECT_EQ(tests->Process(std::span(two).first(1)), 1U);  // B = 3
  EXPECT_EQ(tests->Process(std::span(two).first(1)), 0U);  // B = 4 = C
  EXPECT_EQ(tests->last_failure(), HealthFailure::kRepetitionCount);
}

}  // namespace
}  // namespace qsapi::entropy
