// Informer: list, then watch from the list's resourceVersion; resume the watch from the last seen version when
// the server ends the stream; relist (delivering what changed, including deletions) on 410 Gone or any error;
// re-deliver every cached object at each resync.
//
// Threads: one runs list+watch, one runs the resync timer. Handlers are called one at a time (`deliver_mu`),
// never with the cache lock held, so a handler may read this or any other informer's cache. Both threads read the
// time and sleep through opts.clock.
#include "stratus/runtime/informer.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "stratus/core/object.h"

namespace stratus::runtime {

std::string KeyFor(const json& obj) {
  std::string ns = MetaString(obj, "namespace");
  std::string name = MetaString(obj, "name");
  return ns.empty() ? name : ns + "/" + name;
}

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

struct Informer::Impl {
  ApiClient* client;
  InformerOptions opts;
  Clock* clock = nullptr;  // opts.clock or the system clock

  mutable std::mutex mu;  // cache, synced, list_count
  mutable std::condition_variable sync_cv;
  std::map<std::string, json> cache;
  bool synced = false;
  int list_count = 0;

  std::mutex deliver_mu;  // handlers and their invocation
  struct Registered {
    Handler fn;
    std::chrono::milliseconds resync;  // 0: never
    Clock::time_point next_resync;
  };
  std::vector<Registered> handlers;

  std::mutex run_mu;  // started/stop and the sleeps of both threads
  std::condition_variable run_cv;
  bool started = false;
  std::atomic<bool> stop{false};
  bool resync_changed = false;  // guarded by run_mu: a handler was added, recompute the next resync
  std::thread runner;
  std::thread resyncer;

  // Sleeps up to `d`; returns false when stopping.
  bool Sleep(std::chrono::milliseconds d) {
    std::unique_lock lock(run_mu);
    clock->WaitFor(lock, run_cv, d, [&] { return stop.load(); });
    return !stop.load();
  }

  // Requires deliver_mu.
  void DeliverLocked(const std::string& key, const json& obj, bool deleted) {
    for (const auto& h : handlers) Call(h.fn, key, obj, deleted);
  }

  void Call(const Handler& h, const std::string& key, const json& obj, bool deleted) {
    try {
      h(key, obj, deleted);
    } catch (const std::exception& e) {
      spdlog::error("informer handler threw: plural={} key={} error={}", opts.plural, key, e.what());
    } catch (...) {
      spdlog::error("informer handler threw: plural={} key={}", opts.plural, key);
    }
  }

  // Lists and replaces the cache, delivering adds, changes and deletions. Returns the list's resourceVersion.
  StatusOr<std::string> ListAndReplace() {
    ListOptions lo;
    lo.label_selector = opts.label_selector;
    lo.field_selector = opts.field_selector;
    auto list = client->List(opts.plural, opts.ns, lo);
    if (!list.ok()) return list.status();
    std::map<std::string, json> fresh;
    if (list->contains("items") && (*list)["items"].is_array()) {
      for (auto& item : (*list)["items"]) {
        std::string key = KeyFor(item);
        if (!key.empty()) fresh[key] = std::move(item);
      }
    }
    std::string rv;
    if (list->contains("metadata") && (*list)["metadata"].is_object()) {
      rv = (*list)["metadata"].value("resourceVersion", "");
    }

    std::lock_guard dl(deliver_mu);
    std::map<std::string, json> old;
    bool first;
    {
      std::lock_guard lock(mu);
      old.swap(cache);
      cache = fresh;
      first = list_count == 0;
    }
    for (const auto& [key, obj] : old) {
      if (!fresh.count(key)) DeliverLocked(key, obj, /*deleted=*/true);
    }
    for (const auto& [key, obj] : fresh) {
      auto it = old.find(key);
      bool changed = first || it == old.end() || ResourceVersionOf(it->second) != ResourceVersionOf(obj) ||
                     MetaString(it->second, "uid") != MetaString(obj, "uid");
      if (changed) DeliverLocked(key, obj, /*deleted=*/false);
    }
    {
      std::lock_guard lock(mu);
      ++list_count;
      synced = true;
    }
    sync_cv.notify_all();
    return rv;
  }

