// IPAM: parsing, deterministic allocation, static requests and their refusals, release, exhaustion, MACs, and
// the persisted table's round trip.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "stratus/network/ipam.h"

namespace stratus::network {
namespace {

json NetworkObj(const std::string& cidr, const std::string& gateway = "", json extra = json::object()) {
  json spec = {{"cidr", cidr}};
  if (!gateway.empty()) spec["gateway"] = gateway;
  for (auto& [k, v] : extra.items()) spec[k] = v;
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Network"},
          {"metadata", {{"name", "default"}, {"namespace", "default"}, {"uid", "net-uid"}}},
          {"spec", spec}};
}

NetworkConfig Net(const std::string& cidr = "10.44.0.0/24", const std::string& gateway = "") {
  auto c = ParseNetwork(NetworkObj(cidr, gateway));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

NicRequest Req(const std::string& uid, int nic = 0, const std::string& ip = "", const std::string& name = "") {
  NicRequest r;
  r.uid = uid;
  r.nic = nic;
  r.ip = ip;
  r.instance = "default/" + (name.empty() ? uid : name);
  return r;
}

TEST(IpamParseTest, Ipv4AndCidr) {
  EXPECT_EQ(*ParseIpv4("10.44.0.12"), 0x0a2c000cu);
  EXPECT_EQ(FormatIpv4(0x0a2c000c), "10.44.0.12");
  for (const char* bad : {"", "10.44.0", "10.44.0.256", "10.44.0.1.2", "010.1.1.1", "1.2.3.-4", "a.b.c.d", "1.2.3.4 "}) {
    EXPECT_FALSE(ParseIpv4(bad).ok()) << bad;
  }
  auto n = ParseCidr("10.44.0.0/24");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->broadcast(), *ParseIpv4("10.44.0.255"));
  EXPECT_TRUE(n->Contains(*ParseIpv4("10.44.0.77")));
  EXPECT_FALSE(n->Contains(*ParseIpv4("10.44.1.1")));
  auto hb = ParseCidr("10.44.0.1/24");
  ASSERT_FALSE(hb.ok());
  EXPECT_NE(hb.status().message().find("did you mean 10.44.0.0/24"), std::string::npos) << hb.status().message();
  EXPECT_FALSE(ParseCidr("10.44.0.0/33").ok());
  EXPECT_FALSE(ParseCidr("10.44.0.0").ok());
  EXPECT_TRUE(ParseCidr("0.0.0.0/0").ok());
}

TEST(IpamParseTest, NetworkDefaultsAndRefusals) {
  NetworkConfig c = Net();
  EXPECT_EQ(FormatIpv4(c.gateway), "10.44.0.1");  // first host by default
  EXPECT_EQ(c.mode, "nat");
  EXPECT_TRUE(c.dhcp);
  EXPECT_EQ(c.HostCount(), 254u);
  EXPECT_EQ(FormatIpv4(Net("10.44.0.0/24", "10.44.0.254").gateway), "10.44.0.254");

  auto outside = ParseNetwork(NetworkObj("10.44.0.0/24", "10.45.0.1"));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.status().message(), "spec.gateway: 10.45.0.1 is outside 10.44.0.0/24");
  ASSERT_EQ(outside.status().causes().size(), 1u);
  EXPECT_EQ(outside.status().causes()[0].field, "spec.gateway");
  EXPECT_FALSE(ParseNetwork(NetworkObj("10.44.0.0/24", "10.44.0.255")).ok());
  auto tiny = ParseNetwork(NetworkObj("10.44.0.0/31"));
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("spec.cidr"), std::string::npos);
  EXPECT_FALSE(ParseNetwork(NetworkObj("10.44.0.0/24", "", {{"dns", {"8.8.8.8", "nope"}}})).ok());
  EXPECT_FALSE(ParseNetwork(NetworkObj("10.44.0.0/24", "", {{"mtu", 100}})).ok());
  auto bad_if = ParseNetwork(NetworkObj("10.44.0.0/24", "", {{"mode", "bridged"}, {"hostInterface", "eth0;rm"}}));
  ASSERT_FALSE(bad_if.ok());
  EXPECT_NE(bad_if.status().message().find("spec.hostInterface"), std::string::npos);
  EXPECT_FALSE(ParseNetwork(NetworkObj("10.44.0.0/24", "", {{"mode", "bridged"}})).ok());
  auto ok = ParseNetwork(NetworkObj("10.44.0.0/24", "", {{"dns", {"192.0.2.53"}}, {"mtu", 1400}, {"mode", "isolated"}}));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->mtu, 1400);
  EXPECT_EQ(ok->dns.size(), 1u);
}

