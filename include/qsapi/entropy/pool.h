// qsapi/entropy/pool.h: the entropy pool: health-tested QRNG samples mixed with the OS CSPRNG.
//
// Draw(n) returns n bytes conditioned with HKDF-SHA-512 (RFC 5869; a vetted conditioning
// function in the sense of SP 800-90B 3.1.5.1):
//   IKM  = os (64 bytes of getrandom) || for each QRNG source that passed: len(id) || id ||
//          len(samples) (8 bytes, big-endian) || samples
//   PRK  = HKDF-Extract(salt = "qsapi entropy pool v1", IKM)
//   out  = HKDF-Expand(PRK, info = "qsapi entropy pool output" || draw counter (8 bytes), n)
// The OS CSPRNG is always part of the input, so the output is never weaker than the OS CSPRNG
// alone. A QRNG source contributes only samples that passed the SP 800-90B health tests in this
// very draw, after its start-up test; a source whose test fails is taken out of use at once (its
// samples of that draw are discarded) and comes back only through Retry() and a new start-up.
// Each draw asks every healthy QRNG source for enough samples to carry max(256, 8n) bits at its
// claimed min-entropy.
//
// Policy (qrng = off | prefer | require): off never reads a QRNG; prefer uses healthy QRNG sources
// and says in each draw whether any contributed; require fails with kUnavailable, naming each
// source's state, when no QRNG source contributed.
//
// Thread-safe: draws are serialised.
#ifndef QSAPI_ENTROPY_POOL_H_
#define QSAPI_ENTROPY_POOL_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "qsapi/crypto/random.h"
#include "qsapi/entropy/health_tests.h"
#include "qsapi/entropy/source.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"
#include "qsapi/source_policy.h"

namespace qsapi::entropy {

enum class SourceState : std::uint8_t { kStarting, kHealthy, kFailed, kDisabled };
std::string_view SourceStateName(SourceState state) noexcept;  // "starting", "healthy", ...

// SourceStatus is one source's row in health output and metrics. It never holds sample data.
struct SourceStatus {
  std::string id;
  bool qrng = false;
  double claimed_min_entropy = 0;
  SourceState state = SourceState::kStarting;
  std::uint64_t bytes_read = 0;       // raw bytes read from the source
  std::uint64_t bytes_used = 0;       // raw bytes that passed the tests and went into draws
  std::uint64_t health_failures = 0;  // SP 800-90B test failures
  std::uint64_t read_errors = 0;
  std::string last_failure;  // why it last failed ("" if never)
  std::optional<std::chrono::system_clock::time_point> last_failure_time;
};

// PoolDraw is one draw's output and the QRNG sources that contributed to it.
struct PoolDraw {
  SecretBytes bytes;
  std::vector<std::string> qrng_sources;
};

class EntropyPool {
 public:
  struct Options {
    SourcePolicy policy = SourcePolicy::kPrefer;
    double alpha = 1.0 / (1 << 20);  // health-test false-positive probability
  };

  // Create builds a pool over `qrng_sources` (may be empty) and the OS source `os`
  // (OpenOsSource() when null). kInvalidArgument when a source's claim is out of range or ids repeat.
  static Result<std::shared_ptr<EntropyPool>> Create(Options options,
                                                     std::vector<std::unique_ptr<EntropySource>> qrng_sources,
                                                     std::unique_ptr<EntropySource> os = nullptr);

  // Draw returns `size` conditioned bytes (see the file comment).
  Result<PoolDraw> Draw(std::size_t size);

  // SampleSource returns `size` raw samples of one source after they passed the health tests
  // (start-up first, if due); for "os", raw getrandom bytes. Not conditioned: for inspection
  // (`qsapi entropy sample --source`), not for keys. kNotFound for an unknown id; kUnavailable
  // when the source is failed or disabled, or fails now (the error says why).
  Result<SecretBytes> SampleSource(std::string_view id, std::size_t size);

  // Retry puts a failed or disabled source back into start-up. kNotFound for an unknown id.
  Status Retry(std::string_view id);
  // Disable takes a source out of use until Retry(). kNotFound for an unknown id.
  Status Disable(std::string_view id);

