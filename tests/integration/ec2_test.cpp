// The EC2 endpoint driven by the real awscli (Debian's `awscli`): an AccessKey made through the API signs
// awscli's requests; describe-instances shows the Instance the YAML path made; EC2's errors come back as awscli
// expects; the secret is shown once and never logged; deleting the AccessKey revokes it.
#include <gtest/gtest.h>

#include <fstream>

#include "aws_cli.h"
#include "harness.h"

namespace stratus::testing {
namespace {

const char* kAws = kAwsCli;

class Ec2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kAws)) GTEST_FAIL() << kAws << " is missing: scripts/install-deps.sh installs awscli";
    ec2_port_ = ReservedPort::Make();
    ASSERT_NE(ec2_port_.port(), 0);
    std::vector<std::string> extra = {"--ec2-listen", ec2_port_.hostport()};
    if (Secure()) extra.push_back("--secure");
    for (const auto& f : ExtraFlags()) extra.push_back(f);
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", extra);
    ASSERT_TRUE(server_->Start()) << server_->log();
    ASSERT_FALSE(server_->MakeUser("alice", "default", "member").empty());
  }

  // Runs `aws ec2 ARGS...` against the endpoint with the given credentials and nothing from the machine's config.
  RunResult Aws(std::vector<std::string> args, const std::string& key_id, const std::string& secret) {
    AwsCli aws{(Secure() ? "https://" : "http://") + ec2_port_.hostport(), Secure() ? server_->ca_file() : "",
               (dir_.path() / "home").string(), key_id, secret};
    return aws(std::move(args));
  }

  // The EC2 endpoint on https (the main API's certificate): Ec2TlsTest.
  virtual bool Secure() const { return false; }
  // More server flags (Ec2VolumeTest runs an embedded agent).
  virtual std::vector<std::string> ExtraFlags() { return {}; }

  json CreateAccessKey(const std::string& name, const std::string& user, const std::string& ns) {
    json k = stratus::testing::CreateAccessKey(*server_, name, user, ns);
    EXPECT_FALSE(k.is_null()) << "AccessKey " << name << " not made";
    return k;
  }

  TempDir dir_;
  ReservedPort ec2_port_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(Ec2Test, AwscliDescribesInstancesMadeFromYamlWithTheKeysSecretShownOnce) {
  json key = CreateAccessKey("alice-laptop", "alice", "default");
  std::string id = key["spec"].value("accessKeyId", "");
  std::string secret = key.contains("status") ? key["status"].value("secretAccessKey", "") : "";
  ASSERT_EQ(id.size(), 20u) << key.dump();
  EXPECT_EQ(id.rfind("AKIA", 0), 0u);
  ASSERT_EQ(secret.size(), 40u) << key.dump();

  // Shown once: never in a GET, a LIST, or the server's log.
  auto get = server_->Http("GET", "/apis/stratus.io/v1/accesskeys/alice-laptop");
  EXPECT_EQ(get.code, 200);
  EXPECT_EQ(get.body.find(secret), std::string::npos);
  EXPECT_EQ(get.body.find("secretAccessKey"), std::string::npos);
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/accesskeys").body.find(secret), std::string::npos);
  // The id is the server's: a client cannot pick or change it.
  json changed = get.Json();
  changed["spec"]["accessKeyId"] = "AKIAAAAAAAAAAAAAAAAA";
  EXPECT_EQ(server_->Http("PUT", "/apis/stratus.io/v1/accesskeys/alice-laptop", changed.dump()).code, 422);

  auto inst = server_->Http("POST", "/apis/stratus.io/v1/namespaces/default/instances",
                            json{{"apiVersion", "stratus.io/v1"},
                                 {"kind", "Instance"},
                                 {"metadata", {{"name", "web-1"}}},
                                 {"spec", {{"instanceType", "m1.small"}, {"image", "debian"}}}}
                                .dump());
  ASSERT_EQ(inst.code, 201) << inst.body;

  RunResult d = Aws({"describe-instances"}, id, secret);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  json out = json::parse(d.out);
  ASSERT_EQ(out["Reservations"].size(), 1u) << d.out;
  const json& i = out["Reservations"][0]["Instances"][0];
  std::string iid = i.value("InstanceId", "");
  EXPECT_EQ(iid.rfind("i-", 0), 0u);
  EXPECT_EQ(iid.size(), 19u);
  EXPECT_EQ(i["State"].value("Name", ""), "pending");
  EXPECT_EQ(i["Tags"][0].value("Value", ""), "web-1");

  RunResult one = Aws({"describe-instances", "--instance-ids", iid}, id, secret);
  EXPECT_EQ(one.exit_code, 0) << one.err;
  RunResult missing = Aws({"describe-instances", "--instance-ids", "i-0123456789abcdef0"}, id, secret);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("InvalidInstanceID.NotFound"), std::string::npos) << missing.err;

  // run-instances makes an Instance that stratusctl sees; terminate-instances deletes it.
  auto img = server_->Http("POST", "/apis/stratus.io/v1/namespaces/default/images",
                           json{{"apiVersion", "stratus.io/v1"},
                                {"kind", "Image"},
                                {"metadata", {{"name", "debian"}}},
                                {"spec", {{"source", {{"url", "file:///nowhere.qcow2"}}}}}}
                               .dump());
  ASSERT_EQ(img.code, 201) << img.body;
  RunResult images = Aws({"describe-images"}, id, secret);
  ASSERT_EQ(images.exit_code, 0) << images.err;
  std::string ami = json::parse(images.out)["Images"][0].value("ImageId", "");
  ASSERT_EQ(ami.rfind("ami-", 0), 0u) << images.out;
  RunResult run = Aws({"run-instances", "--image-id", ami, "--count", "1", "--instance-type", "m1.small",
                       "--user-data", "#!/bin/sh\necho hi\n", "--tag-specifications",
                       "ResourceType=instance,Tags=[{Key=Name,Value=web-2}]"},
                      id, secret);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::string new_id = json::parse(run.out)["Instances"][0].value("InstanceId", "");
  RunResult got = server_->Ctl({"get", "instance", "web-2", "-o", "json"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(json::parse(got.out)["spec"].value("userData", ""), "#!/bin/sh\necho hi\n");
  RunResult term = Aws({"terminate-instances", "--instance-ids", new_id}, id, secret);
  ASSERT_EQ(term.exit_code, 0) << term.err;
  EXPECT_EQ(json::parse(term.out)["TerminatingInstances"][0]["CurrentState"].value("Name", ""), "shutting-down");
  EXPECT_NE(server_->Ctl({"get", "instance", "web-2"}).exit_code, 0) << "terminated instance still there";

  RunResult wrong = Aws({"describe-regions"}, id, std::string(40, 'x'));
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("SignatureDoesNotMatch"), std::string::npos) << wrong.err;

  // Revoked: the key's object is gone, and so is the key.
  EXPECT_EQ(server_->Http("DELETE", "/apis/stratus.io/v1/accesskeys/alice-laptop").code, 200);
  RunResult revoked = Aws({"describe-regions"}, id, secret);
  EXPECT_NE(revoked.exit_code, 0);
  EXPECT_NE(revoked.err.find("AuthFailure"), std::string::npos) << revoked.err;

  EXPECT_EQ(server_->log().find(secret), std::string::npos) << "the secret reached the server's log";
}

