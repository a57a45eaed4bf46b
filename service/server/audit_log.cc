#include "server/audit_log.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/internal/text.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/secret.h"

namespace qsapi::server {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxLine = std::size_t{16} * 1024;
constexpr std::size_t kMaxField = 1024;
const std::string kZeroHash(64, '0');

// ChainValue returns the line's chain value in hex: over prev (hex text) || the entry without
// "hash" and "mac", keys sorted, HMAC-SHA-256 under `key`, or SHA-256 when `key` is empty.
Result<std::string> ChainValue(const std::string& prev, nlohmann::json entry, ByteView key) {
  entry.erase("hash");
  entry.erase("mac");
  const std::string canonical = prev + entry.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  const ByteView data(reinterpret_cast<const std::uint8_t*>(canonical.data()), canonical.size());  // NOLINT
  QSAPI_ASSIGN_OR_RETURN(Bytes h, key.empty() ? crypto::Hash(crypto::HashAlgorithm::kSha256, data)
                                              : crypto::Hmac(crypto::HashAlgorithm::kSha256, key, data));
  return qsapi::internal::HexEncode(h);
}

// SameText compares two chain values without an early exit.
bool SameText(const std::string& a, const std::string& b) {
  return a.size() == b.size() &&
         ConstantTimeEqual(ByteView(reinterpret_cast<const std::uint8_t*>(a.data()), a.size()),   // NOLINT
                           ByteView(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));  // NOLINT
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

std::int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Cut keeps a field to kMaxField bytes (at a UTF-8 boundary) and says how much was cut, so that no
// line is dropped for its length (a denial naming a 10 KiB key name is still recorded).
std::string Cut(const std::string& s) {
  if (s.size() <= kMaxField) return s;
  std::size_t n = kMaxField;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "...[" + std::to_string(s.size() - n) + " more bytes cut]";
}

nlohmann::json CountsJson(const std::map<std::string, std::uint64_t>& m) {
  nlohmann::json j = nlohmann::json::object();
  std::size_t n = 0;
  for (const auto& [k, v] : m) {
    if (++n > 32) break;  // the reasons are ours and few; a bound all the same
    j[Cut(k)] = v;
  }
  return j;
}

// What CheckLine saw besides the chain value.
// NOLINTNEXTLINE(bugprone-exception-escape): json's noexcept null constructor cannot throw (its own NOLINT says so)
struct LineFacts {
  std::uint64_t seq = 0;
  bool keyed = false;
  nlohmann::json anchor;  // the "anchor" member of an audit.anchor line, else null
};

// CheckLine parses one line and checks it against the chain (with `keying`, keyed lines by their
// MAC); returns its chain value. With `anchor_unknown`, the first line's seq and prev are taken
// as they are (older files deleted).
Result<std::string> CheckLine(const std::string& line, std::uint64_t* expected_seq, const std::string& prev,
                              const std::string& where, bool anchor_unknown, const AuditKeying* keying,
                              LineFacts* facts) {
  const auto bad = [&](const std::string& why) { return DataLoss(where + ": " + why); };
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  const bool has_mac = j.contains("mac");
  const char* value_name = has_mac ? "mac" : "hash";
  if (!j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("prev") || !j["prev"].is_string() ||
      !j.contains(value_name) || !j[value_name].is_string() || (has_mac && j.contains("hash"))) {
    return bad("missing seq, prev, or one hash or mac");
  }
  const auto seq = j["seq"].get<std::uint64_t>();
  facts->seq = seq;
  facts->keyed = has_mac;
  facts->anchor = j.contains("anchor") && j.value("action", "") == "audit.anchor" ? j["anchor"] : nlohmann::json();
  if (has_mac && keying == nullptr) {
    return FailedPrecondition(where +
                              " carries a MAC: this trail is keyed, and checking it needs the trail's key from the "
                              "keystore (run `qsapi audit verify` where qsapid's keystore is configured)");
  }
  if (keying != nullptr && has_mac && seq < keying->first_seq) {
    return bad("carries a MAC, but the trail is keyed only from entry " + std::to_string(keying->first_seq));
  }
  if (keying != nullptr && !has_mac && seq >= keying->first_seq) {
    return bad("has no MAC, but the trail is keyed from entry " + std::to_string(keying->first_seq) +
               " on (a line written without the key: forged, or put in from another trail)");
  }
  if (anchor_unknown) {
    *expected_seq = seq;
  } else {
    if (seq != *expected_seq) {
      return bad("sequence " + std::to_string(seq) + " where " + std::to_string(*expected_seq) +
                 " was expected (a line was removed or inserted)");
    }
    if (j["prev"].get<std::string>() != prev)
      return bad("does not chain to the line before (removed or reordered lines)");
  }
  QSAPI_ASSIGN_OR_RETURN(std::string h,
                         ChainValue(j["prev"].get<std::string>(), j, has_mac ? keying->key.view() : ByteView()));
  if (!SameText(h, j[value_name].get<std::string>())) {
    return bad(has_mac ? "its content was altered, or it was written with another key (MAC mismatch)"
                       : "its content was altered (hash mismatch)");
  }
  ++*expected_seq;
  return h;
}

// RotatedFiles lists audit-<seq>.log beside `path`, oldest first.
std::vector<fs::path> RotatedFiles(const fs::path& path) {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const std::string stem = path.stem().string() + "-";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == stem.size() + 12 + 4 && name.starts_with(stem) && name.ends_with(".log") &&
        std::all_of(name.begin() + static_cast<std::ptrdiff_t>(stem.size()), name.end() - 4,
                    [](char c) { return c >= '0' && c <= '9'; })) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Tail {
  std::uint64_t seq = 1;  // the next
  std::string prev = kZeroHash;
  std::uint64_t first_seq = 1;
  bool keyed = false;  // the last line carries a MAC
};

// ReadTail reads the first and last entries of an open log. kDataLoss for a partial or bad line.
Result<Tail> ReadTail(int fd, const fs::path& path, std::uint64_t size, std::uint64_t first_seq_default,
                      const std::string& prev_default) {
  Tail t;
  t.seq = first_seq_default;
  t.prev = prev_default;
  t.first_seq = first_seq_default;
  if (size == 0) return t;
  const auto start = size > 2 * kMaxLine ? size - 2 * kMaxLine : 0;
  std::string tail(static_cast<std::size_t>(size - start), '\0');
  if (::pread(fd, tail.data(), tail.size(), static_cast<off_t>(start)) != static_cast<ssize_t>(tail.size())) {
    return Unavailable("cannot read audit log " + path.string());
  }
  if (tail.back() != '\n') {
    return DataLoss("audit log " + path.string() +
                    " ends in a partial line (a crash or a full disk while writing); run "
                    "`qsapi audit repair` (docs/OPERATIONS.md, \"Audit log\")");
  }
  tail.pop_back();
  const std::size_t nl = tail.rfind('\n');
  const std::string last = nl == std::string::npos ? tail : tail.substr(nl + 1);
  nlohmann::json j = nlohmann::json::parse(last, nullptr, false);
  const char* value_name = j.is_object() && j.contains("mac") ? "mac" : "hash";
  if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
      !j.contains(value_name) || !j[value_name].is_string()) {
    return DataLoss("audit log " + path.string() + ": its last line is not an audit entry");
  }
  t.seq = j["seq"].get<std::uint64_t>() + 1;
  t.prev = j[value_name].get<std::string>();
  t.keyed = std::string_view(value_name) == "mac";
  // The first line's seq names the file when it is rotated.
  std::string head(std::min<std::uint64_t>(size, kMaxLine + 1), '\0');
  if (::pread(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size())) {
    const std::size_t end = head.find('\n');
    nlohmann::json f = nlohmann::json::parse(head.substr(0, end), nullptr, false);
    if (f.is_object() && f.contains("seq") && f["seq"].is_number_unsigned())
      t.first_seq = f["seq"].get<std::uint64_t>();
  }
  return t;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const fs::path& path, AuditLogOptions options) {
  if (options.max_file_bytes < 2 * kMaxLine)
    return InvalidArgument("audit log: max_file_bytes must be at least 32 KiB");
  const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot open audit log " + path.string() + ": " + qsapi::internal::ErrnoText(errno));
  const off_t size = ::lseek(fd, 0, SEEK_END);
  // An empty current file continues the newest rotated one.
  Tail from;
  if (size == 0) {
    const std::vector<fs::path> rotated = RotatedFiles(path);
    if (!rotated.empty()) {
      const int rfd = ::open(rotated.back().c_str(), O_RDONLY | O_CLOEXEC);
      if (rfd < 0) {
        ::close(fd);
        return Unavailable("cannot read " + rotated.back().string() + ": " + qsapi::internal::ErrnoText(errno));
      }
      const off_t rsize = ::lseek(rfd, 0, SEEK_END);
      Result<Tail> t = ReadTail(rfd, rotated.back(), static_cast<std::uint64_t>(rsize), 1, kZeroHash);
      ::close(rfd);
      if (!t.ok()) {
        ::close(fd);
        return t.error();
      }
      from.seq = t->seq;
      from.prev = t->prev;
      from.first_seq = t->seq;
      from.keyed = t->keyed;
    }
  }
  Result<Tail> t = ReadTail(fd, path, static_cast<std::uint64_t>(size), from.seq, from.prev);
  if (!t.ok()) {
    ::close(fd);
    return t.error();
  }
  const bool keyed = size == 0 ? from.keyed : t->keyed;
  return std::unique_ptr<AuditLog>(
      new AuditLog(path, options, fd, t->seq, t->prev, static_cast<std::uint64_t>(size), t->first_seq, keyed));
}

AuditLog::~AuditLog() { ::close(fd_); }

std::uint64_t AuditLog::next_seq() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return seq_;
}

