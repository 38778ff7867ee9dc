// In-process ApiClient over the Registry. Mirrors the HTTP server's request semantics (server.cpp): namespaced
// kinds need a namespace except for LIST/WATCH, watches start with the current objects as ADDED when no
// resourceVersion (or "0") is given, end after timeoutSeconds, and fail with 410 Gone when the version is too old.
#include "stratus/apiserver/local_client.h"
#include "stratus/apiserver/watch_filter.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "stratus/core/object.h"
#include "stratus/core/selector.h"

namespace stratus {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kDefaultWatchTimeoutSeconds = 1800;  // as ApiServerOptions
constexpr int kMaxWatchTimeoutSeconds = 3600;
constexpr size_t kMaxQueuedEvents = 200000;       // a consumer this far behind is cut off (resumes by version)

// Bridges the store's publishing thread (which must never block) to the watching thread.
struct WatchBridge {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<StoreEvent> events;
  bool overflowed = false;

  void Push(const StoreEvent& e) {
    {
      std::lock_guard lock(mu);
      if (overflowed) return;
      if (events.size() >= kMaxQueuedEvents) {
        overflowed = true;
      } else {
        events.push_back(e);
      }
    }
    cv.notify_one();
  }
};

std::string Str(const json& obj, const char* field) { return MetaString(obj, field); }

class LocalApiClient : public ApiClient {
 public:
  LocalApiClient(Registry* registry, std::string manager) : registry_(registry), manager_(std::move(manager)) {}

  StatusOr<json> Get(const std::string& plural, const std::string& ns, const std::string& name) override {
    return Guard([&]() -> StatusOr<json> {
      auto r = Resource(plural, ns, name, false);
      if (!r.ok()) return r.status();
      return registry_->Get(**r, ns, name);
    });
  }

  StatusOr<json> List(const std::string& plural, const std::string& ns, const ListOptions& opts) override {
    return Guard([&]() -> StatusOr<json> {
      auto r = Resource(plural, ns, "", true);
      if (!r.ok()) return r.status();
      ListRequest lr;
      lr.label_selector = opts.label_selector;
      lr.field_selector = opts.field_selector;
      lr.limit = opts.limit;
      lr.continue_token = opts.continue_token;
      return registry_->List(**r, ns, lr);
    });
  }

  StatusOr<json> Create(const std::string& plural, const std::string& ns, const json& obj) override {
    return Guard([&]() -> StatusOr<json> {
      std::string n = ns.empty() ? Str(obj, "namespace") : ns;
      auto r = Resource(plural, n, "", false);
      if (!r.ok()) return r.status();
      return registry_->Create(**r, (*r)->namespaced ? n : "", obj, manager_);
    });
  }

  StatusOr<json> Update(const std::string& plural, const std::string& ns, const json& obj) override {
    return Put(plural, ns, obj, false);
  }

  StatusOr<json> UpdateStatus(const std::string& plural, const std::string& ns, const json& obj) override {
    return Put(plural, ns, obj, true);
  }

  StatusOr<json> Patch(const std::string& plural, const std::string& ns, const std::string& name, const json& patch,
                       const std::string& subresource) override {
    return Guard([&]() -> StatusOr<json> {
      auto r = Resource(plural, ns, name, false);
      if (!r.ok()) return r.status();
      Status sub = CheckSubresource(**r, subresource);
      if (!sub.ok()) return sub;
      return registry_->Patch(**r, ns, name, patch, subresource == "status", false, manager_);
    });
  }

  StatusOr<json> Apply(const std::string& plural, const std::string& ns, const json& config,
                       const std::string& field_manager, bool force) override {
    return Guard([&]() -> StatusOr<json> {
      std::string name = Str(config, "name");
      if (name.empty()) return BadRequest("metadata.name: Required value: an apply configuration needs a name");
      std::string n = ns.empty() ? Str(config, "namespace") : ns;
      auto r = Resource(plural, n, name, false);
      if (!r.ok()) return r.status();
      return registry_->Apply(**r, (*r)->namespaced ? n : "", name, config,
                              field_manager.empty() ? manager_ : field_manager, force);
    });
  }

