// Helpers of the qkd tests: clients for the simulator's SAEs, and a log capture.
#ifndef QSAPI_TESTS_QKD_QKD_TEST_UTIL_H_
#define QSAPI_TESTS_QKD_QKD_TEST_UTIL_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "qsapi/log.h"
#include "qsapi/qkd/etsi014.h"

namespace qsapi::testing {

// FastOptions: timeouts and backoff short enough for tests, long enough for a loaded 2-core box.
inline qkd::Etsi014ClientOptions FastOptions(const std::string& url, const std::string& ca, const std::string& cert,
                                             const std::string& key) {
  qkd::Etsi014ClientOptions o;
  o.kme_url = url;
  o.ca_file = ca;
  o.certificate_file = cert;
  o.private_key_file = key;
  o.connect_timeout = std::chrono::milliseconds(3000);
  o.request_timeout = std::chrono::milliseconds(3000);
  o.total_timeout = std::chrono::milliseconds(8000);
  o.initial_backoff = std::chrono::milliseconds(10);
  o.max_backoff = std::chrono::milliseconds(40);
  return o;
}

inline std::unique_ptr<qkd::Etsi014Client> MakeClient(const qkd::Etsi014ClientOptions& o) {
  auto c = qkd::Etsi014Client::Create(o);
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// LogCapture collects every log line while it lives.
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](LogLevel level, std::string_view component, std::string_view message) {
      std::lock_guard lock(mu_);
      lines_.push_back(std::string(LogLevelName(level)) + " " + std::string(component) + ": " + std::string(message));
    });
  }
  ~LogCapture() { SetLogSink({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  std::size_t Count(const std::string& needle) {
    std::size_t n = 0;
    for (const auto& l : Lines()) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace qsapi::testing

#endif  // QSAPI_TESTS_QKD_QKD_TEST_UTIL_H_
