#include "common/internal/text.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>

namespace qsapi::internal {

namespace {

// HexDigit maps 0..15 to '0'..'9', 'a'..'f' with arithmetic only: no table indexed by the value
// and no branch on it, so that hex-encoding a digest of a secret (an API token's hash) leaks
// nothing through the cache (tests/ct/ checks it under valgrind).
char HexDigit(unsigned n) {
  // For n > 9, 9 - n wraps around and its high bits are set: add the gap from '9' + 1 to 'a'.
  return static_cast<char>(n + '0' + (((9U - n) >> 8) & static_cast<unsigned>('a' - '0' - 10)));
}

}  // namespace

std::string HexEncode(ByteView bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out += HexDigit(static_cast<unsigned>(b) >> 4);
    out += HexDigit(static_cast<unsigned>(b) & 0xfU);
  }
  return out;
}

bool IsLowerHex(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<Bytes> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>((hi << 4) | lo));
  }
  return out;
}

namespace {
std::tm Utc(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}
}  // namespace

std::string FormatUtc(std::chrono::system_clock::time_point t) {
  const std::tm tm = Utc(t);
  char buf[32];
  return {buf, std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm)};
}

std::string FormatUtcDate(std::chrono::system_clock::time_point t) {
  const std::tm tm = Utc(t);
  char buf[16];
  return {buf, std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm)};
}

bool JsonDepthWithin(std::string_view s, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : s) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::string ErrnoText(int err) {
  char buffer[256] = {};
  // GNU strerror_r returns the message, in `buffer` or in static storage.
  const char* text = strerror_r(err, buffer, sizeof(buffer));
  return text != nullptr ? std::string(text) : "error " + std::to_string(err);
}

}  // namespace qsapi::internal
