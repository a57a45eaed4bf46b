#include "server/work_scheduler.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "qsapi/log.h"

namespace qsapi::server {

Result<std::unique_ptr<WorkScheduler>> WorkScheduler::Start(const WorkSchedulerOptions& options) {
  if (options.workers < 1 || options.workers > 256) return InvalidArgument("workers must be 1..256");
  if (options.max_queued == 0 || options.max_pending_per_principal == 0) {
    return InvalidArgument("queue limits must be positive");
  }
  if (!(options.cost_per_second > 0) || !(options.burst > 0) || !(options.max_request_cost > 0)) {
    return InvalidArgument("cost_per_second, burst and max_request_cost must be positive");
  }
  if (options.max_request_cost > options.burst) {
    return InvalidArgument("max_request_cost may not exceed burst (such a request could never run)");
  }
  std::unique_ptr<WorkScheduler> s(new WorkScheduler(options));
  for (int i = 0; i < options.workers; ++i) s->workers_.emplace_back([p = s.get()] { p->Work(); });
  return s;
}

WorkScheduler::WorkScheduler(const WorkSchedulerOptions& options) : options_(options) {
  if (options_.max_running_per_principal == 0) {
    options_.max_running_per_principal = static_cast<std::size_t>(std::max(1, options_.workers - 1));
  }
}

WorkScheduler::~WorkScheduler() { Stop(); }

std::optional<Refusal> WorkScheduler::Submit(const std::string& principal, Job job) {
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Refusal{Unavailable("qsapid is shutting down"), std::chrono::seconds(5)};
    Principal& p = principals_[principal];
    if (p.queue.size() + p.running >= options_.max_pending_per_principal) {
      ++counts_.refused_queue;
      return Refusal{
          ResourceExhausted("\"" + principal + "\" already has " + std::to_string(options_.max_pending_per_principal) +
                            " requests queued or running; wait for some to finish"),
          std::chrono::seconds(1)};
    }
    if (queued_ >= options_.max_queued) {
      ++counts_.refused_queue;
      return Refusal{
          ResourceExhausted("the server's work queue is full (" + std::to_string(options_.max_queued) + " requests)"),
          std::chrono::seconds(1)};
    }
    p.queue.push_back(std::move(job));
    ++queued_;
  }
  cv_.notify_one();
  return std::nullopt;
}

std::optional<Refusal> WorkScheduler::Charge(const std::string& principal, double cost) {
  if (cost > options_.max_request_cost) {
    const std::lock_guard<std::mutex> lock(mu_);
    ++counts_.refused_cost;
    return Refusal{InvalidArgument("too expensive"), std::chrono::milliseconds(0)};
  }
  const auto now = std::chrono::steady_clock::now();
  const std::lock_guard<std::mutex> lock(mu_);
  Principal& p = principals_[principal];
  if (p.refilled == std::chrono::steady_clock::time_point{}) {
    p.tokens = options_.burst;
  } else {
    const double elapsed = std::chrono::duration<double>(now - p.refilled).count();
    p.tokens = std::min(options_.burst, p.tokens + elapsed * options_.cost_per_second);
  }
  p.refilled = now;
  if (p.tokens < cost) {
    ++counts_.refused_budget;
    const double wait_s = (cost - p.tokens) / options_.cost_per_second;
    const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_s * 1000.0)));
    return Refusal{ResourceExhausted("\"" + principal + "\" has used its share of the server's CPU budget"),
                   std::max(wait, std::chrono::milliseconds(1))};
  }
  p.tokens -= cost;
  return std::nullopt;
}

bool WorkScheduler::Next(std::string* principal, Job* job) {
  if (queued_ == 0 || principals_.empty()) return false;
  // Round-robin: start after the principal served last, wrap around once.
  auto it = principals_.upper_bound(cursor_);
  for (std::size_t n = 0; n < principals_.size(); ++n, ++it) {
    if (it == principals_.end()) it = principals_.begin();
    Principal& p = it->second;
    if (!p.queue.empty() && p.running < options_.max_running_per_principal) {
      *principal = it->first;
      *job = std::move(p.queue.front());
      p.queue.pop_front();
      ++p.running;
      --queued_;
      ++running_;
      cursor_ = it->first;
      return true;
    }
  }
  return false;
}

void WorkScheduler::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    std::string principal;
    Job job;
    cv_.wait(lock, [&] { return stopping_ || Next(&principal, &job); });
    if (!job) {  // stopping, nothing taken
      return;
    }
    lock.unlock();
    try {
      job(false);
    } catch (const std::exception& e) {  // a job must not take a worker with it
      Log(LogLevel::kError, "qsapid", std::string("a request failed with an exception: ") + e.what());
    }
    job = nullptr;  // release what the job holds before taking the lock
    lock.lock();
    ++counts_.run;
    --running_;
    auto it = principals_.find(principal);
    if (it != principals_.end()) {
      --it->second.running;
    }
    cv_.notify_all();  // a principal under its running limit again may have queued work
  }
}

void WorkScheduler::Stop() {
  std::vector<Job> left;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    for (auto& [name, p] : principals_) {
      for (Job& j : p.queue) left.push_back(std::move(j));
      p.queue.clear();
    }
    queued_ = 0;
    counts_.cancelled += left.size();
  }
  cv_.notify_all();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  for (Job& j : left) j(true);
}

WorkScheduler::Stats WorkScheduler::stats() const {
  const std::lock_guard<std::mutex> lock(mu_);
  Stats s = counts_;
  s.queued = queued_;
  s.running = running_;
  return s;
}

}  // namespace qsapi::server
