// Fuzzes the parsers of keystore ciphertexts and signatures as callers hand them in: the binary
// header (ParseHeader) and the text form "qsapi:v<N>:<base64url>" (FromText).
// Invariants: no crash or sanitizer report; a parsed header has version >= 1; FromText succeeds
// only on input whose version prefix matches the decoded header, and ToText(FromText(x)) == x for
// canonical input.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "qsapi/keystore/keystore.h"

namespace {
using qsapi::fuzz::Check;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const qsapi::ByteView bytes(data, size);
  if (auto h = qsapi::keystore::ParseHeader(bytes); h.ok()) {
    Check(h->version >= 1);
    Check(size >= qsapi::keystore::kHeaderSize);
    // Round trip through the text form.
    auto back = qsapi::keystore::FromText(qsapi::keystore::ToText(bytes));
    Check(back.ok() && *back == qsapi::Bytes(bytes.begin(), bytes.end()));
  }
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto b = qsapi::keystore::FromText(text); b.ok()) {
    auto h = qsapi::keystore::ParseHeader(*b);
    Check(h.ok());
    Check(text.starts_with("qsapi:v" + std::to_string(h->version) + ":"));
  } else {
    Check(b.error().code() == qsapi::ErrorCode::kInvalidArgument);
  }
  return 0;
}
