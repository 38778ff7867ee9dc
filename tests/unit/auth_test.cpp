// Authentication (bearer Tokens) and authorization (RoleBindings, ClusterRoleBindings, node credentials) on a real
// Registry; the HTTP paths that call them are covered by tests/integration/auth_test.cpp.
#include "stratus/apiserver/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "registry_env.h"
#include "stratus/apiserver/rate_limit.h"
#include "stratus/core/object.h"

namespace stratus {
namespace {

class AuthTest : public RegistryEnv {
 protected:
  void SetUp() override {
    RegistryEnv::SetUp();
    authn_ = std::make_unique<Authenticator>(reg_.get(), [this] { return now_; });
    authz_ = std::make_unique<Authorizer>(reg_.get());
  }
  void Make(const char* kind, const std::string& ns, json obj) {
    auto c = reg_->Create(R(kind), ns, std::move(obj));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
  }
  void MakeUser(const std::string& name) { Make("User", "", {{"metadata", {{"name", name}}}}); }
  void Bind(const std::string& ns, const std::string& user, const std::string& role) {
    Make("Namespace", "", {{"metadata", {{"name", ns}}}});
    Make("RoleBinding", ns, {{"metadata", {{"name", user + "-" + role}}}, {"spec", {{"user", user}, {"role", role}}}});
  }
  // A Token for `user`; returns the bearer token.
  std::string Token(const std::string& name, const std::string& user, const std::string& expires = "") {
    TokenSecret t = NewTokenSecret();
    json spec = {{"user", user}, {"tokenHash", t.hash}};
    if (!expires.empty()) spec["expiresAt"] = expires;
    Make("Token", "", {{"metadata", {{"name", name}}}, {"spec", spec}});
    return BearerToken(name, t.secret);
  }
  Status Can(const std::string& user, const std::string& verb, const char* kind, const std::string& ns,
             const std::string& name = "", const std::string& sub = "", const json* body = nullptr) {
    RequestAttributes a;
    a.verb = verb;
    a.resource = FindByKind(kind);
    a.ns = ns;
    a.name = name;
    a.subresource = sub;
    return authz_->Authorize(UserInfo{user}, a, body);
  }

  int64_t now_ = 1'800'000'000;
  std::unique_ptr<Authenticator> authn_;
  std::unique_ptr<Authorizer> authz_;
};

TEST_F(AuthTest, TokenSecretsAreLongRandomAndOnlyTheirHashIsKept) {
  TokenSecret a = NewTokenSecret(), b = NewTokenSecret();
  EXPECT_EQ(a.secret.size(), 43u);  // 256 bits, base64url without padding
  EXPECT_NE(a.secret, b.secret);
  EXPECT_EQ(a.hash, TokenHash(a.secret));
  EXPECT_EQ(a.hash.size(), 64u);
  // The server refuses a Token without a hash (only the API server makes them).
  auto c = reg_->Create(R("Token"), "", {{"metadata", {{"name", "t"}}}, {"spec", {{"user", "alice"}}}});
  EXPECT_EQ(c.status().code(), Code::kInvalid);
}

TEST(BearerTest, ParsesOnlyWellFormedTokens) {
  std::string secret(43, 'a');
  auto p = ParseBearer("Bearer web-1." + secret);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "web-1");
  EXPECT_EQ(p->secret, secret);
  EXPECT_TRUE(ParseBearer("BEARER \tweb-1." + secret + "  ").has_value());
  for (const std::string& bad : {std::string("Bearer web-1.") + std::string(42, 'a'),  // too short
                                 std::string("Bearer web-1.") + std::string(44, 'a'),  // too long
                                 std::string("Bearer Web-1.") + secret,                 // not a DNS label
                                 std::string("Bearer .") + secret, std::string("Bearer web-1") + secret,
                                 std::string("Bearer a.b.") + std::string(41, 'a'),
                                 std::string("Bearer web-1.") + std::string(42, 'a') + "+",  // not base64url
                                 std::string("Token web-1.") + secret, std::string("Bearer ")}) {
    EXPECT_FALSE(ParseBearer(bad).has_value()) << bad;
  }
}

TEST_F(AuthTest, ValidTokenAuthenticatesAsItsUser) {
  MakeUser("alice");
  std::string token = Token("alice-1", "alice");
  auto u = authn_->Authenticate("Bearer " + token);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->name, "alice");
  EXPECT_TRUE(authn_->Authenticate("bearer  " + token + " ").ok());  // the scheme is case-insensitive
}

