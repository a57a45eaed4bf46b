// Throughput of the SP 800-90B health tests (qsapi::entropy::HealthTests) over raw samples.
// Target (issue #3): at least 1 GB/s on one core, so that health testing is never the bottleneck.
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "qsapi/entropy/health_tests.h"

namespace {

void BM_HealthTests_Bytes(benchmark::State& state) {
  std::vector<std::uint8_t> samples(static_cast<std::size_t>(state.range(0)));
  std::mt19937_64 rng(42);  // benchmark input only: uniform bytes that never trip a claim of H = 6
  for (auto& b : samples) b = static_cast<std::uint8_t>(rng());
  auto tests = qsapi::entropy::HealthTests::Create(6).value();
  for (auto _ : state) {
    benchmark::DoNotOptimize(tests.Process(samples));
  }
  if (tests.state() == qsapi::entropy::HealthState::kFailed) state.SkipWithError("false alarm");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_HealthTests_Bytes)->Arg(4096)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
