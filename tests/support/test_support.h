// Test helpers: hex, file access under tests/data, small matchers.
#ifndef QSAPI_TESTS_SUPPORT_TEST_SUPPORT_H_
#define QSAPI_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <filesystem>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "qsapi/result.h"
#include "qsapi/secret.h"

namespace qsapi::testing {

// Hex decodes a hex string (no separators); aborts the test on malformed input.
Bytes Hex(std::string_view hex);
// ToHex encodes bytes as lowercase hex.
std::string ToHex(ByteView bytes);

// DataPath returns tests/data/<relative>.
std::filesystem::path DataPath(std::string_view relative);
// ReadFile returns a file's contents; fails the test when it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace qsapi::testing

// ASSERT_OK / EXPECT_OK for Result and Status, printing the error.
#define QSAPI_ASSERT_OK(expr)                                                   \
  do {                                                                          \
    const auto& qsapi_r_ = (expr);                                              \
    ASSERT_TRUE(qsapi_r_.ok()) << #expr << ": " << qsapi_r_.error().ToString(); \
  } while (false)
#define QSAPI_EXPECT_OK(expr)                                                   \
  do {                                                                          \
    const auto& qsapi_r_ = (expr);                                              \
    EXPECT_TRUE(qsapi_r_.ok()) << #expr << ": " << qsapi_r_.error().ToString(); \
  } while (false)

#endif  // QSAPI_TESTS_SUPPORT_TEST_SUPPORT_H_
