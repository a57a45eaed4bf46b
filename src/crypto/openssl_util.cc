#include "crypto/internal/openssl_util.h"

#include <cstdio>

#include <openssl/err.h>

namespace qsapi::crypto::internal {
namespace {

template <typename T, typename Fetch>
const T* FetchOnce(Fetch fetch, const char* name) {
  const T* p = fetch(nullptr, name, nullptr);
  if (p == nullptr) {
    // The build links OpenSSL 3.5 statically with its default provider: a missing algorithm is a
    // broken build, not an input error.
    std::fprintf(stderr, "qsapi: OpenSSL has no %s; the build is broken\n", name);
    std::abort();
  }
  return p;
}

}  // namespace

std::string OpenSslReasonText(unsigned long code) {  // NOLINT(google-runtime-int): OpenSSL's type
  if (code == 0) return {};
  const char* reason = ERR_reason_error_string(code);
  if (reason != nullptr) return reason;
  return "error " + std::to_string(ERR_GET_REASON(code));
}

std::string TakeOpenSslReason(OpenSslQueueEnd end) {
  std::string reason = OpenSslReasonText(end == OpenSslQueueEnd::kOldest ? ERR_peek_error() : ERR_peek_last_error());
  ERR_clear_error();
  return reason;
}

std::string OpenSslReason() {
  std::string reason = TakeOpenSslReason();
  return reason.empty() ? reason : ": " + reason;
}

Error OpenSslError(std::string_view what) { return Internal(std::string(what) + OpenSslReason()); }

void ClearOpenSslErrors() noexcept { ERR_clear_error(); }

const EVP_CIPHER* Aes256Gcm() {
  static const auto* c = FetchOnce<EVP_CIPHER>(EVP_CIPHER_fetch, "AES-256-GCM");
  return c;
}
const EVP_MD* Sha3_256() {
  static const auto* md = FetchOnce<EVP_MD>(EVP_MD_fetch, "SHA3-256");
  return md;
}
const EVP_MD* Sha256() {
  static const auto* md = FetchOnce<EVP_MD>(EVP_MD_fetch, "SHA2-256");
  return md;
}
const EVP_MD* Sha384() {
  static const auto* md = FetchOnce<EVP_MD>(EVP_MD_fetch, "SHA2-384");
  return md;
}
const EVP_MD* Sha512() {
  static const auto* md = FetchOnce<EVP_MD>(EVP_MD_fetch, "SHA2-512");
  return md;
}
const EVP_MD* Shake256() {
  static const auto* md = FetchOnce<EVP_MD>(EVP_MD_fetch, "SHAKE256");
  return md;
}

Result<EvpPkeyPtr> PkeyFromRaw(const char* name, const char* param, ByteView bytes, int selection) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, name, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return OpenSslError(std::string("cannot import ") + name);
  OSSL_PARAM params[] = {
      // OpenSSL takes a non-const pointer but does not write through it.
      OSSL_PARAM_construct_octet_string(param, const_cast<std::uint8_t*>(bytes.data()), bytes.size()),  // NOLINT
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, selection, params) != 1 || raw == nullptr) {
    ClearOpenSslErrors();
    return InvalidArgument(std::string("not a valid ") + name + " key");
  }
  return EvpPkeyPtr(raw);
}

Result<EvpPkeyPtr> PkeyFromSeed(const char* name, const char* param, ByteView seed) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, name, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1)
    return OpenSslError(std::string("cannot create a ") + name + " key");
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(param, const_cast<std::uint8_t*>(seed.data()), seed.size()),  // NOLINT
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_CTX_set_params(ctx.get(), params) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1 || raw == nullptr) {
    return OpenSslError(std::string("cannot derive a ") + name + " key from its seed");
  }
  return EvpPkeyPtr(raw);
}

Result<const EVP_PKEY*> LazyPublicPkey::Get(ByteView bytes) const {
  std::call_once(once_, [&] {
    if (pkey_) return;
    Result<EvpPkeyPtr> imported = PkeyFromRaw(name_, OSSL_PKEY_PARAM_PUB_KEY, bytes, EVP_PKEY_PUBLIC_KEY);
    if (imported.ok()) pkey_ = std::move(imported).value();
  });
  if (!pkey_) return Internal(std::string("cannot import our own ") + name_ + " public key");
  return pkey_.get();
}

Status GetOctets(const EVP_PKEY* pkey, const char* param, std::span<std::uint8_t> out) {
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(pkey, param, out.data(), out.size(), &len) != 1 || len != out.size()) {
    SecureZero(out.data(), out.size());
    return OpenSslError(std::string("cannot read key parameter ") + param);
  }
  return OkStatus();
}

Result<Bytes> GetPublicBytes(const EVP_PKEY* pkey) {
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len) != 1) {
    return OpenSslError("cannot read a public key");
  }
  Bytes out(len);
  QSAPI_RETURN_IF_ERROR(GetOctets(pkey, OSSL_PKEY_PARAM_PUB_KEY, out));
  return out;
}

Status Digest(const EVP_MD* md, std::initializer_list<ByteView> parts, std::span<std::uint8_t> out) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1) return OpenSslError("digest init failed");
  for (ByteView part : parts) {
    if (!part.empty() && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) != 1) {
      return OpenSslError("digest update failed");
    }
  }
  const bool xof = (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF) != 0;
  const int ok = xof ? EVP_DigestFinalXOF(ctx.get(), out.data(), out.size())
                     : (static_cast<std::size_t>(EVP_MD_get_size(md)) == out.size()
                            ? EVP_DigestFinal_ex(ctx.get(), out.data(), nullptr)
                            : 0);
  if (ok != 1) {
    SecureZero(out.data(), out.size());
    return OpenSslError("digest final failed (wrong output size?)");
  }
  return OkStatus();
}

}  // namespace qsapi::crypto::internal
