#include "qsapi/entropy/pool.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include "common/internal/text.h"
#include "qsapi/crypto/kdf.h"
#include "qsapi/log.h"

namespace qsapi::entropy {
namespace {

constexpr std::string_view kSalt = "qsapi entropy pool v1";
constexpr std::string_view kInfo = "qsapi entropy pool output";
constexpr std::size_t kOsBytes = 64;
constexpr std::size_t kMaxExpand = std::size_t{255} * 64;  // HKDF-SHA-512's output limit per PRK

void AppendBigEndian(Bytes& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

std::string_view SourceStateName(SourceState state) noexcept {
  switch (state) {
    case SourceState::kStarting: return "starting";
    case SourceState::kHealthy: return "healthy";
    case SourceState::kFailed: return "failed";
    case SourceState::kDisabled: return "disabled";
  }
  return "unknown";
}

Result<std::shared_ptr<EntropyPool>> EntropyPool::Create(Options options,
                                                         std::vector<std::unique_ptr<EntropySource>> qrng_sources,
                                                         std::unique_ptr<EntropySource> os) {
  if (!os) os = OpenOsSource();
  std::vector<Monitored> monitored;
  std::set<std::string, std::less<>> ids = {std::string(os->id())};
  for (auto& source : qrng_sources) {
    if (!source) return InvalidArgument("null entropy source");
    const std::string id(source->id());
    if (!ids.insert(id).second) return InvalidArgument("entropy source id \"" + id + "\" is used twice");
    Result<HealthTests> tests = HealthTests::Create(source->claimed_min_entropy(), options.alpha);
    if (!tests) return InvalidArgument("entropy source \"" + id + "\": " + tests.error().message());
    SourceStatus status;
    status.id = id;
    status.qrng = source->is_qrng();
    status.claimed_min_entropy = source->claimed_min_entropy();
    monitored.push_back(Monitored{std::move(source), std::move(tests).value(), std::move(status)});
  }
  auto pool = std::shared_ptr<EntropyPool>(new EntropyPool(options, std::move(os), std::move(monitored)));
  pool->os_status_.id = std::string(pool->os_->id());
  pool->os_status_.claimed_min_entropy = pool->os_->claimed_min_entropy();
  pool->os_status_.state = SourceState::kHealthy;
  return pool;
}

void EntropyPool::Fail(Monitored& m, std::string reason, bool health) {
  m.status.state = SourceState::kFailed;
  // The reason names the test or the I/O error, never sample data.
  Log(LogLevel::kWarning, "entropy",
      "source \"" + m.status.id + "\" taken out of use: " + reason + " (it returns only after a fresh start-up test)");
  m.status.last_failure = std::move(reason);
  m.status.last_failure_time = std::chrono::system_clock::now();
  if (health) {
    ++m.status.health_failures;
  } else {
    ++m.status.read_errors;
  }
}

SecretBytes EntropyPool::Collect(Monitored& m, std::size_t count) {
  if (m.status.state == SourceState::kFailed || m.status.state == SourceState::kDisabled) return {};
  // SP 800-90B 4.3: a start-up test over kStartupSamples samples, whose output is discarded.
  while (m.tests.state() == HealthState::kStartup) {
    SecretBytes startup(HealthTests::kStartupSamples);
    if (Status s = m.source->ReadRaw(startup.span()); !s.ok()) {
      Fail(m, "read error during start-up: " + s.error().message(), false);
      return {};
    }
    m.status.bytes_read += startup.size();
    m.tests.Process(startup.view());
    if (m.tests.state() == HealthState::kFailed) break;
  }
  if (m.tests.state() == HealthState::kFailed) {
    Fail(m,
         std::string("start-up health test failed (") +
             (m.tests.last_failure() == HealthFailure::kRepetitionCount ? "repetition count" : "adaptive proportion") +
             " test)",
         true);
    return {};
  }
  SecretBytes samples(count);
  if (Status s = m.source->ReadRaw(samples.span()); !s.ok()) {
    Fail(m, "read error: " + s.error().message(), false);
    return {};
  }
  m.status.bytes_read += samples.size();
  if (m.tests.Process(samples.view()) != samples.size()) {
    // Taken out of use at once; this draw's samples are discarded (wiped with `samples`).
    Fail(m,
         std::string(m.tests.last_failure() == HealthFailure::kRepetitionCount ? "repetition count"
                                                                               : "adaptive proportion") +
             " health test failed",
         true);
    return {};
  }
  m.status.state = SourceState::kHealthy;
  m.status.bytes_used += samples.size();
  return samples;
}

Result<PoolDraw> EntropyPool::Draw(std::size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  PoolDraw draw;
  SecretBytes os(kOsBytes);
  if (Status s = os_->ReadRaw(os.span()); !s.ok()) {
    ++os_status_.read_errors;
    return Unavailable("the OS CSPRNG failed: " + s.error().message());
  }
  os_status_.bytes_read += os.size();
  os_status_.bytes_used += os.size();

  // IKM = os || for each contributing QRNG source: len(id) || id || len(samples) || samples.
  std::vector<std::pair<std::string, SecretBytes>> contributions;
  if (options_.policy != SourcePolicy::kOff) {
    const std::size_t bits = std::max<std::size_t>(256, 8 * size);
    for (Monitored& m : sources_) {
      const auto count =
          static_cast<std::size_t>(std::ceil(static_cast<double>(bits) / m.source->claimed_min_entropy()));
      SecretBytes samples = Collect(m, count);
      if (!samples.empty()) contributions.emplace_back(m.status.id, std::move(samples));
    }
  }
  if (options_.policy == SourcePolicy::kRequire && contributions.empty()) {
    std::string why = "qrng = require, but no QRNG source is healthy";
    if (sources_.empty()) why += " (none is configured)";
    for (const Monitored& m : sources_) {
      why += "; " + m.status.id + ": " + std::string(SourceStateName(m.status.state));
      if (!m.status.last_failure.empty()) why += " (" + m.status.last_failure + ")";
    }
    return Unavailable(why);
  }
  std::size_t ikm_len = os.size();
  for (const auto& [id, samples] : contributions) ikm_len += 1 + id.size() + 8 + samples.size();
  SecretBytes ikm(ikm_len);
  std::size_t at = 0;
  auto put = [&](ByteView b) {
    std::copy(b.begin(), b.end(), ikm.data() + at);
    at += b.size();
  };
  put(os.view());
  for (const auto& [id, samples] : contributions) {
    Bytes header;
    header.push_back(static_cast<std::uint8_t>(id.size()));
    header.insert(header.end(), id.begin(), id.end());
    AppendBigEndian(header, samples.size(), 8);
    put(header);
    put(samples.view());
    draw.qrng_sources.push_back(id);
  }
  const ByteView salt(reinterpret_cast<const std::uint8_t*>(kSalt.data()), kSalt.size());  // NOLINT
  QSAPI_ASSIGN_OR_RETURN(PseudorandomKey prk, crypto::HkdfExtract(crypto::HashAlgorithm::kSha512, salt, ikm.view()));
  draw.bytes = SecretBytes(size);
  for (std::size_t done = 0; done < size;) {
    const std::size_t n = std::min(kMaxExpand, size - done);
    Bytes info(kInfo.begin(), kInfo.end());
    AppendBigEndian(info, ++draws_, 8);
    QSAPI_ASSIGN_OR_RETURN(SecretBytes block, crypto::HkdfExpand(crypto::HashAlgorithm::kSha512, prk, info, n));
    std::copy(block.view().begin(), block.view().end(), draw.bytes.data() + done);
    done += n;
  }
  return draw;
}

Result<SecretBytes> EntropyPool::SampleSource(std::string_view id, std::size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id == os_status_.id) {
    SecretBytes out(size);
    if (Status s = os_->ReadRaw(out.span()); !s.ok()) return s.error();
    os_status_.bytes_read += size;
    return out;
  }
  for (Monitored& m : sources_) {
    if (m.status.id != id) continue;
    if (m.status.state == SourceState::kFailed || m.status.state == SourceState::kDisabled) {
      return Unavailable("entropy source \"" + m.status.id + "\" is " + std::string(SourceStateName(m.status.state)) +
                         (m.status.last_failure.empty() ? "" : " (" + m.status.last_failure + ")"));
    }
    SecretBytes samples = Collect(m, size);
    if (m.status.state == SourceState::kFailed) {
      return Unavailable("entropy source \"" + m.status.id + "\" failed: " + m.status.last_failure);
    }
    return samples;
  }
  return NotFound("no entropy source \"" + std::string(id) + "\"");
}

Status EntropyPool::Retry(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Monitored& m : sources_) {
    if (m.status.id == id) {
      m.tests.Reset();
      m.status.state = SourceState::kStarting;
      return OkStatus();
    }
  }
  return NotFound("no entropy source \"" + std::string(id) + "\"");
}

Status EntropyPool::Disable(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Monitored& m : sources_) {
    if (m.status.id == id) {
      m.status.state = SourceState::kDisabled;
      return OkStatus();
    }
  }
  return NotFound("no entropy source \"" + std::string(id) + "\"");
}

