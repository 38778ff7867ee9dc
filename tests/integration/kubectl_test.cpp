// kubectl v1.32 against stratusd with no flags: apply with its default (server-side) validation, which it chooses
// from /openapi/v3; explain from the same document; diff and --dry-run=server, which must store nothing; get with
// the Table columns; delete -f. Skipped only when kubectl is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "harness.h"

namespace stratus::testing {
namespace {

const std::string kApi = "/apis/stratus.io/v1";

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* other = std::getenv("STRATUS_TEST_KUBECTL");
    bin_ = other != nullptr && *other ? other : "/usr/bin/kubectl";
    // scripts/install-deps.sh installs kubectl (Debian's kubernetes-client) when none is on the machine.
    if (!std::filesystem::exists(bin_)) GTEST_FAIL() << bin_ << " is not installed: run scripts/install-deps.sh";
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", std::vector<std::string>{"--secure"});
    ASSERT_TRUE(server_->Start()) << server_->log();
    home_ = (dir_.path() / "home").string();
    std::filesystem::create_directories(home_);
  }
  RunResult Kubectl(std::vector<std::string> args, const std::string& in = "") {
    std::string config = (dir_.path() / "data" / "admin.kubeconfig").string();
    args.insert(args.begin(), {bin_, "--kubeconfig", config});
    return stratus::testing::Run(args, in, {"HOME=" + home_, "KUBECONFIG="}, 120);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string p = (dir_.path() / name).string();
    std::ofstream(p) << text;
    return p;
  }
  json Get(const std::string& path) {
    auto r = server_->Http("GET", kApi + path);
    return r.code == 200 ? json::parse(r.body) : json();
  }

  TempDir dir_;
  std::string bin_, home_;
  std::unique_ptr<ServerProcess> server_;
};

std::string Manifest(int memory, const std::string& extra = "") {
  return "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.tiny}\nspec: {vcpus: 1, memoryMiB: " +
         std::to_string(memory) + "}\n---\napiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: web-1}\n"
         "spec:\n  instanceType: m1.tiny\n  kernelImage: kernel\n" + extra;
}

