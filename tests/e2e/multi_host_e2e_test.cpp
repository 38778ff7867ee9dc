// Two real compute hosts on this machine (scripts/hosts-up.sh: a libvirtd and virtlogd each in network and mount
// namespaces of their own, joined by an underlay bridge), each with its own `stratusd agent` joined to one API
// server: an anti-affinity InstanceGroup puts its two TCG guests on different hosts, and each host's libvirtd runs
// exactly its own one.
#include <gtest/gtest.h>

#include <sstream>

#include "e2e.h"

namespace stratus::testing {
namespace {

using MultiHostE2eTest = E2eTest;

struct Host {
  std::string name, uri;
};

TEST_F(MultiHostE2eTest, AntiAffinitySpreadsAGroupOverTwoHosts) {
  const std::string prefix = "mh" + std::to_string(::getpid() % 100000);
  const std::string up = (fs::path(SourceDir()) / "scripts" / "hosts-up.sh").string();
  const std::string down = (fs::path(SourceDir()) / "scripts" / "hosts-down.sh").string();
  RunResult r = stratus::testing::Run({"/bin/bash", up, "2", prefix}, "", {}, 120);
  struct Down {
    std::string script, prefix;
    ~Down() { stratus::testing::Run({"/bin/bash", script, prefix}, "", {}, 120); }
  } cleanup{down, prefix};
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<Host> hosts;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    Host h;
    f >> h.name >> h.uri;
    if (!h.uri.empty()) hosts.push_back(h);
  }
  ASSERT_EQ(hosts.size(), 2u) << r.out;

  ServerProcess server(dir_.path() / "data");
  ASSERT_TRUE(server.Start()) << server.log();
  std::vector<ReservedPort> ports;
  std::vector<pid_t> agents;
  for (size_t i = 0; i < hosts.size(); ++i) {
    ports.push_back(ReservePort());
    std::vector<std::string> a = {StratusdBin(), "agent", "--server", server.url(), "--data-dir",
                                  (dir_.path() / ("agent-" + hosts[i].name)).string(), "--bootstrap-token-file",
                                  server.bootstrap_token_file(), "--node", hosts[i].name, "--libvirt-uri", hosts[i].uri,
                                  "--agent-listen", ports.back().hostport(), "--reserved-memory-mib", "0",
                                  "--virt-type", "qemu"};
    agents.push_back(SpawnLogged(a, (dir_.path() / (hosts[i].name + ".log")).string()));
  }
  struct Stop {
    std::vector<pid_t>* pids;
    ~Stop() {
      for (pid_t p : *pids) {
        ::kill(p, SIGTERM);
        ::waitpid(p, nullptr, 0);
      }
    }
  } stop_agents{&agents};
  auto agent_logs = [&] {
    std::string all;
    for (const auto& h : hosts) all += "--- " + h.name + "\n" + ReadFile((dir_.path() / (h.name + ".log")).string());
    return all;
  };
  ASSERT_TRUE(Eventually([&] {
    json nodes = server.Http("GET", "/apis/stratus.io/v1/nodes").Json();
    int ready = 0;
    for (const auto& n : nodes.value("items", json::array())) {
      for (const auto& c : n["status"].value("conditions", json::array())) {
        ready += c.value("type", "") == "Ready" && c.value("status", "") == "True";
      }
    }
    return ready == 2;
  }, 90)) << server.Http("GET", "/apis/stratus.io/v1/nodes").body << agent_logs();

  std::string yaml = Manifests("spread-a");
  yaml += "  instanceGroup: spread\n---\napiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: spread-b}\nspec:\n"
          "  instanceType: m1.small\n  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n"
          "  kernelArgs: stratus.marker=spread-b\n  instanceGroup: spread\n---\n"
          "apiVersion: stratus.io/v1\nkind: InstanceGroup\nmetadata: {name: spread}\nspec: {policy: anti-affinity}\n";
  auto a = server.Ctl({"apply", "-f", "-"}, yaml);
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  std::map<std::string, std::string> node_of;
  ASSERT_TRUE(Eventually([&] {
    for (const char* n : {"spread-a", "spread-b"}) {
      json inst = server.Http("GET", std::string(kNs) + "/instances/" + n).Json();
      if (inst["status"].value("phase", "") != "Running") return false;
      node_of[n] = inst["spec"].value("nodeName", "");
    }
    return true;
  }, 180)) << server.Ctl({"get", "instances", "-o", "wide"}).out << agent_logs();
  EXPECT_NE(node_of["spread-a"], node_of["spread-b"]) << "anti-affinity: one host each";
  // Each host's own libvirtd runs exactly the guest placed on it.
  for (const auto& h : hosts) {
    RunResult l = stratus::testing::Run({"/usr/bin/virsh", "-c", h.uri, "list", "--name"}, "", {}, 30);
    std::string want = node_of["spread-a"] == h.name ? "stratus_default_spread-a" : "stratus_default_spread-b";
    EXPECT_EQ(l.out, want + "\n\n") << h.name << ": " << l.out << l.err;
  }
  EXPECT_TRUE(Eventually([&] {
    return server.Ctl({"logs", "instance/spread-a"}).out.find("STRATUS-GUEST-BOOTED") != std::string::npos &&
           server.Ctl({"logs", "instance/spread-b"}).out.find("STRATUS-GUEST-BOOTED") != std::string::npos;
  }, 120)) << server.Ctl({"logs", "instance/spread-a"}).out;
  auto d = server.Ctl({"delete", "instances", "--all", "--wait", "--timeout", "120s"});
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
}

}  // namespace
}  // namespace stratus::testing
