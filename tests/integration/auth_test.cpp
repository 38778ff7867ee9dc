// Tenancy over HTTP: two users in two namespaces, every kind and verb allowed and denied as their roles say,
// -A lists, 401 for wrong/expired/revoked tokens, a node credential's lane, the audit log, per-user rate limits
// and `stratusctl auth can-i`.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <regex>

#include "harness.h"

namespace stratus::testing {
namespace {

const std::string kApi = "/apis/stratus.io/v1";

std::string Ns(const std::string& ns, const std::string& plural, const std::string& name = "") {
  return kApi + "/namespaces/" + ns + "/" + plural + (name.empty() ? "" : "/" + name);
}

// A valid object of each namespaced cloud kind.
json Object(const std::string& kind, const std::string& name) {
  json spec;
  if (kind == "Instance") spec = {{"image", "debian"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 64}}}};
  if (kind == "Volume") spec = {{"size", "1Gi"}};
  if (kind == "Network") spec = {{"cidr", "10.70.0.0/24"}, {"mode", "isolated"}};
  if (kind == "Image") spec = {{"type", "disk"}};
  if (kind == "KeyPair") spec = {{"publicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 k"}};
  if (kind == "SecurityGroup") spec = json::object();
  return {{"apiVersion", "stratus.io/v1"}, {"kind", kind}, {"metadata", {{"name", name}}}, {"spec", spec}};
}

const std::vector<std::pair<std::string, std::string>>& CloudKinds() {
  static const std::vector<std::pair<std::string, std::string>> k = {
      {"Instance", "instances"}, {"Volume", "volumes"},   {"Network", "networks"},
      {"Image", "images"},       {"KeyPair", "keypairs"}, {"SecurityGroup", "securitygroups"}};
  return k;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.log();
    alice_ = server_.MakeUser("alice", "team-a", "member");
    bob_ = server_.MakeUser("bob", "team-b", "member");
    carol_ = server_.MakeUser("carol", "team-a", "viewer");
    ASSERT_FALSE(alice_.empty());
    ASSERT_FALSE(bob_.empty());
    ASSERT_FALSE(carol_.empty());
  }
  // Every request a tenant can make on one object of a kind: {what, method, path, body, content type}.
  struct Call {
    std::string what, method, path, body, ct;
  };
  std::vector<Call> Calls(const std::string& ns, const std::string& kind, const std::string& plural,
                          const std::string& name) {
    json obj = Object(kind, name);
    std::vector<Call> c = {
        {"create", "POST", Ns(ns, plural), obj.dump(), "application/json"},
        {"get", "GET", Ns(ns, plural, name), "", ""},
        {"list", "GET", Ns(ns, plural), "", ""},
        {"watch", "GET", Ns(ns, plural) + "?watch=true&timeoutSeconds=1", "", ""},
        {"patch", "PATCH", Ns(ns, plural, name), R"({"metadata":{"labels":{"x":"y"}}})", "application/merge-patch+json"},
        {"update", "PUT", Ns(ns, plural, name), obj.dump(), "application/json"},
    };
    if (kind == "Instance" || kind == "Volume" || kind == "Network" || kind == "Image") {
      c.push_back({"status", "PATCH", Ns(ns, plural, name) + "/status", R"({"status":{"phase":"Ready"}})",
                   "application/merge-patch+json"});
    }
    if (kind == "Image") c.push_back({"upload", "PUT", Ns(ns, plural, name) + "/upload", "data", "application/octet-stream"});
    if (kind == "Instance") c.push_back({"log", "GET", Ns(ns, plural, name) + "/log", "", ""});
    c.push_back({"delete", "DELETE", Ns(ns, plural, name), "", ""});
    return c;
  }

  TempDir dir_;
  ServerProcess server_{dir_.path() / "data", {"--user-qps", "0", "--log-level", "debug"}};
  std::string alice_, bob_, carol_;
};

