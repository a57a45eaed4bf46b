// qsapi/hpke/hpke.h: Hybrid Public Key Encryption (RFC 9180) with the post-quantum KEMs of
// draft-ietf-hpke-pq.
//
//   KEMs   X-Wing / MLKEM768-X25519 (0x647a), ML-KEM-768 (0x0041), ML-KEM-1024 (0x0042),
//          MLKEM1024-P384 (0x0051). A non-DH KEM plugs into HPKE as draft-ietf-hpke-pq, 3 and 4
//          say: Encap/Decap are the KEM's own, and the KEM's shared secret is HPKE's
//          shared_secret, used directly by the key schedule (RFC 9180, 5.1).
//   KDFs   HKDF-SHA256 (0x0001), HKDF-SHA384 (0x0002) (RFC 9180, 7.2).
//   AEADs  AES-256-GCM (0x0002), ChaCha20-Poly1305 (0x0003), export-only (0xFFFF) (RFC 9180, 7.3).
//   Modes  base (mode_base, 0x00) and PSK (mode_psk, 0x01), so that a pre-shared key, such as one
//          delivered by QKD, can be mixed into the key schedule. The authenticated modes
//          (mode_auth, mode_auth_psk) need a DH KEM and do not exist for these KEMs.
//
// Contexts: SetupSender / SetupRecipient run the KEM and the key schedule (RFC 9180, 5.1) and
// return a context that seals / opens a sequence of messages with nonces base_nonce XOR seq
// (RFC 9180, 5.2) and exports secrets (RFC 9180, 5.3). Seal and Open are the single-shot APIs
// (RFC 9180, 6.1). Keys, nonces and exporter secrets live in secret memory.
//
// Failure: every failure to open, whether from the KEM, the AEAD, a wrong suite, wrong info or
// aad, a wrong PSK or a message out of order, is AuthenticationFailed(); no plaintext is released.
//
// Thread safety: a context keeps a sequence number and is not thread-safe; use one per thread.
// Everything else is immutable.
#ifndef QSAPI_HPKE_HPKE_H_
#define QSAPI_HPKE_HPKE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "qsapi/crypto/kem.h"
#include "qsapi/hpke/recipient_key.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::hpke {

// KEM, KDF and AEAD identifiers: the values of the IANA HPKE registries.
enum class KemId : std::uint16_t {
  kMlKem768 = 0x0041,
  kMlKem1024 = 0x0042,
  kMlKem1024P384 = 0x0051,
  kXWing = 0x647a,
};
enum class KdfId : std::uint16_t {
  kHkdfSha256 = 0x0001,
  kHkdfSha384 = 0x0002,
};
enum class AeadId : std::uint16_t {
  kAes256Gcm = 0x0002,
  kChaCha20Poly1305 = 0x0003,
  kExportOnly = 0xFFFF,
};
// Mode: the HPKE modes offered (RFC 9180, 5, Table 1).
enum class Mode : std::uint8_t {
  kBase = 0x00,
  kPsk = 0x01,
};

// Suite is an HPKE ciphersuite: one KEM, one KDF, one AEAD.
struct Suite {
  KemId kem;
  KdfId kdf;
  AeadId aead;

  // FromIds checks three registry values; kInvalidArgument names any that qsapi does not offer.
  static Result<Suite> FromIds(std::uint16_t kem_id, std::uint16_t kdf_id, std::uint16_t aead_id);
  friend bool operator==(const Suite&, const Suite&) = default;
};

// The suite qsapi uses when the caller does not choose: X-Wing, HKDF-SHA256, ChaCha20-Poly1305
// (draft-ietf-hpke-pq, Appendix A.5; the combination Tink and hpke-js use with X-Wing).
inline constexpr Suite kDefaultSuite{KemId::kXWing, KdfId::kHkdfSha256, AeadId::kChaCha20Poly1305};

// DefaultKdfFor pairs each KEM with the KDF of its draft-ietf-hpke-pq test vector: HKDF-SHA256 for
// X-Wing and ML-KEM-768, HKDF-SHA384 for ML-KEM-1024 and MLKEM1024-P384 (category 5).
KdfId DefaultKdfFor(KemId kem) noexcept;
// DefaultSuiteFor is the suite qsapi seals with to a key of `algorithm`: its KEM, DefaultKdfFor,
// ChaCha20-Poly1305. kInvalidArgument for a KEM without an HPKE id.
Result<Suite> DefaultSuiteFor(crypto::KemAlgorithm algorithm);

