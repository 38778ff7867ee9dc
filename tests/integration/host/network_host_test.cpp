// The network reconciler on the real Linux host adapter (netlink, dnsmasq, libnftables), inside a network
// namespace this test creates and always deletes: bridge, gateway address and dnsmasq come up; a deleted bridge
// and a killed dnsmasq are repaired; the dnsmasq hosts file follows IPAM by reload; nftables rules are present and
// follow security groups; teardown removes everything; a nat network is masqueraded to an "outside" namespace
// behind the node's uplink while an isolated one reaches neither the outside nor another network. Fails (does not
// skip) unless run as root with ip, dnsmasq and nft support. Private addresses are used only inside the
// namespaces it makes; only processes this test started are stopped.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "../../unit/network_objects.h"
#include "../../unit/runtime_test_env.h"
#include "stratus/core/exec.h"
#include "stratus/core/object.h"
#include "stratus/network/network.h"

namespace stratus::network {
namespace {

using namespace std::chrono_literals;

bool InPath(const std::string& prog) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    if (access((std::string(dir) + "/" + prog).c_str(), X_OK) == 0) return true;
  }
  return false;
}

std::string ReadFile(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class NetworkHostNsTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    // scripts/install-deps.sh provides the tools and the suite runs as root (as the e2e tests): a missing piece
    // is a broken environment, not something to skip over.
    if (geteuid() != 0) GTEST_FAIL() << "needs root (network namespaces, bridges)";
    if (!InPath("ip") || !InPath("dnsmasq")) GTEST_FAIL() << "needs iproute2 and dnsmasq (scripts/install-deps.sh)";
    LocalApiTest::SetUp();
    ns_ = "stratus-test-" + std::to_string(getpid());
    auto add = Exec({"ip", "netns", "add", ns_});
    if (!add.ok() || add->exit_code != 0) GTEST_FAIL() << "cannot create a network namespace";
    created_ns_ = true;
    for (auto [inf, plural] : {std::pair{&networks_, "networks"}, {&instances_, "instances"}, {&groups_, "securitygroups"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(5s));
    }
    netdev_ = host::NewLinuxNetDev();
    Options o;
    o.node = "node-a";
    o.state_dir = (dir_ / "net").string();
    std::filesystem::create_directories(o.state_dir);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                           std::filesystem::perms::others_exec);
    rec_ = std::make_unique<NetworkReconciler>(client_.get(), networks_.get(), instances_.get(), groups_.get(),
                                               netdev_.get(), o);
    bridge_ = BridgeName("default", "default");
    files_.dir = o.state_dir + "/" + bridge_;
  }

  void TearDown() override {
    if (listener_ > 0) {
      ::kill(listener_, SIGKILL);
      ::waitpid(listener_, nullptr, 0);
    }
    for (const auto& g : guest_ns_) (void)Exec({"ip", "netns", "del", g});  // cleanup, best effort
    if (created_ns_) {
      // Stop the dnsmasq this test started (verified by pid file and command line), then drop the namespace.
      InNs([&] { EXPECT_TRUE(netdev_->StopDnsmasq(files_).ok()); });
      (void)Exec({"ip", "netns", "del", ns_});
    }
    rec_.reset();
    for (auto* inf : {&networks_, &instances_, &groups_}) {
      if (*inf) (*inf)->Stop();
    }
    if (client_) LocalApiTest::TearDown();
  }

  // Runs `f` on a thread that has joined the test's network namespace (setns affects only that thread; netlink
  // sockets, libnftables and spawned processes follow it).
  void InNs(const std::function<void()>& f) {
    std::thread t([&] {
      Status s = host::EnterNetns(ns_);
      if (!s.ok()) {
        ADD_FAILURE() << s.message();
        return;
      }
      f();
    });
    t.join();
  }

  StatusOr<runtime::Result> ReconcileInNs(const std::string& key) {
    StatusOr<runtime::Result> r = Status(Code::kInternal, "not run");
    InNs([&] { r = rec_->Reconcile(key); });
    return r;
  }

  // `ip -n NS ...` (ip enters the namespace itself).
  std::string Ip(std::vector<std::string> args) {
    std::vector<std::string> argv = {"ip", "-n", ns_};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = Exec(argv);
    return r.ok() ? r->out + r->err : r.status().message();
  }
  std::string Nft(const std::string& family) {
    auto r = Exec({"ip", "netns", "exec", ns_, "nft", "list", "table", family, "stratus"});
    return r.ok() ? r->out + r->err : r.status().message();
  }

  int DnsmasqPid() {
    try {
      return std::stoi(ReadFile(files_.pid()));
    } catch (...) {
      return 0;
    }
  }
  // True when `pid` runs in the test's namespace.
  bool PidInNs(int pid) {
    struct stat a {}, b {};
    if (stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &a) != 0) return false;
    if (stat(("/var/run/netns/" + ns_).c_str(), &b) != 0) return false;
    return a.st_ino == b.st_ino;
  }

  bool CachedRv(runtime::Informer* inf, const std::string& key, const json& obj) {
    uint64_t rv = ResourceVersionOf(obj);
    return WaitFor([&] {
      json o = inf->Get(key);
      return !o.is_null() && ResourceVersionOf(o) >= rv;
    });
  }

  // Starts argv (no shell) with output discarded; returns its pid. Stopped by pid in TearDown.
  pid_t testing_spawn(const std::vector<std::string>& argv) {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = ::open("/dev/null", O_RDWR);
      dup2(fd, 0);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    return pid;
  }

  // A "guest": namespace `g` behind a veth pair whose node end is named `tap` (as libvirt's tap would be) and whose
  // guest end `peer` carries `mac`. Deleted in TearDown.
  void AddGuest(const std::string& g, const std::string& tap, const std::string& peer, const std::string& mac) {
    ASSERT_EQ(Exec({"ip", "netns", "add", g})->exit_code, 0);
    guest_ns_.push_back(g);
    ASSERT_EQ(Exec({"ip", "-n", ns_, "link", "add", tap, "type", "veth", "peer", "name", peer})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", ns_, "link", "set", peer, "netns", g})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", g, "link", "set", peer, "address", mac})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", g, "link", "set", peer, "up"})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", g, "link", "set", "lo", "up"})->exit_code, 0);
  }

  // What the server's IPAM reconciler does: an address for each of `insts` on network `name`, recorded in the
  // Network's status.allocations and seen by the informer. Empty (with a failure) when that does not work.
  std::vector<NicAddress> RecordAllocations(const std::string& name, const std::vector<json>& insts) {
    json net = *client_->Get("networks", "default", name);
    auto cfg = ParseNetwork(net);
    if (!cfg.ok()) {
      ADD_FAILURE() << cfg.status().message();
      return {};
    }
    AllocationTable table;
    std::vector<NicAddress> out;
    for (const json& inst : insts) {
      NicRequest req;
      req.uid = MetaString(inst, "uid");
      req.instance = "default/" + MetaString(inst, "name");
      auto a = Allocate(*cfg, table, req);
      if (!a.ok()) {
        ADD_FAILURE() << a.status().message();
        return {};
      }
      out.push_back(*a);
    }
    net["status"]["allocations"] = AllocationsToJson(table);
    auto u = client_->UpdateStatus("networks", "default", net);
    if (!u.ok() || !CachedRv(networks_.get(), "default/" + name, *u)) {
      ADD_FAILURE() << "allocations of " << name << " not recorded";
      return {};
    }
    return out;
  }

  std::string ns_;
  bool created_ns_ = false;
  std::vector<std::string> guest_ns_;
  pid_t listener_ = 0;
  std::unique_ptr<host::NetDev> netdev_;
  std::unique_ptr<runtime::Informer> networks_, instances_, groups_;
  std::unique_ptr<NetworkReconciler> rec_;
  std::string bridge_;
  host::DnsmasqFiles files_;
};

