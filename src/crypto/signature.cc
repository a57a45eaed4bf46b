#include "qsapi/crypto/signature.h"

#include <array>

#include "crypto/internal/signature_impl.h"
#include "qsapi/crypto/random.h"

namespace qsapi::crypto {
namespace {

struct Info {
  SignatureAlgorithm algorithm;
  std::string_view name;
  SignatureSizes sizes;
};

// FIPS 204 Table 2; FIPS 205 Table 2 (pk = 2n, seed = 3n); the composite draft (pk = ML-DSA-65 pk
// || Ed25519 pk, signature = ML-DSA-65 signature || Ed25519 signature, seed = ML-DSA seed ||
// Ed25519 private key).
constexpr std::array<Info, 16> kInfo = {{
    {SignatureAlgorithm::kMlDsa44, "ML-DSA-44", {1312, 2420, 32}},
    {SignatureAlgorithm::kMlDsa65, "ML-DSA-65", {1952, 3309, 32}},
    {SignatureAlgorithm::kMlDsa87, "ML-DSA-87", {2592, 4627, 32}},
    {SignatureAlgorithm::kSlhDsaSha2_128s, "SLH-DSA-SHA2-128s", {32, 7856, 48}},
    {SignatureAlgorithm::kSlhDsaSha2_128f, "SLH-DSA-SHA2-128f", {32, 17088, 48}},
    {SignatureAlgorithm::kSlhDsaSha2_192s, "SLH-DSA-SHA2-192s", {48, 16224, 72}},
    {SignatureAlgorithm::kSlhDsaSha2_192f, "SLH-DSA-SHA2-192f", {48, 35664, 72}},
    {SignatureAlgorithm::kSlhDsaSha2_256s, "SLH-DSA-SHA2-256s", {64, 29792, 96}},
    {SignatureAlgorithm::kSlhDsaSha2_256f, "SLH-DSA-SHA2-256f", {64, 49856, 96}},
    {SignatureAlgorithm::kSlhDsaShake_128s, "SLH-DSA-SHAKE-128s", {32, 7856, 48}},
    {SignatureAlgorithm::kSlhDsaShake_128f, "SLH-DSA-SHAKE-128f", {32, 17088, 48}},
    {SignatureAlgorithm::kSlhDsaShake_192s, "SLH-DSA-SHAKE-192s", {48, 16224, 72}},
    {SignatureAlgorithm::kSlhDsaShake_192f, "SLH-DSA-SHAKE-192f", {48, 35664, 72}},
    {SignatureAlgorithm::kSlhDsaShake_256s, "SLH-DSA-SHAKE-256s", {64, 29792, 96}},
    {SignatureAlgorithm::kSlhDsaShake_256f, "SLH-DSA-SHAKE-256f", {64, 49856, 96}},
    {SignatureAlgorithm::kMlDsa65Ed25519, "MLDSA65-Ed25519-SHA512", {1952 + 32, 3309 + 64, 32 + 32}},
}};

const Info& InfoFor(SignatureAlgorithm algorithm) {
  for (const Info& i : kInfo) {
    if (i.algorithm == algorithm) return i;
  }
  std::abort();  // unreachable: every enumerator is in the table
}

}  // namespace

SignatureSizes GetSignatureSizes(SignatureAlgorithm algorithm) noexcept { return InfoFor(algorithm).sizes; }
std::string_view SignatureAlgorithmName(SignatureAlgorithm algorithm) noexcept { return InfoFor(algorithm).name; }

Result<SignatureAlgorithm> ParseSignatureAlgorithm(std::string_view name) {
  for (const Info& i : kInfo) {
    if (i.name == name) return i.algorithm;
  }
  return InvalidArgument("unknown signature algorithm \"" + std::string(name) +
                         "\" (expected ML-DSA-44/65/87, SLH-DSA-{SHA2,SHAKE}-{128,192,256}{s,f} or "
                         "MLDSA65-Ed25519-SHA512)");
}

Result<VerifyingKey> VerifyingKey::FromBytes(SignatureAlgorithm algorithm, ByteView bytes) {
  Result<std::shared_ptr<const internal::VerifyingImpl>> impl = algorithm == SignatureAlgorithm::kMlDsa65Ed25519
                                                                    ? internal::CompositeVerifyingFromBytes(bytes)
                                                                    : internal::PqcVerifyingFromBytes(algorithm, bytes);
  if (!impl) return impl.error();
  return VerifyingKey(std::move(impl).value());
}

SignatureAlgorithm VerifyingKey::algorithm() const noexcept { return impl_->algorithm(); }
ByteView VerifyingKey::bytes() const noexcept { return impl_->bytes(); }
Status VerifyingKey::Verify(ByteView message, ByteView signature, ByteView context) const {
  return impl_->Verify(message, signature, context);
}

Result<SigningKey> SigningKey::Generate(SignatureAlgorithm algorithm) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes seed, RandomSecret(GetSignatureSizes(algorithm).seed));
  return FromSeed(algorithm, seed.view());
}

Result<SigningKey> SigningKey::FromSeed(SignatureAlgorithm algorithm, ByteView seed) {
  QSAPI_ASSIGN_OR_RETURN(internal::SigningKeyPair pair, algorithm == SignatureAlgorithm::kMlDsa65Ed25519
                                                            ? internal::CompositeSigningFromSeed(seed)
                                                            : internal::PqcSigningFromSeed(algorithm, seed));
  return SigningKey(std::move(pair.signing), VerifyingKey(std::move(pair.verifying)));
}

SignatureAlgorithm SigningKey::algorithm() const noexcept { return impl_->algorithm(); }

Result<Signature> SigningKey::Sign(ByteView message, ByteView context) const {
  return impl_->Sign(message, context, internal::SigningMode{});
}

SigningSeed SigningKey::ExportSeed() const { return SigningSeed(impl_->seed().Clone()); }

namespace internal {
Result<Signature> SignForTesting(const SigningKey& key, ByteView message, ByteView context, const SigningMode& mode) {
  return key.impl().Sign(message, context, mode);
}
}  // namespace internal

}  // namespace qsapi::crypto
