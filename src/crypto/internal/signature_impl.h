// Internal: per-algorithm signature implementations and test hooks.
#ifndef QSAPI_SRC_CRYPTO_INTERNAL_SIGNATURE_IMPL_H_
#define QSAPI_SRC_CRYPTO_INTERNAL_SIGNATURE_IMPL_H_

#include "qsapi/crypto/signature.h"

namespace qsapi::crypto::internal {

// SigningMode selects the per-signature randomness: hedged (fresh, the default), deterministic
// (all-zero rnd; tests only), or a fixed rnd (tests only).
struct SigningMode {
  bool deterministic = false;
  ByteView rnd;  // 32 bytes for ML-DSA when set
};

class VerifyingImpl {
 public:
  virtual ~VerifyingImpl() = default;
  [[nodiscard]] virtual SignatureAlgorithm algorithm() const noexcept = 0;
  [[nodiscard]] virtual ByteView bytes() const noexcept = 0;
  [[nodiscard]] virtual Status Verify(ByteView message, ByteView signature, ByteView context) const = 0;
};

class SigningImpl {
 public:
  virtual ~SigningImpl() = default;
  [[nodiscard]] virtual SignatureAlgorithm algorithm() const noexcept = 0;
  [[nodiscard]] virtual Result<Signature> Sign(ByteView message, ByteView context, const SigningMode& mode) const = 0;
  [[nodiscard]] virtual const SecretBytes& seed() const noexcept = 0;
};

struct SigningKeyPair {
  std::shared_ptr<const SigningImpl> signing;
  std::shared_ptr<const VerifyingImpl> verifying;
};

// Factories: the FIPS 204 / 205 algorithms (signature_pqc.cc) and the composite (signature_composite.cc).
Result<SigningKeyPair> PqcSigningFromSeed(SignatureAlgorithm algorithm, ByteView seed);
Result<std::shared_ptr<const VerifyingImpl>> PqcVerifyingFromBytes(SignatureAlgorithm algorithm, ByteView bytes);
Result<SigningKeyPair> CompositeSigningFromSeed(ByteView seed);
Result<std::shared_ptr<const VerifyingImpl>> CompositeVerifyingFromBytes(ByteView bytes);

// SignForTesting signs with a fixed SigningMode, to reproduce published vectors. Tests only.
Result<Signature> SignForTesting(const SigningKey& key, ByteView message, ByteView context, const SigningMode& mode);

// SignMuForTesting signs an external mu (FIPS 204 Algorithm 7 line 6 input) with ML-DSA. Tests only.
Result<Signature> SignMuForTesting(const SigningKey& key, ByteView mu, const SigningMode& mode);

}  // namespace qsapi::crypto::internal

#endif  // QSAPI_SRC_CRYPTO_INTERNAL_SIGNATURE_IMPL_H_
