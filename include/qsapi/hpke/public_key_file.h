// qsapi/hpke/public_key_file.h: the public-key file that `qsapi seal --to FILE` reads.
//
//   -----BEGIN QSAPI PUBLIC KEY-----
//   base64 (RFC 4648, 4, with padding; lines of 64 characters) of
//     "QSPK" | version (1) = 0x01 | kem_id (2) | key_id_len (1) | key_id | pk_len (2) | pk
//   -----END QSAPI PUBLIC KEY-----
//
// kem_id is the HPKE KEM id (hpke.h), key_id the id sealed messages carry (1..kMaxKeyIdSize
// bytes), pk the raw public key of that KEM (its length must match). Text before the BEGIN line
// (a comment saying whose key it is) is ignored; nothing but whitespace may follow the END line.
// docs/DECISIONS.md, "Public-key file", says why this is not SubjectPublicKeyInfo.
//
// A public-key file never holds private material, so it may be written anywhere.
#ifndef QSAPI_HPKE_PUBLIC_KEY_FILE_H_
#define QSAPI_HPKE_PUBLIC_KEY_FILE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "qsapi/crypto/kem.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::hpke {

inline constexpr std::string_view kPublicKeyBegin = "-----BEGIN QSAPI PUBLIC KEY-----";
inline constexpr std::string_view kPublicKeyEnd = "-----END QSAPI PUBLIC KEY-----";
// kMaxPublicKeyFileSize bounds the text a parser accepts.
inline constexpr std::size_t kMaxPublicKeyFileSize = std::size_t{16} * 1024;

// RecipientPublicKey is a parsed public-key file: the key and its key id.
struct RecipientPublicKey {
  crypto::KemPublicKey key;
  Bytes key_id;
};

// EncodePublicKeyFile returns the file's text for `key` (an HPKE KEM: not ML-KEM-512) and
// `key_id` (1..kMaxKeyIdSize bytes). `comment`, when not empty, goes on a line before BEGIN.
Result<std::string> EncodePublicKeyFile(const crypto::KemPublicKey& key, ByteView key_id,
                                        std::string_view comment = {});

// ParsePublicKeyFile parses the text; kInvalidArgument with a message saying what is wrong (no
// armour, bad base64, bad magic or version, unknown KEM, a length out of bounds, a public key the
// KEM rejects).
Result<RecipientPublicKey> ParsePublicKeyFile(std::string_view text);

}  // namespace qsapi::hpke

#endif  // QSAPI_HPKE_PUBLIC_KEY_FILE_H_
