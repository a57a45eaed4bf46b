// Helpers shared by the qsapi command groups.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "commands.h"
#include "common/internal/text.h"

namespace qsapi::cli {
namespace {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): the exit status the command's callback sets
int g_exit_code = EXIT_SUCCESS;
}  // namespace

void SetExitCode(int code) noexcept { g_exit_code = code; }
int ExitCode() noexcept { return g_exit_code; }

void Fail(std::string_view command, std::string_view message) {
  std::fflush(stdout);
  std::fprintf(stderr, "qsapi %.*s: %.*s\n", static_cast<int>(command.size()), command.data(),
               static_cast<int>(message.size()), message.data());
  SetExitCode(EXIT_FAILURE);
}

void Fail(std::string_view command, const Error& error) { Fail(command, error.ToString()); }

std::string Hex(ByteView bytes) { return qsapi::internal::HexEncode(bytes); }

}  // namespace qsapi::cli
