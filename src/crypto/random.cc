#include "qsapi/crypto/random.h"

#include <atomic>
#include <mutex>

#include <climits>
#include <openssl/rand.h>

namespace qsapi::crypto {
namespace {

class OpenSslDrbg final : public RandomSource {
 public:
  Status Fill(std::span<std::uint8_t> out) override {
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t n = std::min<std::size_t>(out.size() - done, INT_MAX);
      if (RAND_priv_bytes(out.data() + done, static_cast<int>(n)) != 1) {
        SecureZero(out.data(), out.size());
        return Unavailable("OpenSSL's DRBG failed to produce random bytes (is the OS entropy source available?)");
      }
      done += n;
    }
    return OkStatus();
  }
  std::string_view Name() const noexcept override { return "openssl-drbg"; }
};

std::mutex& SourceMutex() {
  static std::mutex mu;
  return mu;
}
std::shared_ptr<RandomSource>& SourceSlot() {
  // Never destroyed, like every process-wide slot here. Guarded by SourceMutex().
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
  static auto* slot = new std::shared_ptr<RandomSource>(OpenSslRandomSource());
  return *slot;
}

}  // namespace

std::shared_ptr<RandomSource> OpenSslRandomSource() {
  static const std::shared_ptr<RandomSource> source = std::make_shared<OpenSslDrbg>();
  return source;
}

void SetRandomSource(std::shared_ptr<RandomSource> source) {
  std::lock_guard<std::mutex> lock(SourceMutex());
  SourceSlot() = source ? std::move(source) : OpenSslRandomSource();
}

std::shared_ptr<RandomSource> GetRandomSource() {
  std::lock_guard<std::mutex> lock(SourceMutex());
  return SourceSlot();
}

Status RandomFill(std::span<std::uint8_t> out) {
  if (out.empty()) return OkStatus();
  Status s = GetRandomSource()->Fill(out);
  if (!s.ok()) SecureZero(out.data(), out.size());
  return s;
}

Result<SecretBytes> RandomSecret(std::size_t size) {
  SecretBytes out(size);
  QSAPI_RETURN_IF_ERROR(RandomFill(out.span()));
  return out;
}

Result<Bytes> RandomBytes(std::size_t size) {
  Bytes out(size);
  QSAPI_RETURN_IF_ERROR(RandomFill(out));
  return out;
}

}  // namespace qsapi::crypto
