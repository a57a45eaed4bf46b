// A data-driven harness for Wycheproof test vectors (C2SP/wycheproof, testvectors_v1 schema), in the
// spirit of Tink's ReadWycheproofTestVectors and BoringSSL's FileTest.
//
// A file holds testGroups[].tests[]; every test has a tcId, a result (valid, invalid or acceptable)
// and flags. The harness loads a file from tests/data/wycheproof/, hands every test of every group
// to a callback under a SCOPED_TRACE naming its tcId, and counts the tests the callback reports as
// executed through qsapi's API. A test asserts that count equals the file's numberOfTests, so a
// group the callback does not understand (and returns false for) fails the test instead of being
// skipped silently.
#ifndef QSAPI_TESTS_WYCHEPROOF_WYCHEPROOF_HARNESS_H_
#define QSAPI_TESTS_WYCHEPROOF_WYCHEPROOF_HARNESS_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qsapi/secret.h"
#include "support/test_support.h"

namespace qsapi::testing::wycheproof {

// Expected is a test's "result" field.
enum class Expected { kValid, kInvalid, kAcceptable };

// TestCase is one entry of tests[], with its group.
class TestCase {
 public:
  TestCase(const nlohmann::json& group, const nlohmann::json& test);

  [[nodiscard]] const nlohmann::json& group() const noexcept { return group_; }
  [[nodiscard]] const nlohmann::json& test() const noexcept { return test_; }
  [[nodiscard]] int tc_id() const noexcept { return tc_id_; }
  [[nodiscard]] Expected expected() const noexcept { return expected_; }
  [[nodiscard]] bool valid() const noexcept { return expected_ == Expected::kValid; }
  [[nodiscard]] bool invalid() const noexcept { return expected_ == Expected::kInvalid; }
  [[nodiscard]] bool acceptable() const noexcept { return expected_ == Expected::kAcceptable; }

  [[nodiscard]] bool HasFlag(std::string_view flag) const;
  // Has reports whether the test has field `key` with a non-null value.
  [[nodiscard]] bool Has(std::string_view key) const;
  // Bytes decodes the hex field `key` of the test; an absent or null field is empty (Wycheproof
  // omits an empty context, for instance). Fails the test when the field is not a string.
  [[nodiscard]] qsapi::Bytes Bytes(std::string_view key) const;
  // GroupBytes is Bytes for a field of the group.
  [[nodiscard]] qsapi::Bytes GroupBytes(std::string_view key) const;

  // Describe is what the SCOPED_TRACE shows: "tcId 12 (invalid) [ModifiedTag] comment".
  [[nodiscard]] std::string Describe() const;

 private:
  const nlohmann::json& group_;
  const nlohmann::json& test_;
  int tc_id_ = -1;
  Expected expected_ = Expected::kInvalid;
};

// RunSummary says what happened to a file's tests.
struct RunSummary {
  int declared = -1;  // numberOfTests
  int seen = 0;       // tests found in testGroups[].tests[]
  int executed = 0;   // tests the callback ran through the API (it returned true)
  int valid = 0;
  int invalid = 0;
  int acceptable = 0;
  std::vector<int> failed_tc_ids;  // tests during which a failure was recorded
};

// A CaseRunner checks one test through qsapi's API and returns whether it did (false: it does not
// know this kind of test, which the count check then reports).
using CaseRunner = std::function<bool(const TestCase&)>;

// TestVectorFile is one parsed Wycheproof file.
class TestVectorFile {
 public:
  // Load parses tests/data/wycheproof/<name>; on failure it records a test failure and the file
  // has no tests (so the count check fails too).
  static TestVectorFile Load(std::string_view name);

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const nlohmann::json& json() const noexcept { return json_; }
  [[nodiscard]] std::string algorithm() const;

  // Run hands every test to `runner` (under SCOPED_TRACE) and returns what happened. It also
  // prints a one-line summary, and the tcIds of failing tests, to stdout.
  RunSummary Run(const CaseRunner& runner) const;

 private:
  std::string name_;
  nlohmann::json json_;
};

// ExpectAllExecuted checks that every test the file declares was found and executed.
void ExpectAllExecuted(const RunSummary& summary);

// ParamName turns a file name into a gtest parameter name: "aes_gcm_test.json" -> "aes_gcm_test".
std::string ParamName(std::string_view file);

// HexOf is ToHex for readable EXPECT_EQ diffs of byte strings.
inline std::string HexOf(ByteView bytes) { return ToHex(bytes); }

}  // namespace qsapi::testing::wycheproof

#endif  // QSAPI_TESTS_WYCHEPROOF_WYCHEPROOF_HARNESS_H_
