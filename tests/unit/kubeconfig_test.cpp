// The kubeconfig model: Kubernetes' format read and written, unknown fields kept, errors naming file and field,
// atomic private saves, context resolution and the precedence of flags, environment, context and defaults.
#include "stratus/core/kubeconfig.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "stratus/core/base64.h"
#include "stratus/core/yaml.h"

namespace stratus {
namespace {

namespace fs = std::filesystem;

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stratus-kubeconfig-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The error message LoadKubeconfig gives for `text`.
  std::string LoadError(const std::string& text) {
    std::string p = Write("bad", text);
    auto cfg = LoadKubeconfig(p);
    EXPECT_FALSE(cfg.ok()) << text;
    if (cfg.ok()) return "";
    EXPECT_EQ(cfg.status().code(), Code::kBadRequest);
    EXPECT_NE(cfg.status().message().find(p), std::string::npos) << cfg.status().message();
    return cfg.status().message();
  }

  fs::path dir_;
};

constexpr const char* kFull = R"(apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://10.0.0.1:8774
    certificate-authority: ca.pem
    proxy-url: http://proxy:3128
    extensions:
    - name: x
      extension: {a: 1}
- name: lab
  cluster:
    server: http://lab:8774
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmFiYwotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: s3cret-token
    client-key-data: a2V5
- name: filer
  user:
    tokenFile: token.txt
contexts:
- name: prod-admin
  context:
    cluster: prod
    user: admin
    namespace: team-a
- name: lab
  context:
    cluster: lab
    user: filer
current-context: prod-admin
extensions:
- name: top
  extension: {b: 2}
)";

TEST_F(KubeconfigTest, LoadsEveryKnownField) {
  auto cfg = LoadKubeconfig(Write("config", kFull));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->clusters.size(), 2u);
  EXPECT_EQ(cfg->clusters[0].server, "https://10.0.0.1:8774");
  EXPECT_EQ(cfg->clusters[0].certificate_authority, "ca.pem");
  EXPECT_TRUE(cfg->clusters[1].insecure_skip_tls_verify);
  EXPECT_FALSE(cfg->clusters[1].certificate_authority_data.empty());
  ASSERT_EQ(cfg->users.size(), 2u);
  EXPECT_EQ(cfg->users[0].token, "s3cret-token");
  EXPECT_EQ(cfg->users[1].token_file, "token.txt");
  ASSERT_NE(cfg->FindContext("prod-admin"), nullptr);
  EXPECT_EQ(cfg->FindContext("prod-admin")->ns, "team-a");
  EXPECT_EQ(cfg->current_context, "prod-admin");
}

TEST_F(KubeconfigTest, RoundTripKeepsUnknownFields) {
  std::string path = Write("config", kFull);
  auto cfg = LoadKubeconfig(path);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  json before = ParseYamlDocuments(kFull).value().front();

  // Unchanged: the same document (plus nothing but what kubectl writes anyway).
  ASSERT_TRUE(SaveKubeconfig(*cfg, path).ok());
  auto again = LoadKubeconfig(path);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->ToJson(), before);

  // Edited: the known fields change, the unknown ones stay.
  again->UpsertCluster("prod").server = "https://10.0.0.2:8774";
  again->UpsertUser("admin").token = "";
  again->UpsertContext("new").cluster = "lab";
  again->current_context = "new";
  ASSERT_TRUE(SaveKubeconfig(*again, path).ok());
  json after = ParseYamlDocuments(Read(path)).value().front();
  EXPECT_EQ(after["preferences"]["colors"], true);
  EXPECT_EQ(after["extensions"][0]["name"], "top");
  EXPECT_EQ(after["clusters"][0]["cluster"]["server"], "https://10.0.0.2:8774");
  EXPECT_EQ(after["clusters"][0]["cluster"]["proxy-url"], "http://proxy:3128");
  EXPECT_EQ(after["clusters"][0]["cluster"]["extensions"][0]["extension"]["a"], 1);
  EXPECT_FALSE(after["users"][0]["user"].contains("token"));
  EXPECT_EQ(after["users"][0]["user"]["client-key-data"], "a2V5");
  EXPECT_EQ(after["contexts"][2]["name"], "new");
  EXPECT_EQ(after["contexts"][2]["context"], json({{"cluster", "lab"}}));
  EXPECT_EQ(after["current-context"], "new");
}

