// qsapi: the command-line tool. Today: --version and `selftest`; key management, seal/open,
// kme-sim and doctor follow (issues #3-#8).
#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>

#include "qsapi/crypto/self_test.h"
#include "qsapi/process.h"
#include "qsapi/version.h"

int main(int argc, char** argv) {
  if (qsapi::Status s = qsapi::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "qsapi: warning: %s\n", s.error().ToString().c_str());
  }
  CLI::App app{"qsapi: the QuantumSecureAPI command-line tool"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the OpenSSL version, then exit");
  CLI::App* selftest = app.add_subcommand("selftest", "Run the crypto self-test (KEM, signatures, AEAD, HKDF)");
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
  std::fputs(app.help().c_str(), stdout);
  return EXIT_SUCCESS;
}
