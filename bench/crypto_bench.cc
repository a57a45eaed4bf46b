// qsapi_crypto_bench: qsapi's crypto API against the raw OpenSSL 3.5 / libsodium calls it wraps,
// side by side in one binary, on the same inputs and for equivalent work.
//
// Naming: every benchmark is BM_<Primitive>_<Operation>[_<Size>]/<variant>, where <variant> is
//   qsapi          our public API (include/qsapi/crypto/*.h)
//   raw            the raw OpenSSL / libsodium calls a careful user would make for the same result,
//                  mirroring what the library does per call (e.g. a fresh EVP_PKEY_CTX from a
//                  pre-made EVP_PKEY for every ML-KEM encapsulation)
//   raw_*          further raw baselines:
//                    raw_reuse_ctx  AES-GCM with one EVP_CIPHER_CTX keyed once and re-IV'd per message
//                                   (faster, but not shareable between threads as our Aead is)
//                    raw_parts      the hybrids (kem_hybrid.cc), which have no single raw call: the sum
//                                   of their raw parts (X-Wing: ML-KEM-768 + X25519 + SHA3-256;
//                                   MLKEM1024-P384: ML-KEM-1024 + P-384 ECDH + SHA3-256); for
//                                   encapsulation and decapsulation the same OpenSSL work the
//                                   library does per call
// bench/run_benchmarks.sh pairs /qsapi with /raw (and the raw_* variants) and prints the ratios.
// BM_Part_* benchmarks time single building blocks, as evidence for where a gap comes from.
//
// Both sides produce and discard their outputs in every iteration; both sides check success and
// stop the benchmark with an error if anything fails. Setup (key generation, signing the message
// to verify, ...) is outside the timed loops. The AEAD "Seal" benchmarks reuse one nonce under one
// key: acceptable only because the ciphertexts are thrown away, never in real use.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/random.h"
#include "qsapi/crypto/signature.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace {

using qsapi::Bytes;
using qsapi::ByteView;
using qsapi::Result;
using qsapi::SecretBytes;
using qsapi::Status;
using qsapi::crypto::Aead;
using qsapi::crypto::AeadAlgorithm;
using qsapi::crypto::HashAlgorithm;
using qsapi::crypto::KemAlgorithm;
using qsapi::crypto::KemPrivateKey;
using qsapi::crypto::SignatureAlgorithm;
using qsapi::crypto::SigningKey;

// ---------------------------------------------------------------------------------------------
// Set-up helpers (never timed).

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "qsapi_crypto_bench: set-up failed: %s\n", what.c_str());
  std::exit(2);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r) Die(what + ": " + r.error().ToString());
  return std::move(r).value();
}

void MustRaw(bool ok, const std::string& what) {
  if (!ok) Die(what + " (raw OpenSSL/libsodium call)");
}

// Pattern returns n deterministic bytes; `tag` separates inputs from one another.
Bytes Pattern(std::size_t n, std::uint8_t tag) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i * 131U + tag * 17U + 7U);
  return out;
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct SignatureFree {
  void operator()(EVP_SIGNATURE* p) const noexcept { EVP_SIGNATURE_free(p); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const noexcept { EVP_CIPHER_CTX_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

OSSL_PARAM OctetParam(const char* key, ByteView bytes) {
  // OpenSSL takes a non-const pointer for input parameters but does not write through it.
  return OSSL_PARAM_construct_octet_string(key, const_cast<std::uint8_t*>(bytes.data()), bytes.size());  // NOLINT
}

Pkey RawKeyFromSeed(const char* name, const char* seed_param, ByteView seed) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, name, nullptr);
  OSSL_PARAM params[] = {OctetParam(seed_param, seed), OSSL_PARAM_construct_end()};
  EVP_PKEY* key = nullptr;
  const bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_params(ctx, params) == 1 &&
                  EVP_PKEY_generate(ctx, &key) == 1;
  EVP_PKEY_CTX_free(ctx);
  MustRaw(ok && key != nullptr, std::string("keygen from seed for ") + name);
  return Pkey(key);
}

Pkey RawImportPublic(const char* name, ByteView pub) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, name, nullptr);
  OSSL_PARAM params[] = {OctetParam(OSSL_PKEY_PARAM_PUB_KEY, pub), OSSL_PARAM_construct_end()};
  EVP_PKEY* key = nullptr;
  const bool ok = ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
                  EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  MustRaw(ok && key != nullptr, std::string("public key import for ") + name);
  return Pkey(key);
}

Bytes RawPublicBytes(const EVP_PKEY* key) {
  std::size_t len = 0;
  MustRaw(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len) == 1, "public key size");
  Bytes out(len);
  MustRaw(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, out.data(), out.size(), &len) == 1,
          "public key bytes");
  return out;
}

void Shake256(ByteView in, std::span<std::uint8_t> out) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  MustRaw(md != nullptr && EVP_DigestInit_ex2(md, EVP_shake256(), nullptr) == 1 &&
              EVP_DigestUpdate(md, in.data(), in.size()) == 1 && EVP_DigestFinalXOF(md, out.data(), out.size()) == 1,
          "SHAKE256");
  EVP_MD_CTX_free(md);
}

// Registration: each benchmark gets its full name; lambdas capture their fixtures by shared_ptr.
using BenchFn = std::function<void(benchmark::State&)>;

benchmark::internal::Benchmark* Register(const std::string& name, BenchFn fn,
                                         benchmark::TimeUnit unit = benchmark::kMicrosecond) {
  return benchmark::RegisterBenchmark(name.c_str(), [fn = std::move(fn)](benchmark::State& state) { fn(state); })
      ->Unit(unit);
}

// ML-DSA signing time varies from call to call by design (rejection sampling, FIPS 204 Algorithm 7:
// on average 3.85 to 5.1 attempts, geometrically distributed, with fresh randomness per signature),
// so one repetition needs thousands of signatures for its mean to settle within ~1.5 %. These
// benchmarks run at least this long per repetition, whatever --benchmark_min_time says.
constexpr double kMlDsaSignMinTime = 2.0;

// RegisterUnavailable registers a benchmark that reports why it cannot run (the algorithm's set-up
// failed in this build), so that the gap is visible in the output instead of silent.
void RegisterUnavailable(const std::string& name, const std::string& why) {
  Register(name, [why](benchmark::State& state) {
    state.SkipWithError(why.c_str());  // before the loop: the loop then does not run
    for (auto _ : state) {
    }
  });
}

// ---------------------------------------------------------------------------------------------
// ML-KEM-512/768/1024: keygen from seed, encapsulate, decapsulate.

struct MlKemFixture {
  KemAlgorithm algorithm;
  const char* ossl_name;
  Bytes seed;  // d || z, 64 bytes
  std::optional<KemPrivateKey> ours;
  Bytes ciphertext;  // an encapsulation to ours.public_key(), decapsulated by both sides
  Pkey raw_private;  // the same key, made by raw calls from the same seed
  Pkey raw_public;   // its public half, imported on its own (as the library holds it)
  std::size_t ct_size = 0;
};

