#include "server/audit_log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/internal/text.h"
#include "qsapi/crypto/kdf.h"

namespace qsapi::server {
namespace {

constexpr std::size_t kMaxLine = 16 * 1024;
const std::string kZeroHash(64, '0');

// ChainHash returns the hex SHA-256 of prev (hex text) || the entry without "hash", keys sorted.
Result<std::string> ChainHash(const std::string& prev, nlohmann::json entry) {
  entry.erase("hash");
  const std::string canonical = prev + entry.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  QSAPI_ASSIGN_OR_RETURN(Bytes h,
                         crypto::Hash(crypto::HashAlgorithm::kSha256,
                                      ByteView(reinterpret_cast<const std::uint8_t*>(canonical.data()),  // NOLINT
                                               canonical.size())));
  return qsapi::internal::HexEncode(h);
}

std::string NowText() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
  std::string out = qsapi::internal::FormatUtc(now);
  out.pop_back();  // the "Z" goes after the milliseconds
  return out + frac;
}

// CheckLine parses one line and checks it against the chain; returns its hash.
Result<std::string> CheckLine(const std::string& line, std::uint64_t expected_seq, const std::string& prev,
                              std::uint64_t line_no) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kDataLoss, "audit log line " + std::to_string(line_no) + ": " + why);
  };
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (!j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("prev") || !j["prev"].is_string() ||
      !j.contains("hash") || !j["hash"].is_string()) {
    return bad("missing seq, prev or hash");
  }
  if (j["seq"].get<std::uint64_t>() != expected_seq) {
    return bad("sequence " + std::to_string(j["seq"].get<std::uint64_t>()) + " where " + std::to_string(expected_seq) +
               " was expected (a line was removed or inserted)");
  }
  if (j["prev"].get<std::string>() != prev)
    return bad("does not chain to the line before (removed or reordered lines)");
  QSAPI_ASSIGN_OR_RETURN(std::string h, ChainHash(prev, j));
  if (h != j["hash"].get<std::string>()) return bad("its content was altered (hash mismatch)");
  return h;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot open audit log " + path.string() + ": " + std::strerror(errno));
  // Find the last line: read the tail.
  const off_t size = ::lseek(fd, 0, SEEK_END);
  std::uint64_t seq = 1;
  std::string prev = kZeroHash;
  if (size > 0) {
    const off_t start = size > static_cast<off_t>(2 * kMaxLine) ? size - static_cast<off_t>(2 * kMaxLine) : 0;
    std::string tail(static_cast<std::size_t>(size - start), '\0');
    if (::pread(fd, tail.data(), tail.size(), start) != static_cast<ssize_t>(tail.size())) {
      ::close(fd);
      return Unavailable("cannot read audit log " + path.string());
    }
    if (tail.back() != '\n') {
      ::close(fd);
      return Error(
          ErrorCode::kDataLoss,
          "audit log " + path.string() + " ends in a partial line (a crash while writing?); run `qsapi audit verify`");
    }
    tail.pop_back();
    const std::size_t nl = tail.rfind('\n');
    const std::string last = nl == std::string::npos ? tail : tail.substr(nl + 1);
    nlohmann::json j = nlohmann::json::parse(last, nullptr, false);
    if (j.is_discarded() || !j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("hash") ||
        !j["hash"].is_string()) {
      ::close(fd);
      return Error(ErrorCode::kDataLoss, "audit log " + path.string() + ": its last line is not an audit entry");
    }
    seq = j["seq"].get<std::uint64_t>() + 1;
    prev = j["hash"].get<std::string>();
  }
  return std::unique_ptr<AuditLog>(new AuditLog(fd, seq, std::move(prev)));
}

AuditLog::~AuditLog() { ::close(fd_); }

std::uint64_t AuditLog::next_seq() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return seq_;
}

Status AuditLog::Append(const AuditEvent& e) {
  const std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json j = {{"seq", seq_},  {"time", NowText()},    {"who", e.who},       {"action", e.action},
                      {"key", e.key}, {"version", e.version}, {"result", e.result}, {"request_id", e.request_id},
                      {"prev", prev_}};
  if (!e.detail.empty()) j["detail"] = e.detail;
  QSAPI_ASSIGN_OR_RETURN(std::string h, ChainHash(prev_, j));
  j["hash"] = h;
  std::string line = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + "\n";
  if (line.size() > kMaxLine) return InvalidArgument("audit entry longer than 16 KiB");
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    return Unavailable(std::string("cannot write the audit log: ") + (n < 0 ? std::strerror(errno) : "short write"));
  }
  ++seq_;
  prev_ = std::move(h);
  return OkStatus();
}

Result<AuditVerifyReport> VerifyAuditLog(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot read audit log " + path.string());
  AuditVerifyReport report;
  std::string prev = kZeroHash;
  std::string line;
  std::uint64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.size() > kMaxLine) {
      return Error(ErrorCode::kDataLoss, "audit log line " + std::to_string(line_no) + " is longer than 16 KiB");
    }
    // getline stops at end of file without a newline: the last write was cut short. Open refuses
    // to continue such a log, so verify must not call it intact.
    if (in.eof()) {
      return Error(ErrorCode::kDataLoss,
                   "audit log line " + std::to_string(line_no) + " is a partial line (no line end: a write cut short)");
    }
    QSAPI_ASSIGN_OR_RETURN(prev, CheckLine(line, line_no, prev, line_no));
    ++report.lines;
  }
  return report;
}

}  // namespace qsapi::server
