// High availability: a 3-member etcd cluster and 3 `stratusd server` on loopback, 16 writers spread over the
// servers (clients that fail over), a watch that follows every change; kill -9 the leading server, then one etcd
// member, during the writes. No acknowledged write is lost, the watch resumes on another server without gaps or
// duplicates, the cluster reconcilers fail over (measured), and an instance created during the failover is placed
// and gets one address.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../etcd_process.h"
#include "harness.h"
#include "stratus/core/api_client.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;

// Three etcd members on loopback forming one cluster.
struct EtcdCluster {
  std::vector<pid_t> pids;
  std::vector<std::string> urls;
  bool Start(const fs::path& dir) {
    std::vector<ReservedPort> client, peer;
    std::string initial;
    for (int i = 0; i < 3; ++i) {
      client.push_back(ReservePort());
      peer.push_back(ReservePort());
      urls.push_back("http://" + client.back().hostport());
      initial += (i ? "," : "") + std::string("m") + std::to_string(i) + "=http://" + peer.back().hostport();
    }
    for (int i = 0; i < 3; ++i) {
      std::string purl = "http://" + peer[i].hostport();
      pids.push_back(EtcdProcess::Spawn(
          {EtcdProcess::kBinary, "--name", "m" + std::to_string(i), "--data-dir", (dir / ("m" + std::to_string(i))).string(),
           "--listen-client-urls", urls[i], "--advertise-client-urls", urls[i], "--listen-peer-urls", purl,
           "--initial-advertise-peer-urls", purl, "--initial-cluster", initial, "--initial-cluster-state", "new",
           "--log-level", "error"},
          (dir / ("m" + std::to_string(i) + ".log")).string()));
    }
    std::string all = urls[0] + "," + urls[1] + "," + urls[2];
    return Eventually([&] {
      return stratus::testing::Run({"/usr/bin/etcdctl", "--endpoints", all, "endpoint", "health"}).exit_code == 0;
    }, 60, 200);
  }
  void Kill(int i) {
    if (pids[i] > 0) {
      ::kill(pids[i], SIGKILL);
      ::waitpid(pids[i], nullptr, 0);
      pids[i] = 0;
    }
  }
  ~EtcdCluster() {
    for (int i = 0; i < static_cast<int>(pids.size()); ++i) Kill(i);
  }
};

