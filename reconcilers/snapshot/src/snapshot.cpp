#include "stratus/snapshot/snapshot.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "stratus/core/object.h"
#include "stratus/host/names.h"
#include "stratus/snapshot/decide.h"

namespace stratus::snapshot {
using runtime::Result;

namespace {
std::string StatusString(const json& obj, const char* field) {
  return obj.is_object() && obj.contains("status") && obj["status"].is_object() ? obj["status"].value(field, "") : "";
}
}  // namespace

SnapshotReconciler::SnapshotReconciler(ApiClient* client, runtime::Informer* snapshots, runtime::Informer* volumes,
                                       host::StoragePools* storage, host::Hypervisor* hv, volume::Options opts)
    : client_(client), snapshots_(snapshots), volumes_(volumes), storage_(storage), hv_(hv), opts_(std::move(opts)),
      events_(client, "snapshot-agent", opts_.node) {}

StatusOr<Observed> SnapshotReconciler::Observe(const json& snap) {
  Observed o;
  o.snap = snap;
  const std::string ns = MetaString(snap, "namespace"), name = MetaString(snap, "name");
  json vol = volumes_->Get(ns + "/" + snap["spec"].value("volume", ""));
  if (!vol.is_null()) o.volume = vol;
  // The pool: where it was taken, else the volume's.
  std::string pool = StatusString(snap, "pool");
  if (pool.empty() && o.volume.is_object()) pool = o.volume["spec"].value("pool", "");
  if (pool.empty()) pool = opts_.default_pool;
  auto pit = opts_.pools.find(pool);
  if (pit != opts_.pools.end()) o.pool = pit->second;
  for (const auto& v : volumes_->List()) {
    if (MetaString(v, "namespace") != ns) continue;
    bool over = StatusString(v, "backingSnapshot") == name;
    // One about to be made from it may become an overlay over it.
    bool about_to = v["spec"].contains("source") && v["spec"]["source"].value("snapshot", "") == name &&
                    StatusString(v, "path").empty() && MetaString(v, "deletionTimestamp").empty();
    if (over || about_to) o.backed.push_back(MetaString(v, "name"));
  }
  if (!o.pool) return o;
  auto info = storage_->Volume(o.pool->libvirt_name, StorageName(snap));
  if (info.ok()) o.storage = *info;
  else if (info.status().code() != Code::kNotFound) return info.status();
  if (o.storage && StatusString(snap, "path").empty()) {
    // Storage without a recorded copy: a partial copy, unless our own status write is not in the cache yet.
    auto fresh = client_->Get("volumesnapshots", ns, name);
    if (!fresh.ok()) return fresh.status();
    if (MetaString(*fresh, "uid") == MetaString(snap, "uid")) o.snap = *fresh;
  }
  if (o.volume.is_object() && StatusString(o.snap, "path").empty()) {
    auto src = storage_->Volume(o.pool->libvirt_name, volume::VolumeReconciler::StorageName(o.volume));
    if (src.ok()) o.source = *src;
    else if (src.status().code() != Code::kNotFound) return src.status();
    if (o.volume.contains("status") && o.volume["status"].contains("attachment")) {
      o.holder = o.volume["status"]["attachment"].value("instance", "");
    }
    if (!o.holder.empty()) {
      auto di = hv_->Lookup(host::DomainName(ns, o.holder));
      if (di.ok()) o.holder_state = di->state;
      else if (di.status().code() != Code::kNotFound) return di.status();
    }
  }
  return o;
}

StatusOr<int64_t> SnapshotReconciler::Copy(const Observed& o, const Decision& d, const std::string& name) {
  const std::string pool = o.pool->libvirt_name;
  if (d.pause) {
    Status p = hv_->Pause(d.domain);
    if (!p.ok()) return Status(p.code(), "pausing instance " + o.holder + " for the copy: " + p.message());
  }
  auto t0 = std::chrono::steady_clock::now();
  auto made = storage_->CopyOpenVolume(pool, name, pool, volume::VolumeReconciler::StorageName(o.volume), d.format);
  int64_t paused_ms = 0;
  if (d.pause) {
    // Still paused at the end means nobody let the guest run (and write) during the copy.
    auto di = hv_->Lookup(d.domain);
    bool held = di.ok() && di->state == host::DomainState::kPaused;
    paused_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    Status r = hv_->Resume(d.domain);
    if (!r.ok()) {
      spdlog::warn("snapshot: guest not resumed after the copy: domain={} error={}", d.domain, r.message());
      events_.Record(o.snap, "Warning", "ResumeFailed", "instance " + o.holder + " not resumed: " + r.message());
    }
    if (made.ok() && !held) {
      runtime::WarnIfFailed(storage_->DeleteVolume(pool, name), "removing an inconsistent copy " + name);
      return Status(Code::kUnavailable, "instance " + o.holder + "'s guest ran again during the copy, which is "
                                        "discarded; it is taken again");
    }
  }
  if (!made.ok()) return made.status();
  return paused_ms;
}

StatusOr<Result> SnapshotReconciler::Delete(const json& snap, const std::string& key) {
  auto o = Observe(snap);
  if (!o.ok()) return o.status();
  DeleteDecision d = DecideDelete(*o);
  if (!d.status.is_null()) {
    auto u = runtime::UpdateStatusIfChanged(client_, "volumesnapshots", snap, d.status);
    if (!u.ok()) return u.status();
    for (const auto& e : d.events) events_.Record(snap, e.type, e.reason, e.message);
    return Result::After(std::chrono::seconds(5));
  }
  if (d.delete_storage) {
    Status s = storage_->DeleteVolume(o->pool->libvirt_name, StorageName(snap));
    if (!s.ok()) {
      events_.Record(snap, "Warning", "DeleteFailed", s.message());
      return s;
    }
  }
  Status rf = runtime::RemoveFinalizer(client_, "volumesnapshots", snap, kFinalizer);
  if (!rf.ok()) return rf;
  spdlog::info("snapshot deleted: snapshot={} node={}", key, opts_.node);
  return Result::Done();
}

StatusOr<Result> SnapshotReconciler::Reconcile(const std::string& key) {
  json snap = snapshots_->Get(key);
  if (snap.is_null()) return Result::Done();
  json vol = volumes_->Get(MetaString(snap, "namespace") + "/" + snap["spec"].value("volume", ""));
  if (NodeOf(snap, vol) != opts_.node) return Result::Done();  // another node's (or not placed yet)
  if (!MetaString(snap, "deletionTimestamp").empty()) {
    if (!runtime::HasFinalizer(snap, kFinalizer)) return Result::Done();
    return Delete(snap, key);
  }
  if (!runtime::HasFinalizer(snap, kFinalizer)) {
    auto fin = runtime::AddFinalizer(client_, "volumesnapshots", snap, kFinalizer);
    if (!fin.ok()) return fin.status();
    snap = *fin;
  }
  auto observed = Observe(snap);
  if (!observed.ok()) return observed.status();
  snap = observed->snap;
  Decision d = Decide(*observed, opts_.node);

  const std::string sname = StorageName(snap);
  if (d.remove_partial) {
    spdlog::warn("snapshot storage without a completed copy, removing it: snapshot={} storage={}", key, sname);
    Status s = storage_->DeleteVolume(observed->pool->libvirt_name, sname);
    if (!s.ok()) return s;
  }
  json cur = snap;
  if (d.creating) {
    auto u = runtime::UpdateStatusIfChanged(client_, "volumesnapshots", cur, *d.creating);
    if (!u.ok()) return u.status();
    cur = *u;
  }
  if (d.copy) {
    auto t0 = std::chrono::steady_clock::now();
    auto paused = Copy(*observed, d, sname);
    if (!paused.ok()) {
      json failed = cur;
      failed["status"]["phase"] = "Failed";
      runtime::SetCondition(failed, "Ready", "False", "CopyFailed", paused.status().message());
      runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "volumesnapshots", cur, failed),
                            "status of snapshot " + key);
      events_.Record(snap, "Warning", "CopyFailed", paused.status().message());
      return paused.status();
    }
    auto info = storage_->Volume(observed->pool->libvirt_name, sname);
    if (!info.ok()) return info.status();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    const std::string vol_name = snap["spec"].value("volume", "");
    json& st = d.status["status"];
    st["path"] = info->path;
    st["takenAt"] = NowRfc3339();
    st["pausedMillis"] = *paused;
    runtime::SetCondition(d.status, "Ready", "True", "Taken",
                          "copy of volume " + vol_name + " taken " + st["takenAt"].get<std::string>() + " on node " +
                              opts_.node);
    d.events.push_back({"Normal", "Taken",
                        "copied volume " + vol_name + " in " + std::to_string(took) + " ms" +
                            (d.pause ? "; instance " + observed->holder + "'s guest was paused for " +
                                           std::to_string(*paused) + " ms"
                                     : "")});
    spdlog::info("snapshot taken: snapshot={} volume={} path={} pausedMs={}", key, vol_name, info->path, *paused);
  }
  json desired = cur;
  desired["status"] = d.status["status"];
  auto u = runtime::UpdateStatusIfChanged(client_, "volumesnapshots", cur, desired);
  if (!u.ok()) return u.status();
  for (const auto& e : d.events) events_.Record(snap, e.type, e.reason, e.message);
  return d.next;
}

std::vector<runtime::WatchSpec> SnapshotReconciler::Watches() {
  runtime::Informer* snapshots = snapshots_;
  return {
      {snapshots_, nullptr, std::chrono::seconds(30)},  // with a check that the data is still there
      // A volume wakes the snapshots of it (created, attached, detached) and the one it is made from (a delete
      // that waited for it).
      {volumes_,
       [snapshots](const std::string&, const json& v) {
         std::vector<std::string> keys;
         std::string ns = MetaString(v, "namespace"), name = MetaString(v, "name");
         for (const auto& s : snapshots->List()) {
           if (MetaString(s, "namespace") == ns && s["spec"].value("volume", "") == name) {
             keys.push_back(runtime::KeyFor(s));
           }
         }
         if (v.contains("spec") && v["spec"].contains("source") && v["spec"]["source"].is_object()) {
           std::string from = v["spec"]["source"].value("snapshot", "");
           if (!from.empty()) keys.push_back(ns + "/" + from);
         }
         return keys;
       }},
  };
}

}  // namespace stratus::snapshot
