// The scheduler's filters and weighers, one by one, and "no valid host" naming each node's filter and reason.
#include <gtest/gtest.h>

#include "stratus/placement/placement.h"

namespace stratus::placement {
namespace {

NodeView Host(const std::string& name, int vcpus = 4, int64_t mem = 4096) {
  NodeView n;
  n.name = name;
  n.ready = true;
  n.alloc_vcpus = vcpus;
  n.alloc_memory_mib = mem;
  n.pool_free["default"] = 10ll << 30;
  n.pool_capacity["default"] = 20ll << 30;
  n.default_pool = "default";
  n.arch = "x86_64";
  return n;
}

Demand Small() {
  Demand d;
  d.vcpus = 1;
  d.memory_mib = 512;
  return d;
}

Options Opts() {
  Options o;
  o.cpu_overcommit = 1.0;
  return o;
}

std::string ReasonFor(const Decision& d, const std::string& node) {
  for (const auto& r : d.reasons) {
    if (r.rfind(node + ": ", 0) == 0) return r;
  }
  return "";
}

TEST(SchedulerTest, EveryFilterNamesItselfInTheNodesReason) {
  std::vector<NodeView> nodes;
  NodeView down = Host("down");
  down.ready = false;
  down.not_ready_reason = "heartbeat missed";
  NodeView cordoned = Host("cordoned");
  cordoned.unschedulable = true;
  NodeView zone_b = Host("zone-b");
  zone_b.zone = "b";
  NodeView unlabelled = Host("unlabelled");
  unlabelled.zone = "a";
  NodeView arm = Host("arm");
  arm.zone = "a";
  arm.labels = {{"ssd", "true"}};
  arm.arch = "aarch64";
  NodeView not_pinned = Host("not-pinned");
  not_pinned.zone = "a";
  not_pinned.labels = {{"ssd", "true"}};
  NodeView few_cpus = Host("few-cpus", 1);
  few_cpus.zone = "a";
  few_cpus.labels = {{"ssd", "true"}};
  NodeView little_ram = Host("little-ram", 8, 256);
  little_ram.zone = "a";
  little_ram.labels = {{"ssd", "true"}};
  NodeView small_disk = Host("small-disk", 8);
  small_disk.zone = "a";
  small_disk.labels = {{"ssd", "true"}};
  small_disk.pool_free["default"] = 1 << 20;
  nodes = {down, cordoned, zone_b, unlabelled, arm, few_cpus, little_ram, small_disk};
  Demand d = Small();
  d.vcpus = 2;
  d.zone = "a";
  d.arch = "x86_64";
  d.root_bytes = 1ll << 30;
  json selector = {{"ssd", "true"}};
  Decision out = Choose(d, selector, nodes, Opts());
  ASSERT_TRUE(out.node.empty());
  EXPECT_EQ(ReasonFor(out, "down"), "down: not Ready (heartbeat missed) [ComputeFilter]");
  EXPECT_EQ(ReasonFor(out, "cordoned"), "cordoned: unschedulable (cordoned) [ComputeFilter]");
  EXPECT_EQ(ReasonFor(out, "zone-b"),
            "zone-b: in availability zone \"b\", the instance asks for \"a\" [AvailabilityZoneFilter]");
  EXPECT_EQ(ReasonFor(out, "unlabelled"), "unlabelled: does not match nodeSelector ssd=true [NodeSelectorFilter]");
  EXPECT_EQ(ReasonFor(out, "arm"), "arm: architecture aarch64, the image needs x86_64 [ArchitectureFilter]");
  EXPECT_EQ(ReasonFor(out, "few-cpus"), "few-cpus: insufficient vcpus (need 2, free 1 of 1) [CoreFilter]");
  EXPECT_EQ(ReasonFor(out, "little-ram"),
            "little-ram: insufficient memory (need 512 MiB, free 256 MiB of 256 MiB) [RamFilter]");
  EXPECT_NE(ReasonFor(out, "small-disk").find("insufficient storage for the root disk in the default pool"),
            std::string::npos);
  EXPECT_NE(ReasonFor(out, "small-disk").find("[DiskFilter]"), std::string::npos);
  std::string msg = out.Message(nodes.size());
  EXPECT_EQ(msg.rfind("0/8 nodes can run this instance: down: ", 0), 0u) << msg;

  // Traits an image requires: nodes without every one are dropped, naming what they lack.
  NodeView plain = Host("plain");
  NodeView gpu = Host("gpu");
  gpu.traits = {"CUSTOM_GPU", "HW_CPU_X86_AVX2"};
  NodeView half = Host("half");
  half.traits = {"HW_CPU_X86_AVX2"};
  Demand t = Small();
  t.traits = {"CUSTOM_GPU", "HW_CPU_X86_AVX2"};
  t.traits_of = "cuda";
  Decision traited = Choose(t, json::object(), {plain, gpu, half}, Opts());
  EXPECT_EQ(traited.node, "gpu");
  EXPECT_EQ(ReasonFor(traited, "plain"),
            "plain: lacks trait CUSTOM_GPU, HW_CPU_X86_AVX2 that image cuda requires [TraitsFilter]");
  EXPECT_EQ(ReasonFor(traited, "half"), "half: lacks trait CUSTOM_GPU that image cuda requires [TraitsFilter]");

  d.pinned_node = "elsewhere";
  d.pinned_why = "volume data";
  Decision pinned = Choose(d, selector, {not_pinned}, Opts());
  EXPECT_EQ(ReasonFor(pinned, "not-pinned"),
            "not-pinned: does not hold volume data (on node elsewhere) [VolumePinFilter]");
}

TEST(SchedulerTest, PerNodeAllocationRatiosOverrideTheServers) {
  NodeView n = Host("n", 2, 1024);
  Demand d = Small();
  d.vcpus = 4;
  EXPECT_TRUE(Choose(d, json::object(), {n}, Opts()).node.empty());  // 2 cpus x 1.0
  n.cpu_ratio = 2.0;
  EXPECT_EQ(Choose(d, json::object(), {n}, Opts()).node, "n");      // 2 cpus x 2.0
  d.memory_mib = 2048;
  n.ram_ratio = 1.5;
  EXPECT_TRUE(Choose(d, json::object(), {n}, Opts()).node.empty());  // 1024 x 1.5 < 2048
  n.ram_ratio = 2.0;
  EXPECT_EQ(Choose(d, json::object(), {n}, Opts()).node, "n");
  // Disk: 15 GiB does not fit in 10 GiB free, but does with a ratio of 1.5 on a 20 GiB pool (10 + 20 x 0.5).
  d.root_bytes = 15ll << 30;
  EXPECT_TRUE(Choose(d, json::object(), {n}, Opts()).node.empty());
  n.disk_ratio = 1.5;
  EXPECT_EQ(Choose(d, json::object(), {n}, Opts()).node, "n");
}

TEST(SchedulerTest, HardGroupPoliciesFilterAndSoftOnesWeigh) {
  NodeView a = Host("a"), b = Host("b"), c = Host("c");
  a.group_members["ns/web"] = 1;
  Demand d = Small();
  d.group = "ns/web";

  d.group_policy = "anti-affinity";
  Decision anti = Choose(d, json::object(), {a, b, c}, Opts());
  EXPECT_NE(anti.node, "a");
  EXPECT_EQ(ReasonFor(anti, "a"),
            "a: already runs 1 member(s) of InstanceGroup ns/web (anti-affinity) [ServerGroupAntiAffinityFilter]");
  b.group_members["ns/web"] = 1;
  c.group_members["ns/web"] = 2;
  Decision full = Choose(d, json::object(), {a, b, c}, Opts());
  EXPECT_TRUE(full.node.empty());
  EXPECT_EQ(full.reasons.size(), 3u);
  b.group_members.clear();
  c.group_members.clear();

  d.group_policy = "affinity";
  Decision aff = Choose(d, json::object(), {a, b, c}, Opts());
  EXPECT_EQ(aff.node, "a");
  EXPECT_NE(ReasonFor(aff, "b").find("[ServerGroupAffinityFilter]"), std::string::npos);
  // The first member goes anywhere.
  a.group_members.clear();
  EXPECT_FALSE(Choose(d, json::object(), {a, b, c}, Opts()).node.empty());
  a.group_members["ns/web"] = 1;

  // Soft: a preference that yields when it must. b is emptier (the spread weighers favour it).
  a.used_memory_mib = 2048;
  d.group_policy = "soft-affinity";
  EXPECT_EQ(Choose(d, json::object(), {a, b}, Opts()).node, "a");
  d.group_policy = "soft-anti-affinity";
  EXPECT_EQ(Choose(d, json::object(), {a, b}, Opts()).node, "b");
  EXPECT_EQ(Choose(d, json::object(), {a}, Opts()).node, "a");  // only a: soft anti-affinity still places
}

TEST(SchedulerTest, SpreadPrefersTheEmptiestAndPackTheFullest) {
  NodeView busy = Host("busy"), idle = Host("idle");
  busy.used_vcpus = 3;
  busy.used_memory_mib = 3072;
  busy.instances = 3;
  Options o = Opts();
  Decision spread = Choose(Small(), json::object(), {busy, idle}, o);
  EXPECT_EQ(spread.node, "idle");
  ASSERT_EQ(spread.weights.size(), 2u);
  EXPECT_GT(spread.weights[0].second, spread.weights[1].second);
  o.strategy = "pack";
  EXPECT_EQ(Choose(Small(), json::object(), {busy, idle}, o).node, "busy");
  // The load weigher alone decides between equal capacities.
  NodeView many = Host("many"), few = Host("few");
  many.instances = 5;
  few.instances = 1;
  EXPECT_EQ(Choose(Small(), json::object(), {many, few}, Opts()).node, "few");
  // Equal in every way: by name.
  EXPECT_EQ(Choose(Small(), json::object(), {Host("y"), Host("x")}, Opts()).node, "x");
}

TEST(SchedulerTest, CapacityCacheCountsGroupMembersAndLoadIncludingAssumed) {
  CapacityCache cache;
  json inst = {{"metadata", {{"uid", "u1"}, {"namespace", "ns"}, {"name", "i1"}}},
               {"spec", {{"nodeName", "a"}, {"instanceGroup", "web"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 256}}}}}};
  cache.Observe(inst, false);
  Demand d = Small();
  d.group = "ns/web";
  d.group_policy = "anti-affinity";
  // Two decisions in a row (the second before the first's bind shows): never the same node.
  Decision first = cache.ChooseAndAssume("u2", d, json::object(), {Host("a"), Host("b"), Host("c")}, {}, Opts());
  Decision second = cache.ChooseAndAssume("u3", d, json::object(), {Host("a"), Host("b"), Host("c")}, {}, Opts());
  EXPECT_NE(first.node, "a");
  EXPECT_NE(second.node, "a");
  EXPECT_NE(first.node, second.node);
  std::vector<NodeView> views = {Host("a"), Host("b"), Host("c")};
  cache.AddTo(&views, {});
  int members = 0, load = 0;
  for (const auto& v : views) {
    members += v.group_members.count("ns/web") ? v.group_members.at("ns/web") : 0;
    load += v.instances;
  }
  EXPECT_EQ(members, 3);
  EXPECT_EQ(load, 3);
  cache.Observe(inst, true);  // deleted: no longer counted
  views = {Host("a")};
  cache.AddTo(&views, {});
  EXPECT_EQ(views[0].instances, 0);
  EXPECT_EQ(views[0].group_members.count("ns/web"), 0u);
}

}  // namespace
}  // namespace stratus::placement

