// Keystore costs against the real SoftHSM2: a warm use (material cached in memory) against a cold
// one (the token unwraps the blob with CKM_AES_GCM, the seed is expanded), and keys created per
// second (generation + token wrap + one SQLite transaction with fsync). The baseline of the same
// run is the raw primitive on a key already in memory (crypto::Aead / SigningKey), so the ratios
// say what the keystore adds.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/signature.h"
#include "qsapi/keystore/keystore.h"

namespace {

using qsapi::keystore::Keystore;

struct Env {
  std::filesystem::path dir;
  std::unique_ptr<Keystore> ks;
  Env() {
    dir = std::filesystem::temp_directory_path() / ("qsapi-keystore-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    if (!qsapi::keystore::InitEmbedded(dir).ok()) std::abort();
    auto opened = Keystore::Open(qsapi::keystore::EmbeddedOptions(dir));
    if (!opened.ok()) std::abort();
    ks = std::move(*opened);
    (void)ks->Create("bench-gcm", qsapi::keystore::ParseKeyType("AES-256-GCM").value());
    (void)ks->Create("bench-mldsa", qsapi::keystore::ParseKeyType("ML-DSA-65").value());
    (void)ks->Create("bench-kem", qsapi::keystore::ParseKeyType("X-Wing").value());
  }
  ~Env() {
    ks.reset();
    std::filesystem::remove_all(dir);
  }
};

Env& E() {
  static Env env;
  return env;
}

const qsapi::Bytes kMessage(1024, 0x5a);

void BM_Encrypt1KiB_Raw(benchmark::State& state) {
  auto aead = qsapi::crypto::Aead::Generate(qsapi::crypto::AeadAlgorithm::kAes256Gcm).value();
  for (auto _ : state) benchmark::DoNotOptimize(aead.Encrypt(kMessage, {}));
}
void BM_Encrypt1KiB_Warm(benchmark::State& state) {
  Keystore& ks = *E().ks;
  (void)ks.Encrypt("bench-gcm", kMessage);
  for (auto _ : state) benchmark::DoNotOptimize(ks.Encrypt("bench-gcm", kMessage));
}
void BM_Encrypt1KiB_Cold(benchmark::State& state) {
  Keystore& ks = *E().ks;
  for (auto _ : state) {
    ks.FlushCache();
    benchmark::DoNotOptimize(ks.Encrypt("bench-gcm", kMessage));
  }
}
void BM_SignMlDsa65_Raw(benchmark::State& state) {
  auto key = qsapi::crypto::SigningKey::Generate(qsapi::crypto::SignatureAlgorithm::kMlDsa65).value();
  for (auto _ : state) benchmark::DoNotOptimize(key.Sign(kMessage));
}
void BM_SignMlDsa65_Warm(benchmark::State& state) {
  Keystore& ks = *E().ks;
  (void)ks.Sign("bench-mldsa", kMessage);
  for (auto _ : state) benchmark::DoNotOptimize(ks.Sign("bench-mldsa", kMessage));
}
void BM_SignMlDsa65_Cold(benchmark::State& state) {
  Keystore& ks = *E().ks;
  for (auto _ : state) {
    ks.FlushCache();
    benchmark::DoNotOptimize(ks.Sign("bench-mldsa", kMessage));
  }
}
void BM_DecapsulateXWing_Warm(benchmark::State& state) {
  Keystore& ks = *E().ks;
  auto enc = ks.KemPublicKey("bench-kem").value().Encapsulate().value();
  (void)ks.Decapsulate("bench-kem", 0, enc.ciphertext.view());
  for (auto _ : state) benchmark::DoNotOptimize(ks.Decapsulate("bench-kem", 0, enc.ciphertext.view()));
}
void BM_DecapsulateXWing_Cold(benchmark::State& state) {
  Keystore& ks = *E().ks;
  auto enc = ks.KemPublicKey("bench-kem").value().Encapsulate().value();
  for (auto _ : state) {
    ks.FlushCache();
    benchmark::DoNotOptimize(ks.Decapsulate("bench-kem", 0, enc.ciphertext.view()));
  }
}
void BM_CreateKey(benchmark::State& state, const char* type) {
  Keystore& ks = *E().ks;
  static std::atomic<int> n{0};
  const auto t = qsapi::keystore::ParseKeyType(type).value();
  for (auto _ : state) {
    if (!ks.Create("c" + std::to_string(n++), t).ok()) state.SkipWithError("create failed");
  }
  state.counters["keys_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Encrypt1KiB_Raw);
BENCHMARK(BM_Encrypt1KiB_Warm);
BENCHMARK(BM_Encrypt1KiB_Cold);
BENCHMARK(BM_SignMlDsa65_Raw);
BENCHMARK(BM_SignMlDsa65_Warm);
BENCHMARK(BM_SignMlDsa65_Cold);
BENCHMARK(BM_DecapsulateXWing_Warm);
BENCHMARK(BM_DecapsulateXWing_Cold);
BENCHMARK_CAPTURE(BM_CreateKey, AES_256_GCM, "AES-256-GCM")->UseRealTime();
BENCHMARK_CAPTURE(BM_CreateKey, ML_DSA_65, "ML-DSA-65")->UseRealTime();
BENCHMARK_CAPTURE(BM_CreateKey, X_Wing, "X-Wing")->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
