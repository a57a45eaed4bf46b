// The audit log's hash chain: appends continue across reopen; an edited, removed, reordered,
// inserted or truncated line is detected and named.
#include "server/audit_log.h"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include <gmock/gmock.h>

#include "support/test_support.h"

namespace qsapi::server {
namespace {

using ::testing::HasSubstr;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("qsapi-audit-" + std::to_string(::getpid()) + ".log");
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(int n) {
    auto log = AuditLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.error().ToString();
    for (int i = 0; i < n; ++i) {
      QSAPI_ASSERT_OK((*log)->Append({.who = "admin",
                                      .action = "encrypt",
                                      .key = "orders",
                                      .version = 1,
                                      .result = "ok",
                                      .request_id = "r" + std::to_string(i),
                                      .detail = ""}));
    }
  }
  std::vector<std::string> Lines() {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  void Rewrite(const std::vector<std::string>& lines) {
    std::ofstream out(path_, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
  std::filesystem::path path_;
};

TEST_F(AuditLogTest, ChainContinuesAcrossReopenAndVerifies) {
  Write(3);
  Write(2);
  auto r = VerifyAuditLog(path_);
  QSAPI_ASSERT_OK(r);
  EXPECT_EQ(r->lines, 5U);
  const auto lines = Lines();
  EXPECT_THAT(lines[4], HasSubstr("\"seq\":5"));
  EXPECT_THAT(lines[0], HasSubstr("\"who\":\"admin\""));
}

TEST_F(AuditLogTest, TamperingIsDetectedAndNamed) {
  Write(5);
  const auto good = Lines();
  struct Case {
    std::vector<std::string> lines;
    const char* expect;
  };
  std::vector<std::string> edited = good;
  edited[2].replace(edited[2].find("\"admin\""), 7, "\"mallory\"");
  std::vector<std::string> removed = good;
  removed.erase(removed.begin() + 1);
  std::vector<std::string> reordered = good;
  std::swap(reordered[1], reordered[2]);
  std::vector<std::string> inserted = good;
  inserted.insert(inserted.begin() + 3, good[3]);
  std::vector<std::string> garbage = good;
  garbage[4] = "{not json";
  const Case cases[] = {
      {edited, "line 3: its content was altered"},
      {removed, "line 2: sequence 3 where 2 was expected"},
      {reordered, "line 2: sequence 3 where 2 was expected"},
      {inserted, "line 5: sequence 4 where 5 was expected"},
      {garbage, "line 5: not a JSON object"},
  };
  for (const Case& c : cases) {
    Rewrite(c.lines);
    auto r = VerifyAuditLog(path_);
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
    EXPECT_THAT(r.error().message(), HasSubstr(c.expect));
  }
  // A line whose seq was renumbered to hide a removal still breaks the chain.
  std::vector<std::string> renumbered = removed;
  for (std::size_t i = 1; i < renumbered.size(); ++i) {
    const std::size_t p = renumbered[i].find("\"seq\":");
    renumbered[i].replace(p, 7, "\"seq\":" + std::to_string(i + 1));
  }
  Rewrite(renumbered);
  EXPECT_THAT(VerifyAuditLog(path_).error().message(), HasSubstr("line 2: does not chain"));
}

TEST_F(AuditLogTest, APartialLastLineStopsTheWriter) {
  Write(2);
  {
    std::ofstream out(path_, std::ios::app);
    out << "{\"seq\":3,\"ha";
  }
  auto log = AuditLog::Open(path_);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.error().message(), HasSubstr("partial line"));
}

// A last entry that is whole JSON but lacks its line end (a write cut short by a full disk) is a
// partial line for verify as for the writer: Open refuses to continue it, so verify must not call
// the log intact (found by fuzz/audit_log_fuzzer.cc).
TEST_F(AuditLogTest, VerifyRefusesALastLineWithoutLineEnd) {
  Write(2);
  std::ifstream in(path_, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(text.back(), '\n');
  text.pop_back();
  {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << text;
  }
  const auto verified = VerifyAuditLog(path_);
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(verified.error().message(), HasSubstr("line 2 is a partial line"));
  EXPECT_FALSE(AuditLog::Open(path_).ok());
}

}  // namespace
}  // namespace qsapi::server
