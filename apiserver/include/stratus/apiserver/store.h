// The desired-state store: objects by key, a monotonic resourceVersion, and a change history that watches
// read from. `Store` is the interface; SqliteStore (sqlite_store.h) is the first implementation, a distributed
// one (etcd) can follow behind the same calls.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "stratus/core/object.h"
#include "stratus/core/status.h"

namespace stratus {

using ObjectPtr = std::shared_ptr<const json>;
// An object's JSON text (`json::dump()` of the stored object), made once when the object is written and shared by
// every GET, LIST and watch event that sends it (as Kubernetes' watch cache keeps each object's encoding once).
using EncodedPtr = std::shared_ptr<const std::string>;

// One stored object: the parsed form (for selectors and API logic) and its encoding (for responses).
struct StoredObject {
  ObjectPtr object;
  EncodedPtr encoded;
};

// Completion of a write: called exactly once, after the write's transaction is durable and its watch event has
// been published (or with the error). Runs on the store's writer thread (or on the caller's thread when the write
// is refused before it is queued): it must be quick, must not block, and must not wait for another write.
using WriteDone = std::function<void(StatusOr<StoredObject>)>;

// Starts an asynchronous write (`start` is given its completion) and waits for its result: the object as
// stored. The waiting forms of the Store's and the Registry's writes are this over their asynchronous ones.
template <typename Start>
StatusOr<json> AwaitWrite(Start start) {
  std::promise<StatusOr<json>> p;
  auto f = p.get_future();
  start([&p](StatusOr<StoredObject> r) {
    if (r.ok()) {
      p.set_value(*r->object);
    } else {
      p.set_value(r.status());
    }
  });
  return f.get();
}

// One change, as watches see it. `object` is the object after the change (for DELETED: its last state,
// carrying the deletion's resourceVersion).
struct StoreEvent {
  uint64_t rv = 0;
  std::string type;  // ADDED, MODIFIED, DELETED
  ObjectKey key;
  ObjectPtr object;
  EncodedPtr encoded;  // `object` as JSON text
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
  std::vector<EncodedPtr> encoded;  // items[i] as JSON text
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

  // Stores a new object under `key`; `done` gets it with metadata.resourceVersion set. kAlreadyExists when the
  // key is taken. Returns at once: `done` runs once the write is durable (see WriteDone).
  virtual void CreateAsync(const ObjectKey& key, json obj, WriteDone done) = 0;
  // Replaces the object. `expected_rv` 0 = unconditional; otherwise kConflict unless it equals the stored
  // version. kNotFound when absent.
  virtual void UpdateAsync(const ObjectKey& key, json obj, uint64_t expected_rv, WriteDone done) = 0;
  // Removes the object; `done` gets its last state (with the deletion's resourceVersion). Preconditions as Update.
  virtual void DeleteAsync(const ObjectKey& key, uint64_t expected_rv, WriteDone done) = 0;

  // The same writes, waiting for the result: durable when they return. Never call them from a WriteDone (the
  // writer thread would wait for itself).
  StatusOr<json> Create(const ObjectKey& key, json obj);
  StatusOr<json> Update(const ObjectKey& key, json obj, uint64_t expected_rv);
  StatusOr<json> Delete(const ObjectKey& key, uint64_t expected_rv);

  virtual StatusOr<StoredObject> GetStored(const ObjectKey& key) const = 0;
  StatusOr<ObjectPtr> Get(const ObjectKey& key) const {
    auto s = GetStored(key);
    if (!s.ok()) return s.status();
    return s->object;
  }
  // Objects of one kind ordered by (namespace, name), with their encodings.
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
