// Fuzzes the API token file reader (server::TokenStore::Load): the input is written to a scratch
// file (mode 0600) and loaded, then a well-formed but unknown token is presented.
// Invariants checked: no crash, exception or sanitizer report; a failure is kDataLoss naming the
// file; a store loaded has entries with 8-hex-digit ids and 64-hex-digit hashes, and refuses a
// token that matches none of them with kPermissionDenied.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fuzz_support.h"
#include "server/tokens.h"

namespace {

using qsapi::fuzz::Check;

const std::filesystem::path& ScratchFile() {
  static const std::filesystem::path path = qsapi::fuzz::ScratchFile("tokens", ".json");
  return path;
}

using qsapi::fuzz::WriteFile;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path& path = ScratchFile();
  Check(WriteFile(path, data, size));
  qsapi::Result<qsapi::server::TokenStore> store = qsapi::server::TokenStore::Load(path);
  ::unlink(path.c_str());
  if (!store.ok()) {
    Check(store.error().code() == qsapi::ErrorCode::kDataLoss);
    Check(store.error().message().find(path.string()) != std::string::npos);
    return 0;
  }
  for (const auto& e : store->entries()) Check(e.id.size() == 8 && e.hash.size() == 64);
  // SHA-256 of this token is no hash a corpus entry holds, so it must be refused.
  const auto who = store->Authenticate("qsapi_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  Check(!who.ok() && who.error().code() == qsapi::ErrorCode::kPermissionDenied);
  return 0;
}
