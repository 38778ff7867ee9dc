// Node lifecycle: a node that stopped heartbeating is marked Ready=Unknown and so are the instances bound to it
// (once, not at every pass); instances elsewhere are left alone.
#include <gtest/gtest.h>

#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/nodelifecycle/nodelifecycle.h"
#include "stratus/runtime/conditions.h"

namespace stratus::nodelifecycle {
namespace {

using namespace std::chrono_literals;

TEST(MarkInstanceUnknownTest, OnceWithTheReason) {
  json inst = {{"metadata", {{"name", "web"}}},
               {"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "Running"}}}}}}};
  auto m = MarkInstanceUnknown(inst, "n1", 61);
  ASSERT_TRUE(m.has_value());
  json c = runtime::GetCondition(*m, "Ready");
  EXPECT_EQ(c["status"], "Unknown");
  EXPECT_EQ(c["reason"], "NodeNotReady");
  EXPECT_EQ(c["message"], "node n1 stopped posting status (no heartbeat for 61 s): the instance's state is unknown");
  EXPECT_FALSE(MarkInstanceUnknown(*m, "n1", 120).has_value()) << "said once";
  EXPECT_TRUE(MarkInstanceUnknown(json{{"metadata", {{"name", "new"}}}}, "n1", 61).has_value());
}

class NodeLifecycleTest : public testing_env::LocalApiTest {};

TEST_F(NodeLifecycleTest, ALostNodesInstancesSayTheirStateIsUnknown) {
  runtime::InformerOptions no, io;
  no.plural = "nodes";
  io.plural = "instances";
  runtime::Informer nodes(client_.get(), no), instances(client_.get(), io);
  nodes.Start();
  instances.Start();
  ASSERT_TRUE(nodes.WaitForSync(5s) && instances.WaitForSync(5s));
  for (const char* name : {"lost", "fine"}) {
    json n = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}}, "nodes", "");
    n["status"] = {{"lastHeartbeatTime", std::string(name) == "lost" ? FormatRfc3339(std::time(nullptr) - 300)
                                                                      : NowRfc3339()},
                   {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "AgentReady"}}}}};
    ASSERT_TRUE(client_->UpdateStatus("nodes", "", n).ok());
  }
  for (auto [name, node] : {std::pair{"a", "lost"}, {"b", "fine"}}) {
    MustCreate({{"apiVersion", "stratus.io/v1"},
                {"kind", "Instance"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"nodeName", node}, {"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"kernelImage", "k"}}}},
               "instances");
  }
  ASSERT_TRUE(WaitFor([&] { return nodes.List().size() == 2 && instances.List().size() == 2; }));
  NodeLifecycleReconciler rec(client_.get(), &nodes, 40s, &instances);
  for (const char* n : {"lost", "fine"}) ASSERT_TRUE(rec.Reconcile(n).ok());
  EXPECT_EQ(runtime::GetCondition(*client_->Get("nodes", "", "lost"), "Ready").value("status", ""), "Unknown");
  json a = *client_->Get("instances", "default", "a");
  EXPECT_EQ(runtime::GetCondition(a, "Ready").value("reason", ""), "NodeNotReady");
  EXPECT_TRUE(runtime::GetCondition(*client_->Get("instances", "default", "b"), "Ready").is_null());
  // Said once: another pass writes nothing.
  ASSERT_TRUE(Cached(&instances, a));
  uint64_t rv = ResourceVersionOf(a);
  ASSERT_TRUE(rec.Reconcile("lost").ok());
  EXPECT_EQ(ResourceVersionOf(*client_->Get("instances", "default", "a")), rv);
  nodes.Stop();
  instances.Stop();
}

}  // namespace
}  // namespace stratus::nodelifecycle
