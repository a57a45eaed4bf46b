#include "qsapi/entropy/health_tests.h"

#include <cmath>
#include <string>

namespace qsapi::entropy {
namespace {

Status CheckParameters(double min_entropy, double alpha) {
  if (!(min_entropy > 0.0 && min_entropy <= 8.0)) {
    return InvalidArgument("claimed min-entropy per sample must be in (0, 8] bits, got " + std::to_string(min_entropy));
  }
  // SP 800-90B 4.4: alpha between 2^-40 and 2^-20 (inclusive).
  if (!(alpha >= std::ldexp(1.0, -40) && alpha <= std::ldexp(1.0, -20))) {
    return InvalidArgument("health-test false-positive probability alpha must be in [2^-40, 2^-20]");
  }
  return OkStatus();
}

}  // namespace

Result<std::uint32_t> RepetitionCountCutoff(double min_entropy, double alpha) {
  QSAPI_RETURN_IF_ERROR(CheckParameters(min_entropy, alpha));
  return static_cast<std::uint32_t>(1 + std::ceil(-std::log2(alpha) / min_entropy));
}

Result<std::uint32_t> AdaptiveProportionCutoff(double min_entropy, double alpha, std::uint32_t window) {
  QSAPI_RETURN_IF_ERROR(CheckParameters(min_entropy, alpha));
  if (window < 2) return InvalidArgument("adaptive proportion window must be at least 2");
  // P(X >= c) for X ~ Binomial(W, p), p = 2^-H, summed from the top in log space (the terms
  // underflow a double long before the tail reaches alpha).
  const double p = std::exp2(-min_entropy);
  const double log_p = std::log(p);
  const double log_q = std::log1p(-p);
  const double n = window;
  auto log_pmf = [&](double k) {
    // lgamma_r: std::lgamma writes the global signgam, which makes it unsafe beside other threads.
    int sign = 0;
    return ::lgamma_r(n + 1, &sign) - ::lgamma_r(k + 1, &sign) - ::lgamma_r(n - k + 1, &sign) + k * log_p +
           (n - k) * log_q;
  };
  double tail = 0.0;  // P(X >= c) for the current c
  for (std::uint32_t c = window; c >= 1; --c) {
    const double next = tail + std::exp(log_pmf(c));
    if (next > alpha) return c + 1;  // P(X >= c+1) <= alpha < P(X >= c)
    tail = next;
  }
  return 1U;  // even P(X >= 1) <= alpha: every window would pass; cannot happen for valid parameters
}

std::string_view HealthStateName(HealthState state) noexcept {
  switch (state) {
    case HealthState::kStartup: return "startup";
    case HealthState::kHealthy: return "healthy";
    case HealthState::kFailed: return "failed";
  }
  return "unknown";
}

Result<HealthTests> HealthTests::Create(double min_entropy, double alpha, bool binary) {
  if (binary && min_entropy > 1.0)
    return InvalidArgument("a binary source carries at most 1 bit of min-entropy per sample");
  const std::uint32_t window = binary ? 1024 : 512;
  QSAPI_ASSIGN_OR_RETURN(std::uint32_t rct, RepetitionCountCutoff(min_entropy, alpha));
  QSAPI_ASSIGN_OR_RETURN(std::uint32_t apt, AdaptiveProportionCutoff(min_entropy, alpha, window));
  return HealthTests(rct, apt, window);
}

std::size_t HealthTests::Process(std::span<const std::uint8_t> samples) noexcept {
  if (failure_ != HealthFailure::kNone) return 0;
  const std::size_t n = samples.size();
  const std::uint8_t* s = samples.data();
  // Local copies keep the hot loop in registers.
  std::uint8_t rct_value = rct_value_;
  std::uint32_t rct_count = rct_count_;
  std::uint8_t apt_value = apt_value_;
  std::uint32_t apt_count = apt_count_;
  std::uint32_t apt_position = apt_position_;
  const bool first_ever = since_reset_ == 0;
  std::size_t i = 0;
  HealthFailure failure = HealthFailure::kNone;
  for (; i < n; ++i) {
    const std::uint8_t x = s[i];  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
    // SP 800-90B 4.4.1: A = first sample, B = 1; B += 1 on a repeat, fail at B >= C.
    if (x == rct_value && !(first_ever && i == 0)) {
      if (++rct_count >= rct_cutoff_) {
        failure = HealthFailure::kRepetitionCount;
        break;
      }
    } else {
      rct_value = x;
      rct_count = 1;
    }
    // SP 800-90B 4.4.2: the first sample of a window is A; count A among the next W - 1.
    if (apt_position == 0) {
      apt_value = x;
      apt_count = 1;
      apt_position = 1;
    } else {
      if (x == apt_value && ++apt_count >= apt_cutoff_) {
        failure = HealthFailure::kAdaptiveProportion;
        break;
      }
      if (++apt_position == window_) apt_position = 0;
    }
  }
  rct_value_ = rct_value;
  rct_count_ = rct_count;
  apt_value_ = apt_value;
  apt_count_ = apt_count;
  apt_position_ = apt_position;
  since_reset_ += i;
  total_ += i;
  failure_ = failure;
  return i;
}

void HealthTests::Reset() noexcept {
  rct_value_ = 0;
  rct_count_ = 0;
  apt_value_ = 0;
  apt_count_ = 0;
  apt_position_ = 0;
  since_reset_ = 0;
  failure_ = HealthFailure::kNone;
}

HealthState HealthTests::state() const noexcept {
  if (failure_ != HealthFailure::kNone) return HealthState::kFailed;
  return since_reset_ < kStartupSamples ? HealthState::kStartup : HealthState::kHealthy;
}

}  // namespace qsapi::entropy