TEST_F(KubectlTest, ApplyExplainDiffDryRunGetAndDeleteWithNoFlags) {
  std::string m = Write("m.yaml", Manifest(256));
  // apply with kubectl's default validation (no --validate=false), then again: unchanged.
  auto r = Kubectl({"apply", "-f", m});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("instance.stratus.io/web-1 created"), std::string::npos) << r.out;
  r = Kubectl({"apply", "-f", m});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("instance.stratus.io/web-1 unchanged"), std::string::npos) << r.out;

  // An unknown field: that object is refused by the server, naming the field, and left as it was (kubectl applies
  // each object of a file on its own, as it does against Kubernetes).
  r = Kubectl({"apply", "-f", Write("bad.yaml", Manifest(256, "  powerState: Stopped\n  bogusField: 1\n"))});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("spec.bogusField"), std::string::npos) << r.err;
  json web = Get("/namespaces/default/instances/web-1");
  EXPECT_FALSE(web["spec"].contains("bogusField")) << web.dump();
  EXPECT_NE(web["spec"].value("powerState", ""), "Stopped") << web.dump();

  // explain reads the OpenAPI v3 document: the schema's own descriptions.
  r = Kubectl({"explain", "instance.spec.networks"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("KIND:       Instance"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("network\t<string> -required-"), std::string::npos) << r.out;

  // diff: a change shows (exit 1) and is not stored; the same file shows nothing (exit 0).
  std::string m2 = Write("m2.yaml", Manifest(512));
  r = Kubectl({"diff", "-f", m2});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("+  memoryMiB: 512"), std::string::npos) << r.out;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 256);
  r = Kubectl({"diff", "-f", m});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  // Server-side dry runs of apply, create and delete store nothing.
  r = Kubectl({"apply", "--dry-run=server", "-f", m2});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(server dry run)"), std::string::npos) << r.out;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 256);
  r = Kubectl({"create", "--dry-run=server", "-f", "-"},
              "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.new}\nspec: {vcpus: 1, memoryMiB: 128}\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_->Http("GET", kApi + "/instancetypes/m1.new").code, 404);
  r = Kubectl({"delete", "--dry-run=server", "-f", m});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_->Http("GET", kApi + "/namespaces/default/instances/web-1").code, 200);

  // A real change through apply.
  r = Kubectl({"apply", "-f", m2});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 512);

  // get: the columns stratusctl prints (STATUS, NODE, IP; -o wide adds TYPE).
  r = Kubectl({"get", "instances"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string header = r.out.substr(0, r.out.find('\n'));
  for (const char* col : {"NAME", "STATUS", "READY", "NODE", "IP", "AGE"}) {
    EXPECT_NE(header.find(col), std::string::npos) << col << " in " << r.out;
  }
  EXPECT_EQ(header.find("TYPE"), std::string::npos) << r.out;
  r = Kubectl({"get", "instances", "-o", "wide"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("m1.tiny"), std::string::npos) << r.out;

  r = Kubectl({"delete", "-f", m2});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_->Http("GET", kApi + "/instancetypes/m1.tiny").code, 404);
}

// Server-side apply as kubectl does it: managedFields name kubectl's manager, another manager's change to a field
// is a conflict that names the field and that manager, and --force-conflicts takes the field over. stratusctl's
// --server-side goes the same way.
TEST_F(KubectlTest, ServerSideApplyConflictsNameFieldAndManager) {
  std::string m = Write("m.yaml", Manifest(256));
  auto r = Kubectl({"apply", "--server-side", "-f", m});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("instancetype.stratus.io/m1.tiny serverside-applied"), std::string::npos) << r.out;
  json t = Get("/instancetypes/m1.tiny");
  ASSERT_TRUE(t["metadata"]["managedFields"].is_array()) << t.dump();
  EXPECT_EQ(t["metadata"]["managedFields"][0]["manager"], "kubectl") << t.dump();
  EXPECT_EQ(t["metadata"]["managedFields"][0]["operation"], "Apply") << t.dump();

  // Someone changes memoryMiB by hand: the field is theirs now.
  r = Kubectl({"patch", "instancetype", "m1.tiny", "--type=merge", "-p", R"({"spec":{"memoryMiB":300}})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Kubectl({"apply", "--server-side", "-f", m});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("conflict"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kubectl-patch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(".spec.memoryMiB"), std::string::npos) << r.err;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 300);

  r = Kubectl({"apply", "--server-side", "--force-conflicts", "-f", m});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 256);

  // stratusctl: its own manager, so kubectl's fields are a conflict for it too.
  std::string m3 = Write("m3.yaml", Manifest(384));
  r = server_->Ctl({"apply", "--server-side", "-f", m3});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("conflict with \"kubectl\""), std::string::npos) << r.err;
  r = server_->Ctl({"apply", "--server-side", "--force-conflicts", "-f", m3});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("instancetype/m1.tiny serverside-applied"), std::string::npos) << r.out;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 384);

  // The request itself: apply needs a fieldManager; force is for apply only.
  std::string cfg = R"({"apiVersion":"stratus.io/v1","kind":"InstanceType","metadata":{"name":"m1.tiny"},"spec":{"vcpus":1}})";
  auto h = server_->Http("PATCH", kApi + "/instancetypes/m1.tiny", cfg, "application/apply-patch+yaml");
  EXPECT_EQ(h.code, 400) << h.body;
  EXPECT_NE(h.body.find("fieldManager"), std::string::npos) << h.body;
  h = server_->Http("PATCH", kApi + "/instancetypes/m1.tiny?force=true", R"({"spec":{"vcpus":1}})",
                    "application/merge-patch+json");
  EXPECT_EQ(h.code, 400) << h.body;
}

// fieldValidation as kubectl sends it: --validate=warn drops unknown fields and says so (the Warning header kubectl
// prints); --validate=ignore drops them silently; strict (the default) refuses (the first test).
TEST_F(KubectlTest, FieldValidationWarnAndIgnoreDropUnknownFields) {
  std::string bogus = Write("bogus.yaml", Manifest(256, "  bogusField: 1\n  powerState: Stopped\n"));
  auto r = Kubectl({"apply", "--validate=warn", "-f", bogus});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("unknown field \"spec.bogusField\""), std::string::npos) << r.err;
  json web = Get("/namespaces/default/instances/web-1");
  EXPECT_FALSE(web["spec"].contains("bogusField")) << web.dump();
  EXPECT_EQ(web["spec"].value("powerState", ""), "Stopped");  // the known fields are applied
  std::string other = Write("other.yaml", Manifest(320, "  bogusField: 2\n"));
  r = Kubectl({"apply", "--validate=ignore", "-f", other});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err.find("unknown field"), std::string::npos) << r.err;
  EXPECT_EQ(Get("/instancetypes/m1.tiny")["spec"].value("memoryMiB", 0), 320);
}

