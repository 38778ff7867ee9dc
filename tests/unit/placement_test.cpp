// Placement decisions: filters (readiness, cordon, nodeSelector, capacity with overcommit), spreading, and the
// explanation users get when nothing fits; the capacity cache (assumed placements counted until the instance
// cache shows the bind, released when a bind fails); and the reconciler with many workers binding at once.
#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <random>
#include <thread>

#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/placement/placement.h"

namespace stratus::placement {
namespace {

NodeView Node(const std::string& name, int vcpus, int64_t mem, int used_cpu = 0, int64_t used_mem = 0) {
  NodeView n;
  n.name = name;
  n.ready = true;
  n.alloc_vcpus = vcpus;
  n.alloc_memory_mib = mem;
  n.used_vcpus = used_cpu;
  n.used_memory_mib = used_mem;
  n.labels = {{"stratus.io/zone", "a"}};
  return n;
}

TEST(PlacementTest, PicksTheNodeWithMostFreeMemoryShare) {
  Options o;
  o.cpu_overcommit = 1;
  auto d = Choose({1, 256}, json::object(), {Node("n1", 4, 1024, 0, 512), Node("n2", 4, 1024, 0, 128)}, o);
  EXPECT_EQ(d.node, "n2");
}

TEST(PlacementTest, CapacityWithOvercommit) {
  Options o;
  o.cpu_overcommit = 2.0;
  o.memory_overcommit = 1.0;
  EXPECT_EQ(Choose({2, 64}, json::object(), {Node("n1", 1, 1024)}, o).node, "n1");
  auto d = Choose({3, 64}, json::object(), {Node("n1", 1, 1024)}, o);
  EXPECT_EQ(d.node, "");
  ASSERT_EQ(d.reasons.size(), 1u);
  EXPECT_NE(d.reasons[0].find("insufficient vcpus (need 3, free 2 of 2)"), std::string::npos) << d.reasons[0];
  auto m = Choose({1, 2048}, json::object(), {Node("n1", 4, 1024, 0, 512)}, o);
  EXPECT_NE(m.reasons[0].find("insufficient memory (need 2048 MiB, free 512 MiB of 1024 MiB)"), std::string::npos)
      << m.reasons[0];
}

TEST(PlacementTest, ExplainsEveryRejectedNode) {
  Options o;
  NodeView down = Node("down", 8, 8192);
  down.ready = false;
  down.not_ready_reason = "NodeStatusUnknown";
  NodeView cordoned = Node("cordoned", 8, 8192);
  cordoned.unschedulable = true;
  NodeView full = Node("full", 1, 512, 4, 512);
  NodeView other_zone = Node("zone-b", 8, 8192);
  other_zone.labels = {{"stratus.io/zone", "b"}};
  auto d = Choose({1, 256}, {{"stratus.io/zone", "a"}}, {down, cordoned, full, other_zone}, o);
  EXPECT_EQ(d.node, "");
  std::string msg = d.Message(4);
  EXPECT_NE(msg.find("0/4 nodes can run this instance"), std::string::npos) << msg;
  EXPECT_NE(msg.find("down: not Ready (NodeStatusUnknown)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cordoned: unschedulable"), std::string::npos) << msg;
  EXPECT_NE(msg.find("full: insufficient"), std::string::npos) << msg;
  EXPECT_NE(msg.find("zone-b: does not match nodeSelector stratus.io/zone=a"), std::string::npos) << msg;
  EXPECT_NE(Decision{}.Message(0).find("no nodes are registered"), std::string::npos);
}

TEST(PlacementTest, DemandFromResourcesOrFlavor) {
  std::map<std::string, json> flavors = {{"m1.small", {{"spec", {{"vcpus", 2}, {"memoryMiB", 512}}}}}};
  auto a = DemandOf({{"spec", {{"instanceType", "m1.small"}}}}, flavors);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->vcpus, 2);
  EXPECT_EQ(a->memory_mib, 512);
  auto b = DemandOf({{"spec", {{"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}}}}, flavors);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->memory_mib, 128);
  auto c = DemandOf({{"spec", {{"instanceType", "m9.huge"}}}}, flavors);
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  EXPECT_NE(c.status().message().find("m9.huge"), std::string::npos);
}

// ---- CapacityCache: what is counted on each node -----------------------------------------------------------

const std::map<std::string, json> kFlavors = {{"m1.small", {{"spec", {{"vcpus", 1}, {"memoryMiB", 256}}}}}};

json BoundInstance(const std::string& uid, const std::string& node, const std::string& flavor = "m1.small") {
  json spec = {{"instanceType", flavor}};
  if (!node.empty()) spec["nodeName"] = node;
  return {{"metadata", {{"name", "i-" + uid}, {"namespace", "default"}, {"uid", uid}}}, {"spec", spec}};
}

// Used vcpus and memory of `name` after the cache adds what it counts to a fresh view.
std::pair<int, int64_t> Used(const CapacityCache& c, const std::string& name = "n1") {
  std::vector<NodeView> v = {Node("n1", 4, 1024), Node("n2", 4, 1024)};
  c.AddTo(&v, kFlavors);
  for (const auto& n : v) {
    if (n.name == name) return {n.used_vcpus, n.used_memory_mib};
  }
  return {-1, -1};
}

TEST(CapacityCacheTest, ManyDecidedAtOnceNeverOvercommit) {
  // Two nodes of 4 vcpus / 1024 MiB without overcommit hold 8 instances of 1 vcpu / 256 MiB; 8 threads try to
  // place 12 each at the same time against one cache, none of whose binds has shown in the instance cache yet.
  Options o;
  o.cpu_overcommit = 1;
  CapacityCache cache;
  std::atomic<int> placed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        Decision d = cache.ChooseAndAssume("u" + std::to_string(t) + "-" + std::to_string(i), {1, 256},
                                           json::object(), {Node("n1", 4, 1024), Node("n2", 4, 1024)}, kFlavors, o);
        (d.node.empty() ? refused : placed)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(placed.load(), 8);
  EXPECT_EQ(refused.load(), 88);
  EXPECT_EQ(cache.NumAssumed(), 8u);
  EXPECT_EQ(Used(cache, "n1"), (std::pair<int, int64_t>{4, 1024}));
  EXPECT_EQ(Used(cache, "n2"), (std::pair<int, int64_t>{4, 1024}));
  // And the refusal says why.
  Decision full = cache.ChooseAndAssume("late", {1, 256}, json::object(), {Node("n1", 4, 1024)}, kFlavors, o);
  ASSERT_EQ(full.reasons.size(), 1u);
  EXPECT_NE(full.reasons[0].find("insufficient vcpus (need 1, free 0 of 4)"), std::string::npos) << full.reasons[0];
  EXPECT_FALSE(cache.Assumed("late"));
}

TEST(CapacityCacheTest, AssumedAndBoundCountedTogether) {
  // Table: what the instance cache shows and what is assumed -> usage on n1.
  struct Case {
    const char* name;
    std::vector<json> observed;
    std::vector<std::string> assumed;  // uids assumed on n1 with 1 vcpu / 256 MiB
    std::pair<int, int64_t> want;
  };
  json explicit_res = BoundInstance("e", "n1");
  explicit_res["spec"].erase("instanceType");
  explicit_res["spec"]["resources"] = {{"vcpus", 2}, {"memoryMiB", 100}};
  std::vector<Case> cases = {
      {"nothing", {}, {}, {0, 0}},
      {"bound only", {BoundInstance("a", "n1"), BoundInstance("b", "n1")}, {}, {2, 512}},
      {"assumed only", {}, {"a", "b"}, {2, 512}},
      {"bound and another assumed", {BoundInstance("a", "n1")}, {"b"}, {2, 512}},
      {"other node not counted here", {BoundInstance("a", "n2")}, {}, {0, 0}},
      {"explicit resources", {explicit_res}, {}, {2, 100}},
      {"unknown flavor counts nothing", {BoundInstance("x", "n1", "m9.huge")}, {}, {0, 0}},
      {"unbound instance counts nothing", {BoundInstance("u", "")}, {}, {0, 0}},
  };
  for (const auto& c : cases) {
    CapacityCache cache;
    for (const auto& uid : c.assumed) cache.Assume(uid, "n1", {1, 256});
    for (const auto& i : c.observed) cache.Observe(i, false);
    EXPECT_EQ(Used(cache), c.want) << c.name;
  }
}

TEST(CapacityCacheTest, BoundInstanceSeenReplacesItsAssumption) {
  CapacityCache cache;
  cache.Assume("a", "n1", {1, 256});
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{1, 256}));
  // An older, unbound version of it (e.g. its creation event arriving late) keeps the assumption: its bind is
  // in flight.
  cache.Observe(BoundInstance("a", ""), false);
  EXPECT_TRUE(cache.Assumed("a"));
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{1, 256}));
  // The bind shows in the cache: counted once, as bound; the assumption is gone.
  cache.Observe(BoundInstance("a", "n1"), false);
  EXPECT_FALSE(cache.Assumed("a"));
  EXPECT_EQ(cache.NumAssumed(), 0u);
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{1, 256}));
  // Seen again (updates, resyncs): still once.
  cache.Observe(BoundInstance("a", "n1"), false);
  cache.Observe(BoundInstance("a", "n1"), false);
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{1, 256}));
  // Deleted: nothing left.
  cache.Observe(BoundInstance("a", "n1"), true);
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{0, 0}));
  // An instance deleted while its bind was in flight takes its assumption with it.
  cache.Assume("b", "n1", {1, 256});
  cache.Observe(BoundInstance("b", ""), true);
  EXPECT_FALSE(cache.Assumed("b"));
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{0, 0}));
}