  [[nodiscard]] std::vector<SourceStatus> SourceStatuses() const;
  [[nodiscard]] SourcePolicy policy() const noexcept { return options_.policy; }

 private:
  struct Monitored {
    std::unique_ptr<EntropySource> source;
    HealthTests tests;
    SourceStatus status;
  };
  EntropyPool(Options options, std::unique_ptr<EntropySource> os, std::vector<Monitored> sources)
      : options_(options), os_(std::move(os)), sources_(std::move(sources)) {}

  // Collect reads and tests `count` samples from one source; returns the samples that passed
  // (empty when the source failed, which it records).
  static SecretBytes Collect(Monitored& m, std::size_t count);
  static void Fail(Monitored& m, std::string reason, bool health);

  Options options_;
  std::unique_ptr<EntropySource> os_;
  mutable std::mutex mu_;
  std::vector<Monitored> sources_;
  SourceStatus os_status_;
  std::uint64_t draws_ = 0;
};

// PoolRandomSource adapts a pool to crypto::RandomSource, so that crypto::SetRandomSource makes
// every random byte the library draws come from the pool.
class PoolRandomSource final : public crypto::RandomSource {
 public:
  explicit PoolRandomSource(std::shared_ptr<EntropyPool> pool) : pool_(std::move(pool)) {}
  Status Fill(std::span<std::uint8_t> out) override;
  std::string_view Name() const noexcept override { return "entropy-pool"; }

 private:
  std::shared_ptr<EntropyPool> pool_;
};

// FeedOpenSslDrbg draws 48 bytes from the pool and passes them to OpenSSL with RAND_add(), which
// in OpenSSL 3 reseeds the primary DRBG with them (on top of its own OS seed source), so that the
// keys and nonces OpenSSL generates internally are seeded from the pool too.
Status FeedOpenSslDrbg(EntropyPool& pool);

// DrbgFeeder calls FeedOpenSslDrbg on a background thread: once at Start, then every `interval`,
// so that OpenSSL's DRBG keeps being reseeded from the pool while a long-running process (qsapid)
// lives. A failed feed (e.g. qrng = require and no healthy QRNG) is logged once per run of
// failures and shows in status(); OpenSSL's own seeding continues meanwhile. Stop() (or the
// destructor) ends the thread promptly.
class DrbgFeeder {
 public:
  struct Status {
    std::uint64_t feeds = 0;     // successful feeds
    std::uint64_t failures = 0;  // failed feeds
    std::string last_error;      // "" after a success
    std::optional<std::chrono::system_clock::time_point> last_feed_time;
  };

  DrbgFeeder() = default;
  DrbgFeeder(const DrbgFeeder&) = delete;
  DrbgFeeder& operator=(const DrbgFeeder&) = delete;
  DrbgFeeder(DrbgFeeder&&) = delete;
  DrbgFeeder& operator=(DrbgFeeder&&) = delete;
  ~DrbgFeeder() { Stop(); }

  // Start begins feeding; kFailedPrecondition if already started, kInvalidArgument for a
  // non-positive interval.
  qsapi::Status Start(std::shared_ptr<EntropyPool> pool, std::chrono::milliseconds interval);
  void Stop() noexcept;
  [[nodiscard]] Status status() const;

 private:
  void Run(const std::shared_ptr<EntropyPool>& pool, std::chrono::milliseconds interval);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  Status status_;      // guarded by mu_
  std::thread thread_;
};

// FormatPrometheusMetrics renders the pool's sources as Prometheus text exposition (version 0.0.4):
// per source its state (one series per state, 1 for the current one), claimed min-entropy, bytes
// read and used, health failures, read errors and the time of the last failure. No sample data.
std::string FormatPrometheusMetrics(const EntropyPool& pool);

// FormatStatusJson renders the policy and the sources' status as a JSON object (for health output).
std::string FormatStatusJson(const EntropyPool& pool);

}  // namespace qsapi::entropy

#endif  // QSAPI_ENTROPY_POOL_H_
