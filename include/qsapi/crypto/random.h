// qsapi/crypto/random.h: the one interface through which qsapi draws random bytes.
//
// Every random byte the library draws itself (key seeds, nonces, ephemeral keys, salts) comes from
// the process-wide RandomSource. The default draws from OpenSSL's DRBG (RAND_priv_bytes), which
// OpenSSL seeds from the OS CSPRNG (getrandom). The entropy part replaces it with a pool that
// mixes health-tested QRNG output with the OS CSPRNG; callers do not change.
//
// Randomness that OpenSSL draws inside one of its own operations (ML-KEM encapsulation's m,
// ML-DSA's hedging rnd) comes from OpenSSL's DRBG; the entropy part feeds that DRBG too.
#ifndef QSAPI_CRYPTO_RANDOM_H_
#define QSAPI_CRYPTO_RANDOM_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::crypto {

// RandomSource fills buffers with cryptographically secure random bytes.
// Implementations must be thread-safe.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Fill writes out.size() random bytes to `out`, or returns an error (and `out` must then not be
  // used; it is wiped). kUnavailable means that policy forbids output now (e.g. qrng = require
  // with no healthy QRNG source).
  [[nodiscard]] virtual Status Fill(std::span<std::uint8_t> out) = 0;
  // Name identifies the source in health output and errors ("openssl-drbg").
  [[nodiscard]] virtual std::string_view Name() const noexcept = 0;
};

// OpenSslRandomSource draws from OpenSSL's private DRBG. It is the default.
std::shared_ptr<RandomSource> OpenSslRandomSource();

// SetRandomSource installs `source` as the process-wide source (nullptr restores the default).
// Thread-safe; operations already running keep the source they started with.
void SetRandomSource(std::shared_ptr<RandomSource> source);

// GetRandomSource returns the process-wide source.
std::shared_ptr<RandomSource> GetRandomSource();

// RandomFill fills `out` from the process-wide source.
[[nodiscard]] Status RandomFill(std::span<std::uint8_t> out);

// RandomSecret returns `size` random bytes in secret memory.
[[nodiscard]] Result<SecretBytes> RandomSecret(std::size_t size);

// RandomBytes returns `size` random bytes that need not stay secret (nonces, salts).
[[nodiscard]] Result<Bytes> RandomBytes(std::size_t size);

}  // namespace qsapi::crypto

#endif  // QSAPI_CRYPTO_RANDOM_H_
