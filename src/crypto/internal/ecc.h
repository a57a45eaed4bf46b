// Internal: the classical elliptic-curve pieces the hybrids compose (X25519, Ed25519, P-384 ECDH),
// all through OpenSSL.
#ifndef QSAPI_SRC_CRYPTO_INTERNAL_ECC_H_
#define QSAPI_SRC_CRYPTO_INTERNAL_ECC_H_

#include <array>

#include "crypto/internal/openssl_util.h"

namespace qsapi::crypto::internal {

inline constexpr std::size_t kX25519KeySize = 32;

// X25519PublicFromPrivate computes the public key for a raw 32-byte private key (RFC 7748, 6.1).
Result<std::array<std::uint8_t, kX25519KeySize>> X25519PublicFromPrivate(ByteView private_key);

// X25519 computes the shared secret of a private and a peer public key. Fails (kInvalidArgument)
// when the result is all zeros (a low-order peer point, RFC 7748 6.1's optional check, which
// OpenSSL makes).
Result<SecretBytes> X25519(ByteView private_key, ByteView peer_public_key);

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
// P384Ecdh returns the 48-byte x-coordinate of scalar * peer.
Result<SecretBytes> P384Ecdh(const EVP_PKEY* private_key, const EVP_PKEY* peer_public_key);

// Derive runs EVP_PKEY_derive between `key` and `peer` into a secret of `size` bytes.
Result<SecretBytes> PkeyDerive(const EVP_PKEY* key, const EVP_PKEY* peer, std::size_t size);

}  // namespace qsapi::crypto::internal

#endif  // QSAPI_SRC_CRYPTO_INTERNAL_ECC_H_
