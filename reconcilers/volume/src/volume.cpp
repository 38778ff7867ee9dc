#include "stratus/volume/volume.h"

#include <spdlog/spdlog.h>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/image/image.h"
#include "stratus/instance/instance.h"

namespace stratus::volume {
using runtime::Result;

namespace {

std::string StatusString(const json& obj, const char* field) {
  return obj.contains("status") && obj["status"].is_object() ? obj["status"].value(field, "") : "";
}

const char* MethodName(CreatePlan::Method m) {
  switch (m) {
    case CreatePlan::Method::kBlank: return "blank";
    case CreatePlan::Method::kBackingFile: return "qcow2 over the cached image";
    case CreatePlan::Method::kFullCopy: return "full copy of the image";
    case CreatePlan::Method::kCloneVolume: return "full copy of the source volume";
  }
  return "";
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

std::string VolumeReconciler::StorageName(const json& volume) { return "vol-" + MetaString(volume, "uid"); }

VolumeReconciler::VolumeReconciler(ApiClient* client, runtime::Informer* volumes, runtime::Informer* instances,
                                   runtime::Informer* images, host::StoragePools* storage, host::Hypervisor* hv,
                                   Options opts)
    : client_(client), volumes_(volumes), instances_(instances), images_(images), storage_(storage), hv_(hv),
      opts_(std::move(opts)), events_(client, "volume-agent", opts_.node) {}

std::vector<json> VolumeReconciler::InstancesIn(const std::string& ns) const {
  std::vector<json> out;
  for (auto& i : instances_->List()) {
    if (MetaString(i, "namespace") == ns) out.push_back(std::move(i));
  }
  return out;
}

StatusOr<Result> VolumeReconciler::Delete(const json& vol, const std::string& key) {
  auto [ns, name] = runtime::SplitKey(key);
  std::vector<std::string> users;
  for (const auto& i : InstancesIn(ns)) {
    bool asks = false;
    if (MetaString(i, "deletionTimestamp").empty()) {
      for (const auto& u : VolumesOf(i)) asks |= u.volume == name;
    }
    if (asks || ReportsAttached(i, name)) users.push_back(MetaString(i, "name"));
  }
  if (!users.empty()) {
    std::string who;
    for (const auto& u : users) who += (who.empty() ? "" : ", ") + u;
    std::string msg = "volume is attached to instance " + who + "; remove it from spec.volumes there (or delete "
                      "the instance) and the deletion proceeds";
    json d = vol;
    d["status"]["phase"] = "Deleting";
    bool changed = runtime::SetCondition(d, "Ready", "False", "DeleteBlocked", msg);
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, d);
    if (!u.ok()) return u.status();
    if (changed) events_.Record(vol, "Warning", "DeleteBlocked", msg);
    return Result::After(std::chrono::seconds(5));
  }
  std::string pool_name = vol["spec"].value("pool", "");
  if (pool_name.empty()) pool_name = opts_.default_pool;
  auto pool = opts_.pools.find(pool_name);
  if (pool != opts_.pools.end()) {
    Status s = storage_->DeleteVolume(pool->second.libvirt_name, StorageName(vol));
    if (!s.ok()) {
      json d = vol;
      d["status"]["phase"] = "Deleting";
      runtime::SetCondition(d, "Ready", "False", "DeleteFailed", s.message());
      runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "volumes", vol, d), "status of volume " + key);
      events_.Record(vol, "Warning", "DeleteFailed", s.message());
      return s;
    }
  }
  {
    std::lock_guard lock(mu_);
    made_.erase(StorageName(vol));
  }
  Status rf = runtime::RemoveFinalizer(client_, "volumes", vol, kFinalizer);
  if (!rf.ok()) return rf;
  spdlog::info("volume deleted: volume={} node={}", key, opts_.node);
  return Result::Done();
}