Status AuditLog::Ready() {
  const std::int64_t now = SteadyMs();
  // Within a second of a failed write, refuse, unless the write failed for want of space and the
  // volume has space again (then the next write tells).
  const bool recent_failure = now - failed_at_ms_.load() < 1000;
  if (recent_failure && last_errno_.load() != ENOSPC && last_errno_.load() != EDQUOT) {
    return Unavailable("the last audit line could not be written (see qsapid's log)");
  }
  if (recent_failure) checked_at_ms_ = -1000000;
  // A healthy volume is checked at most every 250 ms; a short one on every call, so that space
  // made free is used at once.
  if (volume_short_.load() || now - checked_at_ms_.load() >= 250) {
    checked_at_ms_ = now;
    struct statvfs v {};
    const fs::path dir = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
    if (::statvfs(dir.c_str(), &v) == 0) {
      const std::uint64_t free_bytes = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
      volume_short_ = free_bytes < options_.min_free_bytes;
    }
  }
  if (volume_short_.load()) {
    return Unavailable("the audit log's volume has less than " + std::to_string(options_.min_free_bytes >> 20) +
                       " MiB free (free space, or archive rotated audit files: docs/OPERATIONS.md)");
  }
  return OkStatus();
}

Status AuditLog::RotateLocked() {
  char name[32];
  std::snprintf(name, sizeof name, "-%012llu.log", static_cast<unsigned long long>(first_seq_));
  const fs::path rotated = path_.parent_path() / (path_.stem().string() + name);
  if (::rename(path_.c_str(), rotated.c_str()) != 0) {
    return Unavailable("cannot rotate the audit log to " + rotated.string() + ": " + qsapi::internal::ErrnoText(errno));
  }
  const int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    (void)::rename(rotated.c_str(), path_.c_str());
    return Unavailable("cannot open a new audit log " + path_.string() + ": " + qsapi::internal::ErrnoText(err));
  }
  ::close(fd_);
  fd_ = fd;
  size_ = 0;
  first_seq_ = seq_;
  if (options_.keep_files > 0) {
    const std::vector<fs::path> all = RotatedFiles(path_);
    for (std::size_t i = 0; i + options_.keep_files < all.size(); ++i) {
      std::error_code ec;
      fs::remove(all[i], ec);
    }
  }
  return OkStatus();
}

