// Two processes on one keystore database (two qsapid, or qsapid and the qsapi CLI, which the docs
// allow): the per-version operation limit holds across them. The second process is this test
// binary run again with --gtest_filter on the child test and the data directory in the
// environment; the child test does nothing in a normal run.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <spawn.h>
#include <string>
#include <thread>
#include <vector>

#include "keystore_support.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace qsapi::keystore {
namespace {

KeyType Type(std::string_view name) { return ParseKeyType(name).value(); }

constexpr const char* kDirVariable = "QSAPI_TWO_PROCESS_DIR";
constexpr const char* kCountVariable = "QSAPI_TWO_PROCESS_COUNT";
constexpr const char* kOutVariable = "QSAPI_TWO_PROCESS_OUT";

// Encrypt runs `count` encryptions under `name` and returns how many came out under each version.
std::map<std::uint32_t, int> Encrypt(Keystore& ks, const std::string& name, int count) {
  std::map<std::uint32_t, int> per_version;
  for (int i = 0; i < count; ++i) {
    auto ct = ks.Encrypt(name, AsBytes("m"));
    EXPECT_TRUE(ct.ok()) << ct.error().ToString();
    if (!ct.ok()) break;
    ++per_version[ParseHeader(*ct)->version];
  }
  return per_version;
}

// The child: opens the keystore of the parent's data directory, encrypts, writes "version count"
// lines to the output file.
TEST(KeystoreTwoProcessChild, EncryptsInTheParentsKeystore) {
  const char* dir = std::getenv(kDirVariable);
  if (dir == nullptr) GTEST_SKIP() << "run by KeystoreTwoProcessTest only";
  auto ks = Keystore::Open(EmbeddedOptions(dir));
  ASSERT_TRUE(ks.ok()) << ks.error().ToString();
  const auto per_version = Encrypt(**ks, "shared", std::atoi(std::getenv(kCountVariable)));
  std::ofstream out(std::getenv(kOutVariable));
  for (const auto& [version, n] : per_version) out << version << " " << n << "\n";
}

class KeystoreTwoProcessTest : public KeystoreFixture {
 protected:
  // RunChild runs the child test in another process and returns its per-version counts.
  std::map<std::uint32_t, int> RunChild(int count) {
    const std::string out = (dir_ / "child.out").string();
    std::vector<std::string> env_storage = {std::string(kDirVariable) + "=" + dir_.string(),
                                            std::string(kCountVariable) + "=" + std::to_string(count),
                                            std::string(kOutVariable) + "=" + out};
    for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : env_storage) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::string filter = "--gtest_filter=KeystoreTwoProcessChild.EncryptsInTheParentsKeystore";
    std::vector<char*> argv = {self.data(), filter.data(), nullptr};
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()), 0);
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child test failed";
    std::map<std::uint32_t, int> per_version;
    std::ifstream in(out);
    std::uint32_t version = 0;
    int n = 0;
    while (in >> version >> n) per_version[version] += n;
    return per_version;
  }
};

// The order that broke the old "raise the count to X" lease: this process holds the first block
// of version 1 when the child starts; the child is granted the second block and spends it; then
// this process spends its first block and asks for another. Under "UPDATE ... SET ops_leased = X
// WHERE ops_leased < X" that ask changed no row, was taken as granted, and this process used the
// child's block again: more operations than the limit. With one atomic grant it is refused, and
// the key rotates.
TEST_F(KeystoreTwoProcessTest, TwoProcessesNeverShareAnOperationBlock) {
  constexpr int kLimit = 2048;  // blocks of 128 (LeaseBlockFor)
  QSAPI_ASSERT_OK(ks_->Create("shared", Type("AES-256-GCM"), KeyPolicy{.max_operations_per_version = kLimit}));
  std::map<std::uint32_t, int> total = Encrypt(*ks_, "shared", 1);
  for (const auto& [v, n] : RunChild(1024)) total[v] += n;
  for (const auto& [v, n] : Encrypt(*ks_, "shared", kLimit - 1)) total[v] += n;
  EXPECT_LE(total[1], kLimit) << "version 1 was used more often than its limit";
  EXPECT_EQ(total[1], kLimit) << "no operation of version 1 should be lost in this order";
  EXPECT_GE(total[2], 1) << "the key rotated when version 1 was spent";
  auto info = ks_->Get("shared");
  QSAPI_ASSERT_OK(info);
  EXPECT_GE(info->current_version, 2U);
}

// Both processes at once, each with its own blocks: the total under each version stays within the
// limit whatever the interleaving.
TEST_F(KeystoreTwoProcessTest, ConcurrentProcessesStayWithinTheLimit) {
  constexpr int kLimit = 3000;  // blocks of 187 (LeaseBlockFor), the last one partial
  QSAPI_ASSERT_OK(ks_->Create("shared", Type("AES-256-GCM"), KeyPolicy{.max_operations_per_version = kLimit}));
  std::map<std::uint32_t, int> child;
  std::thread other([&] { child = RunChild(4000); });
  std::map<std::uint32_t, int> total = Encrypt(*ks_, "shared", 4000);
  other.join();
  int all = 0;
  for (const auto& [v, n] : child) total[v] += n;
  for (const auto& [v, n] : total) {
    EXPECT_LE(n, kLimit) << "version " << v;
    all += n;
  }
  EXPECT_EQ(all, 8000);
}

}  // namespace
}  // namespace qsapi::keystore