StatusOr<Result> VolumeReconciler::Create(const json& vol, const PoolConfig& pool, json& desired) {
  auto [ns, name] = runtime::SplitKey(runtime::KeyFor(vol));
  const json& spec = vol["spec"];
  auto requested = ParseQuantityBytes(spec.value("size", ""));
  if (!requested.ok()) return requested.status();  // the schema makes this unreachable
  std::string kind;
  SourceInfo src;
  std::string waiting;
  if (spec.contains("source") && !spec["source"].value("image", "").empty()) {
    kind = "image";
    std::string img_name = spec["source"]["image"];
    json img = images_->Get(ns + "/" + img_name);
    if (img.is_null()) {
      waiting = "image \"" + img_name + "\" does not exist";
    } else if (img["spec"].value("type", "disk") != "disk") {
      waiting = "image \"" + img_name + "\" is a " + img["spec"].value("type", "") + " image, not a disk image";
    } else if (!image::CachedOn(img, opts_.node)) {
      json e = image::NodeEntry(img, opts_.node);
      waiting = "waiting for image \"" + img_name + "\" on node " + opts_.node + " (" +
                (e.is_object() ? e.value("phase", "Pending") : std::string("Pending")) + ")";
    } else {
      auto cached = storage_->Volume(opts_.image_pool, image::CacheVolumeName(img));
      if (!cached.ok()) {
        waiting = "waiting for image \"" + img_name + "\" to be cached on node " + opts_.node;
      } else {
        src.pool = opts_.image_pool;
        src.name = cached->name;
        src.path = cached->path;
        json here = image::NodeEntry(img, opts_.node);  // what this node imported
        src.format = here.value("format", "") == "qcow2" ? "qcow2" : "raw";
        src.virtual_bytes = here.value("virtualSize", uint64_t{0});
        if (src.virtual_bytes == 0) src.virtual_bytes = cached->capacity_bytes;
      }
    }
  } else if (spec.contains("source") && !spec["source"].value("volume", "").empty()) {
    kind = "volume";
    std::string src_name = spec["source"]["volume"];
    json sv = volumes_->Get(ns + "/" + src_name);
    if (sv.is_null()) {
      waiting = "source volume \"" + src_name + "\" does not exist";
    } else if (sv["spec"].value("nodeName", "") != opts_.node) {
      waiting = "source volume \"" + src_name + "\" is on node \"" + sv["spec"].value("nodeName", "") +
                "\", not on " + opts_.node + " (local storage: clones are made next to their source)";
    } else if (StatusString(sv, "path").empty()) {
      waiting = "waiting for source volume \"" + src_name + "\" to be created";
    } else {
      std::string sp = sv["spec"].value("pool", "");
      auto it = opts_.pools.find(sp.empty() ? opts_.default_pool : sp);
      if (it == opts_.pools.end()) return Internal("source volume's pool is not configured on this node");
      auto info = storage_->Volume(it->second.libvirt_name, StorageName(sv));
      if (!info.ok()) return info.status();
      src.pool = it->second.libvirt_name;
      src.name = info->name;
      src.path = info->path;
      src.format = info->format.empty() ? "raw" : info->format;
      src.virtual_bytes = info->capacity_bytes;
    }
  }
  if (!waiting.empty()) {
    desired["status"]["phase"] = "Pending";
    runtime::SetCondition(desired, "Ready", "False", "WaitingForSource", waiting);
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, desired);
    if (!u.ok()) return u.status();
    return Result::After(std::chrono::seconds(3));
  }
  auto plan = PlanCreate(pool.type, spec.value("format", "qcow2"), *requested, kind, kind.empty() ? nullptr : &src);
  if (!plan.ok()) {
    desired["status"]["phase"] = "Failed";
    bool changed = runtime::SetCondition(desired, "Ready", "False", "InvalidSize", plan.status().message());
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, desired);
    if (changed) events_.Record(vol, "Warning", "InvalidSize", plan.status().message());
    return u.ok() ? Result::Done() : StatusOr<Result>(u.status());  // a spec change wakes us
  }
  // Say Creating, except while retrying a failed create (flapping status would defeat the retry backoff).
  if (StatusString(vol, "phase") != "Failed") {
    desired["status"]["phase"] = "Creating";
    runtime::SetCondition(desired, "Ready", "False", "Creating",
                          std::string("creating (") + MethodName(plan->method) + ")");
  }
  auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, desired);
  if (!u.ok()) return u.status();
  json cur = *u;
  std::string sname = StorageName(vol);
  StatusOr<host::VolumeInfo> made = Status(Code::kInternal, "no method");
  switch (plan->method) {
    case CreatePlan::Method::kBlank:
      made = storage_->CreateVolume(pool.libvirt_name, sname, plan->bytes, plan->format);
      break;
    case CreatePlan::Method::kBackingFile:
      made = storage_->CreateVolume(pool.libvirt_name, sname, plan->bytes, "qcow2", plan->source_path,
                                    plan->source_format);
      break;
    case CreatePlan::Method::kFullCopy:
    case CreatePlan::Method::kCloneVolume:
      made = storage_->CloneVolume(pool.libvirt_name, sname, plan->source_pool, plan->source_name, plan->bytes,
                                   plan->format);
      break;
  }
  if (!made.ok()) {
    // Nothing half-made stays behind.
    runtime::WarnIfFailed(storage_->DeleteVolume(pool.libvirt_name, sname), "removing half-made volume " + sname);
    json d = cur;
    d["status"]["phase"] = "Failed";
    runtime::SetCondition(d, "Ready", "False", "CreateFailed", made.status().message());
    runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "volumes", cur, d), "status of volume " + runtime::KeyFor(vol));
    events_.Record(vol, "Warning", "CreateFailed", made.status().message());
    return made.status();
  }
  {
    std::lock_guard lock(mu_);
    made_.insert(sname);
  }
  events_.Record(vol, "Normal", "Created",
                 "created in pool " + pool.name + " on node " + opts_.node + " (" + MethodName(plan->method) + ")");
  spdlog::info("volume created: volume={}/{} pool={} path={} method={}", ns, name, pool.libvirt_name, made->path,
               MethodName(plan->method));
  desired = cur;
  desired["status"]["format"] = plan->format;
  return Result::Done();
}

