// Tests of the raw entropy sources against real I/O: getrandom(2), FIFOs (mkfifo(3)) fed by a
// writer thread, regular files, /dev/urandom, and a signal arriving while ReadRaw waits.
#include "qsapi/entropy/source.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <grp.h>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace qsapi::entropy {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// ErrnoText is strerror(errno), without strerror's shared buffer (the tests run a writer thread).
std::string ErrnoText() { return std::system_category().message(errno); }

// TempDir is a fresh directory under $TMPDIR, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "qsapi-entropy-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << ErrnoText();
    }
    path_ = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Pattern returns `n` deterministic bytes, none of them zero, so that a wiped buffer is told apart
// from data and a lost or reordered byte shows.
Bytes Pattern(std::size_t n, std::uint8_t seed = 0) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>((i * 131 + seed + i / 251) % 255 + 1);
  return out;
}

bool AllZero(ByteView bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

DeviceSourceOptions Options(const std::filesystem::path& path, std::size_t chunk_size = 4096,
                            milliseconds timeout = milliseconds(10'000)) {
  DeviceSourceOptions o;
  o.id = "test-qrng";
  o.path = path.string();
  o.chunk_size = chunk_size;
  o.timeout = timeout;
  return o;
}

// Fifo is a FIFO in a temp dir. Its write end can only be opened once the source (the reader) has
// it open: a FIFO that no writer has opened yet reads as end of file.
class Fifo {
 public:
  Fifo() : path_(dir_.path() / "qrng.fifo") {
    if (::mkfifo(path_.c_str(), 0600) != 0) ADD_FAILURE() << "mkfifo: " << ErrnoText();
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  // OpenWriter opens the write end (O_NONBLOCK, so that a missing reader fails at once with ENXIO
  // instead of hanging the test), then makes writes blocking.
  [[nodiscard]] int OpenWriter() const {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      ADD_FAILURE() << "open FIFO for writing: " << ErrnoText();
      return -1;
    }
    const int flags = ::fcntl(fd, F_GETFL);
    EXPECT_EQ(::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK), 0);
    return fd;
  }

 private:
  TempDir dir_;
  std::filesystem::path path_;
};

void WriteAll(int fd, ByteView data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ADD_FAILURE() << "write: " << ErrnoText();
      return;
    }
    done += static_cast<std::size_t>(n);
  }
}

void WriteFileBytes(const std::filesystem::path& path, ByteView data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path << ": " << ErrnoText();
  WriteAll(fd, data);
  ::close(fd);
}

// Feed writes `data` to `fd` in small uneven pieces with short pauses between them, then closes `fd`
// (unless told to keep it open). The pieces deliberately straddle the reader's chunk boundaries.
// All data the tests feed stays below the 64 KiB pipe capacity, so the writer never blocks on a
// reader that has given up.
void Feed(int fd, Bytes data, milliseconds first_delay = milliseconds(0), bool close_at_end = true) {
  static constexpr std::size_t kPieces[] = {1, 7, 300, 13, 2500, 999, 1001, 64, 4097, 2};
  std::this_thread::sleep_for(first_delay);
  std::size_t done = 0;
  for (std::size_t i = 0; done < data.size(); ++i) {
    const std::size_t n = std::min(kPieces[i % std::size(kPieces)], data.size() - done);
    WriteAll(fd, ByteView(data).subspan(done, n));
    done += n;
    std::this_thread::sleep_for(milliseconds(1 + i % 3));
  }
  if (close_at_end) ::close(fd);
}

// ---- OS source ------------------------------------------------------------------------------

TEST(OsSourceTest, Properties) {
  const auto source = OpenOsSource();
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->id(), "os");
  EXPECT_EQ(source->claimed_min_entropy(), 8.0);
  EXPECT_FALSE(source->is_qrng());
}

