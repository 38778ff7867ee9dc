// Bridge reconciliation decisions: creation from nothing, nothing to do when converged, repair of drift (deleted
// bridge, lost address, killed dnsmasq, detached taps), configuration and hosts changes, teardown, orphans.
#include <gtest/gtest.h>

#include "stratus/network/dnsmasq.h"
#include "stratus/network/plan.h"

namespace stratus::network {
namespace {

NetworkConfig Net(json extra = json::object()) {
  json spec = {{"cidr", "10.44.0.0/24"}};
  for (auto& [k, v] : extra.items()) spec[k] = v;
  auto c = ParseNetwork({{"metadata", {{"name", "default"}, {"namespace", "default"}}}, {"spec", spec}});
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

DesiredNetwork Want(json extra = json::object(), std::vector<std::string> taps = {}) {
  AllocationTable t;
  t[*ParseIpv4("10.44.0.10")] = Allocation{"default/web-1", "u1", 0, "52:54:00:00:00:01"};
  auto d = Desire(Net(extra), t, "/var/lib/stratus/net", std::move(taps));
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return *d;
}

// The host exactly as `want` asks.
ObservedNetwork Converged(const DesiredNetwork& want) {
  ObservedNetwork o;
  o.bridge = {want.bridge, true, true, true, want.config.mtu ? want.config.mtu : 1500, "", {want.gateway_cidr}};
  o.dnsmasq = {true, 4242, want.conf, want.hosts};
  for (const auto& t : want.taps) o.taps[t] = {t, true, false, true, 1500, want.bridge, {}};
  return o;
}

std::vector<StepKind> Kinds(const std::vector<Step>& steps) {
  std::vector<StepKind> k;
  for (const auto& s : steps) k.push_back(s.kind);
  return k;
}

TEST(NetworkPlanTest, Names) {
  std::string b = BridgeName("default", "default");
  EXPECT_EQ(b, BridgeName("default", "default"));
  EXPECT_NE(b, BridgeName("other", "default"));
  EXPECT_NE(b, BridgeName("default", "other"));
  EXPECT_EQ(b.size(), 15u);
  EXPECT_EQ(b.rfind("st-", 0), 0u);
  EXPECT_TRUE(host::ValidateIfName(b).ok());
  std::string tap = TapName("uid-1", 0);
  EXPECT_EQ(tap.size(), 15u);
  EXPECT_NE(tap, TapName("uid-1", 1));
  EXPECT_TRUE(host::ValidateIfName(tap).ok());
  EXPECT_TRUE(host::ValidateIfName(VlanLinkName("default", "x")).ok());
}

TEST(NetworkPlanTest, ValidateIfName) {
  EXPECT_TRUE(host::ValidateIfName("eth0").ok());
  EXPECT_TRUE(host::ValidateIfName("br-ex.100").ok());
  EXPECT_FALSE(host::ValidateIfName("").ok());
  EXPECT_FALSE(host::ValidateIfName("0123456789abcdef").ok());
  EXPECT_FALSE(host::ValidateIfName("eth0;reboot").ok());
  EXPECT_FALSE(host::ValidateIfName("eth 0").ok());
  EXPECT_FALSE(host::ValidateIfName("eth0:1").ok());
  EXPECT_FALSE(host::ValidateIfName("..").ok());
  EXPECT_FALSE(host::ValidateIfName("a/b").ok());
}

TEST(NetworkPlanTest, DesireRendersEverything) {
  DesiredNetwork d = Want({{"mtu", 1400}}, {"stv2", "stv1", "stv2"});
  EXPECT_EQ(d.bridge, BridgeName("default", "default"));
  EXPECT_EQ(d.gateway_cidr, "10.44.0.1/24");
  EXPECT_TRUE(d.dnsmasq);
  EXPECT_EQ(d.files.dir, "/var/lib/stratus/net/" + d.bridge);
  EXPECT_NE(d.conf.find("interface=" + d.bridge + "\n"), std::string::npos);
  EXPECT_EQ(d.hosts, "52:54:00:00:00:01,10.44.0.10,web-1\n");
  EXPECT_EQ(d.taps, (std::vector<std::string>{"stv1", "stv2"}));
  EXPECT_FALSE(Want({{"dhcp", false}}).dnsmasq);
  EXPECT_FALSE(Desire(Net(), {}, "/x", {"bad tap"}).ok());
}

TEST(NetworkPlanTest, CreatesFromNothingInOrder) {
  DesiredNetwork want = Want({{"mtu", 1400}});
  ObservedNetwork nothing;
  auto steps = PlanNetwork(want, nothing, /*first_time=*/true);
  EXPECT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kCreateBridge, StepKind::kSetUp, StepKind::kAddAddress,
                                                 StepKind::kStartDnsmasq}));
  EXPECT_EQ(steps[0].target, want.bridge);
  EXPECT_EQ(steps[0].mtu, 1400);
  EXPECT_EQ(steps[2].arg, "10.44.0.1/24");
  for (const auto& s : steps) EXPECT_FALSE(s.repair) << StepKindName(s.kind);
}

