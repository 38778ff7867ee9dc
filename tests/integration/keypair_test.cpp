// KeyPairs made by the server (Nova's and EC2's create-key-pair through the main API): the private key is answered
// once and works with ssh-keygen, only the public key is stored; user data is bounded like EC2's.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "harness.h"

namespace stratus::testing {
namespace {

const std::string kKeys = "/apis/stratus.io/v1/namespaces/default/keypairs";

TEST(KeyPairTest, ServerMadePairsAnswerThePrivateKeyOnce) {
  if (!std::filesystem::exists("/usr/bin/ssh-keygen")) GTEST_FAIL() << "ssh-keygen missing: install-deps installs openssh-client";
  TempDir dir;
  ServerProcess server(dir.path() / "data");
  ASSERT_TRUE(server.Start()) << server.log();
  for (auto [type, pem, pub] : {std::tuple{"", "-----BEGIN OPENSSH PRIVATE KEY-----", "ssh-ed25519 "},
                                std::tuple{"rsa", "-----BEGIN RSA PRIVATE KEY-----", "ssh-rsa "}}) {
    std::string name = std::string("k-") + (*type ? type : "default");
    json body = {{"metadata", {{"name", name}}}, {"spec", json::object()}};
    if (*type) body["spec"]["keyType"] = type;
    auto c = server.Http("POST", kKeys, body.dump());
    ASSERT_EQ(c.code, 201) << c.body;
    json made = c.Json();
    std::string priv = made["status"].value("privateKey", "");
    ASSERT_EQ(priv.rfind(pem, 0), 0u) << c.body;
    std::string stored_pub = made["spec"].value("publicKey", "");
    ASSERT_EQ(stored_pub.rfind(pub, 0), 0u) << c.body;
    // Stored: the public key only.
    auto g = server.Http("GET", kKeys + "/" + name);
    EXPECT_EQ(g.body.find("PRIVATE"), std::string::npos) << g.body;
    // The private key is the public key's other half (ssh derives the same public key from it).
    std::string file = (dir.path() / name).string();
    std::ofstream(file) << priv;
    ::chmod(file.c_str(), 0600);
    auto y = stratus::testing::Run({"/usr/bin/ssh-keygen", "-y", "-f", file});
    ASSERT_EQ(y.exit_code, 0) << y.err;
    std::istringstream fields(y.out);
    std::string t, blob;
    fields >> t >> blob;  // "TYPE BASE64 [comment]"
    std::string derived = t + " " + blob;
    EXPECT_EQ(stored_pub.rfind(derived, 0), 0u) << derived << " vs " << stored_pub;
  }
  auto bad = server.Http("POST", kKeys, R"({"metadata":{"name":"k-dsa"},"spec":{"keyType":"dsa"}})");
  EXPECT_EQ(bad.code, 422) << bad.body;
  EXPECT_NE(bad.body.find("spec.keyType"), std::string::npos) << bad.body;
  // An imported key stays as given and gets no private key.
  auto y = stratus::testing::Run({"/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir.path() / "mine").string()});
  ASSERT_EQ(y.exit_code, 0) << y.err;
  std::string mine = ReadFile(dir.path() / "mine.pub");
  mine = mine.substr(0, mine.find('\n'));
  auto imp = server.Http("POST", kKeys, json{{"metadata", {{"name", "mine"}}}, {"spec", {{"publicKey", mine}}}}.dump());
  ASSERT_EQ(imp.code, 201) << imp.body;
  EXPECT_FALSE(imp.Json().contains("status")) << imp.body;
  auto get = server.Ctl({"get", "keypairs"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("TYPE"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("ed25519"), std::string::npos) << get.out;
  EXPECT_EQ(get.out.find("<none>"), std::string::npos) << "every key has a fingerprint:\n" << get.out;

  // User data: at most 16 KiB, refused naming the field.
  std::string big(16385, 'x');
  auto inst = server.Http("POST", "/apis/stratus.io/v1/namespaces/default/instances",
                          json{{"metadata", {{"name", "big"}}},
                               {"spec", {{"instanceType", "t"}, {"kernelImage", "k"}, {"userData", big}}}}.dump());
  EXPECT_EQ(inst.code, 422) << inst.body.substr(0, 300);
  EXPECT_NE(inst.body.find("spec.userData"), std::string::npos) << inst.body.substr(0, 300);
}

}  // namespace
}  // namespace stratus::testing