TEST(OsSourceTest, FillsBuffersOfSeveralSizesWithFreshBytes) {
  const auto source = OpenOsSource();
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{1} << 20}) {
    SCOPED_TRACE(size);
    Bytes a(size, 0);
    Bytes b(size, 0);
    QSAPI_ASSERT_OK(source->ReadRaw(a));
    QSAPI_ASSERT_OK(source->ReadRaw(b));
    if (size < 64) continue;  // too short to rule out a chance collision or an all-zero draw
    EXPECT_NE(a, b);
    // Both ends are filled (all zero by chance: probability 2^-512 each): the loop covers the buffer.
    EXPECT_FALSE(AllZero(ByteView(a).first(64)));
    EXPECT_FALSE(AllZero(ByteView(a).last(64)));
  }
}

TEST(OsSourceTest, LargeBufferUsesEveryByteValue) {
  // A coarse sanity check that the bytes are not stuck or from a tiny alphabet; a uniform 1 MiB
  // misses some byte value with probability about 256 * e^-4096.
  Bytes buf(std::size_t{1} << 20);
  QSAPI_ASSERT_OK(OpenOsSource()->ReadRaw(buf));
  std::vector<bool> seen(256, false);
  for (const std::uint8_t b : buf) seen[b] = true;
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](bool s) { return s; }));
}

// ---- Device source: options and open errors ------------------------------------------------

TEST(DeviceSourceTest, RejectsInvalidOptionsNamingTheOption) {
  TempDir dir;
  const auto file = dir.path() / "data";
  WriteFileBytes(file, Pattern(16));
  struct Case {
    const char* option;
    std::function<void(DeviceSourceOptions&)> spoil;
  };
  const Case cases[] = {
      {"id", [](DeviceSourceOptions& o) { o.id.clear(); }},
      {"path", [](DeviceSourceOptions& o) { o.path.clear(); }},
      {"min_entropy", [](DeviceSourceOptions& o) { o.min_entropy = 0.0; }},
      {"min_entropy", [](DeviceSourceOptions& o) { o.min_entropy = -1.0; }},
      {"min_entropy", [](DeviceSourceOptions& o) { o.min_entropy = 8.01; }},
      {"min_entropy", [](DeviceSourceOptions& o) { o.min_entropy = std::numeric_limits<double>::quiet_NaN(); }},
      {"chunk_size", [](DeviceSourceOptions& o) { o.chunk_size = 0; }},
      {"chunk_size", [](DeviceSourceOptions& o) { o.chunk_size = (std::size_t{16} << 20) + 1; }},
      {"timeout", [](DeviceSourceOptions& o) { o.timeout = milliseconds(0); }},
      {"timeout", [](DeviceSourceOptions& o) { o.timeout = milliseconds(-5); }},
  };
  for (const Case& c : cases) {
    DeviceSourceOptions o = Options(file);
    c.spoil(o);
    const auto source = OpenDeviceSource(o);
    ASSERT_FALSE(source.ok()) << c.option;
    EXPECT_EQ(source.error().code(), ErrorCode::kInvalidArgument) << source.error().ToString();
    EXPECT_NE(source.error().message().find(c.option), std::string::npos) << source.error().ToString();
  }
}

TEST(DeviceSourceTest, AcceptsBoundaryOptionsAndReportsThem) {
  TempDir dir;
  const auto file = dir.path() / "data";
  WriteFileBytes(file, Pattern(16));
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{16} << 20}) {
    DeviceSourceOptions o = Options(file, chunk, milliseconds(1));
    o.id = "qrng7";
    o.min_entropy = 8.0;
    auto source = OpenDeviceSource(o);
    QSAPI_ASSERT_OK(source);
    EXPECT_EQ((*source)->id(), "qrng7");
    EXPECT_EQ((*source)->claimed_min_entropy(), 8.0);
    EXPECT_TRUE((*source)->is_qrng());
    Bytes out(16);
    QSAPI_ASSERT_OK((*source)->ReadRaw(out));
    EXPECT_EQ(out, Pattern(16));
  }
}

