// qsapi: the command-line tool. Today: --version, `selftest` and `entropy status|sample`; key
// management, seal/open, kme-sim and doctor follow (issues #4-#8).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "qsapi/crypto/self_test.h"
#include "qsapi/entropy/pool.h"
#include "qsapi/process.h"
#include "qsapi/version.h"

namespace {

// EntropyFlags are the entropy-source options shared by `entropy status` and `entropy sample`
// (the configuration file of issue #7 will carry the same settings).
struct EntropyFlags {
  std::vector<std::string> devices;  // QRNG device or file paths, ids qrng0, qrng1, ...
  double min_entropy = 7.0;
  std::string policy = "prefer";
  int timeout_ms = 2000;
};

void AddEntropyFlags(CLI::App* cmd, EntropyFlags& f) {
  cmd->add_option("--qrng-device", f.devices,
                  "QRNG character device, FIFO or file (repeatable): ids qrng0, qrng1, ...");
  cmd->add_option("--qrng-min-entropy", f.min_entropy, "Claimed min-entropy per byte of the QRNG devices, in bits")
      ->capture_default_str();
  cmd->add_option("--qrng-policy", f.policy, "off | prefer | require")->capture_default_str();
  cmd->add_option("--qrng-timeout-ms", f.timeout_ms, "How long a device may take to deliver a read")
      ->capture_default_str();
}

qsapi::Result<std::shared_ptr<qsapi::entropy::EntropyPool>> MakePool(const EntropyFlags& f) {
  QSAPI_ASSIGN_OR_RETURN(qsapi::entropy::QrngPolicy policy, qsapi::entropy::ParseQrngPolicy(f.policy));
  std::vector<std::unique_ptr<qsapi::entropy::EntropySource>> sources;
  for (std::size_t i = 0; i < f.devices.size(); ++i) {
    qsapi::entropy::DeviceSourceOptions o;
    o.id = "qrng" + std::to_string(i);
    o.path = f.devices[i];
    o.min_entropy = f.min_entropy;
    o.timeout = std::chrono::milliseconds(f.timeout_ms);
    QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<qsapi::entropy::EntropySource> source, qsapi::entropy::OpenDeviceSource(o));
    sources.push_back(std::move(source));
  }
  return qsapi::entropy::EntropyPool::Create({.policy = policy}, std::move(sources));
}

