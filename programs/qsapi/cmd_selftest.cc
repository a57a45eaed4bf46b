// qsapi selftest: the crypto self-test (known answers and round trips) on the OpenSSL we link.
#include <cstdio>
#include <string>

#include "commands.h"
#include "qsapi/crypto/self_test.h"

namespace qsapi::cli {

void RegisterSelfTestCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("selftest", "Run the crypto self-test (KEM, signatures, AEAD, HKDF)");
  cmd->callback([] {
    const Result<crypto::SelfTestReport> report = crypto::RunSelfTest();
    if (!report.ok()) return Fail("selftest", "self-test failed: " + report.error().ToString());
    for (const std::string& line : report->lines) std::printf("ok: %s\n", line.c_str());
  });
}

}  // namespace qsapi::cli