TEST(CapacityCacheTest, FailedBindReleasesItsAssumption) {
  Options o;
  o.cpu_overcommit = 1;
  CapacityCache cache;
  std::vector<NodeView> one = {Node("n1", 2, 1024)};
  EXPECT_EQ(cache.ChooseAndAssume("a", {1, 256}, json::object(), one, kFlavors, o).node, "n1");
  EXPECT_EQ(cache.ChooseAndAssume("b", {1, 256}, json::object(), one, kFlavors, o).node, "n1");
  EXPECT_EQ(cache.ChooseAndAssume("c", {1, 256}, json::object(), one, kFlavors, o).node, "");  // full
  // b's bind fails: its capacity is free for the next decision.
  EXPECT_TRUE(cache.Forget("b"));
  EXPECT_FALSE(cache.Forget("b"));
  EXPECT_FALSE(cache.Assumed("b"));
  EXPECT_EQ(Used(cache), (std::pair<int, int64_t>{1, 256}));
  EXPECT_EQ(cache.ChooseAndAssume("c", {1, 256}, json::object(), one, kFlavors, o).node, "n1");
}

TEST(CapacityCacheTest, AssumedRootDiskLeavesItsPool) {
  NodeView n = Node("n1", 64, 65536);
  n.pool_free = {{"default", 3 << 20}, {"fast", 10 << 20}};
  n.default_pool = "default";
  Options o;
  CapacityCache cache;
  Demand d;
  d.vcpus = 1;
  d.memory_mib = 64;
  d.root_bytes = 2 << 20;
  EXPECT_EQ(cache.ChooseAndAssume("a", d, json::object(), {n}, kFlavors, o).node, "n1");
  Decision second = cache.ChooseAndAssume("b", d, json::object(), {n}, kFlavors, o);
  EXPECT_EQ(second.node, "");  // 2 MiB of 3 are assumed taken
  ASSERT_EQ(second.reasons.size(), 1u);
  EXPECT_NE(second.reasons[0].find("insufficient storage for the root disk in the default pool"), std::string::npos)
      << second.reasons[0];
  d.root_pool = "fast";
  EXPECT_EQ(cache.ChooseAndAssume("b", d, json::object(), {n}, kFlavors, o).node, "n1");
}

