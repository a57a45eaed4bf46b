// WorkScheduler: admission limits, round-robin fairness between principals, the running limit that
// keeps a worker free for others, cost budgets, and Stop answering what is still queued.
#include "server/work_scheduler.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <gmock/gmock.h>

namespace qsapi::server {
namespace {

using namespace std::chrono_literals;

TEST(WorkSchedulerTest, ABusyPrincipalLeavesAWorkerForOthers) {
  auto s = WorkScheduler::Start({.workers = 2, .max_queued = 100, .max_pending_per_principal = 50});
  ASSERT_TRUE(s.ok());
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> flood_running{0}, flood_max{0};
  for (int i = 0; i < 10; ++i) {  // "flood" queues ten slow jobs
    ASSERT_FALSE((*s)->Submit("flood", [&, gate](bool) {
      const int now = ++flood_running;
      flood_max = std::max(flood_max.load(), now);
      gate.wait();
      --flood_running;
    }));
  }
  std::promise<void> other_ran;
  ASSERT_FALSE((*s)->Submit("other", [&](bool) { other_ran.set_value(); }));
  // The other principal's job runs while the flood's first job still holds its worker.
  EXPECT_EQ(other_ran.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(flood_max.load(), 1);  // workers - 1
  release.set_value();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((*s)->stats().run < 11U && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_EQ((*s)->stats().run, 11U);
  EXPECT_EQ(flood_max.load(), 1) << "never more than workers - 1 at once";
  (*s)->Stop();
}

TEST(WorkSchedulerTest, QueueLimitsRefuseAtOnce) {
  auto s = WorkScheduler::Start({.workers = 1, .max_queued = 3, .max_pending_per_principal = 2});
  ASSERT_TRUE(s.ok());
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  const auto slow = [gate](bool) { gate.wait(); };
  std::promise<void> started;
  EXPECT_FALSE((*s)->Submit("a", [&started, gate](bool) {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();  // "a" runs one and may queue one more
  EXPECT_FALSE((*s)->Submit("a", slow));
  auto refused = (*s)->Submit("a", slow);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error.code(), ErrorCode::kResourceExhausted);
  EXPECT_GE(refused->retry_after, 1s);
  EXPECT_FALSE((*s)->Submit("b", slow));
  EXPECT_FALSE((*s)->Submit("c", slow));
  EXPECT_TRUE((*s)->Submit("d", slow)) << "max_queued counts every principal";
  release.set_value();
  (*s)->Stop();
}

TEST(WorkSchedulerTest, BudgetsRefillAndSayWhenToComeBack) {
  auto s =
      WorkScheduler::Start({.workers = 1, .cost_per_second = 1'000'000, .burst = 500'000, .max_request_cost = 400'000});
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE((*s)->Charge("a", 400'000));
  auto short_of = (*s)->Charge("a", 400'000);  // 100 ms left: 300 ms to wait
  ASSERT_TRUE(short_of);
  EXPECT_EQ(short_of->error.code(), ErrorCode::kResourceExhausted);
  EXPECT_GE(short_of->retry_after, 250ms);
  EXPECT_LE(short_of->retry_after, 310ms);
  EXPECT_FALSE((*s)->Charge("b", 400'000)) << "budgets are per principal";
  auto too_big = (*s)->Charge("a", 400'001);
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->error.code(), ErrorCode::kInvalidArgument);
  std::this_thread::sleep_for(350ms);  // the refill is by time: nothing to await but the clock
  EXPECT_FALSE((*s)->Charge("a", 400'000));
  EXPECT_FALSE(WorkScheduler::Start({.burst = 1, .max_request_cost = 2}).ok());
}

TEST(WorkSchedulerTest, StopAnswersWhatIsStillQueued) {
  auto s = WorkScheduler::Start({.workers = 1});
  ASSERT_TRUE(s.ok());
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  ASSERT_FALSE((*s)->Submit("a", [&, gate](bool) {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();
  std::atomic<int> cancelled{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE((*s)->Submit("b", [&](bool c) { cancelled += c ? 1 : 0; }));
  }
  std::thread stopper([&] { (*s)->Stop(); });
  std::this_thread::sleep_for(50ms);
  release.set_value();
  stopper.join();
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_TRUE((*s)->Submit("c", [](bool) {}));
}

}  // namespace
}  // namespace qsapi::server
