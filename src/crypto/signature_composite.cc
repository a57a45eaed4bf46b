// Composite ML-DSA-65 + Ed25519 signatures: id-MLDSA65-Ed25519-SHA512 of
// draft-ietf-lamps-pq-composite-sigs. Composed from OpenSSL's ML-DSA-65, Ed25519 and SHA-512.
//
//   M'        = Prefix || Label || len(ctx) (1 byte) || ctx || SHA-512(M)
//   signature = ML-DSA-65.Sign(sk_M, M', ctx = Label) || Ed25519.Sign(sk_E, M')      (3309 + 64 bytes)
//   public key  = pk_M (1952) || pk_E (32)
//   private key = ML-DSA-65 seed (32) || Ed25519 private key (32)
// Verification succeeds only when both component signatures verify.
#include <array>
#include <string_view>

#include "crypto/internal/ecc.h"
#include "crypto/internal/openssl_util.h"
#include "crypto/internal/signature_impl.h"

namespace qsapi::crypto::internal {
namespace {

constexpr std::string_view kPrefix = "CompositeAlgorithmSignatures2025";
constexpr std::string_view kLabel = "COMPSIG-MLDSA65-Ed25519-SHA512";
constexpr std::size_t kMlDsaPk = 1952;
constexpr std::size_t kMlDsaSig = 3309;
constexpr std::size_t kEdPk = 32;
constexpr std::size_t kEdSig = 64;

ByteView AsBytes(std::string_view s) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): a label's characters as bytes
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// MessageRepresentative builds M' (see the file comment).
Result<Bytes> MessageRepresentative(ByteView message, ByteView context) {
  if (context.size() > kMaxContextSize) return InvalidArgument("context string longer than 255 bytes");
  std::array<std::uint8_t, 64> digest{};
  QSAPI_RETURN_IF_ERROR(Digest(Sha512(), {message}, digest));
  Bytes m;
  m.reserve(kPrefix.size() + kLabel.size() + 1 + context.size() + digest.size());
  m.insert(m.end(), kPrefix.begin(), kPrefix.end());
  m.insert(m.end(), kLabel.begin(), kLabel.end());
  m.push_back(static_cast<std::uint8_t>(context.size()));
  m.insert(m.end(), context.begin(), context.end());
  m.insert(m.end(), digest.begin(), digest.end());
  return m;
}

class CompositeVerifying final : public VerifyingImpl {
 public:
  CompositeVerifying(VerifyingKey ml_dsa, Bytes bytes) : ml_dsa_(std::move(ml_dsa)), bytes_(std::move(bytes)) {}
  SignatureAlgorithm algorithm() const noexcept override { return SignatureAlgorithm::kMlDsa65Ed25519; }
  ByteView bytes() const noexcept override { return bytes_; }

  Status Verify(ByteView message, ByteView signature, ByteView context) const override {
    QSAPI_ASSIGN_OR_RETURN(Bytes m, MessageRepresentative(message, context));
    if (signature.size() != kMlDsaSig + kEdSig) return AuthenticationFailed();
    // Both components are always checked (no early exit that would tell which one failed).
    const Status ml_dsa = ml_dsa_.Verify(m, signature.first(kMlDsaSig), AsBytes(kLabel));
    const Status ed = Ed25519Verify(ByteView(bytes_).subspan(kMlDsaPk), m, signature.subspan(kMlDsaSig));
    if (!ml_dsa.ok() || !ed.ok()) return AuthenticationFailed();
    return OkStatus();
  }

 private:
  VerifyingKey ml_dsa_;
  Bytes bytes_;
};

class CompositeSigning final : public SigningImpl {
 public:
  CompositeSigning(SigningKey ml_dsa, SecretBytes seed) : ml_dsa_(std::move(ml_dsa)), seed_(std::move(seed)) {}
  SignatureAlgorithm algorithm() const noexcept override { return SignatureAlgorithm::kMlDsa65Ed25519; }
  const SecretBytes& seed() const noexcept override { return seed_; }

  Result<Signature> Sign(ByteView message, ByteView context, const SigningMode& mode) const override {
    QSAPI_ASSIGN_OR_RETURN(Bytes m, MessageRepresentative(message, context));
    QSAPI_ASSIGN_OR_RETURN(Signature ml_dsa, ml_dsa_.impl().Sign(m, AsBytes(kLabel), mode));
    QSAPI_ASSIGN_OR_RETURN(Bytes ed, Ed25519Sign(seed_.view().subspan(32), m));
    Bytes sig = std::move(ml_dsa).Release();
    sig.insert(sig.end(), ed.begin(), ed.end());
    return Signature(std::move(sig));
  }

 private:
  SigningKey ml_dsa_;
  SecretBytes seed_;
};

}  // namespace

Result<SigningKeyPair> CompositeSigningFromSeed(ByteView seed) {
  if (seed.size() != 64) {
    return InvalidArgument("MLDSA65-Ed25519-SHA512 private key must be 64 bytes (ML-DSA-65 seed || Ed25519 key)");
  }
  QSAPI_ASSIGN_OR_RETURN(SigningKey ml_dsa, SigningKey::FromSeed(SignatureAlgorithm::kMlDsa65, seed.first(32)));
  QSAPI_ASSIGN_OR_RETURN(Bytes ed_pk, Ed25519PublicFromPrivate(seed.subspan(32)));
  Bytes pk(ml_dsa.verifying_key().bytes().begin(), ml_dsa.verifying_key().bytes().end());
  pk.insert(pk.end(), ed_pk.begin(), ed_pk.end());
  auto verifying = std::make_shared<CompositeVerifying>(ml_dsa.verifying_key(), std::move(pk));
  auto signing = std::make_shared<CompositeSigning>(std::move(ml_dsa), SecretBytes::CopyFrom(seed));
  return SigningKeyPair{std::move(signing), std::move(verifying)};
}

Result<std::shared_ptr<const VerifyingImpl>> CompositeVerifyingFromBytes(ByteView bytes) {
  if (bytes.size() != kMlDsaPk + kEdPk) {
    return InvalidArgument("MLDSA65-Ed25519-SHA512 public key must be 1984 bytes, got " + std::to_string(bytes.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(VerifyingKey ml_dsa,
                         VerifyingKey::FromBytes(SignatureAlgorithm::kMlDsa65, bytes.first(kMlDsaPk)));
  return std::shared_ptr<const VerifyingImpl>(
      std::make_shared<CompositeVerifying>(std::move(ml_dsa), Bytes(bytes.begin(), bytes.end())));
}

}  // namespace qsapi::crypto::internal
