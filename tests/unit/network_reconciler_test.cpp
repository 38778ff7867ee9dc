// The node network reconciler against a real in-process API and a fake host: bridge, address and dnsmasq
// brought up; finalizer; drift repaired (deleted bridge, killed dnsmasq, flushed ruleset); dnsmasq hosts follow
// IPAM; the ruleset follows security groups; a network in use is not torn down; teardown; orphan bridges.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "fake_netdev.h"
#include "network_objects.h"
#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/network/network.h"

namespace stratus::network {
namespace {

using namespace std::chrono_literals;

using fakes::FakeNetDev;

class NetworkReconcilerTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    for (auto [inf, plural] : {std::pair{&networks_, "networks"}, {&instances_, "instances"}, {&groups_, "securitygroups"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(5s));
    }
    Options o;
    o.node = "node-a";
    o.state_dir = (dir_ / "net").string();
    rec_ = std::make_unique<NetworkReconciler>(client_.get(), networks_.get(), instances_.get(), groups_.get(),
                                               &host_, o);
    bridge_ = BridgeName("default", "default");
    files_.dir = o.state_dir + "/" + bridge_;
  }
  void TearDown() override {
    rec_.reset();
    for (auto* inf : {&networks_, &instances_, &groups_}) (*inf)->Stop();
    LocalApiTest::TearDown();
  }

  static json Network(const std::string& name = "default") {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "Network"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", {{"cidr", "10.44.0.0/24"}, {"mode", "nat"}}}};
  }
  static json Instance(const std::string& name, json groups = json::array()) { return NicInstance(name, groups); }
  static json Group(const std::string& name, int port) {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "SecurityGroup"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", {{"ingress", {{{"protocol", "tcp"}, {"fromPort", port}, {"cidr", "0.0.0.0/0"}}}}}}};
  }

  // A started, synced informer over `plural` (every namespace), for the tests that give the reconciler more caches.
  std::unique_ptr<runtime::Informer> Synced(const std::string& plural) {
    runtime::InformerOptions o;
    o.plural = plural;
    auto inf = std::make_unique<runtime::Informer>(client_.get(), o);
    inf->Start();
    EXPECT_TRUE(inf->WaitForSync(5s));
    return inf;
  }

  // Waits until the informer `inf` shows `pred` for `key`.
  bool Cached(runtime::Informer* inf, const std::string& key, const std::function<bool(const json&)>& pred) {
    return WaitFor([&] { return pred(inf->Get(key)); });
  }
  bool CachedRv(runtime::Informer* inf, const std::string& key, const json& obj) {
    uint64_t rv = ResourceVersionOf(obj);
    return Cached(inf, key, [&](const json& o) { return !o.is_null() && ResourceVersionOf(o) >= rv; });
  }

  json Get(const std::string& plural, const std::string& name) {
    auto r = client_->Get(plural, "default", name);
    return r.ok() ? *r : json();
  }

  // Writes status.allocations as the cluster IPAM reconciler will.
  void Allocate(const json& inst) {
    json net = Get("networks", "default");
    auto cfg = ParseNetwork(net);
    ASSERT_TRUE(cfg.ok());
    json prior = net.contains("status") && net["status"].is_object() ? net["status"].value("allocations", json()) : json();
    auto table = AllocationsFromJson(prior);
    ASSERT_TRUE(table.ok());
    NicRequest r;
    r.uid = MetaString(inst, "uid");
    r.instance = "default/" + MetaString(inst, "name");
    ASSERT_TRUE(network::Allocate(*cfg, *table, r).ok());
    net["status"]["allocations"] = AllocationsToJson(*table);
    auto u = client_->UpdateStatus("networks", "default", net);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    ASSERT_TRUE(CachedRv(networks_.get(), "default/default", *u));
  }

  bool HasEvent(const std::string& reason) {
    auto l = client_->List("events", "default", {});
    if (!l.ok()) return false;
    for (const auto& e : (*l)["items"]) {
      if (e.value("reason", "") == reason) return true;
    }
    return false;
  }