TEST(DeviceSourceTest, NonexistentPathIsNotFound) {
  TempDir dir;
  const auto missing = dir.path() / "no-such-qrng";
  const auto source = OpenDeviceSource(Options(missing));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code(), ErrorCode::kNotFound) << source.error().ToString();
  EXPECT_NE(source.error().message().find(missing.string()), std::string::npos) << source.error().ToString();
}

TEST(DeviceSourceTest, DirectoryIsRejected) {
  // open(2) lets a directory be opened for reading; the source must refuse it up front rather than
  // fail every read with EISDIR.
  TempDir dir;
  const auto source = OpenDeviceSource(Options(dir.path()));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code(), ErrorCode::kInvalidArgument) << source.error().ToString();
  EXPECT_NE(source.error().message().find(dir.path().string()), std::string::npos) << source.error().ToString();
}

TEST(DeviceSourceTest, UnreadableFileIsPermissionDenied) {
  TempDir dir;
  const auto file = dir.path() / "locked";
  WriteFileBytes(file, Pattern(16));
  ASSERT_EQ(::chmod(file.c_str(), 0000), 0);
  if (::geteuid() != 0) {
    const auto source = OpenDeviceSource(Options(file));
    ASSERT_FALSE(source.ok());
    EXPECT_EQ(source.error().code(), ErrorCode::kPermissionDenied) << source.error().ToString();
    EXPECT_NE(source.error().message().find(file.string()), std::string::npos) << source.error().ToString();
    return;
  }
  // root bypasses file permissions (CAP_DAC_OVERRIDE), so a mode 0000 file opens fine. Make the
  // kernel refuse for real: open it from a child process that has dropped to nobody (65534).
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);  // let nobody reach the file: only its mode says no
  enum : int { kDenied = 0, kOpened = 1, kOtherError = 2, kCannotDrop = 3, kNoPath = 4 };
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << ErrnoText();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(kCannotDrop);
    }
    const auto source = OpenDeviceSource(Options(file));
    if (source.ok()) ::_exit(kOpened);
    if (source.error().code() != ErrorCode::kPermissionDenied) ::_exit(kOtherError);
    ::_exit(source.error().message().find(file.string()) == std::string::npos ? kNoPath : kDenied);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus)) << "child status " << wstatus;
  const int code = WEXITSTATUS(wstatus);
  if (code == kCannotDrop) GTEST_SKIP() << "running as root and cannot drop to uid 65534 to test EACCES";
  EXPECT_EQ(code, kDenied) << "child exit " << code << " (1: opened, 2: other error code, 4: path not in message)";
}

// ---- Device source: reading ----------------------------------------------------------------

