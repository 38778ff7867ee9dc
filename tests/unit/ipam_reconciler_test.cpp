// The cluster IPAM pass: every live NIC gets an address, holders keep theirs, requests for taken/invalid
// addresses are refused with the field named, and addresses come free only once their instance is gone.
#include <gtest/gtest.h>

#include "stratus/ipam/ipam.h"

namespace stratus::ipam {
namespace {

network::NetworkConfig Net() {
  json n = {{"apiVersion", "stratus.io/v1"},
            {"kind", "Network"},
            {"metadata", {{"name", "default"}, {"namespace", "default"}, {"uid", "net-1"}}},
            {"spec", {{"cidr", "10.44.0.0/24"}}}};
  return network::ParseNetwork(n).value();
}

json Inst(const std::string& name, const std::string& created, json nics) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}, {"creationTimestamp", created}}},
          {"spec", {{"networks", nics}}}};
}

TEST(IpamPlanTest, AllocatesStablyAndRefusesTakenRequests) {
  auto net = Net();
  std::vector<json> insts = {Inst("a", "2026-01-01T00:00:00Z", json::array({{{"network", "default"}}})),
                             Inst("b", "2026-01-02T00:00:00Z", json::array({{{"network", "default"}, {"ip", "10.44.0.50"}}}))};
  Plan p = PlanAllocations(net, {}, insts);
  ASSERT_TRUE(p.changed);
  ASSERT_EQ(p.table.size(), 2u);
  EXPECT_TRUE(p.refused["default/a"].empty());
  EXPECT_EQ(network::Lookup(p.table, "uid-b", 0), network::ParseIpv4("10.44.0.50").value());
  uint32_t a_ip = network::Lookup(p.table, "uid-a", 0);
  ASSERT_NE(a_ip, 0u);

  // Same inputs again: nothing changes (stable across passes, agents and servers).
  Plan again = PlanAllocations(net, p.table, insts);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(network::Lookup(again.table, "uid-a", 0), a_ip);

  // A newer instance asking for b's address is refused, naming the field and the holder; b keeps it.
  insts.push_back(Inst("c", "2026-01-03T00:00:00Z", json::array({{{"network", "default"}, {"ip", "10.44.0.50"}}})));
  Plan taken = PlanAllocations(net, p.table, insts);
  ASSERT_EQ(taken.refused["default/c"].size(), 1u);
  EXPECT_NE(taken.refused["default/c"][0].find("spec.networks[0].ip"), std::string::npos) << taken.refused["default/c"][0];
  EXPECT_NE(taken.refused["default/c"][0].find("default/b"), std::string::npos) << taken.refused["default/c"][0];
  EXPECT_EQ(network::Lookup(taken.table, "uid-b", 0), network::ParseIpv4("10.44.0.50").value());
  // The gateway is refused too.
  std::vector<json> gw = {Inst("g", "t", json::array({{{"network", "default"}, {"ip", "10.44.0.1"}}}))};
  EXPECT_NE(PlanAllocations(net, {}, gw).refused["default/g"][0].find("gateway"), std::string::npos);
}

json NetWithVni(const std::string& uid, const std::string& created, json vni) {
  json n = {{"metadata", {{"name", "n-" + uid}, {"namespace", "default"}, {"uid", uid}, {"creationTimestamp", created}}},
            {"status", json::object()}};
  if (!vni.is_null()) n["status"]["vni"] = vni;
  return n;
}

TEST(IpamPlanTest, VnisAreUniqueAndStable) {
  json a = NetWithVni("a", "2026-01-01T00:00:00Z", nullptr);
  uint32_t va = ChooseVni(a, {a});
  EXPECT_GE(va, 1u);
  EXPECT_LE(va, 16777215u);
  EXPECT_EQ(ChooseVni(a, {a}), va) << "the start follows the uid";
  a["status"]["vni"] = va;
  EXPECT_EQ(ChooseVni(a, {a}), va) << "a network keeps its VNI";
  // Another network whose start lands on a taken VNI takes the next free one, and a VNI this process just gave
  // (not in the cache yet) is taken too.
  json b = NetWithVni("b", "2026-01-02T00:00:00Z", va);
  uint32_t vb = ChooseVni(b, {a, b});
  EXPECT_NE(vb, va) << "the younger of two networks with one VNI moves";
  EXPECT_EQ(ChooseVni(a, {a, b}), va) << "the older keeps it";
  json c = NetWithVni("c", "2026-01-03T00:00:00Z", nullptr);
  uint32_t vc = ChooseVni(c, {a, c});
  EXPECT_NE(ChooseVni(c, {a, c}, {vc}), vc);
  // Junk in status is replaced.
  json d = NetWithVni("d", "2026-01-04T00:00:00Z", "seven");
  EXPECT_GE(ChooseVni(d, {d}), 1u);
  json e = NetWithVni("e", "2026-01-04T00:00:00Z", 20000000);
  EXPECT_LE(ChooseVni(e, {e}), 16777215u);
}

TEST(IpamPlanTest, ReleasedOnlyWhenTheInstanceIsGone) {
  auto net = Net();
  json a = Inst("a", "2026-01-01T00:00:00Z", json::array({{{"network", "default"}}}));
  Plan p = PlanAllocations(net, {}, {a});
  uint32_t ip = network::Lookup(p.table, "uid-a", 0);
  // Terminating: keeps its address (its domain may still be up).
  json dying = a;
  dying["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z";
  Plan t = PlanAllocations(net, p.table, {dying});
  EXPECT_EQ(network::Lookup(t.table, "uid-a", 0), ip);
  // Gone: freed.
  Plan gone = PlanAllocations(net, t.table, {});
  EXPECT_TRUE(gone.changed);
  EXPECT_TRUE(gone.table.empty());
  // A NIC moved to another network or removed from the spec frees its address here.
  json moved = Inst("a", "2026-01-01T00:00:00Z", json::array({{{"network", "other"}}}));
  EXPECT_TRUE(PlanAllocations(net, p.table, {moved}).table.empty());
  json none = Inst("a", "2026-01-01T00:00:00Z", json::array());
  EXPECT_TRUE(PlanAllocations(net, p.table, {none}).table.empty());
}

}  // namespace
}  // namespace stratus::ipam
