#include "stratus/placement/placement.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/core/selector.h"

namespace stratus::placement {

void ReadPools(const json& node, NodeView* v) {
  if (!node.contains("status") || !node["status"].contains("pools")) return;
  for (const auto& p : node["status"]["pools"]) {
    if (p.value("images", false)) continue;
    std::string name = p.value("name", "");
    v->pool_free[name] = p.value("availableBytes", int64_t{0});
    v->pool_capacity[name] = p.value("capacityBytes", int64_t{0});
    if (p.value("default", false)) v->default_pool = name;
  }
}

int64_t PoolFree(const NodeView& n, const std::string& pool) {
  auto it = n.pool_free.find(pool.empty() ? n.default_pool : pool);
  return it == n.pool_free.end() ? -1 : it->second;
}

Status PinToVolumes(const json& inst, const std::map<std::string, json>& volumes, Demand* d, std::string* wait) {
  const json& spec = inst["spec"];
  if (!spec.contains("volumes") || !spec["volumes"].is_array()) return Status::Ok();
  std::string first_vol;
  for (const auto& e : spec["volumes"]) {
    std::string name = e.value("volume", "");
    auto it = volumes.find(name);
    if (it == volumes.end()) {
      *wait = "volume " + name + " does not exist";
      return Status::Ok();
    }
    std::string node = it->second["spec"].value("nodeName", "");
    if (node.empty()) {
      *wait = "volume " + name + " is not placed on a node yet";
      return Status::Ok();
    }
    if (d->pinned_node.empty()) {
      d->pinned_node = node;
      first_vol = name;
      d->pinned_why = "volume " + name;
    } else if (node != d->pinned_node) {
      return InvalidError("volumes " + first_vol + " (node " + d->pinned_node + ") and " + name + " (node " + node +
                          ") are on different nodes; an instance uses local storage of one node");
    }
  }
  return Status::Ok();
}

StatusOr<Demand> DemandOf(const json& inst, const std::map<std::string, json>& flavors) {
  const json& spec = inst.contains("spec") ? inst["spec"] : json::object();
  Demand d;
  if (spec.contains("resources") && spec["resources"].is_object()) {
    d.vcpus = spec["resources"].value("vcpus", 1);
    d.memory_mib = spec["resources"].value("memoryMiB", int64_t{256});
    return d;
  }
  std::string flavor = spec.value("instanceType", "");
  auto it = flavors.find(flavor);
  if (flavor.empty() || it == flavors.end()) {
    return NotFound("instanceType \"" + flavor + "\" not found");
  }
  d.vcpus = it->second["spec"].value("vcpus", 1);
  d.memory_mib = it->second["spec"].value("memoryMiB", int64_t{256});
  return d;
}

namespace {

// vcpus and memory of an InstanceType object (the defaults DemandOf uses).
Demand FlavorDemand(const json& flavor) {
  Demand d;
  d.vcpus = flavor["spec"].value("vcpus", 1);
  d.memory_mib = flavor["spec"].value("memoryMiB", int64_t{256});
  return d;
}

}  // namespace

void CapacityCache::UnbindLocked(const std::string& uid) {
  auto it = bound_.find(uid);
  if (it == bound_.end()) return;
  NodeSum& s = sums_[it->second.node];
  if (it->second.flavor.empty()) {
    s.vcpus -= it->second.resources.vcpus;
    s.memory_mib -= it->second.resources.memory_mib;
  } else if (--s.flavors[it->second.flavor] <= 0) {
    s.flavors.erase(it->second.flavor);
  }
  --s.instances;
  if (!it->second.group.empty() && --s.groups[it->second.group] <= 0) s.groups.erase(it->second.group);
  if (s.vcpus == 0 && s.memory_mib == 0 && s.flavors.empty() && s.instances <= 0) sums_.erase(it->second.node);
  bound_.erase(it);
}

void CapacityCache::Observe(const json& inst, bool deleted) {
  std::string uid = MetaString(inst, "uid");
  if (uid.empty()) return;
  const json& spec = inst.contains("spec") && inst["spec"].is_object() ? inst["spec"] : json::object();
  std::string node = spec.value("nodeName", "");
  std::lock_guard lock(mu_);
  UnbindLocked(uid);
  if (deleted) {
    assumed_.erase(uid);
    return;
  }
  if (node.empty()) return;  // not bound (yet): an assumption, if any, stays until its bind shows or fails
  assumed_.erase(uid);       // the cache shows the bind now: counted below, once
  BoundEntry e;
  e.node = node;
  if (!spec.value("instanceGroup", "").empty()) e.group = MetaString(inst, "namespace") + "/" + spec.value("instanceGroup", "");
  if (spec.contains("resources") && spec["resources"].is_object()) {
    e.resources.vcpus = spec["resources"].value("vcpus", 1);
    e.resources.memory_mib = spec["resources"].value("memoryMiB", int64_t{256});
  } else {
    e.flavor = spec.value("instanceType", "");
    if (e.flavor.empty()) return;  // no demand to count (DemandOf would fail too)
  }
  NodeSum& s = sums_[node];
  ++s.instances;
  if (!e.group.empty()) ++s.groups[e.group];
  if (e.flavor.empty()) {
    s.vcpus += e.resources.vcpus;
    s.memory_mib += e.resources.memory_mib;
  } else {
    ++s.flavors[e.flavor];
  }
  bound_[uid] = std::move(e);
}

void CapacityCache::Assume(const std::string& uid, const std::string& node, const Demand& demand) {
  std::lock_guard lock(mu_);
  assumed_[uid] = {node, demand};
}

bool CapacityCache::Forget(const std::string& uid) {
  std::lock_guard lock(mu_);
  return assumed_.erase(uid) > 0;
}

bool CapacityCache::Assumed(const std::string& uid) const {
  std::lock_guard lock(mu_);
  return assumed_.count(uid) > 0;
}

size_t CapacityCache::NumAssumed() const {
  std::lock_guard lock(mu_);
  return assumed_.size();
}

void CapacityCache::AddToLocked(std::vector<NodeView>* nodes, const std::map<std::string, json>& flavors) const {
  std::map<std::string, NodeView*> by_name;
  for (auto& n : *nodes) by_name[n.name] = &n;
  for (const auto& [node, s] : sums_) {
    auto v = by_name.find(node);
    if (v == by_name.end()) continue;
    v->second->used_vcpus += s.vcpus;
    v->second->used_memory_mib += s.memory_mib;
    v->second->instances += s.instances;
    for (const auto& [g, count] : s.groups) v->second->group_members[g] += count;
    for (const auto& [flavor, count] : s.flavors) {
      auto f = flavors.find(flavor);
      if (f == flavors.end()) continue;  // an unknown flavor counts nothing, as DemandOf fails for it
      Demand d = FlavorDemand(f->second);
      v->second->used_vcpus += d.vcpus * count;
      v->second->used_memory_mib += d.memory_mib * count;
    }
  }
  for (const auto& [uid, a] : assumed_) {
    auto v = by_name.find(a.node);
    if (v == by_name.end()) continue;
    v->second->used_vcpus += a.demand.vcpus;
    v->second->used_memory_mib += a.demand.memory_mib;
    ++v->second->instances;
    if (!a.demand.group.empty()) ++v->second->group_members[a.demand.group];
    if (a.demand.root_bytes > 0) {
      auto pf = v->second->pool_free.find(a.demand.root_pool.empty() ? v->second->default_pool : a.demand.root_pool);
      if (pf != v->second->pool_free.end()) pf->second -= static_cast<int64_t>(a.demand.root_bytes);
    }
  }
}

void CapacityCache::AddTo(std::vector<NodeView>* nodes, const std::map<std::string, json>& flavors) const {
  std::lock_guard lock(mu_);
  AddToLocked(nodes, flavors);
}

Decision CapacityCache::ChooseAndAssume(const std::string& uid, const Demand& demand, const json& node_selector,
                                        std::vector<NodeView> nodes, const std::map<std::string, json>& flavors,
                                        const Options& opts) {
  std::lock_guard lock(mu_);
  AddToLocked(&nodes, flavors);
  Decision d = Choose(demand, node_selector, nodes, opts);
  if (!d.node.empty()) assumed_[uid] = {d.node, demand};
  return d;
}

std::string ResizeMisfit(const Demand& demand, const json& node, const std::vector<json>& others,
                         const std::map<std::string, json>& flavors, const Options& opts) {
  std::vector<NodeView> views = ViewNodes({node}, std::time(nullptr), opts);
  if (views.empty()) return "";
  NodeView& v = views[0];
  for (const auto& o : others) {
    auto d = DemandOf(o, flavors);
    if (!d.ok()) continue;  // a flavor gone: placement counts nothing for it either
    v.used_vcpus += d->vcpus;
    v.used_memory_mib += d->memory_mib;
  }
  for (const auto& f : Filters()) {
    if (std::string(f.name) != "CoreFilter" && std::string(f.name) != "RamFilter") continue;
    std::string why = f.check(demand, json(), v, opts);
    if (!why.empty()) return v.name + ": " + why + " [" + f.name + "]";
  }
  return "";
}

std::vector<NodeView> ViewNodes(const std::vector<json>& nodes, int64_t now, const Options& opts) {
  std::vector<NodeView> out;
  for (const auto& n : nodes) {
    NodeView v;
    v.name = MetaString(n, "name");
    const json& st = n.contains("status") ? n["status"] : json::object();
    json ready = runtime::GetCondition(n, "Ready");
    v.ready = ready.is_object() && ready.value("status", "") == "True";
    if (!v.ready) v.not_ready_reason = ready.is_object() ? ready.value("reason", "") : "no status reported";
    int64_t hb = ParseRfc3339(st.value("lastHeartbeatTime", ""));
    if (v.ready && (hb < 0 || now - hb > opts.heartbeat_grace_seconds)) {
      v.ready = false;
      v.not_ready_reason = "heartbeat missed";
    }
    v.unschedulable = n.contains("spec") && n["spec"].value("unschedulable", false);
    if (n.contains("spec") && n["spec"].is_object()) {
      v.cpu_ratio = n["spec"].value("cpuAllocationRatio", 0.0);
      v.ram_ratio = n["spec"].value("ramAllocationRatio", 0.0);
      v.disk_ratio = n["spec"].value("diskAllocationRatio", 0.0);
    }
    if (n["metadata"].contains("labels")) v.labels = n["metadata"]["labels"];
    if (v.labels.is_object()) v.zone = v.labels.value(kZoneLabel, "");
    if (st.contains("nodeInfo") && st["nodeInfo"].is_object()) v.arch = st["nodeInfo"].value("arch", "");
    if (n.contains("spec") && n["spec"].is_object()) {
      for (const auto& t : n["spec"].value("traits", json::array())) {
        if (t.is_string()) v.traits.insert(t.get<std::string>());
      }
    }
    if (st.contains("allocatable")) {
      v.alloc_vcpus = st["allocatable"].value("vcpus", 0);
      v.alloc_memory_mib = st["allocatable"].value("memoryMiB", int64_t{0});
    }
    ReadPools(n, &v);
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const NodeView& a, const NodeView& b) { return a.name < b.name; });
  return out;
}