TEST(DeviceSourceTest, FifoDeliversExactBytesInOrderAcrossChunks) {
  Fifo fifo;
  // chunk_size smaller than the requests and not aligned with the writer's pieces.
  auto source = OpenDeviceSource(Options(fifo.path(), /*chunk_size=*/1000));
  QSAPI_ASSERT_OK(source);
  const Bytes data = Pattern(20'000, 7);
  std::jthread writer(Feed, fifo.OpenWriter(), data, milliseconds(5), true);

  Bytes got;
  for (const std::size_t n : {std::size_t{5000}, std::size_t{7}, std::size_t{14'993}}) {
    Bytes part(n);
    QSAPI_ASSERT_OK((*source)->ReadRaw(part));
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, data);

  writer.join();  // the writer has closed: the next read is end of file
  Bytes one(1);
  const Status s = (*source)->ReadRaw(one);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message().find("EOF"), std::string::npos) << s.error().ToString();
}

TEST(DeviceSourceTest, WriterClosingEarlyIsEofAndWipesOutput) {
  Fifo fifo;
  auto source = OpenDeviceSource(Options(fifo.path(), /*chunk_size=*/128));
  QSAPI_ASSERT_OK(source);
  std::jthread writer(Feed, fifo.OpenWriter(), Pattern(300), milliseconds(5), true);

  Bytes out(1000, 0xAA);  // 300 non-zero bytes arrive before EOF; the rest keeps the 0xAA filler
  const Status s = (*source)->ReadRaw(out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable) << s.error().ToString();
  EXPECT_NE(s.error().message().find("EOF"), std::string::npos) << s.error().ToString();
  EXPECT_NE(s.error().message().find("300 of 1000"), std::string::npos) << s.error().ToString();
  EXPECT_TRUE(AllZero(out)) << "a failed ReadRaw must wipe the whole buffer";
}

TEST(DeviceSourceTest, SilentWriterTimesOut) {
  Fifo fifo;
  const milliseconds timeout(200);
  auto source = OpenDeviceSource(Options(fifo.path(), 4096, timeout));
  QSAPI_ASSERT_OK(source);
  const int writer = fifo.OpenWriter();  // connected, but never writes

  Bytes out(64, 0xAA);
  const auto start = Clock::now();
  const Status s = (*source)->ReadRaw(out);
  const auto elapsed = Clock::now() - start;
  ::close(writer);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable) << s.error().ToString();
  EXPECT_NE(s.error().message().find("no data within 200 ms"), std::string::npos) << s.error().ToString();
  // ReadRaw gives up only once the deadline has passed (it checks the clock), and well before the
  // generous upper bound.
  EXPECT_GE(elapsed, timeout);
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  EXPECT_TRUE(AllZero(out));
}

TEST(DeviceSourceTest, StallAfterPartialDataTimesOutAndWipesOutput) {
  Fifo fifo;
  auto source = OpenDeviceSource(Options(fifo.path(), 4096, milliseconds(200)));
  QSAPI_ASSERT_OK(source);
  const int writer = fifo.OpenWriter();
  WriteAll(writer, Pattern(10));  // then nothing more, and the write end stays open

  Bytes out(64, 0xAA);
  const Status s = (*source)->ReadRaw(out);
  ::close(writer);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable) << s.error().ToString();
  EXPECT_NE(s.error().message().find("10 of 64"), std::string::npos) << s.error().ToString();
  EXPECT_TRUE(AllZero(out));
}

TEST(DeviceSourceTest, DeadlineCoversTheWholeCall) {
  // A writer that trickles one byte every 20 ms never leaves the reader waiting 300 ms at a time,
  // but 1000 bytes would take 20 s: the 300 ms deadline must bound the call as a whole.
  Fifo fifo;
  auto source = OpenDeviceSource(Options(fifo.path(), 4096, milliseconds(300)));
  QSAPI_ASSERT_OK(source);
  const int fd = fifo.OpenWriter();
  std::jthread writer([fd](const std::stop_token& stop) {
    const std::uint8_t byte = 0x5A;
    while (!stop.stop_requested()) {
      WriteAll(fd, ByteView(&byte, 1));
      std::this_thread::sleep_for(milliseconds(20));
    }
    ::close(fd);
  });

  Bytes out(1000);
  const auto start = Clock::now();
  const Status s = (*source)->ReadRaw(out);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable) << s.error().ToString();
  EXPECT_NE(s.error().message().find("no data within 300 ms"), std::string::npos) << s.error().ToString();
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  EXPECT_TRUE(AllZero(out));
}

TEST(DeviceSourceTest, RegularFileShorterThanRequestIsEof) {
  TempDir dir;
  const auto file = dir.path() / "short";
  WriteFileBytes(file, Pattern(100));
  auto source = OpenDeviceSource(Options(file, /*chunk_size=*/64));
  QSAPI_ASSERT_OK(source);
  Bytes out(200, 0xAA);
  const Status s = (*source)->ReadRaw(out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable) << s.error().ToString();
  EXPECT_NE(s.error().message().find("EOF"), std::string::npos) << s.error().ToString();
  EXPECT_NE(s.error().message().find(file.string()), std::string::npos) << s.error().ToString();
  EXPECT_TRUE(AllZero(out));
}

