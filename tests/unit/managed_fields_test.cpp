// Field ownership and server-side apply: the pure functions (managed_fields.h) and the Registry's apply path.
#include "stratus/apiserver/managed_fields.h"

#include <gtest/gtest.h>

#include "registry_env.h"
#include "stratus/core/object.h"

namespace stratus {
namespace {

const char* kNow = "2026-12-04T00:00:00Z";

json Instance(const json& spec) {
  return {{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"}, {"metadata", {{"name", "web"}}}, {"spec", spec}};
}

FieldSet Owned(const json& obj, const std::string& manager, const std::string& op) {
  for (const auto& e : ManagedEntriesOf(obj)) {
    if (e.manager == manager && e.operation == op) return e.fields;
  }
  return {};
}

TEST(ManagedFieldsTest, FieldsOfSkipsServerMetadataStatusAndNulls) {
  json o = Instance({{"instanceType", "m1.small"}, {"networks", json::array({{{"name", "a"}}})}, {"x", nullptr}});
  o["metadata"]["labels"] = {{"app", "web"}};
  o["metadata"]["uid"] = "u";
  o["metadata"]["resourceVersion"] = "3";
  o["status"] = {{"phase", "Running"}};
  FieldSet f = FieldsOf(o);
  EXPECT_EQ(f, (FieldSet{{"metadata", "labels", "app"}, {"spec", "instanceType"}, {"spec", "networks"}}));
}

TEST(ManagedFieldsTest, FieldsV1RoundTrips) {
  FieldSet f{{"metadata", "labels", "app"}, {"spec", "instanceType"}, {"spec", "networks"}};
  json v1 = ToFieldsV1(f);
  EXPECT_EQ(v1, json::parse(R"({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:instanceType":{},"f:networks":{}}})"));
  EXPECT_EQ(FromFieldsV1(v1), f);
}

TEST(ManagedFieldsTest, UpdateMovesChangedFieldsAndKeepsNoOps) {
  json created = RecordUpdate(nullptr, Instance({{"instanceType", "a"}, {"image", "i"}}), "alice", kNow);
  EXPECT_EQ(Owned(created, "alice", "Update"), (FieldSet{{"spec", "image"}, {"spec", "instanceType"}}));

  json next = created;
  next["spec"]["instanceType"] = "b";
  json after = RecordUpdate(&created, next, "bob", kNow);
  EXPECT_EQ(Owned(after, "alice", "Update"), (FieldSet{{"spec", "image"}}));
  EXPECT_EQ(Owned(after, "bob", "Update"), (FieldSet{{"spec", "instanceType"}}));

  // The same object written again changes nothing, managedFields included (a no-op stays a no-op).
  json again = RecordUpdate(&after, after, "carol", "2030-01-01T00:00:00Z");
  EXPECT_EQ(again, after);

  // A removed field is nobody's.
  json removed = after;
  removed["spec"].erase("image");
  json r = RecordUpdate(&after, removed, "bob", kNow);
  EXPECT_TRUE(Owned(r, "alice", "Update").empty());
}

TEST(ManagedFieldsTest, ApplyConflictsNameFieldAndManagerUnlessSameValueOrForced) {
  json live = RecordUpdate(nullptr, Instance({{"instanceType", "a"}, {"image", "i"}}), "kubectl-edit", kNow);

  // Same value: owned together, no conflict.
  auto same = ServerSideApply(&live, Instance({{"instanceType", "a"}}), "gitops", false, kNow);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(Owned(*same, "gitops", "Apply"), (FieldSet{{"spec", "instanceType"}}));
  EXPECT_EQ(Owned(*same, "kubectl-edit", "Update"), (FieldSet{{"spec", "image"}, {"spec", "instanceType"}}));

  // Another value: 409 naming the field and its manager.
  auto clash = ServerSideApply(&live, Instance({{"instanceType", "b"}}), "gitops", false, kNow);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), Code::kConflict);
  EXPECT_NE(clash.status().message().find("conflict with \"kubectl-edit\""), std::string::npos)
      << clash.status().message();
  EXPECT_NE(clash.status().message().find(".spec.instanceType"), std::string::npos);
  ASSERT_EQ(clash.status().causes().size(), 1u);
  EXPECT_EQ(clash.status().causes()[0].field, ".spec.instanceType");

