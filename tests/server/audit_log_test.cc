// The audit log's chain: appends continue across reopen; an edited, removed, reordered, inserted
// or truncated line is detected and named; a keyed trail cannot be recomputed without its key, and
// the head recorded outside the file catches a cut or an older copy.
#include "server/audit_log.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include <gmock/gmock.h>
#include <nlohmann/json.hpp>

#include "qsapi/crypto/kdf.h"
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

// A keyed trail (the key comes from the keystore in qsapid; any 32 bytes here).
AuditKeying TestKeying(std::uint64_t first_seq, std::uint8_t fill = 0x5a) {
  AuditKeying k;
  k.key = SecretBytes::CopyFrom(Bytes(32, fill));
  k.first_seq = first_seq;
  return k;
}

AuditKeying CopyOf(const AuditKeying& k) {
  return {.key = k.key.Clone(), .first_seq = k.first_seq, .head_seq = k.head_seq, .head_mac = k.head_mac};
}

// Recompute rewrites lines [from, end) of a trail with their chain recomputed: SHA-256 "hash"
// lines when `key` is empty (what anyone can do), else HMAC "mac" lines under `key`.
std::vector<std::string> Recompute(std::vector<std::string> lines, std::size_t from, ByteView key) {
  std::string prev = from == 0 ? std::string(64, '0') : [&] {
    const nlohmann::json j = nlohmann::json::parse(lines[from - 1]);
    return j.contains("mac") ? j["mac"].get<std::string>() : j["hash"].get<std::string>();
  }();
  for (std::size_t i = from; i < lines.size(); ++i) {
    nlohmann::json j = nlohmann::json::parse(lines[i]);
    j.erase("hash");
    j.erase("mac");
    j["prev"] = prev;
    const std::string canonical = prev + j.dump();
    const ByteView data(reinterpret_cast<const std::uint8_t*>(canonical.data()), canonical.size());  // NOLINT
    prev = testing::ToHex(key.empty() ? crypto::Hash(crypto::HashAlgorithm::kSha256, data).value()
                                      : crypto::Hmac(crypto::HashAlgorithm::kSha256, key, data).value());
    j[key.empty() ? "hash" : "mac"] = prev;
    lines[i] = j.dump();
  }
  return lines;
}

void AppendKeyed(const std::filesystem::path& path, const AuditKeying& keying, int n, const std::string& who) {
  auto log = AuditLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.error().ToString();
  (*log)->UseKeying(CopyOf(keying));
  for (int i = 0; i < n; ++i) {
    QSAPI_ASSERT_OK(
        (*log)->Append({.who = who, .action = "keys.create", .key = "k" + std::to_string(i), .result = "ok"}));
  }
}