TEST_F(AuthTest, WrongMalformedExpiredRevokedOrOrphanTokensAre401) {
  MakeUser("alice");
  std::string token = Token("alice-1", "alice");
  std::string wrong = token;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  for (const std::string& h : {std::string(), std::string("Bearer"), "Basic " + token, "Bearer " + wrong,
                               std::string("Bearer alice-1"), std::string("Bearer nosuch.") + std::string(43, 'a'),
                               std::string("Bearer ../x.") + std::string(43, 'a')}) {
    auto u = authn_->Authenticate(h);
    EXPECT_EQ(u.status().code(), Code::kUnauthorized) << h;
  }
  // Expired.
  std::string old = Token("alice-old", "alice", FormatRfc3339(now_ - 1));
  EXPECT_EQ(authn_->Authenticate("Bearer " + old).status().code(), Code::kUnauthorized);
  std::string later = Token("alice-later", "alice", FormatRfc3339(now_ + 60));
  EXPECT_TRUE(authn_->Authenticate("Bearer " + later).ok());
  now_ += 61;
  EXPECT_EQ(authn_->Authenticate("Bearer " + later).status().code(), Code::kUnauthorized);
  // Revoked: the Token is deleted.
  ASSERT_TRUE(authn_->Authenticate("Bearer " + token).ok());
  ASSERT_TRUE(reg_->Delete(R("Token"), "", "alice-1", "").ok());
  EXPECT_EQ(authn_->Authenticate("Bearer " + token).status().code(), Code::kUnauthorized);
  // The user is gone or disabled.
  std::string bob = Token("bob-1", "bob");
  EXPECT_EQ(authn_->Authenticate("Bearer " + bob).status().code(), Code::kUnauthorized);
  MakeUser("bob");
  EXPECT_TRUE(authn_->Authenticate("Bearer " + bob).ok());
  ASSERT_TRUE(reg_->Patch(R("User"), "", "bob", {{"spec", {{"disabled", true}}}}, false).ok());
  EXPECT_EQ(authn_->Authenticate("Bearer " + bob).status().code(), Code::kUnauthorized);
}

