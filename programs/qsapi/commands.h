// The qsapi command groups. Each group lives in its own file (cmd_<group>.cc) and registers its
// subcommands on the application; a subcommand's CLI11 callback does the work and sets the exit
// code with SetExitCode. main.cc only builds the app and calls the Register functions.
#ifndef QSAPI_PROGRAMS_QSAPI_COMMANDS_H_
#define QSAPI_PROGRAMS_QSAPI_COMMANDS_H_

#include <cstdio>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

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

void RegisterSelfTestCommand(CLI::App& app);
void RegisterEntropyCommands(CLI::App& app);
void RegisterSealCommands(CLI::App& app);

}  // namespace qsapi::cli

#endif  // QSAPI_PROGRAMS_QSAPI_COMMANDS_H_
