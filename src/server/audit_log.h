// qsapid's audit log: one JSON object per line for every key operation and every denial (who,
// what, key and version, result, request id), never data or secrets. Lines are hash-chained:
//   hash_n = SHA-256(hash_{n-1} || the line's JSON without its "hash" member, keys sorted)
// with hash_0 = 32 zero bytes, so that `qsapi audit verify` detects a removed, reordered, inserted
// or edited line and names it.
//
// Bounded and fail-closed (docs/OPERATIONS.md, "Audit log"):
//   - a line is at most 16 KiB: string fields longer than 1 KiB are cut, and say so;
//   - past max_file_bytes the file is renamed to audit-<first seq, 12 digits>.log beside it and a
//     new audit.log continues the same chain (its first line chains to the last of the old file);
//     with keep_files > 0, older rotated files are deleted, and verify starts at the oldest kept;
//   - a write that fails leaves no partial line (the file is cut back), and Ready() fails while
//     the volume has less than min_free_bytes free or for a second after a failed write, so that
//     the API refuses operations (503) instead of doing them unrecorded;
//   - a log that ends in a partial line (a crash while writing) is refused at Open with the repair
//     command; Repair moves the partial line aside and records the repair in the log itself.
#ifndef QSAPI_SRC_SERVER_AUDIT_LOG_H_
#define QSAPI_SRC_SERVER_AUDIT_LOG_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "qsapi/result.h"

namespace qsapi::server {

struct AuditEvent {
  std::string who;     // token name or client certificate CN
  std::string action;  // "encrypt", "keys.create", ...
  std::string key{};   // key name ("" when none)
  std::uint32_t version = 0;
  std::string result{};                           // "ok", an error code name, "partial" (a batch), "failed"
  std::string request_id{};                       // made by the server
  std::string detail{};                           // short, public (e.g. "batch of 3")
  std::string client_request_id{};                // the client's X-Request-Id, kept beside ours ("" when none)
  std::string source{};                           // the client's address, for authentication lines
  std::map<std::string, std::uint64_t> items{};   // a batch's outcomes: "ok" and error code names
  std::map<std::string, std::uint64_t> counts{};  // aggregated lines: counts by reason
};

struct AuditLogOptions {
  std::uint64_t max_file_bytes = std::uint64_t{64} << 20;
  std::size_t keep_files = 0;  // rotated files kept; 0: all
  std::uint64_t min_free_bytes = std::uint64_t{8} << 20;
};

struct AuditVerifyReport {
  std::uint64_t lines = 0;
  std::uint64_t files = 0;
  std::uint64_t first_seq = 1;  // > 1 when older rotated files were deleted (keep_files)
};

class AuditLog {
 public:
  // Open opens (creating, mode 0600) the log and reads its last line to continue the chain.
  // kDataLoss when the last line is not a valid entry (the message names `qsapi audit repair`).
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& path, AuditLogOptions options = {});
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Append writes one line (one write(2) on an O_APPEND descriptor), rotating first when the file
  // is full. kUnavailable when it cannot be written (nothing of the line is left in the file).
  // Thread-safe.
  Status Append(const AuditEvent& event);

  // Ready says whether an operation may start: kUnavailable while the volume is short of
  // min_free_bytes, or within a second of a failed write (unless it failed for want of space and
  // the volume has min_free_bytes again). Cheap (a healthy volume is checked at
  // most every 250 ms, a short one on every call). Thread-safe.
  Status Ready();

  // VerifyNow checks the whole trail up to the last line written (VerifyAuditLog, safe while other
  // threads append). qsapid runs it at start and every [audit] verify_interval_seconds.
  Result<AuditVerifyReport> VerifyNow();

  [[nodiscard]] std::uint64_t next_seq() const;
  [[nodiscard]] std::uint64_t write_failures() const { return write_failures_.load(); }

 private:
  AuditLog(std::filesystem::path path, AuditLogOptions options, int fd, std::uint64_t seq, std::string prev,
           std::uint64_t size, std::uint64_t first_seq)
      : path_(std::move(path)),
        options_(options),
        fd_(fd),
        seq_(seq),
        prev_(std::move(prev)),
        size_(size),
        first_seq_(first_seq) {}
  Status RotateLocked();

  const std::filesystem::path path_;
  const AuditLogOptions options_;
  mutable std::mutex mu_;
  int fd_;                   // guarded by mu_
  std::uint64_t seq_;        // the next line's number; guarded by mu_
  std::string prev_;         // hex hash of the last line; guarded by mu_
  std::uint64_t size_;       // bytes in the current file; guarded by mu_
  std::uint64_t first_seq_;  // seq of the current file's first line; guarded by mu_
  std::atomic<std::uint64_t> write_failures_{0};
  std::atomic<std::int64_t> failed_at_ms_{0};       // steady clock of the last failed write
  std::atomic<std::int64_t> checked_at_ms_{-1000};  // steady clock of the last volume check
  std::atomic<bool> volume_short_{false};
  std::atomic<int> last_errno_{0};
};

// VerifyAuditLog checks the chain of a whole trail: the rotated files beside `path`
// (audit-*.log, oldest first), then `path`. kDataLoss names the file and first bad line.
Result<AuditVerifyReport> VerifyAuditLog(const std::filesystem::path& path);

struct AuditRepairReport {
  std::uint64_t bytes_removed = 0;
  std::filesystem::path saved_to;  // the partial line, kept for inspection
};
// RepairAuditLog cuts a partial last line (a write cut short by a crash or a full disk) off the
// log, saves it to <path>.partial-<time>, and appends an "audit.repair" entry by `who` saying what
// was removed. kFailedPrecondition when the log does not end in a partial line (nothing to do),
// kDataLoss when the rest of the file does not end in a valid entry (a repair by hand is needed).
Result<AuditRepairReport> RepairAuditLog(const std::filesystem::path& path, const std::string& who);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_AUDIT_LOG_H_
