// Crash safety with real processes: `qsapi key create|rotate|destroy` killed with SIGKILL at each
// fault point (QSAPI_FAULT_POINT), and a loop of rotations and creations killed at random moments.
// Afterwards the keystore must be consistent (Verify finds no problem), no key half-made, and
// every key usable.
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <random>
#include <signal.h>
#include <spawn.h>
#include <thread>

#include <gmock/gmock.h>

#include "keystore_support.h"

extern char** environ;

namespace qsapi::keystore {
namespace {

struct Exit {
  bool killed = false;  // by SIGKILL
  int code = -1;
};

// Run runs the qsapi CLI with `args`, QSAPI_FAULT_POINT set to `fault` (when non-empty).
Exit RunCli(const std::vector<std::string>& args, const std::string& fault = "") {
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("QSAPI_FAULT_POINT=")) continue;
    env_storage.emplace_back(*e);
  }
  if (!fault.empty()) env_storage.push_back("QSAPI_FAULT_POINT=" + fault);
  std::vector<char*> envp;
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_storage = {QSAPI_CLI_PATH};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, QSAPI_CLI_PATH, &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  Exit e;
  e.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  e.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return e;
}

class KeystoreCrashTest : public KeystoreFixture {
 protected:
  std::vector<std::string> With(std::vector<std::string> args) {
    args.push_back("--data-dir");
    args.push_back(dir_.string());
    return args;
  }
  void ExpectConsistent() {
    Reopen();
    ASSERT_NE(ks_, nullptr) << "the keystore does not open after the kill";
    auto report = ks_->CheckIntegrity();
    ASSERT_TRUE(report.ok()) << report.error().ToString();
    EXPECT_TRUE(report->problems.empty()) << report->problems.front();
  }
};

TEST_F(KeystoreCrashTest, KillDuringCreateLeavesNoHalfMadeKey) {
  ks_.reset();
  const std::vector<std::pair<std::string, bool>> points = {
      {"keystore.create.after_wrap", false},
      {"keystore.create.between_rows", false},
      {"keystore.before_commit", false},
      {"keystore.create.after_commit", true},
  };
  int n = 0;
  for (const auto& [point, exists_after] : points) {
    const std::string name = "crash" + std::to_string(n++);
    const Exit e = RunCli(With({"key", "create", name, "--type", "ML-DSA-65"}), point);
    EXPECT_TRUE(e.killed) << point << " was not reached";
    ExpectConsistent();
    if (HasFatalFailure()) return;
    EXPECT_EQ(ks_->Get(name).ok(), exists_after) << point;
    if (!exists_after) {
      EXPECT_TRUE(ks_->Create(name, ParseKeyType("ML-DSA-65").value()).ok()) << "a killed create must leave no trace";
    }
    QSAPI_EXPECT_OK(ks_->Sign(name, AsBytes("m")));
    ks_.reset();
  }
}

TEST_F(KeystoreCrashTest, KillDuringRotateKeepsTheOldVersion) {
  QSAPI_ASSERT_OK(ks_->Create("r", ParseKeyType("AES-256-GCM").value()));
  auto ct = ks_->Encrypt("r", AsBytes("before"));
  QSAPI_ASSERT_OK(ct);
  ks_.reset();
  for (const char* point : {"keystore.rotate.after_wrap", "keystore.rotate.between_rows", "keystore.before_commit"}) {
    const Exit e = RunCli(With({"key", "rotate", "r"}), point);
    EXPECT_TRUE(e.killed) << point;
    ExpectConsistent();
    if (HasFatalFailure()) return;
    EXPECT_EQ(ks_->Get("r")->current_version, 1U) << point;
    QSAPI_EXPECT_OK(ks_->Decrypt("r", *ct));
    ks_.reset();
  }
  EXPECT_EQ(RunCli(With({"key", "rotate", "r"})).code, 0);
  ExpectConsistent();
  if (HasFatalFailure()) return;
  EXPECT_EQ(ks_->Get("r")->current_version, 2U);
  QSAPI_EXPECT_OK(ks_->Decrypt("r", *ct));
}