// ---- CapacityCache: the node views it keeps, brought up to date by events, not rebuilt per decision --------

constexpr int64_t kNow = 1796428800;

// A Node object as the node informer delivers it: Ready, heartbeated at kNow.
json NodeObject(const std::string& name, int vcpus, int64_t mem, const std::string& rv = "1") {
  return {{"metadata", {{"name", name}, {"resourceVersion", rv}, {"labels", {{"stratus.io/zone", "a"}}}}},
          {"spec", json::object()},
          {"status", {{"allocatable", {{"vcpus", vcpus}, {"memoryMiB", mem}}},
                      {"lastHeartbeatTime", FormatRfc3339(kNow)},
                      {"pools", {{{"name", "default"}, {"default", true}, {"availableBytes", int64_t{4} << 20},
                                  {"capacityBytes", int64_t{4} << 20}}}},
                      {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "AgentReady"}}}}}}};
}

json Flavor(const std::string& name, int vcpus, int64_t mem) {
  return {{"metadata", {{"name", name}}}, {"spec", {{"vcpus", vcpus}, {"memoryMiB", mem}}}};
}

Options NoOvercommit() {
  Options o;
  o.cpu_overcommit = 1;
  return o;
}

// The kept view of `name` at kNow.
NodeView Kept(const CapacityCache& c, const std::string& name) {
  for (auto& v : c.Views(kNow, NoOvercommit())) {
    if (v.name == name) return v;
  }
  return NodeView{};
}

// A cache that keeps n1 and n2 (4 vcpus / 1024 MiB each) and knows m1.small.
std::unique_ptr<CapacityCache> KeptCache() {
  auto c = std::make_unique<CapacityCache>();
  c->ObserveNode(NodeObject("n1", 4, 1024), false);
  c->ObserveNode(NodeObject("n2", 4, 1024), false);
  c->ObserveFlavor(Flavor("m1.small", 1, 256), false);
  return c;
}

