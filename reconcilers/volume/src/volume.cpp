#include "stratus/volume/volume.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/host/names.h"
#include "stratus/image/image.h"
#include "stratus/volume/decide.h"

namespace stratus::volume {
using runtime::Result;

namespace {
std::string StatusString(const json& obj, const char* field) {
  return obj.contains("status") && obj["status"].is_object() ? obj["status"].value(field, "") : "";
}
}  // namespace

std::string VolumeReconciler::StorageName(const json& volume) { return "vol-" + MetaString(volume, "uid"); }

namespace {
// Maps a source object (an Image, a VolumeSnapshot) to the volumes of its namespace made from it
// (spec.source.<field> names it).
runtime::KeyMapper MadeFrom(runtime::Informer* volumes, const char* field) {
  return [volumes, field](const std::string&, const json& src) {
    std::vector<std::string> keys;
    std::string ns = MetaString(src, "namespace"), name = MetaString(src, "name");
    for (const auto& v : volumes->List()) {
      if (MetaString(v, "namespace") == ns && v["spec"].contains("source") && v["spec"]["source"].is_object() &&
          v["spec"]["source"].value(field, "") == name) {
        keys.push_back(runtime::KeyFor(v));
      }
    }
    return keys;
  };
}
}  // namespace

VolumeReconciler::VolumeReconciler(ApiClient* client, runtime::Informer* volumes, runtime::Informer* instances,
                                   runtime::Informer* images, host::StoragePools* storage, host::Hypervisor* hv,
                                   Options opts, runtime::Informer* snapshots)
    : client_(client), volumes_(volumes), instances_(instances), images_(images), snapshots_(snapshots),
      storage_(storage), hv_(hv),
      opts_(std::move(opts)), events_(client, "volume-agent", opts_.node) {}

std::vector<json> VolumeReconciler::InstancesIn(const std::string& ns) const {
  std::vector<json> out;
  for (auto& i : instances_->List()) {
    if (MetaString(i, "namespace") == ns) out.push_back(std::move(i));
  }
  return out;
}

StatusOr<SourceInfo> VolumeReconciler::StorageSource(const std::string& pool, const std::string& name) {
  auto src = storage_->Volume(pool, name);
  if (!src.ok()) return src.status();
  return SourceInfo{pool, src->name, src->path, src->format.empty() ? "raw" : src->format, src->capacity_bytes};
}

StatusOr<Observed> VolumeReconciler::Observe(const json& vol) {
  Observed o;
  o.vol = vol;
  const std::string ns = MetaString(vol, "namespace"), name = MetaString(vol, "name");
  const json& spec = vol["spec"];
  o.instances = InstancesIn(ns);
  std::string pool_name = spec.value("pool", "");
  if (pool_name.empty()) pool_name = opts_.default_pool;
  auto pit = opts_.pools.find(pool_name);
  if (pit == opts_.pools.end()) {
    for (const auto& [n, p] : opts_.pools) o.pools_here += (o.pools_here.empty() ? "" : ", ") + n;
    return o;
  }
  o.pool = pit->second;
  auto info = storage_->Volume(o.pool->libvirt_name, StorageName(vol));
  if (info.ok()) o.storage = *info;
  else if (info.status().code() != Code::kNotFound) return info.status();
  o.recorded = !StatusString(vol, "path").empty();
  if (o.storage && !o.recorded) {
    // Storage without a recorded create: a partial create, unless our own status write is not in the cache yet.
    auto fresh = client_->Get("volumes", ns, name);
    if (!fresh.ok()) return fresh.status();
    if (MetaString(*fresh, "uid") == MetaString(vol, "uid") && !StatusString(*fresh, "path").empty()) {
      o.vol = *fresh;
      o.recorded = true;
    }
  }
  if (!o.storage) {  // what to make it from
    if (spec.contains("source") && !spec["source"].value("image", "").empty()) {
      o.source_kind = "image";
      std::string img_name = spec["source"]["image"];
      json img = images_->Get(ns + "/" + img_name);
      if (img.is_null()) {
        o.source_waiting = "image \"" + img_name + "\" does not exist";
      } else if (img["spec"].value("type", "disk") != "disk") {
        o.source_waiting = "image \"" + img_name + "\" is a " + img["spec"].value("type", "") + " image, not a disk image";
      } else if (!image::CachedOn(img, opts_.node)) {
        json e = image::NodeEntry(img, opts_.node);
        o.source_waiting = "waiting for image \"" + img_name + "\" on node " + opts_.node + " (" +
                           (e.is_object() ? e.value("phase", "Pending") : std::string("Pending")) + ")";
      } else if (auto cached = storage_->Volume(opts_.image_pool, image::CacheVolumeName(img)); !cached.ok()) {
        o.source_waiting = "waiting for image \"" + img_name + "\" to be cached on node " + opts_.node;
      } else {
        o.source.pool = opts_.image_pool;
        o.source.name = cached->name;
        o.source.path = cached->path;
        json here = image::NodeEntry(img, opts_.node);  // what this node imported
        o.source.format = here.value("format", "") == "qcow2" ? "qcow2" : "raw";
        o.source.virtual_bytes = here.value("virtualSize", uint64_t{0});
        if (o.source.virtual_bytes == 0) o.source.virtual_bytes = cached->capacity_bytes;
      }
    } else if (spec.contains("source") && !spec["source"].value("volume", "").empty()) {
      o.source_kind = "volume";
      std::string src_name = spec["source"]["volume"];
      json sv = volumes_->Get(ns + "/" + src_name);
      if (sv.is_null()) {
        o.source_waiting = "source volume \"" + src_name + "\" does not exist";
      } else if (sv["spec"].value("nodeName", "") != opts_.node) {
        o.source_waiting = "source volume \"" + src_name + "\" is on node \"" + sv["spec"].value("nodeName", "") +
                           "\", not on " + opts_.node + " (local storage: clones are made next to their source)";
      } else if (StatusString(sv, "path").empty()) {
        o.source_waiting = "waiting for source volume \"" + src_name + "\" to be created";
      } else {
        std::string sp = sv["spec"].value("pool", "");
        auto it = opts_.pools.find(sp.empty() ? opts_.default_pool : sp);
        if (it == opts_.pools.end()) return Internal("source volume's pool is not configured on this node");
        auto src = StorageSource(it->second.libvirt_name, StorageName(sv));
        if (!src.ok()) return src.status();
        o.source = *src;
      }
    } else if (spec.contains("source") && !spec["source"].value("snapshot", "").empty()) {
      o.source_kind = "snapshot";
      std::string snap_name = spec["source"]["snapshot"];
      json sn = snapshots_ ? snapshots_->Get(ns + "/" + snap_name) : json();
      if (snapshots_ == nullptr) {
        o.source_waiting = "this agent does not watch VolumeSnapshots";
      } else if (sn.is_null()) {
        o.source_waiting = "snapshot \"" + snap_name + "\" does not exist";
      } else if (!MetaString(sn, "deletionTimestamp").empty()) {
        o.source_waiting = "snapshot \"" + snap_name + "\" is being deleted";
      } else if (StatusString(sn, "phase") != "Ready" || StatusString(sn, "path").empty()) {
        o.source_waiting = "waiting for snapshot \"" + snap_name + "\" to be Ready (" +
                           (StatusString(sn, "phase").empty() ? "Pending" : StatusString(sn, "phase")) + ")";
      } else if (StatusString(sn, "node") != opts_.node) {
        o.source_waiting = "snapshot \"" + snap_name + "\" is on node \"" + StatusString(sn, "node") + "\", not on " +
                           opts_.node + " (local storage: volumes are made next to their snapshot)";
      } else {
        auto it = opts_.pools.find(StatusString(sn, "pool").empty() ? opts_.default_pool : StatusString(sn, "pool"));
        if (it == opts_.pools.end()) return Internal("snapshot's pool is not configured on this node");
        auto src = StorageSource(it->second.libvirt_name, "snap-" + MetaString(sn, "uid"));
        if (!src.ok()) return src.status();
        o.source = *src;
      }
    }
  }
  // Whether the holder's domain runs decides a live or an offline resize.
  std::string holder = ChooseHolder(o.vol, o.instances);
  if (!holder.empty()) {
    auto di = hv_->Lookup(host::DomainName(ns, holder));
    o.holder_running = di.ok() && (di->state == host::DomainState::kRunning || di->state == host::DomainState::kPaused);
  }
  return o;
}

StatusOr<Result> VolumeReconciler::Delete(const json& vol, const std::string& key) {
  auto o = Observe(vol);
  if (!o.ok()) return o.status();
  DeleteDecision d = DecideDelete(*o);
  if (!d.users.empty()) {
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, d.status);
    if (!u.ok()) return u.status();
    for (const auto& e : d.events) events_.Record(vol, e.type, e.reason, e.message);
    return Result::After(std::chrono::seconds(5));
  }
  if (d.delete_storage) {
    Status s = storage_->DeleteVolume(o->pool->libvirt_name, StorageName(vol));
    if (!s.ok()) {
      json failed = vol;
      failed["status"]["phase"] = "Deleting";
      runtime::SetCondition(failed, "Ready", "False", "DeleteFailed", s.message());
      runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "volumes", vol, failed), "status of volume " + key);
      events_.Record(vol, "Warning", "DeleteFailed", s.message());
      return s;
    }
  }
  Status rf = runtime::RemoveFinalizer(client_, "volumes", vol, kFinalizer);
  if (!rf.ok()) return rf;
  spdlog::info("volume deleted: volume={} node={}", key, opts_.node);
  return Result::Done();
}

