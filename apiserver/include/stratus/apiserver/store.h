// The desired-state store: objects by key, a monotonic resourceVersion, and a change history that watches
// read from. `Store` is the interface; SqliteStore (sqlite_store.h) is the first implementation, a distributed
// one (etcd) can follow behind the same calls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stratus/core/object.h"
#include "stratus/core/status.h"

namespace stratus {

using ObjectPtr = std::shared_ptr<const json>;

// One change, as watches see it. `object` is the object after the change (for DELETED: its last state,
// carrying the deletion's resourceVersion).
struct StoreEvent {
  uint64_t rv = 0;
  std::string type;  // ADDED, MODIFIED, DELETED
  ObjectKey key;
  ObjectPtr object;
};

struct StoreListOptions {
  std::string plural;
  std::string ns;                 // empty = all namespaces
  std::string after_name;         // continue after this "ns/name" (exclusive); empty = from the start
  size_t limit = 0;               // 0 = all
  std::function<bool(const json&)> filter;  // optional
};

struct StoreListResult {
  std::vector<ObjectPtr> items;
  uint64_t rv = 0;                // the store's revision the list reflects
  std::string last_name;          // "ns/name" of the last item when more remain (else empty)
};

// A live watch subscription; destroying it stops delivery.
class StoreWatch {
 public:
  virtual ~StoreWatch() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // Stores a new object under `key` and returns it with metadata.resourceVersion set. kAlreadyExists when the key
  // is taken. Durable when it returns.
  virtual StatusOr<json> Create(const ObjectKey& key, json obj) = 0;
  // Replaces the object. `expected_rv` 0 = unconditional; otherwise kConflict unless it equals the stored
  // version. kNotFound when absent.
  virtual StatusOr<json> Update(const ObjectKey& key, json obj, uint64_t expected_rv) = 0;
  // Removes the object and returns its last state (with the deletion's resourceVersion). Preconditions as Update.
  virtual StatusOr<json> Delete(const ObjectKey& key, uint64_t expected_rv) = 0;

  virtual StatusOr<ObjectPtr> Get(const ObjectKey& key) const = 0;
  // Objects of one kind ordered by (namespace, name).
  virtual StoreListResult List(const StoreListOptions& opts) const = 0;
  virtual uint64_t CurrentRevision() const = 0;
  // Oldest revision a watch may start after (older -> kGone).
  virtual uint64_t OldestWatchableRevision() const = 0;

  // Calls `sink` for every change with rv > `after_rv` to objects of `plural` (all kinds when empty) in
  // namespace `ns` (all when empty), in revision order, exactly once each, starting with the retained history.
  // `sink` runs on the store's publishing thread and must not block or call back into the store.
  // kGone when `after_rv` is older than the retained window.
  virtual StatusOr<std::unique_ptr<StoreWatch>> Watch(const std::string& plural, const std::string& ns,
                                                      uint64_t after_rv,
                                                      std::function<void(const StoreEvent&)> sink) = 0;
  // Number of live watches (for /metrics).
  virtual size_t WatchCount() const = 0;
};

}  // namespace stratus
