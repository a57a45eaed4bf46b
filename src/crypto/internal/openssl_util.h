// Internal: RAII handles for OpenSSL objects and OpenSSL error handling.
#ifndef QSAPI_SRC_CRYPTO_INTERNAL_OPENSSL_UTIL_H_
#define QSAPI_SRC_CRYPTO_INTERNAL_OPENSSL_UTIL_H_

#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::crypto::internal {

// Deleter<F> calls F on a non-null pointer; one unique_ptr alias per OpenSSL type (as bssl::UniquePtr).
template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using EvpCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX_free>>;
using EvpCipherPtr = std::unique_ptr<EVP_CIPHER, Deleter<EVP_CIPHER_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using EvpMdPtr = std::unique_ptr<EVP_MD, Deleter<EVP_MD_free>>;
using EvpKdfPtr = std::unique_ptr<EVP_KDF, Deleter<EVP_KDF_free>>;
using EvpKdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, Deleter<EVP_KDF_CTX_free>>;
using EvpSignaturePtr = std::unique_ptr<EVP_SIGNATURE, Deleter<EVP_SIGNATURE_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

// OpenSSL's error queue, read in one place. The reason strings are OpenSSL's fixed texts; they
// never contain key material.
//
// TakeOpenSslReason returns the reason string of the oldest error in this thread's queue (of the
// newest with kNewest: for TLS, whose last error says what the handshake ended on), "" when the
// queue is empty, and clears the queue.
enum class OpenSslQueueEnd { kOldest, kNewest };
std::string TakeOpenSslReason(OpenSslQueueEnd end = OpenSslQueueEnd::kOldest);
// OpenSslReason is TakeOpenSslReason() as a suffix for a message: ": <reason>", or "".
std::string OpenSslReason();
// OpenSslReasonText returns the reason string of an error code handed over by another layer (Asio's
// SSL error category), or "" when OpenSSL has none for it.
std::string OpenSslReasonText(unsigned long code);  // NOLINT(google-runtime-int): OpenSSL's type
// OpenSslError returns Internal("<what>: <reason>") with TakeOpenSslReason().
Error OpenSslError(std::string_view what);

// ClearOpenSslErrors empties the thread's OpenSSL error queue (on authentication failures, whose
// cause must not be reported).
void ClearOpenSslErrors() noexcept;

// NonNull returns a valid pointer for an empty input: OpenSSL treats a null pointer as an error
// even when the length is 0, and an empty message is a legal one to sign or authenticate.
inline const std::uint8_t* NonNull(ByteView data) noexcept {
  static constexpr std::uint8_t kEmpty = 0;
  return data.empty() ? &kEmpty : data.data();
}

// Fetched algorithms, fetched once per process (EVP_*_fetch is costly) and never freed.
const EVP_CIPHER* Aes256Gcm();
const EVP_MD* Sha3_256();
const EVP_MD* Sha256();
const EVP_MD* Sha384();
const EVP_MD* Sha512();
const EVP_MD* Shake256();

// PkeyFromRaw imports a raw key of OpenSSL key type `name` ("ML-KEM-768") from one octet-string
// parameter (`param` = OSSL_PKEY_PARAM_PUB_KEY, _PRIV_KEY or _ML_KEM_SEED ...) with `selection`
// (EVP_PKEY_PUBLIC_KEY or EVP_PKEY_KEYPAIR). Fails on anything OpenSSL rejects.
Result<EvpPkeyPtr> PkeyFromRaw(const char* name, const char* param, ByteView bytes, int selection);

// PkeyFromSeed generates a key of type `name` deterministically from `seed` through the keygen
// parameter `param` (OSSL_PKEY_PARAM_ML_KEM_SEED, OSSL_PKEY_PARAM_ML_DSA_SEED, OSSL_PKEY_PARAM_SLH_DSA_SEED).
Result<EvpPkeyPtr> PkeyFromSeed(const char* name, const char* param, ByteView seed);

// GetOctets reads an octet-string parameter (a public key, say) of `pkey` into `out`, which must
// have exactly the parameter's size.
Status GetOctets(const EVP_PKEY* pkey, const char* param, std::span<std::uint8_t> out);

// GetPublicBytes returns the raw public key (OSSL_PKEY_PARAM_PUB_KEY) of `pkey`.
Result<Bytes> GetPublicBytes(const EVP_PKEY* pkey);

// LazyPublicPkey is the public-only EVP_PKEY of a public key, either given at construction (a key
// imported from bytes, which was validated then) or imported from the raw bytes on first use (the
// public half of a freshly generated or seeded key pair). The owner of a private key rarely uses
// its own public key object for encapsulation or verification, and the import costs a matrix
// expansion for ML-KEM and ML-DSA: doing it lazily keeps key generation at the raw call's cost.
// Thread-safe.
class LazyPublicPkey {
 public:
  LazyPublicPkey(const char* name, EvpPkeyPtr pkey) : name_(name), pkey_(std::move(pkey)) {}
  // Get returns the EVP_PKEY for `bytes` (the same bytes every call).
  Result<const EVP_PKEY*> Get(ByteView bytes) const;

 private:
  const char* name_;
  mutable std::once_flag once_;
  mutable EvpPkeyPtr pkey_;
};

// Digest computes an EVP digest of the concatenation of `parts` into `out` (out.size() bytes;
// for XOFs any size).
Status Digest(const EVP_MD* md, std::initializer_list<ByteView> parts, std::span<std::uint8_t> out);

}  // namespace qsapi::crypto::internal

#endif  // QSAPI_SRC_CRYPTO_INTERNAL_OPENSSL_UTIL_H_
