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
  const json& spec = flavor.contains("spec") && flavor["spec"].is_object() ? flavor["spec"] : json::object();
  d.vcpus = spec.value("vcpus", 1);
  d.memory_mib = spec.value("memoryMiB", int64_t{256});
  return d;
}

// Adds what `s` counts to the view `v`. `flavor(name)` is the size of an InstanceType, null when unknown (its
// bound instances then count nothing, as DemandOf fails for them).
template <typename FlavorLookup>
void ApplySum(int vcpus, int64_t memory_mib, const std::map<std::string, int>& flavors, int instances,
              const std::map<std::string, int>& groups, const std::map<std::string, int64_t>& pool_taken,
              const FlavorLookup& flavor, NodeView* v) {
  v->used_vcpus += vcpus;
  v->used_memory_mib += memory_mib;
  v->instances += instances;
  for (const auto& [g, count] : groups) v->group_members[g] += count;
  for (const auto& [name, count] : flavors) {
    const Demand* d = flavor(name);
    if (d == nullptr) continue;
    v->used_vcpus += d->vcpus * count;
    v->used_memory_mib += d->memory_mib * count;
  }
  for (const auto& [pool, bytes] : pool_taken) {
    auto pf = v->pool_free.find(pool.empty() ? v->default_pool : pool);
    if (pf != v->pool_free.end()) pf->second -= bytes;
  }
}

// A Node's view without the heartbeat judged: Ready as its condition reports it. `*heartbeat`: its
// status.lastHeartbeatTime (-1 when absent or unreadable).
NodeView ParseNode(const json& n, int64_t* heartbeat) {
  NodeView v;
  v.name = MetaString(n, "name");
  const json& st = n.contains("status") && n["status"].is_object() ? n["status"] : json::object();
  json ready = runtime::GetCondition(n, "Ready");
  v.ready = ready.is_object() && ready.value("status", "") == "True";
  if (!v.ready) v.not_ready_reason = ready.is_object() ? ready.value("reason", "") : "no status reported";
  *heartbeat = ParseRfc3339(st.value("lastHeartbeatTime", ""));
  v.unschedulable = n.contains("spec") && n["spec"].value("unschedulable", false);
  if (n.contains("spec") && n["spec"].is_object()) {
    v.cpu_ratio = n["spec"].value("cpuAllocationRatio", 0.0);
    v.ram_ratio = n["spec"].value("ramAllocationRatio", 0.0);
    v.disk_ratio = n["spec"].value("diskAllocationRatio", 0.0);
  }
  if (n.contains("metadata") && n["metadata"].contains("labels")) v.labels = n["metadata"]["labels"];
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
  return v;
}

// A Ready node whose last heartbeat is older than the grace (or missing) is not Ready at `now`.
bool HeartbeatMissed(bool ready, int64_t heartbeat, int64_t now, const Options& opts) {
  return ready && (heartbeat < 0 || now - heartbeat > opts.heartbeat_grace_seconds);
}

void MarkHeartbeatMissed(NodeView* v) {
  v->ready = false;
  v->not_ready_reason = "heartbeat missed";
}

}  // namespace

bool CapacityCache::NodeSum::Empty() const {
  return vcpus == 0 && memory_mib == 0 && flavors.empty() && instances <= 0 && groups.empty() && pool_taken.empty();
}

CapacityCache::NodeSum& CapacityCache::SumLocked(const std::string& node) {
  TouchLocked(node);
  return sums_[node];
}

void CapacityCache::DropSumIfEmptyLocked(const std::string& node) {
  auto it = sums_.find(node);
  if (it != sums_.end() && it->second.Empty()) sums_.erase(it);
}

void CapacityCache::TouchLocked(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.dirty) return;
  it->second.dirty = true;
  dirty_.push_back(&it->second);
}

void CapacityCache::UnbindLocked(const std::string& uid) {
  auto it = bound_.find(uid);
  if (it == bound_.end()) return;
  const BoundEntry& e = it->second;
  NodeSum& s = SumLocked(e.node);
  if (e.flavor.empty()) {
    s.vcpus -= e.resources.vcpus;
    s.memory_mib -= e.resources.memory_mib;
  } else if (--s.flavors[e.flavor] <= 0) {
    s.flavors.erase(e.flavor);
  }
  --s.instances;
  if (!e.group.empty() && --s.groups[e.group] <= 0) s.groups.erase(e.group);
  std::string node = e.node;
  bound_.erase(it);
  DropSumIfEmptyLocked(node);
}

