// dnsmasq configuration for one Network on one node, rendered as text from validated values only: one dnsmasq per
// network, bound to that network's bridge, serving DHCP to the MACs IPAM knows (static leases only; IPAM is the
// authority for addresses), with a hosts file that a SIGHUP re-reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/host/netdev.h"
#include "stratus/network/ipam.h"

namespace stratus::network {

// One static lease: MAC -> IP (and optional hostname).
struct DhcpHost {
  std::string mac;
  uint32_t ip = 0;
  std::string hostname;  // a DNS-1123 label; dropped when it is not one
};

struct DnsmasqOptions {
  std::string lease_time = "12h";  // dnsmasq time: digits followed by optional s|m|h|d, or "infinite"
  std::string user;                // user dnsmasq drops privileges to; "" = dnsmasq's default (nobody)
};

// The dnsmasq.conf for `net` on bridge `bridge`, with its files under `files.dir`.
// kInvalid when the bridge name, a path (must be absolute, no control characters or '#') or an option is bad.
StatusOr<std::string> RenderDnsmasqConf(const NetworkConfig& net, const std::string& bridge,
                                        const host::DnsmasqFiles& files, const DnsmasqOptions& opts = {});

// The dhcp-hostsfile: one "mac,ip[,hostname]" line per host, sorted by address. kInvalid naming the host when a
// MAC is malformed or an address is outside the network, the network/broadcast address or the gateway.
StatusOr<std::string> RenderDhcpHosts(const NetworkConfig& net, const std::vector<DhcpHost>& hosts);

// The hosts of an allocation table; the hostname is the instance name (the part after '/').
std::vector<DhcpHost> HostsFromAllocations(const AllocationTable& table);

// One line of a dnsmasq lease file: "<expiry> <mac> <ip> <hostname|*> <client-id|*>".
struct Lease {
  int64_t expiry = 0;  // seconds since the epoch, 0 = infinite
  std::string mac;
  std::string ip;
  std::string hostname;  // "" when '*'
};
// Parses a lease file, skipping malformed lines (dnsmasq owns the file; we only read it).
std::vector<Lease> ParseLeases(const std::string& text);

// ParseLeases of the file at `path`; empty when it is missing or unreadable (no lease handed out yet).
std::vector<Lease> ReadLeaseFile(const std::string& path);

// True when `leases` hold an unexpired lease (expiry 0 = infinite, else > `now`, seconds since the epoch) of
// address `ip` to `mac` (compared case-insensitively): the guest really took the address IPAM gave it.
bool LeaseConfirms(const std::vector<Lease>& leases, const std::string& mac, const std::string& ip, int64_t now);

}  // namespace stratus::network
