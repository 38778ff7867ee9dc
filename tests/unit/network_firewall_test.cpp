// nftables generation from security groups: EC2 semantics (ingress denied unless allowed, egress allowed unless
// restricted), protocols and port ranges, cidr and group peers, anti-spoofing, DHCP and ARP kept working,
// isolation and masquerade per network mode, atomic replacement of our tables only.
#include <gtest/gtest.h>

#include "stratus/network/firewall.h"

namespace stratus::network {
namespace {

json Group(const std::string& name, json ingress, json egress = nullptr) {
  json spec = json::object();
  if (!ingress.is_null()) spec["ingress"] = ingress;
  if (!egress.is_null()) spec["egress"] = egress;
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "SecurityGroup"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", spec}};
}

uint32_t Ip(const std::string& s) { return *ParseIpv4(s); }

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

// The body of chain `name` (up to its closing brace).
std::string Chain(const std::string& text, const std::string& name) {
  auto p = text.find("chain " + name + " {");
  if (p == std::string::npos) return "";
  auto e = text.find("\n  }\n", p);
  return text.substr(p, e - p);
}

NetworkFirewall NatNet() {
  NetworkFirewall n;
  n.key = "default/default";
  n.bridge = "st-aaaaaaaaaaaa";
  n.cidr = *ParseCidr("10.44.0.0/24");
  n.gateway = Ip("10.44.0.1");
  n.mode = "nat";
  return n;
}

NicFirewall Nic(const std::string& tap, const std::string& ip, NicRules rules) {
  NicFirewall n;
  n.owner = "default/web-1#0";
  n.tap = tap;
  n.bridge = "st-aaaaaaaaaaaa";
  n.ip = Ip(ip);
  n.mac = "52:54:00:12:34:56";
  n.gateway = Ip("10.44.0.1");
  n.rules = std::move(rules);
  return n;
}

TEST(NftRulesTest, ResolvesRulesOfGroups) {
  std::map<std::string, json> groups = {
      {"web", Group("web", {{{"protocol", "tcp"}, {"fromPort", 80}, {"toPort", 90}, {"cidr", "0.0.0.0/0"}},
                            {{"protocol", "tcp"}, {"fromPort", 22}, {"securityGroup", "admin"}}})},
      {"admin", Group("admin", nullptr)},
  };
  std::map<std::string, std::vector<uint32_t>> members = {{"admin", {Ip("10.44.0.9"), Ip("10.44.0.8"), Ip("10.44.0.9")}}};
  auto r = ResolveNicRules({"web"}, groups, members);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->filtered);
  ASSERT_EQ(r->ingress.size(), 2u);
  EXPECT_EQ(r->ingress[0].from_port, 80);
  EXPECT_EQ(r->ingress[0].to_port, 90);
  EXPECT_EQ(r->ingress[1].to_port, 22);  // toPort defaults to fromPort
  ASSERT_EQ(r->ingress[1].peers.size(), 2u);  // members, deduplicated
  EXPECT_FALSE(r->restrict_egress);
  EXPECT_TRUE(r->missing.empty());

  // No groups: not filtered.
  EXPECT_FALSE(ResolveNicRules({}, groups, members)->filtered);
  // A missing group allows nothing and is reported.
  auto m = ResolveNicRules({"nope"}, groups, members);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->filtered);
  EXPECT_TRUE(m->ingress.empty());
  EXPECT_EQ(m->missing, std::vector<std::string>{"nope"});
}

TEST(NftRulesTest, EgressRestrictedOnlyWhenEveryGroupRestricts) {
  std::map<std::string, json> groups = {
      {"open", Group("open", json::array())},
      {"dns-only", Group("dns-only", json::array(), {{{"protocol", "udp"}, {"fromPort", 53}, {"cidr", "192.0.2.0/24"}}})},
      {"https-only", Group("https-only", json::array(), {{{"protocol", "tcp"}, {"fromPort", 443}, {"cidr", "0.0.0.0/0"}}})},
  };
  auto one = ResolveNicRules({"dns-only"}, groups, {});
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->restrict_egress);
  EXPECT_EQ(one->egress.size(), 1u);
  auto both = ResolveNicRules({"dns-only", "https-only"}, groups, {});
  EXPECT_TRUE(both->restrict_egress);
  EXPECT_EQ(both->egress.size(), 2u);  // union
  auto mixed = ResolveNicRules({"dns-only", "open"}, groups, {});
  EXPECT_FALSE(mixed->restrict_egress);  // "open" allows all egress
}

