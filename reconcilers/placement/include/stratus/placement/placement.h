// The placement reconciler (the scheduler): binds each Instance without spec.nodeName to a node, as
// nova-scheduler does: filters (each named) drop the nodes that cannot take it, weighers rank the rest, and when
// nothing fits the message names, per node, the filter that rejected it and why.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::placement {

struct Options {
  double cpu_overcommit = 4.0;     // Nova's cpu_allocation_ratio default is 16; small hosts want less
  double memory_overcommit = 1.0;  // Nova's ram_allocation_ratio
  double disk_overcommit = 1.0;    // Nova's disk_allocation_ratio (root disks in node pools)
  int heartbeat_grace_seconds = 40;
  // Weighers: "spread" prefers the emptiest node (free RAM, free vcpus, fewest instances), "pack" the fullest.
  std::string strategy = "spread";
  double ram_weight = 1.0, cpu_weight = 1.0, load_weight = 0.5, group_weight = 2.0;
};
// The node label that names a node's availability zone (EC2's zones are these too).
inline constexpr const char* kZoneLabel = "stratus.io/zone";
constexpr int kMaxPlacementWorkers = 64;

struct Demand {
  Demand(int vcpus_ = 0, int64_t memory_mib_ = 0, uint64_t root_bytes_ = 0)
      : vcpus(vcpus_), memory_mib(memory_mib_), root_bytes(root_bytes_) {}
  int vcpus = 0;
  int64_t memory_mib = 0;
  uint64_t root_bytes = 0;      // root volume made on the node (spec.image); checked against root_pool
  std::string root_pool;        // empty: the node's default pool
  std::string pinned_node;      // the node holding the instance's volumes (local storage), if any
  std::string pinned_why;       // e.g. "volume data-1"
  std::string zone;             // spec.availabilityZone ("" = any)
  std::string arch;             // architecture its image requires ("" = any)
  std::vector<std::string> traits;  // traits its images require (Image spec.requiredTraits)
  std::string traits_of;            // the image that requires them (for the message)
  std::string group;            // "namespace/name" of its InstanceGroup ("" = none)
  std::string group_policy;     // affinity | anti-affinity | soft-affinity | soft-anti-affinity
};

struct NodeView {
  std::string name;
  bool ready = false;
  bool unschedulable = false;
  std::string not_ready_reason;
  json labels = json::object();
  int alloc_vcpus = 0;
  int64_t alloc_memory_mib = 0;
  int used_vcpus = 0;
  int64_t used_memory_mib = 0;
  std::map<std::string, int64_t> pool_free;  // volume pools: free bytes (minus volumes placed but not made)
  std::map<std::string, int64_t> pool_capacity;
  std::string default_pool;
  std::string zone;    // label stratus.io/zone
  std::string arch;    // status.nodeInfo.arch
  std::set<std::string> traits;  // spec.traits
  double cpu_ratio = 0, ram_ratio = 0, disk_ratio = 0;  // spec.*AllocationRatio (0: the server's)
  int instances = 0;                                    // bound and assumed instances (load)
  std::map<std::string, int> group_members;             // InstanceGroup -> its instances here
};

struct Decision {
  std::string node;                 // empty when nothing fits
  std::vector<std::string> reasons; // one line per rejected node: "NODE: why [FilterName]"
  std::vector<std::pair<std::string, double>> weights;  // the nodes that passed, best first, with their weight
  std::string Message(size_t total_nodes) const;
};

// One filter: "" when `node` can take the instance, else why not.
struct Filter {
  const char* name;
  std::string (*check)(const Demand& d, const json& node_selector, const NodeView& n, const Options& o);
};
// In order: ComputeFilter (Ready, not cordoned), AvailabilityZoneFilter, NodeSelectorFilter, ArchitectureFilter,
// TraitsFilter, VolumePinFilter, CoreFilter, RamFilter, DiskFilter, ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter.
const std::vector<Filter>& Filters();
// Each weigher's raw value for a node that passed (higher = better before its multiplier); weights are the sum of
// multiplier x value normalised to [0, 1] over the candidates, as nova's weighers are.
struct Weigher {
  const char* name;
  double (*value)(const Demand& d, const NodeView& n, const Options& o);
  double (*multiplier)(const Demand& d, const Options& o);
};
const std::vector<Weigher>& Weighers();

