// qsapid: the qsapi HTTPS API service.
//
// Today it starts, hardens the process, runs the crypto self-test on the OpenSSL it links and
// reports; the HTTPS API (issue #7) is built on this entry point, so the command users run now
// is the one they will keep running.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>

#include "qsapi/crypto/self_test.h"
#include "qsapi/process.h"
#include "qsapi/version.h"

int main(int argc, char** argv) {
  if (qsapi::Status s = qsapi::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "qsapid: warning: %s\n", s.error().ToString().c_str());
  }
  CLI::App app{"qsapid: the QuantumSecureAPI service"};
  bool show_version = false;
  std::string data_dir = "./qsapi-data";
  app.add_flag("--version", show_version, "Print the version and the OpenSSL version, then exit");
  app.add_option("--data-dir", data_dir, "Directory for the token, keystore and TLS certificate")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::printf("%s\n", qsapi::VersionBanner("qsapid").c_str());
  if (show_version) return EXIT_SUCCESS;

  const qsapi::Result<qsapi::crypto::SelfTestReport> report = qsapi::crypto::RunSelfTest();
  if (!report.ok()) {
    std::fprintf(stderr, "qsapid: crypto self-test failed: %s\n", report.error().ToString().c_str());
    return EXIT_FAILURE;
  }
  for (const std::string& line : report->lines) std::printf("  self-test ok: %s\n", line.c_str());
  std::printf(
      "qsapid: the HTTPS API service is not part of this build yet (tracked as issue #7);\n"
      "        the crypto core passed its self-test on this machine. Data directory (unused yet): %s\n",
      data_dir.c_str());
  return EXIT_SUCCESS;
}
