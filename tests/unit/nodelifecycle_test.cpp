// Node lifecycle: a node that stopped heartbeating is marked Ready=Unknown and so are the instances bound to it
// (once, not at every pass); instances elsewhere are left alone. Evacuation: which instances of a lost node are
// rebuilt elsewhere, when, and what is given up; Manual ones wait and say why.
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
  EXPECT_EQ(c["message"], "node n1 stopped posting status (no heartbeat for 61 s): the instance's state is unknown; "
                          "evacuationPolicy is Manual: it waits for node n1 to come back, or for the operator (set "
                          "spec.evacuationPolicy: Evacuate to rebuild it on another node, or delete it)");
  EXPECT_FALSE(MarkInstanceUnknown(*m, "n1", 120).has_value()) << "said once";
  EXPECT_TRUE(MarkInstanceUnknown(json{{"metadata", {{"name", "new"}}}}, "n1", 61).has_value());
}

json Inst(json spec, json status = json::object()) {
  spec["nodeName"] = "n1";
  return {{"metadata", {{"name", "web"}, {"namespace", "default"}, {"uid", "u-1"}}}, {"spec", spec}, {"status", status}};
}

TEST(DecideEvacuationTest, WhoGoesWhenAndWhatIsGivenUp) {
  using K = Evacuation::Kind;
  const auto grace = 60s;
  // Manual (the default) and explicit Manual stay; so do instances of other nodes and deleted ones.
  EXPECT_EQ(DecideEvacuation(Inst({{"kernelImage", "k"}}), "n1", 999, grace).kind, K::kStay);
  EXPECT_EQ(DecideEvacuation(Inst({{"kernelImage", "k"}, {"evacuationPolicy", "Manual"}}), "n1", 999, grace).kind, K::kStay);
  json ev = Inst({{"kernelImage", "k"}, {"evacuationPolicy", "Evacuate"}});
  EXPECT_EQ(DecideEvacuation(ev, "n2", 999, grace).kind, K::kStay);
  json dying = ev;
  dying["metadata"]["deletionTimestamp"] = "2026-12-04T00:00:00Z";
  EXPECT_EQ(DecideEvacuation(dying, "n1", 999, grace).kind, K::kStay);
  // Within the grace period: wait for the rest of it.
  Evacuation w = DecideEvacuation(ev, "n1", 20, grace);
  EXPECT_EQ(w.kind, K::kWait);
  EXPECT_EQ(w.wait, 41s);
  // After it: evacuated; boot images only, nothing is given up.
  Evacuation e = DecideEvacuation(ev, "n1", 60, grace);
  EXPECT_EQ(e.kind, K::kEvacuate);
  EXPECT_EQ(e.reason, "NodeLost");
  EXPECT_TRUE(e.root_volume.empty());
  // A root volume from its image is given up (and named), the one status.rootVolume names first.
  json img = Inst({{"image", "debian"}, {"evacuationPolicy", "Evacuate"}});
  EXPECT_EQ(DecideEvacuation(img, "n1", 61, grace).root_volume, "web-root");
  json named = Inst({{"image", "debian"}, {"evacuationPolicy", "Evacuate"}}, {{"rootVolume", "web-older-root"}});
  Evacuation r = DecideEvacuation(named, "n1", 61, grace);
  EXPECT_EQ(r.root_volume, "web-older-root");
  EXPECT_NE(r.message.find("root volume web-older-root on n1 is lost"), std::string::npos) << r.message;
  // Data volumes cannot be made again: blocked, naming them, at any age.
  json data = Inst({{"kernelImage", "k"}, {"evacuationPolicy", "Evacuate"},
                    {"volumes", {{{"volume", "db"}, {"device", "vdb"}}, {{"volume", "logs"}, {"device", "vdc"}}}}});
  for (int64_t age : {0, 600}) {
    Evacuation b = DecideEvacuation(data, "n1", age, grace);
    EXPECT_EQ(b.kind, K::kBlocked);
    EXPECT_EQ(b.reason, "VolumesOnLostNode");
    EXPECT_NE(b.message.find("data volumes db, logs on node n1"), std::string::npos) << b.message;
  }
}

// A real in-process API with node and instance informers (the reconciler's caches).
class NodeLifecycleTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    runtime::InformerOptions no, io;
    no.plural = "nodes";
    io.plural = "instances";
    nodes_ = std::make_unique<runtime::Informer>(client_.get(), no);
    instances_ = std::make_unique<runtime::Informer>(client_.get(), io);
    nodes_->Start();
    instances_->Start();
    ASSERT_TRUE(nodes_->WaitForSync(5s) && instances_->WaitForSync(5s));
  }
  void TearDown() override {
    nodes_->Stop();
    instances_->Stop();
    LocalApiTest::TearDown();
  }
  std::unique_ptr<runtime::Informer> nodes_, instances_;
};

