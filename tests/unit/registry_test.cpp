// Registry semantics over a real SQLite store: server-set metadata, generation, status subresource,
// finalizers and two-phase delete, namespaces.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "registry_env.h"

namespace stratus {
namespace {

class RegistryTest : public RegistryEnv {
 protected:
  static json Volume(const std::string& name, const std::string& size = "1Gi") {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "Volume"},
            {"metadata", {{"name", name}}},
            {"spec", {{"size", size}}}};
  }
};

TEST_F(RegistryTest, CreateSetsServerFieldsAndDefaults) {
  auto v = reg_->Create(R("Volume"), "default", Volume("data-1"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const json& md = (*v)["metadata"];
  EXPECT_EQ(md["namespace"], "default");
  EXPECT_EQ(md["generation"], 1);
  EXPECT_EQ(md["uid"].get<std::string>().size(), 36u);
  EXPECT_FALSE(md["creationTimestamp"].get<std::string>().empty());
  EXPECT_FALSE(md["resourceVersion"].get<std::string>().empty());
  EXPECT_TRUE((*v)["spec"].contains("format")) << "schema default applied";
}

TEST_F(RegistryTest, CreateRejectsInvalidWithFieldPath) {
  json bad = Volume("data-1");
  bad["spec"]["bogus"] = 1;
  auto r = reg_->Create(R("Volume"), "default", bad);
  ASSERT_EQ(r.status().code(), Code::kInvalid);
  bool found = false;
  for (const auto& c : r.status().causes()) found |= c.field.find("spec.bogus") != std::string::npos;
  EXPECT_TRUE(found) << r.status().ToString();
  EXPECT_EQ(reg_->Create(R("Volume"), "default", Volume("Bad_Name")).status().code(), Code::kInvalid);
  EXPECT_EQ(reg_->Create(R("Volume"), "nowhere", Volume("x")).status().code(), Code::kNotFound);
  json wrong_kind = Volume("x");
  wrong_kind["kind"] = "Image";
  EXPECT_EQ(reg_->Create(R("Volume"), "default", wrong_kind).status().code(), Code::kBadRequest);
}

TEST_F(RegistryTest, GenerationCountsSpecChangesOnly) {
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", Volume("v")).ok());
  auto p = reg_->Patch(R("Volume"), "default", "v", {{"metadata", {{"labels", {{"a", "b"}}}}}}, false);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)["metadata"]["generation"], 1);
  p = reg_->Patch(R("Volume"), "default", "v", {{"spec", {{"size", "2Gi"}}}}, false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)["metadata"]["generation"], 2);
  p = reg_->Patch(R("Volume"), "default", "v", {{"status", {{"phase", "Available"}}}}, true);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)["metadata"]["generation"], 2);
  EXPECT_EQ((*p)["status"]["phase"], "Available");
}

TEST_F(RegistryTest, StatusSubresourceIsolation) {
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", Volume("v")).ok());
  // A status change through the main resource is ignored...
  auto p = reg_->Patch(R("Volume"), "default", "v", {{"status", {{"phase", "Available"}}}}, false);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE((*p).contains("status") && (*p)["status"].contains("phase"));
  // ...and a spec change through /status is ignored.
  ASSERT_TRUE(reg_->Patch(R("Volume"), "default", "v", {{"status", {{"phase", "Available"}}}}, true).ok());
  auto q = reg_->Patch(R("Volume"), "default", "v", {{"spec", {{"size", "9Gi"}}}}, true);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)["spec"]["size"], "1Gi");
  EXPECT_EQ((*q)["status"]["phase"], "Available");
}

TEST_F(RegistryTest, NoOpUpdateKeepsResourceVersion) {
  auto c = reg_->Create(R("Volume"), "default", Volume("v"));
  ASSERT_TRUE(c.ok());
  auto u = reg_->Update(R("Volume"), "default", "v", *c, false);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ((*u)["metadata"]["resourceVersion"], (*c)["metadata"]["resourceVersion"]);
}

TEST_F(RegistryTest, StaleResourceVersionConflicts) {
  auto c = reg_->Create(R("Volume"), "default", Volume("v"));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(reg_->Patch(R("Volume"), "default", "v", {{"spec", {{"size", "2Gi"}}}}, false).ok());
  json stale = *c;
  stale["spec"]["size"] = "3Gi";
  EXPECT_EQ(reg_->Update(R("Volume"), "default", "v", stale, false).status().code(), Code::kConflict);
}