  StatusOr<json> Delete(const std::string& plural, const std::string& ns, const std::string& name,
                        const std::string& precondition_uid) override {
    return Guard([&]() -> StatusOr<json> {
      auto r = Resource(plural, ns, name, false);
      if (!r.ok()) return r.status();
      return registry_->Delete(**r, ns, name, precondition_uid);
    });
  }

  Status Watch(const std::string& plural, const std::string& ns, const ListOptions& opts,
               const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) override {
    try {
      return DoWatch(plural, ns, opts, on_event, stop);
    } catch (const std::exception& e) {
      return Internal(std::string("watch failed: ") + e.what());
    }
  }

  StatusOr<std::string> GetRaw(const std::string& path) override {
    std::string p = path;
    auto q = p.find('?');
    if (q != std::string::npos) p = p.substr(0, q);
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (p == "/healthz" || p == "/readyz" || p == "/livez") return std::string("ok");
    if (p == "/version") {
      return json{{"major", "0"}, {"minor", "1"}, {"gitVersion", "v0.1.0"}, {"platform", "linux/amd64"}}.dump();
    }
    // Object and collection reads: /apis/stratus.io/v1[/namespaces/{ns}]/{plural}[/{name}].
    std::string prefix = std::string("/apis/") + kApiVersion + "/";
    if (p.rfind(prefix, 0) == 0) {
      std::vector<std::string> seg;
      size_t start = prefix.size();
      while (start <= p.size()) {
        size_t slash = p.find('/', start);
        if (slash == std::string::npos) slash = p.size();
        seg.push_back(p.substr(start, slash - start));
        start = slash + 1;
      }
      std::string ns, plural, name;
      if (seg.size() >= 3 && seg[0] == "namespaces") {
        ns = seg[1];
        plural = seg[2];
        if (seg.size() == 4) name = seg[3];
        if (seg.size() > 4) return NotFound("the server could not find the requested resource");
      } else if (!seg.empty() && seg.size() <= 2) {
        plural = seg[0];
        if (seg.size() == 2) name = seg[1];
      } else {
        return NotFound("the server could not find the requested resource");
      }
      auto res = name.empty() ? List(plural, ns, ListOptions{}) : Get(plural, ns, name);
      if (!res.ok()) return res.status();
      return res->dump();
    }
    return NotFound("the in-process API client does not serve \"" + path + "\"");
  }

 private:
  template <typename F>
  static StatusOr<json> Guard(F&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      return Internal(std::string("internal error: ") + e.what());
    }
  }

  // Resolves `plural` and checks the namespace rules of the HTTP API.
  static StatusOr<const ResourceInfo*> Resource(const std::string& plural, const std::string& ns,
                                                const std::string& name, bool collection_read) {
    const ResourceInfo* r = FindByPlural(plural);
    if (r == nullptr) return NotFound("the server doesn't have a resource type \"" + plural + "\"");
    if (r->namespaced && ns.empty() && !collection_read) {
      return BadRequest("a namespace is required for " + plural + (name.empty() ? "" : " \"" + name + "\""));
    }
    return r;
  }

  static Status CheckSubresource(const ResourceInfo& r, const std::string& sub) {
    if (sub.empty()) return Status::Ok();
    if (sub != "status") return NotFound("subresource \"" + sub + "\" of " + r.plural + " is not served");
    if (!r.has_status) return NotFound(r.plural + " have no status subresource");
    return Status::Ok();
  }

  StatusOr<json> Put(const std::string& plural, const std::string& ns, const json& obj, bool status_only) {
    return Guard([&]() -> StatusOr<json> {
      std::string name = Str(obj, "name");
      if (name.empty()) return BadRequest("metadata.name: Required value: an update needs the object's name");
      std::string n = ns.empty() ? Str(obj, "namespace") : ns;
      auto r = Resource(plural, n, name, false);
      if (!r.ok()) return r.status();
      if (status_only) {
        Status sub = CheckSubresource(**r, "status");
        if (!sub.ok()) return sub;
      }
      return registry_->Update(**r, (*r)->namespaced ? n : "", name, obj, status_only, manager_);
    });
  }

