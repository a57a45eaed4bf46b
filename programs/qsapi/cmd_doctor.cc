// qsapi doctor: checks a qsapid deployment from the machine it runs on and says what to fix.
//
//   qsapi doctor [--config FILE | --data-dir DIR] [--server URL]
//
// Checks, each reported as ok / warn / FAIL with a fix:
//   openssl      the linked OpenSSL is >= 3.5 and the crypto self-test passes
//   data-dir     exists and is private (mode 0700)
//   hsm          the PKCS#11 token opens, the KEK is there and usable (one round trip)
//   entropy      the configured QRNG sources pass their health tests; the policy is satisfiable
//   kme <name>   each [[kme]] answers ETSI 014 status for the SAEs of the peers that use it
//   certificates the deployment CA and the server certificate are valid and not about to expire
//   admin-token  the first-start token file was moved away
//   audit        the audit trail's chain holds (every file, as qsapid checks it at start)
//   service      a running qsapid answers /v1/health (with --server, or the configured listen address)
// The exit status is 1 when any check FAILs.
#include <sys/stat.h>

#include <ctime>

#include <openssl/crypto.h>

#include "commands.h"
#include "net/internal/http_client.h"
#include "qsapi/crypto/self_test.h"
#include "qsapi/qkd/etsi014.h"
#include "server/audit_log.h"
#include "server/config.h"
#include "server/deployment_ca.h"
#include "server/service.h"

namespace qsapi::cli {
namespace {

namespace fs = std::filesystem;

struct DoctorFlags {
  std::string config, data_dir, server;
};

class Report {
 public:
  // The report's lines go to `out` (stdout for `qsapi doctor`).
  explicit Report(std::FILE* out) : out_(out) {}

  void Ok(const std::string& check, const std::string& what) const { Line("ok  ", check, what, ""); }
  void Warn(const std::string& check, const std::string& what, const std::string& fix) const {
    Line("warn", check, what, fix);
  }
  void Fail(const std::string& check, const std::string& what, const std::string& fix) {
    ++failures_;
    Line("FAIL", check, what, fix);
  }
  [[nodiscard]] int failures() const { return failures_; }

 private:
  void Line(const char* tag, const std::string& check, const std::string& what, const std::string& fix) const {
    std::fprintf(out_, "%s  %-13s %s\n", tag, check.c_str(), what.c_str());
    if (!fix.empty()) std::fprintf(out_, "      %-13s fix: %s\n", "", fix.c_str());
  }
  std::FILE* out_;
  int failures_ = 0;
};

void CheckCertificate(Report& r, const std::string& check, const fs::path& path, const std::string& fix_missing) {
  auto cert = pki::ReadCertificatePem(path);
  if (!cert.ok()) return r.Fail(check, cert.error().message(), fix_missing);
  const auto left = cert->NotAfter() - std::chrono::system_clock::now();
  const long long days = std::chrono::duration_cast<std::chrono::hours>(left).count() / 24;
  if (left <= std::chrono::seconds(0)) {
    return r.Fail(check, path.string() + " has expired", "restart qsapid (it re-issues its own certificate)");
  }
  if (days < 30) {
    return r.Warn(check, path.string() + " expires in " + std::to_string(days) + " days",
                  "restart qsapid before then (its certificate is re-issued 30 days ahead)");
  }
  r.Ok(check, path.string() + " valid for " + std::to_string(days) + " more days");
}

void Doctor(const DoctorFlags& f) {
  Report r(stdout);
  // openssl
  const unsigned long v = OpenSSL_version_num();  // NOLINT(google-runtime-int)
  if (v < 0x30500000UL) {
    r.Fail("openssl", std::string("linked OpenSSL is ") + OpenSSL_version(OPENSSL_VERSION) + ", older than 3.5",
           "rebuild with ./scripts/setup.sh (it builds OpenSSL 3.5 into ~/.cache/qsapi)");
  } else if (auto st = crypto::RunSelfTest(); !st.ok()) {
    r.Fail("openssl", "crypto self-test failed: " + st.error().message(), "check the OpenSSL build (qsapi selftest)");
  } else {
    r.Ok("openssl", std::string(OpenSSL_version(OPENSSL_VERSION)) + "; self-test passed (" +
                        std::to_string(st->lines.size()) + " checks)");
  }

  // configuration
  server::Config config;
  if (!f.config.empty()) {
    auto c = server::LoadConfig(f.config);
    if (!c.ok()) {
      r.Fail("config", c.error().message(), "correct the file (qsapid --check-config FILE)");
      std::printf("\n%d check(s) failed\n", r.failures());
      SetExitCode(1);
      return;
    }
    config = std::move(*c);
    r.Ok("config", f.config + " is valid");
  } else {
    config = server::DefaultConfig(f.data_dir.empty() ? DefaultDataDir() : f.data_dir);
  }
  const fs::path& dir = config.data_dir;

  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    r.Fail("data-dir", dir.string() + " does not exist", "start qsapid once (./scripts/run.sh) or give --data-dir");
  } else if ((st.st_mode & 077) != 0) {
    r.Warn("data-dir", dir.string() + " is readable by others (mode " + std::to_string(st.st_mode & 0777) + ")",
           "chmod 700 " + dir.string());
  } else {
    r.Ok("data-dir", dir.string() + " (private)");
  }