TEST_F(AuthTest, EveryKindAndVerbAsTheRolesSay) {
  for (const auto& [kind, plural] : CloudKinds()) {
    for (const Call& c : Calls("team-a", kind, plural, "obj")) {
      SCOPED_TRACE(kind + " " + c.what);
      // Bob (member of team-b) can do nothing in team-a, and the answer is the same whether or not the object
      // exists: 403 naming him, the verb and the resource.
      auto b = server_.HttpAs(bob_, c.method, c.path, c.body, c.ct);
      EXPECT_EQ(b.code, 403) << b.body;
      EXPECT_NE(b.Json().value("message", "").find("User \"bob\" cannot"), std::string::npos) << b.body;
      EXPECT_NE(b.Json().value("message", "").find("in the namespace \"team-a\""), std::string::npos) << b.body;
      // Alice (member) may do everything but write status, which is the cloud's.
      auto a = server_.HttpAs(alice_, c.method, c.path, c.body, c.ct);
      if (c.what == "status") {
        EXPECT_EQ(a.code, 403) << a.body;
      } else {
        EXPECT_NE(a.code, 403) << a.body;
        EXPECT_NE(a.code, 401) << a.body;
        if (c.what == "create") EXPECT_EQ(a.code, 201) << a.body;
        if (c.what == "get" || c.what == "list" || c.what == "patch") EXPECT_EQ(a.code, 200) << a.body;
      }
      // Carol (viewer) reads and watches, and writes nothing.
      auto v = server_.HttpAs(carol_, c.method, c.path, c.body, c.ct);
      bool read = c.method == "GET";
      if (read) {
        EXPECT_NE(v.code, 403) << v.body;
      } else {
        EXPECT_EQ(v.code, 403) << v.body;
      }
    }
    // What bob sees of an object that exists is what he sees of one that does not.
    ASSERT_EQ(server_.HttpAs(alice_, "POST", Ns("team-a", plural), Object(kind, "there").dump()).code, 201);
    auto exists = server_.HttpAs(bob_, "GET", Ns("team-a", plural, "there"));
    auto missing = server_.HttpAs(bob_, "GET", Ns("team-a", plural, "nowhere"));
    EXPECT_EQ(exists.code, 403);
    EXPECT_EQ(missing.code, 403);
    EXPECT_EQ(std::regex_replace(exists.body, std::regex("there"), "X"),
              std::regex_replace(missing.body, std::regex("nowhere"), "X"));
  }
}

TEST_F(AuthTest, AllNamespacesAndClusterKindsNeedAClusterRole) {
  ASSERT_EQ(server_.HttpAs(alice_, "POST", Ns("team-a", "volumes"), Object("Volume", "va").dump()).code, 201);
  ASSERT_EQ(server_.HttpAs(bob_, "POST", Ns("team-b", "volumes"), Object("Volume", "vb").dump()).code, 201);
  // -A: refused to tenants (never a partial list that shows another namespace), served to the admin.
  for (const std::string& path : {kApi + "/volumes", kApi + "/volumes?watch=true&timeoutSeconds=1"}) {
    auto r = server_.HttpAs(alice_, "GET", path);
    EXPECT_EQ(r.code, 403) << path << " " << r.body;
    EXPECT_EQ(r.body.find("vb"), std::string::npos);
  }
  auto all = server_.Http("GET", kApi + "/volumes").Json();
  ASSERT_EQ(all["items"].size(), 2u);
  // The CLI's -A says the same.
  auto ctl = server_.CtlAs(alice_, {"get", "volumes", "-A"});
  EXPECT_NE(ctl.exit_code, 0);
  EXPECT_NE(ctl.err.find("forbidden"), std::string::npos) << ctl.err;
  EXPECT_EQ(ctl.out.find("vb"), std::string::npos);
  // Cluster-scoped kinds: read InstanceTypes and yourself; nothing else.
  EXPECT_EQ(server_.HttpAs(alice_, "GET", kApi + "/instancetypes").code, 200);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", kApi + "/users/alice").code, 200);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", kApi + "/users/bob").code, 403);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", kApi + "/namespaces/team-a").code, 200);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", kApi + "/namespaces/team-b").code, 403);
  for (const std::string& plural : {"nodes", "namespaces", "users", "tokens", "accesskeys", "clusterrolebindings"}) {
    EXPECT_EQ(server_.HttpAs(alice_, "GET", kApi + "/" + plural).code, 403) << plural;
  }
  EXPECT_EQ(server_.HttpAs(alice_, "POST", kApi + "/users", json{{"metadata", {{"name", "eve"}}}}.dump()).code, 403);
  EXPECT_EQ(server_.HttpAs(alice_, "POST", kApi + "/tokens", json{{"spec", {{"user", "admin"}}}}.dump()).code, 403);
  EXPECT_EQ(server_.HttpAs(alice_, "POST", kApi + "/clusterrolebindings",
                           json{{"metadata", {{"name", "x"}}}, {"spec", {{"user", "alice"}, {"role", "cluster-admin"}}}}.dump())
                .code,
            403);
  // A member cannot grant roles; discovery is open to every signed-in user; metrics are not.
  EXPECT_EQ(server_.HttpAs(alice_, "POST", Ns("team-a", "rolebindings"),
                           json{{"metadata", {{"name", "x"}}}, {"spec", {{"user", "bob"}, {"role", "admin"}}}}.dump())
                .code,
            403);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", "/apis/stratus.io/v1").code, 200);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", "/metrics").code, 403);
  EXPECT_EQ(server_.Http("GET", "/metrics").code, 200);
  EXPECT_EQ(server_.HttpAs("", "GET", "/healthz").code, 200);  // probes need no token
}

