// Parsing of the response body of a QRNG HTTP service (internal to the entropy part).
#ifndef QSAPI_ENTROPY_INTERNAL_QRNG_PAYLOAD_H_
#define QSAPI_ENTROPY_INTERNAL_QRNG_PAYLOAD_H_

#include <cstddef>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::entropy::internal {

// kDefaultMaxPayloadBytes bounds a body when the caller gives no limit of its own.
inline constexpr std::size_t kDefaultMaxPayloadBytes = std::size_t{4} << 20;  // 4 MiB

// ParseQrngPayload decodes `body`, which is one of (surrounding whitespace allowed):
//  - a JSON object whose member `json_field` is an array of integers 0..255 or a hex string,
//    e.g. {"success":true,"type":"uint8","length":4,"data":[1,2,3,255]};
//  - a bare JSON array of integers 0..255, or a JSON string of hex digits;
//  - a bare hex string (an even number of hex digits, nothing else).
// The result must be exactly `expected_bytes` long. Failures: kInvalidArgument for a body over
// `max_body_bytes`, malformed JSON or hex, a value out of range, a missing field or a wrong length;
// kUnavailable when the object says "success": false. Messages never contain payload bytes.
[[nodiscard]] Result<Bytes> ParseQrngPayload(std::string_view body, std::size_t expected_bytes,
                                             std::string_view json_field = "data",
                                             std::size_t max_body_bytes = kDefaultMaxPayloadBytes);

}  // namespace qsapi::entropy::internal

#endif  // QSAPI_ENTROPY_INTERNAL_QRNG_PAYLOAD_H_
