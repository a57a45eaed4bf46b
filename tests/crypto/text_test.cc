// The library's small text helpers (src/common/internal/text.h).
#include "common/internal/text.h"

#include <chrono>

#include <gtest/gtest.h>

namespace qsapi::internal {
namespace {

TEST(TextTest, HexEncodeIsLowerCase) {
  const Bytes b{0x00, 0x09, 0x0a, 0xff, 0x5c};
  EXPECT_EQ(HexEncode(b), "00090aff5c");
  EXPECT_EQ(HexEncode({}), "");
}

TEST(TextTest, JsonDepthCountsBracketsOutsideStrings) {
  EXPECT_TRUE(JsonDepthWithin(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(JsonDepthWithin(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_TRUE(JsonDepthWithin(R"({"a":"[[[[\"]]"})", 1));
}

TEST(TextTest, FormatUtcToTheSecondAndTheDate) {
  // 2026-11-29T13:58:04.750Z: the fraction is dropped, the time zone is UTC whatever TZ says.
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795960684750LL));
  EXPECT_EQ(FormatUtc(t), "2026-11-29T13:58:04Z");
  EXPECT_EQ(FormatUtcDate(t), "2026-11-29");
  EXPECT_EQ(FormatUtc(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace qsapi::internal