// get -w streams changes; wait --for=condition=Ready returns when the condition turns True.
TEST_F(KubectlTest, GetWatchAndWaitForCondition) {
  ASSERT_EQ(Kubectl({"apply", "-f", Write("m.yaml", Manifest(256))}).exit_code, 0);
  auto watches = [&] {
    auto r = server_->Http("GET", "/metrics");
    auto at = r.body.find("\nstratus_apiserver_watches ");
    return at == std::string::npos ? -1 : std::stoi(r.body.substr(at + 27));
  };
  int before = watches();
  auto watching = std::async(std::launch::async, [&] {
    return Kubectl({"get", "instancetypes", "-w", "--request-timeout=10s"});
  });
  // Change the object once kubectl's watch is open (the server counts it), not after some time.
  for (int i = 0; i < 400 && watches() <= before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GT(watches(), before);
  ASSERT_EQ(Kubectl({"label", "instancetype", "m1.tiny", "tier=gold"}).exit_code, 0);
  ASSERT_EQ(Kubectl({"delete", "instancetype", "m1.tiny"}).exit_code, 0);
  auto w = watching.get();
  // The listing, then the label change and the deletion as further rows of the same object.
  size_t rows = 0;
  for (size_t at = w.out.find("m1.tiny"); at != std::string::npos; at = w.out.find("m1.tiny", at + 1)) ++rows;
  EXPECT_GE(rows, 3u) << w.out << w.err;

  auto waiting = std::async(std::launch::async, [&] {
    return Kubectl({"wait", "--for=condition=Ready", "instance/web-1", "--timeout=60s"});
  });
  // No agent here: the status a node agent would write, written by hand.
  json st = {{"status", {{"phase", "Running"}, {"conditions", json::array({{{"type", "Ready"}, {"status", "True"},
                                                                             {"reason", "Running"},
                                                                             {"lastTransitionTime", "2026-12-04T00:00:00Z"}}})}}}};
  auto p = server_->Http("PATCH", kApi + "/namespaces/default/instances/web-1/status", st.dump(),
                         "application/merge-patch+json");
  ASSERT_EQ(p.code, 200) << p.body;
  auto wr = waiting.get();
  EXPECT_EQ(wr.exit_code, 0) << wr.out << wr.err;
  EXPECT_NE(wr.out.find("condition met"), std::string::npos) << wr.out;
}

TEST_F(KubectlTest, OpenApiDiscoveryPointsAtTheGroupDocument) {
  auto d = server_->Http("GET", "/openapi/v3");
  ASSERT_EQ(d.code, 200) << d.body;
  json disc = json::parse(d.body);
  std::string url = disc["paths"]["apis/stratus.io/v1"].value("serverRelativeURL", "");
  ASSERT_EQ(url.rfind("/openapi/v3/apis/stratus.io/v1?hash=", 0), 0u) << d.body;
  auto doc = server_->Http("GET", url);
  ASSERT_EQ(doc.code, 200);
  json j = json::parse(doc.body);
  EXPECT_TRUE(j["components"]["schemas"].contains("io.stratus.v1.Instance"));
  EXPECT_EQ(server_->Http("GET", "/openapi/v3/apis/other/v1").code, 404);
  // The query parameters the document promises are checked by name.
  std::string it = R"({"apiVersion":"stratus.io/v1","kind":"InstanceType","metadata":{"name":"t1"},"spec":{"vcpus":1,"memoryMiB":64}})";
  auto bad = server_->Http("POST", kApi + "/instancetypes?fieldValidation=Loose", it);
  EXPECT_EQ(bad.code, 400) << bad.body;
  EXPECT_NE(bad.body.find("fieldValidation"), std::string::npos) << bad.body;
  bad = server_->Http("POST", kApi + "/instancetypes?dryRun=Some", it);
  EXPECT_EQ(bad.code, 400) << bad.body;
  auto dry = server_->Http("POST", kApi + "/instancetypes?dryRun=All&fieldValidation=Strict", it);
  EXPECT_EQ(dry.code, 201) << dry.body;
  EXPECT_EQ(server_->Http("GET", kApi + "/instancetypes/t1").code, 404);
  EXPECT_EQ(server_->Http("POST", kApi + "/instancetypes", it).code, 201);
}

}  // namespace
}  // namespace stratus::testing
