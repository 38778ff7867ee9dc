// Floating addresses: the server's allocation decision (PlanPool) and status decision (DecideAddressStatus) on
// tables of cases, and the node's NAT plan (the ruleset's DNAT/SNAT lines and the /32s on the pool interface).
#include <gtest/gtest.h>

#include <set>

#include "stratus/address/address.h"
#include "stratus/network/firewall.h"
#include "stratus/network/plan.h"
#include "stratus/runtime/conditions.h"

namespace stratus::address {
namespace {

uint32_t Ip(const std::string& s) { return *network::ParseIpv4(s); }

json Pool(const std::string& cidr, json exclude = json::array()) {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "AddressPool"},
          {"metadata", {{"name", "public"}}},
          {"spec", {{"cidr", cidr}, {"exclude", exclude}, {"interface", "eth0"}}}};
}

json Addr(const std::string& name, const std::string& uid, const std::string& created, const std::string& ip = "",
          const std::string& instance = "") {
  json spec = {{"pool", "public"}};
  if (!ip.empty()) spec["ip"] = ip;
  if (!instance.empty()) spec["instance"] = instance;
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Address"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", uid}, {"creationTimestamp", created},
                        {"generation", 1}}},
          {"spec", spec}};
}

PoolConfig Cfg(const std::string& cidr, json exclude = json::array()) {
  auto c = ParsePool(Pool(cidr, exclude));
  EXPECT_TRUE(c.ok()) << c.status().message();
  return *c;
}

TEST(AddressPoolTest, ParsePoolNamesTheField) {
  struct Case {
    json pool;
    std::string field;  // "" = valid
  } cases[] = {
      {Pool("203.0.113.0/28"), ""},
      {Pool("203.0.113.7/32"), ""},
      {Pool("203.0.113.1/28"), "spec.cidr"},
      {Pool("203.0.113.0/28", {"198.51.100.1"}), "spec.exclude[0]"},
      {Pool("203.0.113.0/28", {"203.0.113.1", "x"}), "spec.exclude[1]"},
      {[] { json p = Pool("203.0.113.0/28"); p["spec"]["interface"] = "eth0;reboot"; return p; }(), "spec.interface"},
      {[] { json p = Pool("203.0.113.0/28"); p["spec"].erase("interface"); return p; }(), "spec.interface"},
  };
  for (const auto& c : cases) {
    auto r = ParsePool(c.pool);
    if (c.field.empty()) {
      EXPECT_TRUE(r.ok()) << c.pool.dump() << ": " << r.status().message();
    } else {
      ASSERT_FALSE(r.ok()) << c.pool.dump();
      EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
    }
  }
  EXPECT_EQ(Cfg("203.0.113.0/28", {"203.0.113.1"}).Size(), 15u);
  EXPECT_EQ(Cfg("203.0.113.7/32").Size(), 1u);
}

