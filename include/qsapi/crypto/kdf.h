// qsapi/crypto/kdf.h: hashes, HMAC and HKDF (RFC 5869), through OpenSSL.
//
// HKDF-Extract / -Expand are exposed separately for key schedules; HkdfExpandLabel is the
// TLS 1.3 construction (RFC 8446, 7.1) with a caller-chosen label prefix, so that qsapi's key
// schedule labels ("qsapi ...") can never collide with TLS's ("tls13 ...").
//
// All functions are thread-safe; secrets come back in secret memory.
#ifndef QSAPI_CRYPTO_KDF_H_
#define QSAPI_CRYPTO_KDF_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::crypto {

enum class HashAlgorithm : std::uint8_t {
  kSha256,
  kSha384,
  kSha512,
  kSha3_256,
  kSha3_512,
};

std::size_t HashSize(HashAlgorithm algorithm) noexcept;
std::string_view HashAlgorithmName(HashAlgorithm algorithm) noexcept;  // "SHA-256", "SHA3-256", ...

// Hash returns the digest of `data`.
Result<Bytes> Hash(HashAlgorithm algorithm, ByteView data);

// Hmac returns HMAC(key, data) (RFC 2104). SHA-3 hashes are allowed too (FIPS 198-1).
Result<Bytes> Hmac(HashAlgorithm algorithm, ByteView key, ByteView data);

// HmacVerify compares `tag` with HMAC(key, data) in constant time: OkStatus() or AuthenticationFailed().
Status HmacVerify(HashAlgorithm algorithm, ByteView key, ByteView data, ByteView tag);

// HkdfExtract returns PRK = HMAC(salt, ikm) (RFC 5869, 2.2). An empty salt means HashLen zeros.
// SHA-2 hashes only (kInvalidArgument otherwise).
Result<PseudorandomKey> HkdfExtract(HashAlgorithm algorithm, ByteView salt, ByteView ikm);

// HkdfExpand returns `length` bytes of OKM = T(1) || T(2) || ... (RFC 5869, 2.3). It takes a
// PseudorandomKey only: an Extract output, or a secret a key schedule defines as one (say, TLS 1.3
// style secrets), wrapped on purpose by the schedule that says so; never raw input keying material.
// kInvalidArgument when length is 0 or exceeds 255 * HashLen, or prk is shorter than HashLen.
Result<SecretBytes> HkdfExpand(HashAlgorithm algorithm, const PseudorandomKey& prk, ByteView info, std::size_t length);

// Hkdf is HkdfExpand(HkdfExtract(salt, ikm), info, length). Every function here that takes both
// takes the salt first, then the input keying material (RFC 5869's Extract(salt, IKM)).
Result<SecretBytes> Hkdf(HashAlgorithm algorithm, ByteView salt, ByteView ikm, ByteView info, std::size_t length);

// kQsapiLabelPrefix is the prefix qsapi's own key schedules use with HkdfExpandLabel.
inline constexpr std::string_view kQsapiLabelPrefix = "qsapi ";

// HkdfExpandLabel returns HKDF-Expand(secret, HkdfLabel, length), where HkdfLabel is
//   struct { uint16 length; opaque label<7..255> = prefix || label; opaque context<0..255>; }
// (RFC 8446, 7.1). With prefix "tls13 " it is exactly TLS 1.3's HKDF-Expand-Label.
// kInvalidArgument when prefix || label is longer than 255 bytes (or shorter than 7, as TLS
// requires), context is longer than 255 bytes, or length exceeds 65535.
Result<SecretBytes> HkdfExpandLabel(HashAlgorithm algorithm, const PseudorandomKey& secret, std::string_view label,
                                    ByteView context, std::size_t length, std::string_view prefix = kQsapiLabelPrefix);

}  // namespace qsapi::crypto

#endif  // QSAPI_CRYPTO_KDF_H_
