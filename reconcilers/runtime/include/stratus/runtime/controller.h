// A controller: informers feed keys into a work queue; N workers call one level-triggered, idempotent
// `Reconcile(key)`. The result decides what happens next: done, requeue after a delay, or retry with backoff.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/runtime/informer.h"
#include "stratus/runtime/workqueue.h"

namespace stratus::runtime {

struct Result {
  std::chrono::milliseconds requeue_after{0};  // > 0: run again after this long even if nothing changes
  static Result Done() { return {}; }
  static Result After(std::chrono::milliseconds d) { return {d}; }
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual std::string Name() const = 0;
  // Brings the world in line with the object named by `key`. An error Status is retried with backoff.
  virtual StatusOr<Result> Reconcile(const std::string& key) = 0;
};

class Controller {
 public:
  Controller(Reconciler* reconciler, int workers, BackoffPolicy backoff = {});
  ~Controller();
  WorkQueue& queue();
  // Enqueues the key of every event from `informer` (optionally mapped, e.g. Volume -> owning Instance keys).
  void Watch(Informer* informer,
             std::function<std::vector<std::string>(const std::string& key, const json& obj)> map = nullptr);
  void Start();
  void Stop();

 private:
  Reconciler* reconciler_;
  int workers_;
  WorkQueue queue_;
  std::vector<std::thread> threads_;
  // Shared with the informer handlers registered by Watch(): they stop enqueueing once the controller is gone,
  // so an informer may outlive its controller.
  struct Guard;
  std::shared_ptr<Guard> guard_;
};

}  // namespace stratus::runtime
