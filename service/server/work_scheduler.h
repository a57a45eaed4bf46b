// WorkScheduler runs the API's cryptography on a bounded pool of worker threads, apart from the
// threads that serve connections, and shares it fairly between principals:
//
//   - Admission: a principal may have at most max_pending_per_principal requests queued or
//     running, and all principals together at most max_queued queued. Past either limit Submit
//     refuses at once (the caller answers 429 with Retry-After) instead of queueing without bound.
//   - Fairness: queued jobs are taken round-robin across principals, and one principal runs at most
//     max_running_per_principal jobs at a time, so with W workers a principal flooding slow work
//     leaves the other W - max_running_per_principal workers to everyone else.
//   - Cost budgets: every principal has a token bucket of cost units (an estimate of the CPU time a
//     request takes, in microseconds; server/cost_model.h) refilled at cost_per_second up to burst.
//     Charge takes a request's cost before it runs; a principal short of budget is told how long
//     until it has enough (429 with Retry-After). A request may not cost more than
//     max_request_cost (the caller answers 413 and says how to split it).
//
// Liveness, health and metrics never come here: they are answered on the I/O threads.
//
// Thread-safe. Stop runs no job more: jobs still queued are called with cancelled = true (the
// caller answers 503), so every submitted job is called exactly once.
#ifndef QSAPI_SRC_SERVER_WORK_SCHEDULER_H_
#define QSAPI_SRC_SERVER_WORK_SCHEDULER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "qsapi/result.h"

namespace qsapi::server {

struct WorkSchedulerOptions {
  int workers = 2;
  std::size_t max_queued = 1024;
  std::size_t max_pending_per_principal = 32;
  // 0: workers - 1 (at least 1), so that one principal can never hold every worker.
  std::size_t max_running_per_principal = 0;
  double cost_per_second = 1'000'000;  // one CPU-second per second, in cost units
  double burst = 4'000'000;
  double max_request_cost = 2'000'000;
};

// A refusal says when to come back.
struct Refusal {
  Error error;
  std::chrono::milliseconds retry_after{1000};
};

class WorkScheduler {
 public:
  using Job = std::function<void(bool cancelled)>;

  // Start validates the options and starts the workers. kInvalidArgument for bad options.
  static Result<std::unique_ptr<WorkScheduler>> Start(const WorkSchedulerOptions& options);
  ~WorkScheduler();
  WorkScheduler(const WorkScheduler&) = delete;
  WorkScheduler& operator=(const WorkScheduler&) = delete;
  WorkScheduler(WorkScheduler&&) = delete;
  WorkScheduler& operator=(WorkScheduler&&) = delete;

  // Submit queues `job` for `principal`; on refusal the job is not called and not kept.
  // kResourceExhausted (over a queue limit) or kUnavailable (stopping).
  std::optional<Refusal> Submit(const std::string& principal, Job job);

  // Charge takes `cost` units from the principal's budget. kResourceExhausted with the wait until
  // the budget covers it; kInvalidArgument when cost exceeds max_request_cost (it never would).
  std::optional<Refusal> Charge(const std::string& principal, double cost);

  // Stop: see the file comment. Idempotent; joins the workers (not from a job).
  void Stop();

  struct Stats {
    std::uint64_t run = 0, refused_queue = 0, refused_budget = 0, refused_cost = 0, cancelled = 0;
    std::size_t queued = 0, running = 0;
  };
  [[nodiscard]] Stats stats() const;
  [[nodiscard]] const WorkSchedulerOptions& options() const { return options_; }

 private:
  explicit WorkScheduler(const WorkSchedulerOptions& options);
  void Work();
  // Next picks the next job (round-robin over principals under their running limit); mu_ held.
  bool Next(std::string* principal, Job* job);

  struct Principal {
    std::deque<Job> queue;
    std::size_t running = 0;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
  };

  WorkSchedulerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Principal> principals_;  // guarded by mu_
  std::string cursor_;                           // the principal served last; guarded by mu_
  std::size_t queued_ = 0, running_ = 0;         // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  Stats counts_;                                 // guarded by mu_ (queued/running unused)
  std::vector<std::thread> workers_;
};

}  // namespace qsapi::server

#endif  // QSAPI_SRC_SERVER_WORK_SCHEDULER_H_
