// Registry semantics over a real SQLite store: server-set metadata, generation, status subresource,
// finalizers and two-phase delete, namespaces.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>

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

// The HTTP list (spliced from stored encodings) equals the json list, object for object, across selectors,
// pages, namespaces and after updates and deletes.
TEST_F(RegistryTest, EncodedListEqualsListAcrossSelectorsPagesAndNamespaces) {
  ASSERT_TRUE(reg_->Create(R("Namespace"), "", json{{"metadata", {{"name", "team"}}}}).ok());
  for (int i = 0; i < 12; ++i) {
    json v = Volume("v" + std::to_string(i));
    v["metadata"]["labels"] = {{"tier", i % 3 ? "db" : "web"}};
    ASSERT_TRUE(reg_->Create(R("Volume"), i < 8 ? "default" : "team", v).ok());
  }
  ASSERT_TRUE(reg_->Patch(R("Volume"), "default", "v1", json{{"spec", {{"size", "9Gi"}}}}, false).ok());
  ASSERT_TRUE(reg_->Patch(R("Volume"), "default", "v2", json{{"metadata", {{"labels", {{"tier", "web"}}}}}}, false).ok());
  ASSERT_TRUE(reg_->Delete(R("Volume"), "default", "v4", "").ok());
  ASSERT_TRUE(reg_->Delete(R("Volume"), "team", "v9", "").ok());
  struct Case {
    std::string ns, labels, fields;
    int64_t limit;
  };
  std::vector<Case> cases = {{"default", "", "", 0},      {"", "", "", 0},          {"default", "tier=db", "", 0},
                             {"", "tier!=db", "", 0},     {"team", "", "", 0},      {"", "", "metadata.name=v1", 0},
                             {"default", "", "", 3},      {"", "tier=db", "", 2},   {"", "tier=nothing", "", 0}};
  for (const auto& c : cases) {
    ListRequest lr;
    lr.label_selector = c.labels;
    lr.field_selector = c.fields;
    lr.limit = c.limit;
    size_t pages = 0, items = 0;
    do {
      auto want = reg_->List(R("Volume"), c.ns, lr);
      auto got = reg_->ListEncoded(R("Volume"), c.ns, lr);
      ASSERT_TRUE(want.ok() && got.ok());
      json parsed = json::parse(*got);
      EXPECT_EQ(parsed, *want) << "ns=" << c.ns << " labels=" << c.labels << " fields=" << c.fields
                               << " limit=" << c.limit << " page " << pages;
      EXPECT_EQ(*got, want->dump()) << "byte for byte what the json list would have sent";
      items += (*want)["items"].size();
      lr.continue_token = want->at("metadata").value("continue", "");
      ++pages;
    } while (!lr.continue_token.empty() && pages < 20);
    if (c.limit == 0) EXPECT_EQ(pages, 1u);
    if (c.ns.empty() && c.labels.empty() && c.fields.empty()) EXPECT_EQ(items, 10u);
  }
  ListRequest bad;
  bad.continue_token = "not-a-token!";
  EXPECT_EQ(reg_->ListEncoded(R("Volume"), "default", bad).status().code(), Code::kBadRequest);
  bad = {};
  bad.limit = -1;
  EXPECT_EQ(reg_->ListEncoded(R("Volume"), "default", bad).status().code(), Code::kBadRequest);
  auto one = reg_->GetEncoded(R("Volume"), "default", "v1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(json::parse(**one), *reg_->Get(R("Volume"), "default", "v1"));
  EXPECT_EQ(reg_->GetEncoded(R("Volume"), "default", "v4").status().code(), Code::kNotFound);
}

// Many patches of one object issued at once, none waiting for another: their conflicts are retried from the
// store's completions, and every patch lands.
TEST_F(RegistryTest, ConcurrentAsyncPatchesAllLandThroughRetries) {
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", Volume("hot")).ok());
  constexpr int kPatches = 12;
  std::vector<std::promise<Status>> done(kPatches);
  for (int i = 0; i < kPatches; ++i) {
    json patch = {{"metadata", {{"labels", {{"k" + std::to_string(i), "x"}}}}}};
    reg_->PatchAsync(R("Volume"), "default", "hot", patch, false, false,
                     [&, i](StatusOr<StoredObject> r) { done[size_t(i)].set_value(r.status()); });
  }
  for (auto& d : done) {
    Status st = d.get_future().get();
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  auto v = reg_->Get(R("Volume"), "default", "hot");
  ASSERT_TRUE(v.ok());
  size_t landed = 0;
  for (int i = 0; i < kPatches; ++i) landed += (*v)["metadata"]["labels"].contains("k" + std::to_string(i));
  EXPECT_EQ(landed, size_t(kPatches));
}

}  // namespace
}  // namespace stratus