TEST(DeviceSourceTest, RegularFileYieldsExactContentsInSequence) {
  TempDir dir;
  const auto file = dir.path() / "pool";
  const Bytes data = Pattern(5000, 3);
  WriteFileBytes(file, data);
  auto source = OpenDeviceSource(Options(file, /*chunk_size=*/1000));
  QSAPI_ASSERT_OK(source);
  Bytes first(3001);
  Bytes second(1999);
  QSAPI_ASSERT_OK((*source)->ReadRaw(first));
  QSAPI_ASSERT_OK((*source)->ReadRaw(second));
  EXPECT_EQ(first, Bytes(data.begin(), data.begin() + 3001));
  EXPECT_EQ(second, Bytes(data.begin() + 3001, data.end()));
  Bytes more(1);
  EXPECT_FALSE((*source)->ReadRaw(more).ok()) << "the file is used up";
}

TEST(DeviceSourceTest, CharacterDevice) {
  // /dev/urandom stands in for a QRNG character device.
  auto source = OpenDeviceSource(Options("/dev/urandom", /*chunk_size=*/1000));
  if (!source.ok() && source.error().code() == ErrorCode::kNotFound) GTEST_SKIP() << "no /dev/urandom";
  QSAPI_ASSERT_OK(source);
  Bytes a(10'000);
  Bytes b(10'000);
  QSAPI_ASSERT_OK((*source)->ReadRaw(a));
  QSAPI_ASSERT_OK((*source)->ReadRaw(b));
  EXPECT_NE(a, b);
  EXPECT_FALSE(AllZero(ByteView(a).last(64)));
}

// ---- Device source: signals ----------------------------------------------------------------

// The handler can reach nothing but a global.
std::atomic<int> g_alarms{0};  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free counter");
void CountAlarm(int /*signal*/) { g_alarms.fetch_add(1, std::memory_order_relaxed); }

TEST(DeviceSourceTest, SignalWhileWaitingIsRetried) {
  Fifo fifo;
  auto source = OpenDeviceSource(Options(fifo.path(), /*chunk_size=*/256, milliseconds(10'000)));
  QSAPI_ASSERT_OK(source);

  // A handler installed without SA_RESTART makes the signal interrupt the waiting system call with
  // EINTR (poll(2) is never restarted anyway, signal(7)).
  struct sigaction action {};
  action.sa_handler = CountAlarm;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  struct sigaction previous {};
  ASSERT_EQ(::sigaction(SIGALRM, &action, &previous), 0);

  // The writer thread blocks SIGALRM (it inherits the mask set here), so the alarms land in this
  // thread, the one inside ReadRaw.
  sigset_t alarm_set;
  sigemptyset(&alarm_set);
  sigaddset(&alarm_set, SIGALRM);
  sigset_t old_mask;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &alarm_set, &old_mask), 0);
  const Bytes data = Pattern(2000, 11);
  std::jthread writer(Feed, fifo.OpenWriter(), data, milliseconds(300), true);
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr), 0);

  // An alarm every 25 ms, starting before the writer's first byte: ReadRaw is interrupted many
  // times while it waits.
  g_alarms.store(0);
  itimerval timer{};
  timer.it_value.tv_usec = 25'000;
  timer.it_interval.tv_usec = 25'000;
  ASSERT_EQ(::setitimer(ITIMER_REAL, &timer, nullptr), 0);

  Bytes out(data.size());
  const Status s = (*source)->ReadRaw(out);
  const int alarms = g_alarms.load();

  const itimerval off{};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &previous, nullptr);

  QSAPI_EXPECT_OK(s);
  EXPECT_EQ(out, data);
  EXPECT_GE(alarms, 1) << "no alarm fired while ReadRaw waited: the test did not exercise EINTR";
}

}  // namespace
}  // namespace qsapi::entropy
