// Internal: the state behind an HPKE context (RFC 9180, 5.1 and 5.2), the labeled KDF functions,
// and the test hooks.
#ifndef QSAPI_SRC_HPKE_INTERNAL_CONTEXT_STATE_H_
#define QSAPI_SRC_HPKE_INTERNAL_CONTEXT_STATE_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/hpke/hpke.h"

namespace qsapi::hpke::internal {

// RawSuite is a suite given by its registry values and AEAD sizes, so that the key schedule can
// be checked against published vectors for AEADs qsapi does not offer (AES-128-GCM).
struct RawSuite {
  std::uint16_t kem_id;
  std::uint16_t kdf_id;
  std::uint16_t aead_id;
  std::size_t nk;  // AEAD key length (0 for export-only)
  std::size_t nn;  // AEAD nonce length (0 for export-only)
};
RawSuite ToRawSuite(const Suite& suite) noexcept;

crypto::HashAlgorithm KdfHash(std::uint16_t kdf_id) noexcept;

// HpkeSuiteId is "HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2) (RFC 9180, 5.1).
Bytes HpkeSuiteId(const RawSuite& suite);

// LabeledExtract / LabeledExpand (RFC 9180, 4) for a given suite_id.
Result<PseudorandomKey> LabeledExtract(crypto::HashAlgorithm hash, ByteView suite_id, ByteView salt,
                                       std::string_view label, ByteView ikm);
Result<SecretBytes> LabeledExpand(crypto::HashAlgorithm hash, ByteView suite_id, const PseudorandomKey& prk,
                                  std::string_view label, ByteView info, std::size_t length);

// KeyScheduleOutput is what KeySchedule derives (RFC 9180, 5.1).
struct KeyScheduleOutput {
  SecretBytes key;         // Nk bytes (empty for export-only)
  SecretBytes base_nonce;  // Nn bytes (empty for export-only)
  PseudorandomKey exporter_secret;
};

// KeySchedule runs RFC 9180 5.1's KeySchedule<ROLE>() on a raw suite. `psk` null means base mode.
Result<KeyScheduleOutput> KeySchedule(const RawSuite& suite, ByteView shared_secret, ByteView info, const Psk* psk);

// ContextState: the AEAD (when not export-only), base nonce, sequence number, exporter secret.
class ContextState {
 public:
  // Create runs the key schedule for `suite` on `shared_secret`.
  static Result<std::unique_ptr<ContextState>> Create(const Suite& suite, ByteView shared_secret, ByteView info,
                                                      const Psk* psk);

  [[nodiscard]] const Suite& suite() const noexcept { return suite_; }
  [[nodiscard]] Mode mode() const noexcept { return mode_; }
  [[nodiscard]] std::uint64_t seq() const noexcept { return seq_; }

  Status Seal(ByteView plaintext, ByteView aad, std::span<std::uint8_t> out);
  Status Open(ByteView ciphertext, ByteView aad, std::span<std::uint8_t> out);
  Result<SecretBytes> Export(ByteView exporter_context, std::size_t length) const;

  // SetSequenceNumberForTesting moves the sequence number (to test the overflow check).
  void SetSequenceNumberForTesting(std::uint64_t seq) noexcept { seq_ = seq; }
  // SetByteBudgetForTesting sets the bytes the context may still seal or open.
  void SetByteBudgetForTesting(std::uint64_t bytes) noexcept { bytes_left_ = bytes; }

 private:
  ContextState(const Suite& suite, Mode mode, std::optional<crypto::Aead> aead, SecretBytes base_nonce,
               PseudorandomKey exporter_secret, Bytes suite_id);
  // ComputeNonce is base_nonce XOR I2OSP(seq, Nn) (RFC 9180, 5.2).
  void ComputeNonce(std::span<std::uint8_t, 12> out) const noexcept;
  Status CheckLimits(std::size_t bytes) const;

  Suite suite_;
  Mode mode_;
  std::optional<crypto::Aead> aead_;
  SecretBytes base_nonce_;
  PseudorandomKey exporter_secret_;
  Bytes suite_id_;
  std::uint64_t seq_ = 0;
  std::uint64_t bytes_left_;
};

// kMaxBytesPerContext: the bytes one HPKE context may seal or open (docs/DECISIONS.md, "HPKE
// limits"): 2^38 (256 GiB) for AES-256-GCM, keeping the confidentiality advantage of counter
// nonces below about 2^-60; 2^50 for ChaCha20-Poly1305.
std::uint64_t MaxBytesPerContext(AeadId aead) noexcept;

// SetupSenderWithEncapsulationForTesting runs the sender's key schedule on a given encapsulation
// (from crypto::internal::EncapsulateDeterministicForTesting), to reproduce published vectors.
Result<SenderSetup> SetupSenderWithEncapsulationForTesting(const Suite& suite, const crypto::KemEncapsulation& kem,
                                                           ByteView info, const Psk* psk);

}  // namespace qsapi::hpke::internal

#endif  // QSAPI_SRC_HPKE_INTERNAL_CONTEXT_STATE_H_