TEST_F(NodeLifecycleTest, ALostNodesInstancesSayTheirStateIsUnknown) {
  for (const char* name : {"lost", "fine"}) {
    json n = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}}, "nodes", "");
    n["status"] = {{"lastHeartbeatTime", std::string(name) == "lost" ? FormatRfc3339(std::time(nullptr) - 300)
                                                                      : NowRfc3339()},
                   {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "AgentReady"}}}}};
    auto u = client_->UpdateStatus("nodes", "", n);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    ASSERT_TRUE(Cached(nodes_.get(), *u)) << "the reconciler decides from the cached heartbeat";
  }
  for (auto [name, node] : {std::pair{"a", "lost"}, {"b", "fine"}}) {
    MustCreate({{"apiVersion", "stratus.io/v1"},
                {"kind", "Instance"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"nodeName", node}, {"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"kernelImage", "k"}}}},
               "instances");
  }
  ASSERT_TRUE(WaitFor([&] { return nodes_->List().size() == 2 && instances_->List().size() == 2; }));
  NodeLifecycleReconciler rec(client_.get(), nodes_.get(), 40s, instances_.get());
  for (const char* n : {"lost", "fine"}) ASSERT_TRUE(rec.Reconcile(n).ok());
  EXPECT_EQ(runtime::GetCondition(*client_->Get("nodes", "", "lost"), "Ready").value("status", ""), "Unknown");
  json a = *client_->Get("instances", "default", "a");
  EXPECT_EQ(runtime::GetCondition(a, "Ready").value("reason", ""), "NodeNotReady");
  EXPECT_TRUE(runtime::GetCondition(*client_->Get("instances", "default", "b"), "Ready").is_null());
  // Said once: another pass writes nothing.
  ASSERT_TRUE(Cached(instances_.get(), a));
  uint64_t rv = ResourceVersionOf(a);
  ASSERT_TRUE(rec.Reconcile("lost").ok());
  EXPECT_EQ(ResourceVersionOf(*client_->Get("instances", "default", "a")), rv);
}

// An Evacuate instance of a lost node: its root volume is declared lost (deleted although its finalizer's owner is
// gone), then it is unbound with condition Evacuated; a Manual one stays bound and says why; a blocked one says why.
TEST_F(NodeLifecycleTest, EvacuateUnbindsAndGivesUpTheRootVolume) {
  json n = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Node"}, {"metadata", {{"name", "lost"}}}}, "nodes", "");
  n["status"] = {{"lastHeartbeatTime", FormatRfc3339(std::time(nullptr) - 300)}};
  {
    auto u = client_->UpdateStatus("nodes", "", n);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    ASSERT_TRUE(Cached(nodes_.get(), *u)) << "the reconciler decides from the cached heartbeat";
  }
  auto inst = [&](const std::string& name, json extra) {
    json spec = {{"nodeName", "lost"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}};
    for (auto& [k, v] : extra.items()) spec[k] = v;
    return MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"},
                       {"metadata", {{"name", name}, {"namespace", "default"}}}, {"spec", spec}}, "instances");
  };
  json e = inst("e", {{"image", "debian"}, {"evacuationPolicy", "Evacuate"}});
  inst("m", {{"kernelImage", "k"}});
  inst("b", {{"kernelImage", "k"}, {"evacuationPolicy", "Evacuate"}, {"volumes", {{{"volume", "db"}, {"device", "vdb"}}}}});
  // e's root volume on the lost node, with the finalizer only that node's agent would remove.
  MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Volume"},
              {"metadata", {{"name", "e-root"}, {"namespace", "default"}, {"finalizers", {"stratus.io/volume-storage"}},
                            {"ownerReferences", {{{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"}, {"name", "e"},
                                                  {"uid", MetaString(e, "uid")}, {"controller", true}}}}}},
              {"spec", {{"size", "1Gi"}, {"nodeName", "lost"}}}});
  ASSERT_TRUE(WaitFor([&] { return nodes_->List().size() == 1 && instances_->List().size() == 3; }));
  // 300 s silent, 40 s grace: lost for 260 s, past a 30 s evacuation grace.
  NodeLifecycleReconciler rec(client_.get(), nodes_.get(), 40s, instances_.get(), 30s);
  auto r = rec.Reconcile("lost");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  json got = *client_->Get("instances", "default", "e");
  EXPECT_FALSE(got["spec"].contains("nodeName")) << got.dump(2);
  EXPECT_EQ(runtime::GetCondition(got, "Evacuated").value("reason", ""), "NodeLost");
  EXPECT_EQ(runtime::GetCondition(got, "Ready").value("reason", ""), "Evacuating");
  EXPECT_EQ(client_->Get("volumes", "default", "e-root").status().code(), Code::kNotFound) << "root volume given up";
  json m = *client_->Get("instances", "default", "m");
  EXPECT_EQ(m["spec"].value("nodeName", ""), "lost");
  EXPECT_NE(runtime::GetCondition(m, "Ready").value("message", "").find("evacuationPolicy is Manual"), std::string::npos);
  EXPECT_TRUE(runtime::GetCondition(m, "Evacuated").is_null());
  json b = *client_->Get("instances", "default", "b");
  EXPECT_EQ(b["spec"].value("nodeName", ""), "lost");
  EXPECT_EQ(runtime::GetCondition(b, "Evacuated").value("reason", ""), "VolumesOnLostNode");
  // The operator turns m to Evacuate: the next pass moves it too.
  auto p = client_->Patch("instances", "default", "m", {{"spec", {{"evacuationPolicy", "Evacuate"}}}});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(Cached(instances_.get(), *p));
  r = rec.Reconcile("lost");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(client_->Get("instances", "default", "m")->at("spec").contains("nodeName"));
}

}  // namespace
}  // namespace stratus::nodelifecycle
