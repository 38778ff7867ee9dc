// The real stratusctl against the real stratusd: apply/get/diff/delete round trips of every kind in examples/
// and manifests/, three-way apply, wait, explain and error reporting.
#include <gtest/gtest.h>

#include <set>

#include "harness.h"
#include "stratus/core/resources.h"
#include "stratus/core/yaml.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;

// Every object in a directory of manifests, as (plural, namespace, name).
std::vector<std::tuple<std::string, std::string, std::string>> ObjectsIn(const fs::path& dir) {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    auto docs = ParseYamlDocuments(ReadFile(e.path()));
    EXPECT_TRUE(docs.ok()) << e.path();
    for (const auto& d : *docs) {
      const ResourceInfo* r = FindByKind(d["kind"].get<std::string>());
      EXPECT_NE(r, nullptr);
      std::string ns = r->namespaced ? d["metadata"].value("namespace", "default") : "";
      out.emplace_back(r->plural, ns, d["metadata"]["name"].get<std::string>());
    }
  }
  return out;
}

std::string PathOf(const std::string& plural, const std::string& ns, const std::string& name) {
  return "/apis/stratus.io/v1/" + (ns.empty() ? "" : "namespaces/" + ns + "/") + plural + "/" + name;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data");
    ASSERT_TRUE(server_->Start()) << server_->log();
  }
  fs::path Src(const std::string& rel) const { return fs::path(SourceDir()) / rel; }
  void WriteFile(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, ApplyGetDiffDeleteRoundTripOfEveryExample) {
  auto m = server_->Ctl({"apply", "-f", Src("manifests").string()});
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  auto a = server_->Ctl({"apply", "-f", Src("examples").string()});
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;

  auto objects = ObjectsIn(Src("examples"));
  auto sys = ObjectsIn(Src("manifests"));
  objects.insert(objects.end(), sys.begin(), sys.end());
  std::set<std::string> kinds;
  std::map<std::string, std::string> versions;
  for (const auto& [plural, ns, name] : objects) {
    kinds.insert(plural);
    auto g = server_->Http("GET", PathOf(plural, ns, name));
    ASSERT_EQ(g.code, 200) << plural << "/" << name << ": " << g.body;
    versions[PathOf(plural, ns, name)] = g.Json()["metadata"]["resourceVersion"];
    // get -o json through the CLI agrees with the server.
    std::vector<std::string> args = {"get", plural, name, "-o", "json"};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    auto cg = server_->Ctl(args);
    ASSERT_EQ(cg.exit_code, 0) << cg.err;
    EXPECT_EQ(json::parse(cg.out)["metadata"]["uid"], g.Json()["metadata"]["uid"]);
  }
  for (const char* k : {"instances", "volumes", "networks", "images", "keypairs", "securitygroups", "instancetypes",
                        "namespaces"}) {
    EXPECT_TRUE(kinds.count(k)) << "examples/ or manifests/ should hold a " << k;
  }

  // Re-applying unchanged files changes nothing.
  auto again = server_->Ctl({"apply", "-f", Src("examples").string()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out.find("configured"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("unchanged"), std::string::npos);
  for (const auto& [path, rv] : versions) {
    EXPECT_EQ(server_->Http("GET", path).Json()["metadata"]["resourceVersion"], rv) << path;
  }
  auto d0 = server_->Ctl({"diff", "-f", Src("examples").string()});
  EXPECT_EQ(d0.exit_code, 0) << d0.out << d0.err;

  // Table output has the columns a user wants.
  auto t = server_->Ctl({"get", "instances"});
  ASSERT_EQ(t.exit_code, 0);
  for (const char* col : {"NAME", "STATUS", "READY", "NODE", "AGE"}) EXPECT_NE(t.out.find(col), std::string::npos);

  // Delete everything the examples declare.
  auto del = server_->Ctl({"delete", "-f", Src("examples").string(), "--wait", "--timeout", "30s"});
  ASSERT_EQ(del.exit_code, 0) << del.out << del.err;
  for (const auto& [plural, ns, name] : ObjectsIn(Src("examples"))) {
    EXPECT_EQ(server_->Http("GET", PathOf(plural, ns, name)).code, 404) << plural << "/" << name;
  }
}

TEST_F(CliTest, ThreeWayApplyRemovesFieldsDroppedFromTheFile) {
  fs::path f = dir_.path() / "vol.yaml";
  WriteFile(f,
            "apiVersion: stratus.io/v1\nkind: Volume\nmetadata:\n  name: data-9\n  labels:\n    tier: db\n"
            "    team: a\nspec:\n  size: 1Gi\n");
  ASSERT_EQ(server_->Ctl({"apply", "-f", f.string()}).exit_code, 0);
  // Someone else adds a label the file never had: apply must keep it.
  ASSERT_EQ(server_->Http("PATCH", PathOf("volumes", "default", "data-9"),
                          R"({"metadata":{"labels":{"owner":"ops"}}})", "application/merge-patch+json")
                .code,
            200);
  WriteFile(f, "apiVersion: stratus.io/v1\nkind: Volume\nmetadata:\n  name: data-9\n  labels:\n    tier: db\n"
               "spec:\n  size: 2Gi\n");
  auto diff = server_->Ctl({"diff", "-f", f.string()});
  EXPECT_EQ(diff.exit_code, 1) << diff.out << diff.err;
  EXPECT_NE(diff.out.find("2Gi"), std::string::npos) << diff.out;
  auto ap = server_->Ctl({"apply", "-f", f.string()});
  ASSERT_EQ(ap.exit_code, 0) << ap.err;
  EXPECT_NE(ap.out.find("volume/data-9 configured"), std::string::npos) << ap.out;
  json v = server_->Http("GET", PathOf("volumes", "default", "data-9")).Json();
  EXPECT_EQ(v["spec"]["size"], "2Gi");
  EXPECT_FALSE(v["metadata"]["labels"].contains("team")) << "removed from the file, removed from the object";
  EXPECT_EQ(v["metadata"]["labels"]["owner"], "ops") << "set by someone else, kept";
  EXPECT_EQ(server_->Ctl({"diff", "-f", f.string()}).exit_code, 0);
}

// apply --prune -l: objects with the selector that the files no longer hold are deleted (after a dry run that
// changes nothing); objects without the label, and other namespaces, are never touched.
TEST_F(CliTest, ApplyPruneDeletesOnlySelectedObjectsThatLeftTheFiles) {
  auto vol = [](const std::string& name, const std::string& labels) {
    return "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: " + name + ", labels: {" + labels +
           "}}\nspec: {size: 1Gi}\n---\n";
  };
  fs::path d = dir_.path() / "manifests";
  fs::create_directories(d);
  WriteFile(d / "a.yaml", vol("a", "app: shop"));
  WriteFile(d / "b.yaml", vol("b", "app: shop"));
  auto first = server_->Ctl({"apply", "-f", d.string()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  // Objects made another way: one labelled for another app, one unlabelled, one in another namespace.
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, vol("other", "app: blog") + vol("loose", "")).exit_code, 0);
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: Namespace\nmetadata: {name: team2}\n")
                .exit_code,
            0);
  ASSERT_EQ(server_->Ctl({"apply", "-n", "team2", "-f", "-"}, vol("c", "app: shop")).exit_code, 0);

  fs::remove(d / "b.yaml");
  auto dry = server_->Ctl({"apply", "-f", d.string(), "--prune", "-l", "app=shop", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.out << dry.err;
  EXPECT_NE(dry.out.find("volume/a unchanged (dry run)"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("volume/b pruned (dry run)"), std::string::npos) << dry.out;
  EXPECT_EQ(server_->Http("GET", PathOf("volumes", "default", "b")).code, 200);  // a dry run deletes nothing

  auto pr = server_->Ctl({"apply", "-f", d.string(), "--prune", "-l", "app=shop"});
  ASSERT_EQ(pr.exit_code, 0) << pr.out << pr.err;
  EXPECT_NE(pr.out.find("volume/b pruned"), std::string::npos) << pr.out;
  ASSERT_TRUE(Eventually([&] { return server_->Http("GET", PathOf("volumes", "default", "b")).code == 404; }));
  for (const auto& [ns, name] : std::vector<std::pair<std::string, std::string>>{
           {"default", "a"}, {"default", "other"}, {"default", "loose"}, {"team2", "c"}}) {
    EXPECT_EQ(server_->Http("GET", PathOf("volumes", ns, name)).code, 200) << ns << "/" << name;
  }
  // --prune without a selector, and a selector without --prune, are refused before anything is written.
  auto no_sel = server_->Ctl({"apply", "-f", d.string(), "--prune"});
  EXPECT_NE(no_sel.exit_code, 0);
  EXPECT_NE(no_sel.err.find("-l SELECTOR"), std::string::npos) << no_sel.err;
  EXPECT_NE(server_->Ctl({"apply", "-f", d.string(), "-l", "app=shop"}).exit_code, 0);
}

TEST_F(CliTest, ApplyFromStdinMultiDocumentAndErrorsNameTheField) {
  std::string docs =
      "apiVersion: stratus.io/v1\nkind: KeyPair\nmetadata: {name: k1}\nspec: {publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 k1}\n"
      "---\n"
      "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: bad-1}\nspec:\n  resources: {vcpus: 1, "
      "memoryMiB: 32}\n"
      "---\n"
      "apiVersion: stratus.io/v1\nkind: KeyPair\nmetadata: {name: k2}\nspec: {publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK2 k2}\n";
  auto r = server_->Ctl({"apply", "-f", "-"}, docs);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("spec.resources.memoryMiB"), std::string::npos) << r.err;
  EXPECT_EQ(server_->Http("GET", PathOf("keypairs", "default", "k1")).code, 200);
  EXPECT_EQ(server_->Http("GET", PathOf("keypairs", "default", "k2")).code, 200) << "later documents still applied";
  EXPECT_EQ(server_->Http("GET", PathOf("instances", "default", "bad-1")).code, 404);

  auto bad_yaml = server_->Ctl({"apply", "-f", "-"}, "kind: [unclosed\n");
  EXPECT_NE(bad_yaml.exit_code, 0);
  EXPECT_FALSE(bad_yaml.err.empty());
  auto unknown = server_->Ctl({"get", "widgets"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("widgets"), std::string::npos) << unknown.err;
  auto down = stratus::testing::Run({StratusctlBin(), "--server", "http://127.0.0.1:1", "get", "instances"});
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.err.find("127.0.0.1:1"), std::string::npos) << down.err;
}

TEST_F(CliTest, WaitForConditionAndDelete) {
  ASSERT_EQ(server_->Ctl({"apply", "-f", Src("examples/volume.yaml").string()}).exit_code, 0);
  auto t = server_->Ctl({"wait", "volume/data-1", "--for=condition=Ready", "--timeout=1s"});
  EXPECT_NE(t.exit_code, 0);
  EXPECT_FALSE(t.err.empty());
  std::thread ready([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    json cur = server_->Http("GET", PathOf("volumes", "default", "data-1")).Json();
    json st = {{"status",
                {{"phase", "Available"},
                 {"observedGeneration", cur["metadata"]["generation"]},
                 {"conditions",
                  {{{"type", "Ready"}, {"status", "True"}, {"reason", "Created"}, {"message", "ok"},
                    {"lastTransitionTime", "2026-11-23T00:00:00Z"},
                    {"observedGeneration", cur["metadata"]["generation"]}}}}}}};
    server_->Http("PATCH", PathOf("volumes", "default", "data-1") + "/status", st.dump(),
                  "application/merge-patch+json");
  });
  auto w = server_->Ctl({"wait", "volume/data-1", "--for=condition=Ready", "--timeout=20s"});
  ready.join();
  EXPECT_EQ(w.exit_code, 0) << w.out << w.err;
  std::thread del([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    server_->Http("DELETE", PathOf("volumes", "default", "data-1"));
  });
  auto wd = server_->Ctl({"wait", "volume/data-1", "--for=delete", "--timeout=20s"});
  del.join();
  EXPECT_EQ(wd.exit_code, 0) << wd.out << wd.err;
}

TEST_F(CliTest, ExplainAndVersion) {
  auto e = server_->Ctl({"explain", "instance.spec.powerState"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.out.find("powerState"), std::string::npos);
  EXPECT_NE(e.out.find("string"), std::string::npos);
  auto bad = server_->Ctl({"explain", "instance.spec.nope"});
  EXPECT_NE(bad.exit_code, 0);
  auto v = server_->Ctl({"version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("v0.1.0"), std::string::npos) << v.out;
}

}  // namespace
}  // namespace stratus::testing
