// WorkQueue and Controller: dedupe, per-key exclusion, dirty re-adds, backoff, AddAfter, shutdown.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "fake_clock.h"
#include "wait_for.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/workqueue.h"

namespace stratus::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing_env::WaitFor;

TEST(RuntimeWorkQueueTest, DedupesQueuedKeys) {
  WorkQueue q;
  q.Add("default/a");
  q.Add("default/a");
  q.Add("default/b");
  q.Add("default/a");
  EXPECT_EQ(q.Len(), 2u);
  auto k1 = q.Get();
  auto k2 = q.Get();
  ASSERT_TRUE(k1 && k2);
  EXPECT_EQ(*k1, "default/a");
  EXPECT_EQ(*k2, "default/b");
  EXPECT_EQ(q.Len(), 0u);
  q.Done(*k1);
  q.Done(*k2);
  EXPECT_EQ(q.Len(), 0u);
}

// Keys handed out by a worker thread calling Get, observable without sleeping.
class Taker {
 public:
  Taker(WorkQueue* q, int n) : thread_([this, q, n] {
    for (int i = 0; i < n; ++i) {
      auto k = q->Get();
      std::lock_guard lock(mu_);
      keys_.push_back(k.value_or("<shutdown>"));
      cv_.notify_all();
      if (!k) return;
    }
  }) {}
  ~Taker() { thread_.join(); }
  // Waits (bounded, in real time) until `n` keys were taken.
  bool WaitForTaken(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return keys_.size() >= n; });
  }
  std::vector<std::string> Keys() {
    std::lock_guard lock(mu_);
    return keys_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> keys_;
  std::thread thread_;
};

