#include "qsapi/crypto/aead.h"

#include <climits>
#include <openssl/evp.h>
#include <sodium.h>

#include "common/internal/constant_time.h"
#include "crypto/internal/openssl_util.h"
#include "crypto/internal/sodium_init.h"
#include "qsapi/crypto/random.h"

namespace qsapi::crypto {
namespace internal {

class AeadImpl {
 public:
  virtual ~AeadImpl() = default;
  [[nodiscard]] virtual AeadAlgorithm algorithm() const noexcept = 0;
  // Seal / Open: the nonce is already length-checked; out has the exact size.
  [[nodiscard]] virtual bool Seal(ByteView nonce, ByteView pt, ByteView aad, std::span<std::uint8_t> out) const = 0;
  [[nodiscard]] virtual bool Open(ByteView nonce, ByteView ct, ByteView aad, std::span<std::uint8_t> out) const = 0;
};

namespace {

constexpr std::size_t kTagSize = 16;

bool FitsInt(std::size_t n) { return n <= static_cast<std::size_t>(INT_MAX); }

// AES-256-GCM through OpenSSL. The key schedule is computed once, in a template context that
// every call copies (EVP_CIPHER_CTX_copy), so that concurrent calls share nothing mutable.
class Aes256GcmImpl final : public AeadImpl {
 public:
  static Result<std::shared_ptr<const AeadImpl>> Create(ByteView key) {
    EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), key.data(), nullptr, nullptr) != 1) {
      return OpenSslError("AES-256-GCM key setup");
    }
    return std::shared_ptr<const AeadImpl>(std::make_shared<Aes256GcmImpl>(std::move(ctx)));
  }
  explicit Aes256GcmImpl(EvpCipherCtxPtr ctx) : template_(std::move(ctx)) {}

  AeadAlgorithm algorithm() const noexcept override { return AeadAlgorithm::kAes256Gcm; }

  bool Seal(ByteView nonce, ByteView pt, ByteView aad, std::span<std::uint8_t> out) const override {
    if (!FitsInt(pt.size()) || !FitsInt(aad.size())) return false;
    EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx || EVP_CIPHER_CTX_copy(ctx.get(), template_.get()) != 1 ||
        EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, nonce.data(), nullptr) != 1 ||
        (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) ||
        (!pt.empty() && EVP_EncryptUpdate(ctx.get(), out.data(), &len, pt.data(), static_cast<int>(pt.size())) != 1) ||
        EVP_EncryptFinal_ex(ctx.get(), out.data() + pt.size(), &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, out.data() + pt.size()) != 1) {
      ClearOpenSslErrors();
      return false;
    }
    return true;
  }

  bool Open(ByteView nonce, ByteView ct, ByteView aad, std::span<std::uint8_t> out) const override {
    const std::size_t pt_len = ct.size() - kTagSize;
    if (!FitsInt(pt_len) || !FitsInt(aad.size())) return false;
    EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    // The tag is passed by pointer into `ct`; OpenSSL copies it.
    auto* tag = const_cast<std::uint8_t*>(ct.data() + pt_len);  // NOLINT
    if (!ctx || EVP_CIPHER_CTX_copy(ctx.get(), template_.get()) != 1 ||
        EVP_DecryptInit_ex2(ctx.get(), nullptr, nullptr, nonce.data(), nullptr) != 1 ||
        (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) ||
        (pt_len != 0 && EVP_DecryptUpdate(ctx.get(), out.data(), &len, ct.data(), static_cast<int>(pt_len)) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), out.data() + pt_len, &len) != 1) {
      ClearOpenSslErrors();
      return false;
    }
    return true;
  }

 private:
  EvpCipherCtxPtr template_;
};

// XChaCha20-Poly1305 and ChaCha20-Poly1305 (IETF) through libsodium's detached API.
class SodiumChaChaImpl final : public AeadImpl {
 public:
  SodiumChaChaImpl(AeadAlgorithm algorithm, ByteView key) : algorithm_(algorithm), key_(SecretBytes::CopyFrom(key)) {}
  AeadAlgorithm algorithm() const noexcept override { return algorithm_; }

  bool Seal(ByteView nonce, ByteView pt, ByteView aad, std::span<std::uint8_t> out) const override {
    auto* tag = out.data() + pt.size();
    const auto fn = algorithm_ == AeadAlgorithm::kXChaCha20Poly1305
                        ? crypto_aead_xchacha20poly1305_ietf_encrypt_detached
                        : crypto_aead_chacha20poly1305_ietf_encrypt_detached;
    return fn(out.data(), tag, nullptr, pt.data(), pt.size(), aad.data(), aad.size(), nullptr, nonce.data(),
              key_.data()) == 0;
  }

  bool Open(ByteView nonce, ByteView ct, ByteView aad, std::span<std::uint8_t> out) const override {
    const std::size_t pt_len = ct.size() - kTagSize;
    const auto fn = algorithm_ == AeadAlgorithm::kXChaCha20Poly1305
                        ? crypto_aead_xchacha20poly1305_ietf_decrypt_detached
                        : crypto_aead_chacha20poly1305_ietf_decrypt_detached;
    const int rc = fn(out.data(), nullptr, ct.data(), pt_len, ct.data() + pt_len, aad.data(), aad.size(), nonce.data(),
                      key_.data());
    // The outcome of the tag check is public; libsodium may hand it back computed (not as a
    // constant), so declassify it for the constant-time test before branching on it.
    qsapi::internal::Declassify(&rc, sizeof rc);
    return rc == 0;
  }

 private:
  AeadAlgorithm algorithm_;
  SecretBytes key_;
};

}  // namespace
}  // namespace internal

