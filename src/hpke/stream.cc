// The STREAM format over an HPKE context, and the body readers of both container formats.
// docs/PROTOCOL.md, "STREAM", describes every byte; stream.h says what each failure means.
#include "qsapi/hpke/stream.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/internal/text.h"
#include "hpke/internal/container_internal.h"
#include "qsapi/crypto/kdf.h"

namespace qsapi::hpke {
namespace {

constexpr std::size_t kTagSize = 16;
constexpr std::size_t kFrameSize = 5;  // flag (1) | ct_len (4)
constexpr std::uint8_t kMoreFlag = 0x00;
constexpr std::uint8_t kLastFlag = 0x01;

// ReadFull reads until `out` is full or the source ends; returns the bytes read.
Result<std::size_t> ReadFull(ByteSource& source, std::span<std::uint8_t> out) {
  std::size_t got = 0;
  while (got < out.size()) {
    QSAPI_ASSIGN_OR_RETURN(const std::size_t n, source.Read(out.subspan(got)));
    if (n == 0) break;
    got += n;
  }
  return got;
}

// ChunkAad is SHA-256(header) | I2OSP(counter, 8) | flag.
void ChunkAad(ByteView header_digest, std::uint64_t counter, std::uint8_t flag, Bytes& aad) {
  aad.assign(header_digest.begin(), header_digest.end());
  for (int shift = 56; shift >= 0; shift -= 8) aad.push_back(static_cast<std::uint8_t>(counter >> shift));
  aad.push_back(flag);
}

void PutFrame(std::uint8_t flag, std::uint32_t ct_len, std::uint8_t* out) {
  out[0] = flag;
  out[1] = static_cast<std::uint8_t>(ct_len >> 24);
  out[2] = static_cast<std::uint8_t>(ct_len >> 16);
  out[3] = static_cast<std::uint8_t>(ct_len >> 8);
  out[4] = static_cast<std::uint8_t>(ct_len);
}

// AtEnd is OkStatus() when the source has nothing more; trailing data is AuthenticationFailed().
Status AtEnd(ByteSource& source) {
  std::array<std::uint8_t, 1> probe{};
  Result<std::size_t> n = ReadFull(source, probe);
  if (!n) return n.error();
  if (*n != 0) return AuthenticationFailed();
  return OkStatus();
}

Status OpenSingleBody(internal::OpenState& state, ByteSource& source, ByteSink& sink, const OpenOptions& options) {
  std::array<std::uint8_t, 4> len_bytes{};
  QSAPI_ASSIGN_OR_RETURN(const std::size_t got, ReadFull(source, len_bytes));
  if (got != len_bytes.size()) return AuthenticationFailed();
  const std::uint32_t ct_len = (std::uint32_t{len_bytes[0]} << 24) | (std::uint32_t{len_bytes[1]} << 16) |
                               (std::uint32_t{len_bytes[2]} << 8) | len_bytes[3];
  if (ct_len < kTagSize || ct_len > kMaxSingleShotSize + kTagSize) return AuthenticationFailed();
  Bytes ct(ct_len);
  QSAPI_ASSIGN_OR_RETURN(const std::size_t ct_got, ReadFull(source, ct));
  if (ct_got != ct.size()) return AuthenticationFailed();
  QSAPI_RETURN_IF_ERROR(AtEnd(source));
  Bytes aad = state.header_digest;
  aad.insert(aad.end(), options.aad.begin(), options.aad.end());
  Bytes pt(ct_len - kTagSize);
  if (Status s = state.context.OpenInto(ct, aad, pt); !s.ok()) return AuthenticationFailed();
  QSAPI_RETURN_IF_ERROR(sink.Write(pt));
  if (options.progress) options.progress(pt.size());
  return OkStatus();
}

Status OpenStreamBody(const ContainerHeader& header, internal::OpenState& state, ByteSource& source, ByteSink& sink,
                      const OpenOptions& options) {
  if (!options.aad.empty()) return InvalidArgument("a STREAM sealed message takes no associated data");
  const std::size_t max_ct = std::size_t{header.chunk_size} + kTagSize;
  Bytes ct(max_ct);
  Bytes pt(header.chunk_size);
  Bytes aad;
  std::array<std::uint8_t, kFrameSize> frame{};
  std::uint64_t done = 0;
  for (std::uint64_t counter = 0;; ++counter) {
    QSAPI_ASSIGN_OR_RETURN(const std::size_t got, ReadFull(source, frame));
    if (got != frame.size()) return AuthenticationFailed();  // truncated: the last chunk is missing
    const std::uint8_t flag = frame[0];
    const std::size_t ct_len =
        (std::size_t{frame[1]} << 24) | (std::size_t{frame[2]} << 16) | (std::size_t{frame[3]} << 8) | frame[4];
    if (flag != kMoreFlag && flag != kLastFlag) return AuthenticationFailed();
    if (flag == kMoreFlag ? ct_len != max_ct : (ct_len < kTagSize || ct_len > max_ct)) return AuthenticationFailed();
    const std::span<std::uint8_t> ct_span(ct.data(), ct_len);
    QSAPI_ASSIGN_OR_RETURN(const std::size_t ct_got, ReadFull(source, ct_span));
    if (ct_got != ct_len) return AuthenticationFailed();
    ChunkAad(state.header_digest, counter, flag, aad);
    const std::span<std::uint8_t> pt_span(pt.data(), ct_len - kTagSize);
    if (Status s = state.context.OpenInto(ct_span, aad, pt_span); !s.ok()) {
      return s.error().code() == ErrorCode::kResourceExhausted ? s : AuthenticationFailed();
    }
    if (flag == kLastFlag) QSAPI_RETURN_IF_ERROR(AtEnd(source));  // nothing may follow the last chunk
    QSAPI_RETURN_IF_ERROR(sink.Write(pt_span));
    done += pt_span.size();
    if (options.progress) options.progress(done);
    if (flag == kLastFlag) return OkStatus();
  }
}

}  // namespace

Result<std::size_t> MemorySource::Read(std::span<std::uint8_t> out) {
  const std::size_t n = std::min(out.size(), data_.size() - offset_);
  std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(offset_), n, out.begin());
  offset_ += n;
  return n;
}

