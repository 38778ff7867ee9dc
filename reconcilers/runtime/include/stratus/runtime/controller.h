// A controller: informers feed keys into a work queue; N workers call one level-triggered, idempotent
// `Reconcile(key)`. The result decides what happens next: done, requeue after a delay, or retry with backoff.
// Workers start only once every informer the controller watches and every cache its reconciler reads has listed
// (client-go's WaitForCacheSync): a reconciler that planned from a cache still empty after a restart would free
// addresses, detach volumes or delete domains that are in fact in use.
#pragma once

#include <chrono>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/runtime/clock.h"
#include "stratus/runtime/informer.h"
#include "stratus/runtime/workqueue.h"

namespace stratus::runtime {

struct Result {
  std::chrono::milliseconds requeue_after{0};  // > 0: run again after this long even if nothing changes
  static Result Done() { return {}; }
  static Result After(std::chrono::milliseconds d) { return {d}; }
};

// Maps an event of some informer to the keys of the objects a reconciler must look at again.
using KeyMapper = std::function<std::vector<std::string>(const std::string& key, const json& obj)>;

// One source of work for a reconciler: the events of `informer`, mapped by `map` (nullptr: the object's own key).
// `resync`: how often every cached object is offered again (negative: the informer's default period).
struct WatchSpec {
  Informer* informer = nullptr;
  KeyMapper map;
  std::chrono::milliseconds resync{-1};
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual std::string Name() const = 0;
  // Brings the world in line with the object named by `key`. An error Status is retried with backoff.
  virtual StatusOr<Result> Reconcile(const std::string& key) = 0;
  // Every informer whose cache Reconcile reads. The controller runs no Reconcile before all have synced.
  virtual std::vector<const Informer*> Reads() const = 0;
  // What wakes it: each reconciler keeps its own event-to-key mappings, and the Controller made for it wires them
  // (entries with a null informer are skipped: a cache this reconciler runs without).
  virtual std::vector<WatchSpec> Watches() = 0;
};

// True when every informer in `caches` has listed once.
bool AllSynced(const std::vector<const Informer*>& caches);

class Controller {
 public:
  // Watches everything `reconciler->Watches()` names. `clock`: what retry backoff and Result::After delays are
  // measured on (null: the system clock); it must outlive the controller.
  Controller(Reconciler* reconciler, int workers, BackoffPolicy backoff = {}, Clock* clock = nullptr);
  ~Controller();
  WorkQueue& queue();
  // Enqueues the key of every event from `informer` (optionally mapped, e.g. Volume -> owning Instance keys).
  // `resync`: how often every cached object is offered again (negative: the informer's default period).
  void Watch(Informer* informer, KeyMapper map = nullptr, std::chrono::milliseconds resync = std::chrono::milliseconds(-1));
  // Starts the workers; they wait (without blocking the caller) for every cache to sync before the first
  // Reconcile. Keys queued meanwhile are kept.
  void Start();
  // True once the workers have seen every cache synced.
  bool Running() const;
  void Stop();

 private:
  Reconciler* reconciler_;
  int workers_;
  WorkQueue queue_;
  std::vector<std::thread> threads_;
  std::vector<const Informer*> caches_;  // watched informers + reconciler_->Reads()
  std::atomic<bool> running_{false};
  // Shared with the informer handlers registered by Watch(): they stop enqueueing once the controller is gone,
  // so an informer may outlive its controller.
  struct Guard;
  std::shared_ptr<Guard> guard_;
};

}  // namespace stratus::runtime