TEST_F(AuditLogTest, AKeyedTrailCannotBeRewrittenWithRecomputedHashes) {
  Write(2);  // lines from before the trail was keyed
  const AuditKeying keying = TestKeying(3);
  AppendKeyed(path_, keying, 4, "admin");
  auto good = VerifyAuditLog(path_, &keying);
  QSAPI_ASSERT_OK(good);
  EXPECT_EQ(good->lines, 6U);
  EXPECT_EQ(good->macs, 4U);
  const std::vector<std::string> original = Lines();
  EXPECT_THAT(original[1], HasSubstr("\"hash\""));
  EXPECT_THAT(original[2], HasSubstr("\"mac\""));
  // Without the key the MACs cannot be checked, and verification says so instead of passing.
  auto keyless = VerifyAuditLog(path_);
  ASSERT_FALSE(keyless.ok());
  EXPECT_EQ(keyless.error().code(), ErrorCode::kFailedPrecondition);

  // The attack that once passed: a key creation line removed, another's principal changed, the
  // chain recomputed with SHA-256 (sequence numbers renumbered).
  std::vector<std::string> forged = original;
  forged.erase(forged.begin() + 3);
  for (std::size_t i = 3; i < forged.size(); ++i) {
    nlohmann::json j = nlohmann::json::parse(forged[i]);
    j["seq"] = i + 1;
    forged[i] = j.dump();
  }
  {
    nlohmann::json j = nlohmann::json::parse(forged[2]);
    j["who"] = "mallory";
    forged[2] = j.dump();
  }
  Rewrite(Recompute(forged, 2, {}));
  QSAPI_EXPECT_OK(VerifyAuditLog(path_));  // as a plain hash chain the forgery holds: only the key tells
  auto unkeyed = VerifyAuditLog(path_, &keying);
  ASSERT_FALSE(unkeyed.ok());
  EXPECT_EQ(unkeyed.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(unkeyed.error().message(), HasSubstr("line 3: has no MAC"));
  // Recomputed as MACs under a key of the forger's own: detected at the first line changed.
  const AuditKeying other = TestKeying(3, 0x11);
  Rewrite(Recompute(forged, 2, other.key.view()));
  auto wrong_key = VerifyAuditLog(path_, &keying);
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_THAT(wrong_key.error().message(),
              HasSubstr("line 3: its content was altered, or it was written with another key"));
  // The key's first entry moved up to pass recomputed lines off as older: a MAC line before it.
  Rewrite(original);
  const AuditKeying later = TestKeying(5);
  auto early = VerifyAuditLog(path_, &later);
  ASSERT_FALSE(early.ok());
  EXPECT_THAT(early.error().message(), HasSubstr("line 3: carries a MAC, but the trail is keyed only from entry 5"));
}

TEST_F(AuditLogTest, TheHeadRecordedOutsideCatchesACutOrAnOlderCopy) {
  AuditKeying keying = TestKeying(1);
  AppendKeyed(path_, keying, 3, "admin");
  const std::string older = testing::ReadFile(path_);
  std::uint64_t recorded_seq = 0;
  std::string recorded_mac;
  {
    auto log = AuditLog::Open(path_);
    ASSERT_TRUE(log.ok());
    (*log)->UseKeying(CopyOf(keying));
    QSAPI_ASSERT_OK((*log)->Append({.who = "admin", .action = "keys.destroy", .key = "k0", .result = "ok"}));
    QSAPI_ASSERT_OK((*log)->Append({.who = "admin", .action = "keys.destroy", .key = "k1", .result = "ok"}));
    int calls = 0;
    const auto record = [&](std::uint64_t seq, const std::string& mac) {
      ++calls;
      recorded_seq = seq;
      recorded_mac = mac;
      return OkStatus();
    };
    QSAPI_ASSERT_OK((*log)->Checkpoint(record));
    QSAPI_ASSERT_OK((*log)->Checkpoint(record));
    EXPECT_EQ(calls, 1) << "an unchanged head is not recorded again";
    auto now = (*log)->VerifyNow();
    QSAPI_ASSERT_OK(now);
    EXPECT_TRUE(now->head_checked);
  }
  EXPECT_EQ(recorded_seq, 5U);
  keying.head_seq = recorded_seq;
  keying.head_mac = recorded_mac;
  QSAPI_EXPECT_OK(VerifyAuditLog(path_, &keying));

  // Cut short while qsapid is stopped: every line left still verifies, the head tells.
  std::vector<std::string> lines = Lines();
  lines.pop_back();
  Rewrite(lines);
  auto cut = VerifyAuditLog(path_, &keying);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kDataLoss);
  EXPECT_THAT(cut.error().message(), HasSubstr("ends at entry 4, but the keystore recorded entry 5"));
  // An older copy put back.
  {
    std::ofstream out(path_, std::ios::trunc | std::ios::binary);
    out << older;
  }
  auto replayed = VerifyAuditLog(path_, &keying);
  ASSERT_FALSE(replayed.ok());
  EXPECT_THAT(replayed.error().message(), HasSubstr("ends at entry 3, but the keystore recorded entry 5"));
  // The qsapid that opens it notices the same at its start-up verification.
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  (*log)->UseKeying(CopyOf(keying));
  EXPECT_EQ((*log)->VerifyNow().error().code(), ErrorCode::kDataLoss);
}

TEST_F(AuditLogTest, AKeyedLogIsContinuedOnlyWithItsKey) {
  const AuditKeying keying = TestKeying(1);
  AppendKeyed(path_, keying, 2, "admin");
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  auto refused = (*log)->Append({.who = "admin", .action = "encrypt", .result = "ok"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  log->reset();
  EXPECT_EQ(Lines().size(), 2U) << "nothing was written";
  // A torn last line is repaired with the key: the repair line carries a MAC too.
  {
    std::ofstream out(path_, std::ios::app | std::ios::binary);
    out << R"({"seq":3,"who":"ad)";
  }
  auto repaired = RepairAuditLog(path_, "cli:test", &keying);
  QSAPI_ASSERT_OK(repaired);
  std::filesystem::remove(repaired->saved_to);
  auto r = VerifyAuditLog(path_, &keying);
  QSAPI_ASSERT_OK(r);
  EXPECT_EQ(r->macs, 3U);
}

// The chain construction checked against another implementation: trails written by Python's
// hmac and hashlib (tests/data/audit/make_keyed_logs.py) verify here, and its forged line does not.
TEST_F(AuditLogTest, AnIndependentImplementationsKeyedTrailVerifies) {
  const AuditKeying keying = TestKeying(1);
  auto good = VerifyAuditLog(testing::DataPath("audit/keyed_python.log"), &keying);
  QSAPI_ASSERT_OK(good);
  EXPECT_EQ(good->macs, 3U);
  EXPECT_EQ(good->anchor_seq, 0U) << "an audit.anchor line without an anchor member names nothing";
  auto forged = VerifyAuditLog(testing::DataPath("audit/keyed_then_unkeyed.log"), &keying);
  ASSERT_FALSE(forged.ok());
  EXPECT_THAT(forged.error().message(), HasSubstr("line 4: has no MAC"));
  const AuditKeying other = TestKeying(1, 0x11);
  EXPECT_THAT(VerifyAuditLog(testing::DataPath("audit/keyed_python.log"), &other).error().message(),
              HasSubstr("line 1: its content was altered, or it was written with another key"));
}

}  // namespace
}  // namespace qsapi::server