  // Applies one watch event to the cache and delivers it. Returns false on an ERROR event.
  bool Apply(const WatchEvent& ev, std::string* rv) {
    if (ev.type == "ERROR") return false;
    if (!ev.object.is_object()) return true;
    uint64_t erv = ResourceVersionOf(ev.object);
    if (ev.type == "BOOKMARK") {
      if (erv) *rv = std::to_string(erv);
      return true;
    }
    std::string key = KeyFor(ev.object);
    if (key.empty()) return true;
    if (erv) *rv = std::to_string(erv);
    std::lock_guard dl(deliver_mu);
    if (ev.type == "DELETED") {
      {
        std::lock_guard lock(mu);
        cache.erase(key);
      }
      DeliverLocked(key, ev.object, /*deleted=*/true);
      return true;
    }
    {
      std::lock_guard lock(mu);
      auto it = cache.find(key);
      // A replayed event no newer than what we hold changes nothing.
      if (it != cache.end() && erv != 0 && ResourceVersionOf(it->second) >= erv &&
          MetaString(it->second, "uid") == MetaString(ev.object, "uid")) {
        return true;
      }
      cache[key] = ev.object;
    }
    DeliverLocked(key, ev.object, /*deleted=*/false);
    return true;
  }

  void Run() {
    std::mt19937 rng(std::random_device{}());
    int list_failures = 0;
    while (!stop.load()) {
      auto rv = ListAndReplace();
      if (!rv.ok()) {
        ++list_failures;
        auto delay = opts.relist_backoff * (1 << std::min(list_failures - 1, 6));
        if (delay > std::chrono::milliseconds(30000)) delay = std::chrono::milliseconds(30000);
        if (list_failures == 1) {
          spdlog::warn("informer list failed, retrying: plural={} error={}", opts.plural, rv.status().message());
        } else {
          spdlog::debug("informer list failed, retrying: plural={} attempt={} error={}", opts.plural, list_failures,
                        rv.status().message());
        }
        if (!Sleep(std::chrono::duration_cast<std::chrono::milliseconds>(delay))) return;
        continue;
      }
      list_failures = 0;
      std::string version = *rv;
      spdlog::debug("informer listed: plural={} resourceVersion={} objects={}", opts.plural, version, Size());

      // Watch from the list's version; resume from the last seen version each time the server ends the stream.
      while (!stop.load()) {
        ListOptions wo;
        wo.label_selector = opts.label_selector;
        wo.field_selector = opts.field_selector;
        wo.resource_version = version;
        wo.timeout_seconds = 60 + static_cast<int>(rng() % 120);
        bool error_event = false;
        auto started_at = clock->Now();
        Status s = client->Watch(
            opts.plural, opts.ns, wo,
            [&](const WatchEvent& ev) {
              if (stop.load()) return false;
              if (!Apply(ev, &version)) {
                error_event = true;
                return false;
              }
              return true;
            },
            &stop);
        if (stop.load()) return;
        if (s.ok() && !error_event) {
          // The stream ended normally: watch again from where we are. Avoid spinning on a server that closes
          // streams at once.
          if (clock->Now() - started_at < std::chrono::milliseconds(100) &&
              !Sleep(std::chrono::milliseconds(100))) {
            return;
          }
          continue;
        }
        if (s.code() == Code::kGone) {
          spdlog::info("informer watch expired (410), relisting: plural={} resourceVersion={}", opts.plural, version);
        } else {
          spdlog::warn("informer watch failed, relisting: plural={} resourceVersion={} error={}", opts.plural, version,
                       error_event ? "ERROR event" : s.message());
        }
        if (!Sleep(opts.relist_backoff)) return;
        break;  // relist
      }
    }
  }

