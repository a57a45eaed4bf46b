// Fuzzes the parsers of ETSI GS QKD 014 responses a KME sends: the Key container (with the
// expectations a call would have), the Status object and error bodies.
// The first input byte selects the parser and the expectation; the rest is the body.
// Invariants checked: no crash or sanitizer report; a Key container accepted has exactly the
// expected number of keys, each with a UUID key_ID, a non-empty key of the expected (or one common)
// size, no duplicate IDs; every failure is DATA_LOSS with a message; the body is wiped afterwards.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "fuzz_support.h"
#include "qkd/internal/etsi014_json.h"

namespace {

using qsapi::fuzz::Check;

constexpr std::size_t kNumbers[] = {0, 1, 2, 3};
constexpr std::uint32_t kSizes[] = {0, 8, 128, 256};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast,cppcoreguidelines-pro-bounds-pointer-arithmetic)
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  namespace internal = qsapi::qkd::internal;
  switch (selector % 4) {
    case 0:
    case 1: {
      internal::KeyContainerExpectation expect;
      expect.number = kNumbers[(selector >> 2) % 4];
      expect.size_bits = kSizes[(selector >> 4) % 4];
      const std::string ids[] = {"6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a01", "6f6b7d57-7d3a-4a38-8e3e-0c5a1c1f2a02"};
      if ((selector & 0x40) != 0) {
        expect.key_ids = std::span<const std::string>(ids, 1 + (selector >> 7));
        expect.number = expect.key_ids.size();
      }
      const std::size_t original_size = body.size();
      auto r = internal::ParseKeyContainer(body, expect);
      Check(body.size() == original_size);
      Check(std::all_of(body.begin(), body.end(), [](char c) { return c == 0; }));
      if (r.ok()) {
        Check(!r->empty());
        if (expect.number != 0) Check(r->size() == expect.number);
        std::set<std::string> seen;
        for (const auto& k : *r) {
          Check(qsapi::qkd::IsValidKeyId(k.key_id));
          Check(!k.key.empty());
          Check(k.key.size() == (*r)[0].key.size());
          if (expect.size_bits != 0) Check(k.key.size() * 8 == expect.size_bits);
          std::string lower = k.key_id;
          std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
          Check(seen.insert(lower).second);
        }
        for (std::size_t i = 0; i < expect.key_ids.size(); ++i) Check((*r)[i].key_id == expect.key_ids[i]);
      } else {
        Check(r.error().code() == qsapi::ErrorCode::kDataLoss);
        Check(!r.error().message().empty());
      }
      break;
    }
    case 2: {
      auto r = internal::ParseStatus(body);
      if (r.ok()) {
        Check(r->min_key_size <= r->max_key_size);
      } else {
        Check(r.error().code() == qsapi::ErrorCode::kDataLoss);
      }
      break;
    }
    default: {
      auto m = internal::ErrorMessage(body);
      if (m) {
        Check(m->size() <= 203);
        Check(std::all_of(m->begin(), m->end(), [](char c) { return c >= 0x20 && c < 0x7f; }));
      }
      break;
    }
  }
  return 0;
}
