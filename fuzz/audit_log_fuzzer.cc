// Fuzzes the audit log readers: VerifyAuditLog (every line, the chain, with and without the
// trail's key) and AuditLog::Open (the last line, to continue the chain), on the input written to
// a scratch file.
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

// The fuzz trail's key: keyed seeds in the corpus are made with it (32 bytes of 0x5a, keyed from
// entry 1), so that the fuzzer reaches the MAC checks and the keyed append.
qsapi::server::AuditKeying FuzzKeying() {
  qsapi::server::AuditKeying k;
  k.key = qsapi::SecretBytes::CopyFrom(qsapi::Bytes(32, 0x5a));
  k.first_seq = 1;
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using qsapi::ErrorCode;
  const std::filesystem::path& path = ScratchFile();
  Check(WriteFile(path, data, size));
  // With the key: every failure is kDataLoss; a trail that verifies can be continued with it.
  static const qsapi::server::AuditKeying keying = FuzzKeying();
  const auto keyed = qsapi::server::VerifyAuditLog(path, &keying);
  if (!keyed.ok()) Check(keyed.error().code() == ErrorCode::kDataLoss);
  if (keyed.ok()) {
    auto log = qsapi::server::AuditLog::Open(path);
    Check(log.ok());
    (*log)->UseKeying({.key = keying.key.Clone(), .first_seq = keying.first_seq, .head_seq = 0, .head_mac = {}});
    Check((*log)->Append({.who = "fuzz", .action = "decrypt", .result = "ok"}).ok());
    log->reset();
    const auto again = qsapi::server::VerifyAuditLog(path, &keying);
    Check(again.ok() && again->lines == keyed->lines + 1);
    Check(WriteFile(path, data, size));
  }
  // Without it: a keyed line is kFailedPrecondition (it cannot be checked), anything else kDataLoss.
  const auto verified = qsapi::server::VerifyAuditLog(path);
  if (!verified.ok()) {
    Check(verified.error().code() == ErrorCode::kDataLoss || verified.error().code() == ErrorCode::kFailedPrecondition);
  }
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
