// The envelope's binary and text forms (qsapi/session/envelope.h; docs/PROTOCOL.md).
#include "qsapi/session/envelope.h"

#include <string>

#include <sodium.h>

#include "session/internal/envelope_format.h"

namespace qsapi::session {
namespace {

std::uint32_t ReadU32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}
std::uint64_t ReadU64(const std::uint8_t* p) {
  return (std::uint64_t{ReadU32(p)} << 32) | std::uint64_t{ReadU32(p + 4)};
}
void WriteU32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
void WriteU64(std::uint8_t* p, std::uint64_t v) {
  WriteU32(p, static_cast<std::uint32_t>(v >> 32));
  WriteU32(p + 4, static_cast<std::uint32_t>(v));
}

Status CheckMaxPayload(std::size_t max_payload) {
  if (max_payload == 0 || max_payload > kMaxEnvelopePayloadLimit) {
    return InvalidArgument("envelope payload bound must be 1.." + std::to_string(kMaxEnvelopePayloadLimit) +
                           " bytes, got " + std::to_string(max_payload));
  }
  return OkStatus();
}

}  // namespace

Result<ParsedEnvelope> ParseEnvelope(ByteView envelope, std::size_t max_payload) {
  QSAPI_RETURN_IF_ERROR(CheckMaxPayload(max_payload));
  const std::uint8_t* p = envelope.data();
  if (envelope.size() < kEnvelopeHeaderSize) {
    return InvalidArgument("envelope too short: " + std::to_string(envelope.size()) + " bytes, the header alone is " +
                           std::to_string(kEnvelopeHeaderSize));
  }
  if (p[0] != kEnvelopeMagic[0] || p[1] != kEnvelopeMagic[1])
    return InvalidArgument("not a session envelope (bad magic)");
  if (p[2] != kEnvelopeVersion) {
    return InvalidArgument("unsupported envelope version " + std::to_string(p[2]) + " (this build reads version 1)");
  }
  ParsedEnvelope out;
  EnvelopeHeader& h = out.header;
  if (p[3] != static_cast<std::uint8_t>(AeadSuite::kAes256Gcm) &&
      p[3] != static_cast<std::uint8_t>(AeadSuite::kXChaCha20Poly1305)) {
    return InvalidArgument("unknown envelope suite " + std::to_string(p[3]));
  }
  h.suite = static_cast<AeadSuite>(p[3]);
  h.flags = p[4];
  if ((h.flags & ~(kFlagStreamChunk | kFlagFinalChunk)) != 0) {
    return InvalidArgument("unknown envelope flags " + std::to_string(h.flags) + " (known: 1 stream, 2 final)");
  }
  if (h.is_final_chunk() && !h.is_stream_chunk()) return InvalidArgument("final-chunk flag without the stream flag");
  for (std::size_t i = 0; i < kSessionIdSize; ++i) h.session_id[i] = p[5 + i];
  h.epoch = ReadU32(p + 21);
  h.sequence = ReadU64(p + 25);
  const std::uint32_t ct_len = ReadU32(p + 33);
  std::size_t header_size = kEnvelopeHeaderSize;
  if (h.is_stream_chunk()) {
    header_size = kStreamEnvelopeHeaderSize;
    if (envelope.size() < header_size) return InvalidArgument("stream envelope too short for its stream fields");
    h.stream_id = ReadU64(p + 37);
    h.chunk_index = ReadU32(p + 45);
  }
  if (ct_len < kEnvelopeTagSize || ct_len - kEnvelopeTagSize > max_payload) {
    return InvalidArgument("envelope ciphertext length " + std::to_string(ct_len) + " out of bounds (16.." +
                           std::to_string(max_payload + kEnvelopeTagSize) + ")");
  }
  if (envelope.size() - header_size != ct_len) {
    return InvalidArgument("envelope length mismatch: header says " + std::to_string(ct_len) + " ciphertext bytes, " +
                           std::to_string(envelope.size() - header_size) + " follow");
  }
  out.header_bytes = envelope.first(header_size);
  out.ciphertext = envelope.subspan(header_size);
  return out;
}

namespace internal {

void WriteEnvelopeHeader(const EnvelopeHeader& header, std::size_t payload_size, std::uint8_t* p) noexcept {
  p[0] = kEnvelopeMagic[0];
  p[1] = kEnvelopeMagic[1];
  p[2] = kEnvelopeVersion;
  p[3] = static_cast<std::uint8_t>(header.suite);
  p[4] = header.flags;
  for (std::size_t i = 0; i < kSessionIdSize; ++i) p[5 + i] = header.session_id[i];
  WriteU32(p + 21, header.epoch);
  WriteU64(p + 25, header.sequence);
  WriteU32(p + 33, static_cast<std::uint32_t>(payload_size + kEnvelopeTagSize));
  if (header.is_stream_chunk()) {
    WriteU64(p + 37, header.stream_id);
    WriteU32(p + 45, header.chunk_index);
  }
}

}  // namespace internal

Bytes EncodeEnvelopeHeader(const EnvelopeHeader& header, std::size_t payload_size) {
  Bytes out(internal::HeaderSize(header));
  internal::WriteEnvelopeHeader(header, payload_size, out.data());
  return out;
}

std::string EnvelopeToText(ByteView envelope) {
  std::string b64(sodium_base64_ENCODED_LEN(envelope.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(b64.data(), b64.size(), envelope.data(), envelope.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  b64.resize(b64.size() - 1);  // the terminating NUL
  return std::string(kEnvelopeTextPrefix) + b64;
}

Result<Bytes> EnvelopeFromText(std::string_view text, std::size_t max_payload) {
  QSAPI_RETURN_IF_ERROR(CheckMaxPayload(max_payload));
  if (text.substr(0, kEnvelopeTextPrefix.size()) != kEnvelopeTextPrefix) {
    return InvalidArgument("text envelope must start with \"qse1:\"");
  }
  const std::string_view b64 = text.substr(kEnvelopeTextPrefix.size());
  const std::size_t max_binary = kStreamEnvelopeHeaderSize + kEnvelopeTagSize + max_payload;
  if (b64.size() > (max_binary * 4 + 2) / 3) {
    return InvalidArgument("text envelope longer than the envelope bound (" + std::to_string(b64.size()) +
                           " characters)");
  }
  Bytes out(b64.size() * 3 / 4 + 1);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != b64.data() + b64.size()) {
    return InvalidArgument("text envelope is not valid base64url (no padding)");
  }
  out.resize(len);
  return out;
}

}  // namespace qsapi::session
