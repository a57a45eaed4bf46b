// AuthFailureTracker limits and aggregates failed authentications per source address, so that a
// client sending bad or missing credentials can neither fill the audit log nor hide in it:
//
//   - the first failure of a source in a window (window, 10 s by default) is written to the audit
//     log as its own line; the ones after it in the same window are only counted;
//   - when the window ends, one "authenticate.failures" line gives the source, the window, the
//     total count and the count per reason (bad token, no credentials, ...);
//   - past max_failures_per_source in one window, the source's failing requests are answered 429
//     with Retry-After (the end of its window) instead of 401; requests with valid credentials
//     from the same address are not affected (an address may be shared, behind NAT);
//   - at most max_sources sources are tracked; failures from further ones count under "other".
//
// Thread-safe.
#ifndef QSAPI_SRC_SERVER_AUTH_FAILURES_H_
#define QSAPI_SRC_SERVER_AUTH_FAILURES_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace qsapi::server {

struct AuthFailureOptions {
  std::chrono::seconds window{10};
  std::uint64_t max_failures_per_source = 100;
  std::size_t max_sources = 4096;
};

class AuthFailureTracker {
 public:
  explicit AuthFailureTracker(AuthFailureOptions options = {}) : options_(options) {}

  struct Verdict {
    bool write_line = false;  // the first failure of its source in this window: audit it alone
    bool throttled = false;   // over the limit: answer 429
    std::chrono::milliseconds retry_after{0};
  };
  // Record counts one failure of `source` ("" is "local") for `reason`.
  Verdict Record(const std::string& source, std::string_view reason);

  struct Summary {
    std::string source;
    std::int64_t window_start = 0, window_end = 0;  // unix seconds
    std::uint64_t count = 0, throttled = 0;
    std::map<std::string, std::uint64_t> reasons;
  };
  // Drain returns (and forgets) the windows that have ended, or every window when `all`.
  // Windows that saw only their first, individually written failure are dropped silently.
  std::vector<Summary> Drain(bool all);

  struct Stats {
    std::uint64_t failures = 0, throttled = 0;
    std::size_t sources = 0;
  };
  [[nodiscard]] Stats stats() const;

 private:
  struct Window {
    std::chrono::steady_clock::time_point start;
    std::int64_t wall_start = 0;
    std::uint64_t count = 0, throttled = 0;
    std::map<std::string, std::uint64_t> reasons;
  };
  AuthFailureOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Window> windows_;  // guarded by mu_
  Stats stats_;                            // guarded by mu_
};

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_AUTH_FAILURES_H_
