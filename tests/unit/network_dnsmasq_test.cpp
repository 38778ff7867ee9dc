// dnsmasq configuration: bound to the bridge only, DHCP-only with static leases, options from the Network,
// hosts file from the allocation table, refusal of anything that is not a validated value; lease parsing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "stratus/network/dnsmasq.h"

namespace stratus::network {
namespace {

NetworkConfig Net(json extra = json::object()) {
  json spec = {{"cidr", "10.44.0.0/24"}};
  for (auto& [k, v] : extra.items()) spec[k] = v;
  auto c = ParseNetwork({{"metadata", {{"name", "default"}, {"namespace", "default"}}}, {"spec", spec}});
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

host::DnsmasqFiles Files() { return host::DnsmasqFiles{"/var/lib/stratus/net/st-0123456789ab"}; }

bool HasLine(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(DnsmasqTest, ConfBoundToTheBridgeWithStaticDhcp) {
  auto conf = RenderDnsmasqConf(Net({{"dns", {"192.0.2.53", "192.0.2.54"}}, {"mtu", 1400}}), "st-0123456789ab", Files());
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  const std::string& c = *conf;
  for (const char* l : {"interface=st-0123456789ab", "bind-interfaces", "except-interface=lo", "port=0", "no-resolv",
                        "no-hosts", "dhcp-range=10.44.0.0,static,255.255.255.0,12h",
                        "dhcp-hostsfile=/var/lib/stratus/net/st-0123456789ab/hosts",
                        "dhcp-leasefile=/var/lib/stratus/net/st-0123456789ab/leases",
                        "pid-file=/var/lib/stratus/net/st-0123456789ab/dnsmasq.pid",
                        "dhcp-option=option:router,10.44.0.1", "dhcp-option=option:dns-server,192.0.2.53,192.0.2.54",
                        "dhcp-option=option:mtu,1400", "dhcp-authoritative"}) {
    EXPECT_TRUE(HasLine(c, l)) << "missing '" << l << "' in\n" << c;
  }
  // Exactly one interface line: the bridge.
  size_t n = 0;
  for (size_t p = 0; (p = ("\n" + c).find("\ninterface=", p)) != std::string::npos; ++p) ++n;
  EXPECT_EQ(n, 1u);
}

TEST(DnsmasqTest, OptionsFollowTheNetwork) {
  auto plain = RenderDnsmasqConf(Net(), "st-0123456789ab", Files());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("dns-server"), std::string::npos);
  EXPECT_EQ(plain->find("option:mtu"), std::string::npos);
  auto isolated = RenderDnsmasqConf(Net({{"mode", "isolated"}}), "st-0123456789ab", Files());
  ASSERT_TRUE(isolated.ok());
  EXPECT_TRUE(HasLine(*isolated, "dhcp-option=option:router")) << *isolated;  // empty router: no default route
  auto gw = RenderDnsmasqConf(Net({{"gateway", "10.44.0.254"}}), "st-0123456789ab", Files());
  EXPECT_TRUE(HasLine(*gw, "dhcp-option=option:router,10.44.0.254"));
  auto nodhcp = RenderDnsmasqConf(Net({{"dhcp", false}}), "st-0123456789ab", Files());
  ASSERT_TRUE(nodhcp.ok());
  EXPECT_EQ(nodhcp->find("dhcp-range"), std::string::npos);
  DnsmasqOptions o;
  o.lease_time = "1h";
  o.user = "dnsmasq";
  auto withopts = RenderDnsmasqConf(Net(), "st-0123456789ab", Files(), o);
  ASSERT_TRUE(withopts.ok());
  EXPECT_TRUE(HasLine(*withopts, "dhcp-range=10.44.0.0,static,255.255.255.0,1h"));
  EXPECT_TRUE(HasLine(*withopts, "user=dnsmasq"));
}

TEST(DnsmasqTest, RefusesOddValues) {
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "br0\nserver=1.2.3.4", Files()).ok());
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "a-very-long-bridge-name", Files()).ok());
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "", Files()).ok());
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "st-x", host::DnsmasqFiles{"relative/dir"}).ok());
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "st-x", host::DnsmasqFiles{"/tmp/x\ndhcp-script=/bin/sh"}).ok());
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "st-x", host::DnsmasqFiles{"/tmp/a,b"}).ok());
  DnsmasqOptions o;
  o.lease_time = "12h\nconf-file=/etc/x";
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "st-x", Files(), o).ok());
  o = {};
  o.user = "root\n";
  EXPECT_FALSE(RenderDnsmasqConf(Net(), "st-x", Files(), o).ok());
}

