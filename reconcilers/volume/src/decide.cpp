// The Volume reconciler's pure decisions (see decide.h): no API, storage, hypervisor or clock calls here.
#include "stratus/volume/decide.h"

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/host/names.h"
#include "stratus/runtime/conditions.h"

namespace stratus::volume {
using runtime::Result;

const char* MethodName(CreatePlan::Method m) {
  switch (m) {
    case CreatePlan::Method::kBlank: return "blank";
    case CreatePlan::Method::kBackingFile: return "qcow2 overlay";
    case CreatePlan::Method::kFullCopy: return "full copy";
    case CreatePlan::Method::kCloneVolume: return "full copy of the source volume";
  }
  return "";
}

namespace {

std::string StatusString(const json& obj, const char* field) {
  return obj.contains("status") && obj["status"].is_object() ? obj["status"].value(field, "") : "";
}

// The device of `volume` in `inst`: from what the domain reports, else from what the spec asks.
std::string DeviceIn(const json& inst, const std::string& volume) {
  if (inst.contains("status") && inst["status"].contains("volumes")) {
    for (const auto& v : inst["status"]["volumes"]) {
      if (v.value("name", "") == volume) return v.value("device", "");
    }
  }
  for (const auto& u : VolumesOf(inst)) {
    if (u.volume == volume) return u.device;
  }
  return "";
}

}  // namespace

Decision Decide(const Observed& o, const Options& opts) {
  Decision d;
  const json& vol = o.vol;
  const std::string ns = MetaString(vol, "namespace"), name = MetaString(vol, "name");
  d.status = vol;
  json& st = d.status["status"];
  st["observedGeneration"] = vol["metadata"].value("generation", int64_t{1});
  d.next = Result::Done();
  if (!o.pool) {
    std::string pool_name = vol["spec"].value("pool", "");
    if (pool_name.empty()) pool_name = opts.default_pool;
    st["phase"] = "Failed";
    runtime::SetCondition(d.status, "Ready", "False", "PoolNotFound",
                          "spec.pool: node " + opts.node + " has no pool \"" + pool_name + "\" (it has: " +
                              o.pools_here + ")");
    return d;  // a spec change wakes us
  }
  const PoolConfig& pool = *o.pool;
  auto requested = ParseQuantityBytes(vol["spec"].value("size", ""));
  if (!requested.ok()) {  // the schema makes this unreachable
    st["phase"] = "Failed";
    runtime::SetCondition(d.status, "Ready", "False", "InvalidSize", "spec.size: " + requested.status().message());
    return d;
  }

  // 1. Storage: created once; storage that exists without a completed create is a partial create (agent killed).
  std::optional<host::VolumeInfo> storage = o.storage;
  if (storage && !o.recorded) {
    d.remove_partial = true;
    storage.reset();
  }
  if (!storage && o.recorded) {
    std::string msg = "the storage of this volume (" + StatusString(vol, "path") + ") is gone from node " + opts.node +
                      "; its data is lost";
    st["phase"] = "Failed";
    if (runtime::SetCondition(d.status, "Ready", "False", "StorageLost", msg)) {
      d.events.push_back({"Warning", "StorageLost", msg});
    }
    d.next = Result::After(std::chrono::seconds(30));
    return d;
  }
  if (!storage) {
    if (!o.source_waiting.empty()) {
      st["phase"] = "Pending";
      runtime::SetCondition(d.status, "Ready", "False", "WaitingForSource", o.source_waiting);
      d.next = Result::After(std::chrono::seconds(3));
      return d;
    }
    auto plan = PlanCreate(pool.type, vol["spec"].value("format", "qcow2"), *requested, o.source_kind,
                           o.source_kind.empty() ? nullptr : &o.source);
    if (!plan.ok()) {
      st["phase"] = "Failed";
      if (runtime::SetCondition(d.status, "Ready", "False", "InvalidSize", plan.status().message())) {
        d.events.push_back({"Warning", "InvalidSize", plan.status().message()});
      }
      return d;  // a spec change wakes us
    }
    // Say Creating first, except while retrying a failed create (a flapping status would defeat the backoff).
    if (StatusString(vol, "phase") != "Failed") {
      json creating = d.status;
      creating["status"]["phase"] = "Creating";
      runtime::SetCondition(creating, "Ready", "False", "Creating",
                            std::string("creating (") + MethodName(plan->method) + ")");
      d.creating = std::move(creating);
    }
    st["format"] = plan->format;
    if (o.source_kind == "snapshot" && plan->method == CreatePlan::Method::kBackingFile) {
      st["backingSnapshot"] = vol["spec"]["source"].value("snapshot", "");  // it keeps the snapshot
    }
    d.create = *plan;
  }

  // 2. Attachment: the holder is decided here from the instances' specs.
  std::string holder = ChooseHolder(vol, o.instances);
  json holder_obj;
  for (const auto& i : o.instances) {
    if (MetaString(i, "name") == holder) holder_obj = i;
  }
  const bool attached = !holder.empty() && ReportsAttached(holder_obj, name);
  const std::string device = holder.empty() ? "" : DeviceIn(holder_obj, name);

  // 3. Size: grow only; live through the hypervisor when a running domain has it attached.
  ResizeAction resize = storage ? PlanResize(storage->capacity_bytes, *requested, attached && o.holder_running)
                                 : ResizeAction::kNone;
  if (resize == ResizeAction::kRefuseShrink) {
    std::string msg = "spec.size " + FormatQuantityBytes(*requested) + " is smaller than the volume (" +
                      FormatQuantityBytes(storage->capacity_bytes) + "); volumes only grow";
    if (runtime::SetCondition(d.status, "Resized", "False", "ShrinkRefused", msg)) {
      d.events.push_back({"Warning", "ShrinkRefused", msg});
    }
  } else {
    runtime::RemoveCondition(d.status, "Resized");
    if (resize != ResizeAction::kNone) {
      d.resize = resize;
      d.resize_to = *requested;
      if (resize == ResizeAction::kGrowLive) {
        d.domain = host::DomainName(ns, holder);
        d.device = device;
      }
    }
  }

  // 4. Status mirrors storage (read back after acting) and the holder.
  d.report_storage = true;
  st["phase"] = attached ? "InUse" : "Available";
  st["node"] = opts.node;
  st["pool"] = pool.name;
  if (holder.empty()) {
    st.erase("attachment");
  } else {
    st["attachment"] = {{"instance", holder}, {"device", device}};
  }
  std::string msg = attached ? "attached to instance " + holder + " as " + device
                             : (holder.empty() ? "available on node " + opts.node
                                               : "reserved for instance " + holder + " (attaching)");
  runtime::SetCondition(d.status, "Ready", "True", attached ? "InUse" : "Available", msg);
  std::string before = vol.contains("status") && vol["status"].contains("attachment")
                           ? vol["status"]["attachment"].value("instance", "")
                           : "";
  if (before != holder) {
    d.events.push_back({"Normal", holder.empty() ? "Released" : "Reserved",
                        holder.empty() ? "released by instance " + before : "reserved for instance " + holder});
  }
  return d;
}

DeleteDecision DecideDelete(const Observed& o) {
  DeleteDecision d;
  const std::string name = MetaString(o.vol, "name");
  for (const auto& i : o.instances) {
    bool asks = false;
    if (MetaString(i, "deletionTimestamp").empty()) {
      // A root volume an instance is being rebuilt away from is no longer asked for.
      for (const auto& u : VolumesOf(i)) asks |= u.volume == name && !(u.root && RebuildReplaces(i, o.vol));
    }
    if (asks || ReportsAttached(i, name)) d.users.push_back(MetaString(i, "name"));
  }
  if (!d.users.empty()) {
    std::string who;
    for (const auto& u : d.users) who += (who.empty() ? "" : ", ") + u;
    d.status = runtime::DeleteBlockedStatus(o.vol,
                                            "volume is attached to instance " + who + "; remove it from spec.volumes "
                                            "there (or delete the instance) and the deletion proceeds",
                                            &d.events);
    return d;
  }
  d.delete_storage = o.pool.has_value();
  return d;
}

}  // namespace stratus::volume