  // hsm
  auto ks = server::OpenKeystoreFor(config, /*create=*/false, nullptr);
  if (!ks.ok()) {
    r.Fail("hsm", ks.error().message(), "check [keystore] (module path, token label, PIN source)");
  } else if (Status p = (*ks)->Probe(); !p.ok()) {
    r.Fail("hsm", p.error().message(), "check that the token is present and the KEK exists (qsapi key verify)");
  } else {
    r.Ok("hsm", (*ks)->token_description());
  }

  // entropy
  auto pool = server::MakeEntropyPool(config.entropy);
  if (!pool.ok()) {
    r.Fail("entropy", pool.error().message(), "fix [entropy] (device paths, URLs, API key sources)");
  } else if (auto draw = (*pool)->Draw(64); !draw.ok()) {
    r.Fail("entropy", draw.error().message(), "repair the QRNG source or set [entropy] qrng = \"prefer\"");
  } else {
    std::size_t qrng = 0;
    std::size_t failed = 0;
    for (const auto& s : (*pool)->SourceStatuses()) {
      if (!s.qrng) continue;
      ++qrng;
      if (s.state == entropy::SourceState::kFailed) failed++;
    }
    if (failed > 0) {
      r.Warn("entropy", std::to_string(failed) + " of " + std::to_string(qrng) + " QRNG sources failed",
             "see qsapi entropy status; the pool runs on the rest (policy " +
                 std::string(qsapi::SourcePolicyName(config.entropy.qrng)) + ")");
    } else {
      r.Ok("entropy",
           qrng == 0 ? "OS source only (no QRNG configured)" : std::to_string(qrng) + " QRNG source(s) healthy");
    }
  }

  // KMEs
  for (const server::KmeSection& k : config.kmes) {
    qkd::Etsi014ClientOptions o = server::KmeClientOptions(k);
    o.max_attempts = 1;  // a diagnosis, not a service: say it at once
    auto client = qkd::Etsi014Client::Create(o);
    if (!client.ok()) {
      r.Fail("kme " + k.name, client.error().message(), "fix [[kme]] " + k.name);
      continue;
    }
    bool any = false;
    for (const server::PeerSection& p : config.peers) {
      if (p.kme != k.name) continue;
      any = true;
      auto status = (*client)->GetStatus(p.remote_sae_id);
      if (!status.ok()) {
        if (p.qkd == qsapi::SourcePolicy::kRequire) {
          r.Fail("kme " + k.name, status.error().message(),
                 "sessions to " + p.name + " need QKD (qkd = require): bring the KME link back");
        } else {
          r.Warn("kme " + k.name, status.error().message(),
                 "sessions to " + p.name + " run without QKD until it answers");
        }
      } else {
        r.Ok("kme " + k.name, "link to " + p.remote_sae_id + ": " + std::to_string(status->stored_key_count) +
                                  " keys stored, TLS group " + (*client)->link().tls_group);
      }
    }
    if (!any) r.Warn("kme " + k.name, "no [[peer]] uses this KME", "remove it, or name it in a peer's kme");
  }

