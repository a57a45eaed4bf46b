// Internal to the pki part: the OpenSSL handle types it uses (crypto/internal/openssl_util.h), the bridge between
// OpenSSL handles and the public PrivateKey / Certificate types, and private-key file loading shared with tls.cc.
#ifndef QSAPI_SRC_PKI_INTERNAL_PKI_UTIL_H_
#define QSAPI_SRC_PKI_INTERNAL_PKI_UTIL_H_

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/internal/openssl_util.h"
#include "qsapi/pki/pki.h"

namespace qsapi::pki::internal {

using crypto::internal::BioPtr;
using crypto::internal::BnPtr;
using crypto::internal::Deleter;
using crypto::internal::EvpPkeyPtr;
using crypto::internal::OpenSslReason;
using crypto::internal::X509ExtPtr;
using crypto::internal::X509Ptr;

// PkiAccess wraps OpenSSL handles into the public types (taking ownership).
struct PkiAccess {
  static PrivateKey WrapKey(EvpPkeyPtr pkey, KeyAlgorithm algorithm) { return {pkey.release(), algorithm}; }
  static Certificate WrapCertificate(X509Ptr x509) { return Certificate(x509.release()); }
};

// ReadSecretFile reads a file that holds a private key into secret memory, refusing one that group
// or others may read (PERMISSION_DENIED, naming the chmod to run). `what` names it in errors.
Result<SecretBytes> ReadSecretFile(const std::filesystem::path& path, std::string_view what);

// PkeyFromPem parses any PEM private key OpenSSL knows (RSA, EC, Ed25519, ML-DSA ...). Never
// prompts for a passphrase: an encrypted key is INVALID_ARGUMENT.
Result<EvpPkeyPtr> PkeyFromPem(ByteView pem, std::string_view what);

}  // namespace qsapi::pki::internal

#endif  // QSAPI_SRC_PKI_INTERNAL_PKI_UTIL_H_
