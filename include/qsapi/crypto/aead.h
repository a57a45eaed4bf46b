// qsapi/crypto/aead.h: authenticated encryption with associated data.
//
//   AES-256-GCM            NIST SP 800-38D, through OpenSSL; 96-bit nonces, 128-bit tags.
//   XChaCha20-Poly1305     draft-irtf-cfrg-xchacha, through libsodium; 192-bit nonces.
//   ChaCha20-Poly1305      RFC 8439, through libsodium; 96-bit nonces (for HPKE, RFC 9180).
//
// Two levels:
//   - Encrypt / Decrypt choose the nonce themselves (random, from the process RandomSource) and
//     carry it in the output: nonce || ciphertext || tag. This is the API to use.
//   - SealWithNonce / OpenWithNonce take an explicit nonce, for constructions that derive nonces
//     from counters (envelopes, HPKE, STREAM). The caller must never repeat a nonce under one key.
//
// Usage limits (docs/DECISIONS.md, "AEAD limits"): with random 96-bit nonces AES-256-GCM allows at
// most 2^32 encryptions per key (SP 800-38D 8.3); the keystore and sessions rotate keys well
// before that. XChaCha20's 192-bit random nonces have no practical limit.
//
// Failure: Decrypt and OpenWithNonce return AuthenticationFailed() for every bad input (tag,
// ciphertext, associated data, nonce, truncation) and leave no plaintext behind: the output
// buffer is zeroised.
//
// Thread safety: an Aead is immutable and may be used from many threads at once.
#ifndef QSAPI_CRYPTO_AEAD_H_
#define QSAPI_CRYPTO_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::crypto {

enum class AeadAlgorithm : std::uint8_t {
  kAes256Gcm,
  kXChaCha20Poly1305,
  kChaCha20Poly1305,
};

struct AeadSizes {
  std::size_t key;
  std::size_t nonce;
  std::size_t tag;
};

AeadSizes GetAeadSizes(AeadAlgorithm algorithm) noexcept;
std::string_view AeadAlgorithmName(AeadAlgorithm algorithm) noexcept;  // "AES-256-GCM", ...
Result<AeadAlgorithm> ParseAeadAlgorithm(std::string_view name);

namespace internal {
class AeadImpl;
}

class Aead {
 public:
  // New creates an AEAD instance under `key` (32 bytes). kInvalidArgument on a wrong key length.
  static Result<Aead> New(AeadAlgorithm algorithm, const SymmetricKey& key);
  // Generate creates an instance under a fresh random key, returned through `key_out` when non-null.
  static Result<Aead> Generate(AeadAlgorithm algorithm, SymmetricKey* key_out = nullptr);

  [[nodiscard]] AeadAlgorithm algorithm() const noexcept;

  // Overhead is nonce + tag: Encrypt's output is plaintext.size() + Overhead() bytes.
  [[nodiscard]] std::size_t Overhead() const noexcept;

  // Encrypt returns nonce || ciphertext || tag under a fresh random nonce.
  [[nodiscard]] Result<Bytes> Encrypt(ByteView plaintext, ByteView associated_data) const;
  // Decrypt reverses Encrypt; AuthenticationFailed() on any failure.
  [[nodiscard]] Result<Bytes> Decrypt(ByteView ciphertext, ByteView associated_data) const;
  // DecryptSecret is Decrypt into secret memory (for wrapped keys and seeds).
  [[nodiscard]] Result<SecretBytes> DecryptSecret(ByteView ciphertext, ByteView associated_data) const;

  // SealWithNonce writes ciphertext || tag (plaintext.size() + tag bytes) to `out`.
  [[nodiscard]] Status SealWithNonce(ByteView nonce, ByteView plaintext, ByteView associated_data,
                                     std::span<std::uint8_t> out) const;
  // OpenWithNonce writes the plaintext (ciphertext_and_tag.size() - tag bytes) to `out`; on failure
  // `out` is zeroised and the result is AuthenticationFailed().
  [[nodiscard]] Status OpenWithNonce(ByteView nonce, ByteView ciphertext_and_tag, ByteView associated_data,
                                     std::span<std::uint8_t> out) const;

 private:
  explicit Aead(std::shared_ptr<const internal::AeadImpl> impl) noexcept : impl_(std::move(impl)) {}
  std::shared_ptr<const internal::AeadImpl> impl_;
};

}  // namespace qsapi::crypto

#endif  // QSAPI_CRYPTO_AEAD_H_
