// The two hybrid KEMs, one construction: the QSF combiner of draft-irtf-cfrg-hybrid-kems with the
// parameters of draft-irtf-cfrg-concrete-hybrid-kems / draft-ietf-hpke-pq, composed from OpenSSL's
// ML-KEM, the classical group's key agreement, SHAKE256 and SHA3-256:
//
//   expand:  SHAKE256(seed, 64 + Nscalar) = ML-KEM seed (d || z) || classical private scalar
//   pk = ek_PQ || ek_T            ct = ct_PQ || ct_T          (ek_T, ct_T: group elements)
//   ss = SHA3-256(ss_PQ || ss_T || ct_T || ek_T || Label)
//
// | KEM                 | ML-KEM      | group  | element           | scalar | Label                  |
// | X-Wing (0x647a)     | ML-KEM-768  | X25519 | 32 (RFC 7748)     | 32     | 5c2e2f2f5e5c ("\.//^\") |
// | MLKEM1024-P384 (51) | ML-KEM-1024 | P-384  | 97 (uncompressed) | 48     | "MLKEM1024-P384"       |
//
// X25519 takes its 32 bytes as the private key (RFC 7748 clamps them); P-384's RandomScalar takes
// the 48 bytes big-endian and rejects 0 and values >= n (probability < 2^-192). Checked against the
// X-Wing draft's vectors, draft-ietf-hpke-pq-05 A.6 and @noble/post-quantum's implementations.
#include <array>
#include <string_view>

#include "crypto/internal/ecc.h"
#include "crypto/internal/kem_impl.h"
#include "crypto/internal/openssl_util.h"
#include "qsapi/crypto/random.h"

namespace qsapi::crypto::internal {
namespace {

constexpr std::size_t kMlKemSeed = 64;

// HybridGroup describes one hybrid: its ML-KEM half, its classical group and its label.
struct HybridGroup {
  KemAlgorithm algorithm;
  KemAlgorithm mlkem;
  std::size_t mlkem_public_key;
  std::size_t mlkem_ciphertext;
  std::size_t element;  // encoded group element (public key, ciphertext half)
  std::size_t scalar;   // private scalar bytes
  std::size_t shared;   // ss_T bytes
  std::string_view label;
  Result<EvpPkeyPtr> (*private_from_scalar)(ByteView);
  Result<EvpPkeyPtr> (*public_from_element)(ByteView);
  Result<Bytes> (*element_of)(const EVP_PKEY*);
};

// The draft writes the label as these six bytes (\.//^\); kept as bytes to be checked against it.
constexpr std::string_view kXWingLabel = "\x5c\x2e\x2f\x2f\x5e\x5c";  // NOLINT(modernize-raw-string-literal)

const HybridGroup kXWing = {KemAlgorithm::kXWing,
                            KemAlgorithm::kMlKem768,
                            1184,
                            1088,
                            kX25519KeySize,
                            kX25519KeySize,
                            kX25519KeySize,
                            kXWingLabel,
                            X25519PrivateKey,
                            X25519PublicKey,
                            X25519PublicBytes};
const HybridGroup kMlKem1024P384 = {KemAlgorithm::kMlKem1024P384,
                                    KemAlgorithm::kMlKem1024,
                                    1568,
                                    1568,
                                    kP384PointSize,
                                    kP384ScalarSize,
                                    kP384ScalarSize,
                                    "MLKEM1024-P384",
                                    P384PrivateFromScalar,
                                    P384PublicFromPoint,
                                    P384PublicPoint};

const HybridGroup& GroupFor(KemAlgorithm algorithm) {
  return algorithm == KemAlgorithm::kXWing ? kXWing : kMlKem1024P384;
}

Result<SharedSecret> Combine(const HybridGroup& g, ByteView ss_pq, ByteView ss_t, ByteView ct_t, ByteView ek_t) {
  const ByteView label(reinterpret_cast<const std::uint8_t*>(g.label.data()), g.label.size());  // NOLINT
  SecretBytes ss(32);
  QSAPI_RETURN_IF_ERROR(Digest(Sha3_256(), {ss_pq, ss_t, ct_t, ek_t, label}, ss.span()));
  return SharedSecret(std::move(ss));
}

class HybridPublic final : public KemPublicImpl {
 public:
  HybridPublic(const HybridGroup& g, KemPublicKey mlkem, EvpPkeyPtr ek_t, Bytes bytes)
      : g_(g), mlkem_(std::move(mlkem)), ek_t_(std::move(ek_t)), bytes_(std::move(bytes)) {}

