// Volume placement: local storage means a volume lives on one node, so binding it decides where every instance
// that uses it can run.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/placement/placement.h"

namespace stratus::placement {

void PoolSpaceCache::Observe(const json& vol, bool deleted) {
  std::string uid = MetaString(vol, "uid");
  if (uid.empty()) return;
  const json& spec = vol.contains("spec") && vol["spec"].is_object() ? vol["spec"] : json::object();
  std::string node = spec.value("nodeName", "");
  bool made = vol.contains("status") && vol["status"].is_object() && !vol["status"].value("path", "").empty();
  std::lock_guard lock(mu_);
  pending_.erase(uid);
  if (deleted) {
    assumed_.erase(uid);
    return;
  }
  if (node.empty()) return;  // not placed (yet): an assumption, if any, stays until its bind shows or fails
  assumed_.erase(uid);       // the cache shows the bind now
  auto bytes = ParseQuantityBytes(spec.value("size", "0"));
  if (!made && bytes.ok()) pending_[uid] = {node, spec.value("pool", ""), static_cast<int64_t>(*bytes)};
}

void PoolSpaceCache::Assume(const std::string& uid, const std::string& node, const std::string& pool, int64_t bytes) {
  std::lock_guard lock(mu_);
  assumed_[uid] = {node, pool, bytes};
}

bool PoolSpaceCache::Forget(const std::string& uid) {
  std::lock_guard lock(mu_);
  return assumed_.erase(uid) > 0;
}

bool PoolSpaceCache::Assumed(const std::string& uid) const {
  std::lock_guard lock(mu_);
  return assumed_.count(uid) > 0;
}

size_t PoolSpaceCache::NumAssumed() const {
  std::lock_guard lock(mu_);
  return assumed_.size();
}

void PoolSpaceCache::SubtractLocked(std::vector<NodeView>* nodes) const {
  std::map<std::string, NodeView*> by_name;
  for (auto& n : *nodes) by_name[n.name] = &n;
  for (const auto* m : {&pending_, &assumed_}) {
    for (const auto& [uid, sp] : *m) {
      auto v = by_name.find(sp.node);
      if (v == by_name.end()) continue;
      auto pf = v->second->pool_free.find(sp.pool.empty() ? v->second->default_pool : sp.pool);
      if (pf != v->second->pool_free.end()) pf->second -= sp.bytes;
    }
  }
}

void PoolSpaceCache::SubtractFrom(std::vector<NodeView>* nodes) const {
  std::lock_guard lock(mu_);
  SubtractLocked(nodes);
}

Decision PoolSpaceCache::ChooseAndAssume(const std::string& uid, int64_t bytes, const std::string& pool,
                                         const std::string& pinned, const std::string& pinned_why,
                                         std::vector<NodeView> nodes) {
  std::lock_guard lock(mu_);
  SubtractLocked(&nodes);
  Decision d = ChooseVolumeNode(bytes, pool, pinned, pinned_why, nodes);
  if (!d.node.empty()) assumed_[uid] = {d.node, pool, bytes};
  return d;
}

Decision ChooseVolumeNode(int64_t bytes, const std::string& pool, const std::string& pinned, const std::string& why,
                          const std::vector<NodeView>& nodes) {
  Decision out;
  int64_t best_free = -1;
  for (const auto& v : nodes) {
    const std::string& node = v.name;
    if (!pinned.empty() && node != pinned) {
      out.reasons.push_back(node + ": not where " + why + " is (" + pinned + ")");
      continue;
    }
    if (!v.ready) {
      out.reasons.push_back(node + ": not Ready");
      continue;
    }
    if (v.unschedulable && pinned.empty()) {
      out.reasons.push_back(node + ": unschedulable (cordoned)");
      continue;
    }
    int64_t free = PoolFree(v, pool);
    if (free < 0) {
      out.reasons.push_back(node + ": has no pool \"" + (pool.empty() ? std::string("default") : pool) + "\"");
      continue;
    }
    if (bytes > free) {
      out.reasons.push_back(node + ": insufficient space (need " + FormatQuantityBytes(static_cast<uint64_t>(bytes)) +
                            ", free " + std::to_string(std::max<int64_t>(free, 0) >> 20) + " MiB)");
      continue;
    }
    if (free > best_free || (free == best_free && node < out.node)) {
      best_free = free;
      out.node = node;
    }
  }
  return out;
}

std::string VolumeDecisionMessage(const Decision& d, size_t total_nodes) {
  std::string msg = "0/" + std::to_string(total_nodes) + " nodes can hold this volume";
  if (total_nodes == 0) msg += ": no nodes are registered";
  for (size_t i = 0; i < d.reasons.size(); ++i) msg += (i ? "; " : ": ") + d.reasons[i];
  return msg;
}

VolumePlacementReconciler::VolumePlacementReconciler(ApiClient* client, runtime::Informer* volumes,
                                                     runtime::Informer* nodes, runtime::Informer* instances,
                                                     Options opts, runtime::Informer* snapshots)
    : client_(client), volumes_(volumes), nodes_(nodes), instances_(instances), opts_(opts), snapshots_(snapshots),
      events_(client, "volume-placement"), cache_(std::make_shared<PoolSpaceCache>()) {
  std::shared_ptr<PoolSpaceCache> cache = cache_;
  volumes_->AddHandler([cache](const std::string&, const json& obj, bool deleted) { cache->Observe(obj, deleted); });
}

StatusOr<runtime::Result> VolumePlacementReconciler::Reconcile(const std::string& key) {
  json vol = volumes_->Get(key);
  if (vol.is_null() || !MetaString(vol, "deletionTimestamp").empty()) return runtime::Result::Done();
  if (!vol["spec"].value("nodeName", "").empty()) return runtime::Result::Done();
  std::string uid = MetaString(vol, "uid");
  // Decided and bound by an earlier run whose bind the cache does not show yet: its event will bring this key back.
  if (cache_->Assumed(uid)) return runtime::Result::Done();
  auto [ns, name] = runtime::SplitKey(key);
  json desired = vol;
  auto unscheduled = [&](const std::string& reason, const std::string& msg, std::chrono::seconds again)
      -> StatusOr<runtime::Result> {
    desired["status"]["phase"] = "Pending";
    if (runtime::SetCondition(desired, "Scheduled", "False", reason, msg)) {
      auto u = runtime::UpdateStatusIfChanged(client_, "volumes", vol, desired);
      if (!u.ok()) return u.status();
      events_.Record(vol, reason == "Unschedulable" ? "Warning" : "Normal", reason, msg);
    }
    return runtime::Result::After(again);
  };

  // 1. Where it must go: next to its source volume, or next to the instance that already waits for it.
  std::string pinned, why;
  const json& spec = vol["spec"];
  if (spec.contains("source") && !spec["source"].value("volume", "").empty()) {
    std::string src = spec["source"]["volume"];
    json sv = volumes_->Get(ns + "/" + src);
    if (sv.is_null()) return unscheduled("WaitingForSource", "source volume " + src + " does not exist", std::chrono::seconds(5));
    pinned = sv["spec"].value("nodeName", "");
    if (pinned.empty()) {
      return unscheduled("WaitingForSource", "source volume " + src + " is not placed yet", std::chrono::seconds(2));
    }
    why = "source volume " + src;
  } else if (spec.contains("source") && !spec["source"].value("snapshot", "").empty()) {
    std::string src = spec["source"]["snapshot"];
    json sn = snapshots_ ? snapshots_->Get(ns + "/" + src) : json();
    if (sn.is_null()) return unscheduled("WaitingForSource", "snapshot " + src + " does not exist", std::chrono::seconds(5));
    pinned = sn.contains("status") && sn["status"].is_object() ? sn["status"].value("node", "") : "";
    if (pinned.empty()) {
      return unscheduled("WaitingForSource", "snapshot " + src + " is not taken yet", std::chrono::seconds(2));
    }
    why = "snapshot " + src;
  }
  if (pinned.empty() && instances_ != nullptr) {
    for (const auto& i : instances_->List()) {
      if (MetaString(i, "namespace") != ns || !MetaString(i, "deletionTimestamp").empty()) continue;
      std::string node = i["spec"].value("nodeName", "");
      if (node.empty() || !i["spec"].contains("volumes")) continue;
      for (const auto& e : i["spec"]["volumes"]) {
        if (e.value("volume", "") == name) {
          pinned = node;
          why = "instance " + MetaString(i, "name");
        }
      }
      if (!pinned.empty()) break;
    }
  }

  // 2. Candidates: Ready nodes with the pool and room for it (volumes placed but not made, and volumes assumed by
  // other workers, count as used). Decided and assumed under the cache's lock; bound outside it.
  auto bytes = ParseQuantityBytes(spec.value("size", ""));
  if (!bytes.ok()) return bytes.status();
  std::string pool = spec.value("pool", "");
  std::vector<NodeView> views = ViewNodes(nodes_->List(), std::time(nullptr), opts_);
  size_t total_nodes = views.size();
  Decision d = cache_->ChooseAndAssume(uid, static_cast<int64_t>(*bytes), pool, pinned, why, std::move(views));
  if (d.node.empty()) return unscheduled("Unschedulable", VolumeDecisionMessage(d, total_nodes), std::chrono::seconds(10));
  const std::string& best = d.node;
  json patch = {{"metadata", {{"resourceVersion", MetaString(vol, "resourceVersion")}}}, {"spec", {{"nodeName", best}}}};
  auto p = client_->Patch("volumes", ns, name, patch);
  if (!p.ok()) {
    cache_->Forget(uid);  // the space is free again for the next decision
    return p.status();
  }
  json after = *p;
  runtime::SetCondition(after, "Scheduled", "True", "Scheduled",
                        "bound to node " + best + (why.empty() ? "" : " (with " + why + ")"));
  auto u = runtime::UpdateStatusIfChanged(client_, "volumes", *p, after);
  if (!u.ok()) spdlog::debug("volume placement: status update failed: volume={} error={}", key, u.status().message());
  events_.Record(*p, "Normal", "Scheduled", "bound to node " + best);
  spdlog::info("volume placement: bound: volume={} node={}", key, best);
  return runtime::Result::Done();
}

std::vector<runtime::WatchSpec> VolumePlacementReconciler::Watches() {
  std::vector<runtime::WatchSpec> w = {
      {volumes_, nullptr}, {nodes_, UnboundKeys(volumes_)}, {instances_, UnboundKeys(volumes_)}};
  if (snapshots_ != nullptr) w.push_back({snapshots_, UnboundKeys(volumes_)});
  return w;
}

}  // namespace stratus::placement
