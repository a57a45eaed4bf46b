// Fuzzes the API token file reader (server::TokenStore::Load): the input is written to a scratch
// file (mode 0600) and loaded, then a well-formed but unknown token is presented.
// Invariants checked: no crash, exception or sanitizer report; a failure is kDataLoss naming the
// file; a store loaded has entries with 8-hex-digit ids and 64-hex-digit hashes, and refuses a
// token that matches none of them with kPermissionDenied.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <string>

#include "server/tokens.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

const std::filesystem::path& ScratchFile() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("qsapi-fuzz-tokens-" + std::to_string(::getpid()) + ".json");
  return path;
}

bool WriteFile(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = size == 0 || ::write(fd, data, size) == static_cast<ssize_t>(size);
  ::close(fd);
  return ok;
}

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
