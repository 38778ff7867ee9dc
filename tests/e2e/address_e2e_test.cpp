// Floating addresses end to end on qemu:///system (TCG), inside the network namespace libvirtd runs in
// (STRATUS_NETNS). The "outside" is a second network namespace this test makes, joined to the node's namespace
// by a veth pair: the node's end is the AddressPool's interface. A guest with a floating address answers the
// outside's HTTP request sent to that address (DNAT; its security group decides, live), and the guest's own
// probe of a listener outside is seen there coming from the floating address (SNAT). Deleting the Address takes
// the /32 off the interface and the address stops answering.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "e2e.h"

namespace stratus::testing {
namespace {

// The outside listener: answers every connection with the address it came from, one line per peer on stdout.
const char* kOutsideListener = R"PY(
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("LISTENING", flush=True)
while True:
    c, peer = s.accept()
    c.settimeout(2)
    try:
        c.recv(1024)
        c.sendall(("HTTP/1.0 200 OK\r\n\r\nSTRATUS-PEER seen-from-%s\n" % peer[0]).encode())
    except OSError:
        pass
    c.close()
    print("PEER", peer[0], flush=True)
)PY";

class AddressE2eTest : public NetnsE2eTest {
 protected:
  void SetUp() override {
    NetnsE2eTest::SetUp();
    if (HasFatalFailure()) return;
    std::string err = outside_.Make("fip", "10.98.0");
    ASSERT_TRUE(err.empty()) << err;
  }
  void TearDown() override {
    if (listener_ > 0) {
      ::kill(listener_, SIGKILL);
      ::waitpid(listener_, nullptr, 0);
    }
    NetnsE2eTest::TearDown();  // stops our dnsmasq too
  }

  OutsideNetns outside_;
  pid_t listener_ = 0;
};

TEST_F(AddressE2eTest, FloatingAddressInAndOut) {
  ReservedPort agent_port = ReservePort();
  std::vector<std::string> flags = {"--agent=true", "--networking", "true", "--netns", NetnsName()};
  for (auto& f : AgentFlags(agent_port)) flags.push_back(f);
  ServerProcess server(dir_.path() / "data", flags);
  ASSERT_TRUE(server.Start()) << server.log();
  std::string tag = std::to_string(::getpid());
  std::string vm = "fip-" + tag;
  domains_ = {"stratus_default_" + vm};
  auto logs = [&] { return server.Ctl({"logs", "instance/" + vm}).out; };
  auto get = [&](const std::string& path) { return server.Http("GET", path).Json(); };
  auto dump = [&] {
    return "\n--- console:\n" + logs() + "\n--- address:\n" + server.Http("GET", std::string(kNs) + "/addresses/pub").body +
           "\n--- ruleset:\n" + stratus::testing::Run({"/bin/ip", "netns", "exec", NetnsName(), "/usr/sbin/nft", "list", "table", "inet",
                                     "stratus"}).out +
           "\n--- server:\n" + server.log();
  };

  // The outside listener the guest probes.
  std::string listener_log = (dir_.path() / "outside.log").string();
  listener_ = SpawnLogged({"/bin/ip", "netns", "exec", outside_.name, "/usr/bin/python3", "-u", "-c", kOutsideListener,
                           "10.98.0.2", "8081"},
                          listener_log);
  ASSERT_TRUE(Eventually([&] { return ReadFile(listener_log).find("LISTENING") != std::string::npos; }, 30))
      << ReadFile(listener_log);

  std::string base = Manifests(vm).substr(0, Manifests(vm).find("---\napiVersion: stratus.io/v1\nkind: Instance\n"));
  auto ap = server.Ctl(
      {"apply", "-f", "-"},
      base + "---\napiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: fipnet-" + tag + "}\n"
             "spec: {cidr: 10.79.0.0/24, mode: nat}\n---\n"
             "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: web}\nspec:\n  ingress:\n"
             "    - {protocol: tcp, fromPort: 8080, toPort: 8080, cidr: 0.0.0.0/0}\n---\n"
             "apiVersion: stratus.io/v1\nkind: AddressPool\nmetadata: {name: fip-" + tag + "}\n"
             "spec: {cidr: 10.98.0.16/28, interface: " + outside_.node_if + "}\n---\n"
             "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + vm + "}\nspec:\n  instanceType: m1.small\n"
             "  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n"
             "  kernelArgs: \"stratus.hostname=" + vm + " stratus.listen=8080 stratus.probe=10.98.0.2:8081\"\n"
             "  networks: [{network: fipnet-" + tag + "}]\n  securityGroups: [web]\n---\n"
             "apiVersion: stratus.io/v1\nkind: Address\nmetadata: {name: pub}\n"
             "spec: {pool: fip-" + tag + ", instance: " + vm + "}\n");
  ASSERT_EQ(ap.exit_code, 0) << ap.out << ap.err;

