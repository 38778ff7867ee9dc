#include "stratus/nodelifecycle/nodelifecycle.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"
#include "stratus/volume/volume.h"

namespace stratus::nodelifecycle {

namespace {

std::string PolicyOf(const json& inst) {
  const json spec = inst.value("spec", json::object());
  const json& p = spec.value("evacuationPolicy", json());
  return p.is_string() ? p.get<std::string>() : "Manual";
}

}  // namespace

std::optional<json> MarkInstanceUnknown(const json& inst, const std::string& node, int64_t age_seconds) {
  // Said once: the message carries the age, and rewriting it every pass would be a write per instance every 5 s.
  json before = runtime::GetCondition(inst, "Ready");
  if (before.is_object() && before.value("status", "") == "Unknown" && before.value("reason", "") == "NodeNotReady") {
    return std::nullopt;
  }
  json desired = inst;
  std::string then = PolicyOf(inst) == "Evacuate"
                         ? "; evacuationPolicy is Evacuate: it is rebuilt on another node once the node has been "
                           "lost for the evacuation grace period"
                         : "; evacuationPolicy is Manual: it waits for node " + node +
                               " to come back, or for the operator (set spec.evacuationPolicy: Evacuate to rebuild it "
                               "on another node, or delete it)";
  runtime::SetCondition(desired, "Ready", "Unknown", "NodeNotReady",
                        "node " + node + " stopped posting status (no heartbeat for " + std::to_string(age_seconds) +
                            " s): the instance's state is unknown" + then);
  return desired;
}

Evacuation DecideEvacuation(const json& inst, const std::string& node, int64_t lost_seconds,
                            std::chrono::seconds evacuation_grace) {
  Evacuation e;
  if (!inst.contains("spec") || !inst["spec"].is_object() || inst["spec"].value("nodeName", "") != node) return e;
  if (!MetaString(inst, "deletionTimestamp").empty() || PolicyOf(inst) != "Evacuate") return e;
  const json& spec = inst["spec"];
  // Data volumes live on the lost node's disks: nothing can make them again.
  std::vector<std::string> data;
  for (const auto& u : volume::VolumesOf(inst)) {
    if (!u.root) data.push_back(u.volume);
  }
  if (!data.empty()) {
    e.kind = Evacuation::Kind::kBlocked;
    e.reason = "VolumesOnLostNode";
    std::string names;
    for (size_t i = 0; i < data.size(); ++i) names += (i ? ", " : "") + data[i];
    e.message = "not evacuated: data volume" + std::string(data.size() > 1 ? "s " : " ") + names + " on node " + node +
                " cannot be made again elsewhere; the instance waits for the node (detach them to evacuate without them)";
    return e;
  }
  if (lost_seconds < evacuation_grace.count()) {
    e.kind = Evacuation::Kind::kWait;
    e.wait = std::chrono::seconds(evacuation_grace.count() - lost_seconds + 1);
    return e;
  }
  e.kind = Evacuation::Kind::kEvacuate;
  e.reason = "NodeLost";
  if (!spec.value("image", "").empty()) {
    const json st = inst.value("status", json::object());
    e.root_volume = st.value("rootVolume", "");
    if (e.root_volume.empty()) e.root_volume = volume::RootVolumeName(inst);
  }
  e.message = "node " + node + " was lost (no heartbeat for " + std::to_string(lost_seconds) +
              " s past its grace period): rebuilt on another node from its image" +
              (e.root_volume.empty() ? "" : "; its root volume " + e.root_volume + " on " + node + " is lost");
  return e;
}

Status NodeLifecycleReconciler::Evacuate(const json& inst, const std::string& node, const Evacuation& e) {
  const std::string ns = MetaString(inst, "namespace"), name = MetaString(inst, "name");
  // 1. The root volume on the lost node goes first (an unbound instance would otherwise find it, bound there).
  if (!e.root_volume.empty()) {
    auto rv = client_->Get("volumes", ns, e.root_volume);
    if (!rv.ok() && rv.status().code() != Code::kNotFound) return rv.status();
    if (rv.ok() && rv->value("spec", json::object()).value("nodeName", "") == node) {
      auto d = client_->Delete("volumes", ns, e.root_volume, MetaString(*rv, "uid"));
      if (!d.ok() && d.status().code() != Code::kNotFound) return d.status();
      // Its storage reconciler is the lost node's agent: nobody else would ever remove its finalizers.
      auto p = client_->Patch("volumes", ns, e.root_volume, {{"metadata", {{"finalizers", json::array()}}}});
      if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
      events_.Record(inst, "Warning", "RootVolumeLost",
                     "root volume " + e.root_volume + " on lost node " + node + " is given up; a new one is made from the image");
    }
  }
  // 2. What happens, on the instance, while it is still bound here (placement, then its new node, write their own
  //    conditions after this one and keep it).
  json desired = inst;
  runtime::SetCondition(desired, "Evacuated", "True", e.reason, e.message);
  runtime::SetCondition(desired, "Ready", "False", "Evacuating", "rebuilding on another node: node " + node + " was lost");
  auto st = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
  if (!st.ok()) return st.status();  // a conflict: looked at again
  // 3. Unbound (with optimistic concurrency: a changed instance is looked at again), so placement binds it anew.
  json next = *st;
  next["spec"].erase("nodeName");
  auto u = client_->Update("instances", ns, next);
  if (!u.ok()) return u.status();
  events_.Record(inst, "Warning", "Evacuated", e.message);
  spdlog::warn("evacuated: instance={}/{} from={}", ns, name, node);
  return Status::Ok();
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
  auto next = std::chrono::seconds(5);
  if (instances_ != nullptr) {
    for (json inst : instances_->List()) {
      if (!inst.contains("spec") || inst["spec"].value("nodeName", "") != key) continue;
      auto marked = MarkInstanceUnknown(inst, key, age);
      if (marked) {
        auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, *marked);
        if (!u.ok() && u.status().code() != Code::kNotFound) return u.status();  // a conflict: the next pass
        if (u.ok()) inst = *u;
      }
      Evacuation e = DecideEvacuation(inst, key, age - grace_.count(), evacuation_grace_);
      switch (e.kind) {
        case Evacuation::Kind::kStay: break;
        case Evacuation::Kind::kWait: next = std::min(next, e.wait); break;
        case Evacuation::Kind::kBlocked: {
          json desired = inst;
          if (runtime::SetCondition(desired, "Evacuated", "False", e.reason, e.message)) {
            auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
            if (!u.ok() && u.status().code() != Code::kNotFound) return u.status();
            events_.Record(inst, "Warning", e.reason, e.message);
          }
          break;
        }
        case Evacuation::Kind::kEvacuate: {
          Status s = Evacuate(inst, key, e);
          if (!s.ok() && s.code() != Code::kNotFound) return s;  // a conflict: looked at again
          break;
        }
      }
    }
  }
  return runtime::Result::After(next);
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
