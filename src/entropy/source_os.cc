// The OS CSPRNG as an entropy source: getrandom(2) with flags 0.
//
// Flags 0 reads the urandom pool but blocks until the kernel pool is initialised (getrandom(2),
// "Interruption by a signal handler"); after that it never blocks. A request may be satisfied in
// part (more than 33554431 bytes, or more than 256 bytes when a signal arrives), and a signal may
// interrupt it before any byte is copied (EINTR): both are retried until the buffer is full.
#include <sys/random.h>

#include <cerrno>
#include <memory>
#include <string>
#include <system_error>

#include "qsapi/entropy/source.h"
#include "qsapi/secret.h"

namespace qsapi::entropy {
namespace {

class OsSource final : public EntropySource {
 public:
  std::string_view id() const noexcept override { return "os"; }
  // The kernel's output is already conditioned by a CSPRNG: full entropy per byte.
  double claimed_min_entropy() const noexcept override { return 8.0; }
  bool is_qrng() const noexcept override { return false; }

  Status ReadRaw(std::span<std::uint8_t> out) override {
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // n == 0 cannot happen for a non-empty request; treat it as a failure rather than spin.
      const int err = n < 0 ? errno : EIO;
      SecureZero(out.data(), out.size());
      return Unavailable("entropy source \"os\": getrandom(2) failed: " + std::system_category().message(err));
    }
    return OkStatus();
  }
};

}  // namespace

std::unique_ptr<EntropySource> OpenOsSource() { return std::make_unique<OsSource>(); }

}  // namespace qsapi::entropy
