// A Clock that only moves when a test says so: Advance(d) moves it forward and wakes every waiter whose deadline
// has now passed, before it returns. Tests use it to step through delays (AddAfter, backoff, resync, relist)
// instead of sleeping, and WaitForWaiters to know a component has reached its timed wait.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "stratus/runtime/clock.h"

namespace stratus::testing {

class FakeClock : public runtime::Clock {
 public:
  // Starts at an arbitrary fixed time (a day after the steady clock's epoch), the same in every run.
  FakeClock();
  ~FakeClock() override;

  time_point Now() const override;
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline,
                 const std::function<bool()>& ready) override;

  // Moves the time forward by `d` (negative is a test bug and aborts) and wakes every waiter whose deadline is
  // now due; when it returns, each of them has been notified. Must not be called while holding a mutex that a
  // waiter on this clock waits with.
  void Advance(duration d);
  // Number of waits currently blocked on this clock with a deadline still in the future.
  size_t Waiters() const;
  // Waits (in real time, up to `timeout`) until at least `n` waits are blocked on this clock; false on timeout.
  // This is a wait for a state ("the informer is sleeping until its resync"), not for time to pass.
  bool WaitForWaiters(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Waits (in real time, up to `timeout`) until some wait is blocked on this clock with a deadline at or before
  // `t` (e.g. "the informer sleeps its 20 ms relist backoff", told apart from its hour-long resync wait).
  bool WaitForWaiterDueBy(time_point t, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // The earliest deadline among the blocked waits (time_point::max() when there is none): after a wait for a
  // waiter, a test checks exactly when the component means to wake up, before advancing towards it.
  time_point NextDeadline() const;

 private:
  struct Waiter;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // waiters added or removed, a wake-up finished
  time_point now_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace stratus::testing
