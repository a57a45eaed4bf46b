// Shared by the fuzz targets: the invariant check and a scratch file for readers that take a path.
#ifndef QSAPI_FUZZ_FUZZ_SUPPORT_H_
#define QSAPI_FUZZ_FUZZ_SUPPORT_H_

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <string>

namespace qsapi::fuzz {

// Check aborts on a broken invariant, which libFuzzer reports as a crash with the input.
inline void Check(bool ok) {
  if (!ok) std::abort();
}

// ScratchFile is this process's file `qsapi-fuzz-<stem>-<pid><extension>` in the temp directory.
inline std::filesystem::path ScratchFile(const std::string& stem, const std::string& extension) {
  return std::filesystem::temp_directory_path() / ("qsapi-fuzz-" + stem + "-" + std::to_string(::getpid()) + extension);
}

// WriteFile replaces `path` by a new file (mode 0600) holding the input.
inline bool WriteFile(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = size == 0 || ::write(fd, data, size) == static_cast<ssize_t>(size);
  ::close(fd);
  return ok;
}

}  // namespace qsapi::fuzz

#endif  // QSAPI_FUZZ_FUZZ_SUPPORT_H_
