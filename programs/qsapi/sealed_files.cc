// File handling for `qsapi seal` / `qsapi open` (sealed_files.h).
#include "sealed_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string>

#include "common/internal/text.h"
#include "qsapi/hpke/stream.h"

namespace qsapi::cli {
namespace {

std::string Errno(const std::string& what) { return what + ": " + qsapi::internal::ErrnoText(errno); }

// ---- The temporary file a signal must remove ----------------------------------------------------
// One output at a time per process; the path lives in a fixed buffer so that the handler only
// calls async-signal-safe functions (unlink, signal, raise).
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): the signal handler's state must be global
char g_temp_path[4096] = {};  // NOLINT(cppcoreguidelines-avoid-c-arrays): a fixed buffer the handler can read
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): the signal handler's state must be global
volatile std::sig_atomic_t g_temp_active = 0;

extern "C" void RemoveTempAndReraise(int sig) {
  if (g_temp_active != 0) ::unlink(g_temp_path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void ArmSignalCleanup(const std::string& path) {
  std::snprintf(g_temp_path, sizeof(g_temp_path), "%s", path.c_str());
  g_temp_active = 1;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, RemoveTempAndReraise);
}

void DisarmSignalCleanup() {
  g_temp_active = 0;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
}

// ---- Input ----------------------------------------------------------------------------------------
class Input {
 public:
  static Result<Input> Open(const std::string& path) {
    if (path == "-") return Input(STDIN_FILENO, false, 0);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return InvalidArgument(Errno("cannot open " + path));
    struct stat st {};
    std::uint64_t size = 0;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) size = static_cast<std::uint64_t>(st.st_size);
    return Input(fd, true, size);
  }
  Input(Input&& o) noexcept : fd_(std::exchange(o.fd_, -1)), owned_(o.owned_), size_(o.size_) {}
  Input& operator=(Input&&) = delete;
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  // size is the input's size when it is a regular file, else 0 (unknown).
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

 private:
  Input(int fd, bool owned, std::uint64_t size) : fd_(fd), owned_(owned), size_(size) {}
  int fd_;
  bool owned_;
  std::uint64_t size_;
};

// ---- Atomic output --------------------------------------------------------------------------------
class AtomicOutput {
 public:
  static Result<AtomicOutput> Create(const std::string& path) {
    if (path == "-") return AtomicOutput(STDOUT_FILENO, "", "");
    const std::filesystem::path target(path);
    if (std::filesystem::is_directory(target)) return InvalidArgument(path + " is a directory");
    std::filesystem::path dir = target.parent_path();
    if (dir.empty()) dir = ".";
    // mkostemp opens with O_CREAT | O_EXCL and mode 0600.
    std::string temp = (dir / ("." + target.filename().string() + ".qsapi-XXXXXX")).string();
    const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
    if (fd < 0) return InvalidArgument(Errno("cannot create a temporary file in " + dir.string()));
    ArmSignalCleanup(temp);
    return AtomicOutput(fd, temp, path);
  }
  AtomicOutput(AtomicOutput&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), temp_(std::move(o.temp_)), target_(std::move(o.target_)) {
    o.temp_.clear();
  }
  AtomicOutput& operator=(AtomicOutput&&) = delete;
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  // Without a successful Commit, the temporary file is removed.
  ~AtomicOutput() {
    if (!temp_.empty()) {
      if (fd_ >= 0) ::close(fd_);
      ::unlink(temp_.c_str());
      DisarmSignalCleanup();
    }
  }

  [[nodiscard]] int fd() const noexcept { return fd_; }

  // Commit makes the output durable and visible under the target's name.
  Status Commit() {
    if (temp_.empty()) return OkStatus();  // standard output
    if (::fsync(fd_) != 0) return Unavailable(Errno("fsync " + temp_));
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return Unavailable(Errno("close " + temp_));
    if (::rename(temp_.c_str(), target_.c_str()) != 0) return Unavailable(Errno("rename to " + target_));
    temp_.clear();
    DisarmSignalCleanup();
    std::filesystem::path dir = std::filesystem::path(target_).parent_path();
    if (dir.empty()) dir = ".";
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      ::fsync(dfd);  // the rename itself; best effort
      ::close(dfd);
    }
    return OkStatus();
  }

 private:
  AtomicOutput(int fd, std::string temp, std::string target)
      : fd_(fd), temp_(std::move(temp)), target_(std::move(target)) {}
  int fd_;
  std::string temp_;  // empty for standard output, or once committed
  std::string target_;
};

// ---- Progress bar ---------------------------------------------------------------------------------
std::string HumanBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);  // NOLINT
  return buf;
}

