// Conditions (Kubernetes transition semantics), status writes that skip no-ops, Event recording with dedupe.
#include <gtest/gtest.h>

#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"

namespace stratus::runtime {
namespace {

json Obj(int64_t generation) {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Volume"},
          {"metadata", {{"name", "v"}, {"namespace", "default"}, {"generation", generation}}},
          {"spec", {{"size", "1Gi"}}}};
}

TEST(ConditionsTest, SetConditionCreatesTheList) {
  json o = Obj(3);
  EXPECT_TRUE(GetCondition(o, "Ready").is_null());
  EXPECT_FALSE(IsConditionTrue(o, "Ready"));
  EXPECT_TRUE(SetCondition(o, "Ready", "False", "Pending", "waiting"));
  json c = GetCondition(o, "Ready");
  ASSERT_TRUE(c.is_object());
  EXPECT_EQ(c["status"], "False");
  EXPECT_EQ(c["reason"], "Pending");
  EXPECT_EQ(c["message"], "waiting");
  EXPECT_EQ(c["observedGeneration"], 3);
  EXPECT_GT(ParseRfc3339(c["lastTransitionTime"].get<std::string>()), 0);
  EXPECT_EQ(o["status"]["conditions"].size(), 1u);
}

TEST(ConditionsTest, LastTransitionTimeKeptWhenStatusUnchanged) {
  json o = Obj(1);
  SetCondition(o, "Ready", "False", "Pending", "waiting");
  const std::string kOld = "2001-02-03T04:05:06Z";
  o["status"]["conditions"][0]["lastTransitionTime"] = kOld;

  EXPECT_FALSE(SetCondition(o, "Ready", "False", "Pending", "waiting")) << "identical: nothing changes";
  EXPECT_EQ(GetCondition(o, "Ready")["lastTransitionTime"], kOld);

  EXPECT_TRUE(SetCondition(o, "Ready", "False", "ImagesNotReady", "image x downloading"));
  EXPECT_EQ(GetCondition(o, "Ready")["lastTransitionTime"], kOld) << "reason/message changes are not transitions";
  EXPECT_EQ(GetCondition(o, "Ready")["reason"], "ImagesNotReady");

  o["metadata"]["generation"] = 2;
  EXPECT_TRUE(SetCondition(o, "Ready", "False", "ImagesNotReady", "image x downloading"));
  EXPECT_EQ(GetCondition(o, "Ready")["observedGeneration"], 2);
  EXPECT_EQ(GetCondition(o, "Ready")["lastTransitionTime"], kOld);

  EXPECT_TRUE(SetCondition(o, "Ready", "True", "Running", "ok"));
  EXPECT_NE(GetCondition(o, "Ready")["lastTransitionTime"], kOld) << "a status flip is a transition";
  EXPECT_TRUE(IsConditionTrue(o, "Ready"));

  EXPECT_TRUE(SetCondition(o, "Scheduled", "True", "Bound", "node-a"));
  EXPECT_EQ(o["status"]["conditions"].size(), 2u);
  EXPECT_TRUE(IsConditionTrue(o, "Scheduled"));
}

class ConditionsLocalTest : public testing_env::LocalApiTest {};

TEST_F(ConditionsLocalTest, UpdateStatusIfChangedWritesOnlyChanges) {
  json cur = MustCreate(Volume("data-1"));
  uint64_t rv0 = ResourceVersionOf(cur);

  json desired = cur;
  desired["status"]["phase"] = "Available";
  ASSERT_TRUE(SetCondition(desired, "Ready", "True", "Available", "volume created"));
  auto w = UpdateStatusIfChanged(client_.get(), "volumes", cur, desired);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  uint64_t rv1 = ResourceVersionOf(*w);
  EXPECT_GT(rv1, rv0);
  EXPECT_EQ((*w)["status"]["phase"], "Available");
  EXPECT_TRUE(IsConditionTrue(*w, "Ready"));

  // Reconcile again with the same outcome: nothing is written.
  json again = *w;
  EXPECT_FALSE(SetCondition(again, "Ready", "True", "Available", "volume created"));
  again["status"]["phase"] = "Available";
  auto w2 = UpdateStatusIfChanged(client_.get(), "volumes", *w, again);
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(ResourceVersionOf(*w2), rv1);
  auto stored = client_->Get("volumes", "default", "data-1");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(ResourceVersionOf(*stored), rv1) << "no write reached the store";
  EXPECT_EQ(store_->CurrentRevision(), rv1);

  // A change computed from a stale read is refused with 409 (the reconcile is retried).
  json stale = cur;
  stale["status"]["phase"] = "Failed";
  auto w3 = UpdateStatusIfChanged(client_.get(), "volumes", cur, stale);
  EXPECT_EQ(w3.status().code(), Code::kConflict) << w3.status().ToString();
}

class EventRecorderTest : public testing_env::LocalApiTest {};

TEST_F(EventRecorderTest, RecordsAndDedupesRepeats) {
  json vol = MustCreate(Volume("data-1"));
  EventRecorder rec(client_.get(), "volume-reconciler", "node-a");
  rec.Record(vol, "Warning", "CreateFailed", "pool full");
  ListOptions lo;
  lo.field_selector = "involvedObject.name=data-1";
  auto l = client_->List("events", "default", lo);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_EQ((*l)["items"].size(), 1u);
  json ev = (*l)["items"][0];
  std::string name = MetaString(ev, "name");
  EXPECT_EQ(name.rfind("data-1.", 0), 0u) << name;
  EXPECT_TRUE(ValidateDns1123Subdomain(name, "metadata.name").ok()) << name;
  EXPECT_EQ(MetaString(ev, "namespace"), "default");
  EXPECT_EQ(ev["involvedObject"]["kind"], "Volume");
  EXPECT_EQ(ev["involvedObject"]["name"], "data-1");
  EXPECT_EQ(ev["involvedObject"]["namespace"], "default");
  EXPECT_EQ(ev["involvedObject"]["uid"], MetaString(vol, "uid"));
  EXPECT_EQ(ev["involvedObject"]["apiVersion"], "stratus.io/v1");
  EXPECT_EQ(ev["involvedObject"]["resourceVersion"], MetaString(vol, "resourceVersion"));
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["reason"], "CreateFailed");
  EXPECT_EQ(ev["message"], "pool full");
  EXPECT_EQ(ev["count"], 1);
  EXPECT_EQ(ev["source"]["component"], "volume-reconciler");
  EXPECT_EQ(ev["source"]["host"], "node-a");
  EXPECT_FALSE(ev.value("firstTimestamp", "").empty());

