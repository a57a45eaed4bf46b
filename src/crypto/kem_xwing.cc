// X-Wing (draft-connolly-cfrg-xwing-kem): ML-KEM-768 + X25519 with a SHA3-256 combiner.
// Composed from OpenSSL's ML-KEM-768, X25519, SHAKE256 and SHA3-256; nothing is implemented here
// but the draft's byte layout:
//   expand:  SHAKE256(sk, 96) = ML-KEM-768 seed (d || z, 64 bytes) || X25519 private key (32 bytes)
//   pk = pk_M (1184) || pk_X (32)          ct = ct_M (1088) || ct_X (32)
//   ss = SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel), XWingLabel = 5c2e2f2f5e5c ("\.//^\")
#include <array>

#include "crypto/internal/ecc.h"
#include "crypto/internal/kem_impl.h"
#include "crypto/internal/openssl_util.h"
#include "qsapi/crypto/random.h"

namespace qsapi::crypto::internal {
namespace {

constexpr std::size_t kMlKemPk = 1184;
constexpr std::size_t kMlKemCt = 1088;
constexpr std::array<std::uint8_t, 6> kXWingLabel = {0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c};

Result<SharedSecret> Combine(ByteView ss_m, ByteView ss_x, ByteView ct_x, ByteView pk_x) {
  SecretBytes ss(32);
  QSAPI_RETURN_IF_ERROR(Digest(Sha3_256(), {ss_m, ss_x, ct_x, pk_x, kXWingLabel}, ss.span()));
  return SharedSecret(std::move(ss));
}

class XWingPublic final : public KemPublicImpl {
 public:
  XWingPublic(KemPublicKey mlkem, Bytes bytes) : mlkem_(std::move(mlkem)), bytes_(std::move(bytes)) {}

  KemAlgorithm algorithm() const noexcept override { return KemAlgorithm::kXWing; }
  ByteView bytes() const noexcept override { return bytes_; }
  ByteView pk_x() const noexcept { return ByteView(bytes_).subspan(kMlKemPk); }

  Result<KemEncapsulation> Encapsulate(ByteView eseed) const override {
    // eseed = m (32, ML-KEM encapsulation randomness) || ek_X (32, ephemeral X25519 key).
    SecretBytes ek_x;
    ByteView m;
    if (eseed.empty()) {
      QSAPI_ASSIGN_OR_RETURN(ek_x, RandomSecret(kX25519KeySize));
    } else {
      m = eseed.first(32);
      ek_x = SecretBytes::CopyFrom(eseed.subspan(32, 32));
    }
    QSAPI_ASSIGN_OR_RETURN(KemEncapsulation enc_m, mlkem_.impl().Encapsulate(m));
    QSAPI_ASSIGN_OR_RETURN(auto ct_x, X25519PublicFromPrivate(ek_x.view()));
    Result<SecretBytes> ss_x = X25519(ek_x.view(), pk_x());
    if (!ss_x) return ss_x.error();  // a low-order pk_X: the public key is unusable
    QSAPI_ASSIGN_OR_RETURN(SharedSecret ss, Combine(enc_m.shared_secret.view(), ss_x->view(), ct_x, pk_x()));
    Bytes ct(enc_m.ciphertext.view().begin(), enc_m.ciphertext.view().end());
    ct.insert(ct.end(), ct_x.begin(), ct_x.end());
    return KemEncapsulation{KemCiphertext(std::move(ct)), std::move(ss)};
  }

 private:
  KemPublicKey mlkem_;
  Bytes bytes_;
};

class XWingPrivate final : public KemPrivateImpl {
 public:
  XWingPrivate(SecretBytes seed, KemPrivateKey mlkem, SecretBytes sk_x, Bytes pk_x)
      : seed_(std::move(seed)), mlkem_(std::move(mlkem)), sk_x_(std::move(sk_x)), pk_x_(std::move(pk_x)) {}

  KemAlgorithm algorithm() const noexcept override { return KemAlgorithm::kXWing; }

  Result<SharedSecret> Decapsulate(ByteView ciphertext) const override {
    if (ciphertext.size() != kMlKemCt + kX25519KeySize) return AuthenticationFailed();
    const ByteView ct_m = ciphertext.first(kMlKemCt);
    const ByteView ct_x = ciphertext.subspan(kMlKemCt);
    Result<SharedSecret> ss_m = mlkem_.Decapsulate(ct_m);
    Result<SecretBytes> ss_x = X25519(sk_x_.view(), ct_x);
    if (!ss_m || !ss_x) return AuthenticationFailed();  // ss_x fails only for a low-order ct_X
    Result<SharedSecret> ss = Combine(ss_m->view(), ss_x->view(), ct_x, pk_x_);
    if (!ss) return AuthenticationFailed();
    return ss;
  }

  const SecretBytes* seed() const noexcept override { return &seed_; }
  Result<SecretBytes> ExportExpanded() const override {
    return Unimplemented("X-Wing private keys exist only as seeds");
  }

 private:
  SecretBytes seed_;
  KemPrivateKey mlkem_;
  SecretBytes sk_x_;
  Bytes pk_x_;
};

}  // namespace

Result<KemKeyPair> XWingFromSeed(ByteView seed) {
  if (seed.size() != 32) return InvalidArgument("X-Wing seed (private key) must be 32 bytes");
  SecretBytes expanded(96);
  QSAPI_RETURN_IF_ERROR(Digest(Shake256(), {seed}, expanded.span()));
  QSAPI_ASSIGN_OR_RETURN(KemPrivateKey mlkem,
                         KemPrivateKey::FromSeed(KemAlgorithm::kMlKem768, expanded.view().first(64)));
  SecretBytes sk_x = SecretBytes::CopyFrom(expanded.view().subspan(64, 32));
  QSAPI_ASSIGN_OR_RETURN(auto pk_x_arr, X25519PublicFromPrivate(sk_x.view()));
  Bytes pk_x(pk_x_arr.begin(), pk_x_arr.end());
  Bytes pk(mlkem.public_key().bytes().begin(), mlkem.public_key().bytes().end());
  pk.insert(pk.end(), pk_x.begin(), pk_x.end());
  auto public_impl = std::make_shared<XWingPublic>(mlkem.public_key(), std::move(pk));
  auto private_impl =
      std::make_shared<XWingPrivate>(SecretBytes::CopyFrom(seed), std::move(mlkem), std::move(sk_x), std::move(pk_x));
  return KemKeyPair{std::move(private_impl), std::move(public_impl)};
}

Result<std::shared_ptr<const KemPublicImpl>> XWingPublicFromBytes(ByteView bytes) {
  if (bytes.size() != kMlKemPk + kX25519KeySize) {
    return InvalidArgument("X-Wing public key must be 1216 bytes, got " + std::to_string(bytes.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(KemPublicKey mlkem, KemPublicKey::FromBytes(KemAlgorithm::kMlKem768, bytes.first(kMlKemPk)));
  return std::shared_ptr<const KemPublicImpl>(
      std::make_shared<XWingPublic>(std::move(mlkem), Bytes(bytes.begin(), bytes.end())));
}

}  // namespace qsapi::crypto::internal