class ProgressBar {
 public:
  ProgressBar(const char* verb, std::uint64_t total) : verb_(verb), total_(total), start_(Clock::now()) {}
  void Update(std::uint64_t done, bool final = false) {
    const auto now = Clock::now();
    if (!final && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const std::string rate = seconds > 0 ? HumanBytes(static_cast<double>(done) / seconds) + "/s" : "";
    if (total_ > 0) {
      const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::fprintf(stderr, "\r%s [%.*s%*s] %3.0f%%  %s / %s  %s   ", verb_, filled, "##############################",
                   kWidth - filled, "", fraction * 100, HumanBytes(static_cast<double>(done)).c_str(),
                   HumanBytes(static_cast<double>(total_)).c_str(), rate.c_str());
    } else {
      std::fprintf(stderr, "\r%s %s  %s   ", verb_, HumanBytes(static_cast<double>(done)).c_str(), rate.c_str());
    }
    if (final) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  const char* verb_;
  std::uint64_t total_;
  Clock::time_point start_;
  Clock::time_point last_{};
};

bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace

Result<hpke::RecipientPublicKey> ReadPublicKeyFile(const std::string& path) {
  QSAPI_ASSIGN_OR_RETURN(Input in, Input::Open(path));
  std::string text(hpke::kMaxPublicKeyFileSize + 1, '\0');
  hpke::FdSource source(in.fd());
  std::size_t got = 0;
  while (got < text.size()) {
    QSAPI_ASSIGN_OR_RETURN(
        const std::size_t n,
        source.Read(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()) + got,  // NOLINT
                                            text.size() - got)));
    if (n == 0) break;
    got += n;
  }
  text.resize(got);
  Result<hpke::RecipientPublicKey> key = hpke::ParsePublicKeyFile(text);
  if (!key) return InvalidArgument(path + ": " + key.error().message());
  return key;
}

Status SealFile(const hpke::RecipientPublicKey& recipient, const std::string& in, const std::string& out,
                hpke::SealOptions options, bool progress) {
  QSAPI_ASSIGN_OR_RETURN(Input input, Input::Open(in));
  QSAPI_ASSIGN_OR_RETURN(AtomicOutput output, AtomicOutput::Create(out));
  std::unique_ptr<ProgressBar> bar;
  if (progress && StderrIsTerminal()) {
    bar = std::make_unique<ProgressBar>("sealing", input.size());
    options.progress = [&bar](std::uint64_t done) { bar->Update(done); };
  }
  hpke::FdSource source(input.fd());
  hpke::FdSink sink(output.fd());
  std::uint64_t total = 0;
  auto user_progress = options.progress;
  options.progress = [&](std::uint64_t done) {
    total = done;
    if (user_progress) user_progress(done);
  };
  QSAPI_RETURN_IF_ERROR(hpke::SealStream(recipient.key, recipient.key_id, source, sink, options));
  QSAPI_RETURN_IF_ERROR(output.Commit());
  if (bar) bar->Update(total, true);
  return OkStatus();
}

Status OpenFileWith(const RecipientLoader& load, const std::string& in, const std::string& out,
                    hpke::OpenOptions options, bool progress) {
  QSAPI_ASSIGN_OR_RETURN(Input input, Input::Open(in));
  hpke::FdSource source(input.fd());
  // The header first: input that is not a sealed message fails before any output exists.
  QSAPI_ASSIGN_OR_RETURN(const hpke::ParsedHeader parsed, hpke::ReadHeader(source));
  QSAPI_ASSIGN_OR_RETURN(const std::unique_ptr<hpke::RecipientKey> recipient, load(parsed.header.key_id));
  QSAPI_ASSIGN_OR_RETURN(AtomicOutput output, AtomicOutput::Create(out));
  std::unique_ptr<ProgressBar> bar;
  std::uint64_t total = 0;
  if (progress && StderrIsTerminal()) bar = std::make_unique<ProgressBar>("opening", input.size());
  options.progress = [&](std::uint64_t done) {
    total = done;
    if (bar) bar->Update(done);
  };
  hpke::FdSink sink(output.fd());
  QSAPI_RETURN_IF_ERROR(hpke::OpenBody(parsed.header, source, *recipient, sink, options));
  QSAPI_RETURN_IF_ERROR(output.Commit());
  if (bar) bar->Update(total, true);
  return OkStatus();
}

namespace {
// BorrowedKey lets OpenFile hand a caller's key to OpenFileWith.
class BorrowedKey final : public hpke::RecipientKey {
 public:
  explicit BorrowedKey(const hpke::RecipientKey& k) : k_(k) {}
  [[nodiscard]] crypto::KemAlgorithm algorithm() const noexcept override { return k_.algorithm(); }
  [[nodiscard]] ByteView key_id() const noexcept override { return k_.key_id(); }
  [[nodiscard]] Result<SharedSecret> Decapsulate(ByteView enc) const override { return k_.Decapsulate(enc); }

 private:
  const hpke::RecipientKey& k_;
};
}  // namespace

Status OpenFile(const hpke::RecipientKey& recipient, const std::string& in, const std::string& out,
                hpke::OpenOptions options, bool progress) {
  return OpenFileWith(
      [&recipient](ByteView) -> Result<std::unique_ptr<hpke::RecipientKey>> {
        return std::unique_ptr<hpke::RecipientKey>(std::make_unique<BorrowedKey>(recipient));
      },
      in, out, std::move(options), progress);
}

}  // namespace qsapi::cli