TEST(NftRulesTest, RefusesMalformedRules) {
  auto bad = [](json rule) {
    std::map<std::string, json> g = {{"web", Group("web", json::array({rule}))}};
    return ResolveNicRules({"web"}, g, {});
  };
  auto proto = bad({{"protocol", "sctp"}, {"cidr", "0.0.0.0/0"}});
  ASSERT_FALSE(proto.ok());
  EXPECT_NE(proto.status().message().find("securitygroup web: spec.ingress[0].protocol"), std::string::npos)
      << proto.status().message();
  EXPECT_FALSE(bad({{"fromPort", 90}, {"toPort", 80}, {"cidr", "0.0.0.0/0"}}).ok());
  EXPECT_FALSE(bad({{"fromPort", 70000}, {"cidr", "0.0.0.0/0"}}).ok());
  EXPECT_FALSE(bad({{"fromPort", 22}}).ok());                                            // no peer
  EXPECT_FALSE(bad({{"fromPort", 22}, {"cidr", "0.0.0.0/0"}, {"securityGroup", "x"}}).ok());  // two peers
  EXPECT_FALSE(bad({{"fromPort", 22}, {"cidr", "10.0.0.1/8"}}).ok());                    // host bits
  EXPECT_FALSE(bad({{"fromPort", 22}, {"cidr", "0.0.0.0/0; flush ruleset"}}).ok());
  EXPECT_TRUE(bad({{"fromPort", 22}, {"cidr", "192.0.2.7"}}).ok());                     // bare address = /32
}

TEST(NftRulesTest, RendersIngressEgressAndAntiSpoofing) {
  std::map<std::string, json> groups = {
      {"web", Group("web",
                    {{{"protocol", "tcp"}, {"fromPort", 22}, {"cidr", "0.0.0.0/0"}},
                     {{"protocol", "tcp"}, {"fromPort", 8000}, {"toPort", 8080}, {"securityGroup", "lb"}},
                     {{"protocol", "udp"}, {"cidr", "192.0.2.0/24"}},
                     {{"protocol", "icmp"}, {"fromPort", 8}, {"cidr", "0.0.0.0/0"}},
                     {{"protocol", "all"}, {"securityGroup", "web"}},
                     {{"protocol", "tcp"}, {"fromPort", 5432}, {"securityGroup", "empty"}}},
                    {{{"protocol", "tcp"}, {"fromPort", 443}, {"cidr", "0.0.0.0/0"}}})},
  };
  std::map<std::string, std::vector<uint32_t>> members = {
      {"lb", {Ip("10.44.0.30"), Ip("10.44.0.31")}}, {"web", {Ip("10.44.0.5")}}};
  auto rules = ResolveNicRules({"web"}, groups, members);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  FirewallInput in;
  in.networks = {NatNet()};
  in.nics = {Nic("stv000000000001", "10.44.0.5", *rules)};
  auto text = RenderRuleset(in);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  const std::string& t = *text;

  // Our tables only, replaced atomically: created empty, deleted, defined.
  EXPECT_EQ(t.find("table bridge stratus\ndelete table bridge stratus\ntable inet stratus\ndelete table inet stratus\n"),
            t.find("table bridge stratus"));
  EXPECT_EQ(t.find("flush ruleset"), std::string::npos);

  std::string spoof = Chain(t, "spoof-stv000000000001");
  EXPECT_TRUE(Has(spoof, "ether saddr != 52:54:00:12:34:56 drop")) << spoof;
  EXPECT_TRUE(Has(spoof, "arp saddr ip != { 0.0.0.0, 10.44.0.5 } drop"));
  EXPECT_TRUE(Has(spoof, "ether type arp return"));
  EXPECT_TRUE(Has(spoof, "udp sport 68 udp dport 67 return"));  // DHCP discover from 0.0.0.0
  EXPECT_TRUE(Has(spoof, "ip saddr != 10.44.0.5 drop"));
  EXPECT_TRUE(Has(t, "iifname vmap { \"stv000000000001\" : jump spoof-stv000000000001 }"));

  std::string fwd = Chain(t, "forward");
  EXPECT_TRUE(Has(fwd, "iifname . ip saddr vmap { \"st-aaaaaaaaaaaa\" . 10.44.0.5 : jump out-stv000000000001 }")) << fwd;
  EXPECT_TRUE(Has(fwd, "oifname . ip daddr vmap { \"st-aaaaaaaaaaaa\" . 10.44.0.5 : jump in-stv000000000001 }"));
  EXPECT_TRUE(Has(Chain(t, "output"), "oifname . ip daddr vmap"));  // host -> instance is ingress too
  EXPECT_TRUE(Has(Chain(t, "input"), "iifname . ip saddr vmap"));   // instance -> host is egress too

  std::string ingress = Chain(t, "in-stv000000000001");
  EXPECT_TRUE(Has(ingress, "ct state established,related return")) << ingress;
  EXPECT_TRUE(Has(ingress, "ip saddr 10.44.0.1 udp sport 67 udp dport 68 return"));  // DHCP replies
  EXPECT_TRUE(Has(ingress, "ip saddr 0.0.0.0/0 tcp dport 22 return"));
  EXPECT_TRUE(Has(ingress, "ip saddr { 10.44.0.30, 10.44.0.31 } tcp dport 8000-8080 return"));
  EXPECT_TRUE(Has(ingress, "ip saddr 192.0.2.0/24 meta l4proto udp return"));
  EXPECT_TRUE(Has(ingress, "ip saddr 0.0.0.0/0 icmp type 8 return"));
  EXPECT_TRUE(Has(ingress, "ip saddr 10.44.0.5 return"));  // protocol all from the group itself
  EXPECT_TRUE(Has(ingress, "# group empty has no members yet"));
  EXPECT_EQ(ingress.find("5432"), std::string::npos);
  EXPECT_EQ(ingress.substr(ingress.rfind("\n") + 1), "    drop");  // default deny

  std::string egress = Chain(t, "out-stv000000000001");
  EXPECT_TRUE(Has(egress, "ip daddr 10.44.0.1 udp dport 67 return")) << egress;  // DHCP renew to the gateway
  EXPECT_TRUE(Has(egress, "ip daddr 0.0.0.0/0 tcp dport 443 return"));
  EXPECT_EQ(egress.substr(egress.rfind("\n") + 1), "    drop");
}

