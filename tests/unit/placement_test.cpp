// Placement decisions: filters (readiness, cordon, nodeSelector, capacity with overcommit), spreading, and the
// explanation users get when nothing fits.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace stratus::placement
