// Fuzzes the parser of QRNG HTTP service payloads (JSON arrays, JSON objects, hex strings).
// The first input byte selects the expected length and the JSON field; the rest is the body.
// Invariants checked: no crash or sanitizer report; a success has exactly the expected length;
// a failure is kInvalidArgument, or kUnavailable for "success": false.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "entropy/internal/qrng_payload.h"
#include "fuzz_support.h"

namespace {

using qsapi::fuzz::Check;

constexpr std::size_t kLengths[] = {0, 1, 2, 4, 8, 16, 32, 64};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast,cppcoreguidelines-pro-bounds-pointer-arithmetic)
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t expected = kLengths[selector % std::size(kLengths)];
  const std::string_view field = (selector & 0x80) != 0 ? "random" : "data";
  const std::size_t limit = (selector & 0x40) != 0 ? 64 : qsapi::entropy::internal::kDefaultMaxPayloadBytes;
  const qsapi::Result<qsapi::Bytes> r = qsapi::entropy::internal::ParseQrngPayload(body, expected, field, limit);
  if (r.ok()) {
    Check(r->size() == expected);
  } else {
    Check(r.error().code() == qsapi::ErrorCode::kInvalidArgument || r.error().code() == qsapi::ErrorCode::kUnavailable);
    Check(!r.error().message().empty());
  }
  return 0;
}