TEST(KeptViewsTest, AnUnchangedNodeIsNotParsedAgainAndAChangedOneIs) {
  auto c = KeptCache();
  EXPECT_EQ(c->NodesParsed(), 2u);
  // Resyncs deliver the same version again: nothing parsed, nothing rebuilt.
  EXPECT_EQ(c->ChooseAndAssume("a", {1, 256}, json::object(), kNow, NoOvercommit()).node, "n1");
  uint64_t rebuilt = c->ViewsRebuilt();
  for (int i = 0; i < 3; ++i) c->ObserveNode(NodeObject("n1", 4, 1024), false);
  EXPECT_EQ(c->NodesParsed(), 2u);
  EXPECT_TRUE(c->Forget("a"));
  EXPECT_EQ(c->ChooseAndAssume("b", {1, 256}, json::object(), kNow, NoOvercommit()).node, "n1");
  EXPECT_EQ(c->ViewsRebuilt(), rebuilt + 1) << "only n1, whose assumption went and came, is rebuilt";
  // n1's capacity grows (a new version): the next decision sees it, with what is counted there.
  c->ObserveNode(NodeObject("n1", 16, 8192, "2"), false);
  EXPECT_EQ(c->NodesParsed(), 3u);
  NodeView n1 = Kept(*c, "n1");
  EXPECT_EQ(n1.alloc_vcpus, 16);
  EXPECT_EQ(n1.used_vcpus, 1);
  Decision big = c->ChooseAndAssume("big", {8, 4096}, json::object(), kNow, NoOvercommit());
  EXPECT_EQ(big.node, "n1");
  // Shrunk below what it runs: refused, naming the new capacity.
  c->ObserveNode(NodeObject("n1", 2, 8192, "3"), false);
  Decision more = c->ChooseAndAssume("more", {5, 256}, json::object(), kNow, NoOvercommit());
  EXPECT_EQ(more.node, "");
  ASSERT_EQ(more.reasons.size(), 2u);
  EXPECT_EQ(more.reasons[0], "n1: insufficient vcpus (need 5, free 0 of 2) [CoreFilter]");
  EXPECT_EQ(more.reasons[1], "n2: insufficient vcpus (need 5, free 4 of 4) [CoreFilter]");
  // Cordoned, then deleted: the decision follows.
  json cordoned = NodeObject("n2", 4, 1024, "2");
  cordoned["spec"]["unschedulable"] = true;
  c->ObserveNode(cordoned, false);
  Decision d = c->ChooseAndAssume("c", {1, 256}, json::object(), kNow, NoOvercommit());
  EXPECT_EQ(d.node, "");
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1], "n2: unschedulable (cordoned) [ComputeFilter]");
  c->ObserveNode(cordoned, true);
  EXPECT_EQ(c->NumNodes(), 1u);
  Decision gone = c->ChooseAndAssume("d", {4, 256}, json::object(), kNow, NoOvercommit());
  EXPECT_EQ(gone.reasons.size(), 1u);
  EXPECT_EQ(gone.Message(gone.reasons.size()).rfind("0/1 nodes can run this instance: n1: ", 0), 0u);
}

TEST(KeptViewsTest, AMissedHeartbeatIsJudgedAtEachDecisionWithoutANewVersion) {
  auto c = KeptCache();
  Options o = NoOvercommit();
  o.heartbeat_grace_seconds = 40;
  EXPECT_EQ(c->ChooseAndAssume("a", {1, 256}, json::object(), kNow + 40, o).node, "n1");
  Decision late = c->ChooseAndAssume("b", {1, 256}, json::object(), kNow + 41, o);
  EXPECT_EQ(late.node, "");
  ASSERT_EQ(late.reasons.size(), 2u);
  EXPECT_EQ(late.reasons[0], "n1: not Ready (heartbeat missed) [ComputeFilter]");
  // n2 heartbeats: Ready again; n1 still not.
  json n2 = NodeObject("n2", 4, 1024, "2");
  n2["status"]["lastHeartbeatTime"] = FormatRfc3339(kNow + 41);
  c->ObserveNode(n2, false);
  EXPECT_EQ(c->ChooseAndAssume("b", {1, 256}, json::object(), kNow + 41, o).node, "n2");
  // A longer grace makes n1 Ready again at the same second.
  o.heartbeat_grace_seconds = 100;
  EXPECT_EQ(c->ChooseAndAssume("c", {1, 256}, json::object(), kNow + 41, o).node, "n1");
  // A node that reports itself not Ready says its own reason.
  json down = NodeObject("n1", 4, 1024, "2");
  down["status"]["conditions"][0]["status"] = "False";
  down["status"]["conditions"][0]["reason"] = "HypervisorDown";
  c->ObserveNode(down, false);
  Decision d = c->ChooseAndAssume("d", {4, 256}, json::object(), kNow + 41, o);
  EXPECT_EQ(d.reasons[0], "n1: not Ready (HypervisorDown) [ComputeFilter]");
}

