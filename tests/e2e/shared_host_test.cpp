// Two Stratus clusters (two data dirs, the same node name) on one libvirtd: each makes its own pools (named and
// marked per cluster), both Nodes are Ready and both run instances; a cluster whose data dir moved adopts its pools
// at the new place instead of failing. Needs libvirtd (scripts/libvirt-up.sh) and the test guest, like BootTest.
#include <gtest/gtest.h>

#include <algorithm>

#include "e2e.h"

namespace stratus::testing {
namespace {

using SharedHostTest = E2eTest;

// "True AgentReady", "False StoragePoolFailed", ... or "" before the node reports.
std::string NodeReady(const ServerProcess& s, const std::string& node) {
  json c = NodeCondition(s, node);
  return c.is_object() ? c.value("status", "") + " " + c.value("reason", "") : "";
}

// (A short test name: it becomes part of the node name, at most 63 characters.)
TEST_F(SharedHostTest, TwoDataDirsOneNode) {
  std::vector<ReservedPort> agent_ports;  // outlive the servers
  std::vector<std::unique_ptr<ServerProcess>> servers;
  std::vector<std::string> insts;
  auto start = [&](const fs::path& data) {
    std::vector<std::string> flags = {"--agent=true", "--heartbeat-seconds", "1"};
    agent_ports.push_back(ReservePort());
    for (auto& f : AgentFlags(agent_ports.back())) flags.push_back(f);
    auto s = std::make_unique<ServerProcess>(data, flags);
    EXPECT_TRUE(s->Start()) << s->log();
    return s;
  };
  for (int i = 0; i < 2; ++i) {
    servers.push_back(start(dir_.path() / ("data" + std::to_string(i))));
    if (HasFailure()) return;
  }
  for (int i = 0; i < 2; ++i) {
    ServerProcess& s = *servers[i];
    ASSERT_TRUE(Eventually([&] { return NodeReady(s, node_) == "True AgentReady"; }, 60))
        << "server " << i << ": " << NodeReady(s, node_) << "\n" << s.log();
    insts.push_back("shared" + std::to_string(i) + "-" + std::to_string(::getpid()));
    domains_.push_back("stratus_default_" + insts.back());
    auto a = s.Ctl({"apply", "-f", "-"}, Manifests(insts.back()));
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  }
  // Each cluster has its own image and volume pools, side by side in the one libvirtd.
  std::vector<std::string> pools0 = PoolsUnder((dir_.path() / "data0").string());
  std::vector<std::string> pools1 = PoolsUnder((dir_.path() / "data1").string());
  EXPECT_EQ(pools0.size(), 2u);
  EXPECT_EQ(pools1.size(), 2u);
  for (const auto& p : pools0) EXPECT_EQ(std::count(pools1.begin(), pools1.end(), p), 0) << p << " shared";
  for (int i = 0; i < 2; ++i) {
    ServerProcess& s = *servers[i];
    auto w = s.Ctl({"wait", "instance/" + insts[i], "--for", "phase=Running", "--timeout", "120s"},
                   "", 150);
    EXPECT_EQ(w.exit_code, 0) << w.out << w.err << s.log();
    EXPECT_EQ(NodeReady(s, node_), "True AgentReady");
  }
  for (int i = 0; i < 2; ++i) {
    auto d = servers[i]->Ctl({"delete", "instance", insts[i], "--wait", "--timeout", "60s"});
    EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
    EXPECT_EQ(DomainCount("stratus_default_" + insts[i]), 0);
  }

  // The second data dir moves: its server comes back on the new path, with the same pools there.
  EXPECT_EQ(servers[1]->Kill(SIGTERM), 0);
  servers[1].reset();
  fs::rename(dir_.path() / "data1", dir_.path() / "moved1");
  servers[1] = start(dir_.path() / "moved1");
  ASSERT_FALSE(HasFailure());
  EXPECT_TRUE(Eventually([&] { return NodeReady(*servers[1], node_) == "True AgentReady"; }, 60))
      << NodeReady(*servers[1], node_) << "\n" << servers[1]->log();
  std::vector<std::string> moved = PoolsUnder((dir_.path() / "moved1").string());
  std::sort(moved.begin(), moved.end());
  std::sort(pools1.begin(), pools1.end());
  EXPECT_EQ(moved, pools1) << "the pools followed their data dir";
  EXPECT_EQ(PoolsUnder((dir_.path() / "data0").string()), pools0) << "the other cluster's pools are untouched";
  EXPECT_EQ(NodeReady(*servers[0], node_), "True AgentReady");

  // A pool lost while the agent runs is made again at the next heartbeat; one that cannot be (another pool stands
  // at its directory) makes the Node NotReady with the cause, until it is out of the way.
  std::string images;
  for (const auto& p : pools0) images = p.find("-images-") != std::string::npos ? p : images;
  ASSERT_FALSE(images.empty());
  std::string path = (dir_.path() / "data0" / "agent" / "pools" / "images").string();
  ASSERT_NE(Virsh({"pool-dumpxml", images}).out.find("<path>" + path + "</path>"), std::string::npos);
  // Frozen while the pool goes: a heartbeat between the destroy and the undefine would start it again, and an
  // active pool cannot be undefined.
  ::kill(servers[0]->pid(), SIGSTOP);
  Virsh({"pool-destroy", images});
  auto lost = Virsh({"pool-undefine", images});
  ::kill(servers[0]->pid(), SIGCONT);
  ASSERT_EQ(lost.exit_code, 0) << lost.err;
  EXPECT_TRUE(Eventually([&] { return Virsh({"pool-info", images}).out.find("running") != std::string::npos; }, 30))
      << servers[0]->log();
  std::string squatter = "squatter-" + std::to_string(::getpid());
  ::kill(servers[0]->pid(), SIGSTOP);  // so that its heartbeat cannot make the pool again mid-swap
  Virsh({"pool-destroy", images});
  auto undef = Virsh({"pool-undefine", images});
  auto def = Virsh({"pool-define-as", squatter, "dir", "--target", path});
  ::kill(servers[0]->pid(), SIGCONT);
  ASSERT_EQ(undef.exit_code, 0) << undef.err;
  ASSERT_EQ(def.exit_code, 0) << def.out << def.err;
  EXPECT_TRUE(Eventually([&] { return NodeReady(*servers[0], node_) == "False StoragePoolFailed"; }, 30))
      << NodeReady(*servers[0], node_);
  auto w = servers[0]->Ctl({"wait", "node/" + node_, "--for=condition=Ready", "--timeout=2s"});
  EXPECT_NE((w.out + w.err).find(squatter), std::string::npos) << w.out << w.err;
  ASSERT_EQ(Virsh({"pool-undefine", squatter}).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return NodeReady(*servers[0], node_) == "True AgentReady"; }, 30))
      << NodeReady(*servers[0], node_);
}

}  // namespace
}  // namespace stratus::testing