// Pure decision: the filters drop nodes (the first failing filter is the node's reason), the weighers rank the
// rest; ties by name.
Decision Choose(const Demand& demand, const json& node_selector, const std::vector<NodeView>& nodes,
                const Options& opts);
// The same over views held elsewhere (the capacity cache's), without copying them. `in_name_order`: the caller
// vouches that `nodes` come sorted by name (the capacity cache's do), so ties need no name compared.
Decision Choose(const Demand& demand, const json& node_selector, const std::vector<const NodeView*>& nodes,
                const Options& opts, bool in_name_order = false);

// Reads pool free space and the default pool from a Node's status.pools.
void ReadPools(const json& node, NodeView* v);
// Free bytes of `pool` (empty: default) on `n`; -1 when the node has no such pool.
int64_t PoolFree(const NodeView& n, const std::string& pool);

// Where an Instance's volumes pin it: sets demand->pinned_node/pinned_why from the Volumes it lists
// (`volumes`: name -> Volume in its namespace). `*wait` explains what is not placed yet; kInvalid when its
// volumes sit on different nodes (the message names them).
Status PinToVolumes(const json& instance, const std::map<std::string, json>& volumes, Demand* demand,
                    std::string* wait);

// The resources an Instance asks for: spec.resources, or its InstanceType's spec (looked up in `flavors`,
// name -> InstanceType object). kNotFound naming the flavor when it does not exist.
StatusOr<Demand> DemandOf(const json& instance, const std::map<std::string, json>& flavors);

// Maps any event to the keys of every object of `objects` whose spec.nodeName is still empty: what a change of
// nodes, flavors or placed storage may unblock.
runtime::KeyMapper UnboundKeys(runtime::Informer* objects);

// What placement counts as taken on each node, as Kubernetes' scheduler cache: instances the instance cache shows
// bound, plus *assumed* ones — decided, their bind write not seen in the cache yet. An assumption ends when the
// cache shows the instance bound (Observe: it is then counted as bound, once), when the instance is deleted
// (Observe), or when its bind fails (Forget). Thread-safe; ChooseAndAssume decides and assumes under one lock, so
// several workers binding at once never overcommit a node.
//
// It also keeps the nodes themselves, as kube-scheduler's cache snapshot does: ObserveNode (the node informer's
// events) parses a Node into its view only when its resourceVersion changed, ObserveFlavor and ObserveVolume keep
// the flavor sizes and the pool space of volumes placed but not made. Each node's view with its usage is kept
// materialized; every change (a node, an instance bound, deleted or rebound, an assumption added, confirmed or
// forgotten, a flavor resized) only marks the nodes it touches, which the next decision brings up to date. A
// decision then costs O(nodes) filter and weigher calls over those views, without copying or rebuilding them.
class CapacityCache {
 public:
  // An Instance as the instance cache shows it (every add, update, resync and deletion). Bound (spec.nodeName
  // set): counted on that node by its spec.resources or its instanceType (looked up at decision time, so an
  // unknown flavor counts nothing), replacing its assumption. Unbound: not counted as bound; an assumption stays
  // (its bind may be in flight). Deleted: forgotten entirely.
  void Observe(const json& instance, bool deleted);
  // Counts `demand` (vcpus, memory, and root disk in its pool) on `node` for `uid` until Observe shows it bound
  // or deleted, or Forget.
  void Assume(const std::string& uid, const std::string& node, const Demand& demand);
  // The bind failed: the assumption is released. False when there was none.
  bool Forget(const std::string& uid);
  // True while `uid` is assumed (its bind is in flight, or written and not yet seen in the cache).
  bool Assumed(const std::string& uid) const;
  size_t NumAssumed() const;
  // Adds what is counted to `nodes`: used vcpus and memory; assumed root disks (and volumes ObserveVolume shows
  // placed, not made) leave their pool's free bytes. `flavors`: name -> InstanceType.
  void AddTo(std::vector<NodeView>* nodes, const std::map<std::string, json>& flavors) const;
  // Under one lock: AddTo, Choose, and when a node is chosen, Assume `uid` on it. Decides over `nodes` (copied and
  // counted per call), not over the nodes ObserveNode keeps.
  Decision ChooseAndAssume(const std::string& uid, const Demand& demand, const json& node_selector,
                           std::vector<NodeView> nodes, const std::map<std::string, json>& flavors,
                           const Options& opts);

