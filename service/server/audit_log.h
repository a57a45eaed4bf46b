// qsapid's audit log: one JSON object per line for every key operation and every denial (who,
// what, key and version, result, request id), never data or secrets. Lines are chained:
//   mac_n = HMAC-SHA-256(K, c_{n-1} || the line's JSON without its "mac" member, keys sorted)
// with c_0 = 64 zero hex digits, where K is the trail's key, kept by the keystore wrapped by the
// KEK (AuditKeying). Lines written before the trail was keyed carry
//   hash_n = SHA-256(c_{n-1} || the line without "hash")
// instead; once a line carries "mac", every later one must. So `qsapi audit verify` detects a
// removed, reordered, inserted or edited line and names it, and rewriting the trail with its
// chain recomputed needs the key. The newest line is also recorded in the keystore's database
// (the head), so that a trail cut short, or an older copy put back, is detected too.
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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "qsapi/result.h"
#include "qsapi/secret.h"

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
  std::uint64_t anchor_seq = 0;                   // "audit.anchor" lines: the keystore trail's newest entry
  std::string anchor_value{};                     //   and its chain value (hex)
};

// AuditKeying keys a trail: lines from first_seq on carry "mac" under `key`, and the head
// recorded outside the file (head_seq, head_mac) must still be in the trail.
struct AuditKeying {
  SecretBytes key{};
  std::uint64_t first_seq = 1;
  std::uint64_t head_seq = 0;  // 0: none recorded yet
  std::string head_mac{};      // hex
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
  std::uint64_t macs = 0;       // lines whose MAC was checked
  bool head_checked = false;    // the head recorded outside the file was found in the trail
  // The last "audit.anchor" line: the keystore trail's newest entry when it was written (seq 0: none).
  std::uint64_t anchor_seq = 0;
  std::string anchor_value;
};

class AuditLog {
 public:
  // Open opens (creating, mode 0600) the log and reads its last line to continue the chain.
  // kDataLoss when the last line is not a valid entry (the message names `qsapi audit repair`).
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& path, AuditLogOptions options = {});
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  AuditLog(AuditLog&&) = delete;
  AuditLog& operator=(AuditLog&&) = delete;

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
  // threads append), with the key and head given to UseKeying. qsapid runs it at start and every
  // [audit] verify_interval_seconds.
  Result<AuditVerifyReport> VerifyNow();

  // UseKeying keys the lines appended from now on (those from keying.first_seq) and verification.
  // A log opened without it refuses to append after a keyed line. Thread-safe.
  void UseKeying(AuditKeying keying);
  // Checkpoint calls `record` with the newest line's seq and mac when it is keyed and newer than
  // the head recorded last, and remembers it as the head once `record` succeeds. Thread-safe.
  Status Checkpoint(const std::function<Status(std::uint64_t seq, const std::string& mac_hex)>& record);

  [[nodiscard]] std::uint64_t next_seq() const;
  [[nodiscard]] std::uint64_t write_failures() const { return write_failures_.load(); }

 private:
  AuditLog(std::filesystem::path path, AuditLogOptions options, int fd, std::uint64_t seq, std::string prev,
           std::uint64_t size, std::uint64_t first_seq, bool last_keyed)
      : path_(std::move(path)),
        options_(options),
        fd_(fd),
        seq_(seq),
        prev_(std::move(prev)),
        size_(size),
        first_seq_(first_seq),
        last_keyed_(last_keyed) {}
  Status RotateLocked();

  const std::filesystem::path path_;
  const AuditLogOptions options_;
  mutable std::mutex mu_;
  int fd_;                             // guarded by mu_
  std::uint64_t seq_;                  // the next line's number; guarded by mu_
  std::string prev_;                   // hex hash of the last line; guarded by mu_
  std::uint64_t size_;                 // bytes in the current file; guarded by mu_
  std::uint64_t first_seq_;            // seq of the current file's first line; guarded by mu_
  bool last_keyed_;                    // the last line carries a MAC; guarded by mu_
  std::optional<AuditKeying> keying_;  // guarded by mu_
  std::atomic<std::uint64_t> write_failures_{0};
  std::atomic<std::int64_t> failed_at_ms_{0};       // steady clock of the last failed write
  std::atomic<std::int64_t> checked_at_ms_{-1000};  // steady clock of the last volume check
  std::atomic<bool> volume_short_{false};
  std::atomic<int> last_errno_{0};
};

// VerifyAuditLog checks the chain of a whole trail: the rotated files beside `path`
// (audit-*.log, oldest first), then `path`. kDataLoss names the file and first bad line (or the
// head the trail no longer holds). Without `keying`, a keyed line is kFailedPrecondition: its MAC
// can only be checked with the key (qsapi audit verify opens the keystore for it).
Result<AuditVerifyReport> VerifyAuditLog(const std::filesystem::path& path, const AuditKeying* keying = nullptr);

struct AuditRepairReport {
  std::uint64_t bytes_removed = 0;
  std::filesystem::path saved_to;  // the partial line, kept for inspection
};
// RepairAuditLog cuts a partial last line (a write cut short by a crash or a full disk) off the
// log, saves it to <path>.partial-<time>, and appends an "audit.repair" entry by `who` saying what
// was removed. kFailedPrecondition when the log does not end in a partial line (nothing to do),
// kDataLoss when the rest of the file does not end in a valid entry (a repair by hand is needed).
// A keyed trail needs its `keying` to write that entry.
Result<AuditRepairReport> RepairAuditLog(const std::filesystem::path& path, const std::string& who,
                                         const AuditKeying* keying = nullptr);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_AUDIT_LOG_H_
