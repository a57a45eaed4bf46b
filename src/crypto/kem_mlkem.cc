// ML-KEM-512/768/1024 (FIPS 203) through OpenSSL 3.5's EVP_PKEY KEM interface.
#include <array>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "crypto/internal/kem_impl.h"
#include "crypto/internal/openssl_util.h"

namespace qsapi::crypto::internal {
namespace {

class MlKemPublic final : public KemPublicImpl {
 public:
  MlKemPublic(KemAlgorithm algorithm, EvpPkeyPtr pkey, Bytes bytes)
      : algorithm_(algorithm), pkey_(MlKemOpenSslName(algorithm), std::move(pkey)), bytes_(std::move(bytes)) {}

  KemAlgorithm algorithm() const noexcept override { return algorithm_; }
  ByteView bytes() const noexcept override { return bytes_; }

  Result<KemEncapsulation> Encapsulate(ByteView eseed) const override {
    const KemSizes sizes = GetKemSizes(algorithm_);
    QSAPI_ASSIGN_OR_RETURN(const EVP_PKEY* pkey, pkey_.Get(bytes_));
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, const_cast<EVP_PKEY*>(pkey), nullptr));  // NOLINT
    if (!ctx) return OpenSslError("ML-KEM encapsulation context");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KEM_PARAM_IKME, const_cast<std::uint8_t*>(eseed.data()),  // NOLINT
                                          eseed.size()),
        OSSL_PARAM_construct_end(),
    };
    // Without eseed, OpenSSL draws m from its DRBG (which the entropy part feeds).
    if (EVP_PKEY_encapsulate_init(ctx.get(), eseed.empty() ? nullptr : params) != 1) {
      return OpenSslError("ML-KEM encapsulation init");
    }
    Bytes ct(sizes.ciphertext);
    SecretBytes ss(sizes.shared_secret);
    std::size_t ct_len = ct.size();
    std::size_t ss_len = ss.size();
    if (EVP_PKEY_encapsulate(ctx.get(), ct.data(), &ct_len, ss.data(), &ss_len) != 1 || ct_len != ct.size() ||
        ss_len != ss.size()) {
      return OpenSslError("ML-KEM encapsulation");
    }
    return KemEncapsulation{KemCiphertext(std::move(ct)), SharedSecret(std::move(ss))};
  }

 private:
  KemAlgorithm algorithm_;
  LazyPublicPkey pkey_;
  Bytes bytes_;
};

class MlKemPrivate final : public KemPrivateImpl {
 public:
  MlKemPrivate(KemAlgorithm algorithm, EvpPkeyPtr pkey, SecretBytes seed)
      : algorithm_(algorithm), pkey_(std::move(pkey)), seed_(std::move(seed)) {}

  KemAlgorithm algorithm() const noexcept override { return algorithm_; }

  Result<SharedSecret> Decapsulate(ByteView ciphertext) const override {
    const KemSizes sizes = GetKemSizes(algorithm_);
    if (ciphertext.size() != sizes.ciphertext) return AuthenticationFailed();
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    SecretBytes ss(sizes.shared_secret);
    std::size_t ss_len = ss.size();
    if (!ctx || EVP_PKEY_decapsulate_init(ctx.get(), nullptr) != 1 ||
        EVP_PKEY_decapsulate(ctx.get(), ss.data(), &ss_len, ciphertext.data(), ciphertext.size()) != 1 ||
        ss_len != ss.size()) {
      ClearOpenSslErrors();
      return AuthenticationFailed();  // `ss` is wiped by its destructor
    }
    return SharedSecret(std::move(ss));
  }

  const SecretBytes* seed() const noexcept override { return seed_.empty() ? nullptr : &seed_; }

  Result<SecretBytes> ExportExpanded() const override {
    SecretBytes out(GetKemSizes(algorithm_).expanded_private_key);
    QSAPI_RETURN_IF_ERROR(GetOctets(pkey_.get(), OSSL_PKEY_PARAM_PRIV_KEY, out.span()));
    return out;
  }

 private:
  KemAlgorithm algorithm_;
  EvpPkeyPtr pkey_;
  SecretBytes seed_;
};

Result<KemKeyPair> PairFromPkey(KemAlgorithm algorithm, EvpPkeyPtr pkey, SecretBytes seed) {
  QSAPI_ASSIGN_OR_RETURN(Bytes pub, GetPublicBytes(pkey.get()));
  // The public half gets its own public-only EVP_PKEY, so that it holds no private material,
  // imported on first use (LazyPublicPkey).
  auto public_impl = std::make_shared<MlKemPublic>(algorithm, nullptr, std::move(pub));
  auto private_impl = std::make_shared<MlKemPrivate>(algorithm, std::move(pkey), std::move(seed));
  return KemKeyPair{std::move(private_impl), std::move(public_impl)};
}

}  // namespace

const char* MlKemOpenSslName(KemAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case KemAlgorithm::kMlKem512: return "ML-KEM-512";
    case KemAlgorithm::kMlKem768:
    case KemAlgorithm::kXWing: return "ML-KEM-768";
    case KemAlgorithm::kMlKem1024:
    case KemAlgorithm::kMlKem1024P384: return "ML-KEM-1024";
  }
  return "ML-KEM-768";
}

Result<KemKeyPair> MlKemFromSeed(KemAlgorithm algorithm, ByteView seed) {
  if (seed.size() != GetKemSizes(algorithm).seed) {
    return InvalidArgument(std::string(KemAlgorithmName(algorithm)) + " seed must be 64 bytes (d || z)");
  }
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, PkeyFromSeed(MlKemOpenSslName(algorithm), OSSL_PKEY_PARAM_ML_KEM_SEED, seed));
  return PairFromPkey(algorithm, std::move(pkey), SecretBytes::CopyFrom(seed));
}

Result<KemKeyPair> MlKemFromExpanded(KemAlgorithm algorithm, ByteView expanded) {
  const KemSizes sizes = GetKemSizes(algorithm);
  if (expanded.size() != sizes.expanded_private_key) {
    return InvalidArgument(std::string(KemAlgorithmName(algorithm)) + " decapsulation key must be " +
                           std::to_string(sizes.expanded_private_key) + " bytes, got " +
                           std::to_string(expanded.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(
      EvpPkeyPtr pkey, PkeyFromRaw(MlKemOpenSslName(algorithm), OSSL_PKEY_PARAM_PRIV_KEY, expanded, EVP_PKEY_KEYPAIR));
  return PairFromPkey(algorithm, std::move(pkey), SecretBytes());
}

Result<std::shared_ptr<const KemPublicImpl>> MlKemPublicFromBytes(KemAlgorithm algorithm, ByteView bytes) {
  const KemSizes sizes = GetKemSizes(algorithm);
  if (bytes.size() != sizes.public_key) {
    return InvalidArgument(std::string(KemAlgorithmName(algorithm)) + " public key must be " +
                           std::to_string(sizes.public_key) + " bytes, got " + std::to_string(bytes.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr pkey,
                         PkeyFromRaw(MlKemOpenSslName(algorithm), OSSL_PKEY_PARAM_PUB_KEY, bytes, EVP_PKEY_PUBLIC_KEY));
  return std::shared_ptr<const KemPublicImpl>(
      std::make_shared<MlKemPublic>(algorithm, std::move(pkey), Bytes(bytes.begin(), bytes.end())));
}

}  // namespace qsapi::crypto::internal