  KemAlgorithm algorithm() const noexcept override { return g_.algorithm; }
  ByteView bytes() const noexcept override { return bytes_; }

  // eseed = m (32, ML-KEM encapsulation randomness) || ephemeral scalar (g.scalar bytes).
  Result<KemEncapsulation> Encapsulate(ByteView eseed) const override {
    ByteView m;
    Result<EvpPkeyPtr> ephemeral = InvalidArgument("no ephemeral key");
    if (eseed.empty()) {
      // A P-384 candidate scalar is rejected with probability < 2^-192: draw again, a few times.
      for (int attempt = 0; attempt < 4 && !ephemeral.ok(); ++attempt) {
        QSAPI_ASSIGN_OR_RETURN(SecretBytes scalar, RandomSecret(g_.scalar));
        ephemeral = g_.private_from_scalar(scalar.view());
      }
    } else {
      m = eseed.first(32);
      ephemeral = g_.private_from_scalar(eseed.subspan(32, g_.scalar));
    }
    if (!ephemeral) return ephemeral.error();
    QSAPI_ASSIGN_OR_RETURN(KemEncapsulation enc_pq, mlkem_.impl().Encapsulate(m));
    QSAPI_ASSIGN_OR_RETURN(Bytes ct_t, g_.element_of(ephemeral->get()));
    // Fails only for an X25519 public key of low order (all-zero result): the key is unusable.
    QSAPI_ASSIGN_OR_RETURN(SecretBytes ss_t, PkeyDerive(ephemeral->get(), ek_t_.get(), g_.shared));
    const ByteView ek_t = ByteView(bytes_).subspan(g_.mlkem_public_key);
    QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, Combine(g_, enc_pq.shared_secret.view(), ss_t.view(), ct_t, ek_t));
    Bytes ct = std::move(enc_pq.ciphertext).Release();
    ct.insert(ct.end(), ct_t.begin(), ct_t.end());
    return KemEncapsulation{KemCiphertext(std::move(ct)), std::move(ss)};
  }

 private:
  const HybridGroup& g_;
  KemPublicKey mlkem_;
  EvpPkeyPtr ek_t_;
  Bytes bytes_;
};

class HybridPrivate final : public KemPrivateImpl {
 public:
  HybridPrivate(const HybridGroup& g, SecretBytes seed, KemPrivateKey mlkem, EvpPkeyPtr dk_t, Bytes ek_t)
      : g_(g), seed_(std::move(seed)), mlkem_(std::move(mlkem)), dk_t_(std::move(dk_t)), ek_t_(std::move(ek_t)) {}

  KemAlgorithm algorithm() const noexcept override { return g_.algorithm; }

  Result<SharedSecret> Decapsulate(ByteView ciphertext) const override {
    if (ciphertext.size() != g_.mlkem_ciphertext + g_.element) return AuthenticationFailed();
    const ByteView ct_t = ciphertext.subspan(g_.mlkem_ciphertext);
    // Every step runs; any failure (an off-curve P-384 point, a low-order X25519 point) is the one
    // authentication error.
    Result<SharedSecret> ss_pq = mlkem_.Decapsulate(ciphertext.first(g_.mlkem_ciphertext));
    Result<EvpPkeyPtr> peer = g_.public_from_element(ct_t);
    if (!ss_pq || !peer) return AuthenticationFailed();
    Result<SecretBytes> ss_t = PkeyDerive(dk_t_.get(), peer->get(), g_.shared);
    if (!ss_t) return AuthenticationFailed();
    Result<SharedSecret> ss = Combine(g_, ss_pq->view(), ss_t->view(), ct_t, ek_t_);
    if (!ss) return AuthenticationFailed();
    return ss;
  }

