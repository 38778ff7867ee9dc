// The time source of the reconciler runtime. Work queues (AddAfter, backoff), informers (resync, relist backoff)
// and controllers read the time and wait for deadlines through a Clock, so tests can drive time by hand with a
// fake (tests/fakes/fake_clock.h) instead of sleeping. Production code uses SystemClock(), the default everywhere.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace stratus::runtime {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  // The current time (monotonic: only its differences mean anything).
  virtual time_point Now() const = 0;
  // Waits on `cv` until `ready()` is true or this clock reaches `deadline`; returns ready(). `lock` holds the mutex
  // that guards what `ready` reads, on entry and on return (it is released while waiting, as in
  // condition_variable::wait_until). Whoever changes that state notifies `cv` as usual; the clock itself wakes the
  // waiter when its time passes the deadline.
  virtual bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline,
                         const std::function<bool()>& ready) = 0;

  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, duration d,
               const std::function<bool()>& ready) {
    return WaitUntil(lock, cv, Now() + d, ready);
  }
};

// The process-wide real clock (std::chrono::steady_clock); never null, never destroyed.
Clock* SystemClock();

// `clock`, or the system clock when null: lets options default to nullptr.
inline Clock* OrSystemClock(Clock* clock) { return clock ? clock : SystemClock(); }

}  // namespace stratus::runtime
