// Controller: informer events -> work queue -> N workers running Reconcile(key).
#include "stratus/runtime/controller.h"

#include <spdlog/spdlog.h>

#include <mutex>
#include <shared_mutex>

namespace stratus::runtime {

struct Controller::Guard {
  std::shared_mutex mu;
  bool alive = true;
  bool started = false;
  bool stopped = false;
};

Controller::Controller(Reconciler* reconciler, int workers, BackoffPolicy backoff, Clock* clock)
    : reconciler_(reconciler),
      workers_(workers > 0 ? workers : 1),
      queue_(backoff, clock),
      guard_(std::make_shared<Guard>()) {
  for (auto& w : reconciler_->Watches()) {
    if (w.informer) Watch(w.informer, std::move(w.map), w.resync);
  }
}

Controller::~Controller() {
  {
    std::unique_lock lock(guard_->mu);
    guard_->alive = false;
  }
  Stop();
}

WorkQueue& Controller::queue() { return queue_; }

bool AllSynced(const std::vector<const Informer*>& caches) {
  for (const Informer* i : caches) {
    if (i && !i->HasSynced()) return false;
  }
  return true;
}

void Controller::Watch(Informer* informer, KeyMapper map, std::chrono::milliseconds resync) {
  caches_.push_back(informer);
  std::shared_ptr<Guard> guard = guard_;
  WorkQueue* q = &queue_;
  std::string name = reconciler_ ? reconciler_->Name() : "";
  informer->AddHandler([guard, q, map, name](const std::string& key, const json& obj, bool /*deleted*/) {
    std::shared_lock lock(guard->mu);
    if (!guard->alive) return;
    if (!map) {
      q->Add(key);
      return;
    }
    try {
      for (const auto& k : map(key, obj)) {
        if (!k.empty()) q->Add(k);
      }
    } catch (const std::exception& e) {
      spdlog::error("controller key mapping threw: controller={} key={} error={}", name, key, e.what());
    }
  }, resync);
}

bool Controller::Running() const { return running_.load(); }

void Controller::Start() {
  {
    std::unique_lock lock(guard_->mu);
    if (guard_->started || guard_->stopped) return;
    guard_->started = true;
  }
  std::string name = reconciler_->Name();
  for (const Informer* i : reconciler_->Reads()) caches_.push_back(i);
  for (int i = 0; i < workers_; ++i) {
    threads_.emplace_back([this, name] {
      // Synced before acting: poll the caches until all have listed, or until Stop.
      bool logged = false;
      while (!AllSynced(caches_)) {
        {
          std::shared_lock lock(guard_->mu);
          if (guard_->stopped) return;
        }
        if (!logged) {
          spdlog::debug("controller waiting for caches to sync: controller={}", name);
          logged = true;
        }
        for (const Informer* i : caches_) {
          if (i && !i->HasSynced()) {
            i->WaitForSync(std::chrono::milliseconds(50));
            break;
          }
        }
      }
      running_.store(true);
      while (true) {
        std::optional<std::string> key = queue_.Get();
        if (!key) return;
        StatusOr<Result> r = Status(Code::kInternal, "reconcile did not run");
        try {
          r = reconciler_->Reconcile(*key);
        } catch (const std::exception& e) {
          r = Status(Code::kInternal, std::string("reconcile threw: ") + e.what());
        } catch (...) {
          r = Status(Code::kInternal, "reconcile threw a non-standard exception");
        }
        if (!r.ok()) {
          int n = queue_.NumRequeues(*key);
          // Conflicts are routine under optimistic concurrency; repeated failures are worth a warning.
          if (r.status().code() == Code::kConflict || n < 3) {
            spdlog::debug("reconcile failed, retrying with backoff: controller={} key={} attempt={} error={}", name,
                          *key, n + 1, r.status().ToString());
          } else {
            spdlog::warn("reconcile failed, retrying with backoff: controller={} key={} attempt={} error={}", name,
                         *key, n + 1, r.status().ToString());
          }
          queue_.AddRateLimited(*key);
        } else {
          queue_.Forget(*key);
          if (r->requeue_after.count() > 0) queue_.AddAfter(*key, r->requeue_after);
        }
        queue_.Done(*key);
      }
    });
  }
}

void Controller::Stop() {
  {
    std::unique_lock lock(guard_->mu);
    guard_->stopped = true;
  }
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace stratus::runtime
