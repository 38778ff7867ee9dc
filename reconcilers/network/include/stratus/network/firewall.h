// The node's nftables ruleset, rendered from Networks and the instance NICs on this node with their
// SecurityGroups. Two tables are owned by Stratus and replaced as a whole in one transaction (no other table is
// ever touched):
//
//   table bridge stratus  — per-port anti-spoofing (a tap may only send its own MAC and IP, ARP for its IP,
//                           DHCP requests), stateless, before the frame is bridged; on networks that span hosts,
//                           the VXLAN port carries guests' frames only (see NetworkFirewall::overlay);
//   table inet stratus    — stateful security groups (conntrack; bridged IPv4 reaches these hooks through
//                           br_netfilter, so `net.bridge.bridge-nf-call-iptables` must be 1), dispatched by
//                           (bridge, instance ip) — unique because of the anti-spoofing above — to one chain per
//                           NIC and direction; isolation of `isolated` networks; forwarding and masquerade for
//                           `nat` networks.
//
// EC2 semantics: ingress is dropped unless a rule of one of the NIC's groups allows it; egress is allowed unless
// every group of the NIC has egress rules, in which case only what they allow leaves. Replies to allowed traffic
// (established/related) always pass, DHCP to and from the gateway always passes, and ARP is never filtered
// beyond anti-spoofing. NICs without security groups are not filtered (only anti-spoofed). Instances speak IPv4
// and ARP only: other ethertypes (IPv6 included) from a tap are dropped.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/network/ipam.h"

namespace stratus::network {

inline constexpr const char* kNftTable = "stratus";

// One rule with its peer resolved to address ranges.
struct FirewallRule {
  std::string protocol = "tcp";   // tcp | udp | icmp | all
  int from_port = -1;             // tcp/udp: first port; icmp: type; -1 = any
  int to_port = -1;               // tcp/udp: last port (defaults to from_port); icmp: code; -1 = any
  std::vector<Ipv4Net> peers;     // cidr, or the member addresses of the peer group (as /32)
  std::string peer_group;         // set when the peer was a group (for comments and empty-member handling)
};

// The rules that apply to one NIC: the union of its groups.
struct NicRules {
  bool filtered = false;               // false: no security groups, nothing but anti-spoofing
  std::vector<FirewallRule> ingress;
  bool restrict_egress = false;        // every group has egress rules
  std::vector<FirewallRule> egress;
  std::vector<std::string> missing;    // groups named by the instance that do not exist (they allow nothing)
};

// Resolves the rules of `group_names` (SecurityGroup objects by name, same namespace) with `members` giving
// the addresses of each group's member NICs (group name -> addresses), for peers that name a group.
// kInvalid naming the rule (e.g. "securitygroup web: spec.ingress[2].cidr: ...") when a rule is malformed.
StatusOr<NicRules> ResolveNicRules(const std::vector<std::string>& group_names,
                                   const std::map<std::string, json>& groups,
                                   const std::map<std::string, std::vector<uint32_t>>& members);

// A Network as the firewall sees it on this node.
struct NetworkFirewall {
  std::string key;       // namespace/name, for comments
  std::string bridge;
  Ipv4Net cidr;
  uint32_t gateway = 0;
  std::string mode;      // nat | isolated | bridged
  // The network's VXLAN port on this node ("" when it does not span hosts). Each node's bridge holds the same
  // gateway address and runs its own dnsmasq for its own guests, so nothing of the host's crosses the port: ARP
  // for the gateway, DHCP, and any frame the host itself sends or should receive stay on their node
  // (distributed gateway); guest-to-guest frames cross freely.
  std::string overlay;
};

// An instance NIC on this node.
struct NicFirewall {
  std::string owner;     // namespace/name#nic, for comments
  std::string tap;       // host-side tap device
  std::string bridge;    // bridge of its network
  uint32_t ip = 0;
  std::string mac;
  uint32_t gateway = 0;  // its network's gateway (DHCP server)
  NicRules rules;
};

// A floating address associated with an instance NIC on this node: inbound traffic for `public_ip` is DNATed to
// `private_ip` (then filtered by the NIC's security groups like any ingress), and the NIC's traffic leaving its
// network is SNATed to `public_ip` (ahead of the network's masquerade).
struct FloatingFirewall {
  std::string owner;       // namespace/name of the Address, for comments
  uint32_t public_ip = 0;
  uint32_t private_ip = 0;
  std::string bridge;      // the bridge of the instance's network
  Ipv4Net network;         // the cidr of that network (traffic inside it is not SNATed)
};

struct FirewallInput {
  std::vector<NetworkFirewall> networks;
  std::vector<NicFirewall> nics;
  std::vector<FloatingFirewall> floating;
};

// The whole ruleset in `nft -f` syntax: it first deletes our two tables (creating them empty first so the
// delete cannot fail) and then defines them, so applying it is one atomic replace. With no networks and no NICs
// it only removes our tables. kInvalid when an interface name, MAC or rule is bad (nothing is rendered then).
StatusOr<std::string> RenderRuleset(const FirewallInput& in);

}  // namespace stratus::network
