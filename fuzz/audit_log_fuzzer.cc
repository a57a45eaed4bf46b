// Fuzzes the audit log readers: VerifyAuditLog (every line, the hash chain) and AuditLog::Open
// (the last line, to continue the chain), on the input written to a scratch file.
// Invariants checked: no crash, exception or sanitizer report; failures are kDataLoss (or
// kInvalidArgument / kUnavailable for I/O); and when a file verifies with n lines, Open succeeds,
// one more entry appends, and the file then verifies with n + 1 lines: a log that verifies can
// always be continued without breaking its chain.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fuzz_support.h"
#include "server/audit_log.h"

namespace {

using qsapi::fuzz::Check;

const std::filesystem::path& ScratchFile() {
  static const std::filesystem::path path = qsapi::fuzz::ScratchFile("audit", ".log");
  return path;
}

using qsapi::fuzz::WriteFile;

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
