// `qsapi seal` end to end (the real binary, QSAPI_CLI_PATH) and the open path the CLI uses
// (OpenFile with a RecipientKey; `qsapi open` takes it from the keystore, tested in
// tests/cli/seal_open_keystore.sh):
// round trips through files and pipes, atomic output (nothing left behind on failure or on a
// signal, an existing file untouched), and clear errors.
#include "sealed_files.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <thread>

#include "qsapi/hpke/public_key_file.h"
#include "recipient_key_loader.h"
#include "support/test_support.h"

namespace qsapi::cli {
namespace {

namespace fs = std::filesystem;

Bytes Pattern(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 131) ^ (i >> 9));
  return b;
}

void WriteFile(const fs::path& p, ByteView data) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));  // NOLINT
}

Bytes ReadBytes(const fs::path& p) {
  const std::string s = testing::ReadFile(p);
  return {s.begin(), s.end()};
}

// Leftovers lists the temporary files a failed or interrupted run might have left in `dir`.
std::vector<std::string> Leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".qsapi-") != std::string::npos) out.push_back(e.path().string());
  }
  return out;
}

int RunCli(const std::string& args) {
  const std::string command = std::string(QSAPI_CLI_PATH) + " " + args;
  const int status = std::system(command.c_str());  // NOLINT(cert-env33-c): a test runs our binary
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class SealedFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsapi-sealed-files-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto key = hpke::InMemoryRecipientKey::Generate(crypto::KemAlgorithm::kXWing);
    ASSERT_TRUE(key.ok());
    key_ = std::move(key).value();
    auto text = hpke::EncodePublicKeyFile(key_->public_key(), key_->key_id(), "# test recipient");
    ASSERT_TRUE(text.ok());
    std::ofstream(dir_ / "recipient.pub") << *text;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string P(const char* name) const { return (dir_ / name).string(); }

  fs::path dir_;
  std::unique_ptr<hpke::InMemoryRecipientKey> key_;
};

TEST_F(SealedFilesTest, CliSealsFilesAndPipesThatOpenFileOpens) {
  for (std::size_t n : {0UL, 1UL, 65536UL, (3UL << 20) + 5}) {
    const Bytes plain = Pattern(n);
    WriteFile(P("plain"), plain);
    ASSERT_EQ(RunCli("seal --to " + P("recipient.pub") + " --in " + P("plain") + " --out " + P("sealed")), 0) << n;
    QSAPI_ASSERT_OK(OpenFile(*key_, P("sealed"), P("opened")));
    EXPECT_EQ(ReadBytes(P("opened")), plain) << n;
    // Through standard input and output, with AES-256-GCM and small chunks.
    ASSERT_EQ(RunCli("seal --to " + P("recipient.pub") + " --aead AES-256-GCM --chunk-size 4096 < " + P("plain") +
                     " > " + P("sealed2")),
              0);
    QSAPI_ASSERT_OK(OpenFile(*key_, P("sealed2"), P("opened2")));
    EXPECT_EQ(ReadBytes(P("opened2")), plain) << n;
  }
  EXPECT_TRUE(Leftovers(dir_).empty());
  // The sealed file is readable by the owner only (it was a 0600 temporary file).
  EXPECT_EQ(fs::status(P("sealed")).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(SealedFilesTest, FailedOpenLeavesNothingBehind) {
  const Bytes plain = Pattern(200000);
  WriteFile(P("plain"), plain);
  ASSERT_EQ(RunCli("seal --no-progress --chunk-size 16384 --to " + P("recipient.pub") + " --in " + P("plain") +
                   " --out " + P("sealed")),
            0);
  const Bytes sealed = ReadBytes(P("sealed"));
  // Tampered in the last chunk: the earlier chunks are authentic, yet no output file appears.
  Bytes tampered = sealed;
  tampered[tampered.size() - 20] ^= 1;
  WriteFile(P("tampered"), tampered);
  auto r = OpenFile(*key_, P("tampered"), P("out"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), AuthenticationFailed());
  EXPECT_FALSE(fs::exists(P("out")));
  // Truncated (the last chunk missing).
  WriteFile(P("truncated"), ByteView(sealed.data(), sealed.size() - 100));
  EXPECT_EQ(OpenFile(*key_, P("truncated"), P("out")).error(), AuthenticationFailed());
  EXPECT_FALSE(fs::exists(P("out")));
  // An existing output file is left exactly as it was.
  WriteFile(P("existing"), Pattern(7));
  EXPECT_FALSE(OpenFile(*key_, P("tampered"), P("existing")).ok());
  EXPECT_EQ(ReadBytes(P("existing")), Pattern(7));
  // Another recipient's key: refused before any output is created.
  auto other = hpke::InMemoryRecipientKey::Generate(crypto::KemAlgorithm::kXWing);
  QSAPI_ASSERT_OK(other);
  auto wrong = OpenFile(**other, P("sealed"), P("out"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(P("out")));
  EXPECT_TRUE(Leftovers(dir_).empty());
}

TEST_F(SealedFilesTest, InterruptedSealLeavesNoTemporaryFile) {
  std::array<int, 2> input{};
  ASSERT_EQ(::pipe(input.data()), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(input[0], STDIN_FILENO);
    ::close(input[0]);
    ::close(input[1]);
    const std::string pub = P("recipient.pub");
    const std::string out = P("sealed");
    ::execl(QSAPI_CLI_PATH, "qsapi", "seal", "--to", pub.c_str(), "--out", out.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(input[0]);
  const Bytes some = Pattern(1 << 20);
  ASSERT_EQ(::write(input[1], some.data(), some.size()), static_cast<ssize_t>(some.size()));
  // Wait until the temporary file exists, then interrupt.
  for (int i = 0; i < 200 && Leftovers(dir_).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(Leftovers(dir_).empty());
  ::kill(child, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::close(input[1]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_TRUE(Leftovers(dir_).empty());
  EXPECT_FALSE(fs::exists(P("sealed")));
}

TEST_F(SealedFilesTest, ClearErrors) {
  WriteFile(P("plain"), Pattern(10));
  EXPECT_NE(RunCli("seal --to " + P("missing.pub") + " --in " + P("plain") + " --out " + P("x") + " 2>/dev/null"), 0);
  WriteFile(P("bad.pub"), Pattern(100));
  auto bad = ReadPublicKeyFile(P("bad.pub"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("not a qsapi public-key file"), std::string::npos);
  EXPECT_NE(RunCli("seal --to " + P("recipient.pub") + " --aead export-only --in " + P("plain") + " --out " + P("x") +
                   " 2>/dev/null"),
            0);
  EXPECT_FALSE(fs::exists(P("x")));
  EXPECT_TRUE(Leftovers(dir_).empty());
}

}  // namespace
}  // namespace qsapi::cli