  Status DoWatch(const std::string& plural, const std::string& ns, const ListOptions& opts,
                 const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) {
    const ResourceInfo* r = FindByPlural(plural);
    if (r == nullptr) return NotFound("the server doesn't have a resource type \"" + plural + "\"");
    auto ls = LabelSelector::Parse(opts.label_selector);
    if (!ls.ok()) return ls.status();
    auto fs = FieldSelector::Parse(opts.field_selector);
    if (!fs.ok()) return fs.status();
    int timeout = opts.timeout_seconds;
    if (timeout <= 0) timeout = kDefaultWatchTimeoutSeconds;
    if (timeout > kMaxWatchTimeoutSeconds) timeout = kMaxWatchTimeoutSeconds;
    const std::string& rv_text = opts.resource_version;
    bool replay_current = rv_text.empty() || rv_text == "0";
    uint64_t after = 0;
    if (!replay_current) {
      try {
        size_t pos = 0;
        after = std::stoull(rv_text, &pos);
        if (pos != rv_text.size()) throw std::invalid_argument("trailing");
      } catch (...) {
        return BadRequest("resourceVersion: must be an integer (got \"" + rv_text + "\")");
      }
    }
    WatchFilter filter(*ls, *fs, /*resumed=*/!replay_current);
    auto stopped = [stop] { return stop != nullptr && stop->load(); };
    auto deadline = Clock::now() + std::chrono::seconds(timeout);
    std::string wns = r->namespaced ? ns : "";
    Store* store = registry_->store();

    std::vector<ObjectPtr> initial;
    if (replay_current) {
      StoreListOptions lo;
      lo.plural = r->plural;
      lo.ns = wns;
      StoreListResult cur = store->List(lo);
      initial = std::move(cur.items);
      after = cur.rv;
    }
    auto bridge = std::make_shared<WatchBridge>();
    std::weak_ptr<WatchBridge> weak = bridge;
    auto sub = store->Watch(r->plural, wns, after, [weak](const StoreEvent& e) {
      if (auto b = weak.lock()) b->Push(e);
    });
    if (!sub.ok()) return sub.status();
    std::unique_ptr<StoreWatch> subscription = std::move(*sub);

    for (const auto& o : initial) {
      if (stopped()) return Status::Ok();
      if (!filter.Matches(*o)) continue;
      filter.Seed(*o);
      if (!on_event(WatchEvent{"ADDED", *o})) return Status::Ok();
    }
    initial.clear();

    std::deque<StoreEvent> batch;
    while (true) {
      bool overflowed = false;
      {
        std::unique_lock lock(bridge->mu);
        while (bridge->events.empty() && !bridge->overflowed) {
          if (stopped() || Clock::now() >= deadline) return Status::Ok();
          auto wake = std::min(deadline, Clock::now() + std::chrono::milliseconds(100));
          bridge->cv.wait_until(lock, wake);
        }
        batch.swap(bridge->events);
        overflowed = bridge->overflowed;
      }
      for (const auto& e : batch) {
        if (stopped()) return Status::Ok();
        if (!e.object) continue;
        std::string type = filter.Translate(e.type, *e.object);
        if (type.empty()) continue;
        if (!on_event(WatchEvent{type, *e.object})) return Status::Ok();
      }
      batch.clear();
      if (overflowed) {
        // Like the HTTP server dropping a slow reader: the stream ends, and the caller resumes from the last
        // version it saw.
        spdlog::warn("in-process watch dropped: reader too slow: plural={}", plural);
        return Status::Ok();
      }
      if (stopped() || Clock::now() >= deadline) return Status::Ok();
    }
  }

  Registry* registry_;
  std::string manager_;
};

}  // namespace

std::unique_ptr<ApiClient> NewLocalApiClient(Registry* registry, const std::string& field_manager) {
  return std::make_unique<LocalApiClient>(registry, field_manager);
}

}  // namespace stratus
