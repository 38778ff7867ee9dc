#include "stratus/nodelifecycle/nodelifecycle.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"

namespace stratus::nodelifecycle {

std::optional<json> MarkInstanceUnknown(const json& inst, const std::string& node, int64_t age_seconds) {
  // Said once: the message carries the age, and rewriting it every pass would be a write per instance every 5 s.
  json before = runtime::GetCondition(inst, "Ready");
  if (before.is_object() && before.value("status", "") == "Unknown" && before.value("reason", "") == "NodeNotReady") {
    return std::nullopt;
  }
  json desired = inst;
  runtime::SetCondition(desired, "Ready", "Unknown", "NodeNotReady",
                        "node " + node + " stopped posting status (no heartbeat for " + std::to_string(age_seconds) +
                            " s): the instance's state is unknown");
  return desired;
}

StatusOr<runtime::Result> NodeLifecycleReconciler::Reconcile(const std::string& key) {
  json node = nodes_->Get(key);
  if (node.is_null()) return runtime::Result::Done();
  int64_t hb = node.contains("status") ? ParseRfc3339(node["status"].value("lastHeartbeatTime", "")) : -1;
  // A node that never posted status gets the grace period from its creation.
  if (hb < 0) hb = ParseRfc3339(MetaString(node, "creationTimestamp"));
  int64_t age = hb < 0 ? grace_.count() + 1 : std::time(nullptr) - hb;
  if (age <= grace_.count()) {
    // Check again just after the grace period would run out.
    return runtime::Result::After(std::chrono::seconds(grace_.count() - age + 1));
  }
  json desired = node;
  if (runtime::SetCondition(desired, "Ready", "Unknown", "NodeStatusUnknown",
                            "the node agent stopped posting status: no heartbeat for " + std::to_string(age) + " s")) {
    auto u = runtime::UpdateStatusIfChanged(client_, "nodes", node, desired);
    if (!u.ok()) return u.status();
    spdlog::warn("node not ready: node={} lastHeartbeatAgeSeconds={}", key, age);
  }
  if (instances_ != nullptr) {
    for (const auto& inst : instances_->List()) {
      if (!inst.contains("spec") || inst["spec"].value("nodeName", "") != key) continue;
      auto marked = MarkInstanceUnknown(inst, key, age);
      if (!marked) continue;
      auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, *marked);
      if (!u.ok() && u.status().code() != Code::kNotFound) return u.status();  // a conflict: the next pass
    }
  }
  return runtime::Result::After(std::chrono::seconds(5));
}

std::vector<runtime::WatchSpec> NodeLifecycleReconciler::Watches() {
  std::vector<runtime::WatchSpec> w = {{nodes_, nullptr}};
  // An instance bound (or rebound) to a lost node is marked as well.
  if (instances_ != nullptr) {
    w.push_back({instances_, [](const std::string&, const json& inst) {
                   std::string node = inst.contains("spec") ? inst["spec"].value("nodeName", "") : "";
                   return node.empty() ? std::vector<std::string>{} : std::vector<std::string>{node};
                 }});
  }
  return w;
}

}  // namespace stratus::nodelifecycle
