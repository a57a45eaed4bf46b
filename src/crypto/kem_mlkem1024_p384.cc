// MLKEM1024-P384 (draft-ietf-hpke-pq, HPKE KEM id 0x0051; the QSF construction of
// draft-irtf-cfrg-hybrid-kems with the parameters of draft-irtf-cfrg-concrete-hybrid-kems).
// Composed from OpenSSL's ML-KEM-1024, P-384 ECDH, SHAKE256 and SHA3-256:
//   expand:  SHAKE256(seed, 64 + 48) = ML-KEM-1024 seed (d || z) || P-384 scalar candidate
//            (RandomScalar: the 48 bytes as a big-endian integer, rejected if 0 or >= n)
//   pk = ek_PQ (1568) || ek_T (97, uncompressed point)     ct = ct_PQ (1568) || ct_T (97)
//   ss = SHA3-256(ss_PQ || ss_T || ct_T || ek_T || "MLKEM1024-P384"), ss_T = x-coordinate (48 bytes)
#include <array>
#include <string_view>

#include "crypto/internal/ecc.h"
#include "crypto/internal/kem_impl.h"
#include "crypto/internal/openssl_util.h"
#include "qsapi/crypto/random.h"

namespace qsapi::crypto::internal {
namespace {

constexpr std::size_t kMlKemPk = 1568;
constexpr std::size_t kMlKemCt = 1568;
constexpr std::string_view kLabel = "MLKEM1024-P384";

Result<SharedSecret> Combine(ByteView ss_pq, ByteView ss_t, ByteView ct_t, ByteView ek_t) {
  const ByteView label(reinterpret_cast<const std::uint8_t*>(kLabel.data()), kLabel.size());  // NOLINT
  SecretBytes ss(32);
  QSAPI_RETURN_IF_ERROR(Digest(Sha3_256(), {ss_pq, ss_t, ct_t, ek_t, label}, ss.span()));
  return SharedSecret(std::move(ss));
}

class MlKem1024P384Public final : public KemPublicImpl {
 public:
  MlKem1024P384Public(KemPublicKey mlkem, EvpPkeyPtr ek_t, Bytes bytes)
      : mlkem_(std::move(mlkem)), ek_t_(std::move(ek_t)), bytes_(std::move(bytes)) {}

  KemAlgorithm algorithm() const noexcept override { return KemAlgorithm::kMlKem1024P384; }
  ByteView bytes() const noexcept override { return bytes_; }

  Result<KemEncapsulation> Encapsulate(ByteView eseed) const override {
    // eseed = m (32, ML-KEM encapsulation randomness) || ephemeral P-384 scalar (48).
    SecretBytes sk_e;
    ByteView m;
    if (eseed.empty()) {
      // RandomScalar with one 48-byte candidate; a rejection (probability < 2^-192) draws again.
      for (int attempt = 0; attempt < 4; ++attempt) {
        QSAPI_ASSIGN_OR_RETURN(sk_e, RandomSecret(kP384ScalarSize));
        if (P384PrivateFromScalar(sk_e.view()).ok()) break;
      }
    } else {
      m = eseed.first(32);
      sk_e = SecretBytes::CopyFrom(eseed.subspan(32, kP384ScalarSize));
    }
    QSAPI_ASSIGN_OR_RETURN(KemEncapsulation enc_pq, mlkem_.impl().Encapsulate(m));
    QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr ephemeral, P384PrivateFromScalar(sk_e.view()));
    QSAPI_ASSIGN_OR_RETURN(Bytes ct_t, P384PublicPoint(ephemeral.get()));
    QSAPI_ASSIGN_OR_RETURN(SecretBytes ss_t, P384Ecdh(ephemeral.get(), ek_t_.get()));
    const ByteView ek_t = ByteView(bytes_).subspan(kMlKemPk);
    QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, Combine(enc_pq.shared_secret.view(), ss_t.view(), ct_t, ek_t));
    Bytes ct = std::move(enc_pq.ciphertext).Release();
    ct.insert(ct.end(), ct_t.begin(), ct_t.end());
    return KemEncapsulation{KemCiphertext(std::move(ct)), std::move(ss)};
  }

 private:
  KemPublicKey mlkem_;
  EvpPkeyPtr ek_t_;
  Bytes bytes_;
};