TEST(KeptViewsTest, InstancesBoundDeletedAndReboundMoveTheirUsage) {
  auto c = KeptCache();
  using U = std::pair<int, int64_t>;
  auto used = [&](const std::string& n) { NodeView v = Kept(*c, n); return U{v.used_vcpus, v.used_memory_mib}; };
  c->Observe(BoundInstance("a", "n1"), false);
  c->Observe(BoundInstance("b", "n1"), false);
  EXPECT_EQ(used("n1"), (U{2, 512}));
  EXPECT_EQ(Kept(*c, "n1").instances, 2);
  // Rebound elsewhere (an evacuation, a user's edit): moved, not counted twice.
  c->Observe(BoundInstance("a", "n2"), false);
  EXPECT_EQ(used("n1"), (U{1, 256}));
  EXPECT_EQ(used("n2"), (U{1, 256}));
  // Deleted: freed, and the next decision may use the space.
  c->Observe(BoundInstance("b", "n1"), true);
  EXPECT_EQ(used("n1"), (U{0, 0}));
  Decision d = c->ChooseAndAssume("x", {4, 1024}, json::object(), kNow, NoOvercommit());
  EXPECT_EQ(d.node, "n1");
  // An instance bound to a node not kept (yet) is counted once that node appears.
  c->Observe(BoundInstance("late", "n3"), false);
  c->ObserveNode(NodeObject("n3", 4, 1024), false);
  EXPECT_EQ(used("n3"), (U{1, 256}));
}

TEST(KeptViewsTest, AnAssumptionConfirmedByTheInformerIsCountedOnce) {
  auto c = KeptCache();
  using U = std::pair<int, int64_t>;
  Demand d(1, 256);
  d.root_bytes = 1 << 20;
  d.group = "default/web";
  Decision first = c->ChooseAndAssume("a", d, json::object(), kNow, NoOvercommit());
  ASSERT_EQ(first.node, "n1");
  NodeView assumed = Kept(*c, "n1");
  EXPECT_EQ((U{assumed.used_vcpus, assumed.used_memory_mib}), (U{1, 256}));
  EXPECT_EQ(assumed.pool_free.at("default"), 3 << 20);
  EXPECT_EQ(assumed.group_members.at("default/web"), 1);
  // The bind shows: counted once, as bound (its root disk is then the node's to report).
  json bound = BoundInstance("a", "n1");
  bound["spec"]["instanceGroup"] = "web";
  for (int i = 0; i < 3; ++i) c->Observe(bound, false);  // the event, then resyncs
  EXPECT_FALSE(c->Assumed("a"));
  EXPECT_FALSE(c->Forget("a"));
  NodeView seen = Kept(*c, "n1");
  EXPECT_EQ((U{seen.used_vcpus, seen.used_memory_mib}), (U{1, 256}));
  EXPECT_EQ(seen.instances, 1);
  EXPECT_EQ(seen.group_members.at("default/web"), 1);
  EXPECT_EQ(seen.pool_free.at("default"), 4 << 20);
  // Decided on n2, but the informer shows it bound to n1 (someone else bound it): counted on n1 only.
  Decision second = c->ChooseAndAssume("b", {1, 256}, json::object(), kNow, NoOvercommit());
  ASSERT_EQ(second.node, "n2");
  c->Observe(BoundInstance("b", "n1"), false);
  EXPECT_EQ(Kept(*c, "n2").used_vcpus, 0);
  EXPECT_EQ(Kept(*c, "n1").used_vcpus, 2);
  // A failed bind releases what it held, at once.
  Decision third = c->ChooseAndAssume("c", {2, 256}, json::object(), kNow, NoOvercommit());
  ASSERT_EQ(third.node, "n2");
  EXPECT_TRUE(c->Forget("c"));
  EXPECT_EQ(Kept(*c, "n2").used_vcpus, 0);
  EXPECT_EQ(Kept(*c, "n2").instances, 0);
}

TEST(KeptViewsTest, FlavorsAndPendingVolumesAreFollowed) {
  auto c = KeptCache();
  c->Observe(BoundInstance("a", "n1"), false);
  c->Observe(BoundInstance("b", "n1"), false);
  EXPECT_EQ(Kept(*c, "n1").used_memory_mib, 512);
  c->ObserveFlavor(Flavor("m1.small", 2, 512), false);  // resized: its instances count the new size
  EXPECT_EQ(Kept(*c, "n1").used_vcpus, 4);
  EXPECT_EQ(Kept(*c, "n1").used_memory_mib, 1024);
  EXPECT_EQ(c->ChooseAndAssume("x", {1, 256}, json::object(), kNow, NoOvercommit()).node, "n2");
  c->ObserveFlavor(Flavor("m1.small", 2, 512), true);  // gone: counts nothing, as DemandOf fails for it
  EXPECT_EQ(Kept(*c, "n1").used_vcpus, 0);
  // A volume placed on n2, not made yet, takes its pool space; made (or deleted), it no longer does.
  json vol = {{"metadata", {{"name", "data"}, {"namespace", "default"}, {"uid", "v1"}}},
              {"spec", {{"nodeName", "n2"}, {"size", "3Mi"}}}};
  c->ObserveVolume(vol, false);
  EXPECT_EQ(Kept(*c, "n2").pool_free.at("default"), 1 << 20);
  Demand disk(1, 64);
  disk.root_bytes = 2 << 20;
  disk.pinned_node = "n2";
  disk.pinned_why = "volume data";
  Decision d = c->ChooseAndAssume("y", disk, json::object(), kNow, NoOvercommit());
  EXPECT_EQ(d.node, "");
  EXPECT_NE(d.reasons[1].find("insufficient storage for the root disk in the default pool"), std::string::npos)
      << d.reasons[1];
  vol["status"]["path"] = "/var/lib/stratus/volumes/data";
  c->ObserveVolume(vol, false);
  EXPECT_EQ(Kept(*c, "n2").pool_free.at("default"), 4 << 20);
  EXPECT_EQ(c->ChooseAndAssume("y", disk, json::object(), kNow, NoOvercommit()).node, "n2");
}

