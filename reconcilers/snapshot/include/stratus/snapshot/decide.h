// The VolumeSnapshot reconciler's decisions, apart from its effects: Reconcile observes (caches, storage, the
// holder's domain) into an `Observed`, `Decide` says what to do and what the status becomes, and Reconcile
// carries it out. Decide and DecideDelete are pure; unit tests drive them with tables of observed states.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/host/hypervisor.h"
#include "stratus/host/storage.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/volume/volume.h"

namespace stratus::snapshot {

struct Observed {
  json snap;                                   // the VolumeSnapshot (carrying our finalizer once it is ours)
  json volume;                                 // its source Volume; null when missing
  std::optional<volume::PoolConfig> pool;      // the pool that holds (or will hold) the snapshot on this node
  std::optional<host::VolumeInfo> storage;     // the snapshot's storage, when it exists
  std::optional<host::VolumeInfo> source;      // the volume's storage, when it exists
  std::string holder;                          // the instance the volume is attached to ("" when none)
  host::DomainState holder_state = host::DomainState::kNotFound;  // that instance's domain
  std::vector<std::string> backed;             // volumes that are (or are about to be) overlays over the snapshot
};

struct Decision {
  bool remove_partial = false;          // storage without a completed copy: removed first
  bool copy = false;                    // take the copy now
  std::string format;                   // of the copy: qcow2 (dir pool) or raw (LVM pool)
  bool pause = false;                   // pause the holder's domain for the copy, and resume it after
  std::string domain;                   // the holder's domain (pause)
  std::optional<json> creating;         // the status written before the copy (it claims the snapshot for the node)
  json status;                          // the object as it should be written after acting
  std::vector<runtime::PendingEvent> events;
  runtime::Result next;
};
Decision Decide(const Observed& o, const std::string& node);

struct DeleteDecision {
  bool delete_storage = false;
  json status;                          // while blocked
  std::vector<runtime::PendingEvent> events;
};
DeleteDecision DecideDelete(const Observed& o);

}  // namespace stratus::snapshot