TEST_F(AuthTest, NamespaceRolesGrantWhatTheySay) {
  MakeUser("vic");
  MakeUser("mem");
  MakeUser("adm");
  Bind("team-a", "vic", "viewer");
  Make("RoleBinding", "team-a", {{"metadata", {{"name", "mem"}}}, {"spec", {{"user", "mem"}, {"role", "member"}}}});
  Make("RoleBinding", "team-a", {{"metadata", {{"name", "adm"}}}, {"spec", {{"user", "adm"}, {"role", "admin"}}}});
  for (const char* kind : {"Instance", "Volume", "Network", "Image", "KeyPair", "SecurityGroup"}) {
    for (const char* v : {"get", "list", "watch"}) {
      EXPECT_TRUE(Can("vic", v, kind, "team-a").ok()) << v << " " << kind;
      EXPECT_TRUE(Can("mem", v, kind, "team-a").ok()) << v << " " << kind;
    }
    for (const char* v : {"create", "update", "patch", "delete"}) {
      EXPECT_EQ(Can("vic", v, kind, "team-a", "x").code(), Code::kForbidden) << v << " " << kind;
      EXPECT_TRUE(Can("mem", v, kind, "team-a", "x").ok()) << v << " " << kind;
      EXPECT_TRUE(Can("adm", v, kind, "team-a", "x").ok()) << v << " " << kind;
      // Nothing in another namespace.
      EXPECT_EQ(Can("adm", v, kind, "team-b", "x").code(), Code::kForbidden) << v << " " << kind;
    }
  }
  EXPECT_EQ(Can("mem", "get", "Instance", "team-b", "x").code(), Code::kForbidden);
  // Bindings: admins manage them, members only read them.
  EXPECT_TRUE(Can("adm", "create", "RoleBinding", "team-a", "x").ok());
  EXPECT_EQ(Can("mem", "create", "RoleBinding", "team-a", "x").code(), Code::kForbidden);
  EXPECT_TRUE(Can("mem", "list", "RoleBinding", "team-a").ok());
  // Quota and status are the cloud's: read, never written, by tenants.
  EXPECT_TRUE(Can("adm", "get", "Quota", "team-a", "quota").ok());
  EXPECT_EQ(Can("adm", "update", "Quota", "team-a", "quota").code(), Code::kForbidden);
  EXPECT_EQ(Can("adm", "patch", "Instance", "team-a", "x", "status").code(), Code::kForbidden);
  EXPECT_EQ(Can("adm", "create", "Event", "team-a", "x").code(), Code::kForbidden);
  // Logs and image data follow get/update.
  EXPECT_TRUE(Can("vic", "get", "Instance", "team-a", "x", "log").ok());
  EXPECT_TRUE(Can("mem", "update", "Image", "team-a", "x", "upload").ok());
  EXPECT_EQ(Can("vic", "update", "Image", "team-a", "x", "upload").code(), Code::kForbidden);
  // All namespaces (-A) and cluster-scoped kinds need a cluster role.
  EXPECT_EQ(Can("adm", "list", "Instance", "").code(), Code::kForbidden);
  EXPECT_EQ(Can("adm", "watch", "Instance", "").code(), Code::kForbidden);
  for (const char* kind : {"Node", "Namespace", "User", "Token", "AccessKey", "ClusterRoleBinding"}) {
    EXPECT_EQ(Can("adm", "list", kind, "").code(), Code::kForbidden) << kind;
    EXPECT_EQ(Can("adm", "create", kind, "", "x").code(), Code::kForbidden) << kind;
  }
  // What every user may see: flavors, themselves, the namespaces they belong to.
  EXPECT_TRUE(Can("vic", "list", "InstanceType", "").ok());
  EXPECT_EQ(Can("vic", "create", "InstanceType", "", "x").code(), Code::kForbidden);
  EXPECT_TRUE(Can("vic", "get", "User", "", "vic").ok());
  EXPECT_EQ(Can("vic", "get", "User", "", "adm").code(), Code::kForbidden);
  EXPECT_TRUE(Can("vic", "get", "Namespace", "", "team-a").ok());
  EXPECT_EQ(Can("vic", "get", "Namespace", "", "team-b").code(), Code::kForbidden);
  // Deleting the binding takes the role away at once.
  ASSERT_TRUE(reg_->Delete(R("RoleBinding"), "team-a", "mem", "").ok());
  EXPECT_EQ(Can("mem", "get", "Instance", "team-a", "x").code(), Code::kForbidden);
}

TEST_F(AuthTest, DenialsNameUserVerbResourceAndNamespace) {
  Status s = Can("mallory", "delete", "Instance", "team-b", "web");
  ASSERT_EQ(s.code(), Code::kForbidden);
  EXPECT_EQ(s.message(), "instances \"web\" is forbidden: User \"mallory\" cannot delete resource \"instances\" in API "
                         "group \"stratus.io\" in the namespace \"team-b\"");
  s = Can("mallory", "list", "Instance", "");
  EXPECT_NE(s.message().find("cannot list resource \"instances\" in API group \"stratus.io\" at the cluster scope"),
            std::string::npos)
      << s.message();
  s = Can("mallory", "patch", "Instance", "team-b", "web", "status");
  EXPECT_NE(s.message().find("resource \"instances/status\""), std::string::npos) << s.message();
}

TEST_F(AuthTest, ClusterRoles) {
  Make("ClusterRoleBinding", "", {{"metadata", {{"name", "root"}}}, {"spec", {{"user", "root"}, {"role", "cluster-admin"}}}});
  Make("ClusterRoleBinding", "", {{"metadata", {{"name", "ops"}}}, {"spec", {{"user", "ops"}, {"role", "cluster-viewer"}}}});
  EXPECT_TRUE(authz_->IsClusterAdmin("root"));
  EXPECT_FALSE(authz_->IsClusterAdmin("ops"));
  for (const char* kind : {"Node", "Namespace", "User", "Token", "AccessKey", "Instance", "Quota"}) {
    EXPECT_TRUE(Can("root", "create", kind, "x", "y").ok()) << kind;
    EXPECT_TRUE(Can("root", "list", kind, "").ok()) << kind;
  }
  EXPECT_TRUE(Can("ops", "list", "Instance", "").ok());
  EXPECT_TRUE(Can("ops", "watch", "Node", "").ok());
  EXPECT_EQ(Can("ops", "delete", "Instance", "a", "x").code(), Code::kForbidden);
  EXPECT_EQ(Can("ops", "list", "Token", "").code(), Code::kForbidden);  // never credentials
  EXPECT_EQ(Can("ops", "get", "AccessKey", "", "k").code(), Code::kForbidden);
  RequestAttributes metrics;
  metrics.verb = "get";
  metrics.path = "/metrics";
  EXPECT_TRUE(authz_->Authorize(UserInfo{"ops"}, metrics).ok());
  EXPECT_EQ(authz_->Authorize(UserInfo{"alice"}, metrics).code(), Code::kForbidden);
  RequestAttributes apis = metrics;
  apis.path = "/apis/stratus.io/v1";
  EXPECT_TRUE(authz_->Authorize(UserInfo{"alice"}, apis).ok());  // discovery: any signed-in user
}

