// ML-DSA (FIPS 204) and SLH-DSA (FIPS 205) through OpenSSL 3.5's EVP_PKEY_sign_message_* interface.
#include <array>
#include <string_view>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "crypto/internal/openssl_util.h"
#include "crypto/internal/signature_impl.h"

namespace qsapi::crypto::internal {
namespace {

struct PqcAlgorithm {
  SignatureAlgorithm algorithm;
  const char* name;  // OpenSSL's key and signature name
  bool ml_dsa;
};

constexpr std::array<PqcAlgorithm, 15> kPqcAlgorithms = {{
    {SignatureAlgorithm::kMlDsa44, "ML-DSA-44", true},
    {SignatureAlgorithm::kMlDsa65, "ML-DSA-65", true},
    {SignatureAlgorithm::kMlDsa87, "ML-DSA-87", true},
    {SignatureAlgorithm::kSlhDsaSha2_128s, "SLH-DSA-SHA2-128s", false},
    {SignatureAlgorithm::kSlhDsaSha2_128f, "SLH-DSA-SHA2-128f", false},
    {SignatureAlgorithm::kSlhDsaSha2_192s, "SLH-DSA-SHA2-192s", false},
    {SignatureAlgorithm::kSlhDsaSha2_192f, "SLH-DSA-SHA2-192f", false},
    {SignatureAlgorithm::kSlhDsaSha2_256s, "SLH-DSA-SHA2-256s", false},
    {SignatureAlgorithm::kSlhDsaSha2_256f, "SLH-DSA-SHA2-256f", false},
    {SignatureAlgorithm::kSlhDsaShake_128s, "SLH-DSA-SHAKE-128s", false},
    {SignatureAlgorithm::kSlhDsaShake_128f, "SLH-DSA-SHAKE-128f", false},
    {SignatureAlgorithm::kSlhDsaShake_192s, "SLH-DSA-SHAKE-192s", false},
    {SignatureAlgorithm::kSlhDsaShake_192f, "SLH-DSA-SHAKE-192f", false},
    {SignatureAlgorithm::kSlhDsaShake_256s, "SLH-DSA-SHAKE-256s", false},
    {SignatureAlgorithm::kSlhDsaShake_256f, "SLH-DSA-SHAKE-256f", false},
}};

const PqcAlgorithm* Find(SignatureAlgorithm algorithm) {
  for (const auto& a : kPqcAlgorithms) {
    if (a.algorithm == algorithm) return &a;
  }
  return nullptr;
}

// FetchedSignature returns the EVP_SIGNATURE for `a`, fetched once per process.
EVP_SIGNATURE* FetchedSignature(const PqcAlgorithm& a) {
  static const auto* table = [] {
    auto* t = new std::array<EVP_SIGNATURE*, kPqcAlgorithms.size()>();
    for (std::size_t i = 0; i < kPqcAlgorithms.size(); ++i) {
      (*t)[i] = EVP_SIGNATURE_fetch(nullptr, kPqcAlgorithms[i].name, nullptr);
      if ((*t)[i] == nullptr) std::abort();  // a broken build: OpenSSL 3.5 has all of them
    }
    return t;
  }();
  return (*table)[static_cast<std::size_t>(&a - kPqcAlgorithms.data())];
}

// Params builds the OSSL_PARAM list for one sign or verify call.
class Params {
 public:
  Params(ByteView context, const SigningMode* mode, bool mu) {
    // An empty context is the default; OpenSSL refuses a null pointer even with length 0.
    if (!context.empty()) {
      list_.push_back(OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_CONTEXT_STRING,
                                                        const_cast<std::uint8_t*>(context.data()),  // NOLINT
                                                        context.size()));
    }
    if (mode != nullptr && mode->deterministic) {
      list_.push_back(OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_DETERMINISTIC, &one_));
    }
    if (mode != nullptr && !mode->rnd.empty()) {
      list_.push_back(OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_TEST_ENTROPY,
                                                        const_cast<std::uint8_t*>(mode->rnd.data()),  // NOLINT
                                                        mode->rnd.size()));
    }
    if (mu) list_.push_back(OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_MU, &one_));
    list_.push_back(OSSL_PARAM_construct_end());
  }
  OSSL_PARAM* get() { return list_.data(); }

 private:
  int one_ = 1;
  std::vector<OSSL_PARAM> list_;
};

class PqcVerifying final : public VerifyingImpl {
 public:
  PqcVerifying(const PqcAlgorithm& a, EvpPkeyPtr pkey, Bytes bytes)
      : a_(a), pkey_(a.name, std::move(pkey)), bytes_(std::move(bytes)) {}
  SignatureAlgorithm algorithm() const noexcept override { return a_.algorithm; }
  ByteView bytes() const noexcept override { return bytes_; }