TEST(IpamTest, AllocationIsDeterministicAndStable) {
  NetworkConfig net = Net();
  AllocationTable a, b;
  auto x = Allocate(net, a, Req("uid-1"));
  auto y = Allocate(net, b, Req("uid-1"));
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(x->ip, y->ip);      // same answer on another server with an empty table
  EXPECT_EQ(x->mac, y->mac);
  EXPECT_TRUE(x->changed);
  EXPECT_TRUE(net.cidr.Contains(x->ip));
  EXPECT_NE(x->ip, net.gateway);
  EXPECT_EQ(x->mac.rfind("52:54:00:", 0), 0u);
  // Asking again (instance restart, agent restart) gives the same address without changing the table.
  auto again = Allocate(net, a, Req("uid-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ip, x->ip);
  EXPECT_EQ(again->mac, x->mac);
  EXPECT_FALSE(again->changed);
  // A second NIC of the same instance gets another address and MAC.
  auto nic1 = Allocate(net, a, Req("uid-1", 1));
  ASSERT_TRUE(nic1.ok());
  EXPECT_NE(nic1->ip, x->ip);
  EXPECT_NE(nic1->mac, x->mac);
  EXPECT_EQ(DeriveMac("uid-1", 0), DeriveMac("uid-1", 0));
  EXPECT_NE(DeriveMac("uid-1", 0), DeriveMac("uid-1", 1));
}

TEST(IpamTest, AddressesAreSpreadAndNeverHandedOutTwice) {
  NetworkConfig net = Net();
  AllocationTable t;
  std::set<uint32_t> ips;
  std::set<std::string> macs;
  for (int i = 0; i < 100; ++i) {
    auto r = Allocate(net, t, Req("uid-" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(ips.insert(r->ip).second) << FormatIpv4(r->ip);
    EXPECT_TRUE(macs.insert(r->mac).second) << r->mac;
    EXPECT_NE(r->ip, net.gateway);
    EXPECT_NE(r->ip, net.cidr.base);
    EXPECT_NE(r->ip, net.cidr.broadcast());
  }
  EXPECT_EQ(t.size(), 100u);
}

TEST(IpamTest, StaticRequestsHonouredOrRefusedWithTheField) {
  NetworkConfig net = Net();
  AllocationTable t;
  auto fixed = Allocate(net, t, Req("uid-a", 0, "10.44.0.12", "web-1"));
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_EQ(FormatIpv4(fixed->ip), "10.44.0.12");

  auto gw = Allocate(net, t, Req("uid-b", 0, "10.44.0.1", "web-2"));
  ASSERT_FALSE(gw.ok());
  EXPECT_EQ(gw.status().code(), Code::kInvalid);
  EXPECT_EQ(gw.status().message(), "spec.networks[0].ip: 10.44.0.1 is the gateway of network default");
  ASSERT_EQ(gw.status().causes().size(), 1u);
  EXPECT_EQ(gw.status().causes()[0].field, "spec.networks[0].ip");

  auto taken = Allocate(net, t, Req("uid-b", 0, "10.44.0.12", "web-2"));
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().message(), "spec.networks[0].ip: 10.44.0.12 is held by instance default/web-1");

  auto outside = Allocate(net, t, Req("uid-b", 0, "10.45.0.3", "web-2"));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.status().message(), "spec.networks[0].ip: 10.45.0.3 is outside 10.44.0.0/24");

  auto netaddr = Allocate(net, t, Req("uid-b", 0, "10.44.0.0"));
  ASSERT_FALSE(netaddr.ok());
  EXPECT_NE(netaddr.status().message().find("network address"), std::string::npos);
  auto bcast = Allocate(net, t, Req("uid-b", 0, "10.44.0.255"));
  ASSERT_FALSE(bcast.ok());
  EXPECT_NE(bcast.status().message().find("broadcast address"), std::string::npos);
  auto junk = Allocate(net, t, Req("uid-b", 0, "10.44.0.300"));
  ASSERT_FALSE(junk.ok());
  EXPECT_EQ(junk.status().causes()[0].field, "spec.networks[0].ip");

  // The field path follows the NIC index, or the caller's field.
  NicRequest r = Req("uid-b", 2, "10.44.0.1");
  EXPECT_EQ(Allocate(net, t, r).status().causes()[0].field, "spec.networks[2].ip");
  r.field = "spec.networks[5]";
  EXPECT_EQ(Allocate(net, t, r).status().causes()[0].field, "spec.networks[5].ip");

  // Failed requests left the table alone.
  EXPECT_EQ(t.size(), 1u);
  // Asking for the address it already holds is fine; moving to another one releases the old.
  auto same = Allocate(net, t, Req("uid-a", 0, "10.44.0.12", "web-1"));
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->changed);
  auto moved = Allocate(net, t, Req("uid-a", 0, "10.44.0.13", "web-1"));
  ASSERT_TRUE(moved.ok());
  EXPECT_TRUE(moved->changed);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.count(*ParseIpv4("10.44.0.12")), 0u);
  // A dynamic request after a static one keeps the address (no jumping back to the hashed slot).
  auto keep = Allocate(net, t, Req("uid-a", 0, "", "web-1"));
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(FormatIpv4(keep->ip), "10.44.0.13");
}