TEST(NetworkPlanTest, NothingToDoWhenConverged) {
  DesiredNetwork want = Want({{"mtu", 1400}}, {"stv1"});
  EXPECT_TRUE(PlanNetwork(want, Converged(want)).empty());
}

TEST(NetworkPlanTest, DeletedBridgeIsRecreatedWithItsPortsAndDnsmasqRestarted) {
  DesiredNetwork want = Want({}, {"stv1", "stv2"});
  ObservedNetwork seen = Converged(want);
  seen.bridge = host::LinkState{};  // deleted behind our back: taps lost their master
  seen.taps["stv1"].master = "";
  seen.taps.erase("stv2");      // that instance is not running: nothing to attach
  auto steps = PlanNetwork(want, seen);
  EXPECT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kCreateBridge, StepKind::kSetUp, StepKind::kAddAddress,
                                                 StepKind::kAttach, StepKind::kRestartDnsmasq}));
  EXPECT_TRUE(steps[0].repair);
  EXPECT_EQ(steps[3].target, "stv1");
  EXPECT_EQ(steps[3].arg, want.bridge);
  EXPECT_NE(steps[0].reason.find("missing"), std::string::npos);
}

TEST(NetworkPlanTest, RepairsSmallerDrift) {
  DesiredNetwork want = Want({{"mtu", 1400}}, {"stv1"});
  ObservedNetwork seen = Converged(want);
  seen.bridge.up = false;
  seen.bridge.mtu = 1500;
  seen.bridge.ipv4 = {"10.44.0.1/16", "192.0.2.1/24"};
  seen.taps["stv1"].master = "";
  auto steps = PlanNetwork(want, seen);
  EXPECT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kSetMtu, StepKind::kSetUp, StepKind::kDeleteAddress,
                                                 StepKind::kDeleteAddress, StepKind::kAddAddress, StepKind::kAttach}));
  EXPECT_TRUE(steps[1].repair);
}

TEST(NetworkPlanTest, KilledDnsmasqIsStarted) {
  DesiredNetwork want = Want();
  ObservedNetwork seen = Converged(want);
  seen.dnsmasq.running = false;  // pid file still names the dead one
  auto steps = PlanNetwork(want, seen);
  ASSERT_EQ(Kinds(steps), std::vector<StepKind>{StepKind::kStartDnsmasq});
  EXPECT_TRUE(steps[0].repair);
}

TEST(NetworkPlanTest, ConfChangeRestartsHostsChangeReloads) {
  DesiredNetwork want = Want();
  ObservedNetwork seen = Converged(want);
  seen.dnsmasq.hosts = "";
  EXPECT_EQ(Kinds(PlanNetwork(want, seen)), std::vector<StepKind>{StepKind::kReloadDnsmasq});
  seen.dnsmasq.conf = "old";
  EXPECT_EQ(Kinds(PlanNetwork(want, seen)), std::vector<StepKind>{StepKind::kRestartDnsmasq});
  DesiredNetwork off = Want({{"dhcp", false}});
  EXPECT_EQ(Kinds(PlanNetwork(off, Converged(want))), std::vector<StepKind>{StepKind::kStopDnsmasq});
}

TEST(NetworkPlanTest, WrongKindOfLinkIsReplaced) {
  DesiredNetwork want = Want();
  ObservedNetwork seen;
  seen.bridge = {want.bridge, true, false, true, 1500, "", {}};
  auto k = Kinds(PlanNetwork(want, seen));
  ASSERT_GE(k.size(), 2u);
  EXPECT_EQ(k[0], StepKind::kDeleteLink);
  EXPECT_EQ(k[1], StepKind::kCreateBridge);
}

