// qsapi/crypto/signature.h: digital signatures.
//
//   ML-DSA-44/65/87          FIPS 204, through OpenSSL 3.5. Keys from 32-byte seeds (FIPS 204
//                            Algorithm 6); hedged signing by default (fresh rnd per signature).
//   SLH-DSA-{SHA2,SHAKE}-{128,192,256}{s,f}
//                            FIPS 205, through OpenSSL 3.5. Keys from 3n-byte seeds
//                            (SK.seed || SK.prf || PK.seed, FIPS 205 Algorithm 18).
//   ML-DSA-65 + Ed25519      id-MLDSA65-Ed25519-SHA512 of draft-ietf-lamps-pq-composite-sigs:
//                            both signatures must verify; the draft's encodings.
//
// Every signing and verification takes an optional context string (FIPS 204 / 205 ctx, at most
// 255 bytes) that separates uses of one key: a signature made under one context does not verify
// under another. Verify returns OkStatus() or AuthenticationFailed(), whatever the reason.
//
// Thread safety: key objects are immutable and may be shared between threads.
#ifndef QSAPI_CRYPTO_SIGNATURE_H_
#define QSAPI_CRYPTO_SIGNATURE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::crypto {

enum class SignatureAlgorithm : std::uint8_t {
  kMlDsa44,
  kMlDsa65,
  kMlDsa87,
  kSlhDsaSha2_128s,
  kSlhDsaSha2_128f,
  kSlhDsaSha2_192s,
  kSlhDsaSha2_192f,
  kSlhDsaSha2_256s,
  kSlhDsaSha2_256f,
  kSlhDsaShake_128s,
  kSlhDsaShake_128f,
  kSlhDsaShake_192s,
  kSlhDsaShake_192f,
  kSlhDsaShake_256s,
  kSlhDsaShake_256f,
  kMlDsa65Ed25519,
};

// kMaxContextSize is the longest context string (FIPS 204, Algorithm 2).
inline constexpr std::size_t kMaxContextSize = 255;

struct SignatureSizes {
  std::size_t public_key;
  std::size_t signature;
  std::size_t seed;
};

SignatureSizes GetSignatureSizes(SignatureAlgorithm algorithm) noexcept;

// SignatureAlgorithmName returns the canonical name ("ML-DSA-65", "SLH-DSA-SHA2-128s",
// "MLDSA65-Ed25519-SHA512").
std::string_view SignatureAlgorithmName(SignatureAlgorithm algorithm) noexcept;
Result<SignatureAlgorithm> ParseSignatureAlgorithm(std::string_view name);

namespace internal {
class VerifyingImpl;
class SigningImpl;
}  // namespace internal

// VerifyingKey is a public signature key.
class VerifyingKey {
 public:
  // FromBytes imports a raw public key; kInvalidArgument on a wrong length.
  static Result<VerifyingKey> FromBytes(SignatureAlgorithm algorithm, ByteView bytes);

  [[nodiscard]] SignatureAlgorithm algorithm() const noexcept;
  [[nodiscard]] ByteView bytes() const noexcept;

  // Verify checks `signature` over `message` under `context`. OkStatus() or AuthenticationFailed();
  // kInvalidArgument only for a context longer than kMaxContextSize.
  [[nodiscard]] Status Verify(ByteView message, ByteView signature, ByteView context = {}) const;

  [[nodiscard]] const internal::VerifyingImpl& impl() const noexcept { return *impl_; }

 private:
  friend class SigningKey;
  explicit VerifyingKey(std::shared_ptr<const internal::VerifyingImpl> impl) noexcept : impl_(std::move(impl)) {}
  std::shared_ptr<const internal::VerifyingImpl> impl_;
};

// SigningKey is a private signature key, held as its seed.
class SigningKey {
 public:
  // Generate creates a key from a fresh seed drawn from the process RandomSource.
  static Result<SigningKey> Generate(SignatureAlgorithm algorithm);
  // FromSeed derives the key from its seed (GetSignatureSizes(algorithm).seed bytes).
  static Result<SigningKey> FromSeed(SignatureAlgorithm algorithm, ByteView seed);

  [[nodiscard]] SignatureAlgorithm algorithm() const noexcept;
  [[nodiscard]] const VerifyingKey& verifying_key() const noexcept { return verifying_key_; }

  // Sign signs `message` under `context` (hedged: each call gives a different signature).
  [[nodiscard]] Result<Signature> Sign(ByteView message, ByteView context = {}) const;

  // ExportSeed returns a copy of the seed (for wrapping under a KEK).
  [[nodiscard]] SigningSeed ExportSeed() const;

  [[nodiscard]] const internal::SigningImpl& impl() const noexcept { return *impl_; }

 private:
  SigningKey(std::shared_ptr<const internal::SigningImpl> impl, VerifyingKey verifying_key) noexcept
      : impl_(std::move(impl)), verifying_key_(std::move(verifying_key)) {}
  std::shared_ptr<const internal::SigningImpl> impl_;
  VerifyingKey verifying_key_;
};

}  // namespace qsapi::crypto

#endif  // QSAPI_CRYPTO_SIGNATURE_H_
