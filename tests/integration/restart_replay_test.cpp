// Restarts of the real stratusd never wipe what reconcilers planned from their caches. With many instances on a
// Network, the server is restarted (SIGTERM and SIGKILL); the Network's whole watch history is then replayed and
// no version after the table was first complete may hold fewer allocations. Before controllers waited for their
// caches, IPAM reconciled the Network before the instance informer had listed, freed every address, and persisted
// an empty table at each restart.
#include <gtest/gtest.h>
#include <signal.h>

#include <sstream>

#include "harness.h"

namespace stratus::testing {
namespace {

const char* kNs = "/apis/stratus.io/v1/namespaces/default";

std::string InstanceYaml(const std::string& name) {
  return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name +
         "}\nspec:\n  resources: {vcpus: 1, memoryMiB: 64}\n  kernelImage: k\n  networks: [{network: lan}]\n";
}

class RestartReplayTest : public ::testing::Test {
 protected:
  size_t Allocated() {
    json n = server_->Http("GET", std::string(kNs) + "/networks/lan").Json();
    if (!n.is_object() || !n.contains("status") || !n["status"].contains("allocations")) return 0;
    return n["status"]["allocations"].size();
  }
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(RestartReplayTest, RestartsNeverWriteAShrunkenAllocationTable) {
  constexpr int kInstances = 150;
  server_ = std::make_unique<ServerProcess>(dir_.path() / "data");
  ASSERT_TRUE(server_->Start()) << server_->log();
  std::string docs = "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: lan}\n"
                     "spec: {cidr: 10.61.0.0/22, mode: isolated}\n";
  for (int i = 0; i < kInstances; ++i) docs += "---\n" + InstanceYaml("vm-" + std::to_string(i));
  auto a = server_->Ctl({"apply", "-f", "-"}, docs, 120);
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  ASSERT_TRUE(Eventually([&] { return Allocated() == kInstances; }, 60)) << Allocated() << "\n" << server_->log();

  // Two graceful and two hard restarts. After each, one more instance must get its address: proof that IPAM has
  // run with the restarted server's caches.
  int expected = kInstances;
  for (int sig : {SIGTERM, SIGKILL, SIGTERM, SIGKILL}) {
    server_->Kill(sig);
    ASSERT_TRUE(server_->Start()) << server_->log();
    std::string name = "late-" + std::to_string(expected);
    auto r = server_->Ctl({"apply", "-f", "-"}, InstanceYaml(name));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ++expected;
    ASSERT_TRUE(Eventually([&] { return static_cast<int>(Allocated()) == expected; }, 60))
        << "after signal " << sig << ": " << Allocated() << " of " << expected;
  }

  // Replay every version of the Network the store kept (watch from the first revision, until the timeout).
  auto h = server_->Http("GET", std::string(kNs) + "/networks?watch=1&resourceVersion=1&timeoutSeconds=3", "", "", 30);
  ASSERT_EQ(h.code, 200) << h.body;
  std::istringstream in(h.body);
  std::string line;
  size_t versions = 0, high = 0;
  std::vector<std::string> shrunk;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json ev = json::parse(line, nullptr, false);
    ASSERT_TRUE(ev.is_object()) << line;
    const json& obj = ev["object"];
    if (obj["metadata"].value("name", "") != "lan") continue;
    ++versions;
    size_t n = obj.contains("status") && obj["status"].contains("allocations") ? obj["status"]["allocations"].size() : 0;
    if (high >= kInstances && n < high) {
      shrunk.push_back("resourceVersion " + obj["metadata"].value("resourceVersion", "") + ": " + std::to_string(n) +
                       " allocations after " + std::to_string(high));
    }
    high = std::max(high, n);
  }
  EXPECT_GE(versions, 5u) << "the history holds the Network's versions";
  EXPECT_EQ(high, static_cast<size_t>(expected));
  EXPECT_TRUE(shrunk.empty()) << shrunk.size() << " versions lost addresses, first: " << shrunk.front();
}

}  // namespace
}  // namespace stratus::testing