TEST_F(KubeconfigTest, WritesKubernetesFormat) {
  Kubeconfig cfg = MakeKubeconfig("stratus", "https://127.0.0.1:8774", "tok", "PEM\n", "default");
  json doc = cfg.ToJson();
  EXPECT_EQ(doc["apiVersion"], "v1");
  EXPECT_EQ(doc["kind"], "Config");
  EXPECT_EQ(doc["current-context"], "stratus");
  EXPECT_EQ(doc["clusters"][0], json({{"name", "stratus"},
                                      {"cluster",
                                       {{"server", "https://127.0.0.1:8774"},
                                        {"certificate-authority-data", Base64Encode("PEM\n")}}}}));
  EXPECT_EQ(doc["users"][0], json({{"name", "stratus"}, {"user", {{"token", "tok"}}}}));
  EXPECT_EQ(doc["contexts"][0],
            json({{"name", "stratus"}, {"context", {{"cluster", "stratus"}, {"user", "stratus"}, {"namespace", "default"}}}}));
}

TEST_F(KubeconfigTest, MissingAndEmptyFiles) {
  auto missing = LoadKubeconfig((dir_ / "nope").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  auto empty = LoadKubeconfig(Write("empty", ""));
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_TRUE(empty->contexts.empty());
  // A kubectl-style empty config (null lists).
  auto nulls = LoadKubeconfig(Write("nulls", "apiVersion: v1\nkind: Config\nclusters: null\nusers: null\n"
                                             "contexts: null\ncurrent-context: \"\"\npreferences: {}\n"));
  ASSERT_TRUE(nulls.ok()) << nulls.status().message();
}

TEST_F(KubeconfigTest, BadFilesNameTheField) {
  EXPECT_NE(LoadError("clusters: {}\n").find(": clusters: must be a list"), std::string::npos);
  EXPECT_NE(LoadError("clusters:\n- name: a\n  cluster:\n    server: [1]\n").find("clusters[0].cluster.server: must be a string"),
            std::string::npos);
  EXPECT_NE(LoadError("clusters:\n- cluster: {server: x}\n").find("clusters[0].name: is required"), std::string::npos);
  EXPECT_NE(LoadError("clusters:\n- name: a\n- name: a\n").find("clusters[1].name: duplicate name \"a\""),
            std::string::npos);
  EXPECT_NE(LoadError("clusters:\n- name: a\n  cluster:\n    insecure-skip-tls-verify: \"yes\"\n")
                .find("clusters[0].cluster.insecure-skip-tls-verify: must be true or false"),
            std::string::npos);
  EXPECT_NE(LoadError("clusters:\n- name: a\n  cluster:\n    certificate-authority-data: '%%%'\n")
                .find("clusters[0].cluster.certificate-authority-data: is not base64"),
            std::string::npos);
  EXPECT_NE(LoadError("users:\n- name: u\n  user: [a]\n").find("users[0].user: must be a mapping"), std::string::npos);
  EXPECT_NE(LoadError("contexts:\n- name: c\n  context:\n    namespace: 7\n").find("contexts[0].context.namespace: must be a string"),
            std::string::npos);
  EXPECT_NE(LoadError("current-context: [x]\n").find(": current-context: must be a string"), std::string::npos);
  EXPECT_NE(LoadError("apiVersion: v2\n").find("apiVersion: must be v1"), std::string::npos);
  EXPECT_NE(LoadError("kind: Pod\n").find("kind: must be Config"), std::string::npos);
  EXPECT_NE(LoadError("- a\n- b\n").find("must be a mapping"), std::string::npos);
  EXPECT_NE(LoadError("clusters: [\n").find("line"), std::string::npos);  // YAML errors keep their position
  // A secret in a wrongly typed field is not quoted back.
  std::string err = LoadError("users:\n- name: u\n  user:\n    token: {s3cret: 1}\n");
  EXPECT_NE(err.find("users[0].user.token: must be a string"), std::string::npos);
  EXPECT_EQ(err.find("s3cret"), std::string::npos) << err;
}

TEST_F(KubeconfigTest, SaveIsPrivateAndCreatesTheDirectory) {
  std::string path = (dir_ / "home" / ".stratus" / "config").string();
  ASSERT_TRUE(SaveKubeconfig(MakeKubeconfig("a", "http://x", "t", ""), path).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "home" / ".stratus").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // A file that was world-readable becomes private, and no temporary file is left behind.
  std::string loose = Write("loose/config", "current-context: a\n");
  ::chmod(loose.c_str(), 0644);
  ASSERT_TRUE(SaveKubeconfig(MakeKubeconfig("a", "http://x", "t", ""), loose).ok());
  ASSERT_EQ(::stat(loose.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "loose")) files += e.is_regular_file();
  EXPECT_EQ(files, 1);

  // A symlinked config: the target is replaced, the link stays.
  std::string real = Write("real/config", "");
  fs::create_directories(dir_ / "linked");
  fs::create_symlink(real, dir_ / "linked" / "config");
  ASSERT_TRUE(SaveKubeconfig(MakeKubeconfig("b", "http://y", "t", ""), (dir_ / "linked" / "config").string()).ok());
  EXPECT_TRUE(fs::is_symlink(dir_ / "linked" / "config"));
  EXPECT_NE(Read(real).find("http://y"), std::string::npos);
}

TEST_F(KubeconfigTest, ResolvesContexts) {
  Write("token.txt", "file-token\n");
  auto cfg = LoadKubeconfig(Write("config", kFull));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();

  auto cur = ResolveKubeconfigContext(*cfg, "");
  ASSERT_TRUE(cur.ok()) << cur.status().message();
  EXPECT_EQ(cur->context, "prod-admin");
  EXPECT_EQ(cur->server, "https://10.0.0.1:8774");
  EXPECT_EQ(cur->token, "s3cret-token");
  EXPECT_EQ(cur->ca_file, (dir_ / "ca.pem").string());  // relative to the config's directory
  EXPECT_EQ(cur->ns, "team-a");
  EXPECT_FALSE(cur->insecure);

  auto lab = ResolveKubeconfigContext(*cfg, "lab");
  ASSERT_TRUE(lab.ok()) << lab.status().message();
  EXPECT_EQ(lab->token, "file-token");  // read from tokenFile, trailing newline dropped
  EXPECT_EQ(lab->token_file, (dir_ / "token.txt").string());
  EXPECT_EQ(lab->ca_data, "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n");
  EXPECT_TRUE(lab->ca_file.empty());
  EXPECT_TRUE(lab->insecure);
  EXPECT_EQ(lab->ns, "");

  auto absent = ResolveKubeconfigContext(*cfg, "nope");
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.status().code(), Code::kNotFound);
  EXPECT_NE(absent.status().message().find("\"nope\""), std::string::npos);

  cfg->UpsertContext("dangling").cluster = "gone";
  auto dangling = ResolveKubeconfigContext(*cfg, "dangling");
  ASSERT_FALSE(dangling.ok());
  EXPECT_NE(dangling.status().message().find("cluster \"gone\" not found"), std::string::npos);

  fs::remove(dir_ / "token.txt");
  auto no_file = ResolveKubeconfigContext(*cfg, "lab");
  ASSERT_FALSE(no_file.ok());
  EXPECT_NE(no_file.status().message().find("tokenFile"), std::string::npos);

  Kubeconfig none;
  auto nothing = ResolveKubeconfigContext(none, "");
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(nothing->context, "");
  EXPECT_EQ(nothing->server, "");
}