TEST(KeptViewsTest, KeptViewsDecideAsViewsRebuiltFromScratch) {
  // Random events (nodes changing, instances bound, rebound and deleted, assumptions made, confirmed and
  // forgotten, a flavor resized); after each, the kept views and the decision must be those of the from-scratch
  // path the reconciler took before (ViewNodes + AddTo + Choose).
  std::mt19937 rng(13);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  CapacityCache c;
  std::map<std::string, json> nodes, flavors;
  std::vector<std::string> assumed;
  Options o;
  o.heartbeat_grace_seconds = 40;
  int rv = 1;
  for (int step = 0; step < 600; ++step) {
    std::string node = "n" + std::to_string(pick(6));
    std::string uid = "u" + std::to_string(pick(40));
    switch (pick(8)) {
      case 0: {  // a node appears or changes
        json n = NodeObject(node, 2 + pick(6), 512 * (1 + pick(4)), std::to_string(++rv));
        if (pick(4) == 0) n["spec"]["unschedulable"] = true;
        if (pick(4) == 0) n["status"]["lastHeartbeatTime"] = FormatRfc3339(kNow - 60);
        if (pick(3) == 0) n["spec"]["cpuAllocationRatio"] = 2.0;
        nodes[node] = n;
        c.ObserveNode(n, false);
        break;
      }
      case 1:  // a node goes
        if (nodes.count(node)) {
          c.ObserveNode(nodes[node], true);
          nodes.erase(node);
        }
        break;
      case 2:
      case 3: {  // an instance is seen bound (maybe rebound), or unbound
        json i = BoundInstance(uid, pick(5) == 0 ? "" : node, pick(6) == 0 ? "m9.gone" : "m1.small");
        if (pick(2) == 0) i["spec"]["instanceGroup"] = "web";
        c.Observe(i, false);
        break;
      }
      case 4:  // an instance is deleted
        c.Observe(BoundInstance(uid, node), true);
        break;
      case 5:  // the flavor is resized or deleted
        if (pick(4) == 0) {
          c.ObserveFlavor(Flavor("m1.small", 1, 256), true);
          flavors.erase("m1.small");
        } else {
          json f = Flavor("m1.small", 1 + pick(2), 128 * (1 + pick(3)));
          c.ObserveFlavor(f, false);
          flavors["m1.small"] = f;
        }
        break;
      case 6:  // a bind fails
        if (!assumed.empty()) c.Forget(assumed[pick(static_cast<int>(assumed.size()))]);
        break;
      default:
        break;
    }
    Demand d(1 + pick(2), 128 * (1 + pick(4)));
    d.root_bytes = pick(2) ? (1 << 20) : 0;
    if (pick(2) == 0) {
      d.group = "default/web";
      d.group_policy = std::vector<std::string>{"affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"}[pick(4)];
    }
    int64_t now = kNow + pick(2) * 30;  // sometimes late enough that a heartbeat is missed
    std::vector<json> objs;
    for (const auto& [n, obj] : nodes) objs.push_back(obj);
    std::vector<NodeView> fresh = ViewNodes(objs, now, o);
    c.AddTo(&fresh, flavors);
    std::vector<NodeView> kept = c.Views(now, o);
    ASSERT_EQ(kept.size(), fresh.size()) << "step " << step;
    for (size_t k = 0; k < kept.size(); ++k) {
      EXPECT_EQ(kept[k].name, fresh[k].name) << "step " << step;
      EXPECT_EQ(kept[k].ready, fresh[k].ready) << "step " << step << " " << kept[k].name;
      EXPECT_EQ(kept[k].used_vcpus, fresh[k].used_vcpus) << "step " << step << " " << kept[k].name;
      EXPECT_EQ(kept[k].used_memory_mib, fresh[k].used_memory_mib) << "step " << step << " " << kept[k].name;
      EXPECT_EQ(kept[k].instances, fresh[k].instances) << "step " << step << " " << kept[k].name;
      EXPECT_EQ(kept[k].group_members, fresh[k].group_members) << "step " << step << " " << kept[k].name;
      EXPECT_EQ(kept[k].pool_free, fresh[k].pool_free) << "step " << step << " " << kept[k].name;
    }
    Decision want = Choose(d, json::object(), fresh, o);
    std::string new_uid = "new-" + std::to_string(step);
    Decision got = c.ChooseAndAssume(new_uid, d, json::object(), now, o);
    ASSERT_EQ(got.node, want.node) << "step " << step;
    EXPECT_EQ(got.reasons, want.reasons) << "step " << step;
    EXPECT_EQ(got.weights, want.weights) << "step " << step;
    if (!got.node.empty()) assumed.push_back(new_uid);
    if (HasFailure()) return;
  }
}