TEST(RuntimeWorkQueueTest, ReAddWhileProcessingRunsAgainAfterDone) {
  testing::FakeClock clock;
  WorkQueue q({}, &clock);
  // A far-off delayed key makes an idle Get wait on the clock, where the test can see that it waits.
  q.AddAfter("far", 1h);
  q.Add("k");
  auto k = q.Get();
  ASSERT_TRUE(k);
  q.Add("k");  // dirty while processing: not handed out now
  q.Add("k");
  EXPECT_EQ(q.Len(), 0u);
  {
    Taker second(&q, 1);
    // The second worker looked at the queue, found nothing it may take, and went to sleep.
    ASSERT_TRUE(clock.WaitForWaiters(1));
    EXPECT_TRUE(second.Keys().empty()) << "the same key must not be handed to a second worker";
    q.Done("k");
    ASSERT_TRUE(second.WaitForTaken(1));
    EXPECT_EQ(second.Keys(), std::vector<std::string>{"k"});
  }
  q.Done("k");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(RuntimeWorkQueueTest, DoneWithoutReAddDoesNotRequeue) {
  WorkQueue q;
  q.Add("k");
  auto k = q.Get();
  q.Done(*k);
  EXPECT_EQ(q.Len(), 0u);
}

TEST(RuntimeWorkQueueTest, NoConcurrentProcessingOfOneKeyWithFourWorkers) {
  WorkQueue q;
  constexpr int kKeys = 5;
  std::array<std::atomic<int>, kKeys> in_flight{};
  std::array<std::atomic<int>, kKeys> runs{};
  std::atomic<int> violations{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto k = q.Get()) {
        int i = std::stoi(*k);
        if (in_flight[i].fetch_add(1) != 0) violations++;
        runs[i]++;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        in_flight[i].fetch_sub(1);
        q.Done(*k);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&, p] {
      for (int n = 0; n < 2000 && !stop; ++n) {
        q.Add(std::to_string((n + p) % kKeys));
        if (n % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  }
  for (auto& t : producers) t.join();
  // Let the queue drain, then stop.
  EXPECT_TRUE(WaitFor([&] { return q.Len() == 0; }, 10s));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(violations.load(), 0);
  for (int i = 0; i < kKeys; ++i) EXPECT_GT(runs[i].load(), 0) << "key " << i;
}

TEST(RuntimeWorkQueueTest, BackoffGrowsExponentiallyAndIsCapped) {
  testing::FakeClock clock;
  BackoffPolicy p;
  p.base = 20ms;
  p.cap = 160ms;
  WorkQueue q(p, &clock);
  const std::chrono::milliseconds expected[] = {20ms, 40ms, 80ms, 160ms, 160ms, 160ms};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(q.NumRequeues("k"), i);
    q.AddRateLimited("k");
    clock.Advance(expected[i] - 1ms);
    EXPECT_EQ(q.Len(), 0u) << "attempt " << i << " ready before its backoff of " << expected[i].count() << " ms";
    clock.Advance(1ms);
    EXPECT_EQ(q.Len(), 1u) << "attempt " << i << " not ready after its backoff of " << expected[i].count() << " ms";
    auto k = q.Get();
    ASSERT_TRUE(k);
    q.Done(*k);
  }
  q.Forget("k");
  EXPECT_EQ(q.NumRequeues("k"), 0);
  q.AddRateLimited("k");
  clock.Advance(19ms);
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(1ms);
  EXPECT_EQ(q.Len(), 1u) << "Forget starts the backoff again from its base";
}

TEST(RuntimeWorkQueueTest, BackoffDoesNotOverflowAfterManyFailures) {
  testing::FakeClock clock;
  BackoffPolicy p;
  p.base = 1ms;
  p.cap = 8ms;
  WorkQueue q(p, &clock);
  for (int i = 0; i < 100; ++i) {
    q.AddRateLimited("k");
    clock.Advance(8ms);
    ASSERT_EQ(q.Len(), 1u) << "failure " << i << ": the backoff went past its cap";
    auto k = q.Get();
    ASSERT_TRUE(k);
    q.Done(*k);
  }
  EXPECT_EQ(q.NumRequeues("k"), 100);
  q.AddRateLimited("k");
  clock.Advance(7ms);
  EXPECT_EQ(q.Len(), 0u) << "the capped backoff collapsed (overflow?)";
  clock.Advance(1ms);
  EXPECT_EQ(q.Len(), 1u);
}

// AddAfter(5s) is not delivered before 5 s, and is after; a sleeping worker wakes when the time comes.
TEST(RuntimeWorkQueueTest, AddAfterDelaysTheKey) {
  testing::FakeClock clock;
  WorkQueue q({}, &clock);
  const auto start = clock.Now();
  q.AddAfter("later", 5s);
  q.AddAfter("soon", 1s);
  EXPECT_EQ(q.Len(), 0u);
  Taker worker(&q, 2);
  ASSERT_TRUE(clock.WaitForWaiterDueBy(start + 1s));
  EXPECT_EQ(clock.NextDeadline(), start + 1s) << "the worker sleeps until the earliest key is due";
  clock.Advance(999ms);
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_TRUE(worker.Keys().empty()) << "delivered before its delay";
  clock.Advance(1ms);
  ASSERT_TRUE(worker.WaitForTaken(1));
  EXPECT_EQ(worker.Keys(), std::vector<std::string>{"soon"});
  ASSERT_TRUE(clock.WaitForWaiterDueBy(start + 5s));
  EXPECT_EQ(clock.NextDeadline(), start + 5s);
  clock.Advance(3900ms);
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(worker.Keys().size(), 1u) << "\"later\" delivered at 4.9 s";
  clock.Advance(200ms);
  ASSERT_TRUE(worker.WaitForTaken(2));
  EXPECT_EQ(worker.Keys(), (std::vector<std::string>{"soon", "later"}));
}

TEST(RuntimeWorkQueueTest, AddAfterKeepsTheEarlierSchedule) {
  testing::FakeClock clock;
  WorkQueue q({}, &clock);
  q.AddAfter("k", 40ms);
  q.AddAfter("k", 5s);  // a later schedule does not postpone the earlier one
  q.AddAfter("j", 5s);
  q.AddAfter("j", 40ms);  // an earlier one replaces the later one
  clock.Advance(39ms);
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(1ms);
  EXPECT_EQ(q.Len(), 2u);
  for (int i = 0; i < 2; ++i) {
    auto k = q.Get();
    ASSERT_TRUE(k);
    q.Done(*k);
  }
  clock.Advance(1h);
  EXPECT_EQ(q.Len(), 0u) << "a superseded schedule delivered the key a second time";
}

TEST(RuntimeWorkQueueTest, ShutDownUnblocksGet) {
  testing::FakeClock clock;
  WorkQueue q({}, &clock);
  std::atomic<int> returned{0};
  std::vector<std::thread> ts;
  q.AddAfter("x", 10s);  // a delayed key must not keep anyone waiting either
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&] {
      auto k = q.Get();
      if (!k) returned++;
    });
  }
  ASSERT_TRUE(clock.WaitForWaiters(3)) << "every worker sleeps until the delayed key is due";
  q.ShutDown();
  EXPECT_TRUE(WaitFor([&] { return returned.load() == 3; }));
  for (auto& t : ts) t.join();
  EXPECT_EQ(clock.Waiters(), 0u);
  q.Add("y");
  EXPECT_FALSE(q.Get().has_value());
}

// --- Controller ---------------------------------------------------------------------------------------------