TEST_F(AuthTest, WrongExpiredAndRevokedTokensGet401) {
  EXPECT_EQ(server_.HttpAs("", "GET", Ns("team-a", "instances")).code, 401);
  std::string wrong = alice_;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  auto w = server_.HttpAs(wrong, "GET", Ns("team-a", "instances"));
  EXPECT_EQ(w.code, 401);
  EXPECT_EQ(w.headers["WWW-Authenticate"], "Bearer realm=\"stratus\"");
  EXPECT_EQ(server_.HttpAs("garbage", "GET", "/apis").code, 401);
  // Expired: a token whose expiresAt has passed.
  auto made = server_.Http("POST", kApi + "/tokens",
                           json{{"metadata", {{"name", "alice-old"}}},
                                {"spec", {{"user", "alice"}, {"expiresAt", "2020-01-01T00:00:00Z"}}}}.dump());
  ASSERT_EQ(made.code, 201) << made.body;
  std::string old = made.Json()["status"].value("token", "");
  ASSERT_EQ(old.rfind("alice-old.", 0), 0u);
  EXPECT_EQ(server_.HttpAs(old, "GET", Ns("team-a", "instances")).code, 401);
  // The token is shown once: reading the Token back shows only its hash.
  auto back = server_.Http("GET", kApi + "/tokens/alice-old");
  EXPECT_EQ(back.body.find(old.substr(old.find('.') + 1)), std::string::npos);
  EXPECT_FALSE(back.Json().contains("status"));
  // Revoked: deleting the Token.
  ASSERT_EQ(server_.HttpAs(alice_, "GET", Ns("team-a", "instances")).code, 200);
  std::string name = alice_.substr(0, alice_.find('.'));
  ASSERT_EQ(server_.Http("DELETE", kApi + "/tokens/" + name).code, 200);
  EXPECT_EQ(server_.HttpAs(alice_, "GET", Ns("team-a", "instances")).code, 401);
  // A disabled user's tokens stop working.
  ASSERT_EQ(server_.HttpAs(bob_, "GET", Ns("team-b", "instances")).code, 200);
  ASSERT_EQ(server_.Http("PATCH", kApi + "/users/bob", R"({"spec":{"disabled":true}})", "application/merge-patch+json").code, 200);
  EXPECT_EQ(server_.HttpAs(bob_, "GET", Ns("team-b", "instances")).code, 401);
}