StatusOr<Result> VolumeReconciler::Reconcile(const std::string& key) {
  json vol = volumes_->Get(key);
  if (vol.is_null()) return Result::Done();
  if (vol["spec"].value("nodeName", "") != opts_.node) return Result::Done();
  if (!MetaString(vol, "deletionTimestamp").empty()) {
    if (!runtime::HasFinalizer(vol, kFinalizer)) return Result::Done();
    return Delete(vol, key);
  }
  std::string pool_name = vol["spec"].value("pool", "");
  if (!runtime::HasFinalizer(vol, kFinalizer) && opts_.pools.count(pool_name.empty() ? opts_.default_pool : pool_name)) {
    auto fin = runtime::AddFinalizer(client_, "volumes", vol, kFinalizer);
    if (!fin.ok()) return fin.status();
    vol = *fin;
  }
  auto observed = Observe(vol);
  if (!observed.ok()) return observed.status();
  vol = observed->vol;  // the API's newer copy when the cache lagged
  Decision d = Decide(*observed, opts_);

  // Act: in order, then one status write (two around a create, which may take long).
  const std::string sname = StorageName(vol);
  const std::string lv_pool = observed->pool ? observed->pool->libvirt_name : "";
  if (d.remove_partial) {
    spdlog::warn("volume storage without a completed create, removing it: volume={} storage={}", key, sname);
    Status s = storage_->DeleteVolume(lv_pool, sname);
    if (!s.ok()) return s;
  }
  json cur = vol;
  if (d.creating) {
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", cur, *d.creating);
    if (!u.ok()) return u.status();
    cur = *u;
  }
  if (d.create) {
    const CreatePlan& plan = *d.create;
    StatusOr<host::VolumeInfo> made = Status(Code::kInternal, "no method");
    switch (plan.method) {
      case CreatePlan::Method::kBlank:
        made = storage_->CreateVolume(lv_pool, sname, plan.bytes, plan.format);
        break;
      case CreatePlan::Method::kBackingFile:
        made = storage_->CreateVolume(lv_pool, sname, plan.bytes, "qcow2", plan.source_path, plan.source_format);
        break;
      case CreatePlan::Method::kFullCopy:
      case CreatePlan::Method::kCloneVolume:
        made = storage_->CloneVolume(lv_pool, sname, plan.source_pool, plan.source_name, plan.bytes, plan.format);
        break;
    }
    if (!made.ok()) {
      // Nothing half-made stays behind.
      runtime::WarnIfFailed(storage_->DeleteVolume(lv_pool, sname), "removing half-made volume " + sname);
      json failed = cur;
      failed["status"]["phase"] = "Failed";
      runtime::SetCondition(failed, "Ready", "False", "CreateFailed", made.status().message());
      runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "volumes", cur, failed), "status of volume " + key);
      events_.Record(vol, "Warning", "CreateFailed", made.status().message());
      return made.status();
    }
    events_.Record(vol, "Normal", "Created",
                   "created in pool " + observed->pool->name + " on node " + opts_.node + " (" +
                       MethodName(plan.method) + ")");
    spdlog::info("volume created: volume={} pool={} path={} method={}", key, lv_pool, made->path,
                 MethodName(plan.method));
  }
  if (d.resize == ResizeAction::kGrowLive || d.resize == ResizeAction::kGrowOffline) {
    auto before = observed->storage ? observed->storage->capacity_bytes : 0;
    Status s = d.resize == ResizeAction::kGrowLive ? hv_->BlockResize(d.domain, d.device, d.resize_to)
                                                   : Status(Code::kConflict, "offline");
    bool live = s.ok();
    // The domain stopped in between (kConflict): grow the storage itself.
    if (!s.ok() && s.code() == Code::kConflict) s = storage_->ResizeVolume(lv_pool, sname, d.resize_to);
    if (!s.ok()) {
      runtime::SetCondition(d.status, "Resized", "False", "ResizeFailed", s.message());
      runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "volumes", cur, d.status), "status of volume " + key);
      events_.Record(vol, "Warning", "ResizeFailed", s.message());
      return s;
    }
    const json& att = d.status["status"].value("attachment", json::object());
    events_.Record(vol, "Normal", "Resized",
                   "grown from " + FormatQuantityBytes(before) + " to " + FormatQuantityBytes(d.resize_to) +
                       (live ? " while attached to " + att.value("instance", "") : ""));
  }
  if (d.report_storage) {
    auto info = storage_->Volume(lv_pool, sname);
    if (!info.ok()) return info.status();
    json& st = d.status["status"];
    st["capacity"] = FormatQuantityBytes(info->capacity_bytes);
    st["path"] = info->path;
    if (!info->format.empty()) st["format"] = info->format;
  }
  // The status was decided from `vol`; write it over what the API has now.
  json desired = cur;
  desired["status"] = d.status["status"];
  auto u = runtime::UpdateStatusIfChanged(client_, "volumes", cur, desired);
  if (!u.ok()) return u.status();
  for (const auto& e : d.events) events_.Record(vol, e.type, e.reason, e.message);
  return d.next;
}

std::vector<runtime::WatchSpec> VolumeReconciler::Watches() {
  runtime::Informer* volumes = volumes_;
  std::vector<runtime::WatchSpec> w = {
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
      // A snapshot or a disk image becoming Ready wakes the volumes made from it.
      {snapshots_, MadeFrom(volumes, "snapshot")},
      {images_, MadeFrom(volumes, "image")},
  };
  w.erase(std::remove_if(w.begin(), w.end(), [](const runtime::WatchSpec& s) { return s.informer == nullptr; }),
          w.end());
  return w;
}

}  // namespace stratus::volume
