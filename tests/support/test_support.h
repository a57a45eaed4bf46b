// Test helpers: hex, file access under tests/data, small matchers.
#ifndef QSAPI_TESTS_SUPPORT_TEST_SUPPORT_H_
#define QSAPI_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <filesystem>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "qsapi/result.h"
#include "qsapi/secret.h"

// Which sanitizer this build runs under (GCC defines __SANITIZE_*, Clang answers __has_feature).
// Load tests skip their figures under one; memory checks that a sanitizer makes meaningless
// (mlock is intercepted, shadow memory inflates RSS) adjust to it.
#if defined(__SANITIZE_ADDRESS__)
#define QSAPI_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QSAPI_TEST_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define QSAPI_TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QSAPI_TEST_UNDER_TSAN 1
#endif
#endif

namespace qsapi::testing {

#ifdef QSAPI_TEST_UNDER_ASAN
inline constexpr bool kUnderAddressSanitizer = true;
#else
inline constexpr bool kUnderAddressSanitizer = false;
#endif
#ifdef QSAPI_TEST_UNDER_TSAN
inline constexpr bool kUnderThreadSanitizer = true;
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif
inline constexpr bool kUnderSanitizer = kUnderAddressSanitizer || kUnderThreadSanitizer;

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
