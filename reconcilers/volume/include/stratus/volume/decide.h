// The Volume reconciler's decisions, apart from its effects: Reconcile observes (caches, the API, storage, the
// holder's domain) into an `Observed`, `Decide` says what to do and what the status becomes, and Reconcile
// carries it out. Decide and DecideDelete are pure; the unit tests drive them with tables of observed states.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/host/storage.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/volume/volume.h"

namespace stratus::volume {

// How a CreatePlan makes the volume, in words ("qcow2 overlay").
const char* MethodName(CreatePlan::Method m);

struct Observed {
  json vol;                                 // the Volume (carrying our finalizer)
  std::optional<PoolConfig> pool;           // its pool on this node; unset when the node has no such pool
  std::string pools_here;                   // "a, b": the node's pools, for the message when it is unset
  std::optional<host::VolumeInfo> storage;  // its storage, when that exists
  // The API says the create completed (status.path). Read from the API itself when the cache did not say so, so
  // a status write of ours the cache has not shown yet is never taken for a partial create.
  bool recorded = false;
  // Where to make it from (spec.source): kind "" (blank), "image" or "volume"; `source_waiting` says why it
  // cannot be made yet.
  std::string source_kind;
  SourceInfo source;
  std::string source_waiting;
  std::vector<json> instances;              // the instances of its namespace on this node
  bool holder_running = false;              // the holder's domain runs (it has the volume attached)
};

using Event = runtime::PendingEvent;

struct Decision {
  bool remove_partial = false;        // storage without a completed create: removed before anything else
  std::optional<CreatePlan> create;   // make the storage
  std::optional<json> creating;       // the status written before a create (it may take long)
  ResizeAction resize = ResizeAction::kNone;
  uint64_t resize_to = 0;
  std::string domain, device;         // kGrowLive: the holder's domain and the volume's device in it
  json status;                        // the object as it should be written (status only differs)
  std::vector<Event> events;          // recorded once the status is written
  runtime::Result next;
  // After acting, status.path, capacity and format are read back from the storage.
  bool report_storage = false;
};
Decision Decide(const Observed& o, const Options& opts);

// Deletion of a Volume that carries our finalizer.
struct DeleteDecision {
  std::vector<std::string> users;  // instances that ask for it or still have it attached: the deletion waits
  bool delete_storage = false;     // in the node's pool (false when the node has no such pool: nothing to remove)
  json status;                     // while blocked
  std::vector<Event> events;
};
DeleteDecision DecideDelete(const Observed& o);

}  // namespace stratus::volume
