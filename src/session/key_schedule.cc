#include "qsapi/session/key_schedule.h"

#include <string>
#include <utility>

#include "qsapi/crypto/kdf.h"

namespace qsapi::session {
namespace {

using crypto::HashAlgorithm;

constexpr HashAlgorithm kHash = HashAlgorithm::kSha384;

bool ValidSuite(AeadSuite suite) { return suite == AeadSuite::kAes256Gcm || suite == AeadSuite::kXChaCha20Poly1305; }

void Append(Bytes& out, ByteView data) { out.insert(out.end(), data.begin(), data.end()); }
void Append(Bytes& out, std::string_view text) { out.insert(out.end(), text.begin(), text.end()); }
void AppendU32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

// Info returns label || 0x00 || context: the label has no NUL, so the encoding is prefix-free.
Bytes Info(std::string_view label, ByteView context) {
  Bytes info;
  info.reserve(label.size() + 1 + context.size());
  Append(info, label);
  info.push_back(0x00);
  Append(info, context);
  return info;
}

// Ikm builds an IKM in secret memory: I2OSP(len, 2) || secret, for each secret.
class Ikm {
 public:
  explicit Ikm(std::size_t capacity) : buf_(capacity) {}
  void Add(ByteView secret) {
    buf_.data()[used_++] = static_cast<std::uint8_t>(secret.size() >> 8);
    buf_.data()[used_++] = static_cast<std::uint8_t>(secret.size());
    for (std::uint8_t b : secret) buf_.data()[used_++] = b;
  }
  [[nodiscard]] ByteView view() const { return buf_.view().first(used_); }

