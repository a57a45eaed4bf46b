#include "qsapi/crypto/kem.h"

#include "crypto/internal/kem_impl.h"
#include "qsapi/crypto/random.h"

namespace qsapi::crypto {

KemSizes GetKemSizes(KemAlgorithm algorithm) noexcept {
  switch (algorithm) {
    // FIPS 203, Table 3.
    case KemAlgorithm::kMlKem512: return {800, 768, 32, 64, 1632};
    case KemAlgorithm::kMlKem768: return {1184, 1088, 32, 64, 2400};
    case KemAlgorithm::kMlKem1024: return {1568, 1568, 32, 64, 3168};
    // draft-connolly-cfrg-xwing-kem: pk_M || pk_X, ct_M || ct_X.
    case KemAlgorithm::kXWing: return {1216, 1120, 32, 32, 0};
    // draft-ietf-hpke-pq MLKEM1024-P384: ML-KEM-1024 part || uncompressed P-384 point (97 bytes).
    case KemAlgorithm::kMlKem1024P384: return {1568 + 97, 1568 + 97, 32, 32, 0};
  }
  return {0, 0, 0, 0, 0};
}

std::string_view KemAlgorithmName(KemAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case KemAlgorithm::kMlKem512: return "ML-KEM-512";
    case KemAlgorithm::kMlKem768: return "ML-KEM-768";
    case KemAlgorithm::kMlKem1024: return "ML-KEM-1024";
    case KemAlgorithm::kXWing: return "X-Wing";
    case KemAlgorithm::kMlKem1024P384: return "MLKEM1024-P384";
  }
  return "unknown";
}

Result<KemAlgorithm> ParseKemAlgorithm(std::string_view name) {
  for (auto a : {KemAlgorithm::kMlKem512, KemAlgorithm::kMlKem768, KemAlgorithm::kMlKem1024, KemAlgorithm::kXWing,
                 KemAlgorithm::kMlKem1024P384}) {
    if (KemAlgorithmName(a) == name) return a;
  }
  return InvalidArgument("unknown KEM algorithm \"" + std::string(name) +
                         "\" (expected ML-KEM-512, ML-KEM-768, ML-KEM-1024, X-Wing or MLKEM1024-P384)");
}

namespace internal {

std::size_t EncapsulationSeedSize(KemAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case KemAlgorithm::kMlKem512:
    case KemAlgorithm::kMlKem768:
    case KemAlgorithm::kMlKem1024: return 32;
    case KemAlgorithm::kXWing: return 64;
    case KemAlgorithm::kMlKem1024P384: return 32 + 48;
  }
  return 0;
}

Result<KemEncapsulation> EncapsulateDeterministicForTesting(const KemPublicKey& key, ByteView eseed) {
  if (eseed.size() != EncapsulationSeedSize(key.algorithm())) {
    return InvalidArgument("encapsulation seed has the wrong length");
  }
  return key.impl().Encapsulate(eseed);
}

}  // namespace internal

using internal::KemKeyPair;

namespace {

Result<KemKeyPair> FromSeedImpl(KemAlgorithm algorithm, ByteView seed) {
  switch (algorithm) {
    case KemAlgorithm::kMlKem512:
    case KemAlgorithm::kMlKem768:
    case KemAlgorithm::kMlKem1024: return internal::MlKemFromSeed(algorithm, seed);
    case KemAlgorithm::kXWing:
    case KemAlgorithm::kMlKem1024P384: return internal::HybridFromSeed(algorithm, seed);
  }
  return InvalidArgument("unknown KEM algorithm");
}

}  // namespace

KemPrivateKey KemPrivateKey::FromPair(internal::KemKeyPair pair) {
  return {std::move(pair.private_impl), KemPublicKey(std::move(pair.public_impl))};
}

Result<KemPublicKey> KemPublicKey::FromBytes(KemAlgorithm algorithm, ByteView bytes) {
  Result<std::shared_ptr<const internal::KemPublicImpl>> impl =
      [&]() -> Result<std::shared_ptr<const internal::KemPublicImpl>> {
    switch (algorithm) {
      case KemAlgorithm::kMlKem512:
      case KemAlgorithm::kMlKem768:
      case KemAlgorithm::kMlKem1024: return internal::MlKemPublicFromBytes(algorithm, bytes);
      case KemAlgorithm::kXWing:
      case KemAlgorithm::kMlKem1024P384: return internal::HybridPublicFromBytes(algorithm, bytes);
    }
    return InvalidArgument("unknown KEM algorithm");
  }();
  if (!impl) return impl.error();
  return KemPublicKey(std::move(impl).value());
}

KemAlgorithm KemPublicKey::algorithm() const noexcept { return impl_->algorithm(); }
ByteView KemPublicKey::bytes() const noexcept { return impl_->bytes(); }
Result<KemEncapsulation> KemPublicKey::Encapsulate() const { return impl_->Encapsulate({}); }

Result<KemPrivateKey> KemPrivateKey::Generate(KemAlgorithm algorithm) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes seed, RandomSecret(GetKemSizes(algorithm).seed));
  return FromSeed(algorithm, seed.view());
}

Result<KemPrivateKey> KemPrivateKey::FromSeed(KemAlgorithm algorithm, ByteView seed) {
  QSAPI_ASSIGN_OR_RETURN(KemKeyPair pair, FromSeedImpl(algorithm, seed));
  return FromPair(std::move(pair));
}

Result<KemPrivateKey> KemPrivateKey::FromExpandedBytes(KemAlgorithm algorithm, ByteView bytes) {
  switch (algorithm) {
    case KemAlgorithm::kMlKem512:
    case KemAlgorithm::kMlKem768:
    case KemAlgorithm::kMlKem1024: {
      QSAPI_ASSIGN_OR_RETURN(KemKeyPair pair, internal::MlKemFromExpanded(algorithm, bytes));
      return FromPair(std::move(pair));
    }
    case KemAlgorithm::kXWing:
    case KemAlgorithm::kMlKem1024P384: break;
  }
  return Unimplemented(std::string(KemAlgorithmName(algorithm)) + " private keys exist only as seeds");
}

KemAlgorithm KemPrivateKey::algorithm() const noexcept { return impl_->algorithm(); }

Result<SharedSecret> KemPrivateKey::Decapsulate(ByteView ciphertext) const { return impl_->Decapsulate(ciphertext); }

Result<KemSeed> KemPrivateKey::ExportSeed() const {
  const SecretBytes* seed = impl_->seed();
  if (seed == nullptr) return FailedPrecondition("this key was imported in expanded form and has no seed");
  return KemSeed(seed->Clone());
}

Result<SecretBytes> KemPrivateKey::ExportExpanded() const { return impl_->ExportExpanded(); }

}  // namespace qsapi::crypto