TEST(IpamTest, StaticMacValidatedAndUnique) {
  NetworkConfig net = Net();
  AllocationTable t;
  NicRequest a = Req("uid-a", 0, "", "web-1");
  a.mac = "52:54:00:AA:BB:CC";
  auto r = Allocate(net, t, a);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->mac, "52:54:00:aa:bb:cc");
  NicRequest b = Req("uid-b", 0, "", "web-2");
  b.mac = "52:54:00:aa:bb:cc";
  auto dup = Allocate(net, t, b);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message(), "spec.networks[0].mac: 52:54:00:aa:bb:cc is used by instance default/web-1 on network default");
  b.mac = "01:00:5e:00:00:01";
  EXPECT_NE(Allocate(net, t, b).status().message().find("multicast"), std::string::npos);
  b.mac = "52:54:00:zz:00:01";
  EXPECT_FALSE(Allocate(net, t, b).ok());
}

TEST(IpamTest, ExhaustionAndRelease) {
  NetworkConfig net = Net("10.44.0.0/29");  // hosts .1-.6, .1 is the gateway: 5 for instances
  AllocationTable t;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Allocate(net, t, Req("uid-" + std::to_string(i))).ok()) << i;
  auto full = Allocate(net, t, Req("uid-x", 0, "", "late"));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), Code::kUnavailable);
  EXPECT_EQ(full.status().message(), "spec.networks[0]: network default has no free address (6 of 6 in use)");
  // Releasing an instance frees its addresses for others.
  uint32_t freed = Lookup(t, "uid-3", 0);
  ASSERT_NE(freed, 0u);
  EXPECT_EQ(ReleaseInstance(t, "uid-3"), 1);
  EXPECT_EQ(ReleaseInstance(t, "uid-3"), 0);
  auto late = Allocate(net, t, Req("uid-x", 0, "", "late"));
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->ip, freed);
}

TEST(IpamTest, ReleaseByNic) {
  NetworkConfig net = Net();
  AllocationTable t;
  for (int nic = 0; nic < 3; ++nic) ASSERT_TRUE(Allocate(net, t, Req("uid-a", nic)).ok());
  ASSERT_TRUE(Allocate(net, t, Req("uid-b", 0)).ok());
  EXPECT_EQ(ReleaseNic(t, "uid-a", 1), 1);
  EXPECT_EQ(Lookup(t, "uid-a", 1), 0u);
  EXPECT_EQ(ReleaseRemovedNics(t, "uid-a", 1), 1);  // nic 2 removed from the spec
  EXPECT_NE(Lookup(t, "uid-a", 0), 0u);
  EXPECT_NE(Lookup(t, "uid-b", 0), 0u);
  EXPECT_EQ(t.size(), 2u);
}

