// The audit log's hash chain: appends continue across reopen; an edited, removed, reordered,
// inserted or truncated line is detected and named.
#include "server/audit_log.h"

#include <unistd.h>

#include <algorithm>
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

// The log rotates past max_file_bytes and the chain goes on across files: verify checks them all,
// names the file of a bad line, and notices a rotated file that went missing.
TEST_F(AuditLogTest, RotationCarriesTheChainAcrossFiles) {
  const std::filesystem::path dir = path_.parent_path() / ("qsapi-audit-rot-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path log_path = dir / "audit.log";
  {
    auto log = AuditLog::Open(log_path, {.max_file_bytes = 32 * 1024, .keep_files = 0, .min_free_bytes = 0});
    ASSERT_TRUE(log.ok()) << log.error().ToString();
    for (int i = 0; i < 400; ++i) {
      QSAPI_ASSERT_OK((*log)->Append({.who = "admin", .action = "encrypt", .key = "k", .result = "ok"}));
    }
  }
  std::vector<std::filesystem::path> rotated;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename() != "audit.log") rotated.push_back(e.path());
  }
  std::sort(rotated.begin(), rotated.end());
  ASSERT_GE(rotated.size(), 3U);
  EXPECT_EQ(rotated.front().filename(), "audit-000000000001.log");
  auto r = VerifyAuditLog(log_path);
  QSAPI_ASSERT_OK(r);
  EXPECT_EQ(r->lines, 400U);
  EXPECT_EQ(r->files, rotated.size() + 1);
  // Reopening continues the chain where the newest file ends.
  {
    auto log = AuditLog::Open(log_path, {.max_file_bytes = 32 * 1024, .keep_files = 0, .min_free_bytes = 0});
    ASSERT_TRUE(log.ok());
    EXPECT_EQ((*log)->next_seq(), 401U);
  }
  // A rotated file removed from the middle breaks the chain at the next file's first line.
  const std::filesystem::path moved = dir / "aside";
  std::filesystem::rename(rotated[1], moved);
  auto broken = VerifyAuditLog(log_path);
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.error().message(), HasSubstr(rotated[2].filename().string() + " line 1: sequence"));
  std::filesystem::rename(moved, rotated[1]);
  QSAPI_EXPECT_OK(VerifyAuditLog(log_path));
  std::filesystem::remove_all(dir);
}

// A partial last line stopped qsapid until the file was fixed by hand. RepairAuditLog moves it
// aside and records the repair in the chain.
TEST_F(AuditLogTest, RepairMovesAPartialLineAsideAndIsAudited) {
  Write(2);
  {
    std::ofstream out(path_, std::ios::app);
    out << "{\"seq\":3,\"ha";
  }
  auto refused = AuditLog::Open(path_);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("qsapi audit repair"));
  auto repaired = RepairAuditLog(path_, "operator");
  QSAPI_ASSERT_OK(repaired);
  EXPECT_EQ(repaired->bytes_removed, 12U);
  EXPECT_EQ(testing::ReadFile(repaired->saved_to), "{\"seq\":3,\"ha");
  auto v = VerifyAuditLog(path_);
  QSAPI_ASSERT_OK(v);
  EXPECT_EQ(v->lines, 3U);
  EXPECT_THAT(Lines().back(), HasSubstr("\"action\":\"audit.repair\""));
  EXPECT_THAT(Lines().back(), HasSubstr("\"who\":\"operator\""));
  EXPECT_EQ(RepairAuditLog(path_, "operator").error().code(), ErrorCode::kFailedPrecondition);
  std::filesystem::remove(repaired->saved_to);
}

// A failed write leaves no partial line behind (the next start would refuse the log).
TEST_F(AuditLogTest, AFailedWriteLeavesNoPartialLine) {
  auto log = AuditLog::Open("/dev/full");
  ASSERT_TRUE(log.ok());
  auto s = (*log)->Append({.who = "admin", .action = "encrypt", .result = "ok"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ((*log)->next_seq(), 1U);
  auto strict =
      AuditLog::Open(path_, {.max_file_bytes = 1 << 20, .keep_files = 0, .min_free_bytes = ~std::uint64_t{0}});
  ASSERT_TRUE(strict.ok());
  EXPECT_THAT((*strict)->Ready().error().message(), HasSubstr("free"));
}

// While qsapid runs, a log cut short under it (lines removed from the end) or replaced by an
// older copy is noticed by the next VerifyNow: the writer knows how much it wrote.
TEST_F(AuditLogTest, VerifyNowNoticesALogCutShortUnderTheWriter) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 5; ++i) QSAPI_ASSERT_OK((*log)->Append({.who = "admin", .action = "encrypt", .result = "ok"}));
  QSAPI_ASSERT_OK((*log)->VerifyNow());
  const std::string text = testing::ReadFile(path_);
  const std::size_t cut = text.rfind('\n', text.size() - 2) + 1;  // drop the last line
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(cut)), 0);
  auto r = (*log)->VerifyNow();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(r.error().message(), HasSubstr("cut short or replaced"));
}

}  // namespace
}  // namespace qsapi::server