TEST_F(NetworkHostNsTest, BridgeDnsmasqAndRulesUpRepairedAndTornDown) {
  json net = MustCreate({{"apiVersion", "stratus.io/v1"},
                         {"kind", "Network"},
                         {"metadata", {{"name", "default"}, {"namespace", "default"}}},
                         {"spec", {{"cidr", "10.44.0.0/24"}, {"mode", "nat"}, {"mtu", 1400}}}},
                        "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));

  // Up.
  auto r = ReconcileInNs("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << ReadFile(files_.log());
  std::string addr = Ip({"-4", "-o", "addr", "show", "dev", bridge_});
  EXPECT_NE(addr.find("10.44.0.1/24"), std::string::npos) << addr;
  std::string link = Ip({"-d", "link", "show", "dev", bridge_});
  EXPECT_NE(link.find("mtu 1400"), std::string::npos) << link;
  EXPECT_NE(link.find("bridge"), std::string::npos) << link;
  EXPECT_NE(link.find(",UP"), std::string::npos) << link;
  int pid = DnsmasqPid();
  ASSERT_GT(pid, 1) << ReadFile(files_.log());
  EXPECT_EQ(::kill(pid, 0), 0);
  EXPECT_TRUE(PidInNs(pid));
  EXPECT_NE(ReadFile(files_.conf()).find("interface=" + bridge_), std::string::npos);
  // Nothing leaked into the host's namespace.
  EXPECT_EQ(Exec({"ip", "link", "show", "dev", bridge_})->exit_code == 0, false);

  // Converged: a second pass changes nothing.
  ASSERT_TRUE(ReconcileInNs("default/default").ok());
  EXPECT_EQ(DnsmasqPid(), pid);

  // Rules, with a security group on an instance of this node.
  json sg = MustCreate({{"apiVersion", "stratus.io/v1"},
                        {"kind", "SecurityGroup"},
                        {"metadata", {{"name", "web"}, {"namespace", "default"}}},
                        {"spec", {{"ingress", {{{"protocol", "tcp"}, {"fromPort", 22}, {"cidr", "0.0.0.0/0"}}}}}}},
                       "securitygroups");
  json inst = MustCreate({{"apiVersion", "stratus.io/v1"},
                          {"kind", "Instance"},
                          {"metadata", {{"name", "web-1"}, {"namespace", "default"}}},
                          {"spec",
                           {{"resources", {{"vcpus", 1}, {"memoryMiB", 64}}},
                            {"image", "img"},
                            {"nodeName", "node-a"},
                            {"networks", {{{"network", "default"}}}},
                            {"securityGroups", {"web"}}}}},
                         "instances");
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", sg));
  ASSERT_TRUE(CachedRv(instances_.get(), "default/web-1", inst));
  // IPAM's allocation (written by the cluster IPAM reconciler in the product).
  net = *client_->Get("networks", "default", "default");
  auto cfg = ParseNetwork(net);
  ASSERT_TRUE(cfg.ok());
  AllocationTable table;
  NicRequest req;
  req.uid = MetaString(inst, "uid");
  req.instance = "default/web-1";
  auto a = Allocate(*cfg, table, req);
  ASSERT_TRUE(a.ok());
  net["status"]["allocations"] = AllocationsToJson(table);
  auto u = client_->UpdateStatus("networks", "default", net);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", *u));
  // A tap as libvirt creates it (persistent, no guest behind it): attached to the bridge by the reconciler.
  std::string tap = TapName(req.uid, 0);
  ASSERT_EQ(Exec({"ip", "-n", ns_, "tuntap", "add", "dev", tap, "mode", "tap"})->exit_code, 0);

  ASSERT_TRUE(ReconcileInNs("default/default").ok());
  EXPECT_EQ(DnsmasqPid(), pid);  // hosts change: reloaded, not restarted
  EXPECT_NE(ReadFile(files_.hosts()).find(a->mac + "," + FormatIpv4(a->ip) + ",web-1"), std::string::npos)
      << ReadFile(files_.hosts());
  EXPECT_NE(Ip({"link", "show", "dev", tap}).find("master " + bridge_), std::string::npos);

  r = ReconcileInNs(NetworkReconciler::kFirewallKey);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string inet = Nft("inet");
  EXPECT_NE(inet.find("masquerade"), std::string::npos) << inet;
  EXPECT_NE(inet.find("chain in-" + tap), std::string::npos) << inet;
  EXPECT_NE(inet.find("tcp dport 22 return"), std::string::npos) << inet;
  EXPECT_NE(Nft("bridge").find("chain spoof-" + tap), std::string::npos);
  auto fwd = Exec({"ip", "netns", "exec", ns_, "cat", "/proc/sys/net/ipv4/ip_forward"});
  EXPECT_EQ(fwd->out, "1\n");

  // Rule change applies live.
  sg = *client_->Get("securitygroups", "default", "web");
  sg["spec"]["ingress"][0]["fromPort"] = 8080;
  auto su = client_->Update("securitygroups", "default", sg);
  ASSERT_TRUE(su.ok());
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", *su));
  ASSERT_TRUE(ReconcileInNs(NetworkReconciler::kFirewallKey).ok());
  inet = Nft("inet");
  EXPECT_NE(inet.find("tcp dport 8080 return"), std::string::npos) << inet;
  EXPECT_EQ(inet.find("tcp dport 22 return"), std::string::npos) << inet;

  // Drift: the bridge deleted and dnsmasq killed behind our back (it is the dnsmasq this test started).
  ASSERT_EQ(Exec({"ip", "-n", ns_, "link", "del", bridge_})->exit_code, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] {
    std::string st = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    return st.empty() || st.find(") Z") != std::string::npos;
  }));
  r = ReconcileInNs("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << ReadFile(files_.log());
  EXPECT_NE(Ip({"-4", "-o", "addr", "show", "dev", bridge_}).find("10.44.0.1/24"), std::string::npos);
  EXPECT_NE(Ip({"link", "show", "dev", tap}).find("master " + bridge_), std::string::npos);
  int pid2 = DnsmasqPid();
  EXPECT_NE(pid2, pid);
  EXPECT_EQ(::kill(pid2, 0), 0);
  EXPECT_TRUE(PidInNs(pid2));

  // Someone flushed the ruleset: restored.
  ASSERT_EQ(Exec({"ip", "netns", "exec", ns_, "nft", "delete", "table", "inet", "stratus"})->exit_code, 0);
  ASSERT_TRUE(ReconcileInNs(NetworkReconciler::kFirewallKey).ok());
  EXPECT_NE(Nft("inet").find("masquerade"), std::string::npos);

  // Teardown once the network is deleted and unused.
  ASSERT_TRUE(client_->Delete("instances", "default", "web-1").ok());
  ASSERT_TRUE(WaitFor([&] { return instances_->Get("default/web-1").is_null(); }));
  auto d = client_->Delete("networks", "default", "default");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", *d));
  r = ReconcileInNs("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(Exec({"ip", "-n", ns_, "link", "show", "dev", bridge_})->exit_code, 0);
  EXPECT_TRUE(WaitFor([&] {
    std::string st = ReadFile("/proc/" + std::to_string(pid2) + "/stat");
    return st.empty() || st.find(") Z") != std::string::npos;
  }));
  ASSERT_TRUE(WaitFor([&] { return networks_->Get("default/default").is_null(); }));
  ASSERT_TRUE(ReconcileInNs(NetworkReconciler::kFirewallKey).ok());
  EXPECT_NE(Nft("inet").find("No such file"), std::string::npos);  // our tables are gone too
}


// Two guests (namespaces behind veth "taps" with the allocated MACs) get their addresses from dnsmasq by DHCP;
// a security group that does not allow a port blocks connections to it and allowing it opens it, live.
// The owner mark is the kernel's ifalias of the bridge (`ip link show` prints it), read back by Link.
TEST_F(NetworkHostNsTest, OwnerMarkIsTheBridgesAlias) {
  std::string mark = "stratus:0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff/node-a";
  InNs([&] {
    ASSERT_TRUE(netdev_->CreateBridge(bridge_, 0).ok());
    ASSERT_TRUE(netdev_->SetAlias(bridge_, mark).ok());
    auto l = netdev_->Link(bridge_);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->alias, mark);
    EXPECT_EQ(netdev_->SetAlias(bridge_, "two\nlines").code(), Code::kInvalid);
  });
  EXPECT_NE(Ip({"link", "show", "dev", bridge_}).find("alias " + mark), std::string::npos);
}

TEST_F(NetworkHostNsTest, GuestsGetLeasesAndSecurityGroupsFilter) {
  if (access("/usr/bin/python3", X_OK) != 0 || !InPath("busybox")) {
    GTEST_FAIL() << "needs python3 and busybox (scripts/install-deps.sh)";
  }
  json net = MustCreate({{"apiVersion", "stratus.io/v1"},
                         {"kind", "Network"},
                         {"metadata", {{"name", "default"}, {"namespace", "default"}}},
                         {"spec", {{"cidr", "10.44.0.0/24"}, {"mode", "nat"}}}},
                        "networks");
  json sg = MustCreate({{"apiVersion", "stratus.io/v1"},
                        {"kind", "SecurityGroup"},
                        {"metadata", {{"name", "web"}, {"namespace", "default"}}},
                        {"spec", {{"ingress", {{{"protocol", "tcp"}, {"fromPort", 5000}, {"cidr", "0.0.0.0/0"}}}}}}},
                       "securitygroups");
  auto instance = [&](const std::string& name, json groups) { return MustCreate(NicInstance(name, groups), "instances"); };
  json server = instance("server", {"web"});
  json client = instance("client", json::array());
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", sg));
  ASSERT_TRUE(CachedRv(instances_.get(), "default/server", server));
  ASSERT_TRUE(CachedRv(instances_.get(), "default/client", client));
  // dnsmasq first runs with no hosts: the allocations below reach it by SIGHUP, as in production.
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  auto up = ReconcileInNs("default/default");
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  int pid = DnsmasqPid();
  std::vector<NicAddress> addr = RecordAllocations("default", {server, client});
  ASSERT_EQ(addr.size(), 2u);

  // Guests: a namespace each, its veth end carrying the instance's MAC; the other end is the "tap".
  std::vector<std::string> guests;
  for (size_t i = 0; i < 2; ++i) {
    const json& inst = i == 0 ? server : client;
    guests.push_back(ns_ + "-g" + std::to_string(i));
    AddGuest(guests.back(), TapName(MetaString(inst, "uid"), 0), "gp" + std::to_string(i), addr[i].mac);
    if (HasFatalFailure()) return;
  }
  auto r = ReconcileInNs("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(DnsmasqPid(), pid);  // reloaded, not restarted
  r = ReconcileInNs(NetworkReconciler::kFirewallKey);
  ASSERT_TRUE(r.ok()) << r.status().ToString();

  // DHCP: each guest is offered exactly its IPAM address.
  for (size_t i = 0; i < 2; ++i) {
    std::string peer = "gp" + std::to_string(i);
    auto d = Exec({"ip", "netns", "exec", guests[i], "busybox", "udhcpc", "-i", peer, "-n", "-q", "-f", "-t", "5",
                   "-T", "1", "-s", "/bin/true"},
                  30);
    ASSERT_TRUE(d.ok());
    std::string out = d->out + d->err;
    EXPECT_NE(out.find("lease of " + FormatIpv4(addr[i].ip) + " obtained"), std::string::npos)
        << out << "\n" << ReadFile(files_.log());
    ASSERT_EQ(Exec({"ip", "-n", guests[i], "addr", "add", FormatIpv4(addr[i].ip) + "/24", "dev", peer})->exit_code, 0);
  }
  EXPECT_NE(ReadFile(files_.leases()).find(FormatIpv4(addr[0].ip)), std::string::npos);

  // A listener on 5000 and 6000 in the server guest.
  std::string py =
      "import socket,select\n"
      "ss=[]\n"
      "for p in (5000,6000):\n"
      "  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('0.0.0.0',p)); "
      "s.listen(16); ss.append(s)\n"
      "while True:\n"
      "  r,_,_=select.select(ss,[],[])\n"
      "  for s in r: c,_=s.accept(); c.close()\n";
  listener_ = testing_spawn({"ip", "netns", "exec", guests[0], "/usr/bin/python3", "-c", py});
  ASSERT_GT(listener_, 0);
  auto connects = [&](int port) {
    std::string code = "import socket,sys\ntry:\n  socket.create_connection(('" + FormatIpv4(addr[0].ip) + "'," +
                       std::to_string(port) + "),1.5).close()\nexcept Exception as e:\n  sys.exit(1)\n";
    auto c = Exec({"ip", "netns", "exec", guests[1], "/usr/bin/python3", "-c", code}, 20);
    return c.ok() && c->exit_code == 0;
  };
  ASSERT_TRUE(WaitFor([&] { return connects(5000); }, 10s)) << Nft("inet");
  EXPECT_FALSE(connects(6000));

  // Allow 6000 too: applies live.
  sg = *client_->Get("securitygroups", "default", "web");
  sg["spec"]["ingress"].push_back({{"protocol", "tcp"}, {"fromPort", 6000}, {"cidr", FormatIpv4(addr[1].ip) + "/32"}});
  auto su = client_->Update("securitygroups", "default", sg);
  ASSERT_TRUE(su.ok()) << su.status().ToString();
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", *su));
  ASSERT_TRUE(ReconcileInNs(NetworkReconciler::kFirewallKey).ok());
  EXPECT_TRUE(connects(6000)) << Nft("inet");
  EXPECT_TRUE(connects(5000));

  // A spoofing guest (a source address that is not its own) is dropped at the bridge.
  // The client's own address goes first (deleted by name: a flush that reports success while leaving the address
  // would let the connection below leave from the real address), and the guest must hold only the spoofed one.
  std::string own = FormatIpv4(addr[1].ip) + "/24";
  ASSERT_EQ(Exec({"ip", "-n", guests[1], "addr", "del", own, "dev", "gp1"})->exit_code, 0);
  ASSERT_EQ(Exec({"ip", "-n", guests[1], "addr", "add", "10.44.0.250/24", "dev", "gp1"})->exit_code, 0);
  auto shown = Exec({"ip", "-n", guests[1], "-4", "-o", "addr", "show", "dev", "gp1"});
  ASSERT_TRUE(shown.ok());
  ASSERT_EQ(shown->out.find(FormatIpv4(addr[1].ip) + "/"), std::string::npos) << shown->out;
  ASSERT_NE(shown->out.find("10.44.0.250/24"), std::string::npos) << shown->out;
  std::string tap = TapName(MetaString(client, "uid"), 0);
  ASSERT_NE(Nft("bridge").find("chain spoof-" + tap), std::string::npos) << Nft("bridge");
  EXPECT_FALSE(connects(5000)) << "guest addresses: " << shown->out << "\n"
                               << Nft("bridge") << Ip({"neigh"})
                               << Exec({"ip", "-n", guests[0], "neigh"})->out;
}

// nat and isolated networks on one node, with an "outside" host behind the node's uplink: a guest on the nat
// network reaches it and is seen with the node's uplink address (masquerade); a guest on the isolated network
// reaches neither the outside nor the other network.
TEST_F(NetworkHostNsTest, NatMasqueradesToTheOutsideIsolatedStaysIn) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_FAIL() << "needs python3";
  struct Net {
    std::string name, cidr, mode, gw;
  };
  const std::vector<Net> nets = {{"natnet", "10.44.0.0/24", "nat", "10.44.0.1"},
                                 {"isonet", "10.45.0.0/24", "isolated", "10.45.0.1"}};
  std::vector<json> objs, insts;
  for (const auto& n : nets) {
    objs.push_back(MustCreate({{"apiVersion", "stratus.io/v1"},
                               {"kind", "Network"},
                               {"metadata", {{"name", n.name}, {"namespace", "default"}}},
                               {"spec", {{"cidr", n.cidr}, {"mode", n.mode}, {"dhcp", false}}}},
                              "networks"));
    insts.push_back(MustCreate(NicInstance("vm-" + n.name, json::array(), n.name), "instances"));
  }
  // IPAM's record for each (what the server's IPAM reconciler would write), then the node converges.
  std::vector<NicAddress> addr;
  for (size_t i = 0; i < nets.size(); ++i) {
    auto got = RecordAllocations(nets[i].name, {insts[i]});
    ASSERT_EQ(got.size(), 1u);
    const NicAddress* a = &got[0];
    addr.push_back(*a);
    ASSERT_TRUE(CachedRv(instances_.get(), "default/vm-" + nets[i].name, insts[i]));
    std::string g = ns_ + "-" + nets[i].mode;
    AddGuest(g, TapName(MetaString(insts[i], "uid"), 0), "eth0", a->mac);
    if (HasFatalFailure()) return;
    ASSERT_EQ(Exec({"ip", "-n", g, "addr", "add", FormatIpv4(a->ip) + "/24", "dev", "eth0"})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", g, "route", "add", "default", "via", nets[i].gw})->exit_code, 0);
    auto r = ReconcileInNs("default/" + nets[i].name);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  ASSERT_TRUE(ReconcileInNs(NetworkReconciler::kFirewallKey).ok());

  // The outside: a namespace behind the node's uplink (10.250.0.1 on the node, 10.250.0.2 outside), answering
  // each connection with the address it came from.
  std::string out = ns_ + "-out";
  ASSERT_EQ(Exec({"ip", "netns", "add", out})->exit_code, 0);
  guest_ns_.push_back(out);
  ASSERT_EQ(Exec({"ip", "-n", ns_, "link", "add", "uplink0", "type", "veth", "peer", "name", "wan0"})->exit_code, 0);
  ASSERT_EQ(Exec({"ip", "-n", ns_, "link", "set", "wan0", "netns", out})->exit_code, 0);
  for (auto [n, dev, a] : {std::tuple{ns_, "uplink0", "10.250.0.1/30"}, {out, "wan0", "10.250.0.2/30"}}) {
    ASSERT_EQ(Exec({"ip", "-n", n, "addr", "add", a, "dev", dev})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", n, "link", "set", dev, "up"})->exit_code, 0);
    ASSERT_EQ(Exec({"ip", "-n", n, "link", "set", "lo", "up"})->exit_code, 0);
  }
  ASSERT_EQ(Exec({"ip", "-n", ns_, "route", "add", "default", "via", "10.250.0.2"})->exit_code, 0);
  // The outside even knows the way back to both networks, so only masquerade and isolation decide what it sees.
  for (const char* c : {"10.44.0.0/24", "10.45.0.0/24"}) {
    ASSERT_EQ(Exec({"ip", "-n", out, "route", "add", c, "via", "10.250.0.1"})->exit_code, 0);
  }
  std::string py =
      "import socket\n"
      "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('10.250.0.2',7000)); "
      "s.listen(16)\n"
      "while True:\n"
      "  c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n";
  listener_ = testing_spawn({"ip", "netns", "exec", out, "/usr/bin/python3", "-c", py});
  ASSERT_GT(listener_, 0);
  // What guest `g` gets from `ip`:`port`: "ok <reply>", "refused" (a reset came back: packets pass) or "timeout"
  // (dropped on the way).
  auto ask = [&](const std::string& g, const std::string& ip, int port = 7000) -> std::string {
    std::string code = "import socket,sys\ntry:\n  c=socket.create_connection(('" + ip + "'," +
                       std::to_string(port) +
                       "),1.5); sys.stdout.write('ok '+c.recv(64).decode())\n"
                       "except ConnectionRefusedError:\n  sys.stdout.write('refused')\n"
                       "except Exception:\n  sys.stdout.write('timeout')\n";
    auto c = Exec({"ip", "netns", "exec", g, "/usr/bin/python3", "-c", code}, 20);
    return c.ok() ? c->out : c.status().message();
  };
  std::string seen;
  EXPECT_TRUE(WaitFor([&] { return (seen = ask(ns_ + "-nat", "10.250.0.2")).rfind("ok ", 0) == 0; }, 10s))
      << seen << Nft("inet");
  EXPECT_EQ(seen, "ok 10.250.0.1") << "the nat guest is masqueraded behind the node's uplink address";
  EXPECT_EQ(ask(ns_ + "-nat", "10.44.0.1", 7001), "refused") << "control: a closed port answers with a reset";
  EXPECT_EQ(ask(ns_ + "-isolated", "10.250.0.2"), "timeout") << "an isolated network does not reach the outside";
  EXPECT_EQ(ask(ns_ + "-isolated", FormatIpv4(addr[0].ip)), "timeout") << "nor another network";
}

}  // namespace
}  // namespace stratus::network