std::string FormatTime(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return "-";
  const std::time_t tt = std::chrono::system_clock::to_time_t(*t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int EntropyStatus(const EntropyFlags& f) {
  auto pool = MakePool(f);
  if (!pool.ok()) {
    std::fprintf(stderr, "qsapi entropy status: %s\n", pool.error().ToString().c_str());
    return EXIT_FAILURE;
  }
  // One draw runs every source's start-up test, so that the states below are current.
  auto draw = (*pool)->Draw(32);
  std::printf("policy: qrng = %s\n", std::string(qsapi::entropy::QrngPolicyName((*pool)->policy())).c_str());
  std::printf("%-8s %-5s %6s %-9s %12s %12s %8s %8s  %s\n", "source", "kind", "H/byte", "state", "bytes read",
              "bytes used", "health", "errors", "last failure");
  for (const auto& s : (*pool)->SourceStatuses()) {
    std::printf("%-8s %-5s %6.2f %-9s %12llu %12llu %8llu %8llu  %s%s%s\n", s.id.c_str(), s.qrng ? "qrng" : "os",
                s.claimed_min_entropy, std::string(qsapi::entropy::SourceStateName(s.state)).c_str(),
                static_cast<unsigned long long>(s.bytes_read), static_cast<unsigned long long>(s.bytes_used),
                static_cast<unsigned long long>(s.health_failures), static_cast<unsigned long long>(s.read_errors),
                FormatTime(s.last_failure_time).c_str(), s.last_failure.empty() ? "" : " ", s.last_failure.c_str());
  }
  if (!draw.ok()) {
    std::fflush(stdout);  // the table first, then the reason, also when both go to one pipe
    std::fprintf(stderr, "qsapi entropy status: the pool cannot deliver: %s\n", draw.error().ToString().c_str());
    return EXIT_FAILURE;
  }
  std::printf("pool: ok (QRNG sources in the last draw: %zu)\n", draw->qrng_sources.size());
  return EXIT_SUCCESS;
}

int EntropySample(const EntropyFlags& f, std::size_t bytes, const std::string& source, bool raw) {
  constexpr std::size_t kMaxSample = std::size_t{64} << 20;
  if (bytes > kMaxSample) {
    std::fprintf(stderr, "qsapi entropy sample: --bytes must be at most %zu\n", kMaxSample);
    return EXIT_FAILURE;
  }
  auto pool = MakePool(f);
  if (!pool.ok()) {
    std::fprintf(stderr, "qsapi entropy sample: %s\n", pool.error().ToString().c_str());
    return EXIT_FAILURE;
  }
  qsapi::Result<qsapi::SecretBytes> out = qsapi::Internal("unreached");
  if (source.empty()) {
    auto draw = (*pool)->Draw(bytes);
    out = draw.ok() ? qsapi::Result<qsapi::SecretBytes>(std::move(draw->bytes))
                    : qsapi::Result<qsapi::SecretBytes>(draw.error());
  } else {
    out = (*pool)->SampleSource(source, bytes);
  }
  if (!out.ok()) {
    std::fprintf(stderr, "qsapi entropy sample: %s\n", out.error().ToString().c_str());
    return EXIT_FAILURE;
  }
  if (raw) {
    if (std::fwrite(out->data(), 1, out->size(), stdout) != out->size()) return EXIT_FAILURE;
    return EXIT_SUCCESS;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (std::uint8_t b : out->view()) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 0xf]);
  }
  std::printf("%s\n", hex.c_str());
  return EXIT_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
  if (qsapi::Status s = qsapi::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "qsapi: warning: %s\n", s.error().ToString().c_str());
  }
  CLI::App app{"qsapi: the QuantumSecureAPI command-line tool"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the OpenSSL version, then exit");
  CLI::App* selftest = app.add_subcommand("selftest", "Run the crypto self-test (KEM, signatures, AEAD, HKDF)");

  CLI::App* entropy = app.add_subcommand("entropy", "Entropy sources and the pool");
  entropy->require_subcommand(1);
  EntropyFlags flags;
  CLI::App* status = entropy->add_subcommand("status", "Sources, their state and counters, last failure and when");
  AddEntropyFlags(status, flags);
  CLI::App* sample =
      entropy->add_subcommand("sample", "Print N bytes from the pool, or raw tested samples of one source");
  AddEntropyFlags(sample, flags);
  std::size_t sample_bytes = 32;
  std::string sample_source;
  bool sample_raw = false;
  sample->add_option("--bytes", sample_bytes, "How many bytes")->capture_default_str();
  sample->add_option("--source", sample_source, "A source id (os, qrng0, ...): its raw samples, health-tested");
  sample->add_flag("--raw", sample_raw, "Write binary bytes instead of hex");
  CLI11_PARSE(app, argc, argv);

  if (show_version) {
    std::printf("%s\n", qsapi::VersionBanner("qsapi").c_str());
    return EXIT_SUCCESS;
  }
  if (selftest->parsed()) {
    const qsapi::Result<qsapi::crypto::SelfTestReport> report = qsapi::crypto::RunSelfTest();
    if (!report.ok()) {
      std::fprintf(stderr, "qsapi: self-test failed: %s\n", report.error().ToString().c_str());
      return EXIT_FAILURE;
    }
    for (const std::string& line : report->lines) std::printf("ok: %s\n", line.c_str());
    return EXIT_SUCCESS;
  }
  if (status->parsed()) return EntropyStatus(flags);
  if (sample->parsed()) return EntropySample(flags, sample_bytes, sample_source, sample_raw);
  std::fputs(app.help().c_str(), stdout);
  return EXIT_SUCCESS;
}
