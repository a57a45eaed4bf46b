// A PKCS#11 token through its C API: the module loaded by path, a pool of sessions with one
// login, and the KEK (a sensitive, non-extractable AES-256 key) used with CKM_AES_GCM to wrap and
// unwrap key material. Nothing else of ours is stored in the token.
//
// KeyProtector is the interface the keystore uses; the wrapped-blob scheme is one backend. A
// token with native ML-DSA / ML-KEM mechanisms (PKCS#11 3.2) would be another, keeping private
// keys as token objects and signing with C_Sign.
#ifndef QSAPI_KEYSTORE_INTERNAL_PKCS11_TOKEN_H_
#define QSAPI_KEYSTORE_INTERNAL_PKCS11_TOKEN_H_

#include <memory>
#include <string>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {

class KeyProtector {
 public:
  virtual ~KeyProtector() = default;
  // Wrap returns an opaque blob that only Unwrap with the same associated data reverses.
  virtual Result<Bytes> Wrap(ByteView plaintext, ByteView associated_data) = 0;
  // Unwrap fails with kDataLoss when the blob or the associated data was altered.
  virtual Result<SecretBytes> Unwrap(ByteView blob, ByteView associated_data) = 0;
  virtual std::string Describe() const = 0;
};

// ReadPin reads a PIN from a file (which must not be readable by group or others) or an
// environment variable.
Result<SecretBytes> ReadPin(const TokenOptions& options);

// OpenTokenProtector loads the module, finds the token by label, logs in with the user PIN and
// finds the KEK; with create_kek, creates the KEK when the token has none.
Result<std::unique_ptr<KeyProtector>> OpenTokenProtector(const TokenOptions& options, const SecretBytes& pin,
                                                         bool create_kek);

// InitToken initialises the first free slot's token with `label`, the SO PIN and the user PIN.
// kAlreadyExists when a token with that label exists.
Status InitToken(const std::string& module_path, const std::string& label, const SecretBytes& so_pin,
                 const SecretBytes& user_pin);

// TokenExists reports whether the module shows an initialised token labelled `label`.
Result<bool> TokenExists(const std::string& module_path, const std::string& label);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_PKCS11_TOKEN_H_