  // certificates
  CheckCertificate(r, "ca", server::DeploymentCa::CertificatePath(dir), "start qsapid once, or run qsapi ca init");
  if (config.tls.cert_file.empty()) {
    CheckCertificate(r, "server-cert", dir / "tls" / "server.pem", "start qsapid once (it issues its certificate)");
  } else {
    CheckCertificate(r, "server-cert", config.tls.cert_file, "install a certificate at tls.cert_file");
  }
  if (fs::exists(server::AdminTokenPath(dir))) {
    r.Warn("admin-token", server::AdminTokenPath(dir).string() + " is still on disk",
           "move the token to your secret store and delete the file");
  }

  // audit trail: the whole chain, as qsapid checks it at start
  if (const fs::path log = dir / "audit.log"; fs::exists(log) && !ks.ok()) {
    r.Fail("audit", "not checked: the trail's MACs need its key from the keystore, which did not open",
           "see the hsm check above");
  } else if (fs::exists(log)) {
    if (auto trail = server::VerifyAuditTrail(**ks, log, server::AuditTrailName(config)); trail.ok()) {
      r.Ok("audit", std::to_string(trail->lines) + " lines in " + std::to_string(trail->files) +
                        " file(s), the chain holds (" + std::to_string(trail->macs) + " MACs checked)");
    } else {
      r.Fail("audit", trail.error().message(),
             "keep the files for investigation; qsapid refuses to start on it until started with "
             "--accept-broken-audit-log (a partial last line alone: qsapi audit repair)");
    }
  }

  // service
  std::string url = f.server;
  if (url.empty()) {
    const std::string host = config.server.listen_host == "0.0.0.0" ? "127.0.0.1" : config.server.listen_host;
    url = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
          std::to_string(config.server.listen_port);
  }
  net::HttpClientOptions o;
  o.url = url;
  o.tls.ca_file =
      (config.tls.ca_file.empty() ? server::DeploymentCa::CertificatePath(dir).string() : config.tls.ca_file);
  o.connect_timeout = std::chrono::seconds(5);
  o.request_timeout = o.connect_timeout;
  auto client = net::HttpClient::Create(o);
  if (!client.ok()) {
    r.Fail("service", client.error().message(), "give --server https://host:port");
  } else if (auto h = (*client)->Request("GET", "/v1/health"); !h.ok()) {
    r.Warn("service", "no qsapid answers at " + url + ": " + h.error().message(),
           "start it (./scripts/run.sh), or give --server");
  } else if (h->status != 200) {
    r.Fail("service", url + " reports HTTP " + std::to_string(h->status) + ": " + h->body.substr(0, 300),
           "see the failing check in the health body");
  } else {
    r.Ok("service", url + " healthy (TLS group " + (*client)->tls_group() + ")");
  }

  std::printf("\n%s\n", r.failures() == 0 ? "no problems that stop qsapid were found"
                                          : (std::to_string(r.failures()) + " check(s) failed").c_str());
  if (r.failures() > 0) SetExitCode(1);
}

}  // namespace

void RegisterDoctorCommand(CLI::App& app) {
  auto f = std::make_shared<DoctorFlags>();
  CLI::App* doctor = app.add_subcommand("doctor", "Check OpenSSL, the HSM, entropy, KMEs, certificates and qsapid");
  doctor->add_option("--config", f->config, "qsapid's configuration file");
  doctor->add_option("--data-dir", f->data_dir, "Data directory of the embedded default (without --config)");
  doctor->add_option("--server", f->server, "qsapid URL (default: the configured listen address)");
  doctor->callback([f] { Doctor(*f); });
}

}  // namespace qsapi::cli