void CapacityCache::AssumeLocked(const std::string& uid, const std::string& node, const Demand& demand) {
  UnassumeLocked(uid);  // assumed again (elsewhere): counted once, where it is assumed now
  NodeSum& s = SumLocked(node);
  s.vcpus += demand.vcpus;
  s.memory_mib += demand.memory_mib;
  ++s.instances;
  if (!demand.group.empty()) ++s.groups[demand.group];
  if (demand.root_bytes > 0) s.pool_taken[demand.root_pool] += static_cast<int64_t>(demand.root_bytes);
  assumed_[uid] = {node, demand};
}

void CapacityCache::UnassumeLocked(const std::string& uid) {
  auto it = assumed_.find(uid);
  if (it == assumed_.end()) return;
  const Assumption& a = it->second;
  NodeSum& s = SumLocked(a.node);
  s.vcpus -= a.demand.vcpus;
  s.memory_mib -= a.demand.memory_mib;
  --s.instances;
  if (!a.demand.group.empty() && --s.groups[a.demand.group] <= 0) s.groups.erase(a.demand.group);
  if (a.demand.root_bytes > 0) {
    auto p = s.pool_taken.find(a.demand.root_pool);
    if (p != s.pool_taken.end() && (p->second -= static_cast<int64_t>(a.demand.root_bytes)) == 0) s.pool_taken.erase(p);
  }
  std::string node = a.node;
  assumed_.erase(it);
  DropSumIfEmptyLocked(node);
}

void CapacityCache::Observe(const json& inst, bool deleted) {
  std::string uid = MetaString(inst, "uid");
  if (uid.empty()) return;
  const json& spec = inst.contains("spec") && inst["spec"].is_object() ? inst["spec"] : json::object();
  std::string node = spec.value("nodeName", "");
  std::lock_guard lock(mu_);
  UnbindLocked(uid);
  if (deleted) {
    UnassumeLocked(uid);
    return;
  }
  if (node.empty()) return;  // not bound (yet): an assumption, if any, stays until its bind shows or fails
  UnassumeLocked(uid);       // the cache shows the bind now: counted below, once
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
  NodeSum& s = SumLocked(node);
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
  AssumeLocked(uid, node, demand);
}

bool CapacityCache::Forget(const std::string& uid) {
  std::lock_guard lock(mu_);
  if (!assumed_.count(uid)) return false;
  UnassumeLocked(uid);
  return true;
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
  std::map<std::string, Demand> sizes;
  for (const auto& [name, f] : flavors) sizes[name] = FlavorDemand(f);
  auto lookup = [&sizes](const std::string& name) -> const Demand* {
    auto f = sizes.find(name);
    return f == sizes.end() ? nullptr : &f->second;
  };
  for (auto& v : *nodes) {
    auto s = sums_.find(v.name);
    if (s == sums_.end()) continue;
    const NodeSum& n = s->second;
    ApplySum(n.vcpus, n.memory_mib, n.flavors, n.instances, n.groups, n.pool_taken, lookup, &v);
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
  if (!d.node.empty()) AssumeLocked(uid, d.node, demand);
  return d;
}

void CapacityCache::ObserveNode(const json& node, bool deleted) {
  std::string name = MetaString(node, "name");
  if (name.empty()) return;
  std::string rv = MetaString(node, "resourceVersion");
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(name);
    if (deleted) {
      if (it == nodes_.end()) return;
      dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), &it->second), dirty_.end());
      nodes_.erase(it);
      order_stale_ = true;
      return;
    }
    // Resyncs and repeated deliveries of a version already kept cost nothing.
    if (it != nodes_.end() && !rv.empty() && it->second.resource_version == rv) return;
  }
  int64_t heartbeat = -1;
  NodeView base = ParseNode(node, &heartbeat);  // outside the lock: decisions go on meanwhile
  std::lock_guard lock(mu_);
  auto [it, added] = nodes_.try_emplace(name);
  KeptNode& k = it->second;
  k.resource_version = rv;
  k.base = std::move(base);
  k.heartbeat = heartbeat;
  ++nodes_parsed_;
  if (added) order_stale_ = true;
  if (!k.dirty || added) {
    k.dirty = true;
    dirty_.push_back(&k);
  }
}

