// IPAM through the real stratusd (control plane only, no agent): every instance NIC gets an address recorded in
// the Network's status.allocations; the addresses survive a kill -9 of the server; a requested address that is
// taken, the gateway or outside the network is refused on the instance with the field named; a deleted instance's
// address is released and then given to the next asker, never to two at once.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>

#include "harness.h"

namespace stratus::testing {
namespace {

const char* kNs = "/apis/stratus.io/v1/namespaces/default";

class IpamApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data");
    ASSERT_TRUE(server_->Start()) << server_->log();
    auto a = server_->Ctl({"apply", "-f", "-"},
                          "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: lan}\n"
                          "spec: {cidr: 10.60.0.0/29, mode: isolated}\n");
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  }
  RunResult Apply(const std::string& name, const std::string& nic) {
    return server_->Ctl({"apply", "-f", "-"},
                        "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name +
                            "}\nspec:\n  resources: {vcpus: 1, memoryMiB: 64}\n  kernelImage: k\n  networks: [" + nic +
                            "]\n");
  }
  // ip -> instance name, from the Network's status.
  std::map<std::string, std::string> Allocations() {
    std::map<std::string, std::string> out;
    json n = server_->Http("GET", std::string(kNs) + "/networks/lan").Json();
    if (!n.contains("status") || !n["status"].contains("allocations")) return out;
    for (const auto& [ip, a] : n["status"]["allocations"].items()) {
      std::string inst = a.value("instance", "");
      out[ip] = inst.substr(inst.find('/') + 1);
    }
    return out;
  }
  std::string AddressOf(const std::string& inst) {
    for (const auto& [ip, who] : Allocations()) {
      if (who == inst) return ip;
    }
    return "";
  }
  json Condition(const std::string& inst, const std::string& type) {
    json j = server_->Http("GET", std::string(kNs) + "/instances/" + inst).Json();
    if (!j.contains("status") || !j["status"].contains("conditions")) return json();
    for (const auto& c : j["status"]["conditions"]) {
      if (c.value("type", "") == type) return c;
    }
    return json();
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(IpamApiTest, AddressesAreStableRefusedClearlyAndReleasedOnce) {
  ASSERT_EQ(Apply("a", "{network: lan}").exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return !AddressOf("a").empty(); }, 20))
      << server_->Http("GET", std::string(kNs) + "/networks/lan").body;
  std::string a_ip = AddressOf("a");
  EXPECT_NE(a_ip, "10.60.0.1") << "never the gateway";
  // b asks for a particular free address (a's was picked by hash).
  const std::string b_ip = a_ip == "10.60.0.5" ? "10.60.0.4" : "10.60.0.5";
  ASSERT_EQ(Apply("b", "{network: lan, ip: " + b_ip + "}").exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return AddressOf("b") == b_ip; }, 20))
      << server_->Http("GET", std::string(kNs) + "/networks/lan").body;
  json n = server_->Http("GET", std::string(kNs) + "/networks/lan").Json();
  EXPECT_EQ(n["status"].value("allocated", 0), 2);

  // kill -9 and restart on the same data dir: the same owners keep the same addresses.
  server_->Kill(SIGKILL);
  ASSERT_TRUE(server_->Start()) << server_->log();
  ASSERT_TRUE(Eventually([&] { return AddressOf("a") == a_ip && AddressOf("b") == b_ip; }, 20));

  // Refusals name the field and the reason, on the instance that asked.
  struct Bad {
    std::string inst, nic, says;
  };
  for (const auto& bad : {Bad{"c", "{network: lan, ip: " + b_ip + "}", b_ip},
                          Bad{"d", "{network: lan, ip: 10.60.0.1}", "gateway"},
                          Bad{"e", "{network: lan, ip: 10.61.0.9}", "10.61.0.9"}}) {
    ASSERT_EQ(Apply(bad.inst, bad.nic).exit_code, 0);
    json c;
    EXPECT_TRUE(Eventually([&] {
      c = Condition(bad.inst, "AddressesAllocated");
      return !c.is_null() && c.value("reason", "") == "AddressRefused";
    }, 20)) << bad.inst << ": " << c.dump();
    std::string msg = c.value("message", "");
    EXPECT_NE(msg.find("spec.networks[0].ip"), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad.says), std::string::npos) << msg;
    EXPECT_EQ(AddressOf(bad.inst), "") << "refused: nothing allocated";
  }
  EXPECT_EQ(AddressOf("b"), b_ip) << "the holder keeps it";

  // A /29 has 5 addresses for instances (6 hosts minus the gateway): fill it, and the next one is told so.
  for (const std::string& inst : {"f", "g", "h"}) ASSERT_EQ(Apply(inst, "{network: lan}").exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Allocations().size() == 5; }, 20));
  ASSERT_EQ(Apply("i", "{network: lan}").exit_code, 0);
  json full;
  EXPECT_TRUE(Eventually([&] {
    full = Condition("i", "AddressesAllocated");
    return !full.is_null() && full.value("message", "").find("no free address") != std::string::npos;
  }, 20)) << full.dump();

  // Deleting b frees its address exactly once: c (which asked for it) or i may take it, never both.
  auto d = server_->Ctl({"delete", "instance", "b"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  ASSERT_TRUE(Eventually([&] { return AddressOf("b").empty() && Allocations().count(b_ip) == 1; }, 20))
      << server_->Http("GET", std::string(kNs) + "/networks/lan").body;
  auto after = Allocations();
  EXPECT_EQ(after.size(), 5u);
  EXPECT_NE(after[b_ip], "b");
  std::map<std::string, int> holders;
  for (const auto& [ip, who] : after) holders[who]++;
  for (const auto& [who, count] : holders) EXPECT_EQ(count, 1) << who << " holds one address";
  EXPECT_EQ(AddressOf("a"), a_ip) << "others are not moved";
}

}  // namespace
}  // namespace stratus::testing
