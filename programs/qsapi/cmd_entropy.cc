// qsapi entropy status|sample: the entropy sources, their health, and samples from the pool.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "common/internal/text.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/entropy/source.h"

namespace qsapi::cli {
namespace {

// EntropyFlags are the entropy-source options shared by `entropy status` and `entropy sample`
// (the configuration file of qsapid carries the same settings).
struct EntropyFlags {
  std::vector<std::string> devices;  // QRNG device or file paths, ids qrng0, qrng1, ...
  std::vector<std::string> urls;     // QRNG HTTP(S) services, ids qrng-http0, qrng-http1, ...
  double min_entropy = 7.0;
  std::string policy = "prefer";
  int timeout_ms = 2000;
  std::string api_key_header;
  std::string api_key_file;  // the key is read from a file or QSAPI_QRNG_API_KEY, never from argv
  std::string ca_file;
  std::string json_field = "data";
  std::string length_param = "length";
};

void AddEntropyFlags(CLI::App* cmd, EntropyFlags& f) {
  cmd->add_option("--qrng-device", f.devices,
                  "QRNG character device, FIFO or file (repeatable): ids qrng0, qrng1, ...");
  cmd->add_option("--qrng-url", f.urls, "QRNG HTTP(S)/JSON service URL (repeatable): ids qrng-http0, qrng-http1, ...");
  cmd->add_option("--qrng-min-entropy", f.min_entropy, "Claimed min-entropy per byte of the QRNG sources, in bits")
      ->capture_default_str();
  cmd->add_option("--qrng-policy", f.policy, "off | prefer | require")->capture_default_str();
  cmd->add_option("--qrng-timeout-ms", f.timeout_ms, "How long a device read or an HTTP request may take")
      ->capture_default_str();
  cmd->add_option("--qrng-api-key-header", f.api_key_header, "HTTP header that carries the service's API key");
  cmd->add_option("--qrng-api-key-file", f.api_key_file,
                  "File holding the API key (else the environment variable QSAPI_QRNG_API_KEY)");
  cmd->add_option("--qrng-ca-file", f.ca_file, "PEM trust anchors for an https service (default: the system's)");
  cmd->add_option("--qrng-json-field", f.json_field, "JSON member that holds the bytes")->capture_default_str();
  cmd->add_option("--qrng-length-param", f.length_param, "Query parameter that carries the byte count")
      ->capture_default_str();
}

Result<std::string> ReadApiKey(const EntropyFlags& f) {
  std::string key;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read on the CLI's main thread, the only one that sets variables
  const char* env = std::getenv("QSAPI_QRNG_API_KEY");
  if (!f.api_key_file.empty()) {
    std::ifstream in(f.api_key_file, std::ios::binary);
    if (!in) return InvalidArgument("cannot read --qrng-api-key-file " + f.api_key_file);
    std::ostringstream s;
    s << in.rdbuf();
    key = s.str();
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  } else if (env != nullptr) {
    key = env;
  }
  if (!f.api_key_header.empty() && key.empty()) {
    return InvalidArgument(
        "--qrng-api-key-header is set but no key was given (--qrng-api-key-file or QSAPI_QRNG_API_KEY)");
  }
  return key;
}

Result<std::shared_ptr<entropy::EntropyPool>> MakePool(const EntropyFlags& f) {
  QSAPI_ASSIGN_OR_RETURN(qsapi::SourcePolicy policy, qsapi::ParseSourcePolicy(f.policy));
  if (f.timeout_ms <= 0) return InvalidArgument("--qrng-timeout-ms must be positive");
  std::vector<std::unique_ptr<entropy::EntropySource>> sources;
  for (std::size_t i = 0; i < f.devices.size(); ++i) {
    entropy::DeviceSourceOptions o;
    o.id = "qrng" + std::to_string(i);
    o.path = f.devices[i];
    o.min_entropy = f.min_entropy;
    o.timeout = std::chrono::milliseconds(f.timeout_ms);
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<entropy::EntropySource> source, entropy::OpenDeviceSource(o));
    sources.push_back(std::move(source));
  }
  if (!f.urls.empty()) {
    QSAPI_ASSIGN_OR_RETURN(std::string key, ReadApiKey(f));
    for (std::size_t i = 0; i < f.urls.size(); ++i) {
      entropy::HttpSourceOptions o;
      o.id = "qrng-http" + std::to_string(i);
      o.url = f.urls[i];
      o.min_entropy = f.min_entropy;
      o.timeout = std::chrono::milliseconds(f.timeout_ms);
      o.api_key_header = f.api_key_header;
      o.api_key = key;
      o.ca_file = f.ca_file;
      o.json_field = f.json_field;
      o.length_param = f.length_param;
      Result<std::unique_ptr<entropy::EntropySource>> source = entropy::OpenHttpSource(o);
      SecureZero(o.api_key.data(), o.api_key.size());
      if (!source.ok()) {
        SecureZero(key.data(), key.size());
        return source.error();
      }
      sources.push_back(std::move(*source));
    }
    SecureZero(key.data(), key.size());
  }
  return entropy::EntropyPool::Create({.policy = policy}, std::move(sources));
}

std::string FormatTime(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return "-";
  return qsapi::internal::FormatUtc(*t);
}

void EntropyStatus(const EntropyFlags& f, const std::string& format) {
  if (format != "text" && format != "json" && format != "prometheus") {
    return Fail("entropy status", "--format must be text, json or prometheus");
  }
  auto pool = MakePool(f);
  if (!pool.ok()) return Fail("entropy status", pool.error());
  // One draw runs every source's start-up test, so that the states below are current.
  auto draw = (*pool)->Draw(32);
  if (format != "text") {
    std::fputs((format == "json" ? entropy::FormatStatusJson(**pool) + "\n" : entropy::FormatPrometheusMetrics(**pool))
                   .c_str(),
               stdout);
    if (!draw.ok()) Fail("entropy status", "the pool cannot deliver: " + draw.error().ToString());
    return;
  }
  std::printf("policy: qrng = %s\n", std::string(qsapi::SourcePolicyName((*pool)->policy())).c_str());
  std::printf("%-11s %-5s %6s %-9s %12s %12s %8s %8s  %s\n", "source", "kind", "H/byte", "state", "bytes read",
              "bytes used", "health", "errors", "last failure");
  for (const auto& s : (*pool)->SourceStatuses()) {
    std::printf("%-11s %-5s %6.2f %-9s %12llu %12llu %8llu %8llu  %s%s%s\n", s.id.c_str(), s.qrng ? "qrng" : "os",
                s.claimed_min_entropy, std::string(entropy::SourceStateName(s.state)).c_str(),
                static_cast<unsigned long long>(s.bytes_read), static_cast<unsigned long long>(s.bytes_used),
                static_cast<unsigned long long>(s.health_failures), static_cast<unsigned long long>(s.read_errors),
                FormatTime(s.last_failure_time).c_str(), s.last_failure.empty() ? "" : " ", s.last_failure.c_str());
  }
  if (!draw.ok()) return Fail("entropy status", "the pool cannot deliver: " + draw.error().ToString());
  std::printf("pool: ok (QRNG sources in the last draw: %zu)\n", draw->qrng_sources.size());
}

void EntropySample(const EntropyFlags& f, std::size_t bytes, const std::string& source, bool raw) {
  constexpr std::size_t kMaxSample = std::size_t{64} << 20;
  if (bytes > kMaxSample) {
    return Fail("entropy sample", "--bytes must be at most " + std::to_string(kMaxSample));
  }
  auto pool = MakePool(f);
  if (!pool.ok()) return Fail("entropy sample", pool.error());
  Result<SecretBytes> out = Internal("unreached");
  if (source.empty()) {
    auto draw = (*pool)->Draw(bytes);
    out = draw.ok() ? Result<SecretBytes>(std::move(draw->bytes)) : Result<SecretBytes>(draw.error());
  } else {
    out = (*pool)->SampleSource(source, bytes);
  }
  if (!out.ok()) return Fail("entropy sample", out.error());
  if (raw) {
    if (std::fwrite(out->data(), 1, out->size(), stdout) != out->size()) Fail("entropy sample", "write failed");
    return;
  }
  std::printf("%s\n", Hex(out->view()).c_str());
}

}  // namespace

