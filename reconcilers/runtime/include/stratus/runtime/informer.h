// An informer: lists then watches one kind through an ApiClient, keeps a local cache, relists on 410 Gone or a
// broken watch, resyncs periodically, and calls handlers with the keys ("namespace/name" or "name") that
// changed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/runtime/clock.h"

namespace stratus::runtime {

struct InformerOptions {
  std::string plural;
  std::string ns;                       // empty = all namespaces
  std::string label_selector;
  std::string field_selector;
  std::chrono::seconds resync{30};      // default period at which a handler gets every cached key again (0 = never)
  std::chrono::milliseconds relist_backoff{500};
  // What resync periods and relist backoff are measured on (null: the system clock); it must outlive the informer.
  // Not part of an informer's identity in an InformerFactory.
  Clock* clock = nullptr;
};

class Informer {
 public:
  Informer(ApiClient* client, InformerOptions opts);
  ~Informer();
  // Called for every added/updated/deleted object, and for every cached object at each resync.
  // `obj` is the latest object (the last known state for deletions); `deleted` marks deletions.
  // Handlers run one at a time on the informer's threads, never under the cache lock (so they may call Get/List
  // of any informer); they must not block for long or call Stop(). A handler added after the first list first
  // gets every cached object (as client-go's shared informers do), so an informer can be shared by controllers
  // that start at different times. `resync` is this handler's re-delivery period (negative: the informer's).
  using Handler = std::function<void(const std::string& key, const json& obj, bool deleted)>;
  void AddHandler(Handler h, std::chrono::milliseconds resync = std::chrono::milliseconds(-1));
  void Start();
  void Stop();
  // True once the first list has been delivered. A reconciler that plans from this cache must not act before.
  bool HasSynced() const;
  // Waits up to `timeout` of real time (a caller's bound, not a timer of the informer) for the first list.
  bool WaitForSync(std::chrono::milliseconds timeout) const;
  // The cached object for `key`, or null.
  json Get(const std::string& key) const;
  std::vector<json> List() const;
  const InformerOptions& options() const;
  // Number of full lists done (first list + relists) — lets tests observe relist on 410.
  int ListCount() const;

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
};

// "namespace/name" for namespaced objects, "name" otherwise.
std::string KeyFor(const json& obj);
// Splits a key into namespace and name.
std::pair<std::string, std::string> SplitKey(const std::string& key);

}  // namespace stratus::runtime