TEST_F(KubeconfigTest, PrecedenceFlagsThenEnvThenContextThenDefaults) {
  auto cfg = LoadKubeconfig(Write("config", kFull));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ClientOverrides none;

  auto defaults = ResolveClientSettings(nullptr, "", none, none);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->server, kDefaultServer);
  EXPECT_EQ(defaults->ns, kDefaultNamespace);
  EXPECT_EQ(defaults->token, "");

  auto ctx = ResolveClientSettings(&*cfg, "", none, none);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  EXPECT_EQ(ctx->server, "https://10.0.0.1:8774");
  EXPECT_EQ(ctx->token, "s3cret-token");
  EXPECT_EQ(ctx->ns, "team-a");

  ClientOverrides env;
  env.server = "http://env:1";
  env.token = "env-token";
  auto e = ResolveClientSettings(&*cfg, "", none, env);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->server, "http://env:1");
  EXPECT_EQ(e->token, "env-token");
  EXPECT_EQ(e->ns, "team-a");
  EXPECT_EQ(e->ca_file, (dir_ / "ca.pem").string());  // the CA still comes from the context

  ClientOverrides flags;
  flags.server = "http://flag:2";
  flags.token = "flag-token";
  flags.ns = "ns-flag";
  flags.ca_file = "/etc/ca.pem";
  auto f = ResolveClientSettings(&*cfg, "", flags, env);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->server, "http://flag:2");
  EXPECT_EQ(f->token, "flag-token");
  EXPECT_EQ(f->ns, "ns-flag");
  EXPECT_EQ(f->ca_file, "/etc/ca.pem");

  // --context picks another context; a context without a namespace falls back to the default one. Its token
  // file is not needed when the token is given another way.
  auto lab = ResolveClientSettings(&*cfg, "lab", flags, none);
  ASSERT_TRUE(lab.ok()) << lab.status().message();
  EXPECT_EQ(lab->context, "lab");
  EXPECT_EQ(lab->token, "flag-token");
  auto lab_ns = ResolveClientSettings(&*cfg, "lab", ClientOverrides{"", "t", "", ""}, none);
  ASSERT_TRUE(lab_ns.ok()) << lab_ns.status().message();
  EXPECT_EQ(lab_ns->server, "http://lab:8774");
  EXPECT_EQ(lab_ns->ns, kDefaultNamespace);

  auto missing = ResolveClientSettings(&*cfg, "nope", none, none);
  EXPECT_FALSE(missing.ok());
  auto no_config = ResolveClientSettings(nullptr, "nope", none, none);
  EXPECT_FALSE(no_config.ok());
}

