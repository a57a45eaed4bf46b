// Fuzzes qsapid's configuration parser (server::ParseConfig) with the input as TOML text.
// Invariants checked: no crash, exception or sanitizer report; every failure is kInvalidArgument
// with a message naming the file; a success has a data directory and values inside the ranges the
// parser promises.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_support.h"
#include "server/config.h"

namespace {
using qsapi::fuzz::Check;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (std::size_t{1} << 20)) return 0;  // LoadConfig refuses files above 1 MiB
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const qsapi::Result<qsapi::server::Config> c = qsapi::server::ParseConfig(text, "fuzz.toml");
  if (!c.ok()) {
    Check(c.error().code() == qsapi::ErrorCode::kInvalidArgument);
    Check(c.error().message().find("fuzz.toml") != std::string::npos);
    return 0;
  }
  Check(!c->data_dir.empty());
  Check(c->server.threads >= 1);
  Check(c->server.max_body_bytes >= 1);
  for (const auto& p : c->peers) {
    Check(!p.name.empty() && !p.host.empty() && p.port != 0);
    if (p.qkd != qsapi::SourcePolicy::kOff) {
      bool found = false;
      for (const auto& k : c->kmes) found = found || k.name == p.kme;
      Check(found && !p.remote_sae_id.empty());
    }
  }
  return 0;
}