StatusOr<Result> VolumeReconciler::Reconcile(const std::string& key) {
  json vol = volumes_->Get(key);
  if (vol.is_null()) return Result::Done();
  if (vol["spec"].value("nodeName", "") != opts_.node) return Result::Done();
  auto [ns, name] = runtime::SplitKey(key);
  if (!MetaString(vol, "deletionTimestamp").empty()) {
    if (!runtime::HasFinalizer(vol, kFinalizer)) return Result::Done();
    return Delete(vol, key);
  }
  json desired = vol;
  auto write = [&]() -> Status {
    desired["status"]["observedGeneration"] = vol["metadata"].value("generation", int64_t{1});
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, desired);
    return u.ok() ? Status::Ok() : u.status();
  };
  std::string pool_name = vol["spec"].value("pool", "");
  if (pool_name.empty()) pool_name = opts_.default_pool;
  auto pit = opts_.pools.find(pool_name);
  if (pit == opts_.pools.end()) {
    std::string have;
    for (const auto& [n, p] : opts_.pools) have += (have.empty() ? "" : ", ") + n;
    desired["status"]["phase"] = "Failed";
    runtime::SetCondition(desired, "Ready", "False", "PoolNotFound",
                          "spec.pool: node " + opts_.node + " has no pool \"" + pool_name + "\" (it has: " + have + ")");
    Status s = write();
    if (!s.ok()) return s;
    return Result::Done();
  }
  const PoolConfig& pool = pit->second;
  if (!runtime::HasFinalizer(vol, kFinalizer)) {
    auto fin = runtime::AddFinalizer(client_, "volumes", vol, kFinalizer);
    if (!fin.ok()) return fin.status();
    vol = *fin;
    desired = vol;
  }

  // 1. Storage: created once; a volume that exists without our record of it is a partial create (agent killed).
  std::string sname = StorageName(vol);
  auto info = storage_->Volume(pool.libvirt_name, sname);
  bool recorded = !StatusString(vol, "path").empty();
  {
    std::lock_guard lock(mu_);
    recorded |= made_.count(sname) > 0;
  }
  if (info.ok() && !recorded) {
    spdlog::warn("volume storage without a completed create, removing it: volume={} storage={}", key, sname);
    Status d = storage_->DeleteVolume(pool.libvirt_name, sname);
    if (!d.ok()) return d;
    info = Status(Code::kNotFound, "removed partial volume");
  }
  if (!info.ok() && info.status().code() != Code::kNotFound) return info.status();
  if (!info.ok() && recorded) {
    std::string msg = "the storage of this volume (" + StatusString(vol, "path") + ") is gone from node " +
                      opts_.node + "; its data is lost";
    desired["status"]["phase"] = "Failed";
    bool changed = runtime::SetCondition(desired, "Ready", "False", "StorageLost", msg);
    Status s = write();
    if (changed) events_.Record(vol, "Warning", "StorageLost", msg);
    if (!s.ok()) return s;
    return Result::After(std::chrono::seconds(30));
  }
  if (!info.ok()) {
    auto r = Create(vol, pool, desired);
    if (!r.ok()) return r.status();
    bool made;
    {
      std::lock_guard lock(mu_);
      made = made_.count(sname) > 0;
    }
    if (!made) return *r;  // waiting for a source, or an invalid request
    vol = desired;  // Create wrote status: later writes must pin the new resourceVersion, not the informer's
    info = storage_->Volume(pool.libvirt_name, sname);
    if (!info.ok()) return info.status();
  }

  // 2. Attachment: the holder is decided here from the instances' specs.
  std::vector<json> insts = InstancesIn(ns);
  std::string holder = ChooseHolder(vol, insts);
  json holder_obj;
  for (const auto& i : insts) {
    if (MetaString(i, "name") == holder) holder_obj = i;
  }
  bool attached = !holder.empty() && ReportsAttached(holder_obj, name);
  std::string device = holder.empty() ? "" : DeviceIn(holder_obj, name);

  // 3. Size: grow only; live through the hypervisor when a running domain has it attached.
  auto requested = ParseQuantityBytes(vol["spec"].value("size", ""));
  if (!requested.ok()) return requested.status();
  bool running = false;
  std::string dom;
  if (attached) {
    dom = instance::DomainName(ns, holder);
    auto di = hv_->Lookup(dom);
    running = di.ok() && (di->state == host::DomainState::kRunning || di->state == host::DomainState::kPaused);
  }
  switch (PlanResize(info->capacity_bytes, *requested, running)) {
    case ResizeAction::kNone:
      runtime::RemoveCondition(desired, "Resized");
      break;
    case ResizeAction::kRefuseShrink: {
      std::string msg = "spec.size " + FormatQuantityBytes(*requested) + " is smaller than the volume (" +
                        FormatQuantityBytes(info->capacity_bytes) + "); volumes only grow";
      if (runtime::SetCondition(desired, "Resized", "False", "ShrinkRefused", msg)) {
        events_.Record(vol, "Warning", "ShrinkRefused", msg);
      }
      break;
    }
    case ResizeAction::kGrowLive:
    case ResizeAction::kGrowOffline: {
      Status s = running ? hv_->BlockResize(dom, device, *requested) : Status(Code::kConflict, "offline");
      bool live = s.ok();
      if (!s.ok() && s.code() == Code::kConflict) s = storage_->ResizeVolume(pool.libvirt_name, sname, *requested);
      if (!s.ok()) {
        runtime::SetCondition(desired, "Resized", "False", "ResizeFailed", s.message());
        runtime::WarnIfFailed(write(), "status of volume " + key);
        events_.Record(vol, "Warning", "ResizeFailed", s.message());
        return s;
      }
      std::string msg = "grown from " + FormatQuantityBytes(info->capacity_bytes) + " to " +
                        FormatQuantityBytes(*requested) + (live ? " while attached to " + holder : "");
      events_.Record(vol, "Normal", "Resized", msg);
      runtime::RemoveCondition(desired, "Resized");
      auto again = storage_->Volume(pool.libvirt_name, sname);
      if (!again.ok()) return again.status();
      info = again;
      break;
    }
  }

  // 4. Status mirrors storage and the holder.
  desired["status"]["phase"] = attached ? "InUse" : "Available";
  desired["status"]["capacity"] = FormatQuantityBytes(info->capacity_bytes);
  desired["status"]["node"] = opts_.node;
  desired["status"]["pool"] = pool.name;
  desired["status"]["path"] = info->path;
  if (!info->format.empty()) desired["status"]["format"] = info->format;
  if (holder.empty()) {
    desired["status"].erase("attachment");
  } else {
    desired["status"]["attachment"] = {{"instance", holder}, {"device", device}};
  }
  std::string msg = attached ? "attached to instance " + holder + " as " + device
                             : (holder.empty() ? "available on node " + opts_.node
                                               : "reserved for instance " + holder + " (attaching)");
  runtime::SetCondition(desired, "Ready", "True", attached ? "InUse" : "Available", msg);
  std::string before_holder = vol.contains("status") && vol["status"].contains("attachment")
                                  ? vol["status"]["attachment"].value("instance", "")
                                  : "";
  Status s = write();
  if (!s.ok()) return s;
  if (before_holder != holder) {
    events_.Record(vol, "Normal", holder.empty() ? "Released" : "Reserved",
                   holder.empty() ? "released by instance " + before_holder : "reserved for instance " + holder);
  }
  return Result::Done();
}

