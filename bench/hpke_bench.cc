// qsapi_hpke_bench: sealed messages (HPKE with a post-quantum KEM, qsapi/hpke) against the raw AEAD
// of the same size, in the same run.
//
// Naming: BM_Hpke<Suite>_<Seal|Open>_<Size>/<variant>, where <variant> is
//   qsapi      the sealed-message API: 1 KiB and 1 MiB through SealMessage / OpenMessage (one HPKE
//              ciphertext: KEM encapsulation or decapsulation, key schedule, one AEAD call, the
//              container header); 1 GiB through SealStream / OpenAny (the STREAM format, 64 KiB
//              chunks, from memory to a discarding sink: what `qsapi seal` / `open` do minus I/O)
//   raw_aead   the AEAD alone on the same plaintext, one call with an explicit nonce
//              (crypto::Aead::SealWithNonce / OpenWithNonce, which bench/crypto_bench.cc shows to
//              be within a few percent of the raw OpenSSL / libsodium calls), into a full-size
//              output buffer
//   raw_aead_64KiB  (1 GiB only) the AEAD over the same plaintext in 64 KiB pieces with counter
//              nonces into one reused buffer: the like-for-like baseline of the STREAM, which
//              also works chunk by chunk and discards its output here
// The difference is the price of sealing to a public key: a KEM operation per message (dominant
// at 1 KiB) and, for streams, per-chunk framing and associated data (visible at 1 GiB).
// 1 GiB runs a single iteration per repetition. Set-up (keys, the message to open) is not timed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <benchmark/benchmark.h>

#include "qsapi/crypto/aead.h"
#include "qsapi/hpke/container.h"
#include "qsapi/hpke/stream.h"