  ASSERT_TRUE(Eventually([&] { return logs().find("STRATUS-NET eth0 ip=10.79.0.") != std::string::npos; }, 180, 500))
      << "the guest leased its private address" << dump();
  ASSERT_TRUE(Eventually([&] {
    json a = get(std::string(kNs) + "/addresses/pub");
    return a.contains("status") && a["status"].value("phase", "") == "Associated";
  }, 60)) << dump();
  json addr = get(std::string(kNs) + "/addresses/pub");
  std::string fip = addr["status"].value("ip", "");
  std::string priv = addr["status"].value("privateIp", "");
  EXPECT_EQ(addr["status"].value("node", ""), node_);
  ASSERT_EQ(fip.rfind("10.98.0.", 0), 0u) << addr.dump(2);

  // The node answers the address on the pool's interface.
  EXPECT_TRUE(Eventually([&] { return outside_.NodeHas(fip); }, 60)) << dump();

  // 1. Inbound: the outside reaches the guest's listener through the floating address (DNAT, group allows 8080).
  EXPECT_TRUE(Eventually([&] { return outside_.Get("http://" + fip + ":8080/").find("STRATUS-PEER " + vm) != std::string::npos; },
                         90, 500))
      << "outside -> " << fip << ":8080" << dump();

  // 2. Outbound: the guest's probe arrives outside from the floating address, not the node's own 10.98.0.1.
  EXPECT_TRUE(Eventually([&] {
    return logs().find("STRATUS-PROBE 10.98.0.2:8081 open STRATUS-PEER seen-from-" + fip) != std::string::npos;
  }, 90, 500)) << dump() << "\n--- outside:\n" << ReadFile(listener_log);
  EXPECT_EQ(ReadFile(listener_log).find("PEER " + priv), std::string::npos) << "the private address never leaks";

  // 3. Security groups still apply to DNATed traffic: without 8080 the outside is cut off, live; back with it.
  ap = server.Ctl({"apply", "-f", "-"},
                  "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: web}\nspec:\n  ingress:\n"
                  "    - {protocol: tcp, fromPort: 22, toPort: 22, cidr: 0.0.0.0/0}\n");
  ASSERT_EQ(ap.exit_code, 0) << ap.err;
  EXPECT_TRUE(Eventually([&] { return outside_.Get("http://" + fip + ":8080/").empty(); }, 60, 500)) << dump();
  ap = server.Ctl({"apply", "-f", "-"},
                  "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: web}\nspec:\n  ingress:\n"
                  "    - {protocol: tcp, fromPort: 8080, toPort: 8080, cidr: 0.0.0.0/0}\n");
  ASSERT_EQ(ap.exit_code, 0) << ap.err;
  EXPECT_TRUE(Eventually([&] { return !outside_.Get("http://" + fip + ":8080/").empty(); }, 60, 500)) << dump();

  // 4. Disassociated: the /32 leaves the interface and the address answers no more.
  auto p = server.Http("PATCH", std::string(kNs) + "/addresses/pub", R"({"spec":{"instance":null}})",
                       "application/merge-patch+json");
  ASSERT_EQ(p.code, 200) << p.body;
  EXPECT_TRUE(Eventually([&] { return !outside_.NodeHas(fip); }, 60)) << dump();
  EXPECT_TRUE(Eventually([&] { return outside_.Get("http://" + fip + ":8080/").empty(); }, 30, 500)) << dump();

  // Delete everything; the bridge goes with its network.
  EXPECT_EQ(server.Ctl({"delete", "address", "pub"}).exit_code, 0);
  auto d = server.Ctl({"delete", "instance", vm, "--wait", "--timeout", "90s"});
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
  d = server.Ctl({"delete", "network", "fipnet-" + tag, "--wait", "--timeout", "60s"});
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
}

}  // namespace
}  // namespace stratus::testing