void CapacityCache::ObserveFlavor(const json& flavor, bool deleted) {
  std::string name = MetaString(flavor, "name");
  if (name.empty()) return;
  std::lock_guard lock(mu_);
  auto it = flavors_.find(name);
  if (deleted) {
    if (it == flavors_.end()) return;
    flavors_.erase(it);
  } else {
    Demand d = FlavorDemand(flavor);
    if (it != flavors_.end() && it->second.vcpus == d.vcpus && it->second.memory_mib == d.memory_mib) return;
    flavors_[name] = d;
  }
  // A flavor appeared, was resized or went away: the nodes running instances of it count them anew.
  for (const auto& [node, s] : sums_) {
    if (s.flavors.count(name)) TouchLocked(node);
  }
}

void CapacityCache::ObserveVolume(const json& vol, bool deleted) {
  std::string uid = MetaString(vol, "uid");
  if (uid.empty()) return;
  const json& spec = vol.contains("spec") && vol["spec"].is_object() ? vol["spec"] : json::object();
  std::string node = spec.value("nodeName", "");
  bool made = vol.contains("status") && vol["status"].is_object() && !vol["status"].value("path", "").empty();
  auto bytes = ParseQuantityBytes(spec.value("size", "0"));
  std::lock_guard lock(mu_);
  auto it = volumes_.find(uid);
  if (it != volumes_.end()) {
    NodeSum& s = SumLocked(it->second.node);
    auto p = s.pool_taken.find(it->second.pool);
    if (p != s.pool_taken.end() && (p->second -= it->second.bytes) == 0) s.pool_taken.erase(p);
    std::string was = it->second.node;
    volumes_.erase(it);
    DropSumIfEmptyLocked(was);
  }
  if (deleted || node.empty() || made || !bytes.ok()) return;
  PendingVolume pv{node, spec.value("pool", ""), static_cast<int64_t>(*bytes)};
  SumLocked(node).pool_taken[pv.pool] += pv.bytes;
  volumes_[uid] = std::move(pv);
}

void CapacityCache::JudgeHeartbeatLocked(KeptNode* k, int64_t now, const Options& opts) const {
  bool missed = HeartbeatMissed(k->base.ready, k->heartbeat, now, opts);
  if (missed == k->heartbeat_missed) return;
  k->heartbeat_missed = missed;
  if (missed) {
    MarkHeartbeatMissed(&k->view);
  } else {
    k->view.ready = k->base.ready;
    k->view.not_ready_reason = k->base.not_ready_reason;
  }
}

void CapacityCache::RefreshLocked(int64_t now, const Options& opts) const {
  auto lookup = [this](const std::string& name) -> const Demand* {
    auto f = flavors_.find(name);
    return f == flavors_.end() ? nullptr : &f->second;
  };
  for (KeptNode* k : dirty_) {
    k->view = k->base;
    auto s = sums_.find(k->base.name);
    if (s != sums_.end()) {
      const NodeSum& n = s->second;
      ApplySum(n.vcpus, n.memory_mib, n.flavors, n.instances, n.groups, n.pool_taken, lookup, &k->view);
    }
    k->heartbeat_missed = false;
    k->dirty = false;
    JudgeHeartbeatLocked(k, now, opts);
    ++views_rebuilt_;
  }
  dirty_.clear();
  if (order_stale_) {
    kept_.clear();
    order_.clear();
    kept_.reserve(nodes_.size());
    order_.reserve(nodes_.size());
    for (auto& [name, k] : nodes_) {
      kept_.push_back(&k);
      order_.push_back(&k.view);
    }
    order_stale_ = false;
    judged_now_ = -1;
  }
  // Readiness by heartbeat changes with time alone, but only once a second: judged again for every node when
  // the second (or the grace) changes, otherwise only for the views just rebuilt (above).
  if (now != judged_now_ || opts.heartbeat_grace_seconds != judged_grace_) {
    for (KeptNode* k : kept_) JudgeHeartbeatLocked(k, now, opts);
    judged_now_ = now;
    judged_grace_ = opts.heartbeat_grace_seconds;
  }
}

