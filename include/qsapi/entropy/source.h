// qsapi/entropy/source.h: raw entropy sources.
//
// A source yields raw bytes: the OS CSPRNG (getrandom), a QRNG character device or file such as
// /dev/qrandom0, or a QRNG HTTP/JSON service. Sources do no health testing and no
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

struct HttpSourceOptions {
  std::string id = "qrng-http";
  std::string url;                           // http://host[:port]/path[?query] or https://...
  std::string api_key_header;                // header that carries the key ("x-api-key"); empty: no key is sent
  std::string api_key;                       // the key; never logged nor put in an error message
  std::string json_field = "data";           // the member of a JSON object response that holds the bytes
  std::string length_param = "length";       // query parameter that carries the byte count of a request
  double min_entropy = 7.0;                  // claimed bits per byte
  std::size_t max_bytes_per_request = 1024;  // largest byte count asked for in one GET
  std::size_t max_response_bytes = std::size_t{1} << 20;  // bound on one response body
  std::chrono::milliseconds timeout{5000};                // per request: resolve + connect + TLS + write + read
  bool verify_tls = true;                                 // https: verify the certificate chain and the host name
  std::string ca_file;                                    // https: PEM trust anchors; empty: the default verify paths
};

// OpenHttpSource returns a QRNG HTTP(S) service as an entropy source. Each ReadRaw issues GET
// requests (url plus `length_param`=n) until the buffer is full; the response body is a JSON array
// of integers 0..255, a JSON object whose `json_field` holds such an array or a hex string, or a
// bare hex string. kInvalidArgument for bad options (nothing is connected yet). ReadRaw fails with
// kUnavailable for connection errors, timeouts, non-200 statuses and "success": false, and with
// kInvalidArgument for a malformed payload; the messages name the id and the URL, never the key.
Result<std::unique_ptr<EntropySource>> OpenHttpSource(const HttpSourceOptions& options);

}  // namespace qsapi::entropy

#endif  // QSAPI_ENTROPY_SOURCE_H_