std::vector<runtime::WatchSpec> VolumeReconciler::Watches() {
  runtime::Informer* volumes = volumes_;
  return {
      // Its own objects, with a drift check of what is on the node.
      {volumes_, nullptr, kDriftCheck},
      // An instance changing what it asks for (or what its domain has) wakes the volumes concerned, old and new.
      {instances_,
       [](const std::string&, const json& inst) {
         std::vector<std::string> keys;
         std::string ns = MetaString(inst, "namespace");
         for (const auto& u : VolumesOf(inst)) keys.push_back(ns + "/" + u.volume);
         if (inst.contains("status") && inst["status"].contains("volumes")) {
           for (const auto& v : inst["status"]["volumes"]) keys.push_back(ns + "/" + v.value("name", ""));
         }
         return keys;
       }},
      // A disk image becoming Ready wakes the volumes made from it.
      {images_,
       [volumes](const std::string&, const json& img) {
         std::vector<std::string> keys;
         std::string ns = MetaString(img, "namespace"), name = MetaString(img, "name");
         for (const auto& v : volumes->List()) {
           if (MetaString(v, "namespace") == ns && v["spec"].contains("source") &&
               v["spec"]["source"].value("image", "") == name) {
             keys.push_back(runtime::KeyFor(v));
           }
         }
         return keys;
       }},
  };
}

}  // namespace stratus::volume