class MlKem1024P384Private final : public KemPrivateImpl {
 public:
  MlKem1024P384Private(SecretBytes seed, KemPrivateKey mlkem, EvpPkeyPtr dk_t, Bytes ek_t)
      : seed_(std::move(seed)), mlkem_(std::move(mlkem)), dk_t_(std::move(dk_t)), ek_t_(std::move(ek_t)) {}

  KemAlgorithm algorithm() const noexcept override { return KemAlgorithm::kMlKem1024P384; }

  Result<SharedSecret> Decapsulate(ByteView ciphertext) const override {
    if (ciphertext.size() != kMlKemCt + kP384PointSize) return AuthenticationFailed();
    const ByteView ct_pq = ciphertext.first(kMlKemCt);
    const ByteView ct_t = ciphertext.subspan(kMlKemCt);
    Result<SharedSecret> ss_pq = mlkem_.Decapsulate(ct_pq);
    Result<EvpPkeyPtr> peer = P384PublicFromPoint(ct_t);  // not on the curve: fails
    if (!ss_pq || !peer) return AuthenticationFailed();
    Result<SecretBytes> ss_t = P384Ecdh(dk_t_.get(), peer->get());
    if (!ss_t) return AuthenticationFailed();
    Result<SharedSecret> ss = Combine(ss_pq->view(), ss_t->view(), ct_t, ek_t_);
    if (!ss) return AuthenticationFailed();
    return ss;
  }

  const SecretBytes* seed() const noexcept override { return &seed_; }
  Result<SecretBytes> ExportExpanded() const override {
    return Unimplemented("MLKEM1024-P384 private keys exist only as seeds");
  }

 private:
  SecretBytes seed_;
  KemPrivateKey mlkem_;
  EvpPkeyPtr dk_t_;
  Bytes ek_t_;
};

}  // namespace

Result<KemKeyPair> MlKem1024P384FromSeed(ByteView seed) {
  if (seed.size() != 32) return InvalidArgument("MLKEM1024-P384 seed (private key) must be 32 bytes");
  SecretBytes expanded(64 + kP384ScalarSize);
  QSAPI_RETURN_IF_ERROR(Digest(Shake256(), {seed}, expanded.span()));
  QSAPI_ASSIGN_OR_RETURN(KemPrivateKey mlkem,
                         KemPrivateKey::FromSeed(KemAlgorithm::kMlKem1024, expanded.view().first(64)));
  // RandomScalar (draft-irtf-cfrg-concrete-hybrid-kems): the 48-byte candidate is the scalar unless
  // it is 0 or >= n, which happens with probability < 2^-192 and then makes the seed unusable.
  Result<EvpPkeyPtr> dk_t = P384PrivateFromScalar(expanded.view().subspan(64, kP384ScalarSize));
  if (!dk_t) return InvalidArgument("this MLKEM1024-P384 seed yields no valid P-384 scalar; use another seed");
  QSAPI_ASSIGN_OR_RETURN(Bytes ek_t, P384PublicPoint(dk_t->get()));
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr ek_t_key, P384PublicFromPoint(ek_t));
  Bytes pk(mlkem.public_key().bytes().begin(), mlkem.public_key().bytes().end());
  pk.insert(pk.end(), ek_t.begin(), ek_t.end());
  auto public_impl = std::make_shared<MlKem1024P384Public>(mlkem.public_key(), std::move(ek_t_key), std::move(pk));
  auto private_impl = std::make_shared<MlKem1024P384Private>(SecretBytes::CopyFrom(seed), std::move(mlkem),
                                                             std::move(dk_t).value(), std::move(ek_t));
  return KemKeyPair{std::move(private_impl), std::move(public_impl)};
}

Result<std::shared_ptr<const KemPublicImpl>> MlKem1024P384PublicFromBytes(ByteView bytes) {
  if (bytes.size() != kMlKemPk + kP384PointSize) {
    return InvalidArgument("MLKEM1024-P384 public key must be 1665 bytes, got " + std::to_string(bytes.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(KemPublicKey mlkem, KemPublicKey::FromBytes(KemAlgorithm::kMlKem1024, bytes.first(kMlKemPk)));
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr ek_t, P384PublicFromPoint(bytes.subspan(kMlKemPk)));
  return std::shared_ptr<const KemPublicImpl>(
      std::make_shared<MlKem1024P384Public>(std::move(mlkem), std::move(ek_t), Bytes(bytes.begin(), bytes.end())));
}

}  // namespace qsapi::crypto::internal