void AuditLog::UseKeying(AuditKeying keying) {
  const std::lock_guard<std::mutex> lock(mu_);
  keying_ = std::move(keying);
}

Status AuditLog::Checkpoint(const std::function<Status(std::uint64_t, const std::string&)>& record) {
  std::uint64_t seq = 0;
  std::string mac;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (!keying_ || !last_keyed_ || seq_ - 1 <= keying_->head_seq) return OkStatus();
    seq = seq_ - 1;
    mac = prev_;
  }
  QSAPI_RETURN_IF_ERROR(record(seq, mac));
  const std::lock_guard<std::mutex> lock(mu_);
  if (keying_ && seq > keying_->head_seq) {
    keying_->head_seq = seq;
    keying_->head_mac = std::move(mac);
  }
  return OkStatus();
}

Status AuditLog::Append(const AuditEvent& e) {
  const std::lock_guard<std::mutex> lock(mu_);
  const bool keyed = keying_.has_value() && seq_ >= keying_->first_seq;
  if (!keyed && last_keyed_) {
    return FailedPrecondition("audit log " + path_.string() +
                              " is keyed: lines are added with the trail's key from the keystore");
  }
  nlohmann::json j = {
      {"seq", seq_},       {"time", NowText()},    {"who", Cut(e.who)},       {"action", Cut(e.action)},
      {"key", Cut(e.key)}, {"version", e.version}, {"result", Cut(e.result)}, {"request_id", Cut(e.request_id)},
      {"prev", prev_}};
  if (!e.detail.empty()) j["detail"] = Cut(e.detail);
  if (!e.client_request_id.empty()) j["client_request_id"] = Cut(e.client_request_id);
  if (!e.source.empty()) j["source"] = Cut(e.source);
  if (!e.items.empty()) j["items"] = CountsJson(e.items);
  if (!e.counts.empty()) j["counts"] = CountsJson(e.counts);
  if (e.anchor_seq > 0) j["anchor"] = {{"trail", "keystore"}, {"seq", e.anchor_seq}, {"value", Cut(e.anchor_value)}};
  QSAPI_ASSIGN_OR_RETURN(std::string h, ChainValue(prev_, j, keyed ? keying_->key.view() : ByteView()));
  j[keyed ? "mac" : "hash"] = h;
  const std::string line = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + "\n";
  if (line.size() > kMaxLine) return Internal("audit entry longer than 16 KiB after cutting its fields");
  const auto failed = [&](const std::string& why, int err) {
    ++write_failures_;
    last_errno_ = err;
    failed_at_ms_ = SteadyMs();
    return Unavailable("cannot write the audit log " + path_.string() + ": " + why);
  };
  if (size_ > 0 && size_ + line.size() > options_.max_file_bytes) {
    if (Status r = RotateLocked(); !r.ok()) return failed(r.error().message(), errno);
  }
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = n < 0 ? errno : ENOSPC;  // a short write on a regular file: the volume is full
    const std::string why = n < 0 ? qsapi::internal::ErrnoText(errno) : "short write (volume full?)";
    // Leave no partial line behind: the next line would not parse, and the log could not reopen.
    if (n > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      return failed(why + "; the partial line could not be removed (" + qsapi::internal::ErrnoText(errno) +
                        "): run `qsapi audit repair`",
                    EIO);
    }
    return failed(why, err);
  }
  size_ += line.size();
  ++seq_;
  prev_ = std::move(h);
  last_keyed_ = keyed;
  return OkStatus();
}

