// Fuzzes the audit log readers: VerifyAuditLog (every line, the hash chain) and AuditLog::Open
// (the last line, to continue the chain), on the input written to a scratch file.
// Invariants checked: no crash, exception or sanitizer report; failures are kDataLoss (or
// kInvalidArgument / kUnavailable for I/O); and when a file verifies with n lines, Open succeeds,
// one more entry appends, and the file then verifies with n + 1 lines: a log that verifies can
// always be continued without breaking its chain.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <string>

#include "server/audit_log.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

const std::filesystem::path& ScratchFile() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("qsapi-fuzz-audit-" + std::to_string(::getpid()) + ".log");
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
  using qsapi::ErrorCode;
  const std::filesystem::path& path = ScratchFile();
  Check(WriteFile(path, data, size));
  const auto verified = qsapi::server::VerifyAuditLog(path);
  if (!verified.ok()) Check(verified.error().code() == ErrorCode::kDataLoss);
  auto log = qsapi::server::AuditLog::Open(path);
  if (!log.ok()) {
    Check(!verified.ok());
    Check(log.error().code() == ErrorCode::kDataLoss);
  } else {
    const qsapi::Status appended = (*log)->Append({.who = "fuzz",
                                                   .action = "encrypt",
                                                   .key = "k",
                                                   .version = 1,
                                                   .result = "ok",
                                                   .request_id = "r",
                                                   .detail = {}});
    if (verified.ok()) {
      Check(appended.ok());
      log->reset();
      const auto again = qsapi::server::VerifyAuditLog(path);
      Check(again.ok() && again->lines == verified->lines + 1);
    }
  }
  ::unlink(path.c_str());
  return 0;
}