  FakeNetDev host_;
  std::unique_ptr<runtime::Informer> networks_, instances_, groups_;
  std::unique_ptr<NetworkReconciler> rec_;
  std::string bridge_;
  host::DnsmasqFiles files_;
};

TEST_F(NetworkReconcilerTest, BringsUpRepairsAndTearsDown) {
  json net = MustCreate(Network(), "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  auto r = rec_->Reconcile("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->requeue_after.count(), 0);  // periodic drift check

  ASSERT_TRUE(host_.links.count(bridge_));
  EXPECT_TRUE(host_.links[bridge_].up);
  EXPECT_EQ(host_.links[bridge_].ipv4, std::vector<std::string>{"10.44.0.1/24"});
  ASSERT_TRUE(host_.dns[files_.dir].running);
  EXPECT_NE(host_.dns[files_.dir].conf.find("interface=" + bridge_), std::string::npos);

  net = Get("networks", "default");
  EXPECT_EQ(net["metadata"]["finalizers"], json::array({kNetworkFinalizer}));
  json mine = net["status"]["nodes"]["node-a"];  // this node's entry; the server summarizes the rest
  EXPECT_EQ(mine["phase"], "Ready");
  EXPECT_EQ(mine["bridge"], bridge_);
  EXPECT_EQ(mine["gateway"], "10.44.0.1");
  EXPECT_EQ(mine["ready"], true);
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));

  // Converged: nothing changes.
  int starts = host_.dns[files_.dir].starts;
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  EXPECT_EQ(host_.dns[files_.dir].starts, starts);
  EXPECT_FALSE(HasEvent("Repaired"));

  // Drift: the bridge deleted and dnsmasq killed behind our back.
  ASSERT_TRUE(host_.DeleteLink(bridge_).ok());
  host_.dns[files_.dir].running = false;
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  ASSERT_TRUE(host_.links.count(bridge_));
  EXPECT_EQ(host_.links[bridge_].ipv4, std::vector<std::string>{"10.44.0.1/24"});
  EXPECT_TRUE(host_.dns[files_.dir].running);
  EXPECT_EQ(host_.dns[files_.dir].starts, starts + 1);
  EXPECT_TRUE(HasEvent("Repaired"));

  // An instance on this node: its tap is attached, IPAM's allocation reaches dnsmasq by reload.
  json inst = MustCreate(Instance("web-1"), "instances");
  ASSERT_TRUE(CachedRv(instances_.get(), "default/web-1", inst));
  std::string tap = TapName(MetaString(inst, "uid"), 0);
  host_.links[tap] = {tap, true, false, true, 1500, "", {}};
  Allocate(inst);
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  EXPECT_EQ(host_.links[tap].master, bridge_);
  EXPECT_EQ(host_.dns[files_.dir].reloads, 1);
  EXPECT_NE(host_.dns[files_.dir].hosts.find(",web-1"), std::string::npos) << host_.dns[files_.dir].hosts;

  // Deleting a network in use waits, with a clear condition.
  ASSERT_TRUE(client_->Delete("networks", "default", "default").ok());
  ASSERT_TRUE(Cached(networks_.get(), "default/default",
                     [](const json& o) { return !MetaString(o, "deletionTimestamp").empty(); }));
  r = rec_->Reconcile("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(host_.links.count(bridge_));
  net = Get("networks", "default");
  json cond = net["status"]["nodes"]["node-a"];
  EXPECT_EQ(cond.value("reason", ""), "InUse");
  EXPECT_NE(cond.value("message", "").find("web-1"), std::string::npos) << cond.dump();

  // Once the instance is gone, teardown and the finalizer goes: the object disappears.
  ASSERT_TRUE(client_->Delete("instances", "default", "web-1").ok());
  ASSERT_TRUE(Cached(instances_.get(), "default/web-1", [](const json& o) { return o.is_null(); }));
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  r = rec_->Reconcile("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(host_.links.count(bridge_));
  EXPECT_FALSE(host_.dns[files_.dir].running);
  EXPECT_EQ(client_->Get("networks", "default", "default").status().code(), Code::kNotFound);
}

TEST_F(NetworkReconcilerTest, InvalidSpecIsReported) {
  json bad = Network();
  bad["spec"]["cidr"] = "10.44.0.0/31";
  json net = MustCreate(bad, "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  net = Get("networks", "default");
  EXPECT_EQ(net["status"]["nodes"]["node-a"]["phase"], "Failed");
  EXPECT_EQ(net["status"]["nodes"]["node-a"].value("reason", ""), "InvalidSpec");
  EXPECT_TRUE(host_.links.empty());
}

TEST_F(NetworkReconcilerTest, RulesetFollowsSecurityGroups) {
  json net = MustCreate(Network(), "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  json sg = MustCreate(Group("web", 22), "securitygroups");
  json inst = MustCreate(Instance("web-1", {"web"}), "instances");
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", sg));
  ASSERT_TRUE(CachedRv(instances_.get(), "default/web-1", inst));
  Allocate(inst);
  std::string tap = TapName(MetaString(inst, "uid"), 0);

  ASSERT_TRUE(rec_->Reconcile(NetworkReconciler::kFirewallKey).ok());
  EXPECT_TRUE(host_.forward);
  EXPECT_TRUE(host_.brnf);
  EXPECT_NE(host_.nft.find("chain in-" + tap), std::string::npos) << host_.nft;
  EXPECT_NE(host_.nft.find("tcp dport 22 return"), std::string::npos);
  EXPECT_NE(host_.nft.find("masquerade"), std::string::npos);
  int applies = host_.applies;

  // Unchanged: not re-applied.
  ASSERT_TRUE(rec_->Reconcile(NetworkReconciler::kFirewallKey).ok());
  EXPECT_EQ(host_.applies, applies);

  // A rule change applies live.
  sg["spec"]["ingress"][0]["fromPort"] = 80;
  auto u = client_->Update("securitygroups", "default", sg);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", *u));
  ASSERT_TRUE(rec_->Reconcile(NetworkReconciler::kFirewallKey).ok());
  EXPECT_EQ(host_.applies, applies + 1);
  EXPECT_NE(host_.nft.find("tcp dport 80 return"), std::string::npos);
  EXPECT_EQ(host_.nft.find("tcp dport 22 return"), std::string::npos);

  // Someone flushed the ruleset: restored.
  host_.nft_tables = false;
  ASSERT_TRUE(rec_->Reconcile(NetworkReconciler::kFirewallKey).ok());
  EXPECT_EQ(host_.applies, applies + 2);
  EXPECT_TRUE(host_.nft_tables);
}

TEST_F(NetworkReconcilerTest, OrphanBridgesAreRemoved) {
  json net = MustCreate(Network(), "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  host_.links["st-000000000000"] = {"st-000000000000", true, true, true, 1500, "", {}};
  host_.links["br0"] = {"br0", true, true, true, 1500, "", {}};  // not ours
  ASSERT_TRUE(rec_->Reconcile(NetworkReconciler::kFirewallKey).ok());
  EXPECT_FALSE(host_.links.count("st-000000000000"));
  EXPECT_TRUE(host_.links.count("br0"));
  EXPECT_TRUE(host_.links.count(bridge_));
}

// A guest arriving here by live migration is filtered here (its taps, its security groups) while it runs here and
// before it is bound here; not before its migration targets this node, and not once that migration failed.
TEST_F(NetworkReconcilerTest, AnArrivingGuestIsFilteredBeforeItIsBoundHere) {
  auto migrations = Synced("migrations");
  Options o;
  o.node = "node-a";
  o.state_dir = (dir_ / "net").string();
  NetworkReconciler rec(client_.get(), networks_.get(), instances_.get(), groups_.get(), &host_, o, nullptr, nullptr,
                        nullptr, migrations.get());
  json net = MustCreate(Network(), "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  json sg = MustCreate(Group("web", 22), "securitygroups");
  ASSERT_TRUE(CachedRv(groups_.get(), "default/web", sg));
  json inst = Instance("web-1", {"web"});
  inst["spec"]["nodeName"] = "node-b";  // running on node-b, on its way here
  inst = MustCreate(inst, "instances");
  ASSERT_TRUE(CachedRv(instances_.get(), "default/web-1", inst));
  Allocate(inst);
  const std::string chain = "chain in-" + TapName(MetaString(inst, "uid"), 0);
  auto ruleset = [&] {
    auto r = rec.RenderNodeRuleset();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::string();
  };
  EXPECT_EQ(ruleset().find(chain), std::string::npos) << "another node's guest";
  json m = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Migration"},
                       {"metadata", {{"name", "m1"}, {"namespace", "default"}}}, {"spec", {{"instance", "web-1"}}}},
                      "migrations");
  m["status"] = {{"phase", "Running"}, {"sourceNode", "node-b"}, {"targetNode", "node-a"}};
  auto u = client_->UpdateStatus("migrations", "default", m);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  ASSERT_TRUE(CachedRv(migrations.get(), "default/m1", *u));
  EXPECT_NE(ruleset().find(chain), std::string::npos) << "arriving here: filtered here";
  json failed = *u;
  failed["status"]["phase"] = "Failed";
  u = client_->UpdateStatus("migrations", "default", failed);
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE(CachedRv(migrations.get(), "default/m1", *u));
  EXPECT_EQ(ruleset().find(chain), std::string::npos) << "it stayed on node-b";
  migrations->Stop();
}

// A node with an underlay: a network with a VNI joins its VXLAN segment, flooding to the underlay addresses the
// other Nodes report; the peers follow the Nodes; no underlay address: the network is not brought up half-joined.
TEST_F(NetworkReconcilerTest, OverlayFollowsTheVniAndThePeerNodes) {
  auto nodes = Synced("nodes");
  Options o;
  o.node = "node-a";
  o.state_dir = (dir_ / "net").string();
  o.underlay_interface = "ul";
  NetworkReconciler rec(client_.get(), networks_.get(), instances_.get(), groups_.get(), &host_, o, nullptr, nullptr,
                        nodes.get());
  auto node = [&](const std::string& name, const std::string& addr) {
    json n = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}},
                         {"spec", json::object()}}, "nodes", "");
    n["status"] = {{"underlay", {{"interface", "ul"}, {"address", addr}, {"mtu", 1500}}}};
    auto u = client_->UpdateStatus("nodes", "", n);
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    return *u;
  };
  json b = node("node-b", "10.250.0.11");
  node("node-a", "10.250.0.10");
  ASSERT_TRUE(Cached(nodes.get(), "node-b", [](const json& n) { return n.contains("status"); }));
  json net = MustCreate(Network(), "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  const std::string vx = VxlanName(bridge_);

  // The underlay device is missing: nothing is built, the node's entry says why.
  auto r = rec.Reconcile("default/default");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(host_.links.count(bridge_));
  EXPECT_EQ(Get("networks", "default")["status"]["nodes"]["node-a"].value("reason", ""), "UnderlayMissing");

  host_.links["ul"] = {"ul", true, false, true, 1500, "", {"10.250.0.10/24"}};
  // No VNI yet: a bridge of this node only.
  ASSERT_TRUE(rec.Reconcile("default/default").ok());
  EXPECT_TRUE(host_.links.count(bridge_));
  EXPECT_FALSE(host_.links.count(vx));
  // IPAM gives it VNI 4242: the port joins the bridge with MTU 1450 and floods to node-b (not to node-a itself).
  json cur = Get("networks", "default");
  cur["status"]["vni"] = 4242;
  auto u = client_->UpdateStatus("networks", "default", cur);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", *u));
  ASSERT_TRUE(rec.Reconcile("default/default").ok());
  ASSERT_TRUE(host_.links.count(vx)) << Get("networks", "default").dump(2);
  EXPECT_EQ(host_.links[vx].vxlan_id, 4242u);
  EXPECT_EQ(host_.links[vx].vxlan_local, "10.250.0.10");
  EXPECT_EQ(host_.links[vx].master, bridge_);
  EXPECT_EQ(host_.links[vx].mtu, 1450);
  EXPECT_EQ(host_.links[bridge_].mtu, 1450);
  EXPECT_EQ(host_.flood[vx], std::vector<std::string>{"10.250.0.11"});
  json entry = Get("networks", "default")["status"]["nodes"]["node-a"];
  EXPECT_EQ(entry["vxlan"].value("vni", 0), 4242) << entry.dump();
  // The ruleset keeps the host's frames and DHCP off the port.
  auto rules = rec.RenderNodeRuleset();
  ASSERT_TRUE(rules.ok());
  EXPECT_NE(rules->find("oifname { \"" + vx + "\" } drop"), std::string::npos) << *rules;
  // Node-b's underlay moves: the flood list follows (its Node event wakes every network).
  auto keys = rec.Watches();
  b = *client_->Get("nodes", "", "node-b");
  b["status"]["underlay"]["address"] = "10.250.0.21";
  u = client_->UpdateStatus("nodes", "", b);
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE(CachedRv(nodes.get(), "node-b", *u));
  bool mapped = false;
  for (auto& w : keys) {
    if (w.informer == nodes.get()) mapped = w.map("node-b", *u) == std::vector<std::string>{"default/default"};
  }
  EXPECT_TRUE(mapped);
  ASSERT_TRUE(rec.Reconcile("default/default").ok());
  EXPECT_EQ(host_.flood[vx], std::vector<std::string>{"10.250.0.21"});
  // Deleting the network removes the port with the bridge.
  ASSERT_TRUE(client_->Delete("networks", "default", "default").ok());
  ASSERT_TRUE(Cached(networks_.get(), "default/default", [](const json& n) {
    return n.is_null() || !MetaString(n, "deletionTimestamp").empty();
  }));
  ASSERT_TRUE(rec.Reconcile("default/default").ok());
  EXPECT_FALSE(host_.links.count(vx));
  EXPECT_FALSE(host_.links.count(bridge_));
  nodes->Stop();
}