 private:
  SecretBytes buf_;
  std::size_t used_ = 0;
};

Status CheckSize(std::string_view field, ByteView value, std::size_t expected) {
  if (value.size() != expected) {
    return InvalidArgument(std::string(field) + " must be " + std::to_string(expected) + " bytes, got " +
                           std::to_string(value.size()));
  }
  return OkStatus();
}

Status CheckQkdSize(std::string_view field, ByteView value) {
  if (!value.empty() && (value.size() < kQkdKeyMinSize || value.size() > kQkdKeyMaxSize)) {
    return InvalidArgument(std::string(field) + " must be empty or " + std::to_string(kQkdKeyMinSize) + ".." +
                           std::to_string(kQkdKeyMaxSize) + " bytes, got " + std::to_string(value.size()));
  }
  return OkStatus();
}

Status CheckSuite(AeadSuite suite) {
  if (!ValidSuite(suite)) {
    return InvalidArgument("unknown session AEAD suite " + std::to_string(static_cast<unsigned>(suite)) +
                           " (expected 1 = AES-256-GCM or 2 = XChaCha20-Poly1305)");
  }
  return OkStatus();
}

}  // namespace

std::string_view AeadSuiteName(AeadSuite suite) noexcept {
  switch (suite) {
    case AeadSuite::kAes256Gcm: return "AES-256-GCM";
    case AeadSuite::kXChaCha20Poly1305: return "XChaCha20-Poly1305";
  }
  return "unknown";
}

Result<AeadSuite> ParseAeadSuite(std::string_view name) {
  if (name == "AES-256-GCM" || name == "aes-256-gcm") return AeadSuite::kAes256Gcm;
  if (name == "XChaCha20-Poly1305" || name == "xchacha20-poly1305") return AeadSuite::kXChaCha20Poly1305;
  return InvalidArgument("unknown session AEAD suite \"" + std::string(name) +
                         "\" (expected AES-256-GCM or XChaCha20-Poly1305)");
}

std::size_t NonceSize(AeadSuite suite) noexcept {
  switch (suite) {
    case AeadSuite::kAes256Gcm: return 12;
    case AeadSuite::kXChaCha20Poly1305: return 24;
  }
  return 0;
}

std::string_view SourceIdName(SourceId id) noexcept {
  switch (id) {
    case SourceId::kTlsExporter: return "tls-exporter";
    case SourceId::kQkd: return "qkd";
    case SourceId::kQrngInitiator: return "qrng-initiator";
    case SourceId::kQrngResponder: return "qrng-responder";
  }
  return "unknown";
}

Bytes EncodeSourceList(const std::vector<SourceId>& sources) {
  Bytes out;
  out.reserve(1 + sources.size());
  out.push_back(static_cast<std::uint8_t>(sources.size()));
  for (SourceId id : sources) out.push_back(static_cast<std::uint8_t>(id));
  return out;
}

Result<SessionKeys> DeriveSessionKeys(const KeyScheduleInput& in) {
  QSAPI_RETURN_IF_ERROR(CheckSize("session id", in.session_id, kSessionIdSize));
  QSAPI_RETURN_IF_ERROR(CheckSuite(in.suite));
  QSAPI_RETURN_IF_ERROR(CheckSize("TLS exporter secret", in.tls_exporter, kExporterSize));
  QSAPI_RETURN_IF_ERROR(CheckQkdSize("QKD key material", in.qkd_key));
  if (!in.qrng_initiator.empty()) {
    QSAPI_RETURN_IF_ERROR(CheckSize("initiator QRNG contribution", in.qrng_initiator, kQrngContributionSize));
  }
  if (!in.qrng_responder.empty()) {
    QSAPI_RETURN_IF_ERROR(CheckSize("responder QRNG contribution", in.qrng_responder, kQrngContributionSize));
  }
  QSAPI_RETURN_IF_ERROR(CheckSize("context hash", in.context_hash, kContextHashSize));

  SessionKeys keys;
  keys.sources.push_back(SourceId::kTlsExporter);
  if (!in.qkd_key.empty()) keys.sources.push_back(SourceId::kQkd);
  if (!in.qrng_initiator.empty()) keys.sources.push_back(SourceId::kQrngInitiator);
  if (!in.qrng_responder.empty()) keys.sources.push_back(SourceId::kQrngResponder);

  // IKM: the secrets in the fixed source order, each length-prefixed (TS 103 744 CatKDF style).
  Ikm ikm(std::size_t{2} * 4 + in.tls_exporter.size() + in.qkd_key.size() + in.qrng_initiator.size() +
          in.qrng_responder.size());
  ikm.Add(in.tls_exporter);
  if (!in.qkd_key.empty()) ikm.Add(in.qkd_key);
  if (!in.qrng_initiator.empty()) ikm.Add(in.qrng_initiator);
  if (!in.qrng_responder.empty()) ikm.Add(in.qrng_responder);

  const ByteView salt(reinterpret_cast<const std::uint8_t*>(kExtractSalt.data()),  // NOLINT
                      kExtractSalt.size());
  QSAPI_ASSIGN_OR_RETURN(PseudorandomKey prk, crypto::HkdfExtract(kHash, salt, ikm.view()));

  // ctx = session_id || suite || n || ids || context_hash
  Bytes ctx;
  ctx.reserve(kSessionIdSize + 1 + 1 + keys.sources.size() + kContextHashSize);
  Append(ctx, in.session_id);
  ctx.push_back(static_cast<std::uint8_t>(in.suite));
  Append(ctx, ByteView(EncodeSourceList(keys.sources)));
  Append(ctx, in.context_hash);

  QSAPI_ASSIGN_OR_RETURN(SecretBytes epoch_secret,
                         crypto::HkdfExpand(kHash, prk, Info(kEpochZeroLabel, ctx), kEpochSecretSize));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes confirm_initiator,
                         crypto::HkdfExpand(kHash, prk, Info(kConfirmInitiatorLabel, ctx), kConfirmKeySize));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes confirm_responder,
                         crypto::HkdfExpand(kHash, prk, Info(kConfirmResponderLabel, ctx), kConfirmKeySize));
  keys.epoch_secret = EpochSecret(std::move(epoch_secret));
  keys.confirm_key_initiator = InitiatorConfirmKey(std::move(confirm_initiator));
  keys.confirm_key_responder = ResponderConfirmKey(std::move(confirm_responder));
  return keys;
}

namespace {

// The role byte of a confirmation MAC: the initiator's 0x01, the responder's 0x02.
constexpr std::uint8_t kInitiatorRoleByte = 0x01;
constexpr std::uint8_t kResponderRoleByte = 0x02;

Result<Bytes> ConfirmationInput(ByteView confirm_key, std::uint8_t role, ByteView context_hash) {
  QSAPI_RETURN_IF_ERROR(CheckSize("confirmation key", confirm_key, kConfirmKeySize));
  QSAPI_RETURN_IF_ERROR(CheckSize("context hash", context_hash, kContextHashSize));
  Bytes data;
  data.reserve(kConfirmMacLabel.size() + 1 + context_hash.size());
  Append(data, kConfirmMacLabel);
  data.push_back(role);
  Append(data, context_hash);
  return data;
}

Result<Bytes> Mac(ByteView confirm_key, std::uint8_t role, ByteView context_hash) {
  QSAPI_ASSIGN_OR_RETURN(Bytes data, ConfirmationInput(confirm_key, role, context_hash));
  return crypto::Hmac(kHash, confirm_key, data);
}

Status VerifyMac(ByteView confirm_key, std::uint8_t role, ByteView context_hash, ByteView mac) {
  QSAPI_ASSIGN_OR_RETURN(Bytes data, ConfirmationInput(confirm_key, role, context_hash));
  if (mac.size() != kConfirmMacSize) return AuthenticationFailed();
  return crypto::HmacVerify(kHash, confirm_key, data, mac);
}

// AsPrk hands an epoch secret to HKDF-Expand, which the schedule defines it to be a PRK of.
PseudorandomKey AsPrk(const EpochSecret& epoch_secret) { return PseudorandomKey::CopyFrom(epoch_secret.view()); }

}  // namespace