// ---- The reconciler: a real in-process API, informers, a controller with several workers ------------------

// Forwards to a real client; fails the first `fail_binds` spec patches of instances (placement's bind).
class FlakyBindClient : public ApiClient {
 public:
  explicit FlakyBindClient(ApiClient* c) : c_(c) {}
  std::atomic<int> fail_binds{0};
  StatusOr<json> Get(const std::string& p, const std::string& ns, const std::string& n) override { return c_->Get(p, ns, n); }
  StatusOr<json> List(const std::string& p, const std::string& ns, const ListOptions& o) override { return c_->List(p, ns, o); }
  StatusOr<json> Create(const std::string& p, const std::string& ns, const json& o) override { return c_->Create(p, ns, o); }
  StatusOr<json> Update(const std::string& p, const std::string& ns, const json& o) override { return c_->Update(p, ns, o); }
  StatusOr<json> UpdateStatus(const std::string& p, const std::string& ns, const json& o) override {
    return c_->UpdateStatus(p, ns, o);
  }
  StatusOr<json> Patch(const std::string& p, const std::string& ns, const std::string& n, const json& patch,
                       const std::string& sub) override {
    if (p == "instances" && sub.empty() && fail_binds.fetch_sub(1) > 0) return Status(Code::kUnavailable, "injected");
    return c_->Patch(p, ns, n, patch, sub);
  }
  StatusOr<json> Delete(const std::string& p, const std::string& ns, const std::string& n, const std::string& uid) override {
    return c_->Delete(p, ns, n, uid);
  }
  Status Watch(const std::string& p, const std::string& ns, const ListOptions& o,
               const std::function<bool(const WatchEvent&)>& f, const std::atomic<bool>* stop) override {
    return c_->Watch(p, ns, o, f, stop);
  }
  StatusOr<std::string> GetRaw(const std::string& path) override { return c_->GetRaw(path); }

 private:
  ApiClient* c_;
};

class PlacementReconcilerTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    flaky_ = std::make_unique<FlakyBindClient>(client_.get());
    for (auto [inf, plural] : {std::pair{&instances_, "instances"}, {&nodes_, "nodes"}, {&flavors_, "instancetypes"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
    }
    Options o;
    o.cpu_overcommit = 1;
    rec_ = std::make_unique<PlacementReconciler>(flaky_.get(), instances_.get(), nodes_.get(), flavors_.get(), o);
    for (auto* inf : {&instances_, &nodes_, &flavors_}) {
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(std::chrono::seconds(5)));
    }
    MustCreate({{"apiVersion", "stratus.io/v1"},
                {"kind", "InstanceType"},
                {"metadata", {{"name", "m1.small"}}},
                {"spec", {{"vcpus", 1}, {"memoryMiB", 256}}}},
               "instancetypes", "");
    for (const char* n : {"n1", "n2"}) AddNode(n);
    ASSERT_TRUE(WaitFor([&] { return nodes_->List().size() == 2 && flavors_->List().size() == 1; }));
  }
  void TearDown() override {
    ctl_.reset();
    for (auto* inf : {&instances_, &nodes_, &flavors_}) (*inf)->Stop();
    rec_.reset();
    LocalApiTest::TearDown();
  }
  // A Ready node of 4 vcpus / 1024 MiB that has just heartbeated.
  void AddNode(const std::string& name) {
    json n = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}}, "nodes", "");
    n["status"] = {{"allocatable", {{"vcpus", 4}, {"memoryMiB", 1024}}},
                   {"lastHeartbeatTime", NowRfc3339()},
                   {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "AgentReady"},
                                    {"lastTransitionTime", NowRfc3339()}}}}};
    auto u = client_->UpdateStatus("nodes", "", n);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
  }
  void AddInstance(const std::string& name) {
    MustCreate({{"apiVersion", "stratus.io/v1"},
                {"kind", "Instance"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"instanceType", "m1.small"}}}},
               "instances");
  }
  // Instances the API shows bound, per node.
  std::map<std::string, int> BoundPerNode() {
    std::map<std::string, int> out;
    auto l = client_->List("instances", "default", {});
    if (!l.ok()) return out;
    for (const auto& i : (*l)["items"]) {
      std::string node = i["spec"].value("nodeName", "");
      if (!node.empty()) out[node]++;
    }
    return out;
  }

  std::unique_ptr<FlakyBindClient> flaky_;
  std::unique_ptr<runtime::Informer> instances_, nodes_, flavors_;
  std::unique_ptr<PlacementReconciler> rec_;
  std::unique_ptr<runtime::Controller> ctl_;
};