  // Re-delivers the cache to each handler whose resync period has passed.
  void Resync() {
    while (!stop.load()) {
      Clock::time_point due = clock->Now() + std::chrono::hours(1);
      {
        std::lock_guard dl(deliver_mu);
        for (const auto& h : handlers) {
          if (h.resync.count() > 0) due = std::min(due, h.next_resync);
        }
      }
      {
        std::unique_lock lock(run_mu);
        clock->WaitUntil(lock, run_cv, due, [&] { return stop.load() || resync_changed; });
        resync_changed = false;
      }
      if (stop.load()) return;
      std::lock_guard dl(deliver_mu);
      auto now = clock->Now();
      std::map<std::string, json> snapshot;
      bool have_snapshot = false;
      for (auto& h : handlers) {
        if (h.resync.count() <= 0 || now < h.next_resync) continue;
        h.next_resync = now + h.resync;
        if (!have_snapshot) {
          std::lock_guard lock(mu);
          if (!synced) break;
          snapshot = cache;
          have_snapshot = true;
        }
        for (const auto& [key, obj] : snapshot) {
          if (stop.load()) return;
          Call(h.fn, key, obj, /*deleted=*/false);
        }
      }
    }
  }

  size_t Size() const {
    std::lock_guard lock(mu);
    return cache.size();
  }
};

Informer::Informer(ApiClient* client, InformerOptions opts) : impl_(std::make_unique<Impl>()) {
  impl_->client = client;
  impl_->opts = std::move(opts);
  impl_->clock = OrSystemClock(impl_->opts.clock);
  if (impl_->opts.relist_backoff.count() <= 0) impl_->opts.relist_backoff = std::chrono::milliseconds(1);
}

Informer::~Informer() { Stop(); }

void Informer::AddHandler(Handler h, std::chrono::milliseconds resync) {
  Impl* m = impl_.get();
  if (resync.count() < 0) resync = m->opts.resync;
  {
    std::lock_guard dl(m->deliver_mu);
    // Late handlers catch up on what earlier ones already saw; deliver_mu keeps this ordered with every event.
    std::map<std::string, json> snapshot;
    {
      std::lock_guard lock(m->mu);
      if (m->synced) snapshot = m->cache;
    }
    for (const auto& [key, obj] : snapshot) m->Call(h, key, obj, /*deleted=*/false);
    m->handlers.push_back({std::move(h), resync, m->clock->Now() + resync});
  }
  {
    std::lock_guard lock(m->run_mu);
    m->resync_changed = true;
  }
  m->run_cv.notify_all();
}

const InformerOptions& Informer::options() const { return impl_->opts; }

void Informer::Start() {
  std::lock_guard lock(impl_->run_mu);
  if (impl_->started || impl_->stop.load()) return;
  impl_->started = true;
  Impl* m = impl_.get();
  m->runner = std::thread([m] { m->Run(); });
  m->resyncer = std::thread([m] { m->Resync(); });
}

void Informer::Stop() {
  {
    std::lock_guard lock(impl_->run_mu);
    impl_->stop.store(true);
  }
  impl_->run_cv.notify_all();
  if (impl_->runner.joinable()) impl_->runner.join();
  if (impl_->resyncer.joinable()) impl_->resyncer.join();
}

bool Informer::HasSynced() const {
  std::lock_guard lock(impl_->mu);
  return impl_->synced;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->sync_cv.wait_for(lock, timeout, [&] { return impl_->synced; });
}

json Informer::Get(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->cache.find(key);
  return it == impl_->cache.end() ? json() : it->second;
}

std::vector<json> Informer::List() const {
  std::lock_guard lock(impl_->mu);
  std::vector<json> out;
  out.reserve(impl_->cache.size());
  for (const auto& [key, obj] : impl_->cache) out.push_back(obj);
  return out;
}

int Informer::ListCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->list_count;
}

}  // namespace stratus::runtime