Decision CapacityCache::ChooseAndAssume(const std::string& uid, const Demand& demand, const json& node_selector,
                                        int64_t now, const Options& opts) {
  std::lock_guard lock(mu_);
  RefreshLocked(now, opts);
  Decision d = Choose(demand, node_selector, order_, opts, /*in_name_order=*/true);
  if (!d.node.empty()) AssumeLocked(uid, d.node, demand);
  return d;
}

std::vector<NodeView> CapacityCache::Views(int64_t now, const Options& opts) const {
  std::lock_guard lock(mu_);
  RefreshLocked(now, opts);
  std::vector<NodeView> out;
  out.reserve(order_.size());
  for (const NodeView* v : order_) out.push_back(*v);
  return out;
}

size_t CapacityCache::NumNodes() const {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

uint64_t CapacityCache::NodesParsed() const {
  std::lock_guard lock(mu_);
  return nodes_parsed_;
}

uint64_t CapacityCache::ViewsRebuilt() const {
  std::lock_guard lock(mu_);
  return views_rebuilt_;
}

NodeView ViewNode(const json& node, int64_t now, const Options& opts, int64_t* heartbeat) {
  int64_t hb = -1;
  NodeView v = ParseNode(node, &hb);
  if (HeartbeatMissed(v.ready, hb, now, opts)) MarkHeartbeatMissed(&v);
  if (heartbeat != nullptr) *heartbeat = hb;
  return v;
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
  out.reserve(nodes.size());
  for (const auto& n : nodes) out.push_back(ViewNode(n, now, opts));
  std::sort(out.begin(), out.end(), [](const NodeView& a, const NodeView& b) { return a.name < b.name; });
  return out;
}

PlacementReconciler::PlacementReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* nodes,
                                         runtime::Informer* flavors, Options opts, runtime::Informer* volumes,
                                         runtime::Informer* images, runtime::Informer* groups)
    : client_(client), instances_(instances), nodes_(nodes), flavors_(flavors), volumes_(volumes), images_(images),
      groups_(groups), opts_(opts), events_(client, "placement"), cache_(std::make_shared<CapacityCache>()) {
  // The cache follows the informers event by event: bound usage (instances), node views (nodes, re-parsed only
  // when a Node's resourceVersion changes, so resyncs cost nothing), flavor sizes, and the pool space of volumes
  // placed but not made. Handlers run before an informer reports synced (and a late handler first gets every
  // cached object), so the cache is complete before any decision; and they run before the Controller's own
  // handlers (added later), so a key a node or flavor event wakes is decided against the cache that shows it.
  std::shared_ptr<CapacityCache> cache = cache_;
  instances_->AddHandler([cache](const std::string&, const json& obj, bool deleted) { cache->Observe(obj, deleted); });
  nodes_->AddHandler([cache](const std::string&, const json& obj, bool deleted) { cache->ObserveNode(obj, deleted); });
  flavors_->AddHandler([cache](const std::string&, const json& obj, bool deleted) { cache->ObserveFlavor(obj, deleted); });
  if (volumes_ != nullptr) {
    // Volumes placed but not made take their space (no assumptions here: volume placement makes those).
    volumes_->AddHandler([cache](const std::string&, const json& obj, bool deleted) { cache->ObserveVolume(obj, deleted); });
  }
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
  // DemandOf looks up only the instance's own flavor: no copy of every InstanceType per decision.
  std::map<std::string, json> flavors;
  std::string flavor_name = inst["spec"].value("instanceType", "");
  if (!flavor_name.empty()) {
    json f = flavors_->Get(flavor_name);
    if (!f.is_null()) flavors[flavor_name] = std::move(f);
  }
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
  // Decide and assume under the cache's lock, over the node views it keeps; the bind below runs outside it,
  // beside other workers' binds.
  Decision d = cache_->ChooseAndAssume(uid, *demand, inst["spec"].value("nodeSelector", json::object()),
                                       std::time(nullptr), opts_);
  if (d.node.empty()) {
    std::string msg = d.Message(d.reasons.size());  // nothing passed: every node has its reason
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