// KemIdFor / KemAlgorithmFor map between HPKE KEM ids and the crypto core's algorithms.
// kInvalidArgument for ML-KEM-512, which qsapi does not offer for HPKE.
Result<KemId> KemIdFor(crypto::KemAlgorithm algorithm);
crypto::KemAlgorithm KemAlgorithmFor(KemId kem) noexcept;

// Names: "X-Wing", "HKDF-SHA256", "ChaCha20-Poly1305", "export-only"; SuiteName joins the three
// with '/'. Parse* are the inverses (case-sensitive; the KEM also accepts "MLKEM768-X25519").
std::string_view KemName(KemId kem) noexcept;
std::string_view KdfName(KdfId kdf) noexcept;
std::string_view AeadName(AeadId aead) noexcept;
std::string SuiteName(const Suite& suite);
Result<KemId> ParseKemName(std::string_view name);
Result<KdfId> ParseKdfName(std::string_view name);
Result<AeadId> ParseAeadName(std::string_view name);

// Sizes of a suite (RFC 9180, 7): Nenc, Npk (the KEM), Nh (the KDF), Nk, Nn, Nt (the AEAD; zero
// for export-only).
struct SuiteSizes {
  std::size_t enc;
  std::size_t public_key;
  std::size_t hash;
  std::size_t key;
  std::size_t nonce;
  std::size_t tag;
};
SuiteSizes GetSuiteSizes(const Suite& suite) noexcept;

// kMinPskSize: a PSK must have at least 32 bytes (RFC 9180, 9.5, asks for 32 bytes of entropy;
// qsapi enforces the length).
inline constexpr std::size_t kMinPskSize = 32;
// kMaxPskIdSize bounds psk_id (it travels in the container header).
inline constexpr std::size_t kMaxPskIdSize = 255;
// kMaxInfoSize bounds info and an exporter context.
inline constexpr std::size_t kMaxInfoSize = std::size_t{64} * 1024;

// Psk is a pre-shared key and its identifier, the inputs of mode_psk (RFC 9180, 5.1.2).
class Psk {
 public:
  // Create takes the key (at least kMinPskSize bytes) and a non-empty id of at most
  // kMaxPskIdSize bytes. RFC 9180 5.1's VerifyPSKInputs: a PSK without an id, or an id without a
  // PSK, is kInvalidArgument.
  static Result<Psk> Create(SecretBytes psk, ByteView psk_id);

  [[nodiscard]] ByteView psk() const noexcept { return psk_.view(); }
  [[nodiscard]] ByteView id() const noexcept { return id_; }
  [[nodiscard]] Psk Clone() const { return {psk_.Clone(), id_}; }

 private:
  Psk(SecretBytes psk, Bytes id) : psk_(std::move(psk)), id_(std::move(id)) {}
  SecretBytes psk_;
  Bytes id_;
};

namespace internal {
class ContextState;
}

// Context is what SenderContext and RecipientContext share: the suite and the exporter.
class Context {
 public:
  Context(Context&& other) noexcept;
  Context& operator=(Context&& other) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

  [[nodiscard]] const Suite& suite() const noexcept;
  [[nodiscard]] Mode mode() const noexcept;

  // Export returns `length` bytes LabeledExpand(exporter_secret, "sec", exporter_context, length)
  // (RFC 9180, 5.3). kInvalidArgument when length is 0 or above 255 * Nh, or the context is longer
  // than kMaxInfoSize.
  [[nodiscard]] Result<SecretBytes> Export(ByteView exporter_context, std::size_t length) const;

  // The number of messages sealed or opened so far (the next sequence number).
  [[nodiscard]] std::uint64_t sequence_number() const noexcept;

  // state is for the library's own use (test hooks, the stream layer).
  [[nodiscard]] internal::ContextState& state() noexcept { return *state_; }

 protected:
  explicit Context(std::unique_ptr<internal::ContextState> state) noexcept;

 private:
  std::unique_ptr<internal::ContextState> state_;
};