  // Forced: the field changes hands, the rest stays with its owner.
  auto forced = ServerSideApply(&live, Instance({{"instanceType", "b"}}), "gitops", true, kNow);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ((*forced)["spec"]["instanceType"], "b");
  EXPECT_EQ((*forced)["spec"]["image"], "i");
  EXPECT_EQ(Owned(*forced, "gitops", "Apply"), (FieldSet{{"spec", "instanceType"}}));
  EXPECT_EQ(Owned(*forced, "kubectl-edit", "Update"), (FieldSet{{"spec", "image"}}));
}

TEST(ManagedFieldsTest, ApplyRemovesWhatTheManagerNoLongerSendsUnlessSomeoneElseOwnsIt) {
  json a1 = Instance({{"instanceType", "a"}, {"userData", "x"}});
  a1["metadata"]["labels"] = {{"app", "web"}, {"tier", "front"}};
  auto first = ServerSideApply(nullptr, a1, "gitops", false, kNow);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)["metadata"]["name"], "web");
  // Someone else also sets the label tier (same value) and adds their own.
  json edited = *first;
  edited["metadata"]["labels"]["owner"] = "ops";
  json live = RecordUpdate(&*first, edited, "ops", kNow);

  json a2 = Instance({{"instanceType", "a"}});  // userData and both labels left out
  auto second = ServerSideApply(&live, a2, "gitops", false, kNow);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE((*second)["spec"].contains("userData"));
  EXPECT_FALSE((*second)["metadata"]["labels"].contains("app"));
  EXPECT_FALSE((*second)["metadata"]["labels"].contains("tier"));
  EXPECT_EQ((*second)["metadata"]["labels"]["owner"], "ops");  // not gitops' to remove
}

TEST(ManagedFieldsTest, ApplyKeepsFieldsOnlyAnotherManagerSet) {
  // A reconciler set spec.nodeName; the user's apply, which never mentions it, leaves it alone.
  json live = RecordUpdate(nullptr, Instance({{"instanceType", "a"}}), "user", kNow);
  json placed = live;
  placed["spec"]["nodeName"] = "host1";
  live = RecordUpdate(&live, placed, "stratus-controller-manager", kNow);
  auto applied = ServerSideApply(&live, Instance({{"instanceType", "b"}}), "user", true, kNow);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ((*applied)["spec"]["nodeName"], "host1");
  EXPECT_EQ((*applied)["spec"]["instanceType"], "b");
}

class RegistryApplyTest : public RegistryEnv {};

json VolumeConfig(const std::string& size) {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Volume"},
          {"metadata", {{"name", "data"}, {"labels", {{"app", "db"}}}}},
          {"spec", {{"size", size}}}};
}

TEST_F(RegistryApplyTest, ApplyCreatesThenUpdatesAndReportsConflicts) {
  const ResourceInfo& vol = R("Volume");
  auto created = reg_->Apply(vol, "default", "data", VolumeConfig("1Gi"), "gitops", false);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_FALSE(MetaString(*created, "uid").empty());
  EXPECT_EQ(Owned(*created, "gitops", "Apply"), (FieldSet{{"metadata", "labels", "app"}, {"spec", "size"}}));

  // The same apply again: nothing changes, the resourceVersion stays.
  auto again = reg_->Apply(vol, "default", "data", VolumeConfig("1Gi"), "gitops", false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(MetaString(*again, "resourceVersion"), MetaString(*created, "resourceVersion"));

  // A merge patch by someone else takes the field; gitops' next apply with its old value conflicts.
  auto edited = reg_->Patch(vol, "default", "data", {{"spec", {{"size", "2Gi"}}}}, false, false, "kubectl-patch");
  ASSERT_TRUE(edited.ok()) << edited.status().ToString();
  EXPECT_EQ(Owned(*edited, "kubectl-patch", "Update"), (FieldSet{{"spec", "size"}}));
  auto clash = reg_->Apply(vol, "default", "data", VolumeConfig("3Gi"), "gitops", false);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), Code::kConflict);
  EXPECT_NE(clash.status().message().find("kubectl-patch"), std::string::npos);
  auto stored = reg_->Get(vol, "default", "data");
  EXPECT_EQ((*stored)["spec"]["size"], "2Gi");  // nothing half-applied

  // Forced, gitops' value wins and the field is gitops' again.
  auto forced = reg_->Apply(vol, "default", "data", VolumeConfig("3Gi"), "gitops", true);
  ASSERT_TRUE(forced.ok()) << forced.status().ToString();
  EXPECT_EQ((*forced)["spec"]["size"], "3Gi");
  EXPECT_EQ(Owned(*forced, "gitops", "Apply"), (FieldSet{{"metadata", "labels", "app"}, {"spec", "size"}}));
  EXPECT_TRUE(Owned(*forced, "kubectl-patch", "Update").empty());
}

TEST_F(RegistryApplyTest, BadConfigurationsAreRefusedByName) {
  const ResourceInfo& vol = R("Volume");
  json c = VolumeConfig("1Gi");
  c.erase("kind");
  auto r = reg_->Apply(vol, "default", "data", c, "m", false);
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  EXPECT_NE(r.status().message().find("kind"), std::string::npos);
  r = reg_->Apply(vol, "default", "other", VolumeConfig("1Gi"), "m", false);
  EXPECT_NE(r.status().message().find("does not match the name"), std::string::npos);
  r = reg_->Apply(vol, "default", "data", VolumeConfig("1Gi"), "", false);
  EXPECT_NE(r.status().message().find("fieldManager"), std::string::npos);
  json bad = VolumeConfig("lots");
  r = reg_->Apply(vol, "default", "data", bad, "m", false);
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_FALSE(reg_->Get(vol, "default", "data").ok());  // nothing created
}

}  // namespace
}  // namespace stratus