TEST_F(AuthTest, CanIAnswersPerNamespace) {
  // A token made with stratusctl, printed once.
  auto made = server_.Ctl({"create", "token", "alice-cli", "--user", "alice"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string cli_token = made.out.substr(0, made.out.find('\n'));
  ASSERT_EQ(cli_token.rfind("alice-cli.", 0), 0u) << made.out;
  auto yes = server_.CtlAs(cli_token, {"auth", "can-i", "create", "instances", "-n", "team-a"});
  EXPECT_EQ(yes.exit_code, 0) << yes.err;
  EXPECT_EQ(yes.out, "yes\n");
  auto no = server_.CtlAs(alice_, {"auth", "can-i", "create", "instances", "-n", "team-b"});
  EXPECT_EQ(no.exit_code, 1);
  EXPECT_EQ(no.out, "no\n");
  EXPECT_NE(no.err.find("cannot create resource \"instances\""), std::string::npos) << no.err;
  EXPECT_EQ(server_.CtlAs(carol_, {"auth", "can-i", "delete", "volume/v1", "-n", "team-a"}).out, "no\n");
  EXPECT_EQ(server_.CtlAs(carol_, {"auth", "can-i", "watch", "volumes", "-n", "team-a"}).out, "yes\n");
  EXPECT_EQ(server_.CtlAs(alice_, {"auth", "can-i", "list", "instances", "-A"}).out, "no\n");
  EXPECT_EQ(server_.Ctl({"auth", "can-i", "list", "instances", "-A"}).out, "yes\n");
  EXPECT_EQ(server_.CtlAs(alice_, {"auth", "can-i", "fly", "instances"}).exit_code, 2);
}

TEST_F(AuthTest, AuditLogHoldsWritesAndDenialsAndNoSecret) {
  ASSERT_EQ(server_.HttpAs(alice_, "POST", Ns("team-a", "volumes"), Object("Volume", "audited").dump()).code, 201);
  ASSERT_EQ(server_.HttpAs(bob_, "DELETE", Ns("team-a", "volumes", "audited")).code, 403);
  ASSERT_EQ(server_.HttpAs("nope", "GET", Ns("team-a", "volumes")).code, 401);
  std::string audit;
  bool created = false, denied = false, unauthenticated = false;
  // Each request's line is written before its answer (a denial's at its answer): wait until all three are there.
  auto scan = [&] {
    audit = ReadFile(dir_.path() / "data" / "audit.log");
    created = denied = unauthenticated = false;
    std::istringstream lines(audit);
    for (std::string line; std::getline(lines, line);) {
      json e = json::parse(line, nullptr, false);
      if (!e.is_object()) continue;
      created |= e["user"] == "alice" && e["verb"] == "create" && e["resource"] == "volumes" && e["code"] == 201 &&
                 e["namespace"] == "team-a" && e["name"] == "audited";
      denied |= e["user"] == "bob" && e["verb"] == "delete" && e["code"] == 403 && e["name"] == "audited";
      unauthenticated |= e["user"] == "" && e["code"] == 401;
    }
    return created && denied && unauthenticated;
  };
  ASSERT_TRUE(Eventually(scan, 10, 20)) << audit;
  std::istringstream lines(audit);
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line, nullptr, false);
    ASSERT_TRUE(e.is_object()) << line;
    for (const char* f : {"time", "user", "sourceIP", "verb", "resource", "namespace", "name", "code"}) {
      EXPECT_TRUE(e.contains(f)) << f << " in " << line;
    }
    EXPECT_NE(e["verb"], "get") << "reads are not audited: " << line;
  }
  // One line per request, never two.
  size_t denials = 0;
  for (size_t p = audit.find("\"user\":\"bob\""); p != std::string::npos; p = audit.find("\"user\":\"bob\"", p + 1)) ++denials;
  EXPECT_EQ(denials, 1u) << audit;
  EXPECT_TRUE(created) << audit;
  EXPECT_TRUE(denied) << audit;
  // No token, and no secret of one, in the audit log or the server's log (debug logging on).
  std::string all = audit + server_.log();
  for (const std::string& t : {alice_, bob_, carol_, server_.token()}) {
    EXPECT_EQ(all.find(t.substr(t.find('.') + 1)), std::string::npos);
  }
}

