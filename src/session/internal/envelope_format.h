// Envelope header writing into a caller's buffer (qsapi/session/envelope.h has the format).
#ifndef QSAPI_SESSION_INTERNAL_ENVELOPE_FORMAT_H_
#define QSAPI_SESSION_INTERNAL_ENVELOPE_FORMAT_H_

#include <cstddef>
#include <cstdint>

#include "qsapi/session/envelope.h"

namespace qsapi::session::internal {

// HeaderSize is kStreamEnvelopeHeaderSize for a stream chunk, else kEnvelopeHeaderSize.
inline std::size_t HeaderSize(const EnvelopeHeader& header) noexcept {
  return header.is_stream_chunk() ? kStreamEnvelopeHeaderSize : kEnvelopeHeaderSize;
}

// WriteEnvelopeHeader writes HeaderSize(header) bytes at `p`.
void WriteEnvelopeHeader(const EnvelopeHeader& header, std::size_t payload_size, std::uint8_t* p) noexcept;

}  // namespace qsapi::session::internal

#endif  // QSAPI_SESSION_INTERNAL_ENVELOPE_FORMAT_H_