namespace {

// VerifyTrail checks files oldest first; the last one is read only up to last_size bytes when
// last_size is given (a log being appended to: VerifyNow).
Result<AuditVerifyReport> VerifyTrail(const std::vector<fs::path>& files, int last_fd,
                                      std::optional<std::uint64_t> last_size, const AuditKeying* keying) {
  AuditVerifyReport report;
  std::uint64_t last_seq = 0;
  std::string prev = kZeroHash;
  std::uint64_t expected = 1;
  bool anchor_unknown = false;
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const fs::path& file = files[fi];
    std::string text;
    if (fi + 1 == files.size() && last_size) {
      text.resize(static_cast<std::size_t>(*last_size));
      const ssize_t n = text.empty() ? 0 : ::pread(last_fd, text.data(), text.size(), 0);
      if (n < 0)
        return Unavailable("cannot read audit log " + file.string() + ": " + qsapi::internal::ErrnoText(errno));
      if (static_cast<std::size_t>(n) < text.size()) {
        return DataLoss("audit log " + file.string() + " has " + std::to_string(n) + " bytes where qsapid wrote " +
                        std::to_string(text.size()) + ": it was cut short or replaced");
      }
    } else {
      std::ifstream in(file, std::ios::binary);
      if (!in) return InvalidArgument("cannot read audit log " + file.string());
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    ++report.files;
    std::istringstream in(text);
    std::string line;
    std::uint64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      const std::string where = "audit log " + (files.size() > 1 ? file.filename().string() + " " : std::string()) +
                                "line " + std::to_string(line_no);
      if (line.size() > kMaxLine) return DataLoss(where + " is longer than 16 KiB");
      // getline stops at end of file without a newline: the last write was cut short. Open refuses
      // to continue such a log, so verify must not call it intact.
      if (in.eof()) return DataLoss(where + " is a partial line (no line end: a write cut short)");
      if (report.lines == 0 && fi == 0 && files.size() > 1) {
        // The oldest file kept: when it is not the first of the trail, older ones were deleted
        // by rotation (keep_files), and its first line is the anchor.
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        anchor_unknown =
            j.is_object() && j.contains("seq") && j["seq"].is_number_unsigned() && j["seq"].get<std::uint64_t>() > 1;
      }
      LineFacts facts;
      QSAPI_ASSIGN_OR_RETURN(prev, CheckLine(line, &expected, prev, where, anchor_unknown, keying, &facts));
      if (anchor_unknown) {
        report.first_seq = expected - 1;
        anchor_unknown = false;
      }
      ++report.lines;
      last_seq = facts.seq;
      if (facts.keyed) ++report.macs;
      if (keying != nullptr && keying->head_seq != 0 && facts.seq == keying->head_seq) {
        if (!SameText(prev, keying->head_mac)) {
          return DataLoss(where + ": entry " + std::to_string(facts.seq) +
                          " is not the one the keystore recorded as written (the log was replaced)");
        }
        report.head_checked = true;
      }
      if (facts.anchor.is_object() && facts.anchor.contains("seq") && facts.anchor["seq"].is_number_unsigned() &&
          facts.anchor.contains("value") && facts.anchor["value"].is_string()) {
        report.anchor_seq = facts.anchor["seq"].get<std::uint64_t>();
        report.anchor_value = facts.anchor["value"].get<std::string>();
      }
    }
  }
  if (keying != nullptr && keying->head_seq != 0 && !report.head_checked) {
    return DataLoss("the audit trail ends at entry " + std::to_string(last_seq) + ", but the keystore recorded entry " +
                    std::to_string(keying->head_seq) +
                    " as written: the log was cut short, or an older copy was put in its place");
  }
  return report;
}

}  // namespace

