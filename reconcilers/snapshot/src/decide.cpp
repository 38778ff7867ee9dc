// The VolumeSnapshot reconciler's pure decisions (see decide.h): no API, storage, hypervisor or clock calls.
#include "stratus/snapshot/decide.h"

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/host/names.h"
#include "stratus/snapshot/snapshot.h"

namespace stratus::snapshot {
using runtime::Result;

namespace {
std::string StatusString(const json& obj, const char* field) {
  return obj.is_object() && obj.contains("status") && obj["status"].is_object() ? obj["status"].value(field, "") : "";
}
bool Active(host::DomainState s) { return s == host::DomainState::kRunning || s == host::DomainState::kPaused; }
}  // namespace

std::string StorageName(const json& snapshot) { return "snap-" + MetaString(snapshot, "uid"); }

std::string NodeOf(const json& snapshot, const json& volume) {
  std::string n = StatusString(snapshot, "node");
  if (!n.empty() || !volume.is_object() || !volume.contains("spec")) return n;
  return volume["spec"].value("nodeName", "");
}

Decision Decide(const Observed& o, const std::string& node) {
  Decision d;
  d.status = o.snap;
  json& st = d.status["status"];
  st["observedGeneration"] = o.snap["metadata"].value("generation", int64_t{1});
  d.next = Result::Done();
  const std::string vol_name = o.snap["spec"].value("volume", "");
  const bool recorded = !StatusString(o.snap, "path").empty();
  auto pending = [&](const std::string& reason, const std::string& msg, std::chrono::seconds again) {
    st["phase"] = "Pending";
    runtime::SetCondition(d.status, "Ready", "False", reason, msg);
    d.next = Result::After(again);
    return d;
  };

  // 1. Taken already: it stays as it was taken (the volume may change or go; the copy does not).
  if (recorded) {
    if (!o.storage) {
      std::string msg = "the snapshot's data (" + StatusString(o.snap, "path") + ") is gone from node " + node +
                        "; it is lost";
      st["phase"] = "Failed";
      if (runtime::SetCondition(d.status, "Ready", "False", "StorageLost", msg)) {
        d.events.push_back({"Warning", "StorageLost", msg});
      }
      d.next = Result::After(std::chrono::seconds(30));
      return d;
    }
    st["phase"] = "Ready";
    runtime::SetCondition(d.status, "Ready", "True", "Taken",
                          "copy of volume " + vol_name + " taken " + StatusString(o.snap, "takenAt") + " on node " +
                              node);
    return d;
  }
  d.remove_partial = o.storage.has_value();  // a copy without its record: an agent killed mid-copy

  // 2. What to copy.
  if (!o.volume.is_object()) {
    return pending("VolumeNotFound", "spec.volume: volume \"" + vol_name + "\" does not exist", std::chrono::seconds(10));
  }
  if (!o.pool) {
    st["phase"] = "Failed";
    std::string pool = o.volume["spec"].value("pool", "");
    runtime::SetCondition(d.status, "Ready", "False", "PoolNotFound",
                          "volume " + vol_name + "'s pool \"" + (pool.empty() ? "default" : pool) +
                              "\" is not configured on node " + node);
    return d;
  }
  if (StatusString(o.volume, "path").empty() || !o.source) {
    return pending("WaitingForVolume", "waiting for volume \"" + vol_name + "\" to be created on node " + node,
                   std::chrono::seconds(3));
  }
  d.format = o.pool->type == "logical" ? "raw" : "qcow2";
  const std::string src_format = o.source->format.empty() ? "raw" : o.source->format;
  const bool in_use = !o.holder.empty() && Active(o.holder_state);
  if (in_use && (src_format == "raw" || o.pool->type == "logical")) {
    // A raw copy is the whole disk: the guest would stay paused for all of it.
    return pending("VolumeInUse",
                   "spec.volume: volume \"" + vol_name + "\" is raw" +
                       (o.pool->type == "logical" ? " (LVM pool \"" + o.pool->name + "\")" : std::string()) +
                       " and in use by running instance \"" + o.holder +
                       "\"; a raw volume is snapshotted only while no guest writes it: stop the instance or "
                       "detach the volume (the snapshot is taken then)",
                   std::chrono::seconds(10));
  }

  // 3. Copy: say Creating (and claim it for this node) first, then pause, copy, resume.
  d.copy = true;
  d.pause = in_use && o.holder_state == host::DomainState::kRunning;  // a paused guest stays as it is
  if (in_use) d.domain = host::DomainName(MetaString(o.snap, "namespace"), o.holder);
  json creating = d.status;
  creating["status"]["phase"] = StatusString(o.snap, "phase") == "Failed" ? "Failed" : "Creating";  // no flapping
  creating["status"]["node"] = node;
  creating["status"]["pool"] = o.pool->name;
  runtime::SetCondition(creating, "Ready", "False", "Creating",
                        "copying volume " + vol_name + (d.pause ? " (its guest paused for the copy)" : ""));
  d.creating = std::move(creating);
  st["phase"] = "Ready";
  st["node"] = node;
  st["pool"] = o.pool->name;
  st["format"] = d.format;
  st["size"] = FormatQuantityBytes(o.source->capacity_bytes);
  st["volumeUID"] = MetaString(o.volume, "uid");
  return d;  // path, takenAt, pausedMillis and the Ready condition after the copy
}

DeleteDecision DecideDelete(const Observed& o) {
  DeleteDecision d;
  if (!o.backed.empty()) {
    std::string who;
    for (const auto& v : o.backed) who += (who.empty() ? "" : ", ") + v;
    d.status = runtime::DeleteBlockedStatus(
        o.snap, "volume " + who + " is a qcow2 overlay over this snapshot; delete it first and the deletion proceeds",
        &d.events);
    return d;
  }
  d.delete_storage = o.pool.has_value();
  return d;
}

}  // namespace stratus::snapshot
