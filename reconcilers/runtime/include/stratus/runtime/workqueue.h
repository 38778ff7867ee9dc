// A rate-limited work queue of string keys ("namespace/name"), as Kubernetes' client-go workqueue: a key queued
// many times is processed once; a key is never handed to two workers at once (re-adds while processing are
// deferred until Done); failures are retried with capped exponential backoff; AddAfter schedules a later run.
// Delays are measured on the queue's Clock (the system clock unless a test passes a fake).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "stratus/runtime/clock.h"

namespace stratus::runtime {

struct BackoffPolicy {
  std::chrono::milliseconds base{200};
  std::chrono::milliseconds cap{60000};
};

class WorkQueue {
 public:
  // `clock`: what delays and backoff are measured on (null: the system clock); it must outlive the queue.
  explicit WorkQueue(BackoffPolicy policy = {}, Clock* clock = nullptr);
  ~WorkQueue();
  void Add(const std::string& key);
  void AddAfter(const std::string& key, std::chrono::milliseconds delay);
  // Re-adds after the key's current backoff, doubling it (capped).
  void AddRateLimited(const std::string& key);
  // Resets the key's backoff (call after a successful reconcile).
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key) const;
  // Blocks until a key is ready or the queue shuts down (nullopt).
  std::optional<std::string> Get();
  // Marks a key from Get as finished; if it was re-added meanwhile, it becomes ready again.
  void Done(const std::string& key);
  void ShutDown();
  size_t Len() const;

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratus::runtime
