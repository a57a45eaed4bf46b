#include "qsapi/secret.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "support/test_support.h"

namespace qsapi {
namespace {

// AddressSanitizer and ThreadSanitizer intercept mlock() and turn it into a no-op that reports
// success (their shadow memory makes locking meaningless), so the "locked" half of the check runs
// without them only.
constexpr bool kMlockWorks = !testing::kUnderSanitizer;

TEST(SecretBytesTest, StartsZeroedAndHasTheRequestedSize) {
  SecretBytes s(100);
  ASSERT_EQ(s.size(), 100U);
  EXPECT_TRUE(std::all_of(s.data(), s.data() + s.size(), [](std::uint8_t b) { return b == 0; }));
}

TEST(SecretBytesTest, MemoryIsLockedAndExcludedFromCoreDumps) {
  SecretBytes s(64);
  std::fill(s.data(), s.data() + s.size(), 0xAA);
  // mincore cannot see mlock, but /proc/self/smaps can: find the mapping holding the buffer and
  // check its Locked size and the "dd" (do not dump) flag.
  const auto addr = reinterpret_cast<std::uintptr_t>(s.data());  // NOLINT
  const std::string smaps = testing::ReadFile("/proc/self/smaps");
  std::size_t pos = 0;
  bool found = false;
  while (pos < smaps.size()) {
    const std::size_t eol = smaps.find('\n', pos);
    const std::string line = smaps.substr(pos, eol - pos);
    pos = eol == std::string::npos ? smaps.size() : eol + 1;
    std::uintptr_t lo = 0;
    std::uintptr_t hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && line.find(' ') != std::string::npos && addr >= lo &&
        addr < hi) {
      found = true;
      const std::size_t next = smaps.find("VmFlags:", pos);
      ASSERT_NE(next, std::string::npos);
      const std::string flags = smaps.substr(next, smaps.find('\n', next) - next);
      EXPECT_NE(flags.find(" dd"), std::string::npos) << "not MADV_DONTDUMP: " << flags;
      if (kMlockWorks && GetSecureMemoryStats().lock_failures == 0) {
        EXPECT_NE(flags.find(" lo"), std::string::npos) << "not mlocked: " << flags;
      }
      break;
    }
  }
  EXPECT_TRUE(found);
}

TEST(SecretBytesTest, ReleasedMemoryIsWipedBeforeReuse) {
  std::uint8_t* first = nullptr;
  {
    SecretBytes s(48);
    std::fill(s.data(), s.data() + s.size(), 0x5C);
    first = s.data();
  }
  // The arena hands the most recently freed block of a size class out first (LIFO free list),
  // so the next allocation of that class reuses it: it must come back zeroed.
  SecretBytes again(40);
  ASSERT_EQ(again.data(), first);
  EXPECT_TRUE(std::all_of(again.data(), again.data() + 48, [](std::uint8_t b) { return b == 0; }));
}

TEST(SecretBytesTest, MoveLeavesTheSourceEmpty) {
  SecretBytes a = SecretBytes::CopyFrom(Bytes{1, 2, 3});
  SecretBytes b = std::move(a);
  EXPECT_EQ(a.size(), 0U);  // NOLINT(bugprone-use-after-move): testing the moved-from state
  EXPECT_EQ(a.data(), nullptr);
  ASSERT_EQ(b.size(), 3U);
  EXPECT_EQ(b.data()[2], 3);
}

TEST(SecretBytesTest, ShrinkWipesTheTail) {
  SecretBytes s = SecretBytes::CopyFrom(Bytes{9, 9, 9, 9});
  std::uint8_t* p = s.data();
  s.Shrink(1);
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(p[1], 0);
  EXPECT_EQ(p[3], 0);
}

TEST(SecretBytesTest, LargeBuffersGetTheirOwnMappingAndAreAccounted) {
  const SecureMemoryStats before = GetSecureMemoryStats();
  {
    SecretBytes big(100000);
    EXPECT_GE(GetSecureMemoryStats().bytes_in_use, before.bytes_in_use + 100000);
  }
  EXPECT_EQ(GetSecureMemoryStats().bytes_in_use, before.bytes_in_use);
}

TEST(ConstantTimeEqualTest, ComparesContentsAndLengths) {
  const Bytes a = {1, 2, 3};
  const Bytes b = {1, 2, 3};
  const Bytes c = {1, 2, 4};
  const Bytes d = {1, 2};
  EXPECT_TRUE(ConstantTimeEqual(a, b));
  EXPECT_FALSE(ConstantTimeEqual(a, c));
  EXPECT_FALSE(ConstantTimeEqual(a, d));
  EXPECT_TRUE(ConstantTimeEqual(ByteView(), ByteView()));
}

TEST(SecureZeroTest, Zeroes) {
  Bytes a = {1, 2, 3};
  SecureZero(a.data(), a.size());
  EXPECT_EQ(a, (Bytes{0, 0, 0}));
}

}  // namespace
}  // namespace qsapi
