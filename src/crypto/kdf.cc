#include "qsapi/crypto/kdf.h"

#include <vector>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include "crypto/internal/openssl_util.h"

namespace qsapi::crypto {
namespace internal {
const EVP_MD* MdFor(HashAlgorithm algorithm);
}  // namespace internal

namespace {

using internal::EvpKdfCtxPtr;
using internal::MdFor;

bool IsSha2(HashAlgorithm a) {
  return a == HashAlgorithm::kSha256 || a == HashAlgorithm::kSha384 || a == HashAlgorithm::kSha512;
}

EVP_KDF* HkdfKdf() {
  // Fetched once; EVP_KDF_CTX_new takes a non-const pointer.
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

const char* DigestName(HashAlgorithm a) { return EVP_MD_get0_name(MdFor(a)); }

// RunHkdf runs OpenSSL's HKDF in `mode` (EVP_KDF_HKDF_MODE_EXTRACT_ONLY / _EXPAND_ONLY).
Status RunHkdf(HashAlgorithm a, int mode, ByteView key, ByteView salt, ByteView info, std::span<std::uint8_t> out) {
  EvpKdfCtxPtr ctx(EVP_KDF_CTX_new(HkdfKdf()));
  if (!ctx) return internal::OpenSslError("HKDF context");
  std::vector<OSSL_PARAM> params;
  params.push_back(
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(DigestName(a)), 0));  // NOLINT
  params.push_back(OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode));
  // OpenSSL rejects an empty key; HKDF-Extract with empty IKM is HMAC(salt, "") and is legal,
  // so a zero-length key is passed as a valid pointer with length 0.
  static std::uint8_t empty = 0;
  params.push_back(OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, key.empty() ? &empty : const_cast<std::uint8_t*>(key.data()), key.size()));  // NOLINT
  if (!salt.empty()) {
    params.push_back(OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                       const_cast<std::uint8_t*>(salt.data()),  // NOLINT
                                                       salt.size()));
  }
  if (!info.empty()) {
    params.push_back(OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                       const_cast<std::uint8_t*>(info.data()),  // NOLINT
                                                       info.size()));
  }
  params.push_back(OSSL_PARAM_construct_end());
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params.data()) != 1) {
    SecureZero(out.data(), out.size());
    return internal::OpenSslError("HKDF");
  }
  return OkStatus();
}

}  // namespace

Result<Bytes> Hmac(HashAlgorithm algorithm, ByteView key, ByteView data) {
  Bytes out(HashSize(algorithm));
  std::size_t len = 0;
  static std::uint8_t empty = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, DigestName(algorithm), nullptr, key.empty() ? &empty : key.data(), key.size(),
                data.data(), data.size(), out.data(), out.size(), &len) == nullptr ||
      len != out.size()) {
    return internal::OpenSslError("HMAC");
  }
  return out;
}

Status HmacVerify(HashAlgorithm algorithm, ByteView key, ByteView data, ByteView tag) {
  Result<Bytes> expected = Hmac(algorithm, key, data);
  if (!expected) return expected.error();
  if (!ConstantTimeEqual(*expected, tag)) return AuthenticationFailed();
  return OkStatus();
}

Result<PseudorandomKey> HkdfExtract(HashAlgorithm algorithm, ByteView salt, ByteView ikm) {
  if (!IsSha2(algorithm)) return InvalidArgument("HKDF is defined here for SHA-256, SHA-384 and SHA-512");
  SecretBytes prk(HashSize(algorithm));
  QSAPI_RETURN_IF_ERROR(RunHkdf(algorithm, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, salt, {}, prk.span()));
  return PseudorandomKey(std::move(prk));
}

Result<SecretBytes> HkdfExpand(HashAlgorithm algorithm, const PseudorandomKey& prk, ByteView info, std::size_t length) {
  if (!IsSha2(algorithm)) return InvalidArgument("HKDF is defined here for SHA-256, SHA-384 and SHA-512");
  const std::size_t hash_len = HashSize(algorithm);
  if (length == 0 || length > 255 * hash_len) {
    return InvalidArgument("HKDF-Expand length must be 1.." + std::to_string(255 * hash_len) + " bytes for " +
                           std::string(HashAlgorithmName(algorithm)));
  }
  if (prk.size() < hash_len) return InvalidArgument("HKDF-Expand PRK must be at least HashLen bytes");
  SecretBytes okm(length);
  QSAPI_RETURN_IF_ERROR(RunHkdf(algorithm, EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk.view(), {}, info, okm.span()));
  return okm;
}

Result<SecretBytes> Hkdf(HashAlgorithm algorithm, ByteView salt, ByteView ikm, ByteView info, std::size_t length) {
  if (!IsSha2(algorithm)) return InvalidArgument("HKDF is defined here for SHA-256, SHA-384 and SHA-512");
  const std::size_t hash_len = HashSize(algorithm);
  if (length == 0 || length > 255 * hash_len) {
    return InvalidArgument("HKDF length must be 1.." + std::to_string(255 * hash_len) + " bytes for " +
                           std::string(HashAlgorithmName(algorithm)));
  }
  // One OpenSSL call for extract-then-expand (RFC 5869, 2.2 and 2.3); the PRK never leaves OpenSSL.
  SecretBytes okm(length);
  QSAPI_RETURN_IF_ERROR(RunHkdf(algorithm, EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, salt, info, okm.span()));
  return okm;
}

Result<SecretBytes> HkdfExpandLabel(HashAlgorithm algorithm, const PseudorandomKey& secret, std::string_view label,
                                    ByteView context, std::size_t length, std::string_view prefix) {
  const std::size_t full_label = prefix.size() + label.size();
  if (full_label < 7 || full_label > 255) return InvalidArgument("HKDF label (prefix + label) must be 7..255 bytes");
  if (context.size() > 255) return InvalidArgument("HKDF label context must be at most 255 bytes");
  if (length > 0xffff) return InvalidArgument("HKDF-Expand-Label length must fit 16 bits");
  // RFC 8446, 7.1: struct HkdfLabel.
  Bytes info;
  info.reserve(2 + 1 + full_label + 1 + context.size());
  info.push_back(static_cast<std::uint8_t>(length >> 8));
  info.push_back(static_cast<std::uint8_t>(length & 0xff));
  info.push_back(static_cast<std::uint8_t>(full_label));
  info.insert(info.end(), prefix.begin(), prefix.end());
  info.insert(info.end(), label.begin(), label.end());
  info.push_back(static_cast<std::uint8_t>(context.size()));
  info.insert(info.end(), context.begin(), context.end());
  return HkdfExpand(algorithm, secret, info, length);
}

}  // namespace qsapi::crypto