TEST(NetworkPlanTest, BridgedNetworkJoinsTheUplink) {
  DesiredNetwork want = Want({{"mode", "bridged"}, {"hostInterface", "eth1"}, {"vlan", 100}});
  EXPECT_TRUE(want.gateway_cidr.empty());
  EXPECT_FALSE(want.dnsmasq);
  EXPECT_EQ(want.uplink, want.vlan_link);
  ObservedNetwork nothing;
  auto steps = PlanNetwork(want, nothing, true);
  EXPECT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kCreateBridge, StepKind::kSetUp, StepKind::kCreateVlan,
                                                 StepKind::kAttach}));
  EXPECT_EQ(steps[2].arg, "eth1");
  EXPECT_EQ(steps[2].mtu, 100);
  DesiredNetwork plain = Want({{"mode", "bridged"}, {"hostInterface", "eth1"}});
  ObservedNetwork seen;
  seen.uplink = {"eth1", true, false, true, 1500, "", {}};
  auto k = Kinds(PlanNetwork(plain, seen, true));
  EXPECT_EQ(k, (std::vector<StepKind>{StepKind::kCreateBridge, StepKind::kSetUp, StepKind::kAttach}));
}

DesiredNetwork WantOverlay(json extra, OverlayInput in) {
  AllocationTable t;
  t[*ParseIpv4("10.44.0.10")] = Allocation{"default/web-1", "u1", 0, "52:54:00:00:00:01"};
  auto d = Desire(Net(extra), t, "/var/lib/stratus/net", {}, {}, &in);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return *d;
}

OverlayInput Underlay(uint32_t vni = 4242) {
  OverlayInput in;
  in.dev = "ul";
  in.local = "10.250.0.10";
  in.dev_mtu = 1500;
  in.vni = vni;
  in.peers = {"10.250.0.12", "10.250.0.10", "10.250.0.11"};  // our own address is not a peer
  return in;
}

TEST(NetworkPlanTest, OverlayJoinsTheSegmentWithTheRightMtu) {
  DesiredNetwork want = WantOverlay(json::object(), Underlay());
  ASSERT_TRUE(want.overlay);
  EXPECT_EQ(want.vxlan.link, VxlanName(want.bridge));
  EXPECT_EQ(want.vxlan.link.rfind("sx-", 0), 0u);
  EXPECT_EQ(want.vxlan.link.substr(3), want.bridge.substr(3));
  EXPECT_TRUE(host::ValidateIfName(want.vxlan.link).ok());
  EXPECT_EQ(want.vxlan.peers, (std::vector<std::string>{"10.250.0.11", "10.250.0.12"}));
  // Guests carry what fits in an underlay frame after the VXLAN header: bridge and DHCP option 26 say 1450.
  EXPECT_EQ(want.vxlan.mtu, 1450);
  EXPECT_EQ(want.config.mtu, 1450);
  EXPECT_NE(want.conf.find("dhcp-option=option:mtu,1450"), std::string::npos) << want.conf;
  auto steps = PlanNetwork(want, ObservedNetwork{}, true);
  EXPECT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kCreateBridge, StepKind::kSetUp, StepKind::kAddAddress,
                                                 StepKind::kCreateVxlan, StepKind::kAttach, StepKind::kAddFloodPeer,
                                                 StepKind::kAddFloodPeer, StepKind::kStartDnsmasq}));
  EXPECT_EQ(steps[0].mtu, 1450);
  EXPECT_EQ(steps[3].arg, "ul");
  EXPECT_EQ(steps[3].mtu, 1450);
  EXPECT_EQ(steps[4].arg, want.bridge);
  EXPECT_EQ(steps[5].arg, "10.250.0.11");
  EXPECT_EQ(steps[6].arg, "10.250.0.12");
  // A smaller spec.mtu stays; a larger one is cut to what the underlay carries.
  EXPECT_EQ(WantOverlay({{"mtu", 1400}}, Underlay()).config.mtu, 1400);
  EXPECT_EQ(WantOverlay({{"mtu", 9000}}, Underlay()).config.mtu, 1450);
  // Bridged networks join their host interface, never an overlay; no VNI yet: this node only.
  EXPECT_FALSE(WantOverlay({{"mode", "bridged"}, {"hostInterface", "eth1"}}, Underlay()).overlay);
  DesiredNetwork no_vni = WantOverlay(json::object(), Underlay(0));
  EXPECT_FALSE(no_vni.overlay);
  EXPECT_EQ(no_vni.config.mtu, 0);
  // An underlay too small for VXLAN, or a bad address, is refused rather than half-built.
  OverlayInput tiny = Underlay();
  tiny.dev_mtu = 600;
  AllocationTable t;
  EXPECT_FALSE(Desire(Net(), t, "/x", {}, {}, &tiny).ok());
  OverlayInput bad = Underlay();
  bad.peers.push_back("10.250.0.300");
  EXPECT_FALSE(Desire(Net(), t, "/x", {}, {}, &bad).ok());
}