// SenderContext seals messages to the recipient in order.
class SenderContext : public Context {
 public:
  // Seal encrypts `plaintext` with `aad` under the next nonce and returns ciphertext || tag
  // (plaintext.size() + Nt bytes). kFailedPrecondition for an export-only suite;
  // kResourceExhausted when the sequence number or the context's byte budget is used up
  // (RFC 9180 5.2's MessageLimitReachedError; docs/DECISIONS.md "HPKE limits").
  [[nodiscard]] Result<Bytes> Seal(ByteView plaintext, ByteView aad);
  // SealInto is Seal into a caller's buffer of exactly plaintext.size() + Nt bytes.
  [[nodiscard]] Status SealInto(ByteView plaintext, ByteView aad, std::span<std::uint8_t> out);

  explicit SenderContext(std::unique_ptr<internal::ContextState> state) noexcept;
};

// RecipientContext opens the sender's messages in the same order.
class RecipientContext : public Context {
 public:
  // Open decrypts the next message. AuthenticationFailed() on any failure (the sequence number
  // then stays where it was, RFC 9180 5.2); kFailedPrecondition for an export-only suite.
  [[nodiscard]] Result<Bytes> Open(ByteView ciphertext, ByteView aad);
  // OpenInto is Open into a caller's buffer of exactly ciphertext.size() - Nt bytes; on failure
  // the buffer is zeroised.
  [[nodiscard]] Status OpenInto(ByteView ciphertext, ByteView aad, std::span<std::uint8_t> out);

  explicit RecipientContext(std::unique_ptr<internal::ContextState> state) noexcept;
};

// SenderSetup is the result of SetupSender: the encapsulated key to send, and the context.
struct SenderSetup {
  Bytes enc;
  SenderContext context;
};

// SetupSender encapsulates to `recipient` and runs the key schedule (RFC 9180, 5.1.1 SetupBaseS;
// 5.1.2 SetupPSKS when `psk` is given). kInvalidArgument when the key's algorithm is not the
// suite's KEM or info is longer than kMaxInfoSize.
Result<SenderSetup> SetupSender(const Suite& suite, const crypto::KemPublicKey& recipient, ByteView info,
                                const Psk* psk = nullptr);

// SetupRecipient decapsulates `enc` with `recipient` and runs the key schedule (SetupBaseR /
// SetupPSKR). A wrong-length enc or a failed decapsulation is AuthenticationFailed(); a key whose
// algorithm is not the suite's KEM is kInvalidArgument. (ML-KEM's implicit rejection means a
// tampered enc usually succeeds here and fails at the first Open.)
Result<RecipientContext> SetupRecipient(const Suite& suite, ByteView enc, const RecipientKey& recipient, ByteView info,
                                        const Psk* psk = nullptr);

// Sealed is a single-shot HPKE message: the encapsulated key and one ciphertext.
struct Sealed {
  Bytes enc;
  Bytes ciphertext;
};

// Seal is RFC 9180 6.1's single-shot Seal: SetupSender, then one Seal with sequence number 0.
Result<Sealed> Seal(const Suite& suite, const crypto::KemPublicKey& recipient, ByteView info, ByteView aad,
                    ByteView plaintext, const Psk* psk = nullptr);

// Open is RFC 9180 6.1's single-shot Open. AuthenticationFailed() on any failure.
Result<Bytes> Open(const Suite& suite, const RecipientKey& recipient, ByteView enc, ByteView info, ByteView aad,
                   ByteView ciphertext, const Psk* psk = nullptr);

// SendExport / ReceiveExport are RFC 9180 6.2's single-shot secret export (any AEAD, usually
// export-only): the sender gets enc and a secret, the recipient derives the same secret from enc.
struct SentExport {
  Bytes enc;
  SecretBytes secret;
};
Result<SentExport> SendExport(const Suite& suite, const crypto::KemPublicKey& recipient, ByteView info,
                              ByteView exporter_context, std::size_t length, const Psk* psk = nullptr);
Result<SecretBytes> ReceiveExport(const Suite& suite, const RecipientKey& recipient, ByteView enc, ByteView info,
                                  ByteView exporter_context, std::size_t length, const Psk* psk = nullptr);

}  // namespace qsapi::hpke

#endif  // QSAPI_HPKE_HPKE_H_
