// WorkQueue: a deduplicating queue of keys with per-key exclusion, delayed adds and per-key backoff.
//
// State of a key (the client-go model):
//   dirty       - the key needs processing (it is in `ready`, or it will be re-queued when its worker is Done);
//   processing  - a worker holds the key between Get and Done;
//   waiting     - the key is scheduled to be added at a later time (AddAfter / AddRateLimited).
// Delayed keys are promoted into the ready queue by whichever thread next looks at the queue (Get waits with a
// deadline equal to the earliest delayed key, so a sleeping worker wakes up in time). Time is the queue's Clock.
#include "stratus/runtime/workqueue.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <set>
#include <vector>

namespace stratus::runtime {

struct WorkQueue::Impl {
  BackoffPolicy policy;
  Clock* clock = nullptr;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> ready;
  std::set<std::string> dirty;
  std::set<std::string> processing;
  bool shutting_down = false;
  // Bumped by every change a sleeping worker must look at (a key became ready, an earlier schedule, shutdown).
  uint64_t changes = 0;

  // Delayed keys: the earliest requested time per key; the heap may hold stale entries, which are skipped.
  struct Delayed {
    Clock::time_point at;
    uint64_t seq;
    std::string key;
    bool operator>(const Delayed& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  std::priority_queue<Delayed, std::vector<Delayed>, std::greater<Delayed>> heap;
  std::map<std::string, Clock::time_point> waiting;
  uint64_t seq = 0;

  std::map<std::string, int> failures;

  // Requires `mu`. Returns true when the key became ready (so a waiter should be woken).
  bool AddLocked(const std::string& key) {
    if (shutting_down) return false;
    if (dirty.count(key)) return false;
    dirty.insert(key);
    if (processing.count(key)) return false;  // re-queued by Done
    ready.push_back(key);
    ++changes;
    return true;
  }

  // Requires `mu`. Moves every due delayed key into the ready queue.
  void PromoteLocked(Clock::time_point now) {
    while (!heap.empty() && heap.top().at <= now) {
      Delayed d = heap.top();
      heap.pop();
      auto it = waiting.find(d.key);
      if (it == waiting.end() || it->second != d.at) continue;  // superseded by an earlier schedule
      waiting.erase(it);
      AddLocked(d.key);
    }
  }

  // Requires `mu`. The next time a delayed key becomes due (skipping stale heap entries).
  std::optional<Clock::time_point> NextDueLocked() {
    while (!heap.empty()) {
      const Delayed& d = heap.top();
      auto it = waiting.find(d.key);
      if (it != waiting.end() && it->second == d.at) return d.at;
      heap.pop();
    }
    return std::nullopt;
  }

  std::chrono::milliseconds BackoffFor(int n) const {
    using ms = std::chrono::milliseconds;
    ms base = policy.base.count() > 0 ? policy.base : ms(1);
    ms cap = policy.cap.count() > 0 ? policy.cap : base;
    ms d = base;
    for (int i = 0; i < n; ++i) {
      if (d >= cap) return cap;
      d *= 2;
    }
    return d < cap ? d : cap;
  }
};

WorkQueue::WorkQueue(BackoffPolicy policy, Clock* clock) : impl_(std::make_unique<Impl>()) {
  impl_->policy = policy;
  impl_->clock = OrSystemClock(clock);
}

WorkQueue::~WorkQueue() { ShutDown(); }

void WorkQueue::Add(const std::string& key) {
  bool wake;
  {
    std::lock_guard lock(impl_->mu);
    wake = impl_->AddLocked(key);
  }
  if (wake) impl_->cv.notify_one();
}

void WorkQueue::AddAfter(const std::string& key, std::chrono::milliseconds delay) {
  if (delay.count() <= 0) {
    Add(key);
    return;
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->shutting_down) return;
    auto at = impl_->clock->Now() + delay;
    auto it = impl_->waiting.find(key);
    if (it != impl_->waiting.end() && it->second <= at) return;  // already due sooner
    impl_->waiting[key] = at;
    impl_->heap.push({at, impl_->seq++, key});
    ++impl_->changes;
  }
  // Every sleeping worker recomputes its deadline.
  impl_->cv.notify_all();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  std::chrono::milliseconds delay;
  {
    std::lock_guard lock(impl_->mu);
    int& n = impl_->failures[key];
    delay = impl_->BackoffFor(n);
    ++n;
  }
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard lock(impl_->mu);
  impl_->failures.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->failures.find(key);
  return it == impl_->failures.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::Get() {
  Impl& m = *impl_;
  std::unique_lock lock(m.mu);
  while (true) {
    if (m.shutting_down) return std::nullopt;
    m.PromoteLocked(m.clock->Now());
    if (!m.ready.empty()) {
      std::string key = std::move(m.ready.front());
      m.ready.pop_front();
      m.dirty.erase(key);
      m.processing.insert(key);
      return key;
    }
    auto due = m.NextDueLocked();
    const uint64_t seen = m.changes;
    auto changed = [&m, seen] { return m.shutting_down || m.changes != seen; };
    if (due) {
      m.clock->WaitUntil(lock, m.cv, *due, changed);
    } else {
      m.cv.wait(lock, changed);
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  bool wake = false;
  {
    std::lock_guard lock(impl_->mu);
    impl_->processing.erase(key);
    if (impl_->dirty.count(key) && !impl_->shutting_down) {
      impl_->ready.push_back(key);
      ++impl_->changes;
      wake = true;
    }
  }
  if (wake) impl_->cv.notify_one();
}

void WorkQueue::ShutDown() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->shutting_down = true;
  }
  impl_->cv.notify_all();
}

size_t WorkQueue::Len() const {
  std::lock_guard lock(impl_->mu);
  impl_->PromoteLocked(impl_->clock->Now());
  return impl_->ready.size();
}

}  // namespace stratus::runtime
