// Floating addresses through the real stratusd (control plane; instances bound to a node by hand, so IPAM gives
// them private addresses without an agent): an Address gets one ip from its AddressPool, recorded in the pool's
// status.allocations, kept across a kill -9; no two Addresses share an ip, even in a burst; a fixed ip is honoured
// or refused naming spec.ip; association fills status with the instance's private ip and node; deleting releases
// the ip; a pool in use cannot be deleted; the `addresses` quota (default 10) refuses with 403 QuotaExceeded; and
// the EC2 actions through the real awscli.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <thread>

#include "harness.h"

namespace stratus::testing {
namespace {

const std::string kApi = "/apis/stratus.io/v1";
const std::string kNs = kApi + "/namespaces/default";
const char* kAws = "/usr/bin/aws";

class AddressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ec2_port_ = ReservedPort::Make();
    ASSERT_NE(ec2_port_.port(), 0);
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data",
                                              std::vector<std::string>{"--ec2-listen", ec2_port_.hostport()});
    ASSERT_TRUE(server_->Start()) << server_->log();
    auto a = server_->Ctl({"apply", "-f", "-"},
                          "apiVersion: stratus.io/v1\nkind: AddressPool\nmetadata:\n  name: public\n  labels: "
                          "{stratus.io/default-pool: \"true\"}\nspec: {cidr: 203.0.113.0/29, exclude: [203.0.113.0], "
                          "interface: eth0}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: lan, namespace: default}\n"
                          "spec: {cidr: 10.61.0.0/24}\n---\n"
                          "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: web, namespace: default}\n"
                          "spec:\n  resources: {vcpus: 1, memoryMiB: 64}\n  kernelImage: k\n  nodeName: node-a\n"
                          "  networks: [{network: lan}]\n---\n"
                          "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: db, namespace: default}\n"
                          "spec:\n  resources: {vcpus: 1, memoryMiB: 64}\n  kernelImage: k\n  nodeName: node-b\n"
                          "  networks: [{network: lan}]\n");
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  }

  HttpResult MakeAddress(const std::string& name, const std::string& ip = "", const std::string& instance = "") {
    json spec = {{"pool", "public"}};
    if (!ip.empty()) spec["ip"] = ip;
    if (!instance.empty()) spec["instance"] = instance;
    return server_->Http("POST", kNs + "/addresses",
                         json{{"apiVersion", "stratus.io/v1"}, {"kind", "Address"}, {"metadata", {{"name", name}}},
                              {"spec", spec}}
                             .dump());
  }
  json Get(const std::string& path) { return server_->Http("GET", path).Json(); }
  std::string Status(const std::string& addr, const char* field) {
    json a = Get(kNs + "/addresses/" + addr);
    return a.contains("status") ? a["status"].value(field, "") : "";
  }
  json Condition(const std::string& addr, const std::string& type) {
    json a = Get(kNs + "/addresses/" + addr);
    if (!a.contains("status") || !a["status"].contains("conditions")) return json::object();
    for (const auto& c : a["status"]["conditions"]) {
      if (c.value("type", "") == type) return c;
    }
    return json::object();
  }
  // ip -> Address namespace/name, from the pool's record.
  std::map<std::string, std::string> Allocations() {
    std::map<std::string, std::string> out;
    json p = Get(kApi + "/addresspools/public");
    if (!p.contains("status") || !p["status"].contains("allocations")) return out;
    for (const auto& [ip, h] : p["status"]["allocations"].items()) out[ip] = h.value("address", "");
    return out;
  }
  std::string PrivateIp(const std::string& inst) {
    json n = Get(kNs + "/networks/lan");
    if (!n.contains("status") || !n["status"].contains("allocations")) return "";
    for (const auto& [ip, a] : n["status"]["allocations"].items()) {
      if (a.value("instance", "") == "default/" + inst) return ip;
    }
    return "";
  }

  RunResult Aws(std::vector<std::string> args, const std::string& key_id, const std::string& secret) {
    args.insert(args.begin(), {kAws, "ec2"});
    std::vector<std::string> common = {"--endpoint-url", "http://" + ec2_port_.hostport(), "--region", "us-east-1",
                                       "--output", "json", "--cli-connect-timeout", "10"};
    args.insert(args.end(), common.begin(), common.end());
    std::string home = (dir_.path() / "home").string();
    std::filesystem::create_directories(home);
    return stratus::testing::Run(args, "",
                                 {"HOME=" + home, "AWS_ACCESS_KEY_ID=" + key_id, "AWS_SECRET_ACCESS_KEY=" + secret,
                                  "AWS_CONFIG_FILE=" + home + "/none", "AWS_SHARED_CREDENTIALS_FILE=" + home + "/none",
                                  "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1"},
                                 120);
  }

  TempDir dir_;
  ReservedPort ec2_port_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AddressTest, AllocatedOnceNeverSharedFixedIpAssociationReleaseAndPoolInUse) {
  ASSERT_EQ(MakeAddress("a1").code, 201);
  ASSERT_TRUE(Eventually([&] { return !Status("a1", "ip").empty(); }, 20)) << Get(kNs + "/addresses/a1").dump();
  std::string ip1 = Status("a1", "ip");
  EXPECT_EQ(ip1.rfind("203.0.113.", 0), 0u);
  EXPECT_NE(ip1, "203.0.113.0") << "excluded";
  EXPECT_EQ(Allocations()[ip1], "default/a1");
  EXPECT_EQ(Status("a1", "phase"), "Allocated");

  // A fixed ip that is free is honoured; the same ip again is refused naming the field; one outside too.
  const std::string fixed = ip1 == "203.0.113.5" ? "203.0.113.6" : "203.0.113.5";
  ASSERT_EQ(MakeAddress("a2", fixed).code, 201);
  ASSERT_TRUE(Eventually([&] { return Status("a2", "ip") == fixed; }, 20)) << Get(kNs + "/addresses/a2").dump();
  ASSERT_EQ(MakeAddress("taken", fixed).code, 201);
  ASSERT_EQ(MakeAddress("outside", "198.51.100.7").code, 201);
  ASSERT_TRUE(Eventually([&] { return Status("taken", "phase") == "Failed" && Status("outside", "phase") == "Failed"; },
                         20))
      << Get(kNs + "/addresses/taken").dump() << Get(kNs + "/addresses/outside").dump() << server_->log();
  EXPECT_EQ(Condition("taken", "Ready").value("message", ""), "spec.ip: " + fixed + " is held by Address default/a2");
  EXPECT_EQ(Condition("outside", "Allocated").value("message", "").rfind("spec.ip: 198.51.100.7 is outside pool", 0),
            0u);
  // spec.ip and spec.pool are immutable.
  auto change = server_->Http("PATCH", kNs + "/addresses/a2", R"({"spec":{"ip":"203.0.113.2"}})",
                              "application/merge-patch+json");
  EXPECT_EQ(change.code, 422) << change.body;
  ASSERT_EQ(server_->Http("DELETE", kNs + "/addresses/taken").code, 200);
  ASSERT_EQ(server_->Http("DELETE", kNs + "/addresses/outside").code, 200);

  // A burst from several threads fills the pool (7 usable) without two holders of one ip; the rest wait.
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) threads.emplace_back([&, i] { MakeAddress("b" + std::to_string(i)); });
  for (auto& t : threads) t.join();
  auto settled = [&] {
    int with_ip = 0, exhausted = 0;
    for (int i = 0; i < 6; ++i) {
      std::string n = "b" + std::to_string(i);
      if (!Status(n, "ip").empty()) ++with_ip;
      else if (Condition(n, "Allocated").value("reason", "") == "PoolExhausted") ++exhausted;
    }
    return with_ip == 5 && exhausted == 1;
  };
  ASSERT_TRUE(Eventually(settled, 30)) << Get(kApi + "/addresspools/public").dump();
  std::set<std::string> ips = {Status("a1", "ip"), Status("a2", "ip")};
  for (int i = 0; i < 6; ++i) {
    std::string ip = Status("b" + std::to_string(i), "ip");
    if (!ip.empty()) EXPECT_TRUE(ips.insert(ip).second) << ip << " held twice";
  }
  EXPECT_EQ(ips.size(), 7u);
  EXPECT_EQ(Allocations().size(), 7u);
  json pool = Get(kApi + "/addresspools/public");
  EXPECT_EQ(pool["status"].value("allocated", 0), 7);
  EXPECT_EQ(pool["status"].value("free", -1), 0);

  // Association: the instance's private address and node.
  ASSERT_TRUE(Eventually([&] { return !PrivateIp("web").empty(); }, 20));
  ASSERT_EQ(server_->Http("PATCH", kNs + "/addresses/a1", R"({"spec":{"instance":"web"}})",
                          "application/merge-patch+json").code, 200);
  ASSERT_TRUE(Eventually([&] { return Status("a1", "phase") == "Associated"; }, 20)) << Get(kNs + "/addresses/a1").dump();
  EXPECT_EQ(Status("a1", "privateIp"), PrivateIp("web"));
  EXPECT_EQ(Status("a1", "node"), "node-a");
  EXPECT_EQ(Status("a1", "instance"), "web");
  EXPECT_EQ(Condition("a1", "Ready").value("status", ""), "True");
  // Re-association moves it; the ip stays.
  ASSERT_TRUE(Eventually([&] { return !PrivateIp("db").empty(); }, 20));
  ASSERT_EQ(server_->Http("PATCH", kNs + "/addresses/a1", R"({"spec":{"instance":"db"}})",
                          "application/merge-patch+json").code, 200);
  ASSERT_TRUE(Eventually([&] { return Status("a1", "node") == "node-b"; }, 20));
  EXPECT_EQ(Status("a1", "privateIp"), PrivateIp("db"));
  EXPECT_EQ(Status("a1", "ip"), ip1);

  // kill -9 and restart: every holder keeps its ip.
  std::map<std::string, std::string> before = Allocations();
  server_->Kill(SIGKILL);
  ASSERT_TRUE(server_->Start()) << server_->log();
  ASSERT_TRUE(Eventually([&] { return Get(kApi + "/addresspools/public").contains("status"); }, 20));
  EXPECT_EQ(Allocations(), before);
  EXPECT_EQ(Status("a1", "ip"), ip1);

  // A pool in use cannot be deleted.
  auto del_pool = server_->Http("DELETE", kApi + "/addresspools/public");
  EXPECT_EQ(del_pool.code, 409) << del_pool.body;
  EXPECT_NE(del_pool.body.find("default/a1"), std::string::npos) << del_pool.body;

  // Deleting an Address releases its ip, which the waiting one then gets.
  ASSERT_EQ(server_->Http("DELETE", kNs + "/addresses/a2").code, 200);
  ASSERT_TRUE(Eventually([&] { return Allocations().count(fixed) && Allocations()[fixed] != "default/a2"; }, 20))
      << Get(kApi + "/addresspools/public").dump();
  ASSERT_TRUE(Eventually([&] {
    int with_ip = 0;
    for (int i = 0; i < 6; ++i) with_ip += Status("b" + std::to_string(i), "ip").empty() ? 0 : 1;
    return with_ip == 6;
  }, 20));
}