TEST(AuthRateLimitTest, TenantsAreLimitedAndTheAdminIsNot) {
  TempDir dir;
  ServerProcess server(dir.path() / "data", {"--user-qps", "1", "--user-burst", "3"});
  ASSERT_TRUE(server.Start()) << server.log();
  std::string alice = server.MakeUser("alice", "team-a", "member");
  int limited = 0, ok = 0;
  std::string retry;
  for (int i = 0; i < 10; ++i) {
    auto r = server.HttpAs(alice, "GET", Ns("team-a", "instances"));
    if (r.code == 429) {
      ++limited;
      retry = r.headers["Retry-After"];
      EXPECT_EQ(r.Json().value("reason", ""), "TooManyRequests") << r.body;
    } else if (r.code == 200) {
      ++ok;
    }
  }
  EXPECT_GE(ok, 3);
  EXPECT_GE(limited, 1);
  EXPECT_FALSE(retry.empty());
  EXPECT_GE(std::stoi(retry), 1);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(server.Http("GET", Ns("team-a", "instances")).code, 200);
}

TEST(AuthNodeTest, NodeCredentialStaysInItsLane) {
  TempDir dir;
  ServerProcess server(dir.path() / "data");
  ASSERT_TRUE(server.Start()) << server.log();
  std::string alice = server.MakeUser("alice", "team-a", "member");
  ASSERT_EQ(server.HttpAs(alice, "POST", Ns("team-a", "keypairs"), Object("KeyPair", "secret-key").dump()).code, 201);
  AgentProcess agent(server, "node-a", dir.path());
  // The agent joined with the bootstrap token and registers its Node with its own credential.
  ASSERT_TRUE(Eventually([&] {
    json c = NodeCondition(server, "node-a");
    return c.is_object() && c.value("status", "") == "True";
  }, 30, 50))
      << agent.log();
  std::string cred = ReadFile(dir.path() / "node-a" / "node.token");
  while (!cred.empty() && cred.back() == '\n') cred.pop_back();
  ASSERT_FALSE(cred.empty());
  // It reads what a node needs...
  EXPECT_EQ(server.HttpAs(cred, "GET", kApi + "/instances").code, 200);
  EXPECT_EQ(server.HttpAs(cred, "GET", kApi + "/nodes/node-a").code, 200);
  // ...and cannot create Instances, read KeyPairs, touch another Node or mint tokens.
  EXPECT_EQ(server.HttpAs(cred, "POST", Ns("team-a", "instances"), Object("Instance", "evil").dump()).code, 403);
  EXPECT_EQ(server.HttpAs(cred, "GET", Ns("team-a", "keypairs", "secret-key")).code, 403);
  EXPECT_EQ(server.HttpAs(cred, "GET", kApi + "/keypairs").code, 403);
  EXPECT_EQ(server.HttpAs(cred, "POST", kApi + "/nodes", json{{"metadata", {{"name", "node-z"}}}}.dump()).code, 403);
  EXPECT_EQ(server.HttpAs(cred, "DELETE", kApi + "/nodes/node-a").code, 403);
  EXPECT_EQ(server.HttpAs(cred, "POST", kApi + "/tokens", json{{"spec", {{"user", "admin"}}}}.dump()).code, 403);
  // The bootstrap token only makes node credentials.
  std::string boot = ReadFile(server.bootstrap_token_file());
  while (!boot.empty() && boot.back() == '\n') boot.pop_back();
  EXPECT_EQ(server.HttpAs(boot, "GET", kApi + "/instances").code, 403);
  EXPECT_EQ(server.HttpAs(boot, "POST", kApi + "/tokens", json{{"spec", {{"user", "admin"}}}}.dump()).code, 403);
  // The node's own writes went through: its Node has status, and no write of the agent was refused.
  std::string log = agent.log();
  EXPECT_EQ(log.find("forbidden"), std::string::npos) << log;
}