TEST(DnsmasqTest, HostsFileFromAllocations) {
  NetworkConfig net = Net();
  AllocationTable t;
  t[*ParseIpv4("10.44.0.20")] = Allocation{"default/web-2", "u2", 0, "52:54:00:00:00:02"};
  t[*ParseIpv4("10.44.0.10")] = Allocation{"default/web-1", "u1", 0, "52:54:00:00:00:01"};
  t[*ParseIpv4("10.44.0.11")] = Allocation{"default/web-1", "u1", 1, "52:54:00:00:00:03"};
  auto hosts = RenderDhcpHosts(net, HostsFromAllocations(t));
  ASSERT_TRUE(hosts.ok()) << hosts.status().ToString();
  EXPECT_EQ(*hosts,
            "52:54:00:00:00:01,10.44.0.10,web-1\n"
            "52:54:00:00:00:03,10.44.0.11\n"
            "52:54:00:00:00:02,10.44.0.20,web-2\n");
  EXPECT_EQ(*RenderDhcpHosts(net, {}), "");
}

TEST(DnsmasqTest, HostsFileRefusesBadEntries) {
  NetworkConfig net = Net();
  EXPECT_FALSE(RenderDhcpHosts(net, {{"52:54:00:00:00:01\n", *ParseIpv4("10.44.0.10"), ""}}).ok());
  EXPECT_FALSE(RenderDhcpHosts(net, {{"52:54:00:00:00:01", *ParseIpv4("10.45.0.10"), ""}}).ok());
  EXPECT_FALSE(RenderDhcpHosts(net, {{"52:54:00:00:00:01", *ParseIpv4("10.44.0.1"), ""}}).ok());  // gateway
  // A hostname that is not a DNS label is dropped, not written.
  auto h = RenderDhcpHosts(net, {{"52:54:00:00:00:01", *ParseIpv4("10.44.0.10"), "bad,name"}});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, "52:54:00:00:00:01,10.44.0.10\n");
}

TEST(DnsmasqTest, ParsesLeases) {
  auto leases = ParseLeases(
      "1700000000 52:54:00:00:00:01 10.44.0.10 web-1 01:52:54:00:00:00:01\n"
      "0 52:54:00:00:00:02 10.44.0.20 * *\n"
      "garbage line\n"
      "12 zz:54:00:00:00:02 10.44.0.20 * *\n");
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].expiry, 1700000000);
  EXPECT_EQ(leases[0].mac, "52:54:00:00:00:01");
  EXPECT_EQ(leases[0].ip, "10.44.0.10");
  EXPECT_EQ(leases[0].hostname, "web-1");
  EXPECT_EQ(leases[1].hostname, "");
}

TEST(DnsmasqTest, LeaseConfirmsOnlyTheSameMacAndAddressWhileValid) {
  auto leases = ParseLeases(
      "1700000000 52:54:00:0a:00:01 10.44.0.10 web-1 *\n"
      "0 52:54:00:00:00:02 10.44.0.20 * *\n");
  const int64_t before = 1699999999, after = 1700000001;
  EXPECT_TRUE(LeaseConfirms(leases, "52:54:00:0a:00:01", "10.44.0.10", before));
  EXPECT_TRUE(LeaseConfirms(leases, "52:54:00:0A:00:01", "10.44.0.10", before)) << "MACs compare case-insensitively";
  EXPECT_FALSE(LeaseConfirms(leases, "52:54:00:0a:00:01", "10.44.0.10", after)) << "expired";
  EXPECT_TRUE(LeaseConfirms(leases, "52:54:00:00:00:02", "10.44.0.20", after)) << "0 is an infinite lease";
  EXPECT_FALSE(LeaseConfirms(leases, "52:54:00:0a:00:01", "10.44.0.20", before)) << "another MAC holds it";
  EXPECT_FALSE(LeaseConfirms(leases, "52:54:00:00:00:02", "10.44.0.21", before)) << "the guest took another address";
  EXPECT_FALSE(LeaseConfirms(leases, "not-a-mac", "10.44.0.10", before));
  EXPECT_FALSE(LeaseConfirms({}, "52:54:00:0a:00:01", "10.44.0.10", before)) << "no lease file yet";

  // From the file dnsmasq writes; a missing file is no lease.
  std::string path = ::testing::TempDir() + "/stratus-leases-" + std::to_string(::getpid());
  { std::ofstream(path) << "0 52:54:00:00:00:02 10.44.0.20 * *\n"; }
  EXPECT_TRUE(LeaseConfirms(ReadLeaseFile(path), "52:54:00:00:00:02", "10.44.0.20", after));
  std::remove(path.c_str());
  EXPECT_TRUE(ReadLeaseFile(path).empty());
}

}  // namespace
}  // namespace stratus::network