TEST_F(Ec2Test, EachKeyActsInItsOwnNamespace) {
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/namespaces",
                          json{{"apiVersion", "stratus.io/v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "team-b"}}}}
                              .dump())
                .code,
            201);
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/namespaces/team-b/instances",
                          json{{"apiVersion", "stratus.io/v1"},
                               {"kind", "Instance"},
                               {"metadata", {{"name", "db-1"}}},
                               {"spec", {{"instanceType", "m1.small"}, {"image", "debian"}}}}
                              .dump())
                .code,
            201);
  ASSERT_FALSE(server_->MakeUser("bob", "team-b", "member").empty());
  json a = CreateAccessKey("alice-key", "alice", "default");
  // stratusctl prints the id and the secret, once.
  RunResult made = server_->Ctl({"create", "accesskey", "bob-key", "--user", "bob", "-n", "team-b"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  json b;
  for (const std::string line : {made.out.substr(0, made.out.find('\n')), made.out.substr(made.out.find('\n') + 1)}) {
    auto eq = line.find('=');
    ASSERT_NE(eq, std::string::npos) << made.out;
    std::string v = line.substr(eq + 1);
    while (!v.empty() && v.back() == '\n') v.pop_back();
    if (line.rfind("AWS_ACCESS_KEY_ID=", 0) == 0) b["spec"]["accessKeyId"] = v;
    if (line.rfind("AWS_SECRET_ACCESS_KEY=", 0) == 0) b["status"]["secretAccessKey"] = v;
  }
  ASSERT_TRUE(b.contains("spec") && b.contains("status")) << made.out;
  EXPECT_EQ(server_->Ctl({"create", "accesskey", "x", "-n", "team-b"}).exit_code == 0, false) << "--user is required";
  RunResult as_alice = Aws({"describe-instances"}, a["spec"]["accessKeyId"], a["status"]["secretAccessKey"]);
  ASSERT_EQ(as_alice.exit_code, 0) << as_alice.err;
  EXPECT_EQ(json::parse(as_alice.out)["Reservations"].size(), 0u) << as_alice.out;
  RunResult as_bob = Aws({"describe-instances"}, b["spec"]["accessKeyId"], b["status"]["secretAccessKey"]);
  ASSERT_EQ(as_bob.exit_code, 0) << as_bob.err;
  EXPECT_EQ(json::parse(as_bob.out)["Reservations"].size(), 1u) << as_bob.out;
  EXPECT_NE(a["status"]["secretAccessKey"], b["status"]["secretAccessKey"]);
}

TEST_F(Ec2Test, KeysActWithTheirUsersRoles) {
  // A viewer's key describes but cannot run, even as a dry run; a key for a namespace its user has no role in
  // gets nothing; a key whose user is gone fails to authenticate.
  ASSERT_FALSE(server_->MakeUser("vic", "default", "viewer").empty());
  json v = CreateAccessKey("vic-key", "vic", "default");
  std::string vid = v["spec"]["accessKeyId"], vsecret = v["status"]["secretAccessKey"];
  RunResult d = Aws({"describe-instances"}, vid, vsecret);
  EXPECT_EQ(d.exit_code, 0) << d.err;
  for (bool dry : {true, false}) {
    std::vector<std::string> args = {"run-instances", "--image-id", "ami-00000000000000000", "--instance-type", "m1.small"};
    if (dry) args.push_back("--dry-run");
    RunResult run = Aws(args, vid, vsecret);
    EXPECT_NE(run.exit_code, 0);
    EXPECT_NE(run.err.find("UnauthorizedOperation"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("User \"vic\" cannot create resource \"instances\""), std::string::npos) << run.err;
  }
  json elsewhere = CreateAccessKey("alice-elsewhere", "alice", "team-z");
  RunResult z = Aws({"describe-instances"}, elsewhere["spec"]["accessKeyId"], elsewhere["status"]["secretAccessKey"]);
  EXPECT_NE(z.exit_code, 0);
  EXPECT_NE(z.err.find("UnauthorizedOperation"), std::string::npos) << z.err;
  ASSERT_EQ(server_->Http("DELETE", "/apis/stratus.io/v1/users/vic").code, 200);
  RunResult gone = Aws({"describe-instances"}, vid, vsecret);
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.err.find("AuthFailure"), std::string::npos) << gone.err;
}

TEST_F(Ec2Test, KeyPairsAreCreatedImportedDescribedAndDeletedAndInstanceTypesListed) {
  json key = CreateAccessKey("alice-keys", "alice", "default");
  std::string id = key["spec"]["accessKeyId"], secret = key["status"]["secretAccessKey"];
  // create-key-pair: the private key comes back once; ssh-keygen derives the public key the KeyPair holds.
  RunResult made = Aws({"create-key-pair", "--key-name", "web-key", "--key-type", "ed25519"}, id, secret);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  json m = json::parse(made.out);
  std::string material = m.value("KeyMaterial", "");
  ASSERT_NE(material.find("BEGIN OPENSSH PRIVATE KEY"), std::string::npos) << made.out;
  EXPECT_EQ(m.value("KeyPairId", "").rfind("key-", 0), 0u);
  json kp = server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/keypairs/web-key").Json();
  std::string pub = kp["spec"].value("publicKey", "");
  ASSERT_EQ(pub.rfind("ssh-ed25519 ", 0), 0u) << kp.dump();
  EXPECT_EQ(kp.dump().find("PRIVATE"), std::string::npos) << "the private key is never stored";
  if (std::filesystem::exists("/usr/bin/ssh-keygen")) {
    std::string file = (dir_.path() / "web-key.pem").string();
    { std::ofstream(file) << material; }
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    RunResult derived = stratus::testing::Run({"/usr/bin/ssh-keygen", "-y", "-f", file});
    ASSERT_EQ(derived.exit_code, 0) << derived.err;
    EXPECT_EQ(derived.out.substr(0, derived.out.find(' ', 12)), pub.substr(0, pub.find(' ', 12)));
  }
  RunResult dup = Aws({"create-key-pair", "--key-name", "web-key"}, id, secret);
  EXPECT_NE(dup.exit_code, 0);
  EXPECT_NE(dup.err.find("InvalidKeyPair.Duplicate"), std::string::npos) << dup.err;
  // import-key-pair from a file (awscli sends it base64-encoded).
  std::string pubfile = (dir_.path() / "laptop.pub").string();
  {
    std::ofstream(pubfile) << "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop\n";
  }
  RunResult imported = Aws({"import-key-pair", "--key-name", "laptop", "--public-key-material", "fileb://" + pubfile},
                           id, secret);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  std::string fp = json::parse(imported.out).value("KeyFingerprint", "");
  EXPECT_EQ(fp.size(), 44u) << imported.out;
  RunResult bad = Aws({"import-key-pair", "--key-name", "junk", "--public-key-material", "bm90IGEga2V5"}, id, secret);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("InvalidKey.Format"), std::string::npos) << bad.err;
  RunResult listed = Aws({"describe-key-pairs"}, id, secret);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  json pairs = json::parse(listed.out)["KeyPairs"];
  ASSERT_EQ(pairs.size(), 2u) << listed.out;
  for (const auto& p : pairs) {
    if (p["KeyName"] == "laptop") EXPECT_EQ(p["KeyFingerprint"], fp);
    EXPECT_EQ(p["KeyType"], "ed25519");
  }
  // delete-key-pair: gone from EC2 and from the API.
  ASSERT_EQ(Aws({"delete-key-pair", "--key-name", "laptop"}, id, secret).exit_code, 0);
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/keypairs/laptop").code, 404);
  EXPECT_EQ(json::parse(Aws({"describe-key-pairs"}, id, secret).out)["KeyPairs"].size(), 1u);
  // describe-instance-types: the InstanceTypes (flavors).
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/instancetypes",
                          json{{"apiVersion", "stratus.io/v1"}, {"kind", "InstanceType"}, {"metadata", {{"name", "m1.tiny"}}},
                               {"spec", {{"vcpus", 1}, {"memoryMiB", 512}}}}.dump())
                .code,
            201);
  RunResult types = Aws({"describe-instance-types", "--instance-types", "m1.tiny"}, id, secret);
  ASSERT_EQ(types.exit_code, 0) << types.err;
  json t = json::parse(types.out)["InstanceTypes"];
  ASSERT_EQ(t.size(), 1u) << types.out;
  EXPECT_EQ(t[0]["VCpuInfo"]["DefaultVCpus"], 1);
  EXPECT_EQ(t[0]["MemoryInfo"]["SizeInMiB"], 512);
  RunResult nosuch = Aws({"describe-instance-types", "--instance-types", "m9.huge"}, id, secret);
  EXPECT_NE(nosuch.exit_code, 0);
  EXPECT_NE(nosuch.err.find("InvalidInstanceType"), std::string::npos) << nosuch.err;
}