void RegisterMlKem(KemAlgorithm algorithm, const char* ossl_name, const std::string& tag) {
  auto f = std::make_shared<MlKemFixture>();
  f->algorithm = algorithm;
  f->ossl_name = ossl_name;
  f->seed = Pattern(64, 1);
  f->ours = Must(KemPrivateKey::FromSeed(algorithm, f->seed), tag + " FromSeed");
  f->raw_private = RawKeyFromSeed(ossl_name, OSSL_PKEY_PARAM_ML_KEM_SEED, f->seed);
  {
    const Bytes raw_pub = RawPublicBytes(f->raw_private.get());
    MustRaw(raw_pub == Bytes(f->ours->public_key().bytes().begin(), f->ours->public_key().bytes().end()),
            tag + ": raw and qsapi keys from one seed differ");
    f->raw_public = RawImportPublic(ossl_name, raw_pub);
  }
  {  // Sanity: the raw key decapsulates our ciphertext to our shared secret.
    auto enc = Must(f->ours->public_key().Encapsulate(), tag + " Encapsulate");
    f->ciphertext = enc.ciphertext.bytes();
    f->ct_size = f->ciphertext.size();
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->raw_private.get(), nullptr);
    std::array<std::uint8_t, 32> ss{};
    std::size_t ss_len = ss.size();
    MustRaw(ctx != nullptr && EVP_PKEY_decapsulate_init(ctx, nullptr) == 1 &&
                EVP_PKEY_decapsulate(ctx, ss.data(), &ss_len, f->ciphertext.data(), f->ciphertext.size()) == 1 &&
                ss_len == 32 && std::memcmp(ss.data(), enc.shared_secret.view().data(), 32) == 0,
            tag + ": raw decapsulation disagrees with qsapi");
    EVP_PKEY_CTX_free(ctx);
  }

  const std::string base = "BM_" + tag;

  Register(base + "_KeyGenFromSeed/qsapi", [f](benchmark::State& state) {
    for (auto _ : state) {
      auto key = KemPrivateKey::FromSeed(f->algorithm, f->seed);
      if (!key) {
        state.SkipWithError(key.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(key);
    }
  });
  // raw: the key from its seed and its encoded public key read out (what FromSeed hands back). This
  // is also the library's path (kem_mlkem.cc): the public half's own public-only EVP_PKEY is
  // imported lazily, on its first Encapsulate(), not at key generation.
  Register(base + "_KeyGenFromSeed/raw", [f](benchmark::State& state) {
    Bytes pub(qsapi::crypto::GetKemSizes(f->algorithm).public_key);
    for (auto _ : state) {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, f->ossl_name, nullptr);
      OSSL_PARAM params[] = {OctetParam(OSSL_PKEY_PARAM_ML_KEM_SEED, f->seed), OSSL_PARAM_construct_end()};
      EVP_PKEY* key = nullptr;
      std::size_t len = 0;
      const bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_params(ctx, params) == 1 &&
                      EVP_PKEY_generate(ctx, &key) == 1 &&
                      EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub.data(), pub.size(), &len) == 1;
      benchmark::DoNotOptimize(pub.data());
      benchmark::ClobberMemory();
      EVP_PKEY_free(key);
      EVP_PKEY_CTX_free(ctx);
      if (!ok) {
        state.SkipWithError("raw ML-KEM keygen failed");
        break;
      }
    }
  });
  Register(base + "_Encaps/qsapi", [f](benchmark::State& state) {
    const auto& pub = f->ours->public_key();
    for (auto _ : state) {
      auto enc = pub.Encapsulate();
      if (!enc) {
        state.SkipWithError(enc.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(enc);
    }
  });
  Register(base + "_Encaps/raw", [f](benchmark::State& state) {
    Bytes ct(f->ct_size);
    std::array<std::uint8_t, 32> ss{};
    for (auto _ : state) {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->raw_public.get(), nullptr);
      std::size_t ct_len = ct.size();
      std::size_t ss_len = ss.size();
      const bool ok = ctx != nullptr && EVP_PKEY_encapsulate_init(ctx, nullptr) == 1 &&
                      EVP_PKEY_encapsulate(ctx, ct.data(), &ct_len, ss.data(), &ss_len) == 1;
      benchmark::DoNotOptimize(ct.data());
      benchmark::DoNotOptimize(ss.data());
      benchmark::ClobberMemory();
      EVP_PKEY_CTX_free(ctx);
      if (!ok) {
        state.SkipWithError("raw ML-KEM encapsulation failed");
        break;
      }
    }
  });

  Register(base + "_Decaps/qsapi", [f](benchmark::State& state) {
    for (auto _ : state) {
      auto ss = f->ours->Decapsulate(f->ciphertext);
      if (!ss) {
        state.SkipWithError(ss.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(ss);
    }
  });
  Register(base + "_Decaps/raw", [f](benchmark::State& state) {
    std::array<std::uint8_t, 32> ss{};
    for (auto _ : state) {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->raw_private.get(), nullptr);
      std::size_t ss_len = ss.size();
      const bool ok = ctx != nullptr && EVP_PKEY_decapsulate_init(ctx, nullptr) == 1 &&
                      EVP_PKEY_decapsulate(ctx, ss.data(), &ss_len, f->ciphertext.data(), f->ciphertext.size()) == 1;
      benchmark::DoNotOptimize(ss.data());
      benchmark::ClobberMemory();
      EVP_PKEY_CTX_free(ctx);
      if (!ok) {
        state.SkipWithError("raw ML-KEM decapsulation failed");
        break;
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The hybrid KEMs (kem_hybrid.cc), X-Wing and MLKEM1024-P384, against the sum of their raw parts.
// The library holds the classical private key as an EVP_PKEY made once at key creation and imports
// the ephemeral key once per encapsulation, so raw_parts does the same OpenSSL work per call.

constexpr std::array<std::uint8_t, 6> kXWingLabel = {0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c};

struct XWingFixture {
  Bytes seed;  // 32 bytes
  std::optional<KemPrivateKey> ours;
  Bytes ciphertext;  // ct_M (1088) || ct_X (32)
  // The same key, by raw calls: ML-KEM-768 from SHAKE256(seed)[0..64), X25519 from [64..96).
  Pkey mlkem_private, mlkem_public, x_private, x_public;
  std::array<std::uint8_t, 32> pk_x{};
  const EVP_MD* sha3 = nullptr;
  const EVP_MD* shake256 = nullptr;
};

// XWingCombine: SHA3-256(ss_M || ss_X || ct_X || pk_X || label), as the draft defines it.
bool XWingCombine(const EVP_MD* sha3, ByteView ss_m, ByteView ss_x, ByteView ct_x, ByteView pk_x,
                  std::span<std::uint8_t> out) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok =
      md != nullptr && EVP_DigestInit_ex2(md, sha3, nullptr) == 1 &&
      EVP_DigestUpdate(md, ss_m.data(), ss_m.size()) == 1 && EVP_DigestUpdate(md, ss_x.data(), ss_x.size()) == 1 &&
      EVP_DigestUpdate(md, ct_x.data(), ct_x.size()) == 1 && EVP_DigestUpdate(md, pk_x.data(), pk_x.size()) == 1 &&
      EVP_DigestUpdate(md, kXWingLabel.data(), kXWingLabel.size()) == 1 &&
      EVP_DigestFinal_ex(md, out.data(), nullptr) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

// RawDerive: EVP_PKEY_derive between `priv` and `peer` (peer validated, as ecc.cc's PkeyDerive does)
// into exactly out.size() bytes.
bool RawDerive(EVP_PKEY* priv, EVP_PKEY* peer, std::span<std::uint8_t> out) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, priv, nullptr);
  std::size_t len = out.size();
  const bool ok = ctx != nullptr && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) == 1 &&
                  EVP_PKEY_derive(ctx, out.data(), &len) == 1 && len == out.size();
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

void RegisterXWing() {
  auto f = std::make_shared<XWingFixture>();
  f->seed = Pattern(32, 2);
  f->ours = Must(KemPrivateKey::FromSeed(KemAlgorithm::kXWing, f->seed), "X-Wing FromSeed");
  auto enc = Must(f->ours->public_key().Encapsulate(), "X-Wing Encapsulate");
  f->ciphertext = enc.ciphertext.bytes();
  f->sha3 = EVP_MD_fetch(nullptr, "SHA3-256", nullptr);      // fetched once, never freed
  f->shake256 = EVP_MD_fetch(nullptr, "SHAKE256", nullptr);  // as the library: fetched once
  MustRaw(f->sha3 != nullptr && f->shake256 != nullptr, "SHA3-256 / SHAKE256 fetch");

  {
    std::array<std::uint8_t, 96> sk_expanded{};
    Shake256(f->seed, sk_expanded);
    f->mlkem_private = RawKeyFromSeed("ML-KEM-768", OSSL_PKEY_PARAM_ML_KEM_SEED, ByteView(sk_expanded).first(64));
    f->mlkem_public = RawImportPublic("ML-KEM-768", RawPublicBytes(f->mlkem_private.get()));
    f->x_private.reset(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, sk_expanded.data() + 64, 32));
    std::size_t pk_len = f->pk_x.size();
    MustRaw(f->x_private && EVP_PKEY_get_raw_public_key(f->x_private.get(), f->pk_x.data(), &pk_len) == 1,
            "X25519 key");
    f->x_public.reset(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, f->pk_x.data(), f->pk_x.size()));
    MustRaw(f->x_public != nullptr, "X25519 public key");
    sodium_memzero(sk_expanded.data(), sk_expanded.size());
  }
  MustRaw(std::memcmp(f->ours->public_key().bytes().data() + 1184, f->pk_x.data(), 32) == 0,
          "X-Wing: raw and qsapi X25519 keys differ");

  // raw_parts decapsulation of one X-Wing ciphertext; also the set-up sanity check.
  auto raw_decaps = [](const XWingFixture& x, ByteView ct, std::span<std::uint8_t> ss) {
    std::array<std::uint8_t, 32> ss_m{};
    std::array<std::uint8_t, 32> ss_x{};
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, x.mlkem_private.get(), nullptr);
    std::size_t ss_len = ss_m.size();
    bool ok = ctx != nullptr && EVP_PKEY_decapsulate_init(ctx, nullptr) == 1 &&
              EVP_PKEY_decapsulate(ctx, ss_m.data(), &ss_len, ct.data(), 1088) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY* peer = EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, ct.data() + 1088, 32);
    ok = ok && peer != nullptr && RawDerive(x.x_private.get(), peer, ss_x);
    EVP_PKEY_free(peer);
    ok = ok && XWingCombine(x.sha3, ss_m, ss_x, ct.subspan(1088), x.pk_x, ss);
    sodium_memzero(ss_m.data(), ss_m.size());
    sodium_memzero(ss_x.data(), ss_x.size());
    return ok;
  };
  {
    std::array<std::uint8_t, 32> ss{};
    MustRaw(raw_decaps(*f, f->ciphertext, ss) && std::memcmp(ss.data(), enc.shared_secret.view().data(), 32) == 0,
            "X-Wing: raw parts disagree with qsapi");
  }

  Register("BM_XWing_KeyGenFromSeed/qsapi", [f](benchmark::State& state) {
    for (auto _ : state) {
      auto key = KemPrivateKey::FromSeed(KemAlgorithm::kXWing, f->seed);
      if (!key) {
        state.SkipWithError(key.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(key);
    }
  });
  // raw_parts: SHAKE256 expand, ML-KEM-768 keygen + its public key, X25519 key + its public key,
  // the concatenated public key.
  Register("BM_XWing_KeyGenFromSeed/raw_parts", [f](benchmark::State& state) {
    Bytes pk(1216);
    for (auto _ : state) {
      std::array<std::uint8_t, 96> expanded{};
      EVP_MD_CTX* md = EVP_MD_CTX_new();
      bool ok = md != nullptr && EVP_DigestInit_ex2(md, f->shake256, nullptr) == 1 &&
                EVP_DigestUpdate(md, f->seed.data(), f->seed.size()) == 1 &&
                EVP_DigestFinalXOF(md, expanded.data(), expanded.size()) == 1;
      EVP_MD_CTX_free(md);
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "ML-KEM-768", nullptr);
      OSSL_PARAM params[] = {OctetParam(OSSL_PKEY_PARAM_ML_KEM_SEED, ByteView(expanded).first(64)),
                             OSSL_PARAM_construct_end()};
      EVP_PKEY* mlkem = nullptr;
      std::size_t len = 0;
      ok = ok && ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_params(ctx, params) == 1 &&
           EVP_PKEY_generate(ctx, &mlkem) == 1 &&
           EVP_PKEY_get_octet_string_param(mlkem, OSSL_PKEY_PARAM_PUB_KEY, pk.data(), 1184, &len) == 1;
      EVP_PKEY* x = EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, expanded.data() + 64, 32);
      len = 32;
      ok = ok && x != nullptr && EVP_PKEY_get_raw_public_key(x, pk.data() + 1184, &len) == 1;
      benchmark::DoNotOptimize(pk.data());
      benchmark::ClobberMemory();
      sodium_memzero(expanded.data(), expanded.size());
      EVP_PKEY_free(x);
      EVP_PKEY_free(mlkem);
      EVP_PKEY_CTX_free(ctx);
      if (!ok) {
        state.SkipWithError("raw X-Wing keygen parts failed");
        break;
      }
    }
  });

  Register("BM_XWing_Encaps/qsapi", [f](benchmark::State& state) {
    const auto& pub = f->ours->public_key();
    for (auto _ : state) {
      auto e = pub.Encapsulate();
      if (!e) {
        state.SkipWithError(e.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(e);
    }
  });
  // raw_parts: fresh X25519 ephemeral (random 32 bytes, one import, its public key = ct_X),
  // ML-KEM-768 encapsulation on the pre-made public key, X25519 with the pre-made pk_X, SHA3-256.
  Register("BM_XWing_Encaps/raw_parts", [f](benchmark::State& state) {
    Bytes ct(1120);
    std::array<std::uint8_t, 32> ss{};
    for (auto _ : state) {
      std::array<std::uint8_t, 32> ek{};
      std::array<std::uint8_t, 32> ss_m{};
      std::array<std::uint8_t, 32> ss_x{};
      bool ok = RAND_priv_bytes(ek.data(), static_cast<int>(ek.size())) == 1;
      EVP_PKEY* e = EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, ek.data(), ek.size());
      std::size_t len = 32;
      ok = ok && e != nullptr && EVP_PKEY_get_raw_public_key(e, ct.data() + 1088, &len) == 1;
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->mlkem_public.get(), nullptr);
      std::size_t ct_len = 1088;
      std::size_t ss_len = ss_m.size();
      ok = ok && ctx != nullptr && EVP_PKEY_encapsulate_init(ctx, nullptr) == 1 &&
           EVP_PKEY_encapsulate(ctx, ct.data(), &ct_len, ss_m.data(), &ss_len) == 1;
      EVP_PKEY_CTX_free(ctx);
      ok = ok && RawDerive(e, f->x_public.get(), ss_x);
      ok = ok && XWingCombine(f->sha3, ss_m, ss_x, ByteView(ct).subspan(1088), f->pk_x, ss);
      benchmark::DoNotOptimize(ct.data());
      benchmark::DoNotOptimize(ss.data());
      benchmark::ClobberMemory();
      EVP_PKEY_free(e);
      sodium_memzero(ek.data(), ek.size());
      sodium_memzero(ss_m.data(), ss_m.size());
      sodium_memzero(ss_x.data(), ss_x.size());
      if (!ok) {
        state.SkipWithError("raw X-Wing encapsulation parts failed");
        break;
      }
    }
  });

  Register("BM_XWing_Decaps/qsapi", [f](benchmark::State& state) {
    for (auto _ : state) {
      auto ss = f->ours->Decapsulate(f->ciphertext);
      if (!ss) {
        state.SkipWithError(ss.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(ss);
    }
  });
  // raw_parts: ML-KEM-768 decapsulation and X25519 on pre-made private keys (ct_X imported per
  // call, it comes with the ciphertext), SHA3-256.
  Register("BM_XWing_Decaps/raw_parts", [f, raw_decaps](benchmark::State& state) {
    std::array<std::uint8_t, 32> ss{};
    for (auto _ : state) {
      const bool ok = raw_decaps(*f, f->ciphertext, ss);
      benchmark::DoNotOptimize(ss.data());
      benchmark::ClobberMemory();
      if (!ok) {
        state.SkipWithError("raw X-Wing decapsulation parts failed");
        break;
      }
    }
  });
}

// Sha3Concat: SHA3-256 over the concatenation of `parts` (the hybrids' combiners).
bool Sha3Concat(const EVP_MD* sha3, std::initializer_list<ByteView> parts, std::span<std::uint8_t> out) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestInit_ex2(md, sha3, nullptr) == 1;
  for (ByteView part : parts) ok = ok && EVP_DigestUpdate(md, part.data(), part.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(md, out.data(), nullptr) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

// RawP384FromScalar: a P-384 key pair from a 48-byte big-endian scalar, the way ecc.cc's
// P384PrivateFromScalar builds it (group, Q = d*G, EVP_PKEY_fromdata). nullptr on failure.
EVP_PKEY* RawP384FromScalar(ByteView scalar) {
  BIGNUM* d = BN_bin2bn(scalar.data(), static_cast<int>(scalar.size()), nullptr);
  EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_secp384r1);
  EC_POINT* q = group != nullptr ? EC_POINT_new(group) : nullptr;
  std::array<std::uint8_t, 97> point{};
  std::array<std::uint8_t, 48> native{};
  EVP_PKEY* key = nullptr;
  if (d != nullptr && q != nullptr && EC_POINT_mul(group, q, d, nullptr, nullptr, nullptr) == 1 &&
      EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, point.data(), point.size(), nullptr) ==
          point.size() &&
      BN_bn2nativepad(d, native.data(), static_cast<int>(native.size())) >= 0) {
    char group_name[] = "P-384";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0),
        OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native.data(), native.size()),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1) {
      key = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
  }
  sodium_memzero(native.data(), native.size());
  EC_POINT_free(q);
  EC_GROUP_free(group);
  BN_clear_free(d);
  return key;
}