PlacementReconciler::PlacementReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* nodes,
                                         runtime::Informer* flavors, Options opts, runtime::Informer* volumes,
                                         runtime::Informer* images, runtime::Informer* groups)
    : client_(client), instances_(instances), nodes_(nodes), flavors_(flavors), volumes_(volumes), images_(images),
      groups_(groups), opts_(opts), events_(client, "placement"), cache_(std::make_shared<CapacityCache>()) {
  // Bound usage follows the instance cache event by event. Handlers run before the informer reports synced (and a
  // late handler first gets every cached object), so the cache is complete before any decision.
  std::shared_ptr<CapacityCache> cache = cache_;
  instances_->AddHandler([cache](const std::string&, const json& obj, bool deleted) { cache->Observe(obj, deleted); });
  if (volumes_ != nullptr) {
    volume_space_ = std::make_shared<PoolSpaceCache>();
    std::shared_ptr<PoolSpaceCache> space = volume_space_;
    volumes_->AddHandler([space](const std::string&, const json& obj, bool deleted) { space->Observe(obj, deleted); });
  }
}

std::vector<NodeView> PlacementReconciler::Nodes() {
  std::vector<NodeView> views = ViewNodes(nodes_->List(), std::time(nullptr), opts_);
  // Volumes placed but not created yet will take their space.
  if (volume_space_) volume_space_->SubtractFrom(&views);
  return views;
}