  // ---- The nodes kept here (the reconciler's path) ----
  // A Node as the node informer shows it: parsed into its view (ViewNodes' fields but readiness by heartbeat,
  // which is judged at each decision) unless its metadata.resourceVersion is the one already kept. Deleted: gone.
  void ObserveNode(const json& node, bool deleted);
  // An InstanceType (name -> vcpus, memoryMiB): the size bound instances of it count. Deleted: they count nothing.
  void ObserveFlavor(const json& flavor, bool deleted);
  // A Volume as the volume cache shows it: placed on a node (spec.nodeName) and not made yet (no status.path),
  // its size leaves that node's pool (spec.pool, "" = default), as PoolSpaceCache counts it. Deleted: gone.
  void ObserveVolume(const json& volume, bool deleted);
  // Under one lock: brings the kept views up to date (what changed since the last decision, and readiness from
  // heartbeats at `now`, seconds since the epoch), Choose over them in name order, and when a node is chosen,
  // Assume `uid` on it.
  Decision ChooseAndAssume(const std::string& uid, const Demand& demand, const json& node_selector, int64_t now,
                           const Options& opts);
  // Copies of the kept views, brought up to date at `now` as a decision would (tests, the bench's checks).
  std::vector<NodeView> Views(int64_t now, const Options& opts) const;
  size_t NumNodes() const;
  // How many times a Node object was parsed into a view, and a view rebuilt from its node and usage (tests and
  // the bench: an unchanged node is neither).
  uint64_t NodesParsed() const;
  uint64_t ViewsRebuilt() const;

