// qsapi kme-sim: run the ETSI GS QKD 014 KME simulator pair until SIGINT or SIGTERM.
//
// It writes the CA, the KME server certificates and the SAE client certificates and keys to --dir
// (keys mode 0600), prints the URLs, SAE IDs and file paths, and serves. Any ETSI 014 client can
// use the files; `qsapi qkd ...` is one.
#include <csignal>
#include <cstdio>
#include <memory>
#include <pthread.h>
#include <string>
#include <vector>

#include "commands.h"
#include "kmesim/kme_simulator.h"
#include "qsapi/pki/pki.h"

namespace qsapi::cli {
namespace {

struct KmeSimFlags {
  std::string dir;
  std::string bind = "127.0.0.1";
  std::uint16_t port_a = 0;
  std::uint16_t port_b = 0;
  std::uint32_t key_size = 256;
  double rate = 100;
  std::uint64_t max_key_count = 1000;
  std::int64_t initial_keys = -1;  // -1: max_key_count
  std::string cert_alg = "ecdsa-p256";
  std::vector<std::string> faults;
  bool reuse_pki = false;
};

Result<qkd::KmeFaults> ParseFaults(const std::vector<std::string>& faults) {
  qkd::KmeFaults f;
  for (const std::string& s : faults) {
    if (s == "outage") {
      f.outage = true;
    } else if (s == "exhausted") {
      f.exhausted = true;
    } else if (s == "corrupt") {
      f.corrupt = true;
    } else if (s.starts_with("latency=")) {
      try {
        const long ms = std::stol(s.substr(8));  // NOLINT(google-runtime-int)
        if (ms < 0 || ms > 600000) throw std::out_of_range("latency");
        f.latency = std::chrono::milliseconds(ms);
      } catch (const std::exception&) {
        return InvalidArgument("--fault latency=MS needs 0..600000 milliseconds, got \"" + s + "\"");
      }
    } else {
      return InvalidArgument("unknown --fault \"" + s + "\" (outage, latency=MS, exhausted, corrupt)");
    }
  }
  return f;
}

std::string FaultText(const qkd::KmeFaults& f) {
  std::string s;
  if (f.outage) s += " outage";
  if (f.latency.count() > 0) s += " latency=" + std::to_string(f.latency.count()) + "ms";
  if (f.exhausted) s += " exhausted";
  if (f.corrupt) s += " corrupt";
  return s.empty() ? " none" : s;
}

void RunKmeSim(const KmeSimFlags& flags) {
  auto alg = pki::ParseKeyAlgorithm(flags.cert_alg);
  if (!alg.ok()) return Fail("kme-sim", alg.error());
  auto faults = ParseFaults(flags.faults);
  if (!faults.ok()) return Fail("kme-sim", faults.error());
  qkd::KmeSimulatorOptions o;
  o.dir = flags.dir;
  o.bind_address = flags.bind;
  o.port_a = flags.port_a;
  o.port_b = flags.port_b;
  o.cert_algorithm = *alg;
  o.key_size = flags.key_size;
  o.min_key_size = std::min<std::uint32_t>(64, flags.key_size);
  o.max_key_size = std::max<std::uint32_t>(8192, flags.key_size);
  o.keys_per_second = flags.rate;
  o.max_key_count = flags.max_key_count;
  o.initial_key_count = flags.initial_keys < 0 ? flags.max_key_count : static_cast<std::uint64_t>(flags.initial_keys);
  o.faults = *faults;
  o.reuse_pki = flags.reuse_pki;

  // Block the stop signals before the server threads exist, so that they inherit the mask and
  // only sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto sim = qkd::KmeSimulator::Start(o);
  if (!sim.ok()) return Fail("kme-sim", sim.error());
  const auto& f = (*sim)->files();
  std::printf("KME simulator pair running; stop with Ctrl-C (SIGINT) or SIGTERM\n");
  std::printf("  KME A: %s  KME_ID %s  serves SAE %s\n", (*sim)->url_a().c_str(), o.kme_a_id.c_str(),
              o.sae_a_id.c_str());
  std::printf("  KME B: %s  KME_ID %s  serves SAE %s\n", (*sim)->url_b().c_str(), o.kme_b_id.c_str(),
              o.sae_b_id.c_str());
  std::printf("  CA (trust anchor for everything): %s\n", f.ca.c_str());
  std::printf("  SAE %s client certificate: %s  key: %s\n", o.sae_a_id.c_str(), f.sae_a_cert.c_str(),
              f.sae_a_key.c_str());
  std::printf("  SAE %s client certificate: %s  key: %s\n", o.sae_b_id.c_str(), f.sae_b_cert.c_str(),
              f.sae_b_key.c_str());
  std::printf("  KME certificates: %s %s (keys %s %s)\n", f.kme_a_cert.c_str(), f.kme_b_cert.c_str(),
              f.kme_a_key.c_str(), f.kme_b_key.c_str());
  std::printf("  certificates: %s; keys: %u bits, %g keys/s, at most %llu stored; faults:%s\n",
              std::string(pki::KeyAlgorithmName(o.cert_algorithm)).c_str(), o.key_size, o.keys_per_second,
              static_cast<unsigned long long>(o.max_key_count), FaultText(o.faults).c_str());
  std::printf("Try: qsapi qkd get-key --kme-url %s --ca %s --cert %s --key %s --slave %s\n", (*sim)->url_a().c_str(),
              f.ca.c_str(), f.sae_a_cert.c_str(), f.sae_a_key.c_str(), o.sae_b_id.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  std::printf("kme-sim: %s received, draining and stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  (*sim)->Stop();
}

}  // namespace

void RegisterKmeSimCommand(CLI::App& app) {
  auto flags = std::make_shared<KmeSimFlags>();
  CLI::App* cmd = app.add_subcommand("kme-sim", "Run an ETSI GS QKD 014 KME simulator pair (A and B) with mTLS");
  cmd->add_option("--dir", flags->dir, "Directory for the CA, KME and SAE certificates and keys")->required();
  cmd->add_option("--bind", flags->bind, "Address to listen on")->capture_default_str();
  cmd->add_option("--port-a", flags->port_a, "Port of KME A (0: any free port)")->capture_default_str();
  cmd->add_option("--port-b", flags->port_b, "Port of KME B (0: any free port)")->capture_default_str();
  cmd->add_option("--key-size", flags->key_size, "Default key size in bits")->capture_default_str();
  cmd->add_option("--rate", flags->rate, "Keys the simulated QKD link produces per second")->capture_default_str();
  cmd->add_option("--max-key-count", flags->max_key_count, "Most keys stored")->capture_default_str();
  cmd->add_option("--initial-keys", flags->initial_keys, "Keys stored at start (default: --max-key-count)");
  cmd->add_option("--cert-alg", flags->cert_alg, "ecdsa-p256 (compatible) or mldsa44|mldsa65|mldsa87 (TLS 1.3 only)")
      ->capture_default_str();
  cmd->add_flag("--reuse-pki", flags->reuse_pki,
                "Keep the CA and certificates of an earlier run in --dir (SAEs configured with them keep working)");
  cmd->add_option("--fault", flags->faults, "outage | latency=MS | exhausted | corrupt (repeatable)");
  cmd->callback([flags] { RunKmeSim(*flags); });
}

}  // namespace qsapi::cli