StatusOr<runtime::Result> PlacementReconciler::Reconcile(const std::string& key) {
  json inst = instances_->Get(key);
  if (inst.is_null() || !MetaString(inst, "deletionTimestamp").empty()) return runtime::Result::Done();
  auto [ns, name] = runtime::SplitKey(key);
  std::string uid = MetaString(inst, "uid");
  std::string bound = inst["spec"].value("nodeName", "");
  json desired = inst;
  if (!bound.empty()) {
    // Bound (by us or by the user): record it.
    desired["status"]["nodeName"] = bound;
    runtime::SetCondition(desired, "Scheduled", "True", "Scheduled", "bound to node " + bound);
    auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
    return u.ok() ? StatusOr<runtime::Result>(runtime::Result::Done()) : StatusOr<runtime::Result>(u.status());
  }
  // Decided and bound by an earlier run whose bind the cache does not show yet: its event will bring this key back.
  if (cache_->Assumed(uid)) return runtime::Result::Done();
  std::map<std::string, json> flavors;
  for (const auto& f : flavors_->List()) flavors[MetaString(f, "name")] = f;
  auto demand = DemandOf(inst, flavors);
  if (!demand.ok()) {
    if (runtime::SetCondition(desired, "Scheduled", "False", "InstanceTypeNotFound", demand.status().message())) {
      desired["status"]["phase"] = "Pending";
      auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
      if (!u.ok()) return u.status();
      events_.Record(inst, "Warning", "FailedScheduling", demand.status().message());
    }
    return runtime::Result::After(std::chrono::seconds(10));
  }
  // Storage: the root disk needs room in a pool; attached volumes pin the instance to their node.
  const json& spec = inst["spec"];
  demand->zone = spec.value("availabilityZone", "");
  if (!spec.value("instanceGroup", "").empty()) {
    std::string group = spec.value("instanceGroup", "");
    json g = groups_ != nullptr ? groups_->Get(ns + "/" + group) : json();
    if (g.is_null()) {
      std::string msg = "waiting: InstanceGroup \"" + group + "\" does not exist";
      desired["status"]["phase"] = "Pending";
      if (runtime::SetCondition(desired, "Scheduled", "False", "WaitingForInstanceGroup", msg)) {
        auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
        if (!u.ok()) return u.status();
        events_.Record(inst, "Warning", "FailedScheduling", msg);
      }
      return runtime::Result::After(std::chrono::seconds(10));
    }
    demand->group = ns + "/" + group;
    demand->group_policy = g["spec"].value("policy", "");
  }
  for (const char* img_field : {"image", "kernelImage"}) {
    if (images_ == nullptr || spec.value(img_field, "").empty()) continue;
    json img = images_->Get(ns + "/" + spec.value(img_field, ""));
    if (img.is_null() || !img.contains("spec")) continue;
    if (demand->arch.empty()) demand->arch = img["spec"].value("architecture", "");
    for (const auto& t : img["spec"].value("requiredTraits", json::array())) {
      if (!t.is_string()) continue;
      demand->traits.push_back(t.get<std::string>());
      if (demand->traits_of.empty()) demand->traits_of = MetaString(img, "name");
    }
  }
  if (!spec.value("image", "").empty()) {
    json rd = spec.value("rootDisk", json::object());
    demand->root_pool = rd.value("pool", "");
    auto sz = ParseQuantityBytes(rd.value("size", "0"));
    if (sz.ok()) demand->root_bytes = *sz;
    if (demand->root_bytes == 0 && images_ != nullptr) {
      json img = images_->Get(ns + "/" + spec.value("image", ""));
      if (!img.is_null() && img.contains("status")) demand->root_bytes = img["status"].value("virtualSize", uint64_t{0});
    }
  }
  if (volumes_ != nullptr) {
    std::map<std::string, json> vols;
    for (const auto& v : volumes_->List()) {
      if (MetaString(v, "namespace") == ns) vols[MetaString(v, "name")] = v;
    }
    std::string wait;
    Status pin = PinToVolumes(inst, vols, &*demand, &wait);
    if (!pin.ok() || !wait.empty()) {
      std::string msg = pin.ok() ? "waiting: " + wait : pin.message();
      desired["status"]["phase"] = "Pending";
      if (runtime::SetCondition(desired, "Scheduled", "False", pin.ok() ? "WaitingForVolumes" : "Unschedulable", msg)) {
        auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
        if (!u.ok()) return u.status();
        events_.Record(inst, pin.ok() ? "Normal" : "Warning", pin.ok() ? "WaitingForVolumes" : "FailedScheduling", msg);
      }
      return runtime::Result::After(std::chrono::seconds(pin.ok() ? 2 : 10));
    }
  }
  auto nodes = Nodes();
  size_t total_nodes = nodes.size();
  // Decide and assume under the cache's lock; the bind below runs outside it, beside other workers' binds.
  Decision d = cache_->ChooseAndAssume(uid, *demand, inst["spec"].value("nodeSelector", json::object()),
                                       std::move(nodes), flavors, opts_);
  if (d.node.empty()) {
    std::string msg = d.Message(total_nodes);
    desired["status"]["phase"] = "Pending";
    if (runtime::SetCondition(desired, "Scheduled", "False", "Unschedulable", msg)) {
      auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
      if (!u.ok()) return u.status();
      events_.Record(inst, "Warning", "FailedScheduling", msg);
      spdlog::info("placement: unschedulable: instance={} reason={}", key, msg);
    }
    return runtime::Result::After(std::chrono::seconds(10));
  }
  json patch = {{"metadata", {{"resourceVersion", MetaString(inst, "resourceVersion")}}},
                {"spec", {{"nodeName", d.node}}}};
  auto p = client_->Patch("instances", ns, name, patch);
  if (!p.ok()) {
    cache_->Forget(uid);  // the capacity is free again for the next decision
    return p.status();    // retried with backoff (a 409 means the cache was stale)
  }
  json after = *p;
  after["status"]["nodeName"] = d.node;
  after["status"]["phase"] = "Scheduled";
  runtime::SetCondition(after, "Scheduled", "True", "Scheduled", "bound to node " + d.node);
  auto u = runtime::UpdateStatusIfChanged(client_, "instances", *p, after);
  if (!u.ok()) spdlog::debug("placement: status update failed: instance={} error={}", key, u.status().message());
  std::string weights;
  for (size_t i = 0; i < d.weights.size() && i < 5; ++i) {
    char w[32];
    std::snprintf(w, sizeof(w), "%.2f", d.weights[i].second);
    weights += (i ? ", " : "") + d.weights[i].first + "=" + w;
  }
  events_.Record(*p, "Normal", "Scheduled", "bound to node " + d.node + " (weights: " + weights + ")");
  spdlog::info("placement: bound: instance={} node={}", key, d.node);
  return runtime::Result::Done();
}

runtime::KeyMapper UnboundKeys(runtime::Informer* inf) {
  return [inf](const std::string&, const json&) {
    std::vector<std::string> keys;
    for (const auto& o : inf->List()) {
      if (o["spec"].value("nodeName", "").empty()) keys.push_back(runtime::KeyFor(o));
    }
    return keys;
  };
}

std::vector<runtime::WatchSpec> PlacementReconciler::Watches() {
  // Nodes, flavors and placed volumes change what fits: every unscheduled instance is looked at again.
  return {{instances_, nullptr}, {nodes_, UnboundKeys(instances_)}, {flavors_, UnboundKeys(instances_)},
          {volumes_, UnboundKeys(instances_)}, {groups_, UnboundKeys(instances_)}};
}


}  // namespace stratus::placement