// RawP384Public: a P-384 public key from an uncompressed point. nullptr on failure.
EVP_PKEY* RawP384Public(ByteView point) {
  char group_name[] = "P-384";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0),
      OctetParam(OSSL_PKEY_PARAM_PUB_KEY, point),
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    key = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  return key;
}

constexpr std::string_view kP384Label = "MLKEM1024-P384";

struct P384Fixture {
  Bytes seed;  // 32 bytes
  std::optional<KemPrivateKey> ours;
  Bytes ciphertext;  // ct_PQ (1568) || ct_T (97)
  // The same key, by raw calls: ML-KEM-1024 from SHAKE256(seed)[0..64), P-384 from [64..112).
  Pkey mlkem_private, mlkem_public, dk_t, ek_t;
  Bytes ek_t_bytes;  // 97-byte uncompressed point
  const EVP_MD* sha3 = nullptr;
};

void RegisterMlKem1024P384() {
  auto f = std::make_shared<P384Fixture>();
  f->seed = Pattern(32, 3);
  auto key = KemPrivateKey::FromSeed(KemAlgorithm::kMlKem1024P384, f->seed);
  if (!key) {
    const std::string why = "MLKEM1024-P384 unavailable in this build: " + key.error().ToString();
    for (const char* op : {"KeyGenFromSeed", "Encaps", "Decaps"}) {
      RegisterUnavailable(std::string("BM_MlKem1024P384_") + op + "/qsapi", why);
    }
    return;
  }
  f->ours = std::move(key).value();
  f->sha3 = EVP_MD_fetch(nullptr, "SHA3-256", nullptr);  // fetched once, never freed
  MustRaw(f->sha3 != nullptr, "SHA3-256 fetch");
  {
    std::array<std::uint8_t, 112> sk_expanded{};
    Shake256(f->seed, sk_expanded);
    f->mlkem_private = RawKeyFromSeed("ML-KEM-1024", OSSL_PKEY_PARAM_ML_KEM_SEED, ByteView(sk_expanded).first(64));
    f->mlkem_public = RawImportPublic("ML-KEM-1024", RawPublicBytes(f->mlkem_private.get()));
    f->dk_t.reset(RawP384FromScalar(ByteView(sk_expanded).subspan(64)));
    sodium_memzero(sk_expanded.data(), sk_expanded.size());
    MustRaw(f->dk_t != nullptr, "P-384 key from scalar");
    f->ek_t_bytes.resize(97);
    std::size_t len = 0;
    MustRaw(EVP_PKEY_get_octet_string_param(f->dk_t.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, f->ek_t_bytes.data(),
                                            f->ek_t_bytes.size(), &len) == 1 &&
                len == 97,
            "P-384 public point");
    const ByteView ours_pk = f->ours->public_key().bytes();
    MustRaw(ours_pk.size() == 1568 + 97 && std::memcmp(ours_pk.data() + 1568, f->ek_t_bytes.data(), 97) == 0,
            "MLKEM1024-P384: raw and qsapi P-384 keys differ");
    f->ek_t.reset(RawP384Public(f->ek_t_bytes));
    MustRaw(f->ek_t != nullptr, "P-384 public key");
  }
  const ByteView label(reinterpret_cast<const std::uint8_t*>(kP384Label.data()), kP384Label.size());  // NOLINT

  // raw_parts decapsulation: ML-KEM-1024 on the pre-made key, ct_T imported (it comes with the
  // ciphertext; the derive validates it), ECDH with the pre-made dk_T, SHA3-256.
  auto raw_decaps = [label](const P384Fixture& x, ByteView ct, std::span<std::uint8_t> ss) {
    std::array<std::uint8_t, 32> ss_pq{};
    std::array<std::uint8_t, 48> ss_t{};
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, x.mlkem_private.get(), nullptr);
    std::size_t ss_len = ss_pq.size();
    bool ok = ctx != nullptr && EVP_PKEY_decapsulate_init(ctx, nullptr) == 1 &&
              EVP_PKEY_decapsulate(ctx, ss_pq.data(), &ss_len, ct.data(), 1568) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY* peer = RawP384Public(ct.subspan(1568));
    ok = ok && peer != nullptr && RawDerive(x.dk_t.get(), peer, ss_t);
    EVP_PKEY_free(peer);
    ok = ok && Sha3Concat(x.sha3, {ss_pq, ss_t, ct.subspan(1568), x.ek_t_bytes, label}, ss);
    sodium_memzero(ss_pq.data(), ss_pq.size());
    sodium_memzero(ss_t.data(), ss_t.size());
    return ok;
  };
  {
    auto enc = Must(f->ours->public_key().Encapsulate(), "MLKEM1024-P384 Encapsulate");
    f->ciphertext = enc.ciphertext.bytes();
    std::array<std::uint8_t, 32> ss{};
    MustRaw(raw_decaps(*f, f->ciphertext, ss) && std::memcmp(ss.data(), enc.shared_secret.view().data(), 32) == 0,
            "MLKEM1024-P384: raw parts disagree with qsapi");
  }

  Register("BM_MlKem1024P384_KeyGenFromSeed/qsapi", [f](benchmark::State& state) {
    for (auto _ : state) {
      auto key2 = KemPrivateKey::FromSeed(KemAlgorithm::kMlKem1024P384, f->seed);
      if (!key2) {
        state.SkipWithError(key2.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(key2);
    }
  });
  Register("BM_MlKem1024P384_Encaps/qsapi", [f](benchmark::State& state) {
    const auto& pub = f->ours->public_key();
    for (auto _ : state) {
      auto e = pub.Encapsulate();
      if (!e) {
        state.SkipWithError(e.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(e);
    }
  });
  // raw_parts: ML-KEM-1024 encapsulation on the pre-made public key; a fresh P-384 key pair from
  // EVP_PKEY_Q_keygen (one scalar multiplication) whose encoded point is ct_T; ECDH with the
  // pre-made ek_T (a second one); SHA3-256.
  Register("BM_MlKem1024P384_Encaps/raw_parts", [f, label](benchmark::State& state) {
    Bytes ct(1568 + 97);
    std::array<std::uint8_t, 32> ss{};
    for (auto _ : state) {
      std::array<std::uint8_t, 32> ss_pq{};
      std::array<std::uint8_t, 48> ss_t{};
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->mlkem_public.get(), nullptr);
      std::size_t ct_len = 1568;
      std::size_t ss_len = ss_pq.size();
      bool ok = ctx != nullptr && EVP_PKEY_encapsulate_init(ctx, nullptr) == 1 &&
                EVP_PKEY_encapsulate(ctx, ct.data(), &ct_len, ss_pq.data(), &ss_len) == 1;
      EVP_PKEY_CTX_free(ctx);
      EVP_PKEY* e = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      std::size_t len = 0;
      ok = ok && e != nullptr &&
           EVP_PKEY_get_octet_string_param(e, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, ct.data() + 1568, 97, &len) == 1 &&
           len == 97;
      ok = ok && RawDerive(e, f->ek_t.get(), ss_t);
      ok = ok && Sha3Concat(f->sha3, {ss_pq, ss_t, ByteView(ct).subspan(1568), f->ek_t_bytes, label}, ss);
      benchmark::DoNotOptimize(ct.data());
      benchmark::DoNotOptimize(ss.data());
      benchmark::ClobberMemory();
      EVP_PKEY_free(e);
      sodium_memzero(ss_pq.data(), ss_pq.size());
      sodium_memzero(ss_t.data(), ss_t.size());
      if (!ok) {
        state.SkipWithError("raw MLKEM1024-P384 encapsulation parts failed");
        break;
      }
    }
  });
  Register("BM_MlKem1024P384_Decaps/qsapi", [f](benchmark::State& state) {
    for (auto _ : state) {
      auto ss = f->ours->Decapsulate(f->ciphertext);
      if (!ss) {
        state.SkipWithError(ss.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(ss);
    }
  });
  Register("BM_MlKem1024P384_Decaps/raw_parts", [f, raw_decaps](benchmark::State& state) {
    std::array<std::uint8_t, 32> ss{};
    for (auto _ : state) {
      const bool ok = raw_decaps(*f, f->ciphertext, ss);
      benchmark::DoNotOptimize(ss.data());
      benchmark::ClobberMemory();
      if (!ok) {
        state.SkipWithError("raw MLKEM1024-P384 decapsulation parts failed");
        break;
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Signatures: ML-DSA-44/65/87, SLH-DSA-SHA2-128f (sign, verify), SLH-DSA-SHA2-128s (verify),
// MLDSA65-Ed25519-SHA512 (ours only).

struct SigFixture {
  SignatureAlgorithm algorithm;
  const char* ossl_name;
  std::optional<SigningKey> ours;
  Bytes message;
  Bytes signature;  // over `message` under the empty context, verified by both sides
  Pkey raw_private, raw_public;
  std::unique_ptr<EVP_SIGNATURE, SignatureFree> raw_alg;  // fetched once, as the library does
};

void RegisterSignature(SignatureAlgorithm algorithm, const char* ossl_name, const char* seed_param,
                       const std::string& tag, bool sign) {
  auto f = std::make_shared<SigFixture>();
  f->algorithm = algorithm;
  f->ossl_name = ossl_name;
  const Bytes seed = Pattern(qsapi::crypto::GetSignatureSizes(algorithm).seed, 4);
  f->ours = Must(SigningKey::FromSeed(algorithm, seed), tag + " FromSeed");
  f->message = Pattern(64, 5);  // a 64-byte message (a transcript hash, a token's claims digest)
  f->signature = Must(f->ours->Sign(f->message), tag + " Sign").bytes();
  f->raw_private = RawKeyFromSeed(ossl_name, seed_param, seed);
  const Bytes pub = RawPublicBytes(f->raw_private.get());
  MustRaw(pub == Bytes(f->ours->verifying_key().bytes().begin(), f->ours->verifying_key().bytes().end()),
          tag + ": raw and qsapi keys from one seed differ");
  f->raw_public = RawImportPublic(ossl_name, pub);
  f->raw_alg.reset(EVP_SIGNATURE_fetch(nullptr, ossl_name, nullptr));
  MustRaw(f->raw_alg != nullptr, std::string("EVP_SIGNATURE_fetch ") + ossl_name);

  const std::string base = "BM_" + tag;
  const bool ml_dsa = tag.starts_with("MlDsa");
  if (sign) {
    auto* ours_bench = Register(base + "_Sign/qsapi", [f](benchmark::State& state) {
      for (auto _ : state) {
        auto sig = f->ours->Sign(f->message);
        if (!sig) {
          state.SkipWithError(sig.error().ToString().c_str());
          break;
        }
        benchmark::DoNotOptimize(sig);
      }
    });
    // raw: hedged signing (OpenSSL's default) with a fresh EVP_PKEY_CTX per signature.
    auto* raw_bench = Register(base + "_Sign/raw", [f](benchmark::State& state) {
      Bytes sig(f->signature.size());
      for (auto _ : state) {
        EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->raw_private.get(), nullptr);
        std::size_t len = sig.size();
        const bool ok = ctx != nullptr && EVP_PKEY_sign_message_init(ctx, f->raw_alg.get(), nullptr) == 1 &&
                        EVP_PKEY_sign(ctx, sig.data(), &len, f->message.data(), f->message.size()) == 1;
        benchmark::DoNotOptimize(sig.data());
        benchmark::ClobberMemory();
        EVP_PKEY_CTX_free(ctx);
        if (!ok) {
          state.SkipWithError("raw signing failed");
          break;
        }
      }
    });
    if (ml_dsa) {
      ours_bench->MinTime(kMlDsaSignMinTime);
      raw_bench->MinTime(kMlDsaSignMinTime);
    }
  }
  Register(base + "_Verify/qsapi", [f](benchmark::State& state) {
    const auto& vk = f->ours->verifying_key();
    for (auto _ : state) {
      Status s = vk.Verify(f->message, f->signature);
      if (!s) {
        state.SkipWithError(s.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(s);
    }
  });
  Register(base + "_Verify/raw", [f](benchmark::State& state) {
    for (auto _ : state) {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, f->raw_public.get(), nullptr);
      int ok = ctx != nullptr ? EVP_PKEY_verify_message_init(ctx, f->raw_alg.get(), nullptr) : 0;
      if (ok == 1) {
        ok = EVP_PKEY_verify(ctx, f->signature.data(), f->signature.size(), f->message.data(), f->message.size());
      }
      benchmark::DoNotOptimize(ok);
      EVP_PKEY_CTX_free(ctx);
      if (ok != 1) {
        state.SkipWithError("raw verification failed");
        break;
      }
    }
  });
}

void RegisterComposite() {
  const Bytes seed = Pattern(qsapi::crypto::GetSignatureSizes(SignatureAlgorithm::kMlDsa65Ed25519).seed, 6);
  auto key = SigningKey::FromSeed(SignatureAlgorithm::kMlDsa65Ed25519, seed);
  if (!key) {
    const std::string why = "MLDSA65-Ed25519-SHA512 unavailable in this build: " + key.error().ToString();
    RegisterUnavailable("BM_MlDsa65Ed25519_Sign/qsapi", why);
    RegisterUnavailable("BM_MlDsa65Ed25519_Verify/qsapi", why);
    return;
  }
  auto k = std::make_shared<SigningKey>(std::move(key).value());
  auto msg = std::make_shared<Bytes>(Pattern(64, 5));
  auto sig = std::make_shared<Bytes>(Must(k->Sign(*msg), "composite Sign").bytes());
  Register("BM_MlDsa65Ed25519_Sign/qsapi", [k, msg](benchmark::State& state) {
    for (auto _ : state) {
      auto s = k->Sign(*msg);
      if (!s) {
        state.SkipWithError(s.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(s);
    }
  });
  Register("BM_MlDsa65Ed25519_Verify/qsapi", [k, msg, sig](benchmark::State& state) {
    for (auto _ : state) {
      Status s = k->verifying_key().Verify(*msg, *sig);
      if (!s) {
        state.SkipWithError(s.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(s);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// AEAD: AES-256-GCM (OpenSSL) and XChaCha20-Poly1305 (libsodium) at 1 KiB, 16 KiB, 1 MiB.

struct AeadFixture {
  std::optional<Aead> ours;
  Bytes key;
  Bytes plaintext;
  Bytes aad;
  Bytes nonce;
  const EVP_CIPHER* cipher = nullptr;  // AES-256-GCM, fetched once (as the library does)
};

std::string SizeName(std::size_t n) {
  return n >= (1U << 20) ? std::to_string(n >> 20) + "MiB" : std::to_string(n >> 10) + "KiB";
}

// AesGcmSealRaw encrypts on `ctx`, which the caller has keyed and IV'd; writes ct || tag.
bool AesGcmUpdateFinal(EVP_CIPHER_CTX* ctx, const AeadFixture& f, std::uint8_t* out) {
  int len = 0;
  const auto n = f.plaintext.size();
  return EVP_EncryptUpdate(ctx, nullptr, &len, f.aad.data(), static_cast<int>(f.aad.size())) == 1 &&
         EVP_EncryptUpdate(ctx, out, &len, f.plaintext.data(), static_cast<int>(n)) == 1 &&
         EVP_EncryptFinal_ex(ctx, out + n, &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + n) == 1;
}

// AesGcmFreshCtx: the plain raw pattern, a fresh context keyed with key and IV for every message.
bool AesGcmFreshCtx(const AeadFixture& f, const std::uint8_t* iv, std::uint8_t* out) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  const bool ok = ctx != nullptr && EVP_EncryptInit_ex2(ctx, f.cipher, f.key.data(), iv, nullptr) == 1 &&
                  AesGcmUpdateFinal(ctx, f, out);
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

void RegisterAead(AeadAlgorithm algorithm, const std::string& tag, std::size_t size) {
  auto f = std::make_shared<AeadFixture>();
  f->key = Pattern(32, 7);
  f->ours = Must(Aead::New(algorithm, qsapi::SymmetricKey::CopyFrom(f->key)), tag + " Aead::New");
  f->plaintext = Pattern(size, 8);
  f->aad = Pattern(16, 9);
  const auto sizes = qsapi::crypto::GetAeadSizes(algorithm);
  f->nonce = Pattern(sizes.nonce, 10);
  const bool aes = algorithm == AeadAlgorithm::kAes256Gcm;
  if (aes) {
    f->cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);  // never freed
    MustRaw(f->cipher != nullptr, "AES-256-GCM fetch");
  }
  {  // Sanity: both sides produce the same ciphertext for one nonce.
    Bytes ours(size + 16);
    Bytes raw(size + 16);
    if (!f->ours->SealWithNonce(f->nonce, f->plaintext, f->aad, ours)) Die(tag + " SealWithNonce");
    unsigned long long raw_len = 0;  // NOLINT(google-runtime-int): libsodium's type
    MustRaw(
        aes ? AesGcmFreshCtx(*f, f->nonce.data(), raw.data())
            : crypto_aead_xchacha20poly1305_ietf_encrypt(raw.data(), &raw_len, f->plaintext.data(), size, f->aad.data(),
                                                         f->aad.size(), nullptr, f->nonce.data(), f->key.data()) == 0,
        tag + " raw seal");
    MustRaw(ours == raw, tag + ": raw and qsapi ciphertexts differ");
  }

  const std::string base = "BM_" + tag + "_";
  const auto bytes = static_cast<std::int64_t>(size);
  const std::string sz = "_" + SizeName(size);

  // Encrypt: fresh random nonce, output allocated per message (nonce || ct || tag).
  Register(base + "Encrypt" + sz + "/qsapi", [f, bytes](benchmark::State& state) {
    for (auto _ : state) {
      auto ct = f->ours->Encrypt(f->plaintext, f->aad);
      if (!ct) {
        state.SkipWithError(ct.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(ct);
    }
    state.SetBytesProcessed(state.iterations() * bytes);
  });
  // raw: the same contract done raw: nonce from OpenSSL's private DRBG (the library's default
  // RandomSource), a std::vector output of the same size, then the raw seal.
  Register(base + "Encrypt" + sz + "/raw", [f, bytes, aes, sizes](benchmark::State& state) {
    for (auto _ : state) {
      Bytes out(sizes.nonce + f->plaintext.size() + sizes.tag);
      bool ok = RAND_priv_bytes(out.data(), static_cast<int>(sizes.nonce)) == 1;
      if (aes) {
        ok = ok && AesGcmFreshCtx(*f, out.data(), out.data() + sizes.nonce);
      } else {
        unsigned long long len = 0;  // NOLINT(google-runtime-int)
        ok = ok && crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + sizes.nonce, &len, f->plaintext.data(),
                                                              f->plaintext.size(), f->aad.data(), f->aad.size(),
                                                              nullptr, out.data(), f->key.data()) == 0;
      }
      benchmark::DoNotOptimize(out);
      if (!ok) {
        state.SkipWithError("raw encrypt failed");
        break;
      }
    }
    state.SetBytesProcessed(state.iterations() * bytes);
  });

  // Seal: caller's nonce, caller's output buffer.
  Register(base + "Seal" + sz + "/qsapi", [f, bytes](benchmark::State& state) {
    Bytes out(f->plaintext.size() + 16);
    for (auto _ : state) {
      Status s = f->ours->SealWithNonce(f->nonce, f->plaintext, f->aad, out);
      if (!s) {
        state.SkipWithError(s.error().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * bytes);
  });
  if (aes) {
    // raw: EVP_EncryptInit_ex2 with key and IV on a fresh EVP_CIPHER_CTX per message.
    Register(base + "Seal" + sz + "/raw", [f, bytes](benchmark::State& state) {
      Bytes out(f->plaintext.size() + 16);
      for (auto _ : state) {
        const bool ok = AesGcmFreshCtx(*f, f->nonce.data(), out.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        if (!ok) {
          state.SkipWithError("raw AES-GCM failed");
          break;
        }
      }
      state.SetBytesProcessed(state.iterations() * bytes);
    });
    // raw_reuse_ctx: one context keyed once; each message only sets a new IV. The fastest raw
    // pattern, but a context shared this way is not safe across threads (ours is).
    Register(base + "Seal" + sz + "/raw_reuse_ctx", [f, bytes](benchmark::State& state) {
      Bytes out(f->plaintext.size() + 16);
      std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
      if (!ctx || EVP_EncryptInit_ex2(ctx.get(), f->cipher, f->key.data(), nullptr, nullptr) != 1) {
        state.SkipWithError("raw AES-GCM key setup failed");
        return;
      }
      for (auto _ : state) {
        const bool ok = EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, f->nonce.data(), nullptr) == 1 &&
                        AesGcmUpdateFinal(ctx.get(), *f, out.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        if (!ok) {
          state.SkipWithError("raw AES-GCM (reused ctx) failed");
          break;
        }
      }
      state.SetBytesProcessed(state.iterations() * bytes);
    });
  } else {
    Register(base + "Seal" + sz + "/raw", [f, bytes](benchmark::State& state) {
      Bytes out(f->plaintext.size() + 16);
      for (auto _ : state) {
        unsigned long long len = 0;  // NOLINT(google-runtime-int)
        const bool ok = crypto_aead_xchacha20poly1305_ietf_encrypt(out.data(), &len, f->plaintext.data(),
                                                                   f->plaintext.size(), f->aad.data(), f->aad.size(),
                                                                   nullptr, f->nonce.data(), f->key.data()) == 0;
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        if (!ok) {
          state.SkipWithError("raw XChaCha20-Poly1305 failed");
          break;
        }
      }
      state.SetBytesProcessed(state.iterations() * bytes);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA-256 / -SHA-384: extract + expand to 32 bytes.

struct HkdfFixture {
  HashAlgorithm algorithm;
  const char* digest;  // OpenSSL's name
  Bytes ikm, salt, info;
  EVP_KDF* kdf = nullptr;  // fetched once (as the library does), never freed
};

bool RawHkdf(const HkdfFixture& f, int mode, ByteView key, ByteView salt, ByteView info, std::span<std::uint8_t> out) {
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(f.kdf);
  OSSL_PARAM params[6];
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(f.digest), 0);  // NOLINT
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OctetParam(OSSL_KDF_PARAM_KEY, key);
  if (!salt.empty()) params[n++] = OctetParam(OSSL_KDF_PARAM_SALT, salt);
  if (!info.empty()) params[n++] = OctetParam(OSSL_KDF_PARAM_INFO, info);
  params[n] = OSSL_PARAM_construct_end();
  const bool ok = ctx != nullptr && EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

void RegisterHkdf(HashAlgorithm algorithm, const char* digest, const std::string& tag) {
  auto f = std::make_shared<HkdfFixture>();
  f->algorithm = algorithm;
  f->digest = digest;
  f->ikm = Pattern(32, 11);
  f->salt = Pattern(32, 12);
  f->info = Pattern(24, 13);
  f->kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  MustRaw(f->kdf != nullptr, "HKDF fetch");
  {
    auto ours = Must(qsapi::crypto::Hkdf(algorithm, f->salt, f->ikm, f->info, 32), tag + " Hkdf");
    std::array<std::uint8_t, 32> raw{};
    MustRaw(RawHkdf(*f, EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, f->ikm, f->salt, f->info, raw) &&
                std::memcmp(raw.data(), ours.data(), 32) == 0,
            tag + ": raw and qsapi HKDF differ");
  }
  const std::string base = "BM_" + tag + "_ExtractExpand32";
  Register(
      base + "/qsapi",
      [f](benchmark::State& state) {
        for (auto _ : state) {
          auto okm = qsapi::crypto::Hkdf(f->algorithm, f->salt, f->ikm, f->info, 32);
          if (!okm) {
            state.SkipWithError(okm.error().ToString().c_str());
            break;
          }
          benchmark::DoNotOptimize(okm);
        }
      },
      benchmark::kNanosecond);
  // raw: one EVP_KDF_derive in OpenSSL's extract-and-expand mode on a fresh EVP_KDF_CTX, which is
  // also what our Hkdf() does (kdf.cc).
  Register(
      base + "/raw",
      [f](benchmark::State& state) {
        std::array<std::uint8_t, 32> okm{};
        for (auto _ : state) {
          const bool ok = RawHkdf(*f, EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, f->ikm, f->salt, f->info, okm);
          benchmark::DoNotOptimize(okm.data());
          benchmark::ClobberMemory();
          if (!ok) {
            state.SkipWithError("raw HKDF failed");
            break;
          }
        }
      },
      benchmark::kNanosecond);
}

// ---------------------------------------------------------------------------------------------
// Building blocks, timed alone: evidence for where a gap between /qsapi and /raw comes from.

void RegisterParts() {
  // Importing an ML-KEM-768 public key: what KemPublicKey::FromBytes does, and what the public half
  // of a generated key does once, lazily, on its first Encapsulate() (kem_mlkem.cc).
  auto mlkem_pub = std::make_shared<Bytes>(
      RawPublicBytes(RawKeyFromSeed("ML-KEM-768", OSSL_PKEY_PARAM_ML_KEM_SEED, Pattern(64, 1)).get()));
  Register("BM_Part_MlKem768_ImportPublicKey/raw", [mlkem_pub](benchmark::State& state) {
    for (auto _ : state) {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "ML-KEM-768", nullptr);
      OSSL_PARAM params[] = {OctetParam(OSSL_PKEY_PARAM_PUB_KEY, *mlkem_pub), OSSL_PARAM_construct_end()};
      EVP_PKEY* key = nullptr;
      const bool ok = ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
                      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
      benchmark::DoNotOptimize(key);
      EVP_PKEY_free(key);
      EVP_PKEY_CTX_free(ctx);
      if (!ok) {
        state.SkipWithError("import failed");
        break;
      }
    }
  });
  // Importing a raw X25519 private key: OpenSSL derives its public key (a fixed-base scalar
  // multiplication) on import. X-Wing (kem_hybrid.cc) does it once per encapsulation, for the
  // ephemeral key, and once at key creation for sk_X; ecc.cc's byte-level X25519() once per call.
  Register("BM_Part_X25519_ImportPrivateKey/raw", [](benchmark::State& state) {
    const Bytes sk = Pattern(32, 14);
    for (auto _ : state) {
      EVP_PKEY* key = EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, sk.data(), sk.size());
      benchmark::DoNotOptimize(key);
      EVP_PKEY_free(key);
      if (key == nullptr) {
        state.SkipWithError("import failed");
        break;
      }
    }
  });
  // The per-call AES-GCM overhead of each pattern: a context copied from a keyed template
  // (ours, aead.cc), a fresh context keyed from scratch (raw), a new IV on a kept context.
  auto aes = std::make_shared<std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>>(EVP_CIPHER_CTX_new());
  const EVP_CIPHER* gcm = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  const Bytes key = Pattern(32, 7);
  const Bytes iv = Pattern(12, 10);
  MustRaw(gcm != nullptr && EVP_EncryptInit_ex2(aes->get(), gcm, key.data(), nullptr, nullptr) == 1,
          "AES-GCM template");
  Register(
      "BM_Part_AesGcm_CtxCopyFromTemplateAndIv/qsapi_pattern",
      [aes, iv](benchmark::State& state) {
        for (auto _ : state) {
          EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
          const bool ok = ctx != nullptr && EVP_CIPHER_CTX_copy(ctx, aes->get()) == 1 &&
                          EVP_EncryptInit_ex2(ctx, nullptr, nullptr, iv.data(), nullptr) == 1;
          benchmark::DoNotOptimize(ctx);
          EVP_CIPHER_CTX_free(ctx);
          if (!ok) {
            state.SkipWithError("copy failed");
            break;
          }
        }
      },
      benchmark::kNanosecond);
  Register(
      "BM_Part_AesGcm_FreshCtxKeyAndIv/raw",
      [gcm, key, iv](benchmark::State& state) {
        for (auto _ : state) {
          EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
          const bool ok = ctx != nullptr && EVP_EncryptInit_ex2(ctx, gcm, key.data(), iv.data(), nullptr) == 1;
          benchmark::DoNotOptimize(ctx);
          EVP_CIPHER_CTX_free(ctx);
          if (!ok) {
            state.SkipWithError("init failed");
            break;
          }
        }
      },
      benchmark::kNanosecond);
  Register(
      "BM_Part_AesGcm_NewIvOnKeptCtx/raw",
      [aes, iv](benchmark::State& state) {
        for (auto _ : state) {
          const bool ok = EVP_EncryptInit_ex2(aes->get(), nullptr, nullptr, iv.data(), nullptr) == 1;
          benchmark::DoNotOptimize(ok);
          if (!ok) {
            state.SkipWithError("init failed");
            break;
          }
        }
      },
      benchmark::kNanosecond);
  // A 12-byte nonce: through qsapi's RandomSource (mutex + shared_ptr copy + virtual call) and
  // straight from OpenSSL's private DRBG.
  Register(
      "BM_Part_Nonce12/qsapi",
      [](benchmark::State& state) {
        std::array<std::uint8_t, 12> n{};
        for (auto _ : state) {
          Status s = qsapi::crypto::RandomFill(n);
          if (!s) {
            state.SkipWithError(s.error().ToString().c_str());
            break;
          }
          benchmark::DoNotOptimize(n.data());
          benchmark::ClobberMemory();
        }
      },
      benchmark::kNanosecond);
  Register(
      "BM_Part_Nonce12/raw",
      [](benchmark::State& state) {
        std::array<std::uint8_t, 12> n{};
        for (auto _ : state) {
          const bool ok = RAND_priv_bytes(n.data(), static_cast<int>(n.size())) == 1;
          benchmark::DoNotOptimize(n.data());
          benchmark::ClobberMemory();
          if (!ok) {
            state.SkipWithError("RAND_priv_bytes failed");
            break;
          }
        }
      },
      benchmark::kNanosecond);
  // Fetching a digest by name, which OpenSSL's HKDF does on every EVP_KDF_derive whose
  // parameters name the digest (both our kdf.cc and the raw baseline pass it per call).
  Register(
      "BM_Part_EvpMdFetchSha256/raw",
      [](benchmark::State& state) {
        for (auto _ : state) {
          EVP_MD* md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
          benchmark::DoNotOptimize(md);
          EVP_MD_free(md);
          if (md == nullptr) {
            state.SkipWithError("fetch failed");
            break;
          }
        }
      },
      benchmark::kNanosecond);
  // A P-384 key pair from a scalar as ecc.cc's P384PrivateFromScalar builds it: one scalar
  // multiplication (Q = d*G). MLKEM1024-P384 (kem_hybrid.cc) calls it once per encapsulation,
  // for the ephemeral key (the same call range-checks the scalar), and once at key creation.
  Register("BM_Part_P384_PrivateFromScalar/raw", [](benchmark::State& state) {
    const Bytes scalar = Pattern(48, 15);
    for (auto _ : state) {
      EVP_PKEY* p384 = RawP384FromScalar(scalar);
      benchmark::DoNotOptimize(p384);
      EVP_PKEY_free(p384);
      if (p384 == nullptr) {
        state.SkipWithError("P-384 key from scalar failed");
        break;
      }
    }
  });
  // One 32-byte secret from the locked arena (allocate, zero on release).
  Register(
      "BM_Part_SecretBytes32/qsapi",
      [](benchmark::State& state) {
        for (auto _ : state) {
          SecretBytes s(32);
          benchmark::DoNotOptimize(s.data());
        }
      },
      benchmark::kNanosecond);
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) Die("sodium_init");
  benchmark::AddCustomContext("openssl", OpenSSL_version(OPENSSL_VERSION));
  benchmark::AddCustomContext("libsodium", sodium_version_string());

  RegisterMlKem(KemAlgorithm::kMlKem512, "ML-KEM-512", "MlKem512");
  RegisterMlKem(KemAlgorithm::kMlKem768, "ML-KEM-768", "MlKem768");
  RegisterMlKem(KemAlgorithm::kMlKem1024, "ML-KEM-1024", "MlKem1024");
  RegisterXWing();
  RegisterMlKem1024P384();

  RegisterSignature(SignatureAlgorithm::kMlDsa44, "ML-DSA-44", OSSL_PKEY_PARAM_ML_DSA_SEED, "MlDsa44", true);
  RegisterSignature(SignatureAlgorithm::kMlDsa65, "ML-DSA-65", OSSL_PKEY_PARAM_ML_DSA_SEED, "MlDsa65", true);
  RegisterSignature(SignatureAlgorithm::kMlDsa87, "ML-DSA-87", OSSL_PKEY_PARAM_ML_DSA_SEED, "MlDsa87", true);
  RegisterSignature(SignatureAlgorithm::kSlhDsaSha2_128f, "SLH-DSA-SHA2-128f", OSSL_PKEY_PARAM_SLH_DSA_SEED,
                    "SlhDsaSha2_128f", true);
  // SLH-DSA-SHA2-128s signs in hundreds of milliseconds: verification only.
  RegisterSignature(SignatureAlgorithm::kSlhDsaSha2_128s, "SLH-DSA-SHA2-128s", OSSL_PKEY_PARAM_SLH_DSA_SEED,
                    "SlhDsaSha2_128s", false);
  RegisterComposite();

  for (std::size_t size : {std::size_t{1} << 10, std::size_t{16} << 10, std::size_t{1} << 20}) {
    RegisterAead(AeadAlgorithm::kAes256Gcm, "Aes256Gcm", size);
    RegisterAead(AeadAlgorithm::kXChaCha20Poly1305, "XChaCha20Poly1305", size);
  }

  RegisterHkdf(HashAlgorithm::kSha256, "SHA2-256", "HkdfSha256");
  RegisterHkdf(HashAlgorithm::kSha384, "SHA2-384", "HkdfSha384");

  RegisterParts();

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
