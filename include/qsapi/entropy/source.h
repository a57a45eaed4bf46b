// qsapi/entropy/source.h: raw entropy sources.
//
// A source yields raw bytes: the OS CSPRNG (getrandom), a QRNG character device or file such as
// /dev/qrandom0, or (later) a QRNG HTTP/JSON service. Sources do no health testing and no
// conditioning themselves: the pool (pool.h) runs every raw QRNG byte through the SP 800-90B
// health tests (health_tests.h) before anything uses it, and mixes the OS CSPRNG in always.
// Each raw byte is one noise sample; a source states its claimed min-entropy per byte.
//
// Thread compatibility: a source is used by one thread at a time (the pool serialises access).
#ifndef QSAPI_ENTROPY_SOURCE_H_
#define QSAPI_ENTROPY_SOURCE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "qsapi/result.h"

namespace qsapi::entropy {

class EntropySource {
 public:
  virtual ~EntropySource() = default;
  // id names the source in health output, metrics and errors ("os", "qrng0").
  [[nodiscard]] virtual std::string_view id() const noexcept = 0;
  // claimed_min_entropy is the assessed min-entropy per raw byte, in bits (0, 8].
  [[nodiscard]] virtual double claimed_min_entropy() const noexcept = 0;
  // is_qrng tells whether the source is a quantum RNG (true) or the OS CSPRNG (false).
  [[nodiscard]] virtual bool is_qrng() const noexcept = 0;
  // ReadRaw fills `out` completely with raw bytes, or fails: kUnavailable for a device that is
  // gone, ended (EOF) or not ready within the source's timeout; kPermissionDenied when it cannot
  // be opened or read for lack of permission. On failure `out` holds no usable data (it is wiped).
  [[nodiscard]] virtual Status ReadRaw(std::span<std::uint8_t> out) = 0;
};

// OpenOsSource returns the OS CSPRNG (getrandom(2), blocking until the kernel pool is initialised).
// Its output is already conditioned; it is never health-tested as raw noise.
std::unique_ptr<EntropySource> OpenOsSource();

struct DeviceSourceOptions {
  std::string id = "qrng0";
  std::string path = "/dev/qrandom0";       // a character device, FIFO or regular file
  double min_entropy = 7.0;                 // claimed bits per byte
  std::size_t chunk_size = 4096;            // largest single read()
  std::chrono::milliseconds timeout{2000};  // how long ReadRaw waits for data in total
};

// OpenDeviceSource opens a QRNG device or file for reading. kInvalidArgument for bad options,
// kPermissionDenied / kNotFound / kUnavailable when the path cannot be opened (the message names
// the path and the OS error).
Result<std::unique_ptr<EntropySource>> OpenDeviceSource(const DeviceSourceOptions& options);

}  // namespace qsapi::entropy

#endif  // QSAPI_ENTROPY_SOURCE_H_