TEST_F(AddressTest, QuotaCountsAddresses) {
  ASSERT_EQ(server_->Http("POST", kNs + "/quotas",
                          json{{"metadata", {{"name", "q"}}}, {"spec", {{"hard", {{"addresses", 2}}}}}}.dump()).code,
            201);
  ASSERT_EQ(MakeAddress("q1").code, 201);
  ASSERT_EQ(MakeAddress("q2").code, 201);
  auto over = MakeAddress("q3");
  EXPECT_EQ(over.code, 403) << over.body;
  EXPECT_EQ(over.Json().value("reason", ""), "QuotaExceeded");
  EXPECT_NE(over.Json().value("message", "").find("addresses"), std::string::npos) << over.body;
  // Without a Quota object the default (10) applies.
  ASSERT_EQ(server_->Http("DELETE", kNs + "/quotas/q").code, 200);
  for (int i = 3; i <= 10; ++i) ASSERT_EQ(MakeAddress("q" + std::to_string(i)).code, 201) << i;
  auto eleventh = MakeAddress("q11");
  EXPECT_EQ(eleventh.code, 403) << eleventh.body;
  EXPECT_EQ(eleventh.Json().value("reason", ""), "QuotaExceeded");
}

TEST_F(AddressTest, AwscliAllocateAssociateDescribeDisassociateRelease) {
  if (!std::filesystem::exists(kAws)) GTEST_FAIL() << kAws << " is missing: scripts/install-deps.sh installs awscli";
  ASSERT_FALSE(server_->MakeUser("alice", "default", "member").empty());
  auto k = server_->Http("POST", kApi + "/accesskeys",
                         json{{"apiVersion", "stratus.io/v1"}, {"kind", "AccessKey"}, {"metadata", {{"name", "ak"}}},
                              {"spec", {{"user", "alice"}, {"namespace", "default"}}}}
                             .dump());
  ASSERT_EQ(k.code, 201) << k.body;
  std::string id = k.Json()["spec"].value("accessKeyId", ""), secret = k.Json()["status"].value("secretAccessKey", "");

  RunResult alloc = Aws({"allocate-address", "--domain", "vpc"}, id, secret);
  ASSERT_EQ(alloc.exit_code, 0) << alloc.err;
  json a = json::parse(alloc.out);
  std::string alloc_id = a.value("AllocationId", ""), public_ip = a.value("PublicIp", "");
  EXPECT_EQ(alloc_id.rfind("eipalloc-", 0), 0u);
  EXPECT_EQ(alloc_id.size(), 26u);
  EXPECT_EQ(public_ip.rfind("203.0.113.", 0), 0u) << alloc.out;
  EXPECT_EQ(a.value("Domain", ""), "vpc");
  // The same object stratusctl shows.
  RunResult got = server_->Ctl({"get", "addresses", "-o", "json"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  ASSERT_EQ(json::parse(got.out)["items"].size(), 1u);
  EXPECT_EQ(json::parse(got.out)["items"][0]["status"].value("ip", ""), public_ip);
  RunResult table = server_->Ctl({"get", "addresses"});
  for (const char* col : {"NAME", "IP", "POOL", "INSTANCE", "PRIVATE-IP", "PHASE"}) {
    EXPECT_NE(table.out.find(col), std::string::npos) << table.out;
  }
  RunResult pools = server_->Ctl({"get", "addresspools"});
  for (const char* col : {"CIDR", "INTERFACE", "ALLOCATED", "FREE"}) {
    EXPECT_NE(pools.out.find(col), std::string::npos) << pools.out;
  }

  // The instance's EC2 id, from describe-instances.
  RunResult di = Aws({"describe-instances", "--filters", "Name=tag:Name,Values=web"}, id, secret);
  ASSERT_EQ(di.exit_code, 0) << di.err;
  std::string iid = json::parse(di.out)["Reservations"][0]["Instances"][0].value("InstanceId", "");
  ASSERT_EQ(iid.rfind("i-", 0), 0u) << di.out;
  ASSERT_TRUE(Eventually([&] { return !PrivateIp("web").empty(); }, 20));

  RunResult assoc = Aws({"associate-address", "--allocation-id", alloc_id, "--instance-id", iid}, id, secret);
  ASSERT_EQ(assoc.exit_code, 0) << assoc.err;
  std::string assoc_id = json::parse(assoc.out).value("AssociationId", "");
  EXPECT_EQ(assoc_id.rfind("eipassoc-", 0), 0u) << assoc.out;

  auto described = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"describe-addresses"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Aws(args, id, secret);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out)["Addresses"] : json::array();
  };
  ASSERT_TRUE(Eventually([&] {
    json d = described({"--allocation-ids", alloc_id});
    return d.size() == 1 && d[0].value("PrivateIpAddress", "") == PrivateIp("web");
  }, 30));
  json d = described({"--filters", "Name=instance-id,Values=" + iid});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].value("AssociationId", ""), assoc_id);
  EXPECT_EQ(d[0].value("PublicIp", ""), public_ip);
  EXPECT_EQ(described({"--filters", "Name=public-ip,Values=203.0.113.*"}).size(), 1u);
  EXPECT_EQ(described({"--filters", "Name=domain,Values=standard"}).size(), 0u);
  EXPECT_EQ(described({"--public-ips", public_ip}).size(), 1u);

  // Released while associated: EC2's InvalidIPAddress.InUse. Unknown ids: EC2's codes.
  RunResult busy = Aws({"release-address", "--allocation-id", alloc_id}, id, secret);
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("InvalidIPAddress.InUse"), std::string::npos) << busy.err;
  RunResult nf = Aws({"release-address", "--allocation-id", "eipalloc-0123456789abcdef0"}, id, secret);
  EXPECT_NE(nf.err.find("InvalidAllocationID.NotFound"), std::string::npos) << nf.err;
  RunResult bad = Aws({"disassociate-address", "--association-id", "nope"}, id, secret);
  EXPECT_NE(bad.err.find("InvalidAssociationID.Malformed"), std::string::npos) << bad.err;
  RunResult noreassoc = Aws({"associate-address", "--allocation-id", alloc_id, "--instance-id", iid,
                             "--no-allow-reassociation"}, id, secret);
  EXPECT_EQ(noreassoc.exit_code, 0) << "the same instance again is idempotent: " << noreassoc.err;

  RunResult dis = Aws({"disassociate-address", "--association-id", assoc_id}, id, secret);
  ASSERT_EQ(dis.exit_code, 0) << dis.err;
  ASSERT_TRUE(Eventually([&] { return Status(json::parse(got.out)["items"][0]["metadata"].value("name", ""), "phase") ==
                                      "Allocated"; }, 20));
  EXPECT_EQ(described({"--filters", "Name=instance-id,Values=" + iid}).size(), 0u);
  RunResult rel = Aws({"release-address", "--allocation-id", alloc_id}, id, secret);
  ASSERT_EQ(rel.exit_code, 0) << rel.err;
  EXPECT_EQ(described({}).size(), 0u);
  ASSERT_TRUE(Eventually([&] { return Allocations().empty(); }, 20)) << Get(kApi + "/addresspools/public").dump();
}

}  // namespace
}  // namespace stratus::testing
