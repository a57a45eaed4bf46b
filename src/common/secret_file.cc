#include "common/internal/secret_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>

#include "common/internal/text.h"

namespace qsapi::internal {

Result<SecretBytes> ReadSecretFile(const std::filesystem::path& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied,
                 "cannot open " + std::string(what) + " " + path.string() + ": " + ErrnoText(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(std::string(what) + " " + path.string() + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return PermissionDenied(std::string(what) + " " + path.string() +
                            " may be read or written by group or others; run: chmod 600 " + path.string());
  }
  constexpr off_t kMaxSecretFile = 1 << 20;
  if (st.st_size > kMaxSecretFile) {
    ::close(fd);
    return InvalidArgument(std::string(what) + " " + path.string() + " is larger than 1 MiB");
  }
  SecretBytes data(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  int read_error = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) read_error = errno;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (read_error != 0) {
    return Unavailable("cannot read " + std::string(what) + " " + path.string() + ": " + ErrnoText(read_error));
  }
  data.Shrink(done);
  return data;
}

Result<SecretBytes> ReadSecretLine(const std::string& file, const std::string& env, std::string_view what) {
  SecretBytes secret;
  std::string where;
  if (!file.empty()) {
    QSAPI_ASSIGN_OR_RETURN(secret, ReadSecretFile(file, std::string(what) + " file"));
    std::size_t n = secret.size();
    while (n > 0 && (secret.data()[n - 1] == '\n' || secret.data()[n - 1] == '\r')) --n;
    secret.Shrink(n);
    where = "file " + file;
  } else if (!env.empty()) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read at start-up; nothing sets it while the process runs
    const char* v = std::getenv(env.c_str());
    if (v == nullptr)
      return FailedPrecondition("environment variable " + env + " (the " + std::string(what) + ") is not set");
    secret = SecretBytes::CopyFrom({reinterpret_cast<const std::uint8_t*>(v), std::strlen(v)});  // NOLINT
    where = "environment variable " + env;
  } else {
    return InvalidArgument("no source for the " + std::string(what) + ": give a file or an environment variable");
  }
  if (secret.empty()) return FailedPrecondition("the " + std::string(what) + " in " + where + " is empty");
  const ByteView v = secret.view();
  if (std::any_of(v.begin(), v.end(), [](std::uint8_t b) { return b == 0 || b == '\n' || b == '\r'; })) {
    return InvalidArgument("the " + std::string(what) + " in " + where + " holds a NUL or a line break");
  }
  return secret;
}

}  // namespace qsapi::internal