TEST(NftRulesTest, EgressOpenWithoutEgressRules) {
  std::map<std::string, json> groups = {{"ssh", Group("ssh", {{{"fromPort", 22}, {"cidr", "0.0.0.0/0"}}})}};
  FirewallInput in;
  in.networks = {NatNet()};
  in.nics = {Nic("stv000000000001", "10.44.0.5", *ResolveNicRules({"ssh"}, groups, {}))};
  auto t = RenderRuleset(in);
  ASSERT_TRUE(t.ok());
  std::string egress = Chain(*t, "out-stv000000000001");
  EXPECT_EQ(egress.find("drop"), std::string::npos) << egress;
}

TEST(NftRulesTest, UnfilteredNicsAreOnlyAntiSpoofed) {
  FirewallInput in;
  in.networks = {NatNet()};
  in.nics = {Nic("stv000000000001", "10.44.0.5", NicRules{})};
  auto t = RenderRuleset(in);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(Has(*t, "chain spoof-stv000000000001"));
  EXPECT_FALSE(Has(*t, "chain in-stv000000000001"));
  EXPECT_FALSE(Has(*t, "vmap { \"st-aaaaaaaaaaaa\""));
}

TEST(NftRulesTest, NetworkModes) {
  NetworkFirewall iso = NatNet();
  iso.key = "default/iso";
  iso.bridge = "st-bbbbbbbbbbbb";
  iso.cidr = *ParseCidr("10.45.0.0/24");
  iso.mode = "isolated";
  FirewallInput in;
  in.networks = {NatNet(), iso};
  auto text = RenderRuleset(in);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  std::string fwd = Chain(*text, "forward");
  EXPECT_TRUE(Has(fwd, "iifname \"st-aaaaaaaaaaaa\" oifname \"st-aaaaaaaaaaaa\" accept")) << fwd;
  EXPECT_TRUE(Has(fwd, "iifname \"st-aaaaaaaaaaaa\" ip saddr 10.44.0.0/24 accept"));
  EXPECT_TRUE(Has(fwd, "oifname \"st-aaaaaaaaaaaa\" ip daddr 10.44.0.0/24 ct state established,related accept"));
  EXPECT_TRUE(Has(fwd, "iifname \"st-bbbbbbbbbbbb\" oifname \"st-bbbbbbbbbbbb\" accept"));
  EXPECT_TRUE(Has(fwd, "iifname \"st-bbbbbbbbbbbb\" drop"));
  EXPECT_FALSE(Has(fwd, "ip saddr 10.45.0.0/24 accept"));
  std::string post = Chain(*text, "postrouting");
  EXPECT_TRUE(Has(post, "type nat hook postrouting priority srcnat"));
  EXPECT_TRUE(Has(post, "ip saddr 10.44.0.0/24 ip daddr != { 10.44.0.0/24, 224.0.0.0/24, 255.255.255.255 } "
                        "oifname != \"st-aaaaaaaaaaaa\" masquerade")) << post;
  EXPECT_FALSE(Has(post, "10.45.0.0/24"));  // isolated: no masquerade
}