TEST_F(KubeconfigTest, RedactsSecrets) {
  auto cfg = LoadKubeconfig(Write("config", kFull));
  ASSERT_TRUE(cfg.ok());
  json shown = RedactKubeconfig(cfg->ToJson());
  std::string text = ToYaml(shown);
  EXPECT_EQ(text.find("s3cret-token"), std::string::npos) << text;
  EXPECT_EQ(shown["users"][0]["user"]["token"], "REDACTED");
  EXPECT_EQ(shown["users"][0]["user"]["client-key-data"], "DATA+OMITTED");
  EXPECT_EQ(shown["clusters"][1]["cluster"]["certificate-authority-data"], "DATA+OMITTED");
  EXPECT_EQ(shown["users"][1]["user"]["tokenFile"], "token.txt");  // a path is no secret
}

TEST(Base64Test, EncodesAndDecodesStrictly) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Decode("Zg==").value_or("?"), "f");
  EXPECT_EQ(Base64Decode("Zm8=").value_or("?"), "fo");
  EXPECT_EQ(Base64Decode("Zm9v\nYmFy\r\n").value_or("?"), "foobar");
  std::string bytes(256, '\0');
  for (int i = 0; i < 256; ++i) bytes[i] = static_cast<char>(i);
  EXPECT_EQ(Base64Decode(Base64Encode(bytes)).value_or("?"), bytes);
  EXPECT_FALSE(Base64Decode("Zg="));
  EXPECT_FALSE(Base64Decode("Z==="));
  EXPECT_FALSE(Base64Decode("Zg=a"));
  EXPECT_FALSE(Base64Decode("!!!!"));
}

}  // namespace
}  // namespace stratus