 private:
  struct BoundEntry {
    std::string node;
    std::string flavor;  // empty: explicit spec.resources in `resources`
    Demand resources;
    std::string group;   // "namespace/InstanceGroup" or ""
  };
  // What is counted on one node, kept as instances and assumptions come and go.
  struct NodeSum {
    int vcpus = 0;                          // explicit spec.resources of bound instances, plus assumptions
    int64_t memory_mib = 0;
    std::map<std::string, int> flavors;     // instanceType -> bound instances of it
    int instances = 0;                      // every bound and assumed instance (load)
    std::map<std::string, int> groups;      // InstanceGroup -> bound and assumed members
    std::map<std::string, int64_t> pool_taken;  // pool ("" = default) -> assumed root disks, volumes not made
    bool Empty() const;
  };
  struct Assumption {
    std::string node;
    Demand demand;
  };
  struct PendingVolume {
    std::string node;
    std::string pool;
    int64_t bytes = 0;
  };
  // A node kept here: its view as parsed (no usage, Ready as reported), and the view decisions read (with usage).
  struct KeptNode {
    std::string resource_version;
    NodeView base;
    int64_t heartbeat = -1;
    NodeView view;
    bool dirty = true;             // `view` is to be rebuilt from `base` and the node's sum
    bool heartbeat_missed = false;  // `view` shows the heartbeat missed (ready false) though `base` is ready
  };
  void AddToLocked(std::vector<NodeView>* nodes, const std::map<std::string, json>& flavors) const;
  void UnbindLocked(const std::string& uid);
  void UnassumeLocked(const std::string& uid);
  void AssumeLocked(const std::string& uid, const std::string& node, const Demand& demand);
  void TouchLocked(const std::string& node);
  // Brings every dirty view up to date and judges heartbeats at `now`; `order_` then lists the views by name.
  // Logically const (the kept views are a cache of each node's base view and sum), hence the mutable members.
  void RefreshLocked(int64_t now, const Options& opts) const;
  void JudgeHeartbeatLocked(KeptNode* k, int64_t now, const Options& opts) const;
  NodeSum& SumLocked(const std::string& node);
  void DropSumIfEmptyLocked(const std::string& node);
  mutable std::mutex mu_;
  std::map<std::string, BoundEntry> bound_;    // uid -> seen bound in the instance cache
  std::map<std::string, NodeSum> sums_;        // node -> what is counted there
  std::map<std::string, Assumption> assumed_;  // uid -> decided here, not seen bound yet
  std::map<std::string, PendingVolume> volumes_;  // volume uid -> placed, not made
  std::map<std::string, Demand> flavors_;      // InstanceType name -> its size (ObserveFlavor)
  mutable std::map<std::string, KeptNode> nodes_;  // node name -> kept view (ObserveNode)
  mutable std::vector<KeptNode*> dirty_;          // kept nodes whose view is to be rebuilt
  mutable std::vector<KeptNode*> kept_;           // the kept nodes by name (std::map's nodes do not move)
  mutable std::vector<const NodeView*> order_;    // their views, in the same order
  mutable bool order_stale_ = true;
  mutable int64_t judged_now_ = -1;               // the second (and grace) every heartbeat was last judged at
  mutable int judged_grace_ = -1;
  uint64_t nodes_parsed_ = 0;
  mutable uint64_t views_rebuilt_ = 0;
};

// One Node's view at `now`, as ViewNodes makes it. `*heartbeat` (optional): its status.lastHeartbeatTime, -1
// when absent or unreadable.
NodeView ViewNode(const json& node, int64_t now, const Options& opts, int64_t* heartbeat = nullptr);

// The NodeViews of the cached Node objects at `now` (seconds since the epoch): readiness (a heartbeat older than
// opts.heartbeat_grace_seconds is not Ready), cordon, labels, allocatable, pools. No usage counted yet.
std::vector<NodeView> ViewNodes(const std::vector<json>& nodes, int64_t now, const Options& opts);

// A resize of an instance bound to `node` (Nova's resize, here in place): "" when `demand` fits beside `others`
// (the other instances bound there, with `flavors` by name), else the node's reason as CoreFilter and RamFilter
// say it ("node-a: insufficient vcpus (need 8, free 3 of 8) [CoreFilter]").
std::string ResizeMisfit(const Demand& demand, const json& node, const std::vector<json>& others,
                         const std::map<std::string, json>& flavors, const Options& opts);

// Pool space placement counts as taken: volumes the volume cache shows placed on a node but not made yet (status.path
// empty; once made, the node's reported free space includes them), plus volumes *assumed* on a node — decided, their
// bind not seen in the cache yet. Same life cycle as CapacityCache: Observe ends an assumption when the bind shows
// or the volume is deleted, Forget when the bind fails. Thread-safe; a decision costs O(nodes + pending volumes).
class PoolSpaceCache {
 public:
  void Observe(const json& volume, bool deleted);
  void Assume(const std::string& uid, const std::string& node, const std::string& pool, int64_t bytes);
  bool Forget(const std::string& uid);
  bool Assumed(const std::string& uid) const;
  size_t NumAssumed() const;
  // Takes what is counted from each node's pool_free (pool "" is the node's default pool).
  void SubtractFrom(std::vector<NodeView>* nodes) const;
  // Under one lock: SubtractFrom, ChooseVolumeNode, and when a node is chosen, Assume `uid` on it.
  Decision ChooseAndAssume(const std::string& uid, int64_t bytes, const std::string& pool,
                           const std::string& pinned, const std::string& pinned_why,
                           std::vector<NodeView> nodes);