TEST_F(AuthTest, NodeCredentialStaysInItsLane) {
  const std::string n1 = "system:node:n1";
  Make("Namespace", "", {{"metadata", {{"name", "t"}}}});
  Make("Instance", "t", {{"metadata", {{"name", "here"}}},
                         {"spec", {{"instanceType", "m1.small"}, {"image", "img"}, {"nodeName", "n1"}}}});
  Make("Instance", "t", {{"metadata", {{"name", "there"}}},
                         {"spec", {{"instanceType", "m1.small"}, {"image", "img"}, {"nodeName", "n2"}}}});
  // Reads what its reconcilers need, across namespaces.
  for (const char* kind : {"Instance", "Volume", "Network", "Image", "SecurityGroup", "Node"}) {
    EXPECT_TRUE(Can(n1, "list", kind, "").ok()) << kind;
    EXPECT_TRUE(Can(n1, "watch", kind, "").ok()) << kind;
  }
  // Never credentials, KeyPairs or bindings.
  for (const char* kind : {"KeyPair", "Token", "AccessKey", "User", "RoleBinding", "ClusterRoleBinding"}) {
    EXPECT_EQ(Can(n1, "list", kind, "").code(), Code::kForbidden) << kind;
    EXPECT_EQ(Can(n1, "get", kind, "t", "x").code(), Code::kForbidden) << kind;
  }
  // Except, by name, a KeyPair that an instance placed on it names (its public key goes into the seed).
  Make("Instance", "t", {{"metadata", {{"name", "keyed"}}},
                         {"spec", {{"instanceType", "m1.small"}, {"image", "img"}, {"nodeName", "n1"}, {"keyName", "k1"}}}});
  Make("Instance", "t", {{"metadata", {{"name", "keyed2"}}},
                         {"spec", {{"instanceType", "m1.small"}, {"image", "img"}, {"nodeName", "n2"}, {"keyName", "k2"}}}});
  EXPECT_TRUE(Can(n1, "get", "KeyPair", "t", "k1").ok());
  EXPECT_EQ(Can(n1, "get", "KeyPair", "t", "k2").code(), Code::kForbidden);  // named by an instance on n2
  EXPECT_EQ(Can(n1, "get", "KeyPair", "other", "k1").code(), Code::kForbidden);  // another namespace
  EXPECT_EQ(Can(n1, "list", "KeyPair", "t").code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "watch", "KeyPair", "t").code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "update", "KeyPair", "t", "k1").code(), Code::kForbidden);
  // Its own Node only.
  json node1 = {{"metadata", {{"name", "n1"}}}}, node2 = {{"metadata", {{"name", "n2"}}}};
  EXPECT_TRUE(Can(n1, "create", "Node", "", "n1", "", &node1).ok());
  EXPECT_EQ(Can(n1, "create", "Node", "", "n2", "", &node2).code(), Code::kForbidden);
  EXPECT_TRUE(Can(n1, "update", "Node", "", "n1", "status").ok());
  EXPECT_EQ(Can(n1, "patch", "Node", "", "n2", "status").code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "delete", "Node", "", "n1").code(), Code::kForbidden);
  // Status of what is placed on it, not elsewhere; never a new Instance.
  EXPECT_TRUE(Can(n1, "update", "Instance", "t", "here", "status").ok());
  EXPECT_EQ(Can(n1, "update", "Instance", "t", "there", "status").code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "update", "Instance", "t", "here").code(), Code::kForbidden);  // the spec is the user's
  json finalizer = {{"metadata", {{"finalizers", {"stratus.io/instance"}}, {"resourceVersion", "7"}}}};
  json spec_too = {{"metadata", {{"finalizers", json::array()}}}, {"spec", {{"powerState", "Stopped"}}}};
  EXPECT_TRUE(Can(n1, "patch", "Instance", "t", "here", "", &finalizer).ok());
  EXPECT_EQ(Can(n1, "patch", "Instance", "t", "here", "", &spec_too).code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "patch", "Instance", "t", "there", "", &finalizer).code(), Code::kForbidden);
  EXPECT_TRUE(Can(n1, "patch", "Network", "t", "lan", "", &finalizer).ok());
  EXPECT_EQ(Can(n1, "patch", "Network", "t", "lan", "", &spec_too).code(), Code::kForbidden);
  EXPECT_TRUE(Can(n1, "patch", "Network", "t", "lan", "status").ok());
  EXPECT_EQ(Can(n1, "create", "Instance", "t", "new").code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "delete", "Instance", "t", "here").code(), Code::kForbidden);
  EXPECT_EQ(Can(n1, "update", "Instance", "t", "missing", "status").code(), Code::kForbidden);
  // Root volumes of its instances.
  json vol_here = {{"metadata", {{"name", "here-root"}}}, {"spec", {{"nodeName", "n1"}}}};
  json vol_there = {{"metadata", {{"name", "there-root"}}}, {"spec", {{"nodeName", "n2"}}}};
  EXPECT_TRUE(Can(n1, "create", "Volume", "t", "here-root", "", &vol_here).ok());
  EXPECT_EQ(Can(n1, "create", "Volume", "t", "there-root", "", &vol_there).code(), Code::kForbidden);
  EXPECT_TRUE(Can(n1, "create", "Event", "t", "e").ok());
}

