// qsapi/entropy/health_tests.h: NIST SP 800-90B continuous health tests for raw noise samples.
//
// Every raw sample of a QRNG source passes through a HealthTests instance before it is
// conditioned or used (SP 800-90B 4.4):
//   - Repetition Count Test (4.4.1): cutoff C = 1 + ceil(-log2(alpha) / H).
//   - Adaptive Proportion Test (4.4.2): window W = 1024 for binary samples, 512 otherwise;
//     cutoff C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), the smallest C with P(X >= C) <= alpha for
//     X ~ Binomial(W, 2^-H).
//   - Start-up testing (4.3): both tests over the first 1024 samples before any output is used.
// The cutoffs are computed from the claimed min-entropy H and the false-positive probability
// alpha, not taken from a table. A failure is an error state: nothing more passes until Reset()
// and a fresh start-up test.
//
// Samples are bytes: for a byte-wide noise source each byte is one sample; for a binary source
// (binary = true) each byte holds one sample, 0 or 1.
// Thread compatibility: one instance per source, used by one thread at a time.
#ifndef QSAPI_ENTROPY_HEALTH_TESTS_H_
#define QSAPI_ENTROPY_HEALTH_TESTS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "qsapi/result.h"

namespace qsapi::entropy {

// RepetitionCountCutoff returns 1 + ceil(-log2(alpha) / H) (SP 800-90B 4.4.1).
// kInvalidArgument unless 0 < H <= 8 and 2^-40 <= alpha <= 2^-20 (SP 800-90B 4.4).
Result<std::uint32_t> RepetitionCountCutoff(double min_entropy, double alpha);

// AdaptiveProportionCutoff returns 1 + CRITBINOM(window, 2^-H, 1 - alpha) (SP 800-90B 4.4.2),
// computed from the binomial distribution in log space.
Result<std::uint32_t> AdaptiveProportionCutoff(double min_entropy, double alpha, std::uint32_t window);

enum class HealthState : std::uint8_t {
  kStartup,  // fewer than kStartupSamples samples seen since the last reset: output must not be used
  kHealthy,  // start-up passed and no failure since
  kFailed,   // a test failed: output must not be used until Reset() and a new start-up
};

std::string_view HealthStateName(HealthState state) noexcept;  // "startup", "healthy", "failed"

enum class HealthFailure : std::uint8_t { kNone, kRepetitionCount, kAdaptiveProportion };

class HealthTests {
 public:
  static constexpr std::size_t kStartupSamples = 1024;

  // Create computes the cutoffs for claimed min-entropy `min_entropy` bits per sample (at most 1
  // for binary samples, 8 otherwise) and false-positive probability `alpha` (default 2^-20).
  static Result<HealthTests> Create(double min_entropy, double alpha = 1.0 / (1 << 20), bool binary = false);

  // Process runs both tests over `samples` in order. It returns the number of samples that passed
  // before a failure (samples.size() when none failed). After a failure the state is kFailed and
  // every later call processes nothing and returns 0.
  std::size_t Process(std::span<const std::uint8_t> samples) noexcept;

  // Reset clears the failure and starts a new start-up test.
  void Reset() noexcept;

  [[nodiscard]] HealthState state() const noexcept;
  [[nodiscard]] HealthFailure last_failure() const noexcept { return failure_; }
  [[nodiscard]] std::uint32_t repetition_cutoff() const noexcept { return rct_cutoff_; }
  [[nodiscard]] std::uint32_t proportion_cutoff() const noexcept { return apt_cutoff_; }
  [[nodiscard]] std::uint32_t window() const noexcept { return window_; }
  [[nodiscard]] std::uint64_t samples_tested() const noexcept { return total_; }

 private:
  HealthTests(std::uint32_t rct_cutoff, std::uint32_t apt_cutoff, std::uint32_t window) noexcept
      : rct_cutoff_(rct_cutoff), apt_cutoff_(apt_cutoff), window_(window) {}

  std::uint32_t rct_cutoff_;
  std::uint32_t apt_cutoff_;
  std::uint32_t window_;
  // Repetition Count Test state.
  std::uint8_t rct_value_ = 0;
  std::uint32_t rct_count_ = 0;
  // Adaptive Proportion Test state.
  std::uint8_t apt_value_ = 0;
  std::uint32_t apt_count_ = 0;
  std::uint32_t apt_position_ = 0;  // samples of the current window seen (0 = start a new window)
  std::uint64_t since_reset_ = 0;
  std::uint64_t total_ = 0;
  HealthFailure failure_ = HealthFailure::kNone;
};

}  // namespace qsapi::entropy

#endif  // QSAPI_ENTROPY_HEALTH_TESTS_H_