TEST_F(Ec2Test, SecurityGroupsAndTheirRules) {
  json key = CreateAccessKey("alice-sg", "alice", "default");
  std::string id = key["spec"]["accessKeyId"], secret = key["status"]["secretAccessKey"];
  RunResult web = Aws({"create-security-group", "--group-name", "web", "--description", "web servers"}, id, secret);
  ASSERT_EQ(web.exit_code, 0) << web.err;
  std::string web_id = json::parse(web.out).value("GroupId", "");
  ASSERT_EQ(web_id.rfind("sg-", 0), 0u) << web.out;
  RunResult db = Aws({"create-security-group", "--group-name", "db", "--description", "databases"}, id, secret);
  ASSERT_EQ(db.exit_code, 0) << db.err;
  std::string db_id = json::parse(db.out).value("GroupId", "");
  RunResult dup = Aws({"create-security-group", "--group-name", "web", "--description", "again"}, id, secret);
  EXPECT_NE(dup.err.find("InvalidGroup.Duplicate"), std::string::npos) << dup.err;

  // Rules by CIDR and by group, as object rules the network reconciler enforces.
  ASSERT_EQ(Aws({"authorize-security-group-ingress", "--group-id", web_id, "--protocol", "tcp", "--port", "22", "--cidr",
                 "0.0.0.0/0"}, id, secret).exit_code, 0);
  RunResult pair = Aws({"authorize-security-group-ingress", "--group-id", db_id, "--ip-permissions",
                        "IpProtocol=tcp,FromPort=5432,ToPort=5432,UserIdGroupPairs=[{GroupId=" + web_id + "}]"},
                       id, secret);
  ASSERT_EQ(pair.exit_code, 0) << pair.err;
  RunResult again = Aws({"authorize-security-group-ingress", "--group-id", web_id, "--protocol", "tcp", "--port", "22",
                         "--cidr", "0.0.0.0/0"}, id, secret);
  EXPECT_NE(again.err.find("InvalidPermission.Duplicate"), std::string::npos) << again.err;
  json sg = server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/securitygroups/db").Json();
  ASSERT_EQ(sg["spec"]["ingress"].size(), 1u) << sg.dump();
  EXPECT_EQ(sg["spec"]["ingress"][0]["securityGroup"], "web");
  EXPECT_EQ(sg["spec"]["ingress"][0]["fromPort"], 5432);
  RunResult described = Aws({"describe-security-groups", "--group-ids", db_id}, id, secret);
  ASSERT_EQ(described.exit_code, 0) << described.err;
  json perms = json::parse(described.out)["SecurityGroups"][0]["IpPermissions"];
  ASSERT_EQ(perms.size(), 1u) << described.out;
  EXPECT_EQ(perms[0]["UserIdGroupPairs"][0]["GroupId"], web_id);
  EXPECT_EQ(perms[0]["FromPort"], 5432);

  // Revoke: gone; revoking it again is InvalidPermission.NotFound.
  ASSERT_EQ(Aws({"revoke-security-group-ingress", "--group-id", web_id, "--protocol", "tcp", "--port", "22", "--cidr",
                 "0.0.0.0/0"}, id, secret).exit_code, 0);
  EXPECT_TRUE(server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/securitygroups/web").Json()["spec"]
                  .value("ingress", json::array()).empty());
  RunResult twice = Aws({"revoke-security-group-ingress", "--group-id", web_id, "--protocol", "tcp", "--port", "22",
                         "--cidr", "0.0.0.0/0"}, id, secret);
  EXPECT_NE(twice.err.find("InvalidPermission.NotFound"), std::string::npos) << twice.err;
  RunResult bad = Aws({"authorize-security-group-ingress", "--group-id", web_id, "--protocol", "47", "--port", "1",  // GRE: a number awscli passes on
                       "--cidr", "0.0.0.0/0"}, id, secret);
  EXPECT_NE(bad.err.find("InvalidParameterValue"), std::string::npos) << bad.err;

  // An instance using a group keeps it; once gone, the group can be deleted.
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/namespaces/default/instances",
                          json{{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"}, {"metadata", {{"name", "app"}}},
                               {"spec", {{"instanceType", "m1.small"}, {"image", "debian"}, {"securityGroups", {"db"}}}}}
                              .dump())
                .code,
            201);
  RunResult held = Aws({"delete-security-group", "--group-id", db_id}, id, secret);
  EXPECT_NE(held.err.find("DependencyViolation"), std::string::npos) << held.err;
  ASSERT_EQ(server_->Http("DELETE", "/apis/stratus.io/v1/namespaces/default/instances/app").code, 200);
  ASSERT_TRUE(Eventually([&] { return Aws({"delete-security-group", "--group-id", db_id}, id, secret).exit_code == 0; }, 30, 200));
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/securitygroups/db").code, 404);
  RunResult gone = Aws({"describe-security-groups", "--group-ids", db_id}, id, secret);
  EXPECT_NE(gone.err.find("InvalidGroup.NotFound"), std::string::npos) << gone.err;
}

