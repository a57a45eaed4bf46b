// qsapi/hpke/stream.h: sealing and opening input of any size in bounded memory.
//
// The STREAM format (docs/PROTOCOL.md, "STREAM"): after the container header (container.h,
// format kStream) come chunks
//
//   chunk_i = flag (1: 0x00 more, 0x01 last) | ct_len (4) | ct_i
//   ct_i    = HPKE context Seal(pt_i, aad_i), sequence number i
//   aad_i   = SHA-256(header) | I2OSP(i, 8) | flag
//
// Every chunk but the last carries exactly chunk_size plaintext bytes; the last carries
// 0..chunk_size. Because the chunk counter is HPKE's sequence number (it sets the nonce) and
// appears with the last-chunk flag in the associated data, a reordered, duplicated, dropped or
// truncated stream, a stream whose last chunk was cut off, data after the last chunk, or an edited
// header all fail with AuthenticationFailed().
//
// Plaintext is handed to the sink one authenticated chunk at a time: a stream that fails part way
// has already released the chunks before the failure, each of them authentic. A caller that must
// not leave partial plaintext behind writes to a temporary place and keeps it only on success (the
// CLI writes a temporary file and renames it).
//
// Memory: a sealer or opener holds at most three chunk buffers (3 MiB at kMaxChunkSize).
#ifndef QSAPI_HPKE_STREAM_H_
#define QSAPI_HPKE_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "qsapi/hpke/container.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::hpke {

// ByteSource yields input. Read fills up to out.size() bytes and returns how many; 0 means the end.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  [[nodiscard]] virtual Result<std::size_t> Read(std::span<std::uint8_t> out) = 0;
};

// ByteSink takes output.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  [[nodiscard]] virtual Status Write(ByteView data) = 0;
};

// MemorySource reads from a buffer it does not own.
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(ByteView data) noexcept : data_(data) {}
  Result<std::size_t> Read(std::span<std::uint8_t> out) override;

 private:
  ByteView data_;
  std::size_t offset_ = 0;
};

// MemorySink collects everything written, up to `limit` bytes (kResourceExhausted beyond).
class MemorySink final : public ByteSink {
 public:
  explicit MemorySink(std::size_t limit = kMaxSingleShotSize + (std::size_t{1} << 20)) noexcept : limit_(limit) {}
  Status Write(ByteView data) override;
  [[nodiscard]] const Bytes& bytes() const noexcept { return bytes_; }

 private:
  std::size_t limit_;
  Bytes bytes_;
};

// FdSource / FdSink read from / write to a file descriptor they do not own (EINTR is retried).
class FdSource final : public ByteSource {
 public:
  explicit FdSource(int fd) noexcept : fd_(fd) {}
  Result<std::size_t> Read(std::span<std::uint8_t> out) override;

 private:
  int fd_;
};
class FdSink final : public ByteSink {
 public:
  explicit FdSink(int fd) noexcept : fd_(fd) {}
  Status Write(ByteView data) override;

 private:
  int fd_;
};

// SealStream seals everything `source` yields to `recipient` in the STREAM format, writing the
// container to `sink`. options.aad must be empty (the header is the associated data).
Status SealStream(const crypto::KemPublicKey& recipient, ByteView key_id, ByteSource& source, ByteSink& sink,
                  const SealOptions& options = {});

// ReadHeader reads exactly one container header from `source` (at most kMaxHeaderSize bytes), so
// that the caller can choose the key by header.key_id before opening the body.
Result<ParsedHeader> ReadHeader(ByteSource& source);

// OpenBody opens what follows `header` in `source` (either format) and writes the plaintext to
// `sink`. Errors as OpenMessage (container.h).
Status OpenBody(const ContainerHeader& header, ByteSource& source, const RecipientKey& recipient, ByteSink& sink,
                const OpenOptions& options = {});

// OpenAny is ReadHeader followed by OpenBody.
Status OpenAny(ByteSource& source, const RecipientKey& recipient, ByteSink& sink, const OpenOptions& options = {});

}  // namespace qsapi::hpke

#endif  // QSAPI_HPKE_STREAM_H_