  rec.Record(vol, "Warning", "CreateFailed", "pool full");
  rec.Record(vol, "Warning", "CreateFailed", "pool full");
  l = client_->List("events", "default", lo);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ((*l)["items"].size(), 1u) << "repeats bump the count instead of adding Events";
  EXPECT_EQ((*l)["items"][0]["count"], 3);
  EXPECT_EQ(MetaString((*l)["items"][0], "name"), name);

  rec.Record(vol, "Normal", "Created", "volume created");
  l = client_->List("events", "default", lo);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["items"].size(), 2u);

  // The Event deleted meanwhile (expired): the next repeat records a new one.
  ASSERT_TRUE(client_->Delete("events", "default", name).ok());
  rec.Record(vol, "Warning", "CreateFailed", "pool full");
  l = client_->List("events", "default", lo);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["items"].size(), 2u);
}

TEST_F(EventRecorderTest, ClusterScopedObjectsGoToDefaultAndFailuresNeverThrow) {
  json node = {{"apiVersion", "stratus.io/v1"},
               {"kind", "Node"},
               {"metadata", {{"name", "node-a.example"}}},
               {"spec", json::object()}};
  json n = MustCreate(node, "nodes", "");
  EventRecorder rec(client_.get(), "node-lifecycle");
  rec.Record(n, "Normal", "NodeNotReady", "missed heartbeats");
  ListOptions lo;
  lo.field_selector = "involvedObject.kind=Node,involvedObject.name=node-a.example";
  auto l = client_->List("events", "default", lo);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_EQ((*l)["items"].size(), 1u);
  EXPECT_FALSE((*l)["items"][0]["involvedObject"].contains("namespace"));
  EXPECT_FALSE((*l)["items"][0]["source"].value("host", "").empty()) << "host defaults to the hostname";

  // Invalid input and a namespace that does not exist: logged, not thrown, nothing recorded.
  EXPECT_NO_THROW(rec.Record(json("not an object"), "Normal", "X", "y"));
  EXPECT_NO_THROW(rec.Record(json::object(), "Normal", "X", "y"));
  json ghost = Volume("ghost");
  ghost["metadata"]["namespace"] = "nowhere";
  EXPECT_NO_THROW(rec.Record(ghost, "Weird", "X", std::string(40000, 'm')));
}

}  // namespace
}  // namespace stratus::runtime