TEST(NftRulesTest, OverlayPortsCarryOnlyGuestFrames) {
  NetworkFirewall spans = NatNet();
  spans.overlay = "sx-aaaaaaaaaaaa";
  NetworkFirewall local = NatNet();
  local.key = "default/local";
  local.bridge = "st-bbbbbbbbbbbb";
  FirewallInput in;
  in.networks = {spans, local};
  auto text = RenderRuleset(in);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  // Each node is its own gateway and DHCP server: ARP for the gateway and DHCP never cross the port, nor does
  // anything the host itself sends or would receive.
  std::string fwd = Chain(*text, "overlay-forward");
  EXPECT_TRUE(Has(fwd, "type filter hook forward priority filter; policy accept;")) << fwd;
  for (const char* dir : {"oifname", "iifname"}) {
    EXPECT_TRUE(Has(fwd, std::string(dir) + " \"sx-aaaaaaaaaaaa\" arp daddr ip 10.44.0.1 drop")) << fwd;
    EXPECT_TRUE(Has(fwd, std::string(dir) + " \"sx-aaaaaaaaaaaa\" arp saddr ip 10.44.0.1 drop")) << fwd;
    EXPECT_TRUE(Has(fwd, std::string(dir) + " \"sx-aaaaaaaaaaaa\" udp dport { 67, 68 } drop")) << fwd;
  }
  EXPECT_TRUE(Has(Chain(*text, "overlay-output"), "oifname { \"sx-aaaaaaaaaaaa\" } drop"));
  EXPECT_TRUE(Has(Chain(*text, "overlay-input"), "iifname { \"sx-aaaaaaaaaaaa\" } drop"));
  EXPECT_FALSE(Has(*text, "sx-bbbbbbbbbbbb"));  // a network of this host only has no port
  // Networks without ports: no overlay chains at all.
  in.networks = {local};
  EXPECT_FALSE(Has(*RenderRuleset(in), "overlay-"));
  // A bad port name renders nothing.
  spans.overlay = "sx;drop";
  in.networks = {spans};
  EXPECT_FALSE(RenderRuleset(in).ok());
}

TEST(NftRulesTest, EmptyInputOnlyRemovesOurTables) {
  auto t = RenderRuleset({});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t,
            "# Generated by stratus; replaced as a whole on every change.\n"
            "table bridge stratus\ndelete table bridge stratus\ntable inet stratus\ndelete table inet stratus\n");
}

TEST(NftRulesTest, RefusesBadNames) {
  FirewallInput in;
  in.networks = {NatNet()};
  in.nics = {Nic("tap\" accept; #", "10.44.0.5", NicRules{})};
  EXPECT_FALSE(RenderRuleset(in).ok());
  in.nics = {Nic("stv000000000001", "10.44.0.5", NicRules{})};
  in.nics[0].mac = "52:54:00:12:34:56 accept";
  EXPECT_FALSE(RenderRuleset(in).ok());
  in.nics = {Nic("stv000000000001", "10.44.0.5", NicRules{}), Nic("stv000000000001", "10.44.0.6", NicRules{})};
  EXPECT_FALSE(RenderRuleset(in).ok());  // the same tap twice
  in.nics.clear();
  in.networks[0].bridge = "this-name-is-too-long";
  EXPECT_FALSE(RenderRuleset(in).ok());
}

TEST(NftRulesTest, DeterministicOutput) {
  std::map<std::string, json> groups = {{"ssh", Group("ssh", {{{"fromPort", 22}, {"cidr", "0.0.0.0/0"}}})}};
  FirewallInput a;
  a.networks = {NatNet()};
  a.nics = {Nic("stv000000000002", "10.44.0.6", *ResolveNicRules({"ssh"}, groups, {})),
            Nic("stv000000000001", "10.44.0.5", *ResolveNicRules({"ssh"}, groups, {}))};
  FirewallInput b = a;
  std::swap(b.nics[0], b.nics[1]);
  EXPECT_EQ(*RenderRuleset(a), *RenderRuleset(b));  // unchanged input never looks like a change
}

}  // namespace
}  // namespace stratus::network
