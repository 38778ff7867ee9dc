// Placement across two agents on the test driver: an anti-affinity InstanceGroup spreads its members and leaves
// the one too many Pending with each node's filter named; availability zones; cordon and uncordon; affinity.
#include <gtest/gtest.h>

#include "harness.h"

namespace stratus::testing {
namespace {

const std::string kApi = "/apis/stratus.io/v1";

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data");
    ASSERT_TRUE(server_->Start()) << server_->log();
    a_ = std::make_unique<AgentProcess>(*server_, "node-a", dir_.path());
    b_ = std::make_unique<AgentProcess>(*server_, "node-b", dir_.path());
    for (const char* n : {"node-a", "node-b"}) {
      ASSERT_TRUE(Eventually([&] {
        json c = NodeCondition(*server_, n);
        return c.is_object() && c.value("status", "") == "True";
      }, 60))
          << a_->log() << b_->log();
    }
    // Zones are node labels.
    for (auto [node, zone] : {std::pair{"node-a", "az1"}, std::pair{"node-b", "az2"}}) {
      auto p = server_->Http("PATCH", kApi + "/nodes/" + node,
                             json{{"metadata", {{"labels", {{"stratus.io/zone", zone}}}}}}.dump(),
                             "application/merge-patch+json");
      ASSERT_EQ(p.code, 200) << p.body;
    }
    auto r = server_->Ctl({"apply", "-f", "-"},
                          "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: tiny}\n"
                          "spec: {vcpus: 1, memoryMiB: 64}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: InstanceGroup\nmetadata: {name: web}\nspec: {policy: anti-affinity}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: InstanceGroup\nmetadata: {name: db}\nspec: {policy: affinity}\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void Make(const std::string& name, const std::string& extra) {
    auto r = server_->Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name +
                                                    "}\nspec:\n  instanceType: tiny\n  kernelImage: k\n" + extra);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string NodeOf(const std::string& name) {
    std::string node;
    Eventually([&] {
      node = server_->Http("GET", kApi + "/namespaces/default/instances/" + name).Json()["spec"].value("nodeName", "");
      return !node.empty();
    }, 30);
    return node;
  }
  std::string Scheduled(const std::string& name) {
    json i = server_->Http("GET", kApi + "/namespaces/default/instances/" + name).Json();
    for (const auto& c : i.value("status", json::object()).value("conditions", json::array())) {
      if (c.value("type", "") == "Scheduled") return c.value("status", "") + ": " + c.value("message", "");
    }
    return "";
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<AgentProcess> a_, b_;
};

TEST_F(SchedulerTest, GroupsZonesAndCordon) {
  // Anti-affinity: one member per node; the third waits, each node's filter named.
  Make("web-1", "  instanceGroup: web\n");
  Make("web-2", "  instanceGroup: web\n");
  std::string n1 = NodeOf("web-1"), n2 = NodeOf("web-2");
  ASSERT_FALSE(n1.empty());
  ASSERT_FALSE(n2.empty());
  EXPECT_NE(n1, n2);
  Make("web-3", "  instanceGroup: web\n");
  ASSERT_TRUE(Eventually([&] { return Scheduled("web-3").rfind("False: 0/2 nodes", 0) == 0; }, 30)) << Scheduled("web-3");
  std::string why = Scheduled("web-3");
  EXPECT_NE(why.find("node-a: already runs 1 member(s) of InstanceGroup default/web (anti-affinity) "
                     "[ServerGroupAntiAffinityFilter]"), std::string::npos) << why;
  EXPECT_NE(why.find("node-b: already runs"), std::string::npos) << why;
  // A member leaves: the waiting one takes its place.
  ASSERT_EQ(server_->Ctl({"delete", "instance", "web-1", "--wait", "--timeout", "60s"}).exit_code, 0);
  EXPECT_EQ(NodeOf("web-3"), n1);

  // Affinity: the second member follows the first.
  Make("db-1", "  instanceGroup: db\n");
  std::string db = NodeOf("db-1");
  Make("db-2", "  instanceGroup: db\n");
  EXPECT_EQ(NodeOf("db-2"), db);

  // Zones.
  Make("in-az2", "  availabilityZone: az2\n");
  EXPECT_EQ(NodeOf("in-az2"), "node-b");
  Make("in-az9", "  availabilityZone: az9\n");
  ASSERT_TRUE(Eventually([&] { return Scheduled("in-az9").find("[AvailabilityZoneFilter]") != std::string::npos; }, 30));

  // Cordon: nothing new on node-b; what runs there stays.
  auto c = server_->Ctl({"cordon", "node-b"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("node/node-b cordoned"), std::string::npos);
  Make("after-cordon", "  availabilityZone: az2\n");
  ASSERT_TRUE(Eventually([&] { return Scheduled("after-cordon").find("node-b: unschedulable (cordoned) [ComputeFilter]") !=
                                      std::string::npos; }, 30)) << Scheduled("after-cordon");
  EXPECT_EQ(NodeOf("in-az2"), "node-b");
  ASSERT_EQ(server_->Ctl({"uncordon", "node/node-b"}).exit_code, 0);
  EXPECT_EQ(NodeOf("after-cordon"), "node-b");
  // A group that does not exist: the instance waits, saying so.
  Make("orphan", "  instanceGroup: nope\n");
  ASSERT_TRUE(Eventually([&] { return Scheduled("orphan").find("InstanceGroup \"nope\" does not exist") != std::string::npos; }, 30));
}

}  // namespace
}  // namespace stratus::testing
