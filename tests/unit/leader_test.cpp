// Leader election over a Lease: one holder at a time, renewals keep it, an expired lease (by the candidate's own
// clock) is taken over, a released one at once, and the elector's callbacks follow.
#include "stratus/runtime/leader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "fake_clock.h"
#include "registry_env.h"
#include "wait_for.h"
#include "stratus/apiserver/local_client.h"

namespace stratus::runtime {
namespace {

class LeaderTest : public RegistryEnv {
 protected:
  LeaderOptions Opts(const std::string& id) {
    LeaderOptions o;
    o.identity = id;
    o.duration = std::chrono::milliseconds(600);
    o.renew_deadline = std::chrono::milliseconds(400);
    o.retry = std::chrono::milliseconds(50);
    return o;
  }
  json Lease() { return *reg_->Get(R("Lease"), "", "stratus-controllers"); }
  static bool Until(const std::function<bool()>& f) { return testing_env::WaitFor(f, std::chrono::seconds(10)); }
};

TEST_F(LeaderTest, OneHolderRenewalsKeepItExpiryPassesIt) {
  auto client = NewLocalApiClient(reg_.get());
  LeaderElector a(client.get(), Opts("a"), [] {}, [] {});
  LeaderElector b(client.get(), Opts("b"), [] {}, [] {});
  ASSERT_TRUE(a.TryAcquireOrRenew());
  EXPECT_FALSE(b.TryAcquireOrRenew());
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "a");
  // a renews faster than the lease lasts: b never gets it.
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  while (std::chrono::steady_clock::now() < end) {
    ASSERT_TRUE(a.TryAcquireOrRenew());
    ASSERT_FALSE(b.TryAcquireOrRenew());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // a stops renewing: once b has seen the same record for the lease's duration, b takes it.
  ASSERT_TRUE(Until([&] { return b.TryAcquireOrRenew(); }));
  json l = Lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "b");
  EXPECT_EQ(l["spec"]["leaseTransitions"], 1);
  EXPECT_FALSE(a.TryAcquireOrRenew());  // b renewed it just now
}

TEST_F(LeaderTest, CallbacksFollowLeadershipAndStopReleasesAtOnce) {
  auto client = NewLocalApiClient(reg_.get());
  std::atomic<int> a_leading{0}, b_leading{0};
  auto a = std::make_unique<LeaderElector>(client.get(), Opts("a"), [&] { ++a_leading; }, [&] { --a_leading; });
  a->Start();
  ASSERT_TRUE(Until([&] { return a->IsLeader(); }));
  LeaderElector b(client.get(), Opts("b"), [&] { ++b_leading; }, [&] { --b_leading; });
  b.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // b tries a few times meanwhile
  EXPECT_FALSE(b.IsLeader());
  EXPECT_EQ(a_leading.load(), 1);
  a->Stop();  // stopped is called and the lease released: b takes over without waiting for expiry
  EXPECT_EQ(a_leading.load(), 0);
  auto released = std::chrono::steady_clock::now();
  ASSERT_TRUE(Until([&] { return b.IsLeader(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - released, std::chrono::milliseconds(600)) << "not by expiry";
  EXPECT_EQ(b_leading.load(), 1);
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "b");
}

TEST_F(LeaderTest, ALeaderThatCannotRenewStopsLeading) {
  auto client = NewLocalApiClient(reg_.get());
  std::atomic<int> leading{0};
  LeaderElector a(client.get(), Opts("a"), [&] { ++leading; }, [&] { --leading; });
  a.Start();
  ASSERT_TRUE(Until([&] { return a.IsLeader(); }));
  // Someone else takes the lease by force (as a partitioned leader would find): a cannot renew and gives up.
  json l = Lease();
  l["spec"]["holderIdentity"] = "intruder";
  l["spec"]["renewTime"] = NowRfc3339();
  ASSERT_TRUE(reg_->Update(R("Lease"), "", "stratus-controllers", l, false).ok());
  // Keep the intruder's lease fresh so a cannot take it back.
  std::atomic<bool> stop{false};
  std::thread renew([&] {
    while (!stop) {
      json cur = Lease();
      cur["spec"]["renewTime"] = NowRfc3339();
      (void)reg_->Update(R("Lease"), "", "stratus-controllers", cur, false);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  EXPECT_TRUE(Until([&] { return !a.IsLeader(); }));
  // The stop callback runs right after IsLeader turns false, on the elector's thread: wait for it, not for time.
  EXPECT_TRUE(Until([&] { return leading.load() == 0; })) << "leading=" << leading.load();
  stop = true;
  renew.join();
}

TEST_F(LeaderTest, ACandidateTriesAgainTheMomentTheHoldersLeaseRunsOut) {
  auto client = NewLocalApiClient(reg_.get());
  LeaderOptions o = Opts("a");
  o.duration = std::chrono::seconds(15);
  o.retry = std::chrono::seconds(10);
  LeaderElector a(client.get(), o, [] {}, [] {});
  ASSERT_TRUE(a.TryAcquireOrRenew());  // a holds the lease for 15 s, then dies without releasing it
  testing::FakeClock clock;
  o.identity = "b";
  auto t0 = clock.Now();
  LeaderElector b(client.get(), o, [] {}, [] {}, &clock);
  b.Start();
  // First look at t0: a's lease is fresh; b retries after its retry period.
  ASSERT_TRUE(clock.WaitForWaiters(1));
  EXPECT_EQ(clock.NextDeadline(), t0 + std::chrono::seconds(10));
  EXPECT_FALSE(b.IsLeader());
  clock.Advance(std::chrono::seconds(10));
  // Same record seen since t0: the lease runs out at t0 + 15 s, before the next retry (t0 + 20 s).
  ASSERT_TRUE(clock.WaitForWaiterDueBy(t0 + std::chrono::milliseconds(15001)));
  EXPECT_EQ(clock.NextDeadline(), t0 + std::chrono::milliseconds(15001));
  EXPECT_FALSE(b.IsLeader());
  clock.Advance(std::chrono::milliseconds(5001));
  ASSERT_TRUE(Until([&] { return b.IsLeader(); }));
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "b");
  b.Stop();
}

}  // namespace
}  // namespace stratus::runtime
