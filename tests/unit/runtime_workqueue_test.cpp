// WorkQueue and Controller: dedupe, per-key exclusion, dirty re-adds, backoff, AddAfter, shutdown.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "stratus/runtime/controller.h"
#include "stratus/runtime/workqueue.h"

namespace stratus::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

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

TEST(RuntimeWorkQueueTest, ReAddWhileProcessingRunsAgainAfterDone) {
  WorkQueue q;
  q.Add("k");
  auto k = q.Get();
  ASSERT_TRUE(k);
  q.Add("k");  // dirty while processing: not handed out now
  q.Add("k");
  EXPECT_EQ(q.Len(), 0u);
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto again = q.Get();
    got = again.has_value() && *again == "k";
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(got.load()) << "the same key must not be handed to a second worker";
  q.Done("k");
  t.join();
  EXPECT_TRUE(got.load());
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
  auto deadline = Clock::now() + 10s;
  while (q.Len() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(20ms);
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(violations.load(), 0);
  for (int i = 0; i < kKeys; ++i) EXPECT_GT(runs[i].load(), 0) << "key " << i;
}

TEST(RuntimeWorkQueueTest, BackoffGrowsExponentiallyAndIsCapped) {
  BackoffPolicy p;
  p.base = 20ms;
  p.cap = 160ms;
  WorkQueue q(p);
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(q.NumRequeues("k"), i);
    auto start = Clock::now();
    q.AddRateLimited("k");
    auto k = q.Get();
    ASSERT_TRUE(k);
    delays.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start));
    q.Done(*k);
  }
  // Expected: 20, 40, 80, 160, 160, 160 ms (coarse: never early, and not wildly late).
  const int expected[] = {20, 40, 80, 160, 160, 160};
  for (int i = 0; i < 6; ++i) {
    EXPECT_GE(delays[i].count(), expected[i] - 2) << "attempt " << i;
    EXPECT_LT(delays[i].count(), expected[i] + 1000) << "attempt " << i;
  }
  EXPECT_GE(delays[2].count(), 2 * delays[0].count() - 5);
  q.Forget("k");
  EXPECT_EQ(q.NumRequeues("k"), 0);
  auto start = Clock::now();
  q.AddRateLimited("k");
  ASSERT_TRUE(q.Get());
  EXPECT_LT(Clock::now() - start, 20ms + 1000ms);
}

TEST(RuntimeWorkQueueTest, BackoffDoesNotOverflowAfterManyFailures) {
  BackoffPolicy p;
  p.base = 1ms;
  p.cap = 8ms;
  WorkQueue q(p);
  for (int i = 0; i < 100; ++i) {
    q.AddRateLimited("k");
    auto k = q.Get();
    ASSERT_TRUE(k);
    q.Done(*k);
  }
  EXPECT_EQ(q.NumRequeues("k"), 100);
  auto start = Clock::now();
  q.AddRateLimited("k");
  ASSERT_TRUE(q.Get());
  auto took = Clock::now() - start;
  EXPECT_GE(took, 7ms);
  EXPECT_LT(took, 2s);
}

TEST(RuntimeWorkQueueTest, AddAfterDelaysTheKey) {
  WorkQueue q;
  auto start = Clock::now();
  q.AddAfter("later", 150ms);
  q.AddAfter("soon", 30ms);
  EXPECT_EQ(q.Len(), 0u);
  auto first = q.Get();
  auto t1 = Clock::now() - start;
  auto second = q.Get();
  auto t2 = Clock::now() - start;
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, "soon");
  EXPECT_EQ(*second, "later");
  EXPECT_GE(t1, 29ms);
  EXPECT_GE(t2, 149ms);
  EXPECT_LT(t2, 3s);
}

TEST(RuntimeWorkQueueTest, AddAfterKeepsTheEarlierSchedule) {
  WorkQueue q;
  auto start = Clock::now();
  q.AddAfter("k", 40ms);
  q.AddAfter("k", 5s);  // later schedule does not postpone the earlier one
  auto k = q.Get();
  ASSERT_TRUE(k);
  EXPECT_LT(Clock::now() - start, 3s);
  q.Done(*k);
}

TEST(RuntimeWorkQueueTest, ShutDownUnblocksGet) {
  WorkQueue q;
  std::atomic<int> returned{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&] {
      auto k = q.Get();
      if (!k) returned++;
    });
  }
  q.AddAfter("x", 10s);  // a delayed key must not keep anyone waiting either
  std::this_thread::sleep_for(50ms);
  auto start = Clock::now();
  q.ShutDown();
  for (auto& t : ts) t.join();
  EXPECT_EQ(returned.load(), 3);
  EXPECT_LT(Clock::now() - start, 2s);
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

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5000ms) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

TEST(RuntimeControllerTest, RetriesFailuresAndHonoursRequeueAfter) {
  ScriptedReconciler rec;
  BackoffPolicy p;
  p.base = 10ms;
  p.cap = 50ms;
  Controller c(&rec, 4, p);
  c.Start();
  for (int i = 0; i < 50; ++i) {
    c.queue().Add("a");
    c.queue().Add("b");
  }
  c.queue().Add("fail");
  c.queue().Add("requeue");
  EXPECT_TRUE(WaitFor([&] { return rec.Calls("fail") >= 3 && rec.Calls("requeue") >= 3; }));
  EXPECT_TRUE(WaitFor([&] { return c.queue().NumRequeues("fail") == 0; })) << "success forgets the backoff";
  c.Stop();
  EXPECT_EQ(rec.violations.load(), 0);
  EXPECT_EQ(rec.Calls("fail"), 3);
  EXPECT_EQ(rec.Calls("requeue"), 3);
  EXPECT_GE(rec.Calls("a"), 1);
}

TEST(RuntimeControllerTest, StopIsPromptAndIdempotent) {
  ScriptedReconciler rec;
  Controller c(&rec, 2);
  c.Start();
  c.queue().AddAfter("a", 60s);
  auto start = Clock::now();
  c.Stop();
  c.Stop();
  EXPECT_LT(Clock::now() - start, 2s);
}

}  // namespace
}  // namespace stratus::runtime
