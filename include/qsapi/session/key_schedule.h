// qsapi/session/key_schedule.h: the peer-session key schedule.
//
// Two endpoints that completed a PQ-TLS handshake derive the session's secrets from every source
// of key material they used, laid out like the CatKDF of ETSI TS 103 744 (docs/PROTOCOL.md,
// "Session key schedule", has the exact bytes):
//
//   IKM  = for each source used, in the fixed order tls_exporter, qkd, qrng_initiator,
//          qrng_responder:  I2OSP(len(secret), 2) || secret
//   PRK  = HKDF-Extract(salt = "qsapi session v1 extract", IKM)             (SHA-384)
//   ctx  = session_id (16) || suite (1) || n (1) || source ids (n) || context_hash (48)
//   epoch_secret          = HKDF-Expand(PRK, "qsapi session v1 epoch 0"           || 0x00 || ctx, 48)
//   confirm_key_initiator = HKDF-Expand(PRK, "qsapi session v1 confirm initiator" || 0x00 || ctx, 48)
//   confirm_key_responder = HKDF-Expand(PRK, "qsapi session v1 confirm responder" || 0x00 || ctx, 48)
//
// The suite and the list of sources are in every Expand's info, so a session whose source list
// was downgraded (say, QKD dropped by an attacker on one side) derives different keys and fails
// its key confirmation.
//
// What each source contributes: the TLS exporter (RFC 8446, 7.5) binds the session to the TLS
// handshake and so to its hybrid ML-KEM key exchange and the peers' ML-DSA certificates; a QKD key
// adds key material whose secrecy rests on the QKD link and on trust in both key managers; QRNG
// contributions add entropy from an independent generator but are sent in the clear inside TLS and
// add no secrecy against the peer or against anyone who breaks the TLS key exchange.
//
// All functions are pure and thread-safe; secrets come back in secret memory and intermediate
// secrets (IKM, PRK) are wiped before return. Malformed input gives kInvalidArgument and names the
// field, never its content.
#ifndef QSAPI_SESSION_KEY_SCHEDULE_H_
#define QSAPI_SESSION_KEY_SCHEDULE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::session {

// AeadSuite is the payload AEAD of a session; its value is the suite byte on the wire.
enum class AeadSuite : std::uint8_t { kAes256Gcm = 1, kXChaCha20Poly1305 = 2 };

// SessionRole is a side of a session: the initiator proposes it, the responder answers.
enum class SessionRole : std::uint8_t { kInitiator, kResponder };

// The secrets of the schedule, each a type of its own: a confirmation key of one role cannot be
// passed where the other role's is expected, nor an epoch secret where a traffic key is. An epoch
// secret is a pseudorandom key in HKDF's sense (the schedule expands it), but of its own type so
// that no other PRK can stand in for it.
using EpochSecret = Secret<struct EpochSecretTag>;                  // kEpochSecretSize bytes
using InitiatorConfirmKey = Secret<struct InitiatorConfirmKeyTag>;  // kConfirmKeySize bytes
using ResponderConfirmKey = Secret<struct ResponderConfirmKeyTag>;  // kConfirmKeySize bytes

// SourceId names a source of key material; its value is the byte in the encoded source list.
enum class SourceId : std::uint8_t { kTlsExporter = 1, kQkd = 2, kQrngInitiator = 3, kQrngResponder = 4 };

inline constexpr std::size_t kSessionIdSize = 16;
// The TLS exporter: SSL_export_keying_material(ssl, out, 48, kExporterLabel, session_id, 16, 1).
inline constexpr std::size_t kExporterSize = 48;
inline constexpr std::string_view kExporterLabel = "EXPORTER-qsapi-session-v1";
inline constexpr std::size_t kContextHashSize = 48;  // SHA-384
inline constexpr std::size_t kEpochSecretSize = 48;
inline constexpr std::size_t kConfirmKeySize = 48;
inline constexpr std::size_t kConfirmMacSize = 48;  // HMAC-SHA-384
inline constexpr std::size_t kQkdKeyMinSize = 32;
inline constexpr std::size_t kQkdKeyMaxSize = 64;
inline constexpr std::size_t kQrngContributionSize = 32;
inline constexpr std::size_t kAeadKeySize = 32;

// The labels of the key schedule (ASCII, without terminator; docs/PROTOCOL.md).
inline constexpr std::string_view kExtractSalt = "qsapi session v1 extract";
inline constexpr std::string_view kEpochZeroLabel = "qsapi session v1 epoch 0";
inline constexpr std::string_view kConfirmInitiatorLabel = "qsapi session v1 confirm initiator";
inline constexpr std::string_view kConfirmResponderLabel = "qsapi session v1 confirm responder";
inline constexpr std::string_view kConfirmMacLabel = "qsapi session confirm v1";
inline constexpr std::string_view kKeyInitiatorLabel = "qsapi session v1 key initiator";
inline constexpr std::string_view kKeyResponderLabel = "qsapi session v1 key responder";
inline constexpr std::string_view kNonceInitiatorLabel = "qsapi session v1 nonce initiator";
inline constexpr std::string_view kNonceResponderLabel = "qsapi session v1 nonce responder";
inline constexpr std::string_view kRatchetLabel = "qsapi session v1 ratchet";