  Status Verify(ByteView message, ByteView signature, ByteView context) const override {
    if (context.size() > kMaxContextSize) return InvalidArgument("context string longer than 255 bytes");
    if (signature.size() != GetSignatureSizes(a_.algorithm).signature) return AuthenticationFailed();
    Result<const EVP_PKEY*> pkey = pkey_.Get(bytes_);
    if (!pkey) return pkey.error();
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, const_cast<EVP_PKEY*>(*pkey), nullptr));  // NOLINT
    Params params(context, nullptr, false);
    if (!ctx || EVP_PKEY_verify_message_init(ctx.get(), FetchedSignature(a_), params.get()) != 1 ||
        EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), NonNull(message), message.size()) != 1) {
      ClearOpenSslErrors();
      return AuthenticationFailed();
    }
    return OkStatus();
  }

 private:
  const PqcAlgorithm& a_;
  LazyPublicPkey pkey_;
  Bytes bytes_;
};

class PqcSigning final : public SigningImpl {
 public:
  PqcSigning(const PqcAlgorithm& a, EvpPkeyPtr pkey, SecretBytes seed)
      : a_(a), pkey_(std::move(pkey)), seed_(std::move(seed)) {}
  SignatureAlgorithm algorithm() const noexcept override { return a_.algorithm; }
  const SecretBytes& seed() const noexcept override { return seed_; }

  Result<Signature> Sign(ByteView message, ByteView context, const SigningMode& mode) const override {
    return SignImpl(message, context, mode, false);
  }

  Result<Signature> SignImpl(ByteView message, ByteView context, const SigningMode& mode, bool mu) const {
    if (context.size() > kMaxContextSize) return InvalidArgument("context string longer than 255 bytes");
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    Params params(context, &mode, mu);
    Bytes sig(GetSignatureSizes(a_.algorithm).signature);
    std::size_t len = sig.size();
    if (!ctx || EVP_PKEY_sign_message_init(ctx.get(), FetchedSignature(a_), params.get()) != 1 ||
        EVP_PKEY_sign(ctx.get(), sig.data(), &len, NonNull(message), message.size()) != 1 || len != sig.size()) {
      return OpenSslError(std::string(a_.name) + " signing failed");
    }
    return Signature(std::move(sig));
  }

  bool is_ml_dsa() const noexcept { return a_.ml_dsa; }

 private:
  const PqcAlgorithm& a_;
  EvpPkeyPtr pkey_;
  SecretBytes seed_;
};

}  // namespace

Result<SigningKeyPair> PqcSigningFromSeed(SignatureAlgorithm algorithm, ByteView seed) {
  const PqcAlgorithm* a = Find(algorithm);
  if (a == nullptr) return InvalidArgument("not an ML-DSA or SLH-DSA algorithm");
  const SignatureSizes sizes = GetSignatureSizes(algorithm);
  if (seed.size() != sizes.seed) {
    return InvalidArgument(std::string(a->name) + " seed must be " + std::to_string(sizes.seed) + " bytes, got " +
                           std::to_string(seed.size()));
  }
  // ML-DSA's xi (FIPS 204 Algorithm 6) and SLH-DSA's SK.seed || SK.prf || PK.seed (FIPS 205
  // Algorithm 18) both go in through the keygen parameter "seed".
  static_assert(std::string_view(OSSL_PKEY_PARAM_ML_DSA_SEED) == OSSL_PKEY_PARAM_SLH_DSA_SEED);
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, PkeyFromSeed(a->name, OSSL_PKEY_PARAM_ML_DSA_SEED, seed));
  QSAPI_ASSIGN_OR_RETURN(Bytes pub, GetPublicBytes(pkey.get()));
  // The verifying half imports its own public-only EVP_PKEY on first use (LazyPublicPkey).
  auto verifying = std::make_shared<PqcVerifying>(*a, nullptr, std::move(pub));
  auto signing = std::make_shared<PqcSigning>(*a, std::move(pkey), SecretBytes::CopyFrom(seed));
  return SigningKeyPair{std::move(signing), std::move(verifying)};
}

Result<std::shared_ptr<const VerifyingImpl>> PqcVerifyingFromBytes(SignatureAlgorithm algorithm, ByteView bytes) {
  const PqcAlgorithm* a = Find(algorithm);
  if (a == nullptr) return InvalidArgument("not an ML-DSA or SLH-DSA algorithm");
  const SignatureSizes sizes = GetSignatureSizes(algorithm);
  if (bytes.size() != sizes.public_key) {
    return InvalidArgument(std::string(a->name) + " public key must be " + std::to_string(sizes.public_key) +
                           " bytes, got " + std::to_string(bytes.size()));
  }
  QSAPI_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, PkeyFromRaw(a->name, OSSL_PKEY_PARAM_PUB_KEY, bytes, EVP_PKEY_PUBLIC_KEY));
  return std::shared_ptr<const VerifyingImpl>(
      std::make_shared<PqcVerifying>(*a, std::move(pkey), Bytes(bytes.begin(), bytes.end())));
}

Result<Signature> SignMuForTesting(const SigningKey& key, ByteView mu, const SigningMode& mode) {
  const auto* pqc = dynamic_cast<const PqcSigning*>(&key.impl());
  if (pqc == nullptr || !pqc->is_ml_dsa()) return InvalidArgument("external mu needs an ML-DSA key");
  return pqc->SignImpl(mu, {}, mode, true);
}

}  // namespace qsapi::crypto::internal
