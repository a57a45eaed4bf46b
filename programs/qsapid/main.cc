// qsapid: the qsapi HTTPS API service.
//
//   qsapid [--data-dir DIR] [--listen HOST:PORT]   the embedded default under DIR
//   qsapid --config FILE                           a configured deployment
//   qsapid --check-config FILE                     validate FILE and exit (0 when valid)
//   --log-level debug|info|warning|error            the lowest level of log line written (info)
//
// The process is hardened first (no core dumps, no ptrace attach), the crypto self-test must pass,
// then the service starts (service/server/service.h) and runs until SIGTERM or SIGINT, which drain the
// requests in flight before exiting 0.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include <CLI/CLI.hpp>

#include "common/internal/text.h"
#include "qsapi/crypto/self_test.h"
#include "qsapi/log.h"
#include "qsapi/process.h"
#include "qsapi/version.h"
#include "server/config.h"
#include "server/service.h"

namespace {

std::string DefaultDataDir() {
  // NOLINTBEGIN(concurrency-mt-unsafe): read before the service starts its threads
  if (const char* d = std::getenv("QSAPI_DATA_DIR"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  // NOLINTEND(concurrency-mt-unsafe)
  return std::string(home != nullptr ? home : ".") + "/.local/share/qsapi";
}

std::string Date(std::chrono::system_clock::time_point t) { return qsapi::internal::FormatUtcDate(t); }

}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): an exception that reaches main() is a bug; std::terminate reports it
int main(int argc, char** argv) {
  if (qsapi::Status s = qsapi::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "qsapid: warning: %s\n", s.error().ToString().c_str());
  }
  CLI::App app{"qsapid: the QuantumSecureAPI service"};
  bool show_version = false;
  std::string data_dir;
  std::string config_file;
  std::string check_config;
  std::string listen;
  app.add_flag("--version", show_version, "Print the version and the OpenSSL version, then exit");
  app.add_option("--data-dir", data_dir,
                 "Data directory of the embedded default (default: $QSAPI_DATA_DIR or ~/.local/share/qsapi)");
  app.add_option("--config", config_file, "TOML configuration file (docs/OPERATIONS.md)");
  app.add_option("--check-config", check_config, "Validate a configuration file and exit");
  app.add_option("--listen", listen, "HOST:PORT to listen on (overrides the configuration; port 0: any free port)");
  std::string log_level = "info";
  app.add_option("--log-level", log_level,
                 "Lowest level of log line written: debug (adds the keystore's operation leases), info, warning, "
                 "error")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  bool accept_broken_audit_log = false;
  app.add_flag("--accept-broken-audit-log", accept_broken_audit_log,
               "Start although the audit trail fails verification: it is moved aside and a new chain begins "
               "with a line that records this (docs/OPERATIONS.md)");
  CLI11_PARSE(app, argc, argv);

  qsapi::SetMinLogLevel(log_level == "debug"     ? qsapi::LogLevel::kDebug
                        : log_level == "warning" ? qsapi::LogLevel::kWarning
                        : log_level == "error"   ? qsapi::LogLevel::kError
                                                 : qsapi::LogLevel::kInfo);
  if (show_version) {
    std::printf("%s\n", qsapi::VersionBanner("qsapid").c_str());
    return EXIT_SUCCESS;
  }
  if (!check_config.empty()) {
    auto c = qsapi::server::LoadConfig(check_config);
    if (!c.ok()) {
      std::fprintf(stderr, "qsapid: %s\n", c.error().message().c_str());
      return EXIT_FAILURE;
    }
    std::printf("qsapid: %s is valid (data_dir %s, listen %s:%u, profile %s, %zu peers, %zu KMEs, %zu clients)\n",
                check_config.c_str(), c->data_dir.c_str(), c->server.listen_host.c_str(), c->server.listen_port,
                c->server.profile.c_str(), c->peers.size(), c->kmes.size(), c->clients.size());
    return EXIT_SUCCESS;
  }
  if (!config_file.empty() && !data_dir.empty()) {
    std::fprintf(stderr, "qsapid: give --config or --data-dir, not both (the file names its data_dir)\n");
    return EXIT_FAILURE;
  }

