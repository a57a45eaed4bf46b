#include "server/auth_failures.h"

namespace qsapi::server {
namespace {

std::int64_t WallNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

AuthFailureTracker::Verdict AuthFailureTracker::Record(const std::string& source, std::string_view reason) {
  const auto now = std::chrono::steady_clock::now();
  const std::lock_guard<std::mutex> lock(mu_);
  ++stats_.failures;
  std::string key = source.empty() ? "local" : source;
  if (windows_.find(key) == windows_.end() && windows_.size() >= options_.max_sources) key = "other";
  auto [it, fresh] = windows_.try_emplace(key);
  Window& w = it->second;
  if (fresh || now - w.start >= options_.window) {
    // A window that ended but was not drained yet keeps its counts until Drain; start over only
    // when it saw nothing but its first line (nothing is lost), else count into it.
    if (fresh || w.count <= 1) {
      w = Window{};
      w.start = now;
      w.wall_start = WallNow();
      fresh = true;
    }
  }
  ++w.count;
  ++w.reasons[std::string(reason)];
  Verdict v;
  v.write_line = fresh;
  if (w.count > options_.max_failures_per_source) {
    ++w.throttled;
    ++stats_.throttled;
    v.throttled = true;
    const auto end = w.start + options_.window;
    v.retry_after =
        std::max(std::chrono::milliseconds(1000), std::chrono::duration_cast<std::chrono::milliseconds>(end - now));
  }
  stats_.sources = windows_.size();
  return v;
}

std::vector<AuthFailureTracker::Summary> AuthFailureTracker::Drain(bool all) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<Summary> out;
  const std::lock_guard<std::mutex> lock(mu_);
  for (auto it = windows_.begin(); it != windows_.end();) {
    const Window& w = it->second;
    if (!all && now - w.start < options_.window) {
      ++it;
      continue;
    }
    if (w.count > 1) {
      Summary s;
      s.source = it->first;
      s.window_start = w.wall_start;
      s.window_end = std::max(w.wall_start, WallNow());
      s.count = w.count;
      s.throttled = w.throttled;
      s.reasons = w.reasons;
      out.push_back(std::move(s));
    }
    it = windows_.erase(it);
  }
  stats_.sources = windows_.size();
  return out;
}

AuthFailureTracker::Stats AuthFailureTracker::stats() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace qsapi::server
