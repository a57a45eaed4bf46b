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

#include "common/internal/secret_file.h"
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

// ReadSecretFile (common/internal/secret_file.h) reads a private key file into secret memory.
using qsapi::internal::ReadSecretFile;

// PkeyFromPem parses any PEM private key OpenSSL knows (RSA, EC, Ed25519, ML-DSA ...). Never
// prompts for a passphrase: an encrypted key is INVALID_ARGUMENT.
Result<EvpPkeyPtr> PkeyFromPem(ByteView pem, std::string_view what);

}  // namespace qsapi::pki::internal

#endif  // QSAPI_SRC_PKI_INTERNAL_PKI_UTIL_H_
