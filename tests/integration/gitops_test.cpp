// GitOps end to end on the test driver: a bare repository served by a real `git daemon` on loopback, a
// ManifestSource that follows it, and everything a user does to the repository: add objects (they appear and
// boot), change an instance type (applied), delete a file (pruned), edit an object by hand (put back, with an
// Event), push a broken manifest (reported; the rest still converges), force-push (followed). Then the bad
// inputs: unreachable repository, refused credentials, non-YAML files, unknown kinds, cluster-scoped kinds and
// another namespace, and a spec the API refuses.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "harness.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;
const std::string kApi = "/apis/stratus.io/v1/namespaces/default";

// A child process killed and reaped at scope exit (git daemon, the credential-refusing HTTP server).
struct Child {
  pid_t pid = 0;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

class GitOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    srv_ = dir_.path() / "srv";
    work_ = dir_.path() / "work";
    fs::create_directories(srv_);
    ASSERT_EQ(Git({"init", "-q", "--bare", "-b", "main", (srv_ / "app.git").string()}, "").exit_code, 0);
    ASSERT_EQ(Git({"clone", "-q", (srv_ / "app.git").string(), work_.string()}, "").exit_code, 0);
    daemon_port_ = ReservePort();
    ASSERT_NE(daemon_port_.port(), 0);
    daemon_.pid = SpawnLogged({"/usr/bin/git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1",
                               "--port=" + std::to_string(daemon_port_.port()), "--base-path=" + srv_.string(),
                               srv_.string()},
                              (dir_.path() / "daemon.log").string());
    agent_port_ = ReservePort();
    server_ = std::make_unique<ServerProcess>(
        dir_.path() / "data", std::vector<std::string>{"--agent=true", "--libvirt-uri", "test:///default", "--node",
                                                       "node-a", "--agent-listen", agent_port_.hostport(),
                                                       "--reserved-memory-mib", "0", "--heartbeat-seconds", "1"});
    ASSERT_TRUE(server_->Start()) << server_->log();
    // The daemon answers once it listens.
    ASSERT_TRUE(Eventually([&] { return Git({"ls-remote", Url()}, "").exit_code == 0; }, 30))
        << ReadFile(dir_.path() / "daemon.log");
    // The operator's part: the flavors and the image files (a ManifestSource applies namespaced kinds only).
    std::ofstream(dir_.path() / "vmlinuz") << std::string(4096, 'k');
    auto r = server_->Ctl({"apply", "-f", "-"},
                          "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\n"
                          "spec: {vcpus: 1, memoryMiB: 128}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.large}\n"
                          "spec: {vcpus: 2, memoryMiB: 256}\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string Url(const std::string& repo = "app.git") const {
    return "git://127.0.0.1:" + std::to_string(daemon_port_.port()) + "/" + repo;
  }
  RunResult Git(std::vector<std::string> args, const std::string& in_dir = "w") {
    std::vector<std::string> a = {"/usr/bin/git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                                  "-c", "init.defaultBranch=main"};
    if (in_dir == "w") a.insert(a.end(), {"-C", work_.string()});
    a.insert(a.end(), args.begin(), args.end());
    return stratus::testing::Run(a, "", {"HOME=" + dir_.path().string(), "GIT_CONFIG_NOSYSTEM=1"});
  }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((work_ / rel).parent_path());
    std::ofstream(work_ / rel) << text;
  }
  // Commits everything and pushes (forced when asked); returns the new commit id.
  std::string Push(const std::string& message, bool force = false) {
    EXPECT_EQ(Git({"add", "-A"}).exit_code, 0);
    auto c = Git({"commit", "-q", "-m", message});
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
    auto p = force ? Git({"push", "-q", "--force", "origin", "main"}) : Git({"push", "-q", "origin", "main"});
    EXPECT_EQ(p.exit_code, 0) << p.err;
    std::string head = Git({"rev-parse", "HEAD"}).out;
    return head.substr(0, head.find('\n'));
  }
  json Get(const std::string& path) {
    auto r = server_->Http("GET", kApi + path);
    return r.code == 200 ? json::parse(r.body) : json();
  }
  json Source(const std::string& name = "app") { return Get("/manifestsources/" + name); }
  static std::string ReadyReason(const json& src) {
    for (const auto& c : src.value("status", json::object()).value("conditions", json::array())) {
      if (c.value("type", "") == "Ready") return c.value("status", "") + "/" + c.value("reason", "");
    }
    return "";
  }
  static std::string ReadyMessage(const json& src) {
    for (const auto& c : src.value("status", json::object()).value("conditions", json::array())) {
      if (c.value("type", "") == "Ready") return c.value("message", "");
    }
    return "";
  }
  void ApplySource(const std::string& name, const std::string& spec) {
    auto r = server_->Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: ManifestSource\nmetadata: {name: " +
                                                    name + "}\nspec: " + spec + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  bool AppliedRevision(const std::string& rev, const std::string& name = "app") {
    return Source(name).value("status", json::object()).value("lastAppliedRevision", "") == rev;
  }
  bool HasEvent(const std::string& involved, const std::string& reason) {
    auto r = server_->Http("GET", kApi + "/events");
    if (r.code != 200) return false;
    json events = json::parse(r.body);
    for (const auto& e : events["items"]) {
      if (e["involvedObject"].value("name", "") == involved && e.value("reason", "") == reason) return true;
    }
    return false;
  }

  TempDir dir_;
  fs::path srv_, work_;
  ReservedPort daemon_port_, agent_port_;
  Child daemon_;
  std::unique_ptr<ServerProcess> server_;
};

std::string Net() {
  return "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: gnet}\nspec: {cidr: 10.82.0.0/24, mode: nat}\n";
}
std::string KernelImage(const std::string& file) {
  return "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: kernel}\nspec: {type: kernel, source: {url: "
         "\"file://" + file + "\"}}\n";
}
std::string Instance(const std::string& name, const std::string& type, const std::string& tier = "front") {
  return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name + ", labels: {tier: " + tier +
         "}}\nspec:\n  instanceType: " + type + "\n  kernelImage: kernel\n  networks: [{network: gnet}]\n";
}

TEST_F(GitOpsTest, RepositoryConvergesFollowsChangesAndReportsErrors) {
  // A Network, an Image and two Instances (one file holds two documents), and a README that is not a manifest.
  Write("apps/network.yaml", Net());
  Write("apps/images/kernel.yaml", KernelImage((dir_.path() / "vmlinuz").string()));
  Write("apps/web.yaml", Instance("web-1", "m1.small") + "---\n" + Instance("web-2", "m1.small"));
  Write("apps/README.md", "# not a manifest\n");
  Write("other/ignored.yaml", Instance("outside-path", "m1.small"));
  std::string rev1 = Push("first");
  ApplySource("app", "{url: \"" + Url() + "\", path: apps, interval: 1s}");

  ASSERT_TRUE(Eventually([&] { return AppliedRevision(rev1); }, 60)) << Source().dump(2);
  json src = Source();
  EXPECT_EQ(ReadyReason(src), "True/Applied") << src.dump(2);
  EXPECT_EQ(src["status"]["inventory"],
            json::array({"Image/kernel", "Instance/web-1", "Instance/web-2", "Network/gnet"}));
  EXPECT_EQ(src["status"]["skipped"], json::array({"apps/README.md"})) << src.dump(2);
  // They boot (the test driver's domains), and the objects carry the source label and the gitops field manager.
  for (const char* name : {"web-1", "web-2"}) {
    ASSERT_TRUE(Eventually([&] { return Get(std::string("/instances/") + name)["status"].value("phase", "") == "Running"; }, 90))
        << Get(std::string("/instances/") + name).dump(2);
  }
  json web1 = Get("/instances/web-1");
  EXPECT_EQ(web1["metadata"]["labels"].value("gitops.stratus.io/source", ""), "app");
  bool gitops_manager = false;
  for (const auto& m : web1["metadata"]["managedFields"]) {
    gitops_manager |= m.value("manager", "") == "stratus-gitops" && m.value("operation", "") == "Apply";
  }
  EXPECT_TRUE(gitops_manager) << web1["metadata"].dump(2);
  EXPECT_TRUE(Get("/instances/outside-path").is_null());  // outside spec.path
  // stratusctl shows it: URL, revision, last applied, ready.
  auto g = server_->Ctl({"get", "manifestsources"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  for (const char* col : {"URL", "REVISION", "LAST APPLIED", "READY"}) EXPECT_NE(g.out.find(col), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(rev1.substr(0, 12)), std::string::npos) << g.out;

  // A changed instance type is applied.
  Write("apps/web.yaml", Instance("web-1", "m1.large") + "---\n" + Instance("web-2", "m1.small"));
  std::string rev2 = Push("web-1 grows");
  ASSERT_TRUE(Eventually([&] { return Get("/instances/web-1")["spec"].value("instanceType", "") == "m1.large"; }, 60))
      << Source().dump(2);

  // A removed file is pruned: web-2 leaves, web-1 stays.
  Write("apps/web.yaml", Instance("web-1", "m1.large"));
  std::string rev3 = Push("web-2 goes");
  ASSERT_TRUE(Eventually([&] { return Get("/instances/web-2").is_null(); }, 90)) << Source().dump(2);
  EXPECT_FALSE(Get("/instances/web-1").is_null());
  ASSERT_TRUE(Eventually([&] { return AppliedRevision(rev3); }, 30));
  EXPECT_EQ(Source()["status"]["inventory"], json::array({"Image/kernel", "Instance/web-1", "Network/gnet"}));
  EXPECT_TRUE(HasEvent("app", "Pruned"));

  // A change by hand is put back at the next interval, and an Event on the object says what was reverted.
  auto p = server_->Http("PATCH", kApi + "/instances/web-1", R"({"metadata":{"labels":{"tier":"back"}}})",
                         "application/merge-patch+json");
  ASSERT_EQ(p.code, 200) << p.body;
  ASSERT_TRUE(Eventually([&] { return Get("/instances/web-1")["metadata"]["labels"].value("tier", "") == "front"; }, 60));
  ASSERT_TRUE(Eventually([&] { return HasEvent("web-1", "DriftReverted"); }, 30));

  // A broken manifest: reported on the source; a new object beside it still converges; nothing is pruned.
  Write("apps/broken.yaml", "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: [oops\n");
  Write("apps/sg.yaml", "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: web}\n"
                        "spec: {ingress: [{protocol: tcp, fromPort: 80, cidr: 0.0.0.0/0}]}\n");
  std::string rev4 = Push("broken");
  ASSERT_TRUE(Eventually([&] { return AppliedRevision(rev4); }, 60)) << Source().dump(2);
  src = Source();
  EXPECT_EQ(ReadyReason(src), "False/ApplyFailed") << src.dump(2);
  ASSERT_TRUE(src["status"]["errors"].is_array()) << src.dump(2);
  EXPECT_EQ(src["status"]["errors"][0].value("object", ""), "apps/broken.yaml") << src.dump(2);
  EXPECT_NE(ReadyMessage(src).find("apps/broken.yaml"), std::string::npos) << ReadyMessage(src);
  EXPECT_FALSE(Get("/securitygroups/web").is_null());
  EXPECT_FALSE(Get("/instances/web-1").is_null());

  // A force-pushed history (the broken commit rewritten away) is followed.
  ASSERT_EQ(Git({"reset", "-q", "--hard", rev3}).exit_code, 0);
  Write("apps/sg.yaml", "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: web}\n"
                        "spec: {ingress: [{protocol: tcp, fromPort: 443, cidr: 0.0.0.0/0}]}\n");
  std::string rev5 = Push("rewritten", /*force=*/true);
  ASSERT_NE(rev5, rev4);
  ASSERT_TRUE(Eventually([&] { return AppliedRevision(rev5); }, 60)) << Source().dump(2);
  EXPECT_EQ(ReadyReason(Source()), "True/Applied") << Source().dump(2);
  EXPECT_EQ(Get("/securitygroups/web")["spec"]["ingress"][0].value("fromPort", 0), 443);

  // Deleting the source (prune: true by default) deletes what it applied.
  auto d = server_->Ctl({"delete", "manifestsource", "app"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_TRUE(Eventually([&] { return Source().is_null() && Get("/securitygroups/web").is_null() &&
                                      Get("/networks/gnet").is_null(); }, 90))
      << Source().dump(2);
}

TEST_F(GitOpsTest, BadInputIsReportedAndNothingElseIsTouched) {
  // A repository that mixes good and bad manifests.
  Write("ok.yaml", "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: ok}\nspec: {}\n");
  Write("notes.txt", "not yaml at all: [\n");
  Write("gadget.yaml", "apiVersion: stratus.io/v1\nkind: Gadget\nmetadata: {name: g}\n");
  Write("flavor.yaml", "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: evil}\nspec: {vcpus: 64, memoryMiB: 1}\n");
  Write("elsewhere.yaml", "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: x, namespace: kube-system}\nspec: {}\n");
  Write("invalid.yaml", "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: bad}\nspec: {ingress: [{protocol: sctp, cidr: 0.0.0.0/0}]}\n");
  std::string rev = Push("mixed");
  ApplySource("mixed", "{url: \"" + Url() + "\", interval: 1s}");
  ASSERT_TRUE(Eventually([&] { return AppliedRevision(rev, "mixed"); }, 60)) << Source("mixed").dump(2);
  json src = Source("mixed");
  EXPECT_EQ(ReadyReason(src), "False/ApplyFailed");
  std::map<std::string, std::string> errors;
  for (const auto& e : src["status"]["errors"]) errors[e.value("object", "")] = e.value("message", "");
  EXPECT_NE(errors["gadget.yaml"].find("no kind \"Gadget\""), std::string::npos) << src.dump(2);
  EXPECT_NE(errors["flavor.yaml"].find("cluster-scoped"), std::string::npos) << src.dump(2);
  EXPECT_NE(errors["elsewhere.yaml"].find("applies only there"), std::string::npos) << src.dump(2);
  EXPECT_NE(errors["SecurityGroup/bad"].find("protocol"), std::string::npos) << src.dump(2);
  EXPECT_EQ(errors.size(), 4u) << src.dump(2);
  EXPECT_EQ(src["status"]["skipped"], json::array({"notes.txt"}));
  EXPECT_FALSE(Get("/securitygroups/ok").is_null());  // the good one is applied
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/instancetypes/evil").code, 404);
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/namespaces/kube-system/securitygroups/x").code, 404);

  // Unreachable: nothing listens on the port.
  ReservedPort closed = ReservePort();
  ApplySource("gone", "{url: \"git://127.0.0.1:" + std::to_string(closed.port()) + "/app.git\", interval: 1s}");
  ASSERT_TRUE(Eventually([&] { return ReadyReason(Source("gone")) == "False/FetchFailed"; }, 30)) << Source("gone").dump(2);
  EXPECT_NE(ReadyMessage(Source("gone")).find("127.0.0.1"), std::string::npos) << ReadyMessage(Source("gone"));

  // Refused credentials: an http server that answers every request with 401.
  ReservedPort http_port = ReservePort();
  Child http;
  http.pid = SpawnLogged(
      {"/usr/bin/python3", "-c",
       "import http.server, socket, sys\n"
       "class H(http.server.BaseHTTPRequestHandler):\n"
       "  def do_GET(self):\n"
       "    self.send_response(401); self.send_header('WWW-Authenticate', 'Basic realm=\"git\"');\n"
       "    self.send_header('Content-Length', '0'); self.end_headers()\n"
       "class S(http.server.HTTPServer):\n"
       "  allow_reuse_address = True\n"
       "S(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n",
       std::to_string(http_port.port())},
      (dir_.path() / "http.log").string());
  auto sec = server_->Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: Secret\nmetadata: {name: creds}\n"
                                                "stringData: {username: bot, password: wrong-token}\n");
  ASSERT_EQ(sec.exit_code, 0) << sec.err;
  json stored = Get("/secrets/creds");
  EXPECT_FALSE(stored.contains("stringData"));
  EXPECT_EQ(stored["data"].value("password", ""), "d3JvbmctdG9rZW4=");  // base64 of wrong-token
  ApplySource("locked", "{url: \"http://127.0.0.1:" + std::to_string(http_port.port()) +
                            "/app.git\", interval: 1s, secretRef: {name: creds}}");
  ASSERT_TRUE(Eventually([&] { return ReadyReason(Source("locked")) == "False/AuthenticationFailed"; }, 30))
      << Source("locked").dump(2) << ReadFile(dir_.path() / "http.log");
  EXPECT_NE(ReadyMessage(Source("locked")).find("refused the credentials"), std::string::npos)
      << ReadyMessage(Source("locked"));
  // A missing Secret is named.
  ApplySource("nosecret", "{url: \"" + Url() + "\", interval: 1s, secretRef: {name: missing}}");
  ASSERT_TRUE(Eventually([&] { return ReadyReason(Source("nosecret")) == "False/CredentialsUnavailable"; }, 30));
  EXPECT_NE(ReadyMessage(Source("nosecret")).find("\"missing\""), std::string::npos);

  // Specs the API refuses outright, naming the field; nothing is stored.
  for (const auto& [spec, field] : std::vector<std::pair<std::string, std::string>>{
           {"{url: \"ftp://example.com/x.git\"}", "spec.url"},
           {"{url: \"" + Url() + "\", path: ../etc}", "spec.path"},
           {"{url: \"" + Url() + "\", interval: soon}", "spec.interval"},
           {"{url: \"" + Url() + "\", branch: main, tag: v1}", "spec"}}) {
    auto r = server_->Ctl({"apply", "-f", "-"},
                          "apiVersion: stratus.io/v1\nkind: ManifestSource\nmetadata: {name: refused}\nspec: " + spec + "\n");
    EXPECT_NE(r.exit_code, 0) << spec;
    EXPECT_NE(r.err.find(field), std::string::npos) << spec << ": " << r.err;
  }
  EXPECT_TRUE(Source("refused").is_null());
}

}  // namespace
}  // namespace stratus::testing
