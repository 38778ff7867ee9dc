#include "stratus/nodelifecycle/nodelifecycle.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"

namespace stratus::nodelifecycle {

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
  return runtime::Result::After(std::chrono::seconds(5));
}

std::vector<runtime::WatchSpec> NodeLifecycleReconciler::Watches() { return {{nodes_, nullptr}}; }

}  // namespace stratus::nodelifecycle
