// A QRNG character device, FIFO or regular file as an entropy source: open(2), read(2), poll(2).
//
// The path is opened with O_NONBLOCK, for two reasons: open(2) of a FIFO without O_NONBLOCK blocks
// until a writer appears (fifo(7)), and ReadRaw must honour a deadline, which a blocking read(2)
// cannot. So read(2) returns EAGAIN when the device has nothing yet, and ReadRaw waits in poll(2)
// for the rest of its time budget. read(2) returning 0 is end of file (a regular file that has
// been consumed, or a FIFO whose last writer closed, pipe(7)): a source that ended is unavailable.
// Note that a FIFO no writer has opened yet also reads as end of file, so a feeder process must
// open the FIFO before the first ReadRaw.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <limits>
#include <memory>
#include <poll.h>
#include <string>
#include <system_error>
#include <utility>

#include "qsapi/entropy/source.h"
#include "qsapi/secret.h"

namespace qsapi::entropy {
namespace {

constexpr std::size_t kMaxChunkSize = std::size_t{16} << 20;  // 16 MiB: a sane bound on one read(2)

std::string OsError(int err) { return std::system_category().message(err); }

// Fd owns a file descriptor, so that no path out of OpenDeviceSource leaks it.
class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  // close(2) errors are ignored: the descriptor is released whatever close returns (close(2), NOTES),
  // and nothing was written through it.
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

class DeviceSource final : public EntropySource {
 public:
  DeviceSource(const DeviceSourceOptions& options, Fd fd)
      : id_(options.id),
        path_(options.path),
        min_entropy_(options.min_entropy),
        chunk_size_(options.chunk_size),
        timeout_(options.timeout),
        fd_(std::move(fd)) {}

  std::string_view id() const noexcept override { return id_; }
  double claimed_min_entropy() const noexcept override { return min_entropy_; }
  bool is_qrng() const noexcept override { return true; }

  Status ReadRaw(std::span<std::uint8_t> out) override {
    Status status = Fill(out);
    // Bytes read before a failure are not handed out: a partial buffer must never look usable.
    if (!status.ok()) SecureZero(out.data(), out.size());
    return status;
  }

 private:
  using Clock = std::chrono::steady_clock;

  // Name is how errors refer to the source: its id and its path.
  [[nodiscard]] std::string Name() const { return "entropy source \"" + id_ + "\" (" + path_ + ")"; }

  [[nodiscard]] static std::string Progress(std::size_t done, std::size_t total) {
    return " after " + std::to_string(done) + " of " + std::to_string(total) + " bytes";
  }

  Status Fill(std::span<std::uint8_t> out) {
    // One deadline for the whole call: a device that trickles a byte now and then must not hold
    // the caller for timeout_ per byte.
    const Clock::time_point deadline = Clock::now() + timeout_;
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t want = std::min(out.size() - done, chunk_size_);
      const ssize_t n = ::read(fd_.get(), out.data() + done, want);
      if (n > 0) {
        done += static_cast<std::size_t>(n);  // a short read is normal for a device or FIFO: go on
        continue;
      }
      if (n == 0) return Unavailable(Name() + " ended (EOF)" + Progress(done, out.size()));
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        QSAPI_RETURN_IF_ERROR(WaitReadable(deadline, done, out.size()));
        continue;
      }
      if (err == EACCES || err == EPERM) {
        return PermissionDenied("cannot read " + Name() + ": " + OsError(err));
      }
      return Unavailable("cannot read " + Name() + ": " + OsError(err));
    }
    return OkStatus();
  }

  // WaitReadable returns once the descriptor is readable (or has hung up or failed, which the next
  // read(2) reports), or fails when the deadline passes first.
  Status WaitReadable(Clock::time_point deadline, std::size_t done, std::size_t total) const {
    while (true) {
      const Clock::duration left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) {
        return Unavailable(Name() + " produced no data within " + std::to_string(timeout_.count()) + " ms" +
                           Progress(done, total));
      }
      // Round up, so that a poll that times out is past the deadline rather than spinning on 0 ms.
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      pollfd pfd{.fd = fd_.get(), .events = POLLIN, .revents = 0};
      const int r = ::poll(
          &pfd, 1, static_cast<int>(std::min<std::chrono::milliseconds::rep>(ms, std::numeric_limits<int>::max())));
      if (r > 0) {
        if ((pfd.revents & POLLNVAL) != 0) return Internal(Name() + ": poll(2) reports an invalid descriptor");
        return OkStatus();
      }
      if (r == 0) continue;  // timed out: the loop head decides against the deadline
      const int err = errno;
      if (err == EINTR) continue;  // a signal handler ran; poll(2) is never restarted (signal(7))
      return Unavailable("cannot wait for " + Name() + ": poll(2) failed: " + OsError(err));
    }
  }

  std::string id_;
  std::string path_;
  double min_entropy_;
  std::size_t chunk_size_;
  std::chrono::milliseconds timeout_;
  Fd fd_;
};

Status CheckOptions(const DeviceSourceOptions& o) {
  const std::string who = "entropy source \"" + o.id + "\": ";
  if (o.id.empty()) return InvalidArgument("entropy source option id must not be empty");
  if (o.path.empty()) return InvalidArgument(who + "option path must not be empty");
  // Written so that NaN fails too.
  if (!(o.min_entropy > 0.0 && o.min_entropy <= 8.0)) {
    return InvalidArgument(who + "option min_entropy must be in (0, 8] bits per byte, got " +
                           std::to_string(o.min_entropy));
  }
  if (o.chunk_size < 1 || o.chunk_size > kMaxChunkSize) {
    return InvalidArgument(who + "option chunk_size must be in [1, " + std::to_string(kMaxChunkSize) + "] bytes, got " +
                           std::to_string(o.chunk_size));
  }
  if (o.timeout <= std::chrono::milliseconds::zero()) {
    return InvalidArgument(who + "option timeout must be positive, got " + std::to_string(o.timeout.count()) + " ms");
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<EntropySource>> OpenDeviceSource(const DeviceSourceOptions& options) {
  QSAPI_RETURN_IF_ERROR(CheckOptions(options));
  const std::string name = "entropy source \"" + options.id + "\" (" + options.path + ")";
  // O_NOCTTY: a serial QRNG (a tty) must not become the process's controlling terminal.
  Fd fd(::open(options.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    const std::string message = "cannot open " + name + ": " + OsError(err);
    switch (err) {
      case EACCES:
      case EPERM: return PermissionDenied(message);
      case ENOENT: return NotFound(message);
      default: return Unavailable(message);
    }
  }
  // open(2) accepts a directory for reading; read(2) would then fail with EISDIR on every call.
  // Say at once that the path is wrong instead.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Unavailable("cannot stat " + name + ": " + OsError(errno));
  if (!S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISREG(st.st_mode)) {
    return InvalidArgument(name + " is not a character device, FIFO or regular file");
  }
  return std::unique_ptr<EntropySource>(std::make_unique<DeviceSource>(options, std::move(fd)));
}

}  // namespace qsapi::entropy