TEST(HaTest, ThreeServersOnThreeEtcdMembersLoseNothingWhenKilled) {
  if (!fs::exists(EtcdProcess::kBinary)) GTEST_FAIL() << "etcd is missing: scripts/install-deps.sh installs etcd-server";
  TempDir dir;
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.Start(dir.path() / "etcd"));
  std::string endpoints = etcd.urls[0] + "," + etcd.urls[1] + "," + etcd.urls[2];
  std::vector<std::string> flags = {"--store", "etcd", "--etcd-endpoints", endpoints};
  std::vector<std::unique_ptr<ServerProcess>> servers;
  for (int i = 0; i < 3; ++i) {
    fs::path d = dir.path() / ("s" + std::to_string(i));
    if (i > 0) {
      fs::create_directories(d);
      for (const char* f : {"admin.token", "bootstrap.token", "ec2-access-keys.key"}) {
        fs::copy_file(dir.path() / "s0" / f, d / f);
      }
    }
    servers.push_back(std::make_unique<ServerProcess>(d, flags));
    ASSERT_TRUE(servers.back()->Start()) << servers.back()->log();
  }
  std::string token = servers[0]->token();
  auto urls_from = [&](int first) {
    std::string u;
    for (int i = 0; i < 3; ++i) u += (i ? "," : "") + servers[(first + i) % 3]->url();
    return u;
  };
  auto holder = [&] {
    for (auto& s : servers) {
      auto r = s->Http("GET", "/apis/stratus.io/v1/leases/stratus-controllers");
      if (r.code == 200) return r.Json()["spec"].value("holderIdentity", "");
    }
    return std::string();
  };
  std::string id0 = ReadFile(dir.path() / "s0" / "server-id").substr(0, 8);
  ASSERT_TRUE(Eventually([&] { return holder().find(id0) != std::string::npos; }, 30)) << holder();

  // A node agent that knows every server, a flavor and a network.
  ReservedPort agent_port = ReservePort();
  pid_t agent = SpawnLogged({StratusdBin(), "agent", "--server", urls_from(1), "--node", "node-ha", "--libvirt-uri",
                             "test:///default", "--agent-listen", agent_port.hostport(), "--data-dir",
                             (dir.path() / "node").string(), "--reserved-memory-mib", "0", "--heartbeat-seconds", "1",
                             "--bootstrap-token-file", servers[0]->bootstrap_token_file()},
                            (dir.path() / "agent.log").string());
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{agent};
  ASSERT_EQ(servers[1]->Ctl({"apply", "-f", "-"},
                            "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: t}\nspec: {vcpus: 1, memoryMiB: 64}\n"
                            "---\napiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: ha}\nspec: {cidr: 10.83.0.0/24}\n")
                .exit_code,
            0);

  // The watch: one client over all three servers, resumed from the last version it saw whenever its stream ends.
  HttpClientOptions co;
  co.bearer_token = token;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, int> added;  // name -> ADDED events seen
  std::vector<uint64_t> versions;
  std::string start_rv = servers[2]->Http("GET", "/apis/stratus.io/v1/namespaces/default/volumes").Json()["metadata"].value("resourceVersion", "");
  std::thread watcher([&] {
    auto client = NewHttpApiClient(urls_from(2), co);
    std::string rv = start_rv;
    while (!stop) {
      ListOptions lo;
      lo.resource_version = rv;
      lo.timeout_seconds = 5;
      Status s = client->Watch("volumes", "default", lo, [&](const WatchEvent& e) {
        std::string erv = e.object["metadata"].value("resourceVersion", "");
        if (e.type == "BOOKMARK" || erv.empty()) return !stop;
        std::lock_guard lock(mu);
        if (e.type == "ADDED") ++added[e.object["metadata"].value("name", "")];
        versions.push_back(std::stoull(erv));
        rv = erv;
        return !stop.load();
      }, &stop);
      if (!s.ok() && s.code() == Code::kGone) {
        ADD_FAILURE() << "watch resumed too late: " << s.ToString();
        return;
      }
      if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  // 16 writers, each starting at another server; every acknowledged create is recorded.
  constexpr int kWriters = 16, kEach = 40;
  std::atomic<int> done_writes{0};
  std::set<std::string> acked;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto client = NewHttpApiClient(urls_from(w % 3), co);
      for (int i = 0; i < kEach; ++i) {
        std::string name = "w" + std::to_string(w) + "x" + std::to_string(i);
        json v = {{"apiVersion", "stratus.io/v1"}, {"kind", "Volume"}, {"metadata", {{"name", name}}},
                  {"spec", {{"size", "1Gi"}}}};
        for (int attempt = 0; attempt < 50; ++attempt) {
          auto r = client->Create("volumes", "default", v);
          if (r.ok()) {
            std::lock_guard lock(mu);
            acked.insert(name);
            break;
          }
          if (r.status().code() == Code::kAlreadyExists) break;  // an earlier attempt went through unacknowledged
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ++done_writes;
      }
    });
  }
  // A third of the way: kill -9 the leading server; two thirds: kill -9 an etcd member.
  ASSERT_TRUE(Eventually([&] { return done_writes.load() >= kWriters * kEach / 3; }, 120));
  servers[0]->Kill(SIGKILL);
  auto killed = std::chrono::steady_clock::now();
  // Watches the lease on the survivors from the kill on, so the failover time is measured to within a poll.
  std::atomic<double> failover{-1};
  std::thread failover_probe([&] {
    while (std::chrono::steady_clock::now() - killed < std::chrono::seconds(60)) {
      for (int i = 1; i < 3; ++i) {
        auto r = servers[i]->Http("GET", "/apis/stratus.io/v1/leases/stratus-controllers");
        std::string h = r.code == 200 ? r.Json()["spec"].value("holderIdentity", "") : "";
        if (!h.empty() && h.find(id0) == std::string::npos) {
          failover = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  struct JoinOnExit {
    std::thread& t;
    ~JoinOnExit() {
      if (t.joinable()) t.join();
    }
  } join_probe{failover_probe};
  ASSERT_EQ(servers[1]->Ctl({"apply", "-f", "-"},
                            "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: during}\n"
                            "spec: {instanceType: t, kernelImage: k, networks: [{network: ha}]}\n")
                .exit_code,
            0);
  ASSERT_TRUE(Eventually([&] { return done_writes.load() >= kWriters * kEach * 2 / 3; }, 120));
  etcd.Kill(0);
  for (auto& t : writers) t.join();

  // The cluster reconcilers moved to another server.
  ASSERT_TRUE(Eventually([&] {
    std::string h = holder();
    return !h.empty() && h.find(id0) == std::string::npos;
  }, 60)) << holder();
  failover_probe.join();
  std::cout << "[ ha ] cluster reconcilers failed over " << failover.load()
            << " s after kill -9 of the leader (lease 15 s, renewed every 2 s)\n";
  // A survivor takes over one lease after the last renewal it saw, i.e. within the lease's 15 s of the kill (the
  // renewal happened before it); the margin is for the takeover's own write under ctest -j load.
  EXPECT_GT(failover.load(), 0);
  EXPECT_LT(failover.load(), 15.0 + 1.0);

  // Every acknowledged write is there.
  auto list = servers[2]->Http("GET", "/apis/stratus.io/v1/namespaces/default/volumes").Json();
  std::set<std::string> stored;
  for (const auto& v : list["items"]) stored.insert(v["metadata"].value("name", ""));
  for (const auto& n : acked) EXPECT_TRUE(stored.count(n)) << "acknowledged and lost: " << n;
  EXPECT_GE(acked.size(), static_cast<size_t>(kWriters * kEach * 9 / 10));

  // The watch saw each of them once, in order.
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    for (const auto& n : stored) {
      if (!added.count(n)) return false;
    }
    return true;
  }, 60));
  stop = true;
  watcher.join();
  {
    std::lock_guard lock(mu);
    for (const auto& [n, count] : added) EXPECT_EQ(count, 1) << "duplicate ADDED for " << n;
    for (size_t i = 1; i < versions.size(); ++i) EXPECT_GT(versions[i], versions[i - 1]) << "out of order at " << i;
  }

  // The instance made during the failover is placed, and holds exactly one address of its network.
  json inst;
  ASSERT_TRUE(Eventually([&] {
    inst = servers[2]->Http("GET", "/apis/stratus.io/v1/namespaces/default/instances/during").Json();
    return inst.is_object() && !inst["spec"].value("nodeName", "").empty();
  }, 90)) << inst.dump() << ReadFile(dir.path() / "agent.log");
  std::string uid = inst["metadata"].value("uid", "");
  json net;
  int held = 0;
  ASSERT_TRUE(Eventually([&] {
    net = servers[2]->Http("GET", "/apis/stratus.io/v1/namespaces/default/networks/ha").Json();
    held = 0;
    std::string table = net.value("status", json::object()).value("allocations", json()).dump();
    for (size_t at = table.find(uid); at != std::string::npos; at = table.find(uid, at + 1)) ++held;
    return held > 0;
  }, 60)) << net.dump();
  EXPECT_EQ(held, 1) << net.dump();
}

}  // namespace
}  // namespace stratus::testing
