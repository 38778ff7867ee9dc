// Volume placement: local storage means a volume lives on one node, so binding it decides where every instance
// that uses it can run.
#include <spdlog/spdlog.h>

#include <ctime>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/placement/placement.h"

namespace stratus::placement {

VolumePlacementReconciler::VolumePlacementReconciler(ApiClient* client, runtime::Informer* volumes,
                                                     runtime::Informer* nodes, runtime::Informer* instances,
                                                     Options opts)
    : client_(client), volumes_(volumes), nodes_(nodes), instances_(instances), opts_(opts),
      events_(client, "volume-placement") {}

StatusOr<runtime::Result> VolumePlacementReconciler::Reconcile(const std::string& key) {
  json vol = volumes_->Get(key);
  if (vol.is_null() || !MetaString(vol, "deletionTimestamp").empty()) return runtime::Result::Done();
  if (!vol["spec"].value("nodeName", "").empty()) return runtime::Result::Done();
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

  // 2. Candidates: Ready nodes with the pool and room for it (volumes placed but not made count as used).
  auto bytes = ParseQuantityBytes(spec.value("size", ""));
  if (!bytes.ok()) return bytes.status();
  std::string pool = spec.value("pool", "");
  std::map<std::string, NodeView> views;
  int64_t now = std::time(nullptr);
  for (const auto& n : nodes_->List()) {
    NodeView v;
    v.name = MetaString(n, "name");
    json ready = runtime::GetCondition(n, "Ready");
    v.ready = ready.is_object() && ready.value("status", "") == "True";
    int64_t hb = ParseRfc3339(n.contains("status") ? n["status"].value("lastHeartbeatTime", "") : "");
    if (v.ready && (hb < 0 || now - hb > opts_.heartbeat_grace_seconds)) v.ready = false;
    v.unschedulable = n.contains("spec") && n["spec"].value("unschedulable", false);
    ReadPools(n, &v);
    views[v.name] = v;
  }
  for (const auto& other : volumes_->List()) {
    std::string node = other["spec"].value("nodeName", "");
    auto it = views.find(node);
    if (node.empty() || it == views.end()) continue;
    if (other.contains("status") && !other["status"].value("path", "").empty()) continue;
    auto b = ParseQuantityBytes(other["spec"].value("size", "0"));
    std::string p = other["spec"].value("pool", "");
    auto pf = it->second.pool_free.find(p.empty() ? it->second.default_pool : p);
    if (b.ok() && pf != it->second.pool_free.end()) pf->second -= static_cast<int64_t>(*b);
  }
  std::string best;
  int64_t best_free = -1;
  std::vector<std::string> reasons;
  for (const auto& [node, v] : views) {
    if (!pinned.empty() && node != pinned) {
      reasons.push_back(node + ": not where " + why + " is (" + pinned + ")");
      continue;
    }
    if (!v.ready) {
      reasons.push_back(node + ": not Ready");
      continue;
    }
    if (v.unschedulable && pinned.empty()) {
      reasons.push_back(node + ": unschedulable (cordoned)");
      continue;
    }
    int64_t free = PoolFree(v, pool);
    if (free < 0) {
      reasons.push_back(node + ": has no pool \"" + (pool.empty() ? std::string("default") : pool) + "\"");
      continue;
    }
    if (static_cast<int64_t>(*bytes) > free) {
      reasons.push_back(node + ": insufficient space (need " + FormatQuantityBytes(*bytes) + ", free " +
                        std::to_string(std::max<int64_t>(free, 0) >> 20) + " MiB)");
      continue;
    }
    if (free > best_free) {
      best_free = free;
      best = node;
    }
  }
  if (best.empty()) {
    std::string msg = "0/" + std::to_string(views.size()) + " nodes can hold this volume";
    if (views.empty()) msg += ": no nodes are registered";
    for (size_t i = 0; i < reasons.size(); ++i) msg += (i ? "; " : ": ") + reasons[i];
    return unscheduled("Unschedulable", msg, std::chrono::seconds(10));
  }
  json patch = {{"metadata", {{"resourceVersion", MetaString(vol, "resourceVersion")}}}, {"spec", {{"nodeName", best}}}};
  auto p = client_->Patch("volumes", ns, name, patch);
  if (!p.ok()) return p.status();
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
  return {{volumes_, nullptr}, {nodes_, UnboundKeys(volumes_)}, {instances_, UnboundKeys(volumes_)}};
}

}  // namespace stratus::placement
