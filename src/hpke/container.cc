// The sealed-message container: header encoding and parsing, and the single-ciphertext format.
// docs/PROTOCOL.md, "Sealed messages", describes every byte.
#include "qsapi/hpke/container.h"

#include <string>

#include "hpke/internal/container_internal.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/hpke/stream.h"

namespace qsapi::hpke {
namespace {

std::string HexOf(ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

void PutU16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void PutU32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

// Reader walks a byte string with bounds checks.
class Reader {
 public:
  explicit Reader(ByteView in) noexcept : in_(in) {}
  bool Take(std::size_t n, ByteView& out) {
    if (in_.size() - pos_ < n) return false;
    out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool U8(std::uint8_t& v) {
    ByteView b;
    if (!Take(1, b)) return false;
    v = b[0];
    return true;
  }
  bool U16(std::uint16_t& v) {
    ByteView b;
    if (!Take(2, b)) return false;
    v = static_cast<std::uint16_t>((b[0] << 8) | b[1]);
    return true;
  }
  bool U32(std::uint32_t& v) {
    ByteView b;
    if (!Take(4, b)) return false;
    v = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
    return true;
  }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }

 private:
  ByteView in_;
  std::size_t pos_ = 0;
};

Error Truncated() { return InvalidArgument("sealed message header is truncated"); }

// EncodeWithoutEnc writes the header up to and including chunk_size (HPKE's info).
Bytes EncodeWithoutEnc(const ContainerHeader& h) {
  Bytes out(kContainerMagic.begin(), kContainerMagic.end());
  out.push_back(kContainerVersion);
  out.push_back(static_cast<std::uint8_t>(h.format));
  PutU16(out, static_cast<std::uint16_t>(h.suite.kem));
  PutU16(out, static_cast<std::uint16_t>(h.suite.kdf));
  PutU16(out, static_cast<std::uint16_t>(h.suite.aead));
  out.push_back(static_cast<std::uint8_t>(h.mode));
  out.push_back(static_cast<std::uint8_t>(h.key_id.size()));
  out.insert(out.end(), h.key_id.begin(), h.key_id.end());
  out.push_back(static_cast<std::uint8_t>(h.psk_id.size()));
  out.insert(out.end(), h.psk_id.begin(), h.psk_id.end());
  PutU32(out, h.chunk_size);
  return out;
}

}  // namespace

namespace internal {

Status CheckHeader(const ContainerHeader& h, bool check_enc) {
  if (h.format != ContainerFormat::kSingle && h.format != ContainerFormat::kStream) {
    return InvalidArgument("unknown sealed-message format");
  }
  if (h.suite.aead == AeadId::kExportOnly) {
    return InvalidArgument("an export-only suite cannot carry a sealed message");
  }
  QSAPI_RETURN_IF_ERROR(Suite::FromIds(static_cast<std::uint16_t>(h.suite.kem), static_cast<std::uint16_t>(h.suite.kdf),
                                       static_cast<std::uint16_t>(h.suite.aead)));
  if (h.key_id.empty() || h.key_id.size() > kMaxKeyIdSize) {
    return InvalidArgument("sealed-message key id must have 1.." + std::to_string(kMaxKeyIdSize) + " bytes");
  }
  if (h.mode == Mode::kBase && !h.psk_id.empty()) return InvalidArgument("a base-mode sealed message has no PSK id");
  if (h.mode == Mode::kPsk && (h.psk_id.empty() || h.psk_id.size() > kMaxPskIdSize)) {
    return InvalidArgument("a PSK-mode sealed message needs a PSK id of 1..255 bytes");
  }
  if (h.mode != Mode::kBase && h.mode != Mode::kPsk) return InvalidArgument("unknown HPKE mode");
  if (h.format == ContainerFormat::kSingle && h.chunk_size != 0) {
    return InvalidArgument("a single-ciphertext sealed message has chunk size 0");
  }
  if (h.format == ContainerFormat::kStream && (h.chunk_size < kMinChunkSize || h.chunk_size > kMaxChunkSize)) {
    return InvalidArgument("sealed-message chunk size must be " + std::to_string(kMinChunkSize) + ".." +
                           std::to_string(kMaxChunkSize) + " bytes");
  }
  if (check_enc && h.enc.size() != GetSuiteSizes(h.suite).enc) {
    return InvalidArgument("sealed-message enc has the wrong length for " + std::string(KemName(h.suite.kem)));
  }
  return OkStatus();
}

Result<OpenState> PrepareOpen(const ContainerHeader& header, const RecipientKey& recipient,
                              const OpenOptions& options) {
  QSAPI_RETURN_IF_ERROR(CheckHeader(header, true));
  if (!ConstantTimeEqual(recipient.key_id(), header.key_id)) {
    return FailedPrecondition("this message is sealed to key id " + HexOf(header.key_id) + "; the key given has id " +
                              HexOf(recipient.key_id()));
  }
  if (KemAlgorithmFor(header.suite.kem) != recipient.algorithm()) {
    return FailedPrecondition("this message is sealed with " + std::string(KemName(header.suite.kem)) +
                              ", but the key given is a " +
                              std::string(crypto::KemAlgorithmName(recipient.algorithm())) + " key");
  }
  if (header.mode == Mode::kPsk) {
    if (options.psk == nullptr) {
      return FailedPrecondition("this message is sealed with a pre-shared key (PSK id " + HexOf(header.psk_id) +
                                "); give that PSK");
    }
    if (!ConstantTimeEqual(options.psk->id(), header.psk_id)) {
      return FailedPrecondition("this message is sealed with PSK id " + HexOf(header.psk_id) +
                                "; the PSK given has id " + HexOf(options.psk->id()));
    }
  } else if (options.psk != nullptr) {
    return FailedPrecondition("this message is sealed without a pre-shared key, but one was given");
  }
  QSAPI_ASSIGN_OR_RETURN(const Bytes info, HeaderInfo(header));
  QSAPI_ASSIGN_OR_RETURN(const Bytes encoded, SerializeHeader(header));
  QSAPI_ASSIGN_OR_RETURN(Bytes digest, crypto::Hash(crypto::HashAlgorithm::kSha256, encoded));
  Result<RecipientContext> context = SetupRecipient(header.suite, header.enc, recipient, info, options.psk);
  if (!context) return AuthenticationFailed();
  return OpenState{std::move(context).value(), std::move(digest)};
}

}  // namespace internal

Result<Bytes> SerializeHeader(const ContainerHeader& header) {
  QSAPI_RETURN_IF_ERROR(internal::CheckHeader(header, true));
  Bytes out = EncodeWithoutEnc(header);
  PutU16(out, static_cast<std::uint16_t>(header.enc.size()));
  out.insert(out.end(), header.enc.begin(), header.enc.end());
  return out;
}

Result<Bytes> HeaderInfo(const ContainerHeader& header) {
  QSAPI_RETURN_IF_ERROR(internal::CheckHeader(header, false));
  return EncodeWithoutEnc(header);
}

Result<ParsedHeader> ParseHeader(ByteView input) {
  Reader r(input);
  ByteView magic;
  if (!r.Take(kContainerMagic.size(), magic)) return Truncated();
  if (!std::equal(magic.begin(), magic.end(), kContainerMagic.begin())) {
    return InvalidArgument("not a qsapi sealed message (no \"QSHP\" magic)");
  }
  std::uint8_t version = 0;
  std::uint8_t format = 0;
  if (!r.U8(version) || !r.U8(format)) return Truncated();
  if (version != kContainerVersion) {
    return InvalidArgument("sealed-message version " + std::to_string(version) +
                           " is not supported (this build reads " + std::to_string(kContainerVersion) + ")");
  }
  if (format != static_cast<std::uint8_t>(ContainerFormat::kSingle) &&
      format != static_cast<std::uint8_t>(ContainerFormat::kStream)) {
    return InvalidArgument("unknown sealed-message format " + std::to_string(format));
  }
  std::uint16_t kem = 0;
  std::uint16_t kdf = 0;
  std::uint16_t aead = 0;
  std::uint8_t mode = 0;
  if (!r.U16(kem) || !r.U16(kdf) || !r.U16(aead) || !r.U8(mode)) return Truncated();
  QSAPI_ASSIGN_OR_RETURN(const Suite suite, Suite::FromIds(kem, kdf, aead));
  if (mode > static_cast<std::uint8_t>(Mode::kPsk)) return InvalidArgument("unknown HPKE mode " + std::to_string(mode));
  ParsedHeader parsed;
  ContainerHeader& h = parsed.header;
  h.format = static_cast<ContainerFormat>(format);
  h.suite = suite;
  h.mode = static_cast<Mode>(mode);
  std::uint8_t len8 = 0;
  ByteView field;
  if (!r.U8(len8)) return Truncated();
  if (len8 == 0 || len8 > kMaxKeyIdSize) return InvalidArgument("sealed-message key id length out of bounds");
  if (!r.Take(len8, field)) return Truncated();
  h.key_id.assign(field.begin(), field.end());
  if (!r.U8(len8)) return Truncated();
  if (!r.Take(len8, field)) return Truncated();
  h.psk_id.assign(field.begin(), field.end());
  if (!r.U32(h.chunk_size)) return Truncated();
  std::uint16_t enc_len = 0;
  if (!r.U16(enc_len)) return Truncated();
  if (enc_len != GetSuiteSizes(suite).enc) {
    return InvalidArgument("sealed-message enc has the wrong length for " + std::string(KemName(suite.kem)));
  }
  if (!r.Take(enc_len, field)) return Truncated();
  h.enc.assign(field.begin(), field.end());
  QSAPI_RETURN_IF_ERROR(internal::CheckHeader(h, true));
  parsed.size = r.pos();
  return parsed;
}

Result<Bytes> SealMessage(const crypto::KemPublicKey& recipient, ByteView key_id, ByteView plaintext,
                          const SealOptions& options) {
  if (plaintext.size() > kMaxSingleShotSize) {
    return InvalidArgument("a single-ciphertext sealed message holds at most 64 MiB; use the STREAM format");
  }
  ContainerHeader header;
  header.format = ContainerFormat::kSingle;
  header.suite = options.suite;
  header.mode = options.psk != nullptr ? Mode::kPsk : Mode::kBase;
  header.key_id.assign(key_id.begin(), key_id.end());
  if (options.psk != nullptr) header.psk_id.assign(options.psk->id().begin(), options.psk->id().end());
  header.chunk_size = 0;
  QSAPI_ASSIGN_OR_RETURN(const Bytes info, HeaderInfo(header));
  QSAPI_ASSIGN_OR_RETURN(SenderSetup setup, SetupSender(options.suite, recipient, info, options.psk));
  header.enc = std::move(setup.enc);
  QSAPI_ASSIGN_OR_RETURN(Bytes out, SerializeHeader(header));
  QSAPI_ASSIGN_OR_RETURN(const Bytes digest, crypto::Hash(crypto::HashAlgorithm::kSha256, out));
  Bytes aad = digest;
  aad.insert(aad.end(), options.aad.begin(), options.aad.end());
  const std::size_t ct_len = plaintext.size() + GetSuiteSizes(options.suite).tag;
  PutU32(out, static_cast<std::uint32_t>(ct_len));
  const std::size_t ct_offset = out.size();
  out.resize(ct_offset + ct_len);
  QSAPI_RETURN_IF_ERROR(setup.context.SealInto(plaintext, aad, std::span<std::uint8_t>(out).subspan(ct_offset)));
  if (options.progress) options.progress(plaintext.size());
  return out;
}

Result<Bytes> OpenMessage(ByteView container, const RecipientKey& recipient, const OpenOptions& options) {
  // The single format straight from the buffer (no copies): header || ct_len (4) || ct.
  QSAPI_ASSIGN_OR_RETURN(const ParsedHeader parsed, ParseHeader(container));
  if (parsed.header.format != ContainerFormat::kSingle) {
    return InvalidArgument("OpenMessage takes a single-ciphertext sealed message; open a STREAM with OpenAny");
  }
  QSAPI_ASSIGN_OR_RETURN(internal::OpenState state, internal::PrepareOpen(parsed.header, recipient, options));
  const ByteView body = container.subspan(parsed.size);
  if (body.size() < 4) return AuthenticationFailed();
  const std::size_t ct_len =
      (std::size_t{body[0]} << 24) | (std::size_t{body[1]} << 16) | (std::size_t{body[2]} << 8) | body[3];
  constexpr std::size_t kTag = 16;
  if (ct_len < kTag || ct_len > kMaxSingleShotSize + kTag || body.size() != 4 + ct_len) return AuthenticationFailed();
  Bytes aad = state.header_digest;
  aad.insert(aad.end(), options.aad.begin(), options.aad.end());
  Bytes pt(ct_len - kTag);
  if (Status s = state.context.OpenInto(body.subspan(4), aad, pt); !s.ok()) return AuthenticationFailed();
  if (options.progress) options.progress(pt.size());
  return pt;
}

}  // namespace qsapi::hpke
