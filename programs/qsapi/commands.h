// The qsapi command groups. Each group lives in its own file (cmd_<group>.cc) and registers its
// subcommands on the application; a subcommand's CLI11 callback does the work and sets the exit
// code with SetExitCode. main.cc only builds the app and calls the Register functions.
#ifndef QSAPI_PROGRAMS_QSAPI_COMMANDS_H_
#define QSAPI_PROGRAMS_QSAPI_COMMANDS_H_

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "qsapi/keystore/keystore.h"
#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::cli {

// SetExitCode records the status main() returns.
void SetExitCode(int code) noexcept;
int ExitCode() noexcept;

// Fail prints "qsapi <command>: CODE: message" to stderr (after flushing stdout, so that output
// and error keep their order on a shared pipe) and sets a failing exit code.
void Fail(std::string_view command, const Error& error);
void Fail(std::string_view command, std::string_view message);

// Hex returns the lower-case hex form of `bytes`.
std::string Hex(ByteView bytes);

// The local keystore: the embedded default under a data directory, or an operator's HSM.
struct StoreFlags {
  std::string data_dir;
  std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  std::string token_label = "qsapi";
  std::string pin_file;
  std::string pin_env;
  std::string database;
  std::string config;  // qsapid's configuration: its [keystore] and [store] (a cluster node's PostgreSQL)
};
// DefaultDataDir is $QSAPI_DATA_DIR, else ~/.local/share/qsapi.
std::string DefaultDataDir();
void AddStoreFlags(CLI::App* cmd, StoreFlags& flags);
Result<std::unique_ptr<keystore::Keystore>> OpenStore(const StoreFlags& flags);

void RegisterSelfTestCommand(CLI::App& app);
void RegisterEntropyCommands(CLI::App& app);
void RegisterKeyCommands(CLI::App& app);
void RegisterAdminCommands(CLI::App& app);
void RegisterKmeSimCommand(CLI::App& app);
void RegisterQkdCommands(CLI::App& app);
void RegisterSealCommands(CLI::App& app);
void RegisterRemoteCommands(CLI::App& app);
void RegisterCaCommands(CLI::App& app);
void RegisterDoctorCommand(CLI::App& app);
void RegisterClusterCommands(CLI::App& app);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_COMMANDS_H_