Status MemorySink::Write(ByteView data) {
  if (data.size() > limit_ - bytes_.size()) return ResourceExhausted("output is larger than the in-memory limit");
  bytes_.insert(bytes_.end(), data.begin(), data.end());
  return OkStatus();
}

Result<std::size_t> FdSource::Read(std::span<std::uint8_t> out) {
  for (;;) {
    const ssize_t n = ::read(fd_, out.data(), out.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    return Unavailable(std::string("read failed: ") + qsapi::internal::ErrnoText(errno));
  }
}

Status FdSink::Write(ByteView data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("write failed: ") + qsapi::internal::ErrnoText(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

Status SealStream(const crypto::KemPublicKey& recipient, ByteView key_id, ByteSource& source, ByteSink& sink,
                  const SealOptions& options) {
  if (!options.aad.empty()) return InvalidArgument("a STREAM sealed message takes no associated data");
  ContainerHeader header;
  header.format = ContainerFormat::kStream;
  header.suite = options.suite;
  header.mode = options.psk != nullptr ? Mode::kPsk : Mode::kBase;
  header.key_id.assign(key_id.begin(), key_id.end());
  if (options.psk != nullptr) header.psk_id.assign(options.psk->id().begin(), options.psk->id().end());
  header.chunk_size = options.chunk_size;
  QSAPI_ASSIGN_OR_RETURN(const Bytes info, HeaderInfo(header));
  QSAPI_ASSIGN_OR_RETURN(SenderSetup setup, SetupSender(options.suite, recipient, info, options.psk));
  header.enc = std::move(setup.enc);
  QSAPI_ASSIGN_OR_RETURN(const Bytes encoded, SerializeHeader(header));
  QSAPI_ASSIGN_OR_RETURN(const Bytes digest, crypto::Hash(crypto::HashAlgorithm::kSha256, encoded));
  QSAPI_RETURN_IF_ERROR(sink.Write(encoded));

  const std::size_t chunk = options.chunk_size;
  Bytes current(chunk);
  Bytes next(chunk);
  Bytes framed(kFrameSize + chunk + kTagSize);
  Bytes aad;
  QSAPI_ASSIGN_OR_RETURN(std::size_t current_len, ReadFull(source, current));
  std::uint64_t done = 0;
  for (std::uint64_t counter = 0;; ++counter) {
    // A full chunk is the last one only if nothing follows it: read the next one ahead.
    std::size_t next_len = 0;
    if (current_len == chunk) {
      QSAPI_ASSIGN_OR_RETURN(next_len, ReadFull(source, next));
    }
    const bool last = next_len == 0;
    const std::uint8_t flag = last ? kLastFlag : kMoreFlag;
    const std::size_t ct_len = current_len + kTagSize;
    PutFrame(flag, static_cast<std::uint32_t>(ct_len), framed.data());
    ChunkAad(digest, counter, flag, aad);
    QSAPI_RETURN_IF_ERROR(setup.context.SealInto(ByteView(current.data(), current_len), aad,
                                                 std::span<std::uint8_t>(framed.data() + kFrameSize, ct_len)));
    QSAPI_RETURN_IF_ERROR(sink.Write(ByteView(framed.data(), kFrameSize + ct_len)));
    done += current_len;
    if (options.progress) options.progress(done);
    if (last) return OkStatus();
    current.swap(next);
    current_len = next_len;
  }
}

Result<ParsedHeader> ReadHeader(ByteSource& source) {
  // The fixed part up to key_id_len, then each length-prefixed field: never more than
  // kMaxHeaderSize bytes, and never past the header.
  Bytes buf(14);
  auto need = [&](std::size_t more) -> Status {
    const std::size_t old = buf.size();
    buf.resize(old + more);
    QSAPI_ASSIGN_OR_RETURN(const std::size_t got, ReadFull(source, std::span<std::uint8_t>(buf).subspan(old)));
    if (got != more) return InvalidArgument("sealed message header is truncated");
    return OkStatus();
  };
  QSAPI_ASSIGN_OR_RETURN(const std::size_t got, ReadFull(source, buf));
  if (got != buf.size()) return InvalidArgument("sealed message header is truncated (or this is not a sealed message)");
  if (!std::equal(kContainerMagic.begin(), kContainerMagic.end(), buf.begin())) {
    return InvalidArgument("not a qsapi sealed message (no \"QSHP\" magic)");
  }
  QSAPI_RETURN_IF_ERROR(need(buf[13] + 1U));          // key_id, psk_id_len
  QSAPI_RETURN_IF_ERROR(need(buf.back() + 4U + 2U));  // psk_id, chunk_size, enc_len
  const std::size_t enc_len = (std::size_t{buf[buf.size() - 2]} << 8) | buf.back();
  if (enc_len > kMaxEncSize) return InvalidArgument("sealed-message enc is longer than any KEM's");
  QSAPI_RETURN_IF_ERROR(need(enc_len));
  QSAPI_ASSIGN_OR_RETURN(ParsedHeader parsed, ParseHeader(buf));
  if (parsed.size != buf.size()) return Internal("sealed-message header length mismatch");
  return parsed;
}

Status OpenBody(const ContainerHeader& header, ByteSource& source, const RecipientKey& recipient, ByteSink& sink,
                const OpenOptions& options) {
  QSAPI_ASSIGN_OR_RETURN(internal::OpenState state, internal::PrepareOpen(header, recipient, options));
  if (header.format == ContainerFormat::kSingle) return OpenSingleBody(state, source, sink, options);
  return OpenStreamBody(header, state, source, sink, options);
}

Status OpenAny(ByteSource& source, const RecipientKey& recipient, ByteSink& sink, const OpenOptions& options) {
  QSAPI_ASSIGN_OR_RETURN(const ParsedHeader parsed, ReadHeader(source));
  return OpenBody(parsed.header, source, recipient, sink, options);
}

}  // namespace qsapi::hpke