TEST_F(PlacementReconcilerTest, ManyWorkersBindingAtOnceNeverOvercommit) {
  // 20 instances arrive at once; 8 fit (4 per node). Eight workers bind concurrently.
  ctl_ = std::make_unique<runtime::Controller>(rec_.get(), 8);
  ctl_->Start();
  for (int i = 0; i < 20; ++i) AddInstance("burst-" + std::to_string(i));
  auto unschedulable = [&] {
    auto l = client_->List("instances", "default", {});
    int n = 0;
    if (!l.ok()) return 0;
    for (const auto& i : (*l)["items"]) {
      json c = runtime::GetCondition(i, "Scheduled");
      if (c.is_object() && c.value("reason", "") == "Unschedulable") ++n;
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] {
    auto b = BoundPerNode();
    return b["n1"] + b["n2"] == 8 && unschedulable() == 12;
  }, std::chrono::seconds(20))) << "bound n1=" << BoundPerNode()["n1"] << " n2=" << BoundPerNode()["n2"];
  auto b = BoundPerNode();
  EXPECT_EQ(b["n1"], 4);
  EXPECT_EQ(b["n2"], 4);
  // Every bind has shown in the cache: no assumption is left over, nothing counted twice.
  ASSERT_TRUE(WaitFor([&] { return rec_->cache().NumAssumed() == 0; }));
  std::vector<NodeView> v = ViewNodes(nodes_->List(), std::time(nullptr), Options{});
  std::map<std::string, json> fl;
  for (const auto& f : flavors_->List()) fl[MetaString(f, "name")] = f;
  rec_->cache().AddTo(&v, fl);
  for (const auto& n : v) {
    EXPECT_EQ(n.used_vcpus, 4) << n.name;
    EXPECT_EQ(n.used_memory_mib, 1024) << n.name;
  }
}

TEST_F(PlacementReconcilerTest, FailedBindForgetsItsAssumptionAndRetries) {
  AddInstance("web-1");
  ASSERT_TRUE(WaitFor([&] { return !instances_->Get("default/web-1").is_null(); }));
  flaky_->fail_binds = 1;
  auto r = rec_->Reconcile("default/web-1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(rec_->cache().NumAssumed(), 0u);  // released: nothing is held for a bind that did not happen
  r = rec_->Reconcile("default/web-1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto got = client_->Get("instances", "default", "web-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE((*got)["spec"].value("nodeName", "").empty());
  // Once the cache shows the bind, it is counted as bound and the assumption is gone.
  ASSERT_TRUE(WaitFor([&] { return rec_->cache().NumAssumed() == 0; }));
}

}  // namespace
}  // namespace stratus::placement

namespace stratus::placement {
namespace {

TEST_F(PlacementReconcilerTest, AnImagesRequiredTraitsChooseTheNodesThatHaveThem) {
  runtime::InformerOptions io;
  io.plural = "images";
  runtime::Informer images(client_.get(), io);
  images.Start();
  ASSERT_TRUE(images.WaitForSync(std::chrono::seconds(5)));
  Options o;
  o.cpu_overcommit = 1;
  PlacementReconciler rec(client_.get(), instances_.get(), nodes_.get(), flavors_.get(), o, nullptr, &images);
  MustCreate({{"apiVersion", "stratus.io/v1"},
              {"kind", "Image"},
              {"metadata", {{"name", "cuda"}, {"namespace", "default"}}},
              {"spec", {{"type", "kernel"}, {"source", {{"url", "http://example.invalid/k"}}},
                        {"requiredTraits", {"CUSTOM_GPU"}}}}},
             "images");
  auto p = client_->Patch("nodes", "", "n2", {{"spec", {{"traits", {"CUSTOM_GPU", "HW_CPU_X86_AVX2"}}}}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_FALSE(client_->Patch("nodes", "", "n1", {{"spec", {{"traits", {"not a trait"}}}}}).ok()) << "names checked";
  MustCreate({{"apiVersion", "stratus.io/v1"},
              {"kind", "Instance"},
              {"metadata", {{"name", "trainer"}, {"namespace", "default"}}},
              {"spec", {{"instanceType", "m1.small"}, {"kernelImage", "cuda"}}}},
             "instances");
  ASSERT_TRUE(WaitFor([&] {
    if (images.Get("default/cuda").is_null() || instances_->Get("default/trainer").is_null()) return false;
    // The reconciler decides over the node views its cache keeps: wait for the node event to reach them too.
    for (const auto& v : rec.cache().Views(std::time(nullptr), o)) {
      if (v.name == "n2" && v.traits.count("CUSTOM_GPU")) return true;
    }
    return false;
  }));
  ASSERT_TRUE(rec.Reconcile("default/trainer").ok());
  json t = *client_->Get("instances", "default", "trainer");
  EXPECT_EQ(t["spec"].value("nodeName", ""), "n2") << t.dump();
  images.Stop();
}

}  // namespace
}  // namespace stratus::placement
