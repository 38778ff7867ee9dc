// The client config (kubeconfig format) with the real stratusctl against the real stratusd: a config file
// instead of --server, switching contexts, editing contexts, redacted views, and a generated kubeconfig that
// kubectl itself can use.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "harness.h"
#include "stratus/core/base64.h"
#include "stratus/core/yaml.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;

const std::string kApi = "/apis/stratus.io/v1";

json Instance(const std::string& name) {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Instance"},
          {"metadata", {{"name", name}}},
          {"spec", {{"image", "debian"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}}}};
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.log();
    token_ = server_.token();  // the server's admin: the configs below authenticate with it
    ASSERT_FALSE(token_.empty());
    ASSERT_NE(dead_.port(), 0) << dead_.error();
    ASSERT_EQ(server_.Http("POST", kApi + "/namespaces/default/instances", Instance("web-1").dump()).code, 201);
    home_ = dir_.path() / "home";
    fs::create_directories(home_);
  }

  // stratusctl with no --server, HOME in the test's directory and the STRATUS_* variables cleared (empty is
  // unset to stratusctl), plus `env`.
  RunResult Ctl(std::vector<std::string> args, std::vector<std::string> env = {}) const {
    args.insert(args.begin(), StratusctlBin());
    std::vector<std::string> e = {"HOME=" + home_.string(), "STRATUS_SERVER=", "STRATUS_TOKEN=", "STRATUS_CONFIG="};
    e.insert(e.end(), env.begin(), env.end());
    return testing::Run(args, "", e);
  }

  std::string WriteFile(const std::string& name, const std::string& text) const {
    fs::path p = dir_.path() / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  // A config with a context `good` (this test's server, current) and `bad` (a port nobody listens on).
  std::string TwoContexts(const std::string& name = "config") const {
    return WriteFile(name, "apiVersion: v1\nkind: Config\n"
                           "clusters:\n"
                           "- name: good\n  cluster:\n    server: " + server_.url() + "\n"
                           "- name: bad\n  cluster:\n    server: http://" + dead_.hostport() + "\n"
                           "users:\n- name: admin\n  user:\n    token: " + token_ + "\n"
                           "contexts:\n"
                           "- name: good\n  context: {cluster: good, user: admin, namespace: default}\n"
                           "- name: bad\n  context: {cluster: bad, user: admin}\n"
                           "current-context: good\n");
  }

  TempDir dir_;
  ServerProcess server_{dir_.path() / "data"};
  ReservedPort dead_ = ReservePort();  // bound, never listening: connections are refused
  fs::path home_;
  std::string token_;
};