 private:
  struct Space {
    std::string node;
    std::string pool;
    int64_t bytes = 0;
  };
  void SubtractLocked(std::vector<NodeView>* nodes) const;
  mutable std::mutex mu_;
  std::map<std::string, Space> pending_;  // uid -> placed, not made
  std::map<std::string, Space> assumed_;  // uid -> decided here, bind not seen yet
};

// Pure decision for a volume of `bytes` in `pool` ("" = default): a Ready node (cordoned ones only when pinned)
// with the pool and room, the one with most free space; `pinned` (non-empty) restricts it to that node, `why`
// says what pins it. Reasons explain every rejected node; Decision::node is empty when nothing fits.
Decision ChooseVolumeNode(int64_t bytes, const std::string& pool, const std::string& pinned, const std::string& why,
                          const std::vector<NodeView>& nodes);
// "0/N nodes can hold this volume: ..." for a Decision of ChooseVolumeNode.
std::string VolumeDecisionMessage(const Decision& d, size_t total_nodes);

// Decides one instance at a time against the CapacityCache (decide + assume under its lock) and then writes the
// bind outside it, so a Controller may run several workers: their bind writes overlap (and share the store's
// group commit) while their decisions stay serial and consistent. A failed bind forgets its assumption and is
// retried with backoff. The cache follows the informers through handlers: instances (usage of bound ones),
// nodes (views re-parsed only when a Node's resourceVersion changes), flavors, and volumes placed but not made,
// so a decision neither re-reads every Node nor rebuilds every node's usage.
class PlacementReconciler : public runtime::Reconciler {
 public:
  // `volumes`, `images` and `groups` (InstanceGroups) may be null (no such constraints then).
  PlacementReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* nodes,
                      runtime::Informer* flavors, Options opts, runtime::Informer* volumes = nullptr,
                      runtime::Informer* images = nullptr, runtime::Informer* groups = nullptr);
  std::string Name() const override { return "placement"; }
  std::vector<const runtime::Informer*> Reads() const override {
    return {instances_, nodes_, flavors_, volumes_, images_, groups_};
  }
  std::vector<runtime::WatchSpec> Watches() override;

  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  ApiClient* client_;
  runtime::Informer* instances_;
  runtime::Informer* nodes_;
  runtime::Informer* flavors_;
  runtime::Informer* volumes_;
  runtime::Informer* images_;
  runtime::Informer* groups_;
  Options opts_;
  runtime::EventRecorder events_;
  // Shared with the instance informer's handler, which may outlive this reconciler.
  std::shared_ptr<CapacityCache> cache_;

 public:
  // For tests: the capacity cache this reconciler decides against.
  const CapacityCache& cache() const { return *cache_; }
};

// Binds each Volume without spec.nodeName: next to its source volume or snapshot, next to the bound instance that
// asks for it, or else on the Ready node whose pool has the most free space that fits it. Explains when nothing
// fits. Without `snapshots`, volumes made from a snapshot stay unbound.
class VolumePlacementReconciler : public runtime::Reconciler {
 public:
  VolumePlacementReconciler(ApiClient* client, runtime::Informer* volumes, runtime::Informer* nodes,
                            runtime::Informer* instances, Options opts, runtime::Informer* snapshots = nullptr);
  std::string Name() const override { return "volume-placement"; }
  std::vector<const runtime::Informer*> Reads() const override {
    if (snapshots_ == nullptr) return {volumes_, nodes_, instances_};
    return {volumes_, nodes_, instances_, snapshots_};
  }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;
  // For tests: the pool space this reconciler decides against.
  const PoolSpaceCache& cache() const { return *cache_; }

 private:
  ApiClient* client_;
  runtime::Informer* volumes_;
  runtime::Informer* nodes_;
  runtime::Informer* instances_;
  Options opts_;
  runtime::Informer* snapshots_;
  runtime::EventRecorder events_;
  std::shared_ptr<PoolSpaceCache> cache_;  // shared with the volume informer's handler
};

}  // namespace stratus::placement