namespace {

using qsapi::Bytes;
using qsapi::ByteView;
namespace hpke = qsapi::hpke;
namespace crypto = qsapi::crypto;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kGiB = 1024 * kMiB;

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

class DiscardSink final : public hpke::ByteSink {
 public:
  qsapi::Status Write(ByteView data) override {
    bytes += data.size();
    return qsapi::OkStatus();
  }
  std::uint64_t bytes = 0;
};

const hpke::InMemoryRecipientKey& Key() {
  static const auto key = Must(hpke::InMemoryRecipientKey::Generate(crypto::KemAlgorithm::kXWing), "keygen");
  return *key;
}

const Bytes& Plaintext(std::size_t size) {
  static std::map<std::size_t, Bytes> cache;
  Bytes& b = cache[size];
  if (b.size() != size) {
    b.resize(size);
    for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(i * 7);
  }
  return b;
}

hpke::SealOptions Options(hpke::AeadId aead) {
  hpke::SealOptions o;
  o.suite = {hpke::KemId::kXWing, hpke::KdfId::kHkdfSha256, aead};
  o.chunk_size = hpke::kDefaultChunkSize;
  return o;
}

crypto::AeadAlgorithm RawAlgorithm(hpke::AeadId aead) {
  return aead == hpke::AeadId::kAes256Gcm ? crypto::AeadAlgorithm::kAes256Gcm
                                          : crypto::AeadAlgorithm::kChaCha20Poly1305;
}

Bytes SealForOpen(std::size_t size, hpke::AeadId aead) {
  const Bytes& pt = Plaintext(size);
  if (size <= hpke::kMaxSingleShotSize)
    return Must(hpke::SealMessage(Key().public_key(), Key().key_id(), pt, Options(aead)), "seal");
  hpke::MemorySource source(pt);
  hpke::MemorySink sink(size + size / 16 + kMiB);
  Must(hpke::SealStream(Key().public_key(), Key().key_id(), source, sink, Options(aead)), "seal stream");
  return sink.bytes();
}

void BM_Seal(benchmark::State& state, hpke::AeadId aead, std::size_t size) {
  const Bytes& pt = Plaintext(size);
  const hpke::SealOptions options = Options(aead);
  for (auto _ : state) {
    if (size <= hpke::kMaxSingleShotSize) {
      Bytes sealed = Must(hpke::SealMessage(Key().public_key(), Key().key_id(), pt, options), "seal");
      benchmark::DoNotOptimize(sealed.data());
    } else {
      hpke::MemorySource source(pt);
      DiscardSink sink;
      Must(hpke::SealStream(Key().public_key(), Key().key_id(), source, sink, options), "seal stream");
      benchmark::DoNotOptimize(sink.bytes);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_Open(benchmark::State& state, hpke::AeadId aead, std::size_t size) {
  const Bytes sealed = SealForOpen(size, aead);
  for (auto _ : state) {
    if (size <= hpke::kMaxSingleShotSize) {
      Bytes pt = Must(hpke::OpenMessage(sealed, Key()), "open");
      benchmark::DoNotOptimize(pt.data());
    } else {
      hpke::MemorySource source(sealed);
      DiscardSink sink;
      Must(hpke::OpenAny(source, Key(), sink), "open stream");
      if (sink.bytes != size) std::abort();
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_RawSeal(benchmark::State& state, hpke::AeadId aead, std::size_t size) {
  const crypto::Aead cipher = Must(crypto::Aead::Generate(RawAlgorithm(aead)), "aead");
  const Bytes& pt = Plaintext(size);
  Bytes out(size + 16);
  const Bytes nonce(12, 0);  // one nonce under one key: the output is thrown away
  for (auto _ : state) {
    Must(cipher.SealWithNonce(nonce, pt, {}, out), "raw seal");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_RawOpen(benchmark::State& state, hpke::AeadId aead, std::size_t size) {
  const crypto::Aead cipher = Must(crypto::Aead::Generate(RawAlgorithm(aead)), "aead");
  const Bytes& pt = Plaintext(size);
  Bytes ct(size + 16);
  const Bytes nonce(12, 0);
  Must(cipher.SealWithNonce(nonce, pt, {}, ct), "raw seal");
  Bytes out(size);
  for (auto _ : state) {
    Must(cipher.OpenWithNonce(nonce, ct, {}, out), "raw open");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

// The raw AEAD over the same plaintext in 64 KiB pieces with counter nonces, into one reused
// output buffer: the fair baseline for the STREAM, which also works chunk by chunk and discards.
constexpr std::size_t kPiece = 64 * kKiB;

void Nonce(std::uint64_t counter, Bytes& nonce) {
  for (int i = 0; i < 8; ++i) nonce[11 - i] = static_cast<std::uint8_t>(counter >> (8 * i));
}

void BM_RawSealChunked(benchmark::State& state, hpke::AeadId aead, std::size_t size) {
  const crypto::Aead cipher = Must(crypto::Aead::Generate(RawAlgorithm(aead)), "aead");
  const Bytes& pt = Plaintext(size);
  Bytes out(kPiece + 16);
  Bytes nonce(12, 0);
  for (auto _ : state) {
    for (std::size_t off = 0, i = 0; off < size; off += kPiece, ++i) {
      const std::size_t n = std::min(kPiece, size - off);
      Nonce(i, nonce);
      Must(cipher.SealWithNonce(nonce, ByteView(pt.data() + off, n), {}, std::span<std::uint8_t>(out.data(), n + 16)),
           "raw seal");
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_RawOpenChunked(benchmark::State& state, hpke::AeadId aead, std::size_t size) {
  const crypto::Aead cipher = Must(crypto::Aead::Generate(RawAlgorithm(aead)), "aead");
  const Bytes& pt = Plaintext(size);
  const std::size_t pieces = (size + kPiece - 1) / kPiece;
  Bytes ct(size + pieces * 16);
  Bytes nonce(12, 0);
  for (std::size_t off = 0, i = 0; off < size; off += kPiece, ++i) {
    const std::size_t n = std::min(kPiece, size - off);
    Nonce(i, nonce);
    Must(cipher.SealWithNonce(nonce, ByteView(pt.data() + off, n), {},
                              std::span<std::uint8_t>(ct.data() + off + i * 16, n + 16)),
         "raw seal");
  }
  Bytes out(kPiece);
  for (auto _ : state) {
    for (std::size_t off = 0, i = 0; off < size; off += kPiece, ++i) {
      const std::size_t n = std::min(kPiece, size - off);
      Nonce(i, nonce);
      Must(cipher.OpenWithNonce(nonce, ByteView(ct.data() + off + i * 16, n + 16), {},
                                std::span<std::uint8_t>(out.data(), n)),
           "raw open");
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void Register() {
  struct SizeName {
    std::size_t size;
    const char* name;
  };
  for (auto [aead, aead_name] : {std::pair{hpke::AeadId::kAes256Gcm, "XWingAes256Gcm"},
                                 std::pair{hpke::AeadId::kChaCha20Poly1305, "XWingChaCha20Poly1305"}}) {
    for (SizeName s : {SizeName{kKiB, "1KiB"}, SizeName{kMiB, "1MiB"}, SizeName{kGiB, "1GiB"}}) {
      const std::string base = std::string("BM_Hpke") + aead_name;
      const std::string seal = base + "_Seal_" + s.name;
      const std::string open = base + "_Open_" + s.name;
      auto* b1 = benchmark::RegisterBenchmark((seal + "/qsapi").c_str(), BM_Seal, aead, s.size);
      auto* b2 = benchmark::RegisterBenchmark((seal + "/raw_aead").c_str(), BM_RawSeal, aead, s.size);
      auto* b3 = benchmark::RegisterBenchmark((open + "/qsapi").c_str(), BM_Open, aead, s.size);
      auto* b4 = benchmark::RegisterBenchmark((open + "/raw_aead").c_str(), BM_RawOpen, aead, s.size);
      for (auto* b : {b1, b2, b3, b4}) {
        b->Unit(benchmark::kMicrosecond);
        if (s.size == kGiB) b->Iterations(1);
      }
      if (s.size == kGiB) {
        benchmark::RegisterBenchmark((seal + "/raw_aead_64KiB").c_str(), BM_RawSealChunked, aead, s.size)
            ->Unit(benchmark::kMicrosecond)
            ->Iterations(1);
        benchmark::RegisterBenchmark((open + "/raw_aead_64KiB").c_str(), BM_RawOpenChunked, aead, s.size)
            ->Unit(benchmark::kMicrosecond)
            ->Iterations(1);
      }
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
