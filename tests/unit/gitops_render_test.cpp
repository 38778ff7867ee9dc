// The GitOps reconciler's pure parts: reading a ManifestSource spec, rendering a revision's files into ordered
// apply configurations, planning prunes, and finding hand edits.
#include "stratus/gitops/render.h"

#include <gtest/gtest.h>

namespace stratus::gitops {
namespace {

json Source(const json& spec) {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "ManifestSource"},
          {"metadata", {{"name", "app"}, {"namespace", "team"}}},
          {"spec", spec}};
}

TEST(GitOpsRenderTest, ParseSourceDefaultsAndRefusals) {
  auto c = ParseSource(Source({{"url", "git://127.0.0.1/app.git"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->interval, std::chrono::minutes(1));
  EXPECT_TRUE(c->prune);
  EXPECT_FALSE(c->suspend);
  c = ParseSource(Source({{"url", "/srv/git/app.git"}, {"interval", "30s"}, {"prune", false}, {"path", "./apps"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->interval, std::chrono::seconds(30));
  EXPECT_FALSE(c->prune);
  for (const auto& [spec, field] : std::vector<std::pair<json, std::string>>{
           {{{"url", "ssh://host/x"}}, "spec.url"},
           {{{"url", "relative/dir"}}, "spec.url"},
           {{{"url", "git://h/x y"}}, "spec.url"},
           {{{"url", "/x"}, {"path", "../up"}}, "spec.path"},
           {{{"url", "/x"}, {"path", "a/../../b"}}, "spec.path"},
           {{{"url", "/x"}, {"path", "/abs"}}, "spec.path"},
           {{{"url", "/x"}, {"interval", "0s"}}, "spec.interval"},
           {{{"url", "/x"}, {"interval", "often"}}, "spec.interval"},
           {{{"url", "/x"}, {"branch", "a..b"}}, "spec.branch"},
           {{{"url", "/x"}, {"branch", "-x"}}, "spec.branch"},
           {{{"url", "/x"}, {"commit", "xyz"}}, "spec.commit"}}) {
    auto bad = ParseSource(Source(spec));
    ASSERT_FALSE(bad.ok()) << spec.dump();
    EXPECT_EQ(bad.status().code(), Code::kInvalid);
    EXPECT_EQ(bad.status().message().rfind(field, 0), 0u) << spec.dump() << ": " << bad.status().message();
  }
}

Snapshot Files(std::vector<ManifestFile> files) {
  Snapshot s;
  s.revision = "abc";
  s.files = std::move(files);
  return s;
}

TEST(GitOpsRenderTest, RendersInDependencyOrderWithNamespaceAndLabel) {
  auto r = Render(Files({{"a/web.yaml",
                          "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: web}\nspec: {instanceType: t}\n"
                          "status: {phase: Running}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: data, uid: stale}\n"
                          "spec: {size: 1Gi}\n---\n"},
                         {"b/net.json", R"({"apiVersion":"stratus.io/v1","kind":"Network","metadata":{"name":"n",)"
                                        R"("namespace":"team"},"spec":{"cidr":"10.0.0.0/24"}})"},
                         {"c/img.yml", "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: img}\nspec: {}\n"}}),
                  "team", "app");
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.errors.empty());
  std::vector<std::string> order;
  for (const auto& o : r.objects) order.push_back(o.Ref());
  EXPECT_EQ(order, (std::vector<std::string>{"Network/n", "Image/img", "Volume/data", "Instance/web"}));
  const json& web = r.objects.back().object;
  EXPECT_EQ(web["metadata"]["namespace"], "team");
  EXPECT_EQ(web["metadata"]["labels"][kSourceLabel], "app");
  EXPECT_FALSE(web.contains("status"));
  EXPECT_FALSE(r.objects[2].object["metadata"].contains("uid"));
  EXPECT_EQ(r.objects.back().file, "a/web.yaml#1");
}

TEST(GitOpsRenderTest, BadDocumentsAreErrorsThatStopPruningButNotTheRest) {
  auto r = Render(Files({{"bad.yaml", "kind: [\n"},
                         {"good.yaml", "apiVersion: stratus.io/v1\nkind: KeyPair\nmetadata: {name: k}\nspec: {}\n"},
                         {"kinds.yaml",
                          "apiVersion: stratus.io/v1\nkind: Gadget\nmetadata: {name: g}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: Node\nmetadata: {name: n}\n---\n"
                          "apiVersion: v1\nkind: KeyPair\nmetadata: {name: k2}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: KeyPair\nmetadata: {name: k3, namespace: other}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: KeyPair\nmetadata: {name: k}\n---\n"
                          "- a list\n"}}),
                  "team", "app");
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_EQ(r.objects[0].Ref(), "KeyPair/k");
  EXPECT_FALSE(r.complete);
  std::vector<std::string> where;
  for (const auto& e : r.errors) where.push_back(e.where);
  EXPECT_EQ(where, (std::vector<std::string>{"bad.yaml", "kinds.yaml#1", "kinds.yaml#2", "kinds.yaml#3",
                                             "kinds.yaml#4", "kinds.yaml#5", "kinds.yaml#6"}));
  EXPECT_NE(r.errors[2].message.find("cluster-scoped"), std::string::npos);
  EXPECT_NE(r.errors[4].message.find("applies only there"), std::string::npos);
  EXPECT_NE(r.errors[5].message.find("more than once"), std::string::npos);
  // An incomplete render prunes nothing: the unreadable file's objects are unknown, not removed.
  EXPECT_TRUE(PlanPrune({"KeyPair/old"}, r).empty());
}

TEST(GitOpsRenderTest, PrunesOnlyInventoryThatLeftInReverseOrder) {
  auto r = Render(Files({{"k.yaml", "apiVersion: stratus.io/v1\nkind: KeyPair\nmetadata: {name: k}\nspec: {}\n"}}),
                  "team", "app");
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(PlanPrune({"KeyPair/k", "Network/n", "Instance/i", "Volume/v"}, r),
            (std::vector<std::string>{"Instance/i", "Volume/v", "Network/n"}));
  json src = Source({{"url", "/x"}});
  src["status"]["inventory"] = {"KeyPair/k", "Network/n"};
  EXPECT_EQ(InventoryOf(src), (std::set<std::string>{"KeyPair/k", "Network/n"}));
}

TEST(GitOpsRenderTest, DriftNamesTheFieldsChangedByHand) {
  json config = {{"apiVersion", "stratus.io/v1"},
                 {"kind", "Instance"},
                 {"metadata", {{"name", "web"}, {"labels", {{"tier", "front"}}}}},
                 {"spec", {{"instanceType", "t"}, {"networks", json::array({{{"network", "n"}}})}}}};
  json live = config;
  live["metadata"]["uid"] = "u";
  live["metadata"]["labels"]["extra"] = "kept";  // added by someone else: not drift
  live["spec"]["nodeName"] = "host";               // set by a reconciler: not drift
  live["status"] = {{"phase", "Running"}};
  EXPECT_TRUE(Drift(live, config).empty());
  live["metadata"]["labels"]["tier"] = "back";
  live["spec"]["instanceType"] = "u";
  EXPECT_EQ(Drift(live, config), (std::vector<std::string>{".metadata.labels.tier", ".spec.instanceType"}));
}

}  // namespace
}  // namespace stratus::gitops