TEST(IpamTest, ProbingPastTakenAddressesIsDeterministic) {
  NetworkConfig net = Net();
  AllocationTable t;
  auto first = Allocate(net, t, Req("uid-1"));
  ASSERT_TRUE(first.ok());
  // Someone else holds that slot on another table: uid-1 probes to the next free address, the same each time.
  AllocationTable other;
  other[first->ip] = Allocation{"default/x", "uid-x", 0, "52:54:00:00:00:01"};
  AllocationTable other2 = other;
  auto p1 = Allocate(net, other, Req("uid-1"));
  auto p2 = Allocate(net, other2, Req("uid-1"));
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(p1->ip, p2->ip);
  EXPECT_NE(p1->ip, first->ip);
}

TEST(IpamTest, PersistenceRoundTrip) {
  NetworkConfig net = Net();
  AllocationTable t;
  ASSERT_TRUE(Allocate(net, t, Req("uid-a", 0, "10.44.0.12", "web-1")).ok());
  ASSERT_TRUE(Allocate(net, t, Req("uid-b", 0, "", "web-2")).ok());
  ASSERT_TRUE(Allocate(net, t, Req("uid-b", 1, "", "web-2")).ok());
  json j = AllocationsToJson(t);
  ASSERT_TRUE(j.contains("10.44.0.12"));
  EXPECT_EQ(j["10.44.0.12"]["instance"], "default/web-1");
  EXPECT_EQ(j["10.44.0.12"]["uid"], "uid-a");
  EXPECT_EQ(j["10.44.0.12"]["nic"], 0);
  // Through text, as the status is stored.
  auto back = AllocationsFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, t);
  // A server restart with the persisted table gives the same answers and never reuses an address.
  AllocationTable restored = *back;
  auto again = Allocate(net, restored, Req("uid-b", 1, "", "web-2"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ip, Lookup(t, "uid-b", 1));
  EXPECT_FALSE(again->changed);
  auto fresh = Allocate(net, restored, Req("uid-c"));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(t.count(fresh->ip), 0u);

  EXPECT_TRUE(AllocationsFromJson(json()).ok());
  EXPECT_TRUE(AllocationsFromJson(json::object())->empty());
  EXPECT_FALSE(AllocationsFromJson(json::array()).ok());
  auto bad_ip = AllocationsFromJson({{"10.44.0.300", {{"uid", "u"}, {"nic", 0}}}});
  ASSERT_FALSE(bad_ip.ok());
  EXPECT_NE(bad_ip.status().message().find("status.allocations[10.44.0.300]"), std::string::npos);
  EXPECT_FALSE(AllocationsFromJson({{"10.44.0.5", {{"nic", 0}}}}).ok());
  EXPECT_FALSE(AllocationsFromJson({{"10.44.0.5", {{"uid", "u"}, {"nic", 0}}}, {"10.44.0.6", {{"uid", "u"}, {"nic", 0}}}}).ok());
}

TEST(IpamTest, GatewayNotHandedOutEvenWhenNotFirst) {
  NetworkConfig net = Net("10.44.0.0/30", "10.44.0.2");  // hosts .1 and .2
  AllocationTable t;
  auto r = Allocate(net, t, Req("uid-1"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(FormatIpv4(r->ip), "10.44.0.1");
  EXPECT_FALSE(Allocate(net, t, Req("uid-2")).ok());
}

// 3,000 NICs on a /16: every address distinct, and the table survives its JSON round trip. (How fast is a
// benchmark's question, not a unit test's.)
TEST(IpamTest, LargeNetworkAllocatesDistinctAddressesAndRoundTrips) {
  NetworkConfig net = Net("10.44.0.0/16");
  AllocationTable t;
  std::set<uint32_t> seen;
  for (int i = 0; i < 3000; ++i) {
    auto a = Allocate(net, t, Req("uid-" + std::to_string(i)));
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(seen.insert(a->ip).second) << FormatIpv4(a->ip) << " handed out twice";
  }
  auto back = AllocationsFromJson(json::parse(AllocationsToJson(t).dump()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->size(), 3000u);
  for (uint32_t ip : seen) EXPECT_EQ(back->count(ip), 1u);
}

}  // namespace
}  // namespace stratus::network