TEST_F(ConfigTest, ConfigFileReplacesServerFlag) {
  std::string cfg = TwoContexts();
  auto r = Ctl({"--config", cfg, "get", "instances"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("web-1"), std::string::npos) << r.out;

  auto env = Ctl({"get", "instances"}, {"STRATUS_CONFIG=" + cfg});
  ASSERT_EQ(env.exit_code, 0) << env.out << env.err;
  EXPECT_NE(env.out.find("web-1"), std::string::npos);

  // The default file, ~/.stratus/config.
  fs::create_directories(home_ / ".stratus");
  fs::copy_file(cfg, home_ / ".stratus" / "config");
  auto def = Ctl({"get", "instances"});
  ASSERT_EQ(def.exit_code, 0) << def.out << def.err;
  EXPECT_NE(def.out.find("web-1"), std::string::npos);

  // A missing file named explicitly is an error; a missing default one is an empty config.
  auto missing = Ctl({"--config", (dir_.path() / "nope").string(), "get", "instances"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find((dir_.path() / "nope").string()), std::string::npos) << missing.err;
  fs::remove(home_ / ".stratus" / "config");
  auto empty = Ctl({"config", "view"});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_NE(empty.out.find("kind: Config"), std::string::npos) << empty.out;
}

TEST_F(ConfigTest, PrecedenceOfFlagsEnvAndContext) {
  std::string cfg = TwoContexts();
  // The context says bad; the environment and the flag each win over it.
  auto bad = Ctl({"--config", cfg, "--context", "bad", "get", "instances"});
  EXPECT_NE(bad.exit_code, 0) << bad.out;
  auto env = Ctl({"--config", cfg, "--context", "bad", "get", "instances"}, {"STRATUS_SERVER=" + server_.url()});
  EXPECT_EQ(env.exit_code, 0) << env.out << env.err;
  auto flag = Ctl({"--config", cfg, "--context", "bad", "--server", server_.url(), "get", "instances"},
                  {"STRATUS_SERVER=http://" + dead_.hostport()});
  EXPECT_EQ(flag.exit_code, 0) << flag.out << flag.err;
  auto no_ctx = Ctl({"--config", cfg, "--context", "nope", "get", "instances"});
  EXPECT_NE(no_ctx.exit_code, 0);
  EXPECT_NE(no_ctx.err.find("\"nope\""), std::string::npos) << no_ctx.err;
}

TEST_F(ConfigTest, UseContextSwitches) {
  std::string cfg = TwoContexts();
  auto use_bad = Ctl({"--config", cfg, "config", "use-context", "bad"});
  ASSERT_EQ(use_bad.exit_code, 0) << use_bad.err;
  EXPECT_NE(use_bad.out.find("Switched to context \"bad\""), std::string::npos);
  auto cur = Ctl({"--config", cfg, "config", "current-context"});
  EXPECT_EQ(cur.out, "bad\n");
  auto fails = Ctl({"--config", cfg, "get", "instances"});
  EXPECT_NE(fails.exit_code, 0) << fails.out;
  EXPECT_EQ(fails.err.find(token_), std::string::npos) << "the token leaked into an error: " << fails.err;

  ASSERT_EQ(Ctl({"--config", cfg, "config", "use-context", "good"}).exit_code, 0);
  auto works = Ctl({"--config", cfg, "get", "instances"});
  EXPECT_EQ(works.exit_code, 0) << works.out << works.err;
  EXPECT_NE(works.out.find("web-1"), std::string::npos);

  auto absent = Ctl({"--config", cfg, "config", "use-context", "nope"});
  EXPECT_NE(absent.exit_code, 0);
  EXPECT_NE(absent.err.find("\"nope\""), std::string::npos) << absent.err;
  EXPECT_EQ(Ctl({"--config", cfg, "config", "current-context"}).out, "good\n");
}

TEST_F(ConfigTest, SetClusterCredentialsContextThenGetContexts) {
  std::string cfg = (dir_.path() / "new" / "config").string();  // created by the first set-*
  auto c = Ctl({"--config", cfg, "config", "set-cluster", "local", "--server", server_.url()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("Cluster \"local\" set."), std::string::npos);
  ASSERT_EQ(Ctl({"--config", cfg, "config", "set-credentials", "me", "--token", token_}).exit_code, 0);
  auto x = Ctl({"--config", cfg, "config", "set-context", "team", "--cluster", "local", "--user", "me", "--namespace",
                "team"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  EXPECT_NE(x.out.find("Context \"team\" created."), std::string::npos) << x.out;
  ASSERT_EQ(Ctl({"--config", cfg, "config", "set-context", "other", "--cluster", "local"}).exit_code, 0);
  ASSERT_EQ(Ctl({"--config", cfg, "config", "use-context", "team"}).exit_code, 0);
  auto m = Ctl({"--config", cfg, "config", "set-context", "--current", "--user", "me"});
  EXPECT_NE(m.out.find("Context \"team\" modified."), std::string::npos) << m.out << m.err;

  struct stat st {};
  ASSERT_EQ(::stat(cfg.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto g = Ctl({"--config", cfg, "config", "get-contexts"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  std::istringstream lines(g.out);
  std::string header, first, second;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_EQ(header.substr(0, 7), "CURRENT");
  EXPECT_NE(header.find("AUTHINFO"), std::string::npos);
  EXPECT_EQ(first.substr(0, 1), " ") << g.out;  // "other", sorted first, not current
  EXPECT_NE(first.find("other"), std::string::npos);
  EXPECT_EQ(second.substr(0, 1), "*") << g.out;
  EXPECT_NE(second.find("team"), std::string::npos);
  EXPECT_NE(second.find("local"), std::string::npos);

  // The context's namespace is the default one for commands.
  ASSERT_EQ(server_.Http("POST", kApi + "/namespaces",
                         json{{"apiVersion", "stratus.io/v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "team"}}}}.dump())
                .code,
            201);
  ASSERT_EQ(server_.Http("POST", kApi + "/namespaces/team/instances", Instance("team-vm").dump()).code, 201);
  auto in_team = Ctl({"--config", cfg, "get", "instances"});
  ASSERT_EQ(in_team.exit_code, 0) << in_team.err;
  EXPECT_NE(in_team.out.find("team-vm"), std::string::npos) << in_team.out;
  EXPECT_EQ(in_team.out.find("web-1"), std::string::npos) << in_team.out;
  auto flag_ns = Ctl({"--config", cfg, "-n", "default", "get", "instances"});
  EXPECT_NE(flag_ns.out.find("web-1"), std::string::npos) << flag_ns.out << flag_ns.err;
}

TEST_F(ConfigTest, ViewRedactsTheTokenUnlessRaw) {
  std::string cfg = TwoContexts();
  auto v = Ctl({"--config", cfg, "config", "view"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.out.find(token_), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("token: REDACTED"), std::string::npos) << v.out;
  auto raw = Ctl({"--config", cfg, "config", "view", "--raw"});
  EXPECT_NE(raw.out.find(token_), std::string::npos) << raw.out;
  auto min = Ctl({"--config", cfg, "--context", "bad", "config", "view", "--minify", "-o", "json"});
  ASSERT_EQ(min.exit_code, 0) << min.err;
  json doc = json::parse(min.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << min.out;
  ASSERT_EQ(doc["contexts"].size(), 1u);
  EXPECT_EQ(doc["contexts"][0]["name"], "bad");
  EXPECT_EQ(doc["clusters"][0]["name"], "bad");
}

TEST_F(ConfigTest, KubeconfigIsSelfContainedAndKubectlUsesIt) {
  // A real CA certificate (its key is not needed: the server here speaks plain HTTP).
  fs::path ca = dir_.path() / "ca.pem";
  auto gen = testing::Run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", (dir_.path() / "ca.key").string(), "-out", ca.string(), "-days", "1", "-subj",
                  "/CN=stratus-test-ca"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  std::string cfg = TwoContexts();
  ASSERT_EQ(Ctl({"--config", cfg, "config", "set-cluster", "good", "--certificate-authority", ca.string()}).exit_code, 0);
  // The CA file of the context goes to the client (it is readable; a plain-HTTP server does not use it).
  auto get = Ctl({"--config", cfg, "get", "instances"});
  ASSERT_EQ(get.exit_code, 0) << get.err;

  auto k = Ctl({"--config", cfg, "config", "kubeconfig"});
  ASSERT_EQ(k.exit_code, 0) << k.err;
  auto docs = ParseYamlDocuments(k.out);
  ASSERT_TRUE(docs.ok() && docs->size() == 1) << k.out;
  const json& doc = docs->front();
  EXPECT_EQ(doc["current-context"], "good");
  ASSERT_EQ(doc["clusters"].size(), 1u);
  EXPECT_EQ(doc["clusters"][0]["cluster"]["server"], server_.url());
  EXPECT_EQ(doc["clusters"][0]["cluster"]["certificate-authority-data"], Base64Encode(ReadFile(ca)));
  EXPECT_FALSE(doc["clusters"][0]["cluster"].contains("certificate-authority"));
  EXPECT_EQ(doc["users"][0]["user"]["token"], token_);
  std::string kubeconfig = WriteFile("kubeconfig", k.out);

  // The embedded CA works for stratusctl too (written to a private temporary file for the client).
  auto self = Ctl({"--config", kubeconfig, "get", "instances"});
  EXPECT_EQ(self.exit_code, 0) << self.err;
  EXPECT_NE(self.out.find("web-1"), std::string::npos);

  // A CA file that is gone is reported by name.
  fs::rename(ca, dir_.path() / "moved.pem");
  auto gone = Ctl({"--config", cfg, "config", "kubeconfig"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.err.find(ca.string()), std::string::npos) << gone.err;

  // kubectl with such a kubeconfig (it sends tokens over https only): tests/integration/auth_test.cpp.
}

}  // namespace
}  // namespace stratus::testing
