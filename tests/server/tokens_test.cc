// API tokens: shown once, stored hashed, checked in constant time, bound to a policy, revocable.
#include "server/tokens.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>

#include "support/test_support.h"

namespace qsapi::server {
namespace {

using ::testing::HasSubstr;

class TokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("qsapi-tokens-" + std::to_string(::getpid()) + ".json");
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_;
};

TEST_F(TokensTest, CreateAuthenticateRevoke) {
  auto store = TokenStore::Load(path_);
  QSAPI_ASSERT_OK(store);
  auto admin_token = store->Create("admin", Policy{{"*"}, {"*"}});
  QSAPI_ASSERT_OK(admin_token);
  auto billing_token = store->Create("billing", Policy{{"billing-*"}, {"encrypt", "decrypt"}});
  QSAPI_ASSERT_OK(billing_token);
  const std::string admin(TokenText(*admin_token));
  const std::string billing(TokenText(*billing_token));
  EXPECT_TRUE(admin.starts_with("qsapi_"));
  // The file holds hashes, never the tokens, and is private.
  const std::string file = testing::ReadFile(path_);
  EXPECT_EQ(file.find(admin), std::string::npos);
  EXPECT_EQ(file.find(admin.substr(15)), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  auto reloaded = TokenStore::Load(path_);
  QSAPI_ASSERT_OK(reloaded);
  auto who = reloaded->Authenticate(billing);
  QSAPI_ASSERT_OK(who);
  EXPECT_EQ(who->name, "billing");
  EXPECT_TRUE(who->policy.AllowsKey("billing-invoices"));
  EXPECT_FALSE(who->policy.AllowsKey("hr-salaries"));
  EXPECT_TRUE(who->policy.AllowsOperation(Operation::kDecrypt));
  EXPECT_FALSE(who->policy.AllowsOperation(Operation::kKeysDestroy));

  std::string forged = billing;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {forged, std::string("qsapi_"), std::string("Bearer x"), std::string(200, 'q')}) {
    auto r = reloaded->Authenticate(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_EQ(r.error().message(), "the bearer token is not valid");
  }
  QSAPI_ASSERT_OK(reloaded->Revoke("billing"));
  EXPECT_FALSE(TokenStore::Load(path_)->Authenticate(billing).ok());
  QSAPI_EXPECT_OK(TokenStore::Load(path_)->Authenticate(admin));
}

TEST_F(TokensTest, BadInputChangesNothing) {
  auto store = TokenStore::Load(path_);
  QSAPI_ASSERT_OK(store->Create("svc", Policy{{"a"}, {"sign"}}));
  const std::string before = testing::ReadFile(path_);
  EXPECT_EQ(store->Create("svc", Policy{{"a"}, {"sign"}}).error().code(), ErrorCode::kAlreadyExists);
  auto unknown = store->Create("other", Policy{{"a"}, {"sing"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.error().message(), HasSubstr("unknown operation \"sing\""));
  EXPECT_FALSE(store->Create("empty", Policy{{}, {"sign"}}).ok());
  EXPECT_EQ(store->Revoke("nobody").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(testing::ReadFile(path_), before);
}

TEST_F(TokensTest, CorruptOrLooseFilesAreRefused) {
  { std::ofstream(path_) << "{\"tokens\": [{\"id\": \"zz\"}]}"; }
  ::chmod(path_.c_str(), 0600);
  auto r = TokenStore::Load(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
  ::chmod(path_.c_str(), 0644);
  EXPECT_THAT(TokenStore::Load(path_).error().message(), HasSubstr("chmod 600"));
}

}  // namespace
}  // namespace qsapi::server
