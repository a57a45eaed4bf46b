// RFC 9180 HPKE, composed from the crypto core: the KEMs of draft-ietf-hpke-pq (kem.h), HKDF
// (kdf.h) and the AEADs (aead.h). Section numbers refer to RFC 9180 unless said otherwise.
#include "qsapi/hpke/hpke.h"

#include <array>
#include <limits>
#include <string>

#include "hpke/internal/context_state.h"
#include "qsapi/crypto/aead.h"
#include "qsapi/crypto/kdf.h"

namespace qsapi::hpke {
namespace {

constexpr std::string_view kHpkeVersionLabel = "HPKE-v1";  // 4, LabeledExtract / LabeledExpand

void AppendU16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void Append(Bytes& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }
void Append(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

// Concat builds prefix || secret in secret memory.
SecretBytes Concat(ByteView prefix, ByteView secret) {
  SecretBytes out(prefix.size() + secret.size());
  std::copy(prefix.begin(), prefix.end(), out.data());
  std::copy(secret.begin(), secret.end(), out.data() + prefix.size());
  return out;
}

crypto::AeadAlgorithm AeadAlgorithmFor(AeadId aead) {
  return aead == AeadId::kAes256Gcm ? crypto::AeadAlgorithm::kAes256Gcm : crypto::AeadAlgorithm::kChaCha20Poly1305;
}

Status CheckSuiteKem(const Suite& suite, crypto::KemAlgorithm algorithm) {
  if (KemAlgorithmFor(suite.kem) != algorithm) {
    return InvalidArgument("the key is a " + std::string(crypto::KemAlgorithmName(algorithm)) +
                           " key, but the suite's KEM is " + std::string(KemName(suite.kem)));
  }
  return OkStatus();
}

Status CheckInfo(ByteView info) {
  if (info.size() > kMaxInfoSize) return InvalidArgument("HPKE info is longer than 64 KiB");
  return OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Identifiers and names

Result<Suite> Suite::FromIds(std::uint16_t kem_id, std::uint16_t kdf_id, std::uint16_t aead_id) {
  Suite s{};
  switch (kem_id) {
    case 0x0041:
    case 0x0042:
    case 0x0051:
    case 0x647a: s.kem = static_cast<KemId>(kem_id); break;
    default: return InvalidArgument("HPKE KEM id " + std::to_string(kem_id) + " is not offered");
  }
  switch (kdf_id) {
    case 0x0001:
    case 0x0002: s.kdf = static_cast<KdfId>(kdf_id); break;
    default: return InvalidArgument("HPKE KDF id " + std::to_string(kdf_id) + " is not offered");
  }
  switch (aead_id) {
    case 0x0002:
    case 0x0003:
    case 0xFFFF: s.aead = static_cast<AeadId>(aead_id); break;
    default: return InvalidArgument("HPKE AEAD id " + std::to_string(aead_id) + " is not offered");
  }
  return s;
}

KdfId DefaultKdfFor(KemId kem) noexcept {
  return kem == KemId::kMlKem1024 || kem == KemId::kMlKem1024P384 ? KdfId::kHkdfSha384 : KdfId::kHkdfSha256;
}

Result<Suite> DefaultSuiteFor(crypto::KemAlgorithm algorithm) {
  QSAPI_ASSIGN_OR_RETURN(const KemId kem, KemIdFor(algorithm));
  return Suite{kem, DefaultKdfFor(kem), AeadId::kChaCha20Poly1305};
}

Result<KemId> KemIdFor(crypto::KemAlgorithm algorithm) {
  switch (algorithm) {
    case crypto::KemAlgorithm::kMlKem768: return KemId::kMlKem768;
    case crypto::KemAlgorithm::kMlKem1024: return KemId::kMlKem1024;
    case crypto::KemAlgorithm::kMlKem1024P384: return KemId::kMlKem1024P384;
    case crypto::KemAlgorithm::kXWing: return KemId::kXWing;
    case crypto::KemAlgorithm::kMlKem512: break;
  }
  return InvalidArgument(std::string(crypto::KemAlgorithmName(algorithm)) + " is not offered for HPKE");
}

crypto::KemAlgorithm KemAlgorithmFor(KemId kem) noexcept {
  switch (kem) {
    case KemId::kMlKem768: return crypto::KemAlgorithm::kMlKem768;
    case KemId::kMlKem1024: return crypto::KemAlgorithm::kMlKem1024;
    case KemId::kMlKem1024P384: return crypto::KemAlgorithm::kMlKem1024P384;
    case KemId::kXWing: return crypto::KemAlgorithm::kXWing;
  }
  return crypto::KemAlgorithm::kXWing;
}

std::string_view KemName(KemId kem) noexcept {
  switch (kem) {
    case KemId::kMlKem768: return "ML-KEM-768";
    case KemId::kMlKem1024: return "ML-KEM-1024";
    case KemId::kMlKem1024P384: return "MLKEM1024-P384";
    case KemId::kXWing: return "X-Wing";
  }
  return "unknown";
}

std::string_view KdfName(KdfId kdf) noexcept {
  switch (kdf) {
    case KdfId::kHkdfSha256: return "HKDF-SHA256";
    case KdfId::kHkdfSha384: return "HKDF-SHA384";
  }
  return "unknown";
}

std::string_view AeadName(AeadId aead) noexcept {
  switch (aead) {
    case AeadId::kAes256Gcm: return "AES-256-GCM";
    case AeadId::kChaCha20Poly1305: return "ChaCha20-Poly1305";
    case AeadId::kExportOnly: return "export-only";
  }
  return "unknown";
}

std::string SuiteName(const Suite& suite) {
  return std::string(KemName(suite.kem)) + "/" + std::string(KdfName(suite.kdf)) + "/" +
         std::string(AeadName(suite.aead));
}

Result<KemId> ParseKemName(std::string_view name) {
  if (name == "MLKEM768-X25519") return KemId::kXWing;
  for (KemId k : {KemId::kXWing, KemId::kMlKem768, KemId::kMlKem1024, KemId::kMlKem1024P384}) {
    if (KemName(k) == name) return k;
  }
  return InvalidArgument("unknown HPKE KEM \"" + std::string(name) +
                         "\" (expected X-Wing, ML-KEM-768, ML-KEM-1024 or MLKEM1024-P384)");
}

Result<KdfId> ParseKdfName(std::string_view name) {
  for (KdfId k : {KdfId::kHkdfSha256, KdfId::kHkdfSha384}) {
    if (KdfName(k) == name) return k;
  }
  return InvalidArgument("unknown HPKE KDF \"" + std::string(name) + "\" (expected HKDF-SHA256 or HKDF-SHA384)");
}

Result<AeadId> ParseAeadName(std::string_view name) {
  for (AeadId a : {AeadId::kAes256Gcm, AeadId::kChaCha20Poly1305, AeadId::kExportOnly}) {
    if (AeadName(a) == name) return a;
  }
  return InvalidArgument("unknown HPKE AEAD \"" + std::string(name) +
                         "\" (expected AES-256-GCM, ChaCha20-Poly1305 or export-only)");
}

SuiteSizes GetSuiteSizes(const Suite& suite) noexcept {
  const crypto::KemSizes kem = crypto::GetKemSizes(KemAlgorithmFor(suite.kem));
  SuiteSizes s{};
  s.enc = kem.ciphertext;
  s.public_key = kem.public_key;
  s.hash = suite.kdf == KdfId::kHkdfSha256 ? 32 : 48;
  if (suite.aead != AeadId::kExportOnly) {
    s.key = 32;
    s.nonce = 12;
    s.tag = 16;
  }
  return s;
}

Result<Psk> Psk::Create(SecretBytes psk, ByteView psk_id) {
  // 5.1 VerifyPSKInputs: both or neither; a Psk object always has both.
  if (psk.empty() || psk_id.empty()) {
    return InvalidArgument("PSK mode needs both a PSK and a PSK id (RFC 9180, 5.1)");
  }
  if (psk.size() < kMinPskSize) {
    return InvalidArgument("a PSK must have at least 32 bytes (RFC 9180, 9.5), got " + std::to_string(psk.size()));
  }
  if (psk_id.size() > kMaxPskIdSize) return InvalidArgument("a PSK id may have at most 255 bytes");
  return Psk(std::move(psk), Bytes(psk_id.begin(), psk_id.end()));
}

// ---------------------------------------------------------------------------------------------
// Key schedule (5.1)

namespace internal {

RawSuite ToRawSuite(const Suite& suite) noexcept {
  const SuiteSizes sizes = GetSuiteSizes(suite);
  return {static_cast<std::uint16_t>(suite.kem), static_cast<std::uint16_t>(suite.kdf),
          static_cast<std::uint16_t>(suite.aead), sizes.key, sizes.nonce};
}

crypto::HashAlgorithm KdfHash(std::uint16_t kdf_id) noexcept {
  return kdf_id == 0x0002 ? crypto::HashAlgorithm::kSha384 : crypto::HashAlgorithm::kSha256;
}

Bytes HpkeSuiteId(const RawSuite& suite) {
  Bytes id;
  Append(id, std::string_view("HPKE"));
  AppendU16(id, suite.kem_id);
  AppendU16(id, suite.kdf_id);
  AppendU16(id, suite.aead_id);
  return id;
}

Result<PseudorandomKey> LabeledExtract(crypto::HashAlgorithm hash, ByteView suite_id, ByteView salt,
                                       std::string_view label, ByteView ikm) {
  // labeled_ikm = concat("HPKE-v1", suite_id, label, ikm); Extract(salt, labeled_ikm)
  Bytes prefix;
  Append(prefix, kHpkeVersionLabel);
  Append(prefix, suite_id);
  Append(prefix, label);
  const SecretBytes labeled_ikm = Concat(prefix, ikm);
  return crypto::HkdfExtract(hash, salt, labeled_ikm.view());
}

Result<SecretBytes> LabeledExpand(crypto::HashAlgorithm hash, ByteView suite_id, const PseudorandomKey& prk,
                                  std::string_view label, ByteView info, std::size_t length) {
  // labeled_info = concat(I2OSP(L, 2), "HPKE-v1", suite_id, label, info); Expand(prk, labeled_info, L)
  if (length > 0xffff) return InvalidArgument("LabeledExpand length above 65535");
  Bytes labeled_info;
  AppendU16(labeled_info, static_cast<std::uint16_t>(length));
  Append(labeled_info, kHpkeVersionLabel);
  Append(labeled_info, suite_id);
  Append(labeled_info, label);
  Append(labeled_info, info);
  return crypto::HkdfExpand(hash, prk, labeled_info, length);
}

Result<KeyScheduleOutput> KeySchedule(const RawSuite& suite, ByteView shared_secret, ByteView info, const Psk* psk) {
  QSAPI_RETURN_IF_ERROR(CheckInfo(info));
  const Bytes suite_id = HpkeSuiteId(suite);
  const crypto::HashAlgorithm hash = KdfHash(suite.kdf_id);
  const Mode mode = psk != nullptr ? Mode::kPsk : Mode::kBase;
  const ByteView psk_bytes = psk != nullptr ? psk->psk() : ByteView{};
  const ByteView psk_id = psk != nullptr ? psk->id() : ByteView{};

  QSAPI_ASSIGN_OR_RETURN(const PseudorandomKey psk_id_hash, LabeledExtract(hash, suite_id, {}, "psk_id_hash", psk_id));
  QSAPI_ASSIGN_OR_RETURN(const PseudorandomKey info_hash, LabeledExtract(hash, suite_id, {}, "info_hash", info));
  // key_schedule_context = concat(mode, psk_id_hash, info_hash); public values.
  Bytes context;
  context.push_back(static_cast<std::uint8_t>(mode));
  Append(context, psk_id_hash.view());
  Append(context, info_hash.view());

  QSAPI_ASSIGN_OR_RETURN(const PseudorandomKey secret,
                         LabeledExtract(hash, suite_id, shared_secret, "secret", psk_bytes));
  KeyScheduleOutput out;
  if (suite.nk != 0) {
    QSAPI_ASSIGN_OR_RETURN(out.key, LabeledExpand(hash, suite_id, secret, "key", context, suite.nk));
    QSAPI_ASSIGN_OR_RETURN(out.base_nonce, LabeledExpand(hash, suite_id, secret, "base_nonce", context, suite.nn));
  }
  // The exporter secret is an Expand output that RFC 9180 uses as a PRK (Export's LabeledExpand).
  QSAPI_ASSIGN_OR_RETURN(SecretBytes exporter_secret,
                         LabeledExpand(hash, suite_id, secret, "exp", context, crypto::HashSize(hash)));
  out.exporter_secret = PseudorandomKey(std::move(exporter_secret));
  return out;
}

std::uint64_t MaxBytesPerContext(AeadId aead) noexcept {
  switch (aead) {
    case AeadId::kAes256Gcm: return std::uint64_t{1} << 38;
    case AeadId::kChaCha20Poly1305: return std::uint64_t{1} << 50;
    case AeadId::kExportOnly: return 0;
  }
  return 0;
}

ContextState::ContextState(const Suite& suite, Mode mode, std::optional<crypto::Aead> aead, SecretBytes base_nonce,
                           PseudorandomKey exporter_secret, Bytes suite_id)
    : suite_(suite),
      mode_(mode),
      aead_(std::move(aead)),
      base_nonce_(std::move(base_nonce)),
      exporter_secret_(std::move(exporter_secret)),
      suite_id_(std::move(suite_id)),
      bytes_left_(MaxBytesPerContext(suite.aead)) {}

Result<std::unique_ptr<ContextState>> ContextState::Create(const Suite& suite, ByteView shared_secret, ByteView info,
                                                           const Psk* psk) {
  const RawSuite raw = ToRawSuite(suite);
  QSAPI_ASSIGN_OR_RETURN(KeyScheduleOutput ks, KeySchedule(raw, shared_secret, info, psk));
  std::optional<crypto::Aead> aead;
  if (suite.aead != AeadId::kExportOnly) {
    QSAPI_ASSIGN_OR_RETURN(crypto::Aead a,
                           crypto::Aead::New(AeadAlgorithmFor(suite.aead), SymmetricKey(std::move(ks.key))));
    aead.emplace(std::move(a));
  }
  return std::unique_ptr<ContextState>(new ContextState(suite, psk != nullptr ? Mode::kPsk : Mode::kBase,
                                                        std::move(aead), std::move(ks.base_nonce),
                                                        std::move(ks.exporter_secret), HpkeSuiteId(raw)));
}

void ContextState::ComputeNonce(std::span<std::uint8_t, 12> out) const noexcept {
  // nonce = base_nonce XOR I2OSP(seq, Nn); seq is 64 bits, so the first 4 bytes are base_nonce's.
  std::copy(base_nonce_.data(), base_nonce_.data() + 12, out.data());
  for (int i = 0; i < 8; ++i) {
    out[11 - i] ^= static_cast<std::uint8_t>(seq_ >> (8 * i));
  }
}

Status ContextState::CheckLimits(std::size_t bytes) const {
  if (!aead_) return FailedPrecondition("an export-only HPKE context cannot seal or open");
  // 5.2 IncrementSeq: the sequence number must not wrap. Ours is 64 bits (below the RFC's
  // 2^(8*Nn) - 1), so the last usable value is 2^64 - 2.
  if (seq_ == std::numeric_limits<std::uint64_t>::max()) {
    return ResourceExhausted("HPKE message limit reached: the context's sequence number is exhausted");
  }
  if (bytes > bytes_left_) {
    return ResourceExhausted("HPKE context byte limit reached (" + std::string(AeadName(suite_.aead)) +
                             "); seal the rest under a new context");
  }
  return OkStatus();
}

Status ContextState::Seal(ByteView plaintext, ByteView aad, std::span<std::uint8_t> out) {
  QSAPI_RETURN_IF_ERROR(CheckLimits(plaintext.size()));
  if (out.size() != plaintext.size() + 16) return InvalidArgument("HPKE Seal output buffer has the wrong size");
  std::array<std::uint8_t, 12> nonce{};
  ComputeNonce(nonce);
  QSAPI_RETURN_IF_ERROR(aead_->SealWithNonce(nonce, plaintext, aad, out));
  ++seq_;
  bytes_left_ -= plaintext.size();
  return OkStatus();
}

Status ContextState::Open(ByteView ciphertext, ByteView aad, std::span<std::uint8_t> out) {
  if (!aead_) return FailedPrecondition("an export-only HPKE context cannot seal or open");
  if (ciphertext.size() < 16 || out.size() != ciphertext.size() - 16) {
    SecureZero(out.data(), out.size());
    return AuthenticationFailed();
  }
  if (Status s = CheckLimits(out.size()); !s.ok()) {
    SecureZero(out.data(), out.size());
    return s;
  }
  std::array<std::uint8_t, 12> nonce{};
  ComputeNonce(nonce);
  if (Status s = aead_->OpenWithNonce(nonce, ciphertext, aad, out); !s.ok()) {
    SecureZero(out.data(), out.size());
    return AuthenticationFailed();
  }
  ++seq_;
  bytes_left_ -= out.size();
  return OkStatus();
}

Result<SecretBytes> ContextState::Export(ByteView exporter_context, std::size_t length) const {
  const crypto::HashAlgorithm hash = KdfHash(static_cast<std::uint16_t>(suite_.kdf));
  if (length == 0 || length > 255 * crypto::HashSize(hash)) {
    return InvalidArgument("HPKE Export length must be 1.." + std::to_string(255 * crypto::HashSize(hash)) + " bytes");
  }
  if (exporter_context.size() > kMaxInfoSize) return InvalidArgument("HPKE exporter context is longer than 64 KiB");
  return LabeledExpand(hash, suite_id_, exporter_secret_, "sec", exporter_context, length);
}

Result<SenderSetup> SetupSenderWithEncapsulationForTesting(const Suite& suite, const crypto::KemEncapsulation& kem,
                                                           ByteView info, const Psk* psk) {
  QSAPI_ASSIGN_OR_RETURN(auto state, ContextState::Create(suite, kem.shared_secret.view(), info, psk));
  return SenderSetup{Bytes(kem.ciphertext.view().begin(), kem.ciphertext.view().end()),
                     SenderContext(std::move(state))};
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// Contexts (5.2, 5.3)

Context::Context(std::unique_ptr<internal::ContextState> state) noexcept : state_(std::move(state)) {}
Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;
Context::~Context() = default;
SenderContext::SenderContext(std::unique_ptr<internal::ContextState> state) noexcept : Context(std::move(state)) {}
RecipientContext::RecipientContext(std::unique_ptr<internal::ContextState> state) noexcept
    : Context(std::move(state)) {}

const Suite& Context::suite() const noexcept { return state_->suite(); }
Mode Context::mode() const noexcept { return state_->mode(); }
std::uint64_t Context::sequence_number() const noexcept { return state_->seq(); }

Result<SecretBytes> Context::Export(ByteView exporter_context, std::size_t length) const {
  return state_->Export(exporter_context, length);
}

Result<Bytes> SenderContext::Seal(ByteView plaintext, ByteView aad) {
  Bytes out(plaintext.size() + GetSuiteSizes(suite()).tag);
  QSAPI_RETURN_IF_ERROR(state().Seal(plaintext, aad, out));
  return out;
}

Status SenderContext::SealInto(ByteView plaintext, ByteView aad, std::span<std::uint8_t> out) {
  return state().Seal(plaintext, aad, out);
}

Result<Bytes> RecipientContext::Open(ByteView ciphertext, ByteView aad) {
  if (suite().aead == AeadId::kExportOnly) return FailedPrecondition("an export-only HPKE context cannot open");
  if (ciphertext.size() < 16) return AuthenticationFailed();
  Bytes out(ciphertext.size() - 16);
  QSAPI_RETURN_IF_ERROR(state().Open(ciphertext, aad, out));
  return out;
}

Status RecipientContext::OpenInto(ByteView ciphertext, ByteView aad, std::span<std::uint8_t> out) {
  return state().Open(ciphertext, aad, out);
}

// ---------------------------------------------------------------------------------------------
// Setup (5.1.1, 5.1.2) and single-shot APIs (6)

Result<SenderSetup> SetupSender(const Suite& suite, const crypto::KemPublicKey& recipient, ByteView info,
                                const Psk* psk) {
  QSAPI_RETURN_IF_ERROR(CheckSuiteKem(suite, recipient.algorithm()));
  QSAPI_RETURN_IF_ERROR(CheckInfo(info));
  // Encap(pkR): for these KEMs the KEM's own encapsulation (draft-ietf-hpke-pq, 3 and 4).
  QSAPI_ASSIGN_OR_RETURN(const crypto::KemEncapsulation kem, recipient.Encapsulate());
  QSAPI_ASSIGN_OR_RETURN(auto state, internal::ContextState::Create(suite, kem.shared_secret.view(), info, psk));
  return SenderSetup{Bytes(kem.ciphertext.view().begin(), kem.ciphertext.view().end()),
                     SenderContext(std::move(state))};
}

Result<RecipientContext> SetupRecipient(const Suite& suite, ByteView enc, const RecipientKey& recipient, ByteView info,
                                        const Psk* psk) {
  QSAPI_RETURN_IF_ERROR(CheckSuiteKem(suite, recipient.algorithm()));
  QSAPI_RETURN_IF_ERROR(CheckInfo(info));
  if (enc.size() != GetSuiteSizes(suite).enc) return AuthenticationFailed();
  Result<SharedSecret> shared_secret = recipient.Decapsulate(enc);
  if (!shared_secret) return AuthenticationFailed();
  QSAPI_ASSIGN_OR_RETURN(auto state, internal::ContextState::Create(suite, shared_secret->view(), info, psk));
  return RecipientContext(std::move(state));
}

Result<Sealed> Seal(const Suite& suite, const crypto::KemPublicKey& recipient, ByteView info, ByteView aad,
                    ByteView plaintext, const Psk* psk) {
  QSAPI_ASSIGN_OR_RETURN(SenderSetup setup, SetupSender(suite, recipient, info, psk));
  QSAPI_ASSIGN_OR_RETURN(Bytes ct, setup.context.Seal(plaintext, aad));
  return Sealed{std::move(setup.enc), std::move(ct)};
}

Result<Bytes> Open(const Suite& suite, const RecipientKey& recipient, ByteView enc, ByteView info, ByteView aad,
                   ByteView ciphertext, const Psk* psk) {
  QSAPI_ASSIGN_OR_RETURN(RecipientContext context, SetupRecipient(suite, enc, recipient, info, psk));
  return context.Open(ciphertext, aad);
}

Result<SentExport> SendExport(const Suite& suite, const crypto::KemPublicKey& recipient, ByteView info,
                              ByteView exporter_context, std::size_t length, const Psk* psk) {
  QSAPI_ASSIGN_OR_RETURN(SenderSetup setup, SetupSender(suite, recipient, info, psk));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes secret, setup.context.Export(exporter_context, length));
  return SentExport{std::move(setup.enc), std::move(secret)};
}

Result<SecretBytes> ReceiveExport(const Suite& suite, const RecipientKey& recipient, ByteView enc, ByteView info,
                                  ByteView exporter_context, std::size_t length, const Psk* psk) {
  QSAPI_ASSIGN_OR_RETURN(RecipientContext context, SetupRecipient(suite, enc, recipient, info, psk));
  return context.Export(exporter_context, length);
}

}  // namespace qsapi::hpke
