#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "crypto/internal/openssl_util.h"
#include "qsapi/crypto/kdf.h"

namespace qsapi::crypto {

namespace internal {
const EVP_MD* MdFor(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::kSha256: return Sha256();
    case HashAlgorithm::kSha384: return Sha384();
    case HashAlgorithm::kSha512: return Sha512();
    case HashAlgorithm::kSha3_256: return Sha3_256();
    case HashAlgorithm::kSha3_512: {
      static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA3-512", nullptr);
      return md;
    }
  }
  return Sha256();
}
}  // namespace internal

std::size_t HashSize(HashAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case HashAlgorithm::kSha256:
    case HashAlgorithm::kSha3_256: return 32;
    case HashAlgorithm::kSha384: return 48;
    case HashAlgorithm::kSha512:
    case HashAlgorithm::kSha3_512: return 64;
  }
  return 0;
}

std::string_view HashAlgorithmName(HashAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case HashAlgorithm::kSha256: return "SHA-256";
    case HashAlgorithm::kSha384: return "SHA-384";
    case HashAlgorithm::kSha512: return "SHA-512";
    case HashAlgorithm::kSha3_256: return "SHA3-256";
    case HashAlgorithm::kSha3_512: return "SHA3-512";
  }
  return "unknown";
}

Result<Bytes> Hash(HashAlgorithm algorithm, ByteView data) {
  Bytes out(HashSize(algorithm));
  QSAPI_RETURN_IF_ERROR(internal::Digest(internal::MdFor(algorithm), {data}, out));
  return out;
}

}  // namespace qsapi::crypto