// Owner marks: this agent marks the bridges it makes and the unmarked ones of its Networks; another Stratus'
// marked bridge is never changed, torn down or swept, and the Network says why it is not up.
TEST_F(NetworkReconcilerTest, BridgesCarryTheirOwnerAndAnotherOwnersAreLeftAlone) {
  Options o;
  o.node = "node-a";
  o.state_dir = (dir_ / "net").string();
  o.owner_mark = "stratus:cluster-a/node-a";
  rec_ = std::make_unique<NetworkReconciler>(client_.get(), networks_.get(), instances_.get(), groups_.get(), &host_, o);
  json net = MustCreate(Network(), "networks");
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", net));
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  EXPECT_EQ(host_.links[bridge_].alias, o.owner_mark) << "a new bridge carries its owner";
  host_.links[bridge_].alias = "";
  // The next pass plans from the cache: wait until it shows the status the first pass wrote.
  ASSERT_TRUE(CachedRv(networks_.get(), "default/default", Get("networks", "default")));
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  EXPECT_EQ(host_.links[bridge_].alias, o.owner_mark) << "an unmarked bridge of ours (from before marks) is marked";

  // Another Stratus' bridge under the same name: untouched, and the Network reports the conflict.
  host::LinkState theirs{bridge_, true, true, true, 9000, "", {"10.99.0.1/24"}, "stratus:cluster-b/node-a"};
  host_.links[bridge_] = theirs;
  auto r = rec_->Reconcile("default/default");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(host_.links[bridge_].ipv4, theirs.ipv4);
  EXPECT_EQ(host_.links[bridge_].mtu, 9000);
  json got = Get("networks", "default");
  EXPECT_NE(got.dump().find("BridgeConflict"), std::string::npos) << got.dump();
  EXPECT_TRUE(HasEvent("BridgeConflict"));

  // Nor is it swept as an orphan, while an unmarked or our own orphan is.
  std::string other = "st-0000000000bb", mine = "st-0000000000aa", legacy = "st-0000000000cc";
  host_.links[other] = {other, true, true, true, 1500, "", {}, "stratus:cluster-b/node-a"};
  host_.links[mine] = {mine, true, true, true, 1500, "", {}, o.owner_mark};
  host_.links[legacy] = {legacy, true, true, true, 1500, "", {}, ""};
  ASSERT_TRUE(rec_->Reconcile(NetworkReconciler::kFirewallKey).ok());
  EXPECT_TRUE(host_.links.count(other));
  EXPECT_FALSE(host_.links.count(mine));
  EXPECT_FALSE(host_.links.count(legacy));

  // Deleting the Network tears down nothing of theirs.
  ASSERT_TRUE(client_->Delete("networks", "default", "default").ok());
  ASSERT_TRUE(Cached(networks_.get(), "default/default",
                     [](const json& n) { return n.is_null() || !MetaString(n, "deletionTimestamp").empty(); }));
  ASSERT_TRUE(rec_->Reconcile("default/default").ok());
  EXPECT_EQ(host_.links[bridge_].alias, theirs.alias);
  EXPECT_EQ(host_.links[bridge_].ipv4, theirs.ipv4);
}

TEST_F(NetworkReconcilerTest, WatchMappings) {
  json inst = Instance("web-1");
  inst["spec"]["networks"] = {{{"network", "a"}}, {{"network", "b"}}, {{"network", "a"}}};
  EXPECT_EQ(NetworkReconciler::InstanceKeys("default/web-1", inst),
            (std::vector<std::string>{"default/a", "default/b", NetworkReconciler::kFirewallKey}));
  EXPECT_EQ(NetworkReconciler::NetworkKeys("default/x", json()),
            (std::vector<std::string>{"default/x", NetworkReconciler::kFirewallKey}));
  EXPECT_EQ(NetworkReconciler::SecurityGroupKeys("default/g", json()),
            std::vector<std::string>{NetworkReconciler::kFirewallKey});
}

}  // namespace
}  // namespace stratus::network
