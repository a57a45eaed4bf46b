// qsapid's audit log: one JSON object per line for every key operation and every denial (who,
// what, key and version, result, request id), never data or secrets. Lines are hash-chained:
//   hash_n = SHA-256(hash_{n-1} || the line's JSON without its "hash" member, keys sorted)
// with hash_0 = 32 zero bytes, so that `qsapi audit verify` detects a removed, reordered, inserted
// or edited line and names it.
#ifndef QSAPI_SRC_SERVER_AUDIT_LOG_H_
#define QSAPI_SRC_SERVER_AUDIT_LOG_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "qsapi/result.h"

namespace qsapi::server {

struct AuditEvent {
  std::string who;     // token name or client certificate CN
  std::string action;  // "encrypt", "keys.create", ...
  std::string key;     // key name ("" when none)
  std::uint32_t version = 0;
  std::string result;  // "ok" or an error code name ("PERMISSION_DENIED")
  std::string request_id;
  std::string detail;  // short, public (e.g. "batch of 3")
};

class AuditLog {
 public:
  // Open opens (creating, mode 0600) the log and reads its last line to continue the chain.
  // kDataLoss when the last line is not a valid entry.
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Append writes one line (one write(2) on an O_APPEND descriptor). Thread-safe.
  Status Append(const AuditEvent& event);

  [[nodiscard]] std::uint64_t next_seq() const;

 private:
  AuditLog(int fd, std::uint64_t seq, std::string prev) : fd_(fd), seq_(seq), prev_(std::move(prev)) {}
  mutable std::mutex mu_;
  int fd_;
  std::uint64_t seq_;  // the next line's number
  std::string prev_;   // hex hash of the last line
};

struct AuditVerifyReport {
  std::uint64_t lines = 0;
};
// VerifyAuditLog checks the chain of a whole file; kDataLoss names the first bad line.
Result<AuditVerifyReport> VerifyAuditLog(const std::filesystem::path& path);

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_AUDIT_LOG_H_