TEST_F(Ec2Test, VpcAndSubnetsAreTheNamespaceAndItsNetworks) {
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"},
                         "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: lan}\nspec: {cidr: 10.80.0.0/24}\n")
                .exit_code,
            0);
  json key = CreateAccessKey("alice-vpc", "alice", "default");
  std::string id = key["spec"]["accessKeyId"], secret = key["status"]["secretAccessKey"];
  RunResult vpcs = Aws({"describe-vpcs"}, id, secret);
  ASSERT_EQ(vpcs.exit_code, 0) << vpcs.err;
  std::string vpc = json::parse(vpcs.out)["Vpcs"][0].value("VpcId", "");
  ASSERT_EQ(vpc.rfind("vpc-", 0), 0u) << vpcs.out;
  RunResult subnets = Aws({"describe-subnets", "--filters", "Name=vpc-id,Values=" + vpc}, id, secret);
  ASSERT_EQ(subnets.exit_code, 0) << subnets.err;
  json s = json::parse(subnets.out)["Subnets"];
  ASSERT_EQ(s.size(), 1u) << subnets.out;
  EXPECT_EQ(s[0]["CidrBlock"], "10.80.0.0/24");
  EXPECT_EQ(s[0]["AvailableIpAddressCount"], 253);
  EXPECT_EQ(s[0]["SubnetId"].get<std::string>().rfind("subnet-", 0), 0u);
}