AeadSizes GetAeadSizes(AeadAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case AeadAlgorithm::kAes256Gcm: return {32, 12, 16};
    case AeadAlgorithm::kXChaCha20Poly1305: return {32, 24, 16};
    case AeadAlgorithm::kChaCha20Poly1305: return {32, 12, 16};
  }
  return {0, 0, 0};
}

std::string_view AeadAlgorithmName(AeadAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case AeadAlgorithm::kAes256Gcm: return "AES-256-GCM";
    case AeadAlgorithm::kXChaCha20Poly1305: return "XChaCha20-Poly1305";
    case AeadAlgorithm::kChaCha20Poly1305: return "ChaCha20-Poly1305";
  }
  return "unknown";
}

Result<AeadAlgorithm> ParseAeadAlgorithm(std::string_view name) {
  for (auto a : {AeadAlgorithm::kAes256Gcm, AeadAlgorithm::kXChaCha20Poly1305, AeadAlgorithm::kChaCha20Poly1305}) {
    if (AeadAlgorithmName(a) == name) return a;
  }
  return InvalidArgument("unknown AEAD algorithm \"" + std::string(name) +
                         "\" (expected AES-256-GCM, XChaCha20-Poly1305 or ChaCha20-Poly1305)");
}

Result<Aead> Aead::New(AeadAlgorithm algorithm, const SymmetricKey& key) {
  const AeadSizes sizes = GetAeadSizes(algorithm);
  if (key.size() != sizes.key) {
    return InvalidArgument(std::string(AeadAlgorithmName(algorithm)) + " key must be 32 bytes, got " +
                           std::to_string(key.size()));
  }
  if (algorithm == AeadAlgorithm::kAes256Gcm) {
    QSAPI_ASSIGN_OR_RETURN(auto impl, internal::Aes256GcmImpl::Create(key.view()));
    return Aead(std::move(impl));
  }
  internal::EnsureSodiumInitialized();
  return Aead(std::make_shared<internal::SodiumChaChaImpl>(algorithm, key.view()));
}

Result<Aead> Aead::Generate(AeadAlgorithm algorithm, SymmetricKey* key_out) {
  QSAPI_ASSIGN_OR_RETURN(SecretBytes raw, RandomSecret(GetAeadSizes(algorithm).key));
  SymmetricKey key(std::move(raw));
  QSAPI_ASSIGN_OR_RETURN(Aead aead, New(algorithm, key));
  if (key_out != nullptr) *key_out = std::move(key);
  return aead;
}

AeadAlgorithm Aead::algorithm() const noexcept { return impl_->algorithm(); }

std::size_t Aead::Overhead() const noexcept {
  const AeadSizes s = GetAeadSizes(algorithm());
  return s.nonce + s.tag;
}

Status Aead::SealWithNonce(ByteView nonce, ByteView plaintext, ByteView associated_data,
                           std::span<std::uint8_t> out) const {
  const AeadSizes s = GetAeadSizes(algorithm());
  if (nonce.size() != s.nonce) {
    return InvalidArgument(std::string(AeadAlgorithmName(algorithm())) + " nonce must be " + std::to_string(s.nonce) +
                           " bytes");
  }
  if (out.size() != plaintext.size() + s.tag) return InvalidArgument("output buffer must be plaintext + 16 bytes");
  if (!impl_->Seal(nonce, plaintext, associated_data, out)) {
    SecureZero(out.data(), out.size());
    return Internal("encryption failed (input larger than 2 GiB?)");
  }
  return OkStatus();
}

Status Aead::OpenWithNonce(ByteView nonce, ByteView ciphertext_and_tag, ByteView associated_data,
                           std::span<std::uint8_t> out) const {
  const AeadSizes s = GetAeadSizes(algorithm());
  if (nonce.size() != s.nonce || ciphertext_and_tag.size() < s.tag || out.size() != ciphertext_and_tag.size() - s.tag) {
    SecureZero(out.data(), out.size());
    return AuthenticationFailed();
  }
  if (!impl_->Open(nonce, ciphertext_and_tag, associated_data, out)) {
    SecureZero(out.data(), out.size());
    return AuthenticationFailed();
  }
  return OkStatus();
}

Result<Bytes> Aead::Encrypt(ByteView plaintext, ByteView associated_data) const {
  const AeadSizes s = GetAeadSizes(algorithm());
  Bytes out(s.nonce + plaintext.size() + s.tag);
  const std::span<std::uint8_t> nonce(out.data(), s.nonce);
  QSAPI_RETURN_IF_ERROR(RandomFill(nonce));
  QSAPI_RETURN_IF_ERROR(SealWithNonce(nonce, plaintext, associated_data, std::span(out).subspan(s.nonce)));
  return out;
}

Result<Bytes> Aead::Decrypt(ByteView ciphertext, ByteView associated_data) const {
  const AeadSizes s = GetAeadSizes(algorithm());
  if (ciphertext.size() < s.nonce + s.tag) return AuthenticationFailed();
  Bytes out(ciphertext.size() - s.nonce - s.tag);
  QSAPI_RETURN_IF_ERROR(OpenWithNonce(ciphertext.first(s.nonce), ciphertext.subspan(s.nonce), associated_data, out));
  return out;
}

Result<SecretBytes> Aead::DecryptSecret(ByteView ciphertext, ByteView associated_data) const {
  const AeadSizes s = GetAeadSizes(algorithm());
  if (ciphertext.size() < s.nonce + s.tag) return AuthenticationFailed();
  SecretBytes out(ciphertext.size() - s.nonce - s.tag);
  QSAPI_RETURN_IF_ERROR(
      OpenWithNonce(ciphertext.first(s.nonce), ciphertext.subspan(s.nonce), associated_data, out.span()));
  return out;
}

}  // namespace qsapi::crypto