Result<Bytes> ConfirmationMac(const InitiatorConfirmKey& confirm_key, ByteView context_hash) {
  return Mac(confirm_key.view(), kInitiatorRoleByte, context_hash);
}
Result<Bytes> ConfirmationMac(const ResponderConfirmKey& confirm_key, ByteView context_hash) {
  return Mac(confirm_key.view(), kResponderRoleByte, context_hash);
}
Status VerifyConfirmationMac(const InitiatorConfirmKey& confirm_key, ByteView context_hash, ByteView mac) {
  return VerifyMac(confirm_key.view(), kInitiatorRoleByte, context_hash, mac);
}
Status VerifyConfirmationMac(const ResponderConfirmKey& confirm_key, ByteView context_hash, ByteView mac) {
  return VerifyMac(confirm_key.view(), kResponderRoleByte, context_hash, mac);
}

Result<EpochKeys> DeriveEpochKeys(const EpochSecret& epoch_secret, AeadSuite suite, ByteView session_id,
                                  std::uint32_t epoch) {
  QSAPI_RETURN_IF_ERROR(CheckSize("epoch secret", epoch_secret.view(), kEpochSecretSize));
  QSAPI_RETURN_IF_ERROR(CheckSuite(suite));
  QSAPI_RETURN_IF_ERROR(CheckSize("session id", session_id, kSessionIdSize));
  Bytes ectx;
  ectx.reserve(kSessionIdSize + 1 + 4);
  Append(ectx, session_id);
  ectx.push_back(static_cast<std::uint8_t>(suite));
  AppendU32(ectx, epoch);
  const std::size_t nonce_size = NonceSize(suite);

  const PseudorandomKey prk = AsPrk(epoch_secret);
  EpochKeys keys;
  QSAPI_ASSIGN_OR_RETURN(SecretBytes ki, crypto::HkdfExpand(kHash, prk, Info(kKeyInitiatorLabel, ectx), kAeadKeySize));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes kr, crypto::HkdfExpand(kHash, prk, Info(kKeyResponderLabel, ectx), kAeadKeySize));
  keys.initiator_key = SymmetricKey(std::move(ki));
  keys.responder_key = SymmetricKey(std::move(kr));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes ni, crypto::HkdfExpand(kHash, prk, Info(kNonceInitiatorLabel, ectx), nonce_size));
  QSAPI_ASSIGN_OR_RETURN(SecretBytes nr, crypto::HkdfExpand(kHash, prk, Info(kNonceResponderLabel, ectx), nonce_size));
  keys.initiator_nonce_prefix.assign(ni.view().begin(), ni.view().end());
  keys.responder_nonce_prefix.assign(nr.view().begin(), nr.view().end());
  return keys;
}

Result<EpochSecret> NextEpochSecret(const EpochSecret& epoch_secret, ByteView fresh_qkd_key, ByteView session_id,
                                    std::uint32_t next_epoch) {
  QSAPI_RETURN_IF_ERROR(CheckSize("epoch secret", epoch_secret.view(), kEpochSecretSize));
  QSAPI_RETURN_IF_ERROR(CheckQkdSize("fresh QKD key material", fresh_qkd_key));
  QSAPI_RETURN_IF_ERROR(CheckSize("session id", session_id, kSessionIdSize));
  if (next_epoch == 0) return InvalidArgument("the ratchet's next epoch must be >= 1");

  Ikm ikm(2 + fresh_qkd_key.size());
  ikm.Add(fresh_qkd_key);
  QSAPI_ASSIGN_OR_RETURN(PseudorandomKey prk, crypto::HkdfExtract(kHash, epoch_secret.view(), ikm.view()));

  Bytes ctx;
  ctx.reserve(kSessionIdSize + 4 + 1);
  Append(ctx, session_id);
  AppendU32(ctx, next_epoch);
  ctx.push_back(fresh_qkd_key.empty() ? 0x00 : 0x01);
  QSAPI_ASSIGN_OR_RETURN(SecretBytes next, crypto::HkdfExpand(kHash, prk, Info(kRatchetLabel, ctx), kEpochSecretSize));
  return EpochSecret(std::move(next));
}

}  // namespace qsapi::session
