// qsapi_session_bench: session envelopes (qsapi/session/envelope.h) against the raw AEAD of the
// same suite and size, in the same run (docs/BENCHMARKS.md, "Session envelopes").
//
// Naming: BM_Session<Seal|Open>/<suite>/<size>/<variant>, where <variant> is
//   envelope   SessionChannel::SealTo / OpenTo into one reused buffer: the 37-byte header, the
//              counter nonce, the header as associated data, the replay window, the rotation
//              check and the channel's mutex, on top of the AEAD
//   raw_aead   crypto::Aead::SealWithNonce / OpenWithNonce with a counter nonce and no associated
//              data into one reused buffer (bench/crypto_bench.cc shows it within a few percent of
//              the raw OpenSSL / libsodium call)
// Open works through a batch of distinct envelopes (a receiver opens each sequence number once;
// 1 MiB of payload, which stays in L2), resealed outside the timed region when used up; raw_aead
// opens a batch of the same size, each ciphertext under its own nonce, and pauses the timer at the
// same points so that the harness costs both sides the same.
//   raw_aead_layout  the AEAD alone on the envelope's layout (37-byte header as associated data,
//              ciphertext at offset 37): separates the format's cost from the channel's
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "qsapi/crypto/aead.h"
#include "qsapi/session/envelope.h"

namespace {

using qsapi::Bytes;
using qsapi::ByteView;
using qsapi::SecretBytes;
namespace crypto = qsapi::crypto;
namespace session = qsapi::session;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kBatchBytes = 1024 * kKiB;  // envelopes per Open batch: 1 MiB of plaintext (fits L2)

template <typename T>
T Must(qsapi::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().ToString().c_str());
    std::abort();
  }
  return std::move(r).value();
}

void Must(const qsapi::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.error().ToString().c_str());
    std::abort();
  }
}

Bytes Plaintext(std::size_t size) {
  Bytes b(size);
  for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(i * 7);
  return b;
}

session::SessionChannel Channel(session::SessionRole role, session::AeadSuite suite) {
  return Must(session::SessionChannel::New(role, suite, Bytes(session::kSessionIdSize, 0x11),
                                           session::EpochSecret::CopyFrom(Bytes(session::kEpochSecretSize, 0x22))),
              "channel");
}

crypto::Aead RawAead(session::AeadSuite suite) {
  return Must(
      crypto::Aead::Generate(suite == session::AeadSuite::kAes256Gcm ? crypto::AeadAlgorithm::kAes256Gcm
                                                                     : crypto::AeadAlgorithm::kXChaCha20Poly1305),
      "aead");
}

void CounterNonce(std::uint64_t counter, Bytes& nonce) {
  for (std::size_t i = 0; i < 8; ++i) nonce[nonce.size() - 1 - i] = static_cast<std::uint8_t>(counter >> (8 * i));
}