  qsapi::server::Config config;
  if (!config_file.empty()) {
    auto c = qsapi::server::LoadConfig(config_file);
    if (!c.ok()) {
      std::fprintf(stderr, "qsapid: %s\n", c.error().message().c_str());
      return EXIT_FAILURE;
    }
    config = std::move(*c);
  } else {
    config = qsapi::server::DefaultConfig(data_dir.empty() ? DefaultDataDir() : data_dir);
  }
  config.accept_broken_audit_log = accept_broken_audit_log;
  if (!listen.empty()) {
    auto parsed = qsapi::server::ParseListenAddress(listen);
    if (!parsed.ok()) {
      std::fprintf(stderr, "qsapid: --listen: %s\n", parsed.error().message().c_str());
      return EXIT_FAILURE;
    }
    config.server.listen_host = parsed->first;
    config.server.listen_port = parsed->second;
  }

  std::printf("%s\n", qsapi::VersionBanner("qsapid").c_str());
  const qsapi::Result<qsapi::crypto::SelfTestReport> report = qsapi::crypto::RunSelfTest();
  if (!report.ok()) {
    std::fprintf(stderr, "qsapid: crypto self-test failed: %s\n", report.error().ToString().c_str());
    return EXIT_FAILURE;
  }
  std::printf("qsapid: crypto self-test passed (%zu checks)\n", report->lines.size());

  // Block the stop signals in every thread (the service's threads inherit this mask); the main
  // thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);  // a full disk or file-size limit is an EFBIG error to report, not a crash

  auto service = qsapi::server::Service::Start(config);
  if (!service.ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", service.error().message().c_str());  // "qsapid start-up, <part>: ..."
    return EXIT_FAILURE;
  }
  const qsapi::server::StartupReport& r = (*service)->report();
  const std::string dir = config.data_dir.string();
  std::printf("qsapid: data directory %s%s\n", dir.c_str(), r.keystore_created ? " (keystore created now)" : "");
  std::printf("qsapid: metadata in %s (cluster %s)\n", r.store.c_str(), r.cluster_id.c_str());
  std::printf("qsapid: deployment CA %s%s\n", r.ca_certificate.c_str(), r.ca_created ? " (created now)" : "");
  std::printf("qsapid: TLS 1.3, groups %s, profile %s, certificate valid until %s%s\n", r.tls_groups.c_str(),
              r.tls_profile.c_str(), Date(r.certificate_not_after).c_str(),
              r.certificate_issued ? " (issued now)" : "");
  if (!r.admin_token_file.empty()) {
    std::printf(
        "qsapid: the admin API token was written once to %s (mode 0600);\n"
        "        move it to your secret store, then delete the file\n",
        r.admin_token_file.c_str());
  }
  if (!r.node_name.empty()) {
    std::printf("qsapid: peer sessions as \"%s\"; peer link %s\n", r.node_name.c_str(),
                r.peer_port != 0 ? ("listening on port " + std::to_string(r.peer_port)).c_str() : "not listening");
  }
  std::printf("qsapid: ready on %s\n", r.url.c_str());
  std::printf("  try:  qsapi call GET /v1/health --server %s --data-dir %s\n", r.url.c_str(), dir.c_str());
  std::printf(
      "        qsapi call POST /v1/keys --data '{\"name\":\"demo\",\"type\":\"AES-256-GCM\"}' --server %s "
      "--data-dir %s\n",
      r.url.c_str(), dir.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::printf("qsapid: %s received; draining requests in flight (up to %lld s)\n",
              sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(config.server.shutdown_drain.count()));
  std::fflush(stdout);
  (*service)->Stop();
  std::printf("qsapid: stopped\n");
  return EXIT_SUCCESS;
}
