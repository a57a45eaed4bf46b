// Internal: the per-algorithm KEM implementations behind KemPublicKey / KemPrivateKey.
#ifndef QSAPI_SRC_CRYPTO_INTERNAL_KEM_IMPL_H_
#define QSAPI_SRC_CRYPTO_INTERNAL_KEM_IMPL_H_

#include <memory>
#include <optional>

#include "qsapi/crypto/kem.h"

namespace qsapi::crypto::internal {

class KemPublicImpl {
 public:
  virtual ~KemPublicImpl() = default;
  [[nodiscard]] virtual KemAlgorithm algorithm() const noexcept = 0;
  [[nodiscard]] virtual ByteView bytes() const noexcept = 0;
  // Encapsulate with `eseed` as all the encapsulation randomness (its length is algorithm
  // specific, see EncapsulationSeedSize); an empty `eseed` draws it at random.
  [[nodiscard]] virtual Result<KemEncapsulation> Encapsulate(ByteView eseed) const = 0;
};

class KemPrivateImpl {
 public:
  virtual ~KemPrivateImpl() = default;
  [[nodiscard]] virtual KemAlgorithm algorithm() const noexcept = 0;
  [[nodiscard]] virtual Result<SharedSecret> Decapsulate(ByteView ciphertext) const = 0;
  // seed returns nullptr for a key imported in expanded form.
  [[nodiscard]] virtual const SecretBytes* seed() const noexcept = 0;
  [[nodiscard]] virtual Result<SecretBytes> ExportExpanded() const = 0;
};

struct KemKeyPair {
  std::shared_ptr<const KemPrivateImpl> private_impl;
  std::shared_ptr<const KemPublicImpl> public_impl;
};

// EncapsulationSeedSize: bytes of randomness one encapsulation consumes (ML-KEM: m, 32;
// X-Wing: m || ephemeral X25519 key, 64; MLKEM1024-P384: m || ephemeral P-384 scalar, 80).
std::size_t EncapsulationSeedSize(KemAlgorithm algorithm) noexcept;

// Per-algorithm factories: ML-KEM (kem_mlkem.cc).
Result<KemKeyPair> MlKemFromSeed(KemAlgorithm algorithm, ByteView seed);
Result<KemKeyPair> MlKemFromExpanded(KemAlgorithm algorithm, ByteView expanded);
Result<std::shared_ptr<const KemPublicImpl>> MlKemPublicFromBytes(KemAlgorithm algorithm, ByteView bytes);
// The hybrids (kXWing, kMlKem1024P384), kem_hybrid.cc.
Result<KemKeyPair> HybridFromSeed(KemAlgorithm algorithm, ByteView seed);
Result<std::shared_ptr<const KemPublicImpl>> HybridPublicFromBytes(KemAlgorithm algorithm, ByteView bytes);

// Shared helpers for the hybrids: ML-KEM encapsulation / decapsulation on raw OpenSSL keys.
const char* MlKemOpenSslName(KemAlgorithm algorithm) noexcept;

// EncapsulateDeterministicForTesting encapsulates to `key` with fixed randomness `eseed`
// (EncapsulationSeedSize bytes), to reproduce published test vectors: tests and the start-up
// known-answer self-test only. Never use it to protect data.
Result<KemEncapsulation> EncapsulateDeterministicForTesting(const KemPublicKey& key, ByteView eseed);

}  // namespace qsapi::crypto::internal

#endif  // QSAPI_SRC_CRYPTO_INTERNAL_KEM_IMPL_H_