// With an embedded agent on libvirt's test driver, so that volumes become available and attach.
class Ec2VolumeTest : public Ec2Test {
 protected:
  std::vector<std::string> ExtraFlags() override {
    agent_port_ = ReservedPort::Make();
    return {"--agent=true", "--libvirt-uri", "test:///default", "--node", "node-a", "--agent-listen",
            agent_port_.hostport(), "--reserved-memory-mib", "0", "--heartbeat-seconds", "2"};
  }
  // The EC2 state of a volume, as describe-volumes answers it.
  std::string VolumeState(const std::string& vol_id, const std::string& id, const std::string& secret) {
    RunResult d = Aws({"describe-volumes", "--volume-ids", vol_id}, id, secret);
    if (d.exit_code != 0) return "error: " + d.err;
    json v = json::parse(d.out, nullptr, false);
    if (!v.is_object() || v["Volumes"].empty()) return "none";
    return v["Volumes"][0].value("State", "");
  }
  ReservedPort agent_port_;
};

TEST_F(Ec2VolumeTest, CreateAttachDetachAndDeleteAVolume) {
  std::ofstream(dir_.path() / "vmlinuz") << std::string(4096, 'k');
  auto applied = server_->Ctl({"apply", "-f", "-"},
                              "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: k}\nspec: {type: kernel, source: "
                              "{url: file://" + (dir_.path() / "vmlinuz").string() + "}}\n---\n"
                              "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\n"
                              "spec: {vcpus: 1, memoryMiB: 256}\n---\n"
                              "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: vm1}\n"
                              "spec: {instanceType: m1.small, kernelImage: k, powerState: Stopped}\n");
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  json key = CreateAccessKey("alice-vols", "alice", "default");
  std::string id = key["spec"]["accessKeyId"], secret = key["status"]["secretAccessKey"];
  std::string inst_id;
  ASSERT_TRUE(Eventually([&] {
    // Stopped: libvirt's test driver cannot hot-plug (virDomainAttachDeviceFlags is not supported there), so the
    // disk goes into the definition; hot-plug into a running guest is the e2e tests' (real QEMU).
    RunResult d = Aws({"describe-instances", "--filters", "Name=instance-state-name,Values=stopped"}, id, secret);
    json j = json::parse(d.out, nullptr, false);
    if (!j.is_object() || j["Reservations"].empty()) return false;
    inst_id = j["Reservations"][0]["Instances"][0].value("InstanceId", "");
    return true;
  }, 60, 200)) << server_->log();

  RunResult made = Aws({"create-volume", "--size", "1", "--availability-zone", "default", "--tag-specifications",
                        "ResourceType=volume,Tags=[{Key=Name,Value=data}]"},
                       id, secret);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string vol = json::parse(made.out).value("VolumeId", "");
  ASSERT_EQ(vol.rfind("vol-", 0), 0u) << made.out;
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/volumes/data").Json()["spec"]["size"], "1Gi");
  ASSERT_TRUE(Eventually([&] { return VolumeState(vol, id, secret) == "available"; }, 60, 200))
      << VolumeState(vol, id, secret);

  RunResult attach = Aws({"attach-volume", "--volume-id", vol, "--instance-id", inst_id, "--device", "/dev/sdf"}, id, secret);
  ASSERT_EQ(attach.exit_code, 0) << attach.err;
  EXPECT_EQ(json::parse(attach.out).value("State", ""), "attaching");
  json inst = server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/instances/vm1").Json();
  EXPECT_EQ(inst["spec"]["volumes"][0]["device"], "vdf") << inst.dump();
  ASSERT_TRUE(Eventually([&] {
    json v = server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/volumes/data").Json();
    return v.contains("status") && v["status"].value("phase", "") == "InUse";
  }, 60, 200)) << server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/volumes/data").body << "\n"
                << server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/instances/vm1").body;
  EXPECT_EQ(VolumeState(vol, id, secret), "in-use");
  RunResult described = Aws({"describe-volumes", "--volume-ids", vol}, id, secret);
  json att = json::parse(described.out)["Volumes"][0]["Attachments"];
  ASSERT_EQ(att.size(), 1u) << described.out;
  EXPECT_EQ(att[0]["InstanceId"], inst_id);
  EXPECT_EQ(att[0]["Device"], "/dev/vdf");

  // In use: no delete, no second attachment.
  RunResult busy = Aws({"delete-volume", "--volume-id", vol}, id, secret);
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("VolumeInUse"), std::string::npos) << busy.err;
  RunResult again = Aws({"attach-volume", "--volume-id", vol, "--instance-id", inst_id, "--device", "/dev/sdg"}, id, secret);
  EXPECT_NE(again.err.find("VolumeInUse"), std::string::npos) << again.err;
  RunResult baddev = Aws({"detach-volume", "--volume-id", "vol-nothex"}, id, secret);
  EXPECT_NE(baddev.err.find("InvalidVolumeID.Malformed"), std::string::npos) << baddev.err;

  RunResult detach = Aws({"detach-volume", "--volume-id", vol}, id, secret);
  ASSERT_EQ(detach.exit_code, 0) << detach.err;
  ASSERT_TRUE(Eventually([&] { return VolumeState(vol, id, secret) == "available"; }, 60, 200))
      << VolumeState(vol, id, secret);
  RunResult idle = Aws({"detach-volume", "--volume-id", vol}, id, secret);
  EXPECT_NE(idle.err.find("IncorrectState"), std::string::npos) << idle.err;

  ASSERT_EQ(Aws({"delete-volume", "--volume-id", vol}, id, secret).exit_code, 0);
  ASSERT_TRUE(Eventually([&] {
    return server_->Http("GET", "/apis/stratus.io/v1/namespaces/default/volumes/data").code == 404;
  }, 60, 200));
  RunResult gone = Aws({"describe-volumes", "--volume-ids", vol}, id, secret);
  EXPECT_NE(gone.err.find("InvalidVolume.NotFound"), std::string::npos) << gone.err;
}

class Ec2TlsTest : public Ec2Test {
 protected:
  bool Secure() const override { return true; }
};

TEST_F(Ec2TlsTest, ServedOverHttpsWithTheApisCertificate) {
  json key = CreateAccessKey("alice-tls", "alice", "default");
  std::string id = key["spec"]["accessKeyId"], secret = key["status"]["secretAccessKey"];
  RunResult ok = Aws({"describe-regions"}, id, secret);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("us-east-1"), std::string::npos) << ok.out;
  // Without the CA, awscli refuses the server's certificate.
  std::string home = (dir_.path() / "home").string();
  RunResult blind = stratus::testing::Run(
      {kAws, "ec2", "describe-regions", "--endpoint-url", "https://" + ec2_port_.hostport(), "--region", "us-east-1",
       "--cli-connect-timeout", "10"},
      "",
      {"HOME=" + home, "AWS_ACCESS_KEY_ID=" + id, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_CONFIG_FILE=" + home + "/none",
       "AWS_SHARED_CREDENTIALS_FILE=" + home + "/none", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1"},
      120);
  EXPECT_NE(blind.exit_code, 0);
  EXPECT_NE(blind.err.find("SSL"), std::string::npos) << blind.err;
}

}  // namespace
}  // namespace stratus::testing