TEST(AddressPoolTest, PlanPoolTable) {
  struct Case {
    std::string name;
    std::string cidr;
    json exclude;
    PoolTable table;
    std::vector<json> addresses;
    std::map<std::string, std::string> want_ip;      // address key -> ip ("" = none)
    std::map<std::string, std::string> want_reason;  // address key -> reason of a refusal
    bool changed;
  } cases[] = {
      {"fixed ip honoured", "203.0.113.0/29", json::array(), {},
       {Addr("a", "u-a", "1", "203.0.113.5")}, {{"default/a", "203.0.113.5"}}, {}, true},
      {"fixed ip outside the pool", "203.0.113.0/29", json::array(), {},
       {Addr("a", "u-a", "1", "198.51.100.5")}, {{"default/a", ""}}, {{"default/a", "AddressRefused"}}, false},
      {"fixed ip excluded", "203.0.113.0/29", json::array({"203.0.113.1"}), {},
       {Addr("a", "u-a", "1", "203.0.113.1")}, {{"default/a", ""}}, {{"default/a", "AddressRefused"}}, false},
      {"fixed ip held by another", "203.0.113.0/29", json::array(), {{Ip("203.0.113.5"), {"default/a", "u-a"}}},
       {Addr("a", "u-a", "1"), Addr("b", "u-b", "2", "203.0.113.5")},
       {{"default/a", "203.0.113.5"}, {"default/b", ""}}, {{"default/b", "AddressRefused"}}, false},
      {"the older asker wins a contested fixed ip", "203.0.113.0/29", json::array(), {},
       {Addr("late", "u-l", "2", "203.0.113.3"), Addr("early", "u-e", "1", "203.0.113.3")},
       {{"default/early", "203.0.113.3"}, {"default/late", ""}}, {{"default/late", "AddressRefused"}}, true},
      {"a holder keeps its address", "203.0.113.0/29", json::array(), {{Ip("203.0.113.6"), {"default/a", "u-a"}}},
       {Addr("a", "u-a", "1")}, {{"default/a", "203.0.113.6"}}, {}, false},
      {"a deleted address frees its ip", "203.0.113.0/29", json::array(),
       {{Ip("203.0.113.6"), {"default/gone", "u-gone"}}}, {}, {}, {}, true},
      {"a recreated address (new uid) is a new holder", "203.0.113.7/32", json::array(),
       {{Ip("203.0.113.7"), {"default/a", "u-old"}}}, {Addr("a", "u-new", "1")}, {{"default/a", "203.0.113.7"}}, {},
       true},
      {"exhausted", "203.0.113.7/32", json::array(), {{Ip("203.0.113.7"), {"default/a", "u-a"}}},
       {Addr("a", "u-a", "1"), Addr("b", "u-b", "2")}, {{"default/a", "203.0.113.7"}, {"default/b", ""}},
       {{"default/b", "PoolExhausted"}}, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    PoolPlan p = PlanPool(Cfg(c.cidr, c.exclude), c.table, c.addresses);
    EXPECT_EQ(p.changed, c.changed);
    for (const auto& [key, ip] : c.want_ip) {
      const Outcome& o = p.outcomes[key];
      EXPECT_EQ(o.ip ? network::FormatIpv4(o.ip) : "", ip) << key << " " << o.error;
    }
    for (const auto& [key, reason] : c.want_reason) {
      EXPECT_EQ(p.outcomes[key].reason, reason) << key;
      EXPECT_FALSE(p.outcomes[key].error.empty());
    }
    // The table holds exactly the outcomes' addresses, each once.
    std::set<uint32_t> given;
    for (const auto& [key, o] : p.outcomes) {
      if (o.ip) {
        EXPECT_TRUE(given.insert(o.ip).second) << "two holders of " << network::FormatIpv4(o.ip);
      }
    }
    EXPECT_EQ(given.size(), p.table.size());
  }
}

TEST(AddressPoolTest, FixedIpErrorNamesTheField) {
  PoolPlan p = PlanPool(Cfg("203.0.113.0/29"), {}, {Addr("a", "u-a", "1", "198.51.100.5")});
  EXPECT_EQ(p.outcomes["default/a"].error.rfind("spec.ip: 198.51.100.5 is outside pool public", 0), 0u)
      << p.outcomes["default/a"].error;
}

TEST(AddressPoolTest, ManyAddressesFillThePoolWithoutSharingAndStayPut) {
  PoolConfig pool = Cfg("203.0.113.0/27", {"203.0.113.0", "203.0.113.31"});
  std::vector<json> addrs;
  for (int i = 0; i < 40; ++i) addrs.push_back(Addr("a" + std::to_string(i), "uid-" + std::to_string(i), "t"));
  PoolPlan p = PlanPool(pool, {}, addrs);
  EXPECT_EQ(p.table.size(), 30u);
  int refused = 0;
  for (const auto& [k, o] : p.outcomes) refused += o.ip == 0 ? 1 : 0;
  EXPECT_EQ(refused, 10);
  EXPECT_FALSE(p.table.count(Ip("203.0.113.0")));
  // A second pass over the recorded table changes nothing (restart-safe: the record decides).
  PoolPlan again = PlanPool(pool, p.table, addrs);
  EXPECT_FALSE(again.changed);
  for (const auto& [k, o] : p.outcomes) EXPECT_EQ(again.outcomes[k].ip, o.ip) << k;
}

TEST(AddressPoolTest, TerminatingAddressGetsNothingNewAndKeepsWhatItHas) {
  json a = Addr("a", "u-a", "1");
  a["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  PoolPlan p = PlanPool(Cfg("203.0.113.0/29"), {}, {a});
  EXPECT_EQ(p.outcomes["default/a"].ip, 0u);
  EXPECT_TRUE(p.table.empty());
  PoolPlan kept = PlanPool(Cfg("203.0.113.0/29"), {{Ip("203.0.113.2"), {"default/a", "u-a"}}}, {a});
  EXPECT_EQ(kept.outcomes["default/a"].ip, Ip("203.0.113.2"));
}

TEST(AddressPoolTest, TableJsonRoundTripAndCorruption) {
  PoolTable t = {{Ip("203.0.113.2"), {"default/a", "u-a"}}};
  auto back = PoolTableFromJson(PoolTableToJson(t));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, t);
  EXPECT_FALSE(PoolTableFromJson(json{{"not-an-ip", {{"uid", "x"}}}}).ok());
  EXPECT_FALSE(PoolTableFromJson(json{{"203.0.113.2", {{"address", "x"}}}}).ok());
}

TEST(AddressStatusTest, DecideTable) {
  struct Case {
    std::string name;
    json address;
    Outcome outcome;
    Association assoc;
    std::string phase, ready, reason, ip, private_ip, node;
  } cases[] = {
      {"pending", Addr("a", "u", "1"), {}, {}, "Pending", "False", "Pending", "", "", ""},
      {"refused", Addr("a", "u", "1", "1.2.3.4"), {0, "spec.ip: 1.2.3.4 is outside pool public", "AddressRefused"},
       {}, "Failed", "False", "AddressRefused", "", "", ""},
      {"allocated", Addr("a", "u", "1"), {Ip("203.0.113.5"), "", ""}, {}, "Allocated", "True", "Allocated",
       "203.0.113.5", "", ""},
      {"instance missing", Addr("a", "u", "1", "", "web"), {Ip("203.0.113.5"), "", ""}, {}, "Allocated", "False",
       "AssociationPending", "203.0.113.5", "", ""},
      {"instance without an address yet", Addr("a", "u", "1", "", "web"), {Ip("203.0.113.5"), "", ""},
       {true, "n1", "default", 0}, "Allocated", "False", "AssociationPending", "203.0.113.5", "", ""},
      {"instance not placed", Addr("a", "u", "1", "", "web"), {Ip("203.0.113.5"), "", ""},
       {true, "", "default", Ip("10.44.0.7")}, "Allocated", "False", "AssociationPending", "203.0.113.5", "", ""},
      {"associated", Addr("a", "u", "1", "", "web"), {Ip("203.0.113.5"), "", ""},
       {true, "n1", "default", Ip("10.44.0.7")}, "Associated", "True", "Associated", "203.0.113.5", "10.44.0.7",
       "n1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    json d = DecideAddressStatus(c.address, c.outcome, "public", c.assoc);
    EXPECT_EQ(d["status"].value("phase", ""), c.phase);
    json ready = runtime::GetCondition(d, "Ready");
    EXPECT_EQ(ready.value("status", ""), c.ready);
    EXPECT_EQ(ready.value("reason", ""), c.reason);
    EXPECT_EQ(d["status"].value("ip", ""), c.ip);
    EXPECT_EQ(d["status"].value("privateIp", ""), c.private_ip);
    EXPECT_EQ(d["status"].value("node", ""), c.node);
    EXPECT_EQ(d["status"].value("pool", ""), "public");
  }
}

// ---- the node's side ----

network::NetworkFirewall NatNet() {
  network::NetworkFirewall n;
  n.key = "default/default";
  n.bridge = "st-aaaaaaaaaaaa";
  n.cidr = *network::ParseCidr("10.44.0.0/24");
  n.gateway = Ip("10.44.0.1");
  n.mode = "nat";
  return n;
}

network::FloatingFirewall Fip(const std::string& pub, const std::string& priv) {
  network::FloatingFirewall f;
  f.owner = "default/a";
  f.public_ip = Ip(pub);
  f.private_ip = Ip(priv);
  f.bridge = "st-aaaaaaaaaaaa";
  f.network = *network::ParseCidr("10.44.0.0/24");
  return f;
}

TEST(AddressNatTest, RulesetTable) {
  struct Case {
    std::string name;
    std::vector<network::FloatingFirewall> floating;
    std::vector<std::string> want;     // lines that must be present, in this order
    std::vector<std::string> absent;
    bool ok = true;
  } cases[] = {
      {"none", {}, {"masquerade"}, {"dnat", "snat"}},
      {"one",
       {Fip("203.0.113.5", "10.44.0.7")},
       {"oifname \"st-aaaaaaaaaaaa\" ip daddr 10.44.0.7 ct status dnat accept",
        "oifname \"st-aaaaaaaaaaaa\" drop",
        "chain dnat-prerouting {", "type nat hook prerouting priority -100; policy accept;",
        "ip daddr 203.0.113.5 dnat ip to 10.44.0.7",
        "chain dnat-output {", "ip daddr 203.0.113.5 dnat ip to 10.44.0.7",
        "ip saddr 10.44.0.7 ip daddr != 10.44.0.0/24 oifname != \"st-aaaaaaaaaaaa\" snat ip to 203.0.113.5",
        "masquerade"},
       {}},
      {"two, sorted by public address",
       {Fip("203.0.113.9", "10.44.0.8"), Fip("203.0.113.5", "10.44.0.7")},
       {"ip daddr 203.0.113.5 dnat ip to 10.44.0.7", "ip daddr 203.0.113.9 dnat ip to 10.44.0.8"},
       {}},
      {"one public address twice is refused", {Fip("203.0.113.5", "10.44.0.7"), Fip("203.0.113.5", "10.44.0.8")},
       {}, {}, false},
      {"a bad bridge name is refused", {[] { auto f = Fip("203.0.113.5", "10.44.0.7"); f.bridge = "x\";y"; return f; }()},
       {}, {}, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    network::FirewallInput in;
    in.networks.push_back(NatNet());
    in.floating = c.floating;
    auto r = network::RenderRuleset(in);
    ASSERT_EQ(r.ok(), c.ok) << (r.ok() ? *r : r.status().message());
    if (!r.ok()) continue;
    size_t at = 0;
    for (const auto& line : c.want) {
      auto p = r->find(line, at);
      ASSERT_NE(p, std::string::npos) << "missing (in order): " << line << "\n" << *r;
      at = p;
    }
    for (const auto& line : c.absent) EXPECT_EQ(r->find(line), std::string::npos) << line;
  }
}

TEST(AddressNatTest, SecurityGroupsStillApplyToDnatedTraffic) {
  network::FirewallInput in;
  in.networks.push_back(NatNet());
  network::NicFirewall nic;
  nic.owner = "default/web#0";
  nic.tap = "stv000000000001";
  nic.bridge = "st-aaaaaaaaaaaa";
  nic.ip = Ip("10.44.0.7");
  nic.mac = "52:54:00:00:00:01";
  nic.gateway = Ip("10.44.0.1");
  nic.rules.filtered = true;
  in.nics.push_back(nic);
  in.floating.push_back(Fip("203.0.113.5", "10.44.0.7"));
  auto r = network::RenderRuleset(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // The security-group dispatch comes before the floating accept in the forward chain.
  auto vmap = r->find("oifname . ip daddr vmap");
  auto accept = r->find("ct status dnat accept");
  ASSERT_NE(vmap, std::string::npos);
  ASSERT_NE(accept, std::string::npos);
  EXPECT_LT(vmap, accept);
}

host::LinkState Link(const std::string& name, std::vector<std::string> addrs, bool exists = true) {
  host::LinkState l;
  l.name = name;
  l.exists = exists;
  l.ipv4 = std::move(addrs);
  return l;
}

TEST(AddressNatTest, PoolInterfacePlanTable) {
  std::vector<network::Ipv4Net> pools = {*network::ParseCidr("203.0.113.0/28")};
  struct Case {
    std::string name;
    std::map<std::string, std::set<std::string>> want;
    std::map<std::string, host::LinkState> seen;
    std::vector<std::string> steps;  // "Add eth0 a/32" / "Delete eth0 a/32"
  } cases[] = {
      {"add a missing /32", {{"eth0", {"203.0.113.5/32"}}}, {{"eth0", Link("eth0", {"192.0.2.10/24"})}},
       {"AddAddress eth0 203.0.113.5/32"}},
      {"present: nothing", {{"eth0", {"203.0.113.5/32"}}},
       {{"eth0", Link("eth0", {"192.0.2.10/24", "203.0.113.5/32"})}}, {}},
      {"a moved-away /32 goes, other addresses stay", {},
       {{"eth0", Link("eth0", {"192.0.2.10/24", "203.0.113.5/32", "198.51.100.1/32", "203.0.113.0/28"})}},
       {"DeleteAddress eth0 203.0.113.5/32"}},
      {"a missing interface gets nothing", {{"eth9", {"203.0.113.5/32"}}}, {{"eth9", Link("eth9", {}, false)}}, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> got;
    for (const auto& s : network::PlanFloatingAddresses(c.want, c.seen, pools)) {
      got.push_back(std::string(network::StepKindName(s.kind)) + " " + s.target + " " + s.arg);
    }
    EXPECT_EQ(got, c.steps);
  }
}

}  // namespace
}  // namespace stratus::address
