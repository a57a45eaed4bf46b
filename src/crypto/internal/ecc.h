// Internal: the classical elliptic-curve pieces the hybrids compose (X25519, Ed25519, P-384 ECDH),
// all through OpenSSL.
#ifndef QSAPI_SRC_CRYPTO_INTERNAL_ECC_H_
#define QSAPI_SRC_CRYPTO_INTERNAL_ECC_H_

#include <array>

#include "crypto/internal/openssl_util.h"

namespace qsapi::crypto::internal {

inline constexpr std::size_t kX25519KeySize = 32;

// X25519 computes the shared secret of a private and a peer public key. Fails (kInvalidArgument)
// when the result is all zeros (a low-order peer point, RFC 7748 6.1's optional check, which
// OpenSSL makes).
Result<SecretBytes> X25519(ByteView private_key, ByteView peer_public_key);

// X25519 keys as OpenSSL objects, for the hybrid KEMs: a private key from its 32 raw bytes, a
// public key from its 32 raw bytes, and the raw public bytes of a key.
Result<EvpPkeyPtr> X25519PrivateKey(ByteView private_key);
Result<EvpPkeyPtr> X25519PublicKey(ByteView public_key);
Result<Bytes> X25519PublicBytes(const EVP_PKEY* key);

// Ed25519 (RFC 8032): public key from a 32-byte private key, sign, verify.
Result<Bytes> Ed25519PublicFromPrivate(ByteView private_key);
Result<Bytes> Ed25519Sign(ByteView private_key, ByteView message);
// Ed25519Verify returns OkStatus or AuthenticationFailed().
Status Ed25519Verify(ByteView public_key, ByteView message, ByteView signature);

// P-384 (SEC 1). Points are uncompressed (0x04 || X || Y, 97 bytes); scalars are 48 bytes big-endian.
inline constexpr std::size_t kP384PointSize = 97;
inline constexpr std::size_t kP384ScalarSize = 48;
Result<EvpPkeyPtr> P384PrivateFromScalar(ByteView scalar);  // fails unless 0 < scalar < n
Result<EvpPkeyPtr> P384PublicFromPoint(ByteView point);     // fails unless the point is on the curve
Result<Bytes> P384PublicPoint(const EVP_PKEY* key);

// PkeyDerive runs EVP_PKEY_derive (X25519, or ECDH giving the x-coordinate) between `key` and
// `peer` into a secret of exactly `size` bytes.
Result<SecretBytes> PkeyDerive(const EVP_PKEY* key, const EVP_PKEY* peer, std::size_t size);

}  // namespace qsapi::crypto::internal

#endif  // QSAPI_SRC_CRYPTO_INTERNAL_ECC_H_
