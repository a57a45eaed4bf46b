// Throughput of the SP 800-90B health tests (qsapi::entropy::HealthTests) over raw samples.
// Target (issue #3): at least 1 GB/s on one core, so that health testing is never the bottleneck.
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "qsapi/entropy/health_tests.h"
#include "qsapi/entropy/pool.h"

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

// Pool output: HKDF-SHA-512 over 64 OS bytes (+ health-tested QRNG samples, with /dev/urandom
// standing in for a QRNG device claimed at 7 bits per byte), per draw of the given size.
void BM_Pool_Draw(benchmark::State& state) {
  std::vector<std::unique_ptr<qsapi::entropy::EntropySource>> sources;
  if (state.range(1) != 0) {
    qsapi::entropy::DeviceSourceOptions o;
    o.path = "/dev/urandom";
    sources.push_back(qsapi::entropy::OpenDeviceSource(o).value());
  }
  auto pool = qsapi::entropy::EntropyPool::Create({}, std::move(sources)).value();
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto draw = pool->Draw(size);
    if (!draw.ok()) state.SkipWithError("draw failed");
    benchmark::DoNotOptimize(draw);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Pool_Draw)->ArgNames({"bytes", "qrng"})->Args({32, 0})->Args({32, 1})->Args({4096, 0})->Args({4096, 1});

}  // namespace

BENCHMARK_MAIN();