ObservedNetwork ConvergedOverlay(const DesiredNetwork& want) {
  ObservedNetwork o = Converged(want);
  o.vxlan = {want.vxlan.link, true, false, true, want.vxlan.mtu, want.bridge, {}};
  o.vxlan.kind = "vxlan";
  o.vxlan.vxlan_id = want.vxlan.vni;
  o.vxlan.vxlan_local = want.vxlan.local;
  o.flood = want.vxlan.peers;
  return o;
}

TEST(NetworkPlanTest, OverlayDriftAndPeersChanging) {
  DesiredNetwork want = WantOverlay(json::object(), Underlay());
  ObservedNetwork seen = ConvergedOverlay(want);
  EXPECT_TRUE(PlanNetwork(want, seen).empty());
  // A peer went and another came: exactly those two flood entries change.
  seen.flood = {"10.250.0.11", "10.250.0.99"};
  auto steps = PlanNetwork(want, seen);
  ASSERT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kDeleteFloodPeer, StepKind::kAddFloodPeer}));
  EXPECT_EQ(steps[0].arg, "10.250.0.99");
  EXPECT_EQ(steps[1].arg, "10.250.0.12");
  // Detached from the bridge: attached again (a repair).
  seen = ConvergedOverlay(want);
  seen.vxlan.master = "";
  steps = PlanNetwork(want, seen);
  ASSERT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kAttach}));
  EXPECT_TRUE(steps[0].repair);
  // The wrong VNI (or source address) on our name: deleted and made again, with the whole flood list.
  seen = ConvergedOverlay(want);
  seen.vxlan.vxlan_id = 7;
  EXPECT_EQ(Kinds(PlanNetwork(want, seen)),
            (std::vector<StepKind>{StepKind::kDeleteLink, StepKind::kCreateVxlan, StepKind::kAttach,
                                   StepKind::kAddFloodPeer, StepKind::kAddFloodPeer}));
  // A deleted vxlan link is made again.
  seen = ConvergedOverlay(want);
  seen.vxlan = {};
  seen.flood.clear();
  auto k = Kinds(PlanNetwork(want, seen));
  EXPECT_EQ(k.front(), StepKind::kCreateVxlan);
  // The node lost its underlay: the port goes, the bridge stays.
  DesiredNetwork local = Want();
  ObservedNetwork had = ConvergedOverlay(want);
  had.dnsmasq.conf = local.conf;
  had.bridge.mtu = 1500;
  steps = PlanNetwork(local, had);
  ASSERT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kDeleteLink}));
  EXPECT_EQ(steps[0].target, want.vxlan.link);
  // Teardown removes the port with the bridge.
  EXPECT_EQ(Kinds(PlanTeardown(want.bridge, "", ConvergedOverlay(want))),
            (std::vector<StepKind>{StepKind::kStopDnsmasq, StepKind::kDeleteLink, StepKind::kDeleteLink}));
}

TEST(NetworkPlanTest, TeardownAndOrphans) {
  DesiredNetwork want = Want();
  auto steps = PlanTeardown(want.bridge, "", Converged(want));
  EXPECT_EQ(Kinds(steps), (std::vector<StepKind>{StepKind::kStopDnsmasq, StepKind::kDeleteLink}));
  EXPECT_TRUE(PlanTeardown(want.bridge, "", ObservedNetwork{}).empty());  // already gone: nothing to do
  auto orphans = OrphanBridges({"st-111111111111", "st-222222222222", "br0", "virbr0"}, {"st-222222222222"});
  EXPECT_EQ(orphans, std::vector<std::string>{"st-111111111111"});
}

}  // namespace
}  // namespace stratus::network