Result<AuditVerifyReport> VerifyAuditLog(const fs::path& path, const AuditKeying* keying) {
  std::vector<fs::path> files = RotatedFiles(path);
  std::error_code ec;
  if (fs::exists(path, ec) || files.empty()) files.push_back(path);
  return VerifyTrail(files, -1, std::nullopt, keying);
}

Result<AuditVerifyReport> AuditLog::VerifyNow() {
  std::vector<fs::path> files;
  std::uint64_t size = 0;
  int fd = -1;
  std::optional<AuditKeying> keying;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    files = RotatedFiles(path_);
    files.push_back(path_);
    size = size_;
    fd = ::dup(fd_);  // the bytes written so far, even if the file is rotated meanwhile
    if (keying_) {
      keying = AuditKeying{.key = keying_->key.Clone(),
                           .first_seq = keying_->first_seq,
                           .head_seq = keying_->head_seq,
                           .head_mac = keying_->head_mac};
    }
  }
  if (fd < 0) return Unavailable("cannot read the audit log: " + qsapi::internal::ErrnoText(errno));
  Result<AuditVerifyReport> r = VerifyTrail(files, fd, size, keying ? &*keying : nullptr);
  ::close(fd);
  return r;
}

Result<AuditRepairReport> RepairAuditLog(const fs::path& path, const std::string& who, const AuditKeying* keying) {
  std::string text;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return InvalidArgument("cannot read audit log " + path.string());
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (text.empty() || text.back() == '\n') {
    return FailedPrecondition("audit log " + path.string() + " does not end in a partial line: nothing to repair");
  }
  const std::size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  AuditRepairReport report;
  report.bytes_removed = text.size() - keep;
  std::string stamp = qsapi::internal::FormatUtc(std::chrono::system_clock::now());
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  report.saved_to = path.string() + ".partial-" + stamp;
  {
    const int fd = ::open(report.saved_to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      return Unavailable("cannot save the partial line to " + report.saved_to.string() + ": " +
                         qsapi::internal::ErrnoText(errno));
    const ssize_t n = ::write(fd, text.data() + keep, report.bytes_removed);
    ::close(fd);
    if (n != static_cast<ssize_t>(report.bytes_removed)) {
      return Unavailable("cannot save the partial line to " + report.saved_to.string());
    }
  }
  // What stays must end in a valid entry, or the repair is not ours to make.
  if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
    return Unavailable("cannot cut the partial line off " + path.string() + ": " + qsapi::internal::ErrnoText(errno));
  }
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<AuditLog> log, AuditLog::Open(path));
  if (keying != nullptr) {
    log->UseKeying({.key = keying->key.Clone(),
                    .first_seq = keying->first_seq,
                    .head_seq = keying->head_seq,
                    .head_mac = keying->head_mac});
  }
  QSAPI_RETURN_IF_ERROR(
      log->Append({.who = who,
                   .action = "audit.repair",
                   .result = "ok",
                   .detail = "removed a partial last line of " + std::to_string(report.bytes_removed) +
                             " bytes, saved to " + report.saved_to.filename().string()}));
  return report;
}

}  // namespace qsapi::server
