// qsapi: the command-line tool. main() builds the application; each command group registers its
// subcommands from its own file (see commands.h).
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "qsapi/process.h"
#include "qsapi/version.h"

// NOLINTNEXTLINE(bugprone-exception-escape): an exception that reaches main() is a bug; std::terminate reports it
int main(int argc, char** argv) {
  if (qsapi::Status s = qsapi::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "qsapi: warning: %s\n", s.error().ToString().c_str());
  }
  CLI::App app{"qsapi: the QuantumSecureAPI command-line tool"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the OpenSSL version, then exit");
  qsapi::cli::RegisterSelfTestCommand(app);
  qsapi::cli::RegisterEntropyCommands(app);
  qsapi::cli::RegisterKeyCommands(app);
  qsapi::cli::RegisterAdminCommands(app);
  qsapi::cli::RegisterKmeSimCommand(app);
  qsapi::cli::RegisterQkdCommands(app);
  qsapi::cli::RegisterSealCommands(app);
  qsapi::cli::RegisterRemoteCommands(app);
  qsapi::cli::RegisterCaCommands(app);
  qsapi::cli::RegisterDoctorCommand(app);
  qsapi::cli::RegisterClusterCommands(app);
  CLI11_PARSE(app, argc, argv);  // the parsed subcommand's callback runs here

  if (show_version) {
    std::printf("%s\n", qsapi::VersionBanner("qsapi").c_str());
    return EXIT_SUCCESS;
  }
  if (app.get_subcommands().empty()) std::fputs(app.help().c_str(), stdout);
  return qsapi::cli::ExitCode();
}