TEST_F(KeystoreCrashTest, KillDuringDestroyKeepsTheKey) {
  QSAPI_ASSERT_OK(ks_->Create("d", ParseKeyType("X-Wing").value(), KeyPolicy{.deletion_allowed = true}));
  ks_.reset();
  for (const char* point : {"keystore.destroy.between_rows", "keystore.before_commit"}) {
    const Exit e = RunCli(With({"key", "destroy", "d"}), point);
    EXPECT_TRUE(e.killed) << point;
    ExpectConsistent();
    if (HasFatalFailure()) return;
    auto pub = ks_->KemPublicKey("d");
    QSAPI_ASSERT_OK(pub);
    auto enc = pub->Encapsulate();
    QSAPI_EXPECT_OK(ks_->Decapsulate("d", 0, enc->ciphertext.view()));
    ks_.reset();
  }
  EXPECT_EQ(RunCli(With({"key", "destroy", "d"})).code, 0);
  ExpectConsistent();
  if (HasFatalFailure()) return;
  EXPECT_EQ(ks_->Get("d").error().code(), ErrorCode::kNotFound);
}

// The hot path caches metadata rows; a change made by another process must still be seen at once.
TEST_F(KeystoreCrashTest, ChangesByAnotherProcessAreSeenAtOnce) {
  QSAPI_ASSERT_OK(ks_->Create("shared", ParseKeyType("AES-256-GCM").value(), KeyPolicy{.deletion_allowed = true}));
  auto v1 = ks_->Encrypt("shared", AsBytes("x"));
  QSAPI_ASSERT_OK(v1);
  EXPECT_EQ(RunCli(With({"key", "rotate", "shared"})).code, 0);
  auto v2 = ks_->Encrypt("shared", AsBytes("x"));
  QSAPI_ASSERT_OK(v2);
  EXPECT_EQ(ParseHeader(*v2)->version, 2U);
  EXPECT_EQ(RunCli(With({"key", "destroy", "shared"})).code, 0);
  EXPECT_EQ(ks_->Encrypt("shared", AsBytes("x")).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ks_->Decrypt("", *v1).error().code(), ErrorCode::kNotFound);
}

// A real process kill at a random moment of a busy create / rotate loop.
TEST_F(KeystoreCrashTest, RandomKillsOfABusyLoop) {
  QSAPI_ASSERT_OK(ks_->Create("loop", ParseKeyType("AES-256-GCM").value()));
  ks_.reset();
  std::mt19937 rng(20261129);
  for (int round = 0; round < 4; ++round) {
    const std::string script = "i=0; while true; do i=$((i+1)); \"" + std::string(QSAPI_CLI_PATH) +
                               "\" key rotate loop --data-dir '" + dir_.string() + "' >/dev/null 2>&1; \"" +
                               QSAPI_CLI_PATH + "\" key create r" + std::to_string(round) +
                               "-$i --type ML-KEM-768 --data-dir '" + dir_.string() + "' >/dev/null 2>&1; done";
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::setpgid(0, 0);
      ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 400));
    ::kill(-pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the group's last child is reaped by init
    ExpectConsistent();
    if (HasFatalFailure()) return;
    auto keys = ks_->List();
    QSAPI_ASSERT_OK(keys);
    for (const auto& k : *keys) {
      if (k.type.is_kem()) {
        auto pub = ks_->KemPublicKey(k.name);
        QSAPI_ASSERT_OK(pub);
        auto enc = pub->Encapsulate();
        EXPECT_TRUE(ks_->Decapsulate(k.name, 0, enc->ciphertext.view()).ok()) << k.name;
      } else {
        auto ct = ks_->Encrypt(k.name, AsBytes("after the kill"));
        QSAPI_ASSERT_OK(ct);
        QSAPI_EXPECT_OK(ks_->Decrypt(k.name, *ct));
      }
    }
    ks_.reset();
  }
}

}  // namespace
}  // namespace qsapi::keystore
