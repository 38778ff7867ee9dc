#include "fake_clock.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace stratus::testing {

// One blocked WaitUntil. `mu` and `cv` are the waiter's own; they stay valid while it is registered or `waking`
// (the waiter does not leave WaitUntil before Advance is done with them).
struct FakeClock::Waiter {
  time_point deadline;
  std::mutex* mu;
  std::condition_variable* cv;
  bool waking = false;  // guarded by FakeClock::mu_: Advance took it off the list and is notifying it
};

FakeClock::FakeClock() : now_(time_point(std::chrono::hours(24))) {}

FakeClock::~FakeClock() {
  std::lock_guard g(mu_);
  if (!waiters_.empty()) {
    spdlog::error("FakeClock destroyed with {} blocked waiters: stop what uses it first", waiters_.size());
    std::abort();
  }
}

runtime::Clock::time_point FakeClock::Now() const {
  std::lock_guard g(mu_);
  return now_;
}

bool FakeClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline,
                          const std::function<bool()>& ready) {
  while (true) {
    if (ready()) return true;
    auto w = std::make_shared<Waiter>(Waiter{deadline, lock.mutex(), &cv});
    {
      // Registered while the caller still holds its mutex: Advance notifies under that mutex, so it cannot slip in
      // between this check and cv.wait below.
      std::lock_guard g(mu_);
      if (now_ >= deadline) break;
      waiters_.push_back(w);
    }
    changed_.notify_all();
    cv.wait(lock);
    bool waking;
    {
      std::lock_guard g(mu_);
      auto it = std::find(waiters_.begin(), waiters_.end(), w);
      if (it != waiters_.end()) waiters_.erase(it);
      waking = w->waking;
    }
    changed_.notify_all();
    if (waking) {
      // Advance is about to lock our mutex to notify our cv: let it finish before we may leave.
      lock.unlock();
      {
        std::unique_lock g(mu_);
        changed_.wait(g, [&] { return !w->waking; });
      }
      lock.lock();
    }
  }
  return ready();
}

void FakeClock::Advance(duration d) {
  if (d < duration::zero()) {
    spdlog::error("FakeClock::Advance with a negative duration: {} ns", d.count());
    std::abort();
  }
  std::vector<std::shared_ptr<Waiter>> due;
  {
    std::lock_guard g(mu_);
    now_ += d;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if ((*it)->deadline <= now_) {
        (*it)->waking = true;
        due.push_back(*it);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& w : due) {
    {
      std::lock_guard l(*w->mu);
      w->cv->notify_all();
    }
    {
      std::lock_guard g(mu_);
      w->waking = false;
    }
    changed_.notify_all();
  }
}

size_t FakeClock::Waiters() const {
  std::lock_guard g(mu_);
  return waiters_.size();
}

runtime::Clock::time_point FakeClock::NextDeadline() const {
  std::lock_guard g(mu_);
  time_point next = time_point::max();
  for (const auto& w : waiters_) next = std::min(next, w->deadline);
  return next;
}

bool FakeClock::WaitForWaiters(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock g(mu_);
  return changed_.wait_for(g, timeout, [&] { return waiters_.size() >= n; });
}

bool FakeClock::WaitForWaiterDueBy(time_point t, std::chrono::milliseconds timeout) const {
  std::unique_lock g(mu_);
  return changed_.wait_for(g, timeout, [&] {
    return std::any_of(waiters_.begin(), waiters_.end(), [&](const auto& w) { return w->deadline <= t; });
  });
}

}  // namespace stratus::testing