TEST_F(RegistryTest, FinalizersMakeDeleteTwoPhase) {
  json v = Volume("v");
  v["metadata"]["finalizers"] = {"stratus.io/storage"};
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", v).ok());
  auto d = reg_->Delete(R("Volume"), "default", "v", "");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(reg_->Get(R("Volume"), "default", "v").ok()) << "held by its finalizer";
  // New finalizers cannot be added while terminating.
  auto add = reg_->Patch(R("Volume"), "default", "v",
                         {{"metadata", {{"finalizers", {"stratus.io/storage", "x.io/other"}}}}}, false);
  EXPECT_EQ(add.status().code(), Code::kInvalid);
  auto rm = reg_->Patch(R("Volume"), "default", "v", {{"metadata", {{"finalizers", nullptr}}}}, false);
  ASSERT_TRUE(rm.ok()) << rm.status().ToString();
  EXPECT_EQ(reg_->Get(R("Volume"), "default", "v").status().code(), Code::kNotFound);
}

TEST_F(RegistryTest, DeletePreconditionUid) {
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", Volume("v")).ok());
  EXPECT_EQ(reg_->Delete(R("Volume"), "default", "v", "not-the-uid").status().code(), Code::kConflict);
  EXPECT_TRUE(reg_->Delete(R("Volume"), "default", "v", "").ok());
  EXPECT_EQ(reg_->Delete(R("Volume"), "default", "v", "").status().code(), Code::kNotFound);
}

TEST_F(RegistryTest, DeletingNamespaceDeletesItsContents) {
  ASSERT_TRUE(reg_->Create(R("Namespace"), "", {{"metadata", {{"name", "team"}}}}).ok());
  ASSERT_TRUE(reg_->Create(R("Volume"), "team", Volume("a")).ok());
  json held = Volume("b");
  held["metadata"]["finalizers"] = {"stratus.io/storage"};
  ASSERT_TRUE(reg_->Create(R("Volume"), "team", held).ok());
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", Volume("keep")).ok());
  auto d = reg_->Delete(R("Namespace"), "", "team", "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["status"]["phase"], "Terminating");
  EXPECT_EQ(reg_->Create(R("Volume"), "team", Volume("late")).status().code(), Code::kForbidden);
  reg_->ReconcileNamespaces();
  EXPECT_FALSE(reg_->Get(R("Volume"), "team", "a").ok());
  EXPECT_TRUE(reg_->Get(R("Namespace"), "", "team").ok()) << "waits for b's finalizer";
  ASSERT_TRUE(reg_->Patch(R("Volume"), "team", "b", {{"metadata", {{"finalizers", nullptr}}}}, false).ok());
  reg_->ReconcileNamespaces();
  EXPECT_EQ(reg_->Get(R("Namespace"), "", "team").status().code(), Code::kNotFound);
  EXPECT_TRUE(reg_->Get(R("Volume"), "default", "keep").ok());
  EXPECT_EQ(reg_->Delete(R("Namespace"), "", "default", "").status().code(), Code::kForbidden);
}

TEST_F(RegistryTest, ListWithSelectorsAndPages) {
  for (int i = 0; i < 5; ++i) {
    json v = Volume("v" + std::to_string(i));
    v["metadata"]["labels"] = {{"tier", i % 2 ? "db" : "web"}};
    ASSERT_TRUE(reg_->Create(R("Volume"), "default", v).ok());
  }
  ListRequest lr;
  lr.label_selector = "tier=db";
  auto l = reg_->List(R("Volume"), "default", lr);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["items"].size(), 2u);
  EXPECT_EQ((*l)["kind"], "VolumeList");
  lr = {};
  lr.field_selector = "metadata.name=v3";
  l = reg_->List(R("Volume"), "default", lr);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ((*l)["items"].size(), 1u);
  lr = {};
  lr.limit = 3;
  l = reg_->List(R("Volume"), "default", lr);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["items"].size(), 3u);
  lr.continue_token = (*l)["metadata"]["continue"];
  l = reg_->List(R("Volume"), "default", lr);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["items"].size(), 2u);
  EXPECT_FALSE((*l)["metadata"].contains("continue"));
  lr = {};
  lr.label_selector = "tier in (web";
  EXPECT_EQ(reg_->List(R("Volume"), "default", lr).status().code(), Code::kBadRequest);
}

}  // namespace
}  // namespace stratus
