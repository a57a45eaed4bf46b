#include "wycheproof/wycheproof_harness.h"

#include <cctype>
#include <iostream>
#include <sstream>

namespace qsapi::testing::wycheproof {
namespace {

Expected ParseExpected(const nlohmann::json& test) {
  const std::string result = test.value("result", "");
  if (result == "valid") return Expected::kValid;
  if (result == "acceptable") return Expected::kAcceptable;
  if (result != "invalid") {
    ADD_FAILURE() << "unknown result \"" << result << "\"";
  }
  return Expected::kInvalid;
}

std::string_view ExpectedName(Expected e) {
  switch (e) {
    case Expected::kValid: return "valid";
    case Expected::kInvalid: return "invalid";
    case Expected::kAcceptable: return "acceptable";
  }
  return "?";
}

qsapi::Bytes HexField(const nlohmann::json& object, std::string_view key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {};
  if (!it->is_string()) {
    ADD_FAILURE() << "field \"" << key << "\" is not a hex string";
    return {};
  }
  return Hex(it->get_ref<const std::string&>());
}

// FailedParts counts the failures recorded so far in the running test, so that Run can tell which
// tcIds failed (gtest's own failure flag is cumulative).
int FailedParts() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return 0;
  const ::testing::TestResult* result = info->result();
  int failed = 0;
  for (int i = 0; i < result->total_part_count(); ++i) {
    if (result->GetTestPartResult(i).failed()) ++failed;
  }
  return failed;
}

}  // namespace

TestCase::TestCase(const nlohmann::json& group, const nlohmann::json& test)
    : group_(group), test_(test), tc_id_(test.value("tcId", -1)), expected_(ParseExpected(test)) {}

bool TestCase::HasFlag(std::string_view flag) const {
  const auto it = test_.find("flags");
  if (it == test_.end() || !it->is_array()) return false;
  for (const auto& f : *it) {
    if (f.is_string() && f.get_ref<const std::string&>() == flag) return true;
  }
  return false;
}

bool TestCase::Has(std::string_view key) const {
  const auto it = test_.find(key);
  return it != test_.end() && !it->is_null();
}

qsapi::Bytes TestCase::Bytes(std::string_view key) const { return HexField(test_, key); }
qsapi::Bytes TestCase::GroupBytes(std::string_view key) const { return HexField(group_, key); }

std::string TestCase::Describe() const {
  std::ostringstream out;
  out << "tcId " << tc_id_ << " (" << ExpectedName(expected_) << ")";
  if (const auto it = test_.find("flags"); it != test_.end() && it->is_array() && !it->empty()) {
    out << " [";
    bool first = true;
    for (const auto& f : *it) {
      out << (first ? "" : ", ") << f.get<std::string>();
      first = false;
    }
    out << "]";
  }
  if (const std::string comment = test_.value("comment", ""); !comment.empty()) out << " " << comment;
  return out.str();
}

TestVectorFile TestVectorFile::Load(std::string_view name) {
  TestVectorFile file;
  file.name_ = std::string(name);
  const std::string text = ReadFile(DataPath("wycheproof/" + file.name_));
  file.json_ = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (file.json_.is_discarded() || !file.json_.is_object()) {
    ADD_FAILURE() << file.name_ << " is not a JSON object";
    file.json_ = nlohmann::json::object();
  }
  return file;
}

std::string TestVectorFile::algorithm() const { return json_.value("algorithm", ""); }

RunSummary TestVectorFile::Run(const CaseRunner& runner) const {
  RunSummary summary;
  if (const auto it = json_.find("numberOfTests"); it != json_.end() && it->is_number_integer()) {
    summary.declared = it->get<int>();
  }
  const auto groups = json_.find("testGroups");
  if (groups == json_.end() || !groups->is_array()) {
    ADD_FAILURE() << name_ << " has no testGroups";
    return summary;
  }
  for (const auto& group : *groups) {
    const auto tests = group.find("tests");
    if (tests == group.end() || !tests->is_array()) {
      ADD_FAILURE() << name_ << ": a group without tests";
      continue;
    }
    for (const auto& test : *tests) {
      const TestCase tc(group, test);
      SCOPED_TRACE(name_ + " " + tc.Describe());
      ++summary.seen;
      switch (tc.expected()) {
        case Expected::kValid: ++summary.valid; break;
        case Expected::kInvalid: ++summary.invalid; break;
        case Expected::kAcceptable: ++summary.acceptable; break;
      }
      const int failed_before = FailedParts();
      const bool executed = runner(tc);
      if (executed) {
        ++summary.executed;
      } else {
        ADD_FAILURE() << "the runner does not handle this test";
      }
      if (FailedParts() != failed_before) summary.failed_tc_ids.push_back(tc.tc_id());
    }
  }
  std::cout << "[wycheproof] " << name_ << ": " << summary.executed << "/" << summary.declared
            << " tests executed (valid " << summary.valid << ", invalid " << summary.invalid << ", acceptable "
            << summary.acceptable << "), " << summary.failed_tc_ids.size() << " failed";
  if (!summary.failed_tc_ids.empty()) {
    std::cout << ": tcId";
    for (const int id : summary.failed_tc_ids) std::cout << " " << id;
  }
  std::cout << "\n";
  return summary;
}

std::string ParamName(std::string_view file) {
  std::string name(file.substr(0, file.rfind(".json")));
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

void ExpectAllExecuted(const RunSummary& summary) {
  EXPECT_GT(summary.declared, 0) << "numberOfTests is missing";
  EXPECT_EQ(summary.seen, summary.declared) << "the file holds a different number of tests than it declares";
  EXPECT_EQ(summary.executed, summary.declared) << "some tests were not executed";
  EXPECT_TRUE(summary.failed_tc_ids.empty()) << summary.failed_tc_ids.size() << " tests failed";
}

}  // namespace qsapi::testing::wycheproof