void BM_SealEnvelope(benchmark::State& state, session::AeadSuite suite, std::size_t size) {
  session::SessionChannel ch = Channel(session::SessionRole::kInitiator, suite);
  const Bytes pt = Plaintext(size);
  Bytes out;
  for (auto _ : state) {
    Must(ch.SealTo(pt, {}, out), "seal");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_SealRaw(benchmark::State& state, session::AeadSuite suite, std::size_t size) {
  const crypto::Aead aead = RawAead(suite);
  const Bytes pt = Plaintext(size);
  Bytes out(size + 16);
  Bytes nonce(session::NonceSize(suite), 0);
  std::uint64_t counter = 0;
  for (auto _ : state) {
    CounterNonce(counter++, nonce);
    Must(aead.SealWithNonce(nonce, pt, {}, out), "raw seal");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

// The AEAD with the envelope's layout but none of the channel: a 37-byte header as associated
// data and the ciphertext written at offset 37 of the output buffer.
void BM_SealRawLayout(benchmark::State& state, session::AeadSuite suite, std::size_t size) {
  const crypto::Aead aead = RawAead(suite);
  const Bytes pt = Plaintext(size);
  Bytes out(session::kEnvelopeHeaderSize + size + 16, 0x5a);
  Bytes nonce(session::NonceSize(suite), 0);
  std::uint64_t counter = 0;
  for (auto _ : state) {
    CounterNonce(counter++, nonce);
    Must(aead.SealWithNonce(nonce, pt, ByteView(out).first(session::kEnvelopeHeaderSize),
                            std::span(out).subspan(session::kEnvelopeHeaderSize)),
         "raw seal");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_OpenEnvelope(benchmark::State& state, session::AeadSuite suite, std::size_t size) {
  session::SessionChannel sender = Channel(session::SessionRole::kInitiator, suite);
  session::SessionChannel receiver = Channel(session::SessionRole::kResponder, suite);
  const Bytes pt = Plaintext(size);
  std::vector<Bytes> batch(kBatchBytes / size);
  auto reseal = [&] {
    for (Bytes& e : batch) Must(sender.SealTo(pt, {}, e), "seal");
  };
  reseal();
  std::size_t next = 0;
  Bytes out;
  for (auto _ : state) {
    if (next == batch.size()) {
      state.PauseTiming();
      reseal();
      next = 0;
      state.ResumeTiming();
    }
    Must(receiver.OpenTo(batch[next++], {}, out), "open");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_OpenRaw(benchmark::State& state, session::AeadSuite suite, std::size_t size) {
  const crypto::Aead aead = RawAead(suite);
  const Bytes pt = Plaintext(size);
  std::vector<Bytes> batch(kBatchBytes / size);
  Bytes nonce(session::NonceSize(suite), 0);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i].resize(size + 16);
    CounterNonce(i, nonce);
    Must(aead.SealWithNonce(nonce, pt, {}, batch[i]), "raw seal");
  }
  std::size_t next = 0;
  Bytes out(size);
  for (auto _ : state) {
    if (next == batch.size()) {
      state.PauseTiming();  // the same harness cost as BM_OpenEnvelope's reseal pause
      next = 0;
      state.ResumeTiming();
    }
    CounterNonce(next, nonce);
    Must(aead.OpenWithNonce(nonce, batch[next++], {}, out), "raw open");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

// The AEAD opening the envelope's layout without the channel (header as associated data,
// ciphertext at offset 37), over a batch like BM_OpenEnvelope's.
void BM_OpenRawLayout(benchmark::State& state, session::AeadSuite suite, std::size_t size) {
  const crypto::Aead aead = RawAead(suite);
  const Bytes pt = Plaintext(size);
  constexpr std::size_t kHeader = session::kEnvelopeHeaderSize;
  std::vector<Bytes> batch(kBatchBytes / size);
  Bytes nonce(session::NonceSize(suite), 0);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i].assign(kHeader + size + 16, 0x5a);
    CounterNonce(i, nonce);
    Must(aead.SealWithNonce(nonce, pt, ByteView(batch[i]).first(kHeader), std::span(batch[i]).subspan(kHeader)),
         "raw seal");
  }
  std::size_t next = 0;
  Bytes out(size);
  for (auto _ : state) {
    if (next == batch.size()) {
      state.PauseTiming();  // the same harness cost as BM_OpenEnvelope's reseal pause
      next = 0;
      state.ResumeTiming();
    }
    CounterNonce(next, nonce);
    const Bytes& e = batch[next++];
    Must(aead.OpenWithNonce(nonce, ByteView(e).subspan(kHeader), ByteView(e).first(kHeader), out), "raw open");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void Register() {
  for (const auto suite : {session::AeadSuite::kAes256Gcm, session::AeadSuite::kXChaCha20Poly1305}) {
    const std::string s = suite == session::AeadSuite::kAes256Gcm ? "Aes256Gcm" : "XChaCha20Poly1305";
    for (const std::size_t size : {kKiB, 16 * kKiB}) {
      const std::string z = std::to_string(size / kKiB) + "KiB";
      benchmark::RegisterBenchmark(("BM_SessionSeal/" + s + "/" + z + "/envelope").c_str(), BM_SealEnvelope, suite,
                                   size);
      benchmark::RegisterBenchmark(("BM_SessionSeal/" + s + "/" + z + "/raw_aead").c_str(), BM_SealRaw, suite, size);
      benchmark::RegisterBenchmark(("BM_SessionSeal/" + s + "/" + z + "/raw_aead_layout").c_str(), BM_SealRawLayout,
                                   suite, size);
      benchmark::RegisterBenchmark(("BM_SessionOpen/" + s + "/" + z + "/envelope").c_str(), BM_OpenEnvelope, suite,
                                   size);
      benchmark::RegisterBenchmark(("BM_SessionOpen/" + s + "/" + z + "/raw_aead").c_str(), BM_OpenRaw, suite, size);
      benchmark::RegisterBenchmark(("BM_SessionOpen/" + s + "/" + z + "/raw_aead_layout").c_str(), BM_OpenRawLayout,
                                   suite, size);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