namespace stratus::placement {
namespace {

TEST(ResizeTest, ANewSizeMustFitBesideTheOthersOnItsNode) {
  json node = {{"metadata", {{"name", "node-a"}}},
               {"spec", json::object()},
               {"status", {{"allocatable", {{"vcpus", 4}, {"memoryMiB", 2048}}}}}};
  std::map<std::string, json> flavors = {
      {"m1.small", {{"metadata", {{"name", "m1.small"}}}, {"spec", {{"vcpus", 1}, {"memoryMiB", 512}}}}}};
  auto on_node = [](const std::string& name, const std::string& type) {
    return json{{"metadata", {{"name", name}}}, {"spec", {{"instanceType", type}, {"nodeName", "node-a"}}}};
  };
  std::vector<json> others = {on_node("a", "m1.small"), on_node("b", "m1.small"), on_node("c", "m1.gone")};
  Options o = Opts();  // 1 vcpu per host cpu
  EXPECT_EQ(ResizeMisfit(Demand(2, 1024), node, others, flavors, o), "") << "2 + 1 + 1 of 4 vcpus";
  EXPECT_EQ(ResizeMisfit(Demand(3, 512), node, others, flavors, o),
            "node-a: insufficient vcpus (need 3, free 2 of 4) [CoreFilter]");
  EXPECT_EQ(ResizeMisfit(Demand(1, 1536), node, others, flavors, o),
            "node-a: insufficient memory (need 1536 MiB, free 1024 MiB of 2048 MiB) [RamFilter]");
  node["spec"]["cpuAllocationRatio"] = 2.0;  // the node's own ratio counts, as in placement
  EXPECT_EQ(ResizeMisfit(Demand(3, 512), node, others, flavors, o), "");
}

}  // namespace
}  // namespace stratus::placement
