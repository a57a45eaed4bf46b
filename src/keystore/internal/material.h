// A key version's private material: what it is once unwrapped, how a new one is made, and the
// associated data that binds its wrapped form to its key, version, type and purpose.
//
// Stateless: every function here may be called from any thread without a lock.
#ifndef QSAPI_KEYSTORE_INTERNAL_MATERIAL_H_
#define QSAPI_KEYSTORE_INTERNAL_MATERIAL_H_

#include <cstdint>
#include <variant>

#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kem.h"
#include "qsapi/crypto/signature.h"
#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::keystore::internal {

// Material is a version's private key, ready to use: the alternative matches the type's purpose.
// Each alternative holds its key in secret memory and wipes it when the last copy goes (the
// crypto core's key objects share one immutable implementation).
using Material = std::variant<crypto::Aead, crypto::KemPrivateKey, crypto::SigningKey>;

// NewMaterial is a freshly generated version before it is wrapped.
struct NewMaterial {
  SecretBytes secret;  // what gets wrapped: the AEAD key or the KEM / signature seed
  Bytes public_key;    // empty for AEAD keys
};

// Generate makes new material of `type` from the process RandomSource.
Result<NewMaterial> Generate(const KeyType& type);

// WrapAad is the associated data of a version's wrapping in the token: a blob moved to another
// key, version, type or purpose does not unwrap. Every stored blob was wrapped with it, so its
// layout never changes.
Bytes WrapAad(const KeyId& id, std::uint32_t version, const KeyType& type);

// UnwrapMaterial unwraps version `v` of key `row` in the token and derives its material, checked
// against the stored public key. The error names the key and version and keeps the token's code,
// or is kDataLoss for material that does not derive or does not match its public key. It unwraps
// whatever `v.wrapped` holds: the caller decides what an empty blob means.
Result<Material> UnwrapMaterial(KeyProtector& protector, const KeyRow& row, const VersionRow& v, const KeyType& type);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_MATERIAL_H_