TEST(AuthKubectlTest, KubectlWithAGeneratedKubeconfigActsAsThatUser) {
  // STRATUS_TEST_KUBECTL tries another kubectl build.
  const char* other = std::getenv("STRATUS_TEST_KUBECTL");
  std::string bin = other != nullptr && *other ? other : "/usr/bin/kubectl";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << bin << " is not installed";
  TempDir dir;
  // https: kubectl sends a bearer token over TLS only.
  ServerProcess server(dir.path() / "data", {"--secure"});
  ASSERT_TRUE(server.Start()) << server.log();
  std::string alice = server.MakeUser("alice", "team-a", "member");
  ASSERT_FALSE(server.MakeUser("bob", "team-b", "member").empty());
  std::string home = (dir.path() / "home").string();
  std::filesystem::create_directories(home);
  std::vector<std::string> env = {"HOME=" + home, "KUBECONFIG=", "STRATUS_CONFIG=", "STRATUS_TOKEN=", "STRATUS_SERVER="};
  auto kubectl = [&](const std::string& config, std::vector<std::string> args) {
    args.insert(args.begin(), {bin, "--kubeconfig", config});
    return stratus::testing::Run(args, "", env, 120);
  };
  // The admin's config that stratusd wrote at its first start works as it is.
  std::string admin = (dir.path() / "data" / "admin.kubeconfig").string();
  auto nodes = kubectl(admin, {"get", "namespaces.stratus.io"});
  EXPECT_EQ(nodes.exit_code, 0) << nodes.err;
  EXPECT_NE(nodes.out.find("team-b"), std::string::npos) << nodes.out;
  // Alice's, made by stratusctl (CA and token inline).
  auto made = stratus::testing::Run({StratusctlBin(), "--server", server.url(), "--certificate-authority",
                                     server.ca_file(), "--token", alice, "-n", "team-a", "config", "kubeconfig"},
                                    "", env);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string config = (dir.path() / "alice.kubeconfig").string();
  { std::ofstream(config) << made.out; }
  std::string manifest = (dir.path() / "vol.yaml").string();
  {
    std::ofstream(manifest) << "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: data-1}\nspec: {size: 1Gi}\n";
  }
  auto apply = kubectl(config, {"apply", "--validate=false", "-f", manifest});
  EXPECT_EQ(apply.exit_code, 0) << apply.out << apply.err;
  EXPECT_EQ(server.Http("GET", Ns("team-a", "volumes", "data-1")).code, 200);
  auto get = kubectl(config, {"get", "volumes.stratus.io"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("data-1"), std::string::npos) << get.out;
  // kubectl prints the columns stratusctl prints (the server answers its Table request), narrow and wide.
  auto words = [](const std::string& out) {
    std::istringstream first(out.substr(0, out.find('\n')));
    std::vector<std::string> w;
    for (std::string x; first >> x;) w.push_back(x);
    return w;
  };
  for (std::vector<std::string> extra : {std::vector<std::string>{}, std::vector<std::string>{"-o", "wide"}}) {
    std::vector<std::string> kargs = {"get", "volumes.stratus.io"};
    std::vector<std::string> sargs = {StratusctlBin(), "--server", server.url(), "--certificate-authority",
                                      server.ca_file(), "--token", alice, "-n", "team-a", "get", "volumes"};
    kargs.insert(kargs.end(), extra.begin(), extra.end());
    sargs.insert(sargs.end(), extra.begin(), extra.end());
    auto k = kubectl(config, kargs);
    auto s = stratus::testing::Run(sargs, "", env);
    ASSERT_EQ(k.exit_code, 0) << k.err;
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_GT(words(k.out).size(), 2u) << k.out;
    EXPECT_EQ(words(k.out), words(s.out)) << "kubectl:\n" << k.out << "stratusctl:\n" << s.out;
  }
  // Across namespaces: refused, in Kubernetes' words.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"get", "volumes.stratus.io", "-n", "team-b"},
        std::vector<std::string>{"apply", "--validate=false", "-n", "team-b", "-f", manifest},
        std::vector<std::string>{"get", "volumes.stratus.io", "-A"}}) {
    auto denied = kubectl(config, args);
    EXPECT_NE(denied.exit_code, 0) << args[0] << " " << denied.out;
    EXPECT_NE(denied.err.find("forbidden"), std::string::npos) << denied.err;
  }
  EXPECT_EQ(server.Http("GET", Ns("team-b", "volumes", "data-1")).code, 404);
  auto del = kubectl(config, {"delete", "-f", manifest});
  EXPECT_EQ(del.exit_code, 0) << del.out << del.err;
  EXPECT_EQ(server.Http("GET", Ns("team-a", "volumes", "data-1")).code, 404);
}

}  // namespace
}  // namespace stratus::testing