class ScriptedReconciler : public Reconciler {
 public:
  std::vector<WatchSpec> Watches() override { return {}; }  // wired by hand in these tests
  std::string Name() const override { return "scripted"; }
  std::vector<const Informer*> Reads() const override { return {}; }
  StatusOr<Result> Reconcile(const std::string& key) override {
    int n;
    {
      std::lock_guard lock(mu);
      n = ++calls[key];
    }
    {
      std::lock_guard lock(mu);
      if (in_flight[key]++ != 0) violations++;
    }
    std::this_thread::sleep_for(1ms);
    {
      std::lock_guard lock(mu);
      in_flight[key]--;
    }
    if (key == "fail" && n < 3) return Status(Code::kUnavailable, "not yet");
    if (key == "requeue" && n < 3) return Result::After(30ms);
    return Result::Done();
  }
  int Calls(const std::string& k) {
    std::lock_guard lock(mu);
    return calls[k];
  }
  std::mutex mu;
  std::map<std::string, int> calls;
  std::map<std::string, int> in_flight;
  std::atomic<int> violations{0};
};

TEST(RuntimeControllerTest, RetriesFailuresWithBackoff) {
  testing::FakeClock clock;
  ScriptedReconciler rec;
  BackoffPolicy p;
  p.base = 10ms;
  p.cap = 50ms;
  Controller c(&rec, 4, p, &clock);
  c.Start();
  for (int i = 0; i < 50; ++i) {
    c.queue().Add("a");
    c.queue().Add("b");
  }
  const auto t0 = clock.Now();
  c.queue().Add("fail");  // fails twice, then succeeds
  ASSERT_TRUE(WaitFor([&] { return rec.Calls("fail") == 1; }));
  ASSERT_TRUE(clock.WaitForWaiterDueBy(t0 + 10ms));
  EXPECT_EQ(clock.NextDeadline(), t0 + 10ms) << "the first retry waits 10 ms";
  clock.Advance(9ms);
  EXPECT_EQ(rec.Calls("fail"), 1) << "retried before its backoff";
  clock.Advance(1ms);
  ASSERT_TRUE(WaitFor([&] { return rec.Calls("fail") == 2; }));
  ASSERT_TRUE(clock.WaitForWaiterDueBy(t0 + 30ms));
  EXPECT_EQ(clock.NextDeadline(), t0 + 30ms) << "the second retry waits 20 ms";
  clock.Advance(19ms);
  EXPECT_EQ(rec.Calls("fail"), 2) << "retried before its doubled backoff";
  clock.Advance(1ms);
  ASSERT_TRUE(WaitFor([&] { return rec.Calls("fail") == 3; }));
  EXPECT_TRUE(WaitFor([&] { return c.queue().NumRequeues("fail") == 0; })) << "success forgets the backoff";
  EXPECT_TRUE(WaitFor([&] { return clock.Waiters() == 0; })) << "nothing is scheduled after the success";
  clock.Advance(1h);
  c.Stop();
  EXPECT_EQ(rec.violations.load(), 0);
  EXPECT_EQ(rec.Calls("fail"), 3);
  EXPECT_GE(rec.Calls("a"), 1);
  EXPECT_GE(rec.Calls("b"), 1);
}

TEST(RuntimeControllerTest, HonoursRequeueAfter) {
  testing::FakeClock clock;
  ScriptedReconciler rec;
  Controller c(&rec, 2, {}, &clock);
  c.Start();
  const auto t0 = clock.Now();
  c.queue().Add("requeue");  // asks to run again after 30 ms, twice
  ASSERT_TRUE(WaitFor([&] { return rec.Calls("requeue") == 1; }));
  ASSERT_TRUE(clock.WaitForWaiterDueBy(t0 + 30ms));
  EXPECT_EQ(clock.NextDeadline(), t0 + 30ms);
  clock.Advance(29ms);
  EXPECT_EQ(rec.Calls("requeue"), 1) << "ran again before its requeue delay";
  clock.Advance(1ms);
  ASSERT_TRUE(WaitFor([&] { return rec.Calls("requeue") == 2; }));
  ASSERT_TRUE(clock.WaitForWaiterDueBy(t0 + 60ms));
  EXPECT_EQ(clock.NextDeadline(), t0 + 60ms);
  clock.Advance(30ms);
  ASSERT_TRUE(WaitFor([&] { return rec.Calls("requeue") == 3; }));
  EXPECT_TRUE(WaitFor([&] { return clock.Waiters() == 0; })) << "Result::Done schedules nothing";
  clock.Advance(1h);
  c.Stop();
  EXPECT_EQ(rec.Calls("requeue"), 3);
  EXPECT_EQ(c.queue().NumRequeues("requeue"), 0);
}

TEST(RuntimeControllerTest, StopIsPromptAndIdempotent) {
  testing::FakeClock clock;
  ScriptedReconciler rec;
  Controller c(&rec, 2, {}, &clock);
  c.Start();
  c.queue().AddAfter("a", 60s);
  ASSERT_TRUE(clock.WaitForWaiters(2)) << "both workers sleep until the delayed key is due";
  auto start = Clock::now();
  c.Stop();
  c.Stop();
  EXPECT_LT(Clock::now() - start, 2s);
}

}  // namespace
}  // namespace stratus::runtime