std::vector<SourceStatus> EntropyPool::SourceStatuses() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SourceStatus> out = {os_status_};
  for (const Monitored& m : sources_) out.push_back(m.status);
  return out;
}

Status PoolRandomSource::Fill(std::span<std::uint8_t> out) {
  QSAPI_ASSIGN_OR_RETURN(PoolDraw draw, pool_->Draw(out.size()));
  std::copy(draw.bytes.view().begin(), draw.bytes.view().end(), out.begin());
  return OkStatus();
}

Status FeedOpenSslDrbg(EntropyPool& pool) {
  QSAPI_ASSIGN_OR_RETURN(PoolDraw draw, pool.Draw(48));
  RAND_add(draw.bytes.data(), static_cast<int>(draw.bytes.size()), static_cast<double>(draw.bytes.size()));
  return OkStatus();
}

}  // namespace qsapi::entropy

namespace qsapi::entropy {

qsapi::Status DrbgFeeder::Start(std::shared_ptr<EntropyPool> pool, std::chrono::milliseconds interval) {
  if (pool == nullptr) return InvalidArgument("DrbgFeeder needs a pool");
  if (interval.count() <= 0) return InvalidArgument("the DRBG feed interval must be positive");
  const std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return FailedPrecondition("the DRBG feeder is already running");
  stop_ = false;
  thread_ = std::thread([this, pool = std::move(pool), interval] { Run(pool, interval); });
  return OkStatus();
}

void DrbgFeeder::Stop() noexcept {
  {
    const std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

DrbgFeeder::Status DrbgFeeder::status() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void DrbgFeeder::Run(const std::shared_ptr<EntropyPool>& pool, std::chrono::milliseconds interval) {
  bool failing = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    const qsapi::Status s = FeedOpenSslDrbg(*pool);
    lock.lock();
    status_.last_feed_time = std::chrono::system_clock::now();
    if (s.ok()) {
      ++status_.feeds;
      status_.last_error.clear();
      if (failing) Log(LogLevel::kInfo, "entropy", "feeding OpenSSL's DRBG from the pool works again");
      failing = false;
    } else {
      ++status_.failures;
      status_.last_error = s.error().ToString();
      if (!failing) {
        Log(LogLevel::kWarning, "entropy",
            "cannot feed OpenSSL's DRBG from the pool (OpenSSL keeps its own OS seeding): " + status_.last_error);
      }
      failing = true;
    }
    cv_.wait_for(lock, interval, [this] { return stop_; });
  }
}

namespace {

std::string EscapeLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

double Seconds(const std::chrono::system_clock::time_point& t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

std::string FormatPrometheusMetrics(const EntropyPool& pool) {
  const std::vector<SourceStatus> all = pool.SourceStatuses();
  std::string out;
  const auto family = [&out](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  const auto labels = [](const SourceStatus& s) {
    return "{source=\"" + EscapeLabel(s.id) + "\",kind=\"" + (s.qrng ? "qrng" : "os") + "\"";
  };
  const auto number = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  family("qsapi_entropy_qrng_policy", "gauge", "The QRNG policy in force (1 for the current one).");
  for (SourcePolicy p : {SourcePolicy::kOff, SourcePolicy::kPrefer, SourcePolicy::kRequire}) {
    out += "qsapi_entropy_qrng_policy{policy=\"" + std::string(SourcePolicyName(p)) + "\"} " +
           (p == pool.policy() ? "1" : "0") + "\n";
  }
  family("qsapi_entropy_source_state", "gauge", "Entropy source state (1 for the current one).");
  for (const SourceStatus& s : all) {
    for (SourceState st :
         {SourceState::kStarting, SourceState::kHealthy, SourceState::kFailed, SourceState::kDisabled}) {
      out += "qsapi_entropy_source_state" + labels(s) + ",state=\"" + std::string(SourceStateName(st)) + "\"} " +
             (st == s.state ? "1" : "0") + "\n";
    }
  }
  family("qsapi_entropy_source_min_entropy_bits", "gauge", "Claimed min-entropy per sample, in bits.");
  for (const SourceStatus& s : all) {
    out += "qsapi_entropy_source_min_entropy_bits" + labels(s) + "} " + number(s.claimed_min_entropy) + "\n";
  }
  const auto counter = [&](const char* name, const char* help, auto field) {
    family(name, "counter", help);
    for (const SourceStatus& s : all) out += name + labels(s) + "} " + std::to_string(field(s)) + "\n";
  };
  counter("qsapi_entropy_source_read_bytes_total", "Raw bytes read from the source.",
          [](const SourceStatus& s) { return s.bytes_read; });
  counter("qsapi_entropy_source_used_bytes_total", "Raw bytes that passed the health tests and went into draws.",
          [](const SourceStatus& s) { return s.bytes_used; });
  counter("qsapi_entropy_source_health_failures_total", "SP 800-90B health-test failures.",
          [](const SourceStatus& s) { return s.health_failures; });
  counter("qsapi_entropy_source_read_errors_total", "Read errors (I/O, timeouts, bad payloads).",
          [](const SourceStatus& s) { return s.read_errors; });
  family("qsapi_entropy_source_last_failure_timestamp_seconds", "gauge",
         "Unix time of the source's last failure (0 if none).");
  for (const SourceStatus& s : all) {
    out += "qsapi_entropy_source_last_failure_timestamp_seconds" + labels(s) + "} " +
           (s.last_failure_time ? number(Seconds(*s.last_failure_time)) : std::string("0")) + "\n";
  }
  return out;
}

std::string FormatStatusJson(const EntropyPool& pool) {
  nlohmann::json sources = nlohmann::json::array();
  for (const SourceStatus& s : pool.SourceStatuses()) {
    nlohmann::json j = {{"id", s.id},
                        {"kind", s.qrng ? "qrng" : "os"},
                        {"state", SourceStateName(s.state)},
                        {"min_entropy", s.claimed_min_entropy},
                        {"bytes_read", s.bytes_read},
                        {"bytes_used", s.bytes_used},
                        {"health_failures", s.health_failures},
                        {"read_errors", s.read_errors},
                        {"last_failure", nullptr},
                        {"last_failure_time", nullptr}};
    if (!s.last_failure.empty()) j["last_failure"] = s.last_failure;
    if (s.last_failure_time) {
      j["last_failure_time"] = qsapi::internal::FormatUtc(*s.last_failure_time);
    }
    sources.push_back(std::move(j));
  }
  const nlohmann::json out = {{"policy", SourcePolicyName(pool.policy())}, {"sources", std::move(sources)}};
  // Replacement of invalid UTF-8: a device path in a message must not make the output unparseable.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace qsapi::entropy
