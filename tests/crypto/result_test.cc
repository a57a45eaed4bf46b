#include "qsapi/result.h"

#include <memory>

#include "support/test_support.h"

namespace qsapi {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  QSAPI_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

Status CheckEven(int x) {
  QSAPI_RETURN_IF_ERROR(Half(x));
  return OkStatus();
}

TEST(ResultTest, CarriesAValueOrAnError) {
  Result<int> ok = Half(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 4);
  Result<int> bad = Half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().ToString(), "INVALID_ARGUMENT: odd");
}

TEST(ResultTest, MacrosPropagateTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).error().code(), ErrorCode::kInvalidArgument);  // 6/2 = 3 is odd
  EXPECT_TRUE(CheckEven(2).ok());
  EXPECT_FALSE(CheckEven(1).ok());
}

TEST(ResultTest, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultTest, AuthenticationFailureIsOneFixedError) {
  EXPECT_EQ(AuthenticationFailed(), AuthenticationFailed());
  EXPECT_EQ(AuthenticationFailed().code(), ErrorCode::kAuthenticationFailed);
}

TEST(ResultDeathTest, ValueOfAnErrorAborts) { EXPECT_DEATH((void)Half(3).value(), ""); }

}  // namespace
}  // namespace qsapi