  const SecretBytes* seed() const noexcept override { return &seed_; }
  Result<SecretBytes> ExportExpanded() const override {
    return Unimplemented(std::string(KemAlgorithmName(g_.algorithm)) + " private keys exist only as seeds");
  }

 private:
  const HybridGroup& g_;
  SecretBytes seed_;
  KemPrivateKey mlkem_;
  EvpPkeyPtr dk_t_;
  Bytes ek_t_;
};

}  // namespace

Result<KemKeyPair> HybridFromSeed(KemAlgorithm algorithm, ByteView seed) {
  const HybridGroup& g = GroupFor(algorithm);
  if (seed.size() != 32) {
    return InvalidArgument(std::string(KemAlgorithmName(algorithm)) + " seed (private key) must be 32 bytes");
  }
  SecretBytes expanded(kMlKemSeed + g.scalar);
  QSAPI_RETURN_IF_ERROR(Digest(Shake256(), {seed}, expanded.span()));
  QSAPI_ASSIGN_OR_RETURN(KemPrivateKey mlkem, KemPrivateKey::FromSeed(g.mlkem, expanded.view().first(kMlKemSeed)));
  Result<EvpPkeyPtr> dk_t = g.private_from_scalar(expanded.view().subspan(kMlKemSeed, g.scalar));
  if (!dk_t) {
    return InvalidArgument(std::string("this ") + std::string(KemAlgorithmName(algorithm)) +
                           " seed yields no valid scalar (probability < 2^-192); use another seed");
  }
  QSAPI_ASSIGN_OR_RETURN(Bytes ek_t, g.element_of(dk_t->get()));
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr ek_t_key, g.public_from_element(ek_t));
  Bytes pk(mlkem.public_key().bytes().begin(), mlkem.public_key().bytes().end());
  pk.insert(pk.end(), ek_t.begin(), ek_t.end());
  auto public_impl = std::make_shared<HybridPublic>(g, mlkem.public_key(), std::move(ek_t_key), std::move(pk));
  auto private_impl = std::make_shared<HybridPrivate>(g, SecretBytes::CopyFrom(seed), std::move(mlkem),
                                                      std::move(dk_t).value(), std::move(ek_t));
  return KemKeyPair{std::move(private_impl), std::move(public_impl)};
}

Result<std::shared_ptr<const KemPublicImpl>> HybridPublicFromBytes(KemAlgorithm algorithm, ByteView bytes) {
  const HybridGroup& g = GroupFor(algorithm);
  const std::size_t expected = g.mlkem_public_key + g.element;
  if (bytes.size() != expected) {
    return InvalidArgument(std::string(KemAlgorithmName(algorithm)) + " public key must be " +
                           std::to_string(expected) + " bytes, got " + std::to_string(bytes.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(KemPublicKey mlkem, KemPublicKey::FromBytes(g.mlkem, bytes.first(g.mlkem_public_key)));
  Result<EvpPkeyPtr> ek_t = g.public_from_element(bytes.subspan(g.mlkem_public_key));
  if (!ek_t)
    return InvalidArgument(std::string(KemAlgorithmName(algorithm)) + " public key: " + ek_t.error().message());
  return std::shared_ptr<const KemPublicImpl>(
      std::make_shared<HybridPublic>(g, std::move(mlkem), std::move(ek_t).value(), Bytes(bytes.begin(), bytes.end())));
}

}  // namespace qsapi::crypto::internal
