// qsapi/crypto/kem.h: key encapsulation mechanisms.
//
//   ML-KEM-512/768/1024  FIPS 203, through OpenSSL 3.5.
//   X-Wing               draft-connolly-cfrg-xwing-kem: ML-KEM-768 + X25519 with a SHA3-256
//                        combiner, composed from OpenSSL's ML-KEM-768, X25519 and SHA3-256.
//                        The 32-byte seed is the private key. HPKE KEM id 0x647a.
//   ML-KEM-1024+P-384    MLKEM1024-P384 of draft-ietf-hpke-pq (HPKE KEM id 0x0051), for the
//                        high-assurance (CNSA 2.0 transition) profile.
//
// Private keys are held as seeds in secret memory; the expanded form lives only inside OpenSSL.
// Decapsulation never reveals why it failed: every failure is AuthenticationFailed(). ML-KEM and
// X-Wing decapsulation of a well-formed but wrong ciphertext does not fail at all (implicit
// rejection, FIPS 203 Algorithm 18): it yields a pseudorandom secret that the peer does not share,
// which the protocol above must catch with key confirmation.
//
// Thread safety: all key objects are immutable after construction and may be shared between threads.
#ifndef QSAPI_CRYPTO_KEM_H_
#define QSAPI_CRYPTO_KEM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::crypto {

enum class KemAlgorithm : std::uint8_t {
  kMlKem512,
  kMlKem768,
  kMlKem1024,
  kXWing,
  kMlKem1024P384,
};

// KemSizes gives the byte lengths of an algorithm's encodings.
struct KemSizes {
  std::size_t public_key;
  std::size_t ciphertext;
  std::size_t shared_secret;
  std::size_t seed;                  // private key in seed form
  std::size_t expanded_private_key;  // FIPS 203 decapsulation key (ML-KEM only; 0 otherwise)
};

// GetKemSizes returns the sizes for `algorithm`.
KemSizes GetKemSizes(KemAlgorithm algorithm) noexcept;

// KemAlgorithmName returns the canonical name ("ML-KEM-768", "X-Wing", "MLKEM1024-P384").
std::string_view KemAlgorithmName(KemAlgorithm algorithm) noexcept;

// ParseKemAlgorithm is the inverse of KemAlgorithmName (case-sensitive).
Result<KemAlgorithm> ParseKemAlgorithm(std::string_view name);

// KemEncapsulation is what the sender gets: the ciphertext to send and the shared secret to keep.
struct KemEncapsulation {
  KemCiphertext ciphertext;
  SharedSecret shared_secret;
};

namespace internal {
class KemPublicImpl;
class KemPrivateImpl;
struct KemKeyPair;
}  // namespace internal

// KemPublicKey is an encapsulation key.
class KemPublicKey {
 public:
  // FromBytes imports a raw public key. Fails with kInvalidArgument on a wrong length or an
  // encoding the algorithm rejects (FIPS 203, 7.2 modulus check; a P-384 point not on the curve).
  static Result<KemPublicKey> FromBytes(KemAlgorithm algorithm, ByteView bytes);

  [[nodiscard]] KemAlgorithm algorithm() const noexcept;
  // bytes returns the raw encoding (GetKemSizes(algorithm()).public_key bytes).
  [[nodiscard]] ByteView bytes() const noexcept;

  // Encapsulate generates a fresh shared secret and its ciphertext for this key.
  [[nodiscard]] Result<KemEncapsulation> Encapsulate() const;

  // impl is for the library's own use.
  [[nodiscard]] const internal::KemPublicImpl& impl() const noexcept { return *impl_; }

 private:
  friend class KemPrivateKey;
  explicit KemPublicKey(std::shared_ptr<const internal::KemPublicImpl> impl) noexcept : impl_(std::move(impl)) {}
  std::shared_ptr<const internal::KemPublicImpl> impl_;
};

// KemPrivateKey is a decapsulation key, held as its seed.
class KemPrivateKey {
 public:
  // Generate creates a key from a fresh seed drawn from the process RandomSource.
  static Result<KemPrivateKey> Generate(KemAlgorithm algorithm);

  // FromSeed derives the key from its seed: 64 bytes d || z for ML-KEM (FIPS 203 Algorithm 16),
  // 32 bytes for X-Wing and MLKEM1024-P384. Fails with kInvalidArgument on a wrong length.
  static Result<KemPrivateKey> FromSeed(KemAlgorithm algorithm, ByteView seed);

  // FromExpandedBytes imports an ML-KEM decapsulation key in the FIPS 203 encoding (1632, 2400 or
  // 3168 bytes), checked as FIPS 203 7.3 requires (hash check). Such a key has no seed.
  // kUnimplemented for the hybrids, whose private key is only their seed.
  static Result<KemPrivateKey> FromExpandedBytes(KemAlgorithm algorithm, ByteView bytes);

  [[nodiscard]] KemAlgorithm algorithm() const noexcept;
  [[nodiscard]] const KemPublicKey& public_key() const noexcept { return public_key_; }

  // Decapsulate recovers the shared secret from `ciphertext`. Any failure, including a wrong
  // ciphertext length, is AuthenticationFailed().
  [[nodiscard]] Result<SharedSecret> Decapsulate(ByteView ciphertext) const;

  // ExportSeed returns a copy of the seed (for wrapping under a KEK). kFailedPrecondition for a key
  // imported from its expanded form.
  [[nodiscard]] Result<KemSeed> ExportSeed() const;

  // ExportExpanded returns the FIPS 203 decapsulation key (ML-KEM only), for interoperability.
  [[nodiscard]] Result<SecretBytes> ExportExpanded() const;

  [[nodiscard]] const internal::KemPrivateImpl& impl() const noexcept { return *impl_; }

 private:
  KemPrivateKey(std::shared_ptr<const internal::KemPrivateImpl> impl, KemPublicKey public_key) noexcept
      : impl_(std::move(impl)), public_key_(std::move(public_key)) {}
  static KemPrivateKey FromPair(internal::KemKeyPair pair);
  std::shared_ptr<const internal::KemPrivateImpl> impl_;
  KemPublicKey public_key_;
};

}  // namespace qsapi::crypto

#endif  // QSAPI_CRYPTO_KEM_H_