void RegisterEntropyCommands(CLI::App& app) {
  CLI::App* entropy = app.add_subcommand("entropy", "Entropy sources and the pool");
  entropy->require_subcommand(1);
  auto flags = std::make_shared<EntropyFlags>();
  CLI::App* status = entropy->add_subcommand("status", "Sources, their state and counters, last failure and when");
  AddEntropyFlags(status, *flags);
  auto format = std::make_shared<std::string>("text");
  status->add_option("--format", *format, "text | json | prometheus")->capture_default_str();
  status->callback([flags, format] { EntropyStatus(*flags, *format); });

  CLI::App* sample =
      entropy->add_subcommand("sample", "Print N bytes from the pool, or raw tested samples of one source");
  AddEntropyFlags(sample, *flags);
  struct SampleFlags {
    std::size_t bytes = 32;
    std::string source;
    bool raw = false;
  };
  auto s = std::make_shared<SampleFlags>();
  sample->add_option("--bytes", s->bytes, "How many bytes")->capture_default_str();
  sample->add_option("--source", s->source, "A source id (os, qrng0, qrng-http0, ...): its raw samples, health-tested");
  sample->add_flag("--raw", s->raw, "Write binary bytes instead of hex");
  sample->callback([flags, s] { EntropySample(*flags, s->bytes, s->source, s->raw); });
}

}  // namespace qsapi::cli