// AeadSuiteName returns "AES-256-GCM" or "XChaCha20-Poly1305" ("unknown" for other values).
std::string_view AeadSuiteName(AeadSuite suite) noexcept;
// ParseAeadSuite accepts the names above (and "aes-256-gcm", "xchacha20-poly1305").
Result<AeadSuite> ParseAeadSuite(std::string_view name);
// NonceSize returns the suite's nonce length: 12 (AES-256-GCM) or 24 (XChaCha20-Poly1305); 0 for
// an unknown value.
std::size_t NonceSize(AeadSuite suite) noexcept;
// SourceIdName returns "tls-exporter", "qkd", "qrng-initiator" or "qrng-responder".
std::string_view SourceIdName(SourceId id) noexcept;

struct KeyScheduleInput {
  ByteView session_id;      // kSessionIdSize bytes
  AeadSuite suite;          // kAes256Gcm or kXChaCha20Poly1305
  ByteView tls_exporter;    // kExporterSize bytes, always present
  ByteView qkd_key;         // empty, or kQkdKeyMinSize..kQkdKeyMaxSize bytes (the QKD keys concatenated)
  ByteView qrng_initiator;  // empty or kQrngContributionSize bytes
  ByteView qrng_responder;  // empty or kQrngContributionSize bytes
  ByteView context_hash;    // SHA-384 of the establishment transcript, kContextHashSize bytes
};

struct SessionKeys {
  EpochSecret epoch_secret;                   // epoch 0 secret
  InitiatorConfirmKey confirm_key_initiator;  // keys the initiator's confirmation
  ResponderConfirmKey confirm_key_responder;  // keys the responder's confirmation
  std::vector<SourceId> sources;              // the sources that contributed, in IKM order
};

// EncodeSourceList returns the encoded source list n (1) || ids (n), as bound into the key
// schedule. Exposed for the establishment protocol, which also carries it in its messages.
Bytes EncodeSourceList(const std::vector<SourceId>& sources);

// DeriveSessionKeys runs the key schedule above. kInvalidArgument (naming the field) on a wrong
// length or an unknown suite; no partial output.
Result<SessionKeys> DeriveSessionKeys(const KeyScheduleInput& in);

// ConfirmationMac returns HMAC-SHA-384(confirm_key, "qsapi session confirm v1" || role ||
// context_hash), role = 0x01 for the initiator's MAC and 0x02 for the responder's: the role follows
// from the key's type. kInvalidArgument unless confirm_key and context_hash are 48 bytes.
Result<Bytes> ConfirmationMac(const InitiatorConfirmKey& confirm_key, ByteView context_hash);
Result<Bytes> ConfirmationMac(const ResponderConfirmKey& confirm_key, ByteView context_hash);

// VerifyConfirmationMac recomputes the MAC and compares it in constant time: OkStatus() or
// AuthenticationFailed() (also for a MAC of the wrong length). kInvalidArgument on a bad key or
// context hash length.
Status VerifyConfirmationMac(const InitiatorConfirmKey& confirm_key, ByteView context_hash, ByteView mac);
Status VerifyConfirmationMac(const ResponderConfirmKey& confirm_key, ByteView context_hash, ByteView mac);

// EpochKeys are one epoch's traffic keys, one AEAD key and one base nonce per direction
// ("initiator" = sent by the initiator). The nonce prefixes are NonceSize(suite) bytes; an
// envelope's nonce is prefix XOR (zeros || I2OSP(sequence, 8)).
struct EpochKeys {
  SymmetricKey initiator_key, responder_key;             // kAeadKeySize bytes each
  Bytes initiator_nonce_prefix, responder_nonce_prefix;  // NonceSize(suite) bytes each
};

// DeriveEpochKeys derives epoch `epoch`'s traffic keys from its epoch secret:
//   ectx = session_id (16) || suite (1) || I2OSP(epoch, 4)
//   key_<dir>   = HKDF-Expand(epoch_secret, "qsapi session v1 key <dir>"   || 0x00 || ectx, 32)
//   nonce_<dir> = HKDF-Expand(epoch_secret, "qsapi session v1 nonce <dir>" || 0x00 || ectx, NonceSize(suite))
// kInvalidArgument on a wrong epoch secret or session id length or an unknown suite.
Result<EpochKeys> DeriveEpochKeys(const EpochSecret& epoch_secret, AeadSuite suite, ByteView session_id,
                                  std::uint32_t epoch);

// NextEpochSecret is the ratchet: epoch `next_epoch`'s secret from the previous epoch's,
//   PRK  = HKDF-Extract(salt = epoch_secret, IKM = I2OSP(len(fresh), 2) || fresh)
//   next = HKDF-Expand(PRK, "qsapi session v1 ratchet" || 0x00 || session_id || I2OSP(next_epoch, 4)
//                      || flag, 48)            flag = 0x01 when fresh QKD material was mixed, else 0x00
// `fresh_qkd_key` is empty or kQkdKeyMinSize..kQkdKeyMaxSize bytes; next_epoch must be >= 1.
// The step is one-way: the caller zeroises the previous secret to get forward secrecy across epochs.
Result<EpochSecret> NextEpochSecret(const EpochSecret& epoch_secret, ByteView fresh_qkd_key, ByteView session_id,
                                    std::uint32_t next_epoch);

}  // namespace qsapi::session

#endif  // QSAPI_SESSION_KEY_SCHEDULE_H_
