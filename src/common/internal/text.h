// Small text helpers shared by the library's parts (not part of the public API).
#ifndef QSAPI_COMMON_INTERNAL_TEXT_H_
#define QSAPI_COMMON_INTERNAL_TEXT_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "qsapi/secret.h"

namespace qsapi::internal {

// HexEncode returns the lower-case hex form of `bytes`, in constant time (no table lookup or
// branch on the bytes), so that it may encode digests of secrets.
std::string HexEncode(ByteView bytes);
// HexDecode reads hex digits (either case, no separators); nullopt for anything else. Not for
// secrets (it branches on the digits).
std::optional<Bytes> HexDecode(std::string_view hex);
// IsLowerHex: every character of `s` is one of [0-9a-f] (the form HexEncode writes; empty is true).
bool IsLowerHex(std::string_view s) noexcept;

// JsonDepthWithin tells whether the brackets of `s` (outside strings) nest no deeper than `limit`,
// so that a hostile body cannot drive a recursive JSON parser into deep recursion.
bool JsonDepthWithin(std::string_view s, int limit);

// ErrnoText is strerror(err) made thread-safe (strerror_r into a local buffer).
std::string ErrnoText(int err);

// FormatUtc writes `t` in UTC to the second: "2026-11-29T13:58:04Z"; FormatUtcDate: "2026-11-29".
std::string FormatUtc(std::chrono::system_clock::time_point t);
std::string FormatUtcDate(std::chrono::system_clock::time_point t);

}  // namespace qsapi::internal

#endif  // QSAPI_COMMON_INTERNAL_TEXT_H_