TEST_F(AuthTest, BootstrapTokenOnlyMakesNodeCredentials) {
  UserInfo boot{"system:bootstrap"};
  RequestAttributes a;
  a.verb = "create";
  a.resource = FindByKind("Token");
  json node = {{"spec", {{"user", "system:node:n1"}}}}, admin = {{"spec", {{"user", "admin"}}}};
  EXPECT_TRUE(authz_->Authorize(boot, a, &node).ok());
  EXPECT_EQ(authz_->Authorize(boot, a, &admin).code(), Code::kForbidden);
  a.verb = "list";
  EXPECT_EQ(authz_->Authorize(boot, a).code(), Code::kForbidden);
  a.resource = FindByKind("Instance");
  a.ns = "default";
  EXPECT_EQ(authz_->Authorize(boot, a).code(), Code::kForbidden);
}

TEST_F(AuthTest, EnsureTokenFileMakesTheAdminOnceAndKeepsItsToken) {
  std::string path = (dir_ / "admin.token").string();
  auto t1 = EnsureTokenFile(reg_.get(), path, "admin", "admin", true);
  ASSERT_TRUE(t1.ok()) << t1.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto u = Authenticator(reg_.get()).Authenticate("Bearer " + *t1);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(Authorizer(reg_.get()).IsClusterAdmin(u->name));
  auto t2 = EnsureTokenFile(reg_.get(), path, "admin", "admin", true);
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(*t1, *t2);  // a restart keeps the token
  // A file whose token no longer works (the Token was deleted) is replaced, and the new one works.
  ASSERT_TRUE(reg_->Delete(R("Token"), "", "admin", "").ok());
  auto t3 = EnsureTokenFile(reg_.get(), path, "admin", "admin", true);
  ASSERT_TRUE(t3.ok());
  EXPECT_NE(*t3, *t1);
  EXPECT_TRUE(Authenticator(reg_.get()).Authenticate("Bearer " + *t3).ok());
  EXPECT_FALSE(Authenticator(reg_.get()).Authenticate("Bearer " + *t1).ok());
}

TEST(UserRateLimiterTest, BucketPerUserRefillsAtQps) {
  auto t = std::chrono::steady_clock::time_point{};
  UserRateLimiter l(2, 3, [&] { return t; });
  int retry = 0;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.Allow("a", &retry));
  EXPECT_FALSE(l.Allow("a", &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_TRUE(l.Allow("b", &retry));  // another user has its own bucket
  t += std::chrono::milliseconds(500);
  EXPECT_TRUE(l.Allow("a", &retry));  // one token back after 1/qps
  EXPECT_FALSE(l.Allow("a", &retry));
  UserRateLimiter off(0, 0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(off.Allow("a", &retry));
}

}  // namespace
}  // namespace stratus
