// Bridge reconciliation decisions, as a pure function of the desired network and what the node shows: which
// bridge, address, port, dnsmasq and teardown steps bring the host in line. The reconciler observes, plans, then
// executes the steps through host::NetDev; tests check the plans without touching the host.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "stratus/host/netdev.h"
#include "stratus/network/dnsmasq.h"
#include "stratus/network/ipam.h"

namespace stratus::network {

inline constexpr const char* kBridgePrefix = "st-";   // bridges of Networks
inline constexpr const char* kVlanPrefix = "sl-";     // VLAN links of bridged Networks
inline constexpr const char* kTapPrefix = "stv";      // instance NIC taps
inline constexpr const char* kVxlanPrefix = "sx-";    // VXLAN ports of Networks that span hosts
inline constexpr int kVxlanOverhead = 50;             // outer IPv4 + UDP + VXLAN + inner Ethernet headers

// Deterministic names (<= 15 characters, [a-z0-9-]): prefix + 12 hex digits of a stable hash.
std::string BridgeName(const std::string& ns, const std::string& name);
std::string VlanLinkName(const std::string& ns, const std::string& name);
// The VXLAN port of the network whose bridge is `bridge` (the same hash: teardown and the orphan sweep, which know
// only the bridge, find it).
std::string VxlanName(const std::string& bridge);
// The host-side tap of NIC `nic` of the instance with `uid` (set as <target dev=.../> in the domain XML).
std::string TapName(const std::string& instance_uid, int nic);

// What a node brings to networks that span hosts: its underlay (the device and address VXLAN packets leave
// from), the network's VNI (IPAM's status.vni) and the other nodes' underlay addresses.
struct OverlayInput {
  std::string dev;                  // underlay device, e.g. "ul"
  std::string local;                // this node's address on it
  int dev_mtu = 1500;               // the device's MTU (guests get dev_mtu - 50)
  uint32_t vni = 0;                 // 0: IPAM has not given the network one yet (no overlay for now)
  std::vector<std::string> peers;   // other nodes' underlay addresses
};

// Whether `net` joins a VXLAN segment on a node with an underlay: nat and isolated networks once IPAM gave them a
// VNI (bridged ones join their host interface instead). Desire and the node's ruleset decide by this one rule.
inline bool JoinsOverlay(const NetworkConfig& net, uint32_t vni) { return net.mode != "bridged" && vni > 0; }

// The VXLAN port of one network on this node.
struct DesiredOverlay {
  std::string link;                 // VxlanName(bridge)
  uint32_t vni = 0;
  std::string local, dev;
  int mtu = 0;
  std::vector<std::string> peers;   // sorted, without `local`
};

// Everything one network should be on this node.
struct DesiredNetwork {
  NetworkConfig config;
  std::string bridge;              // BridgeName(ns, name)
  std::string gateway_cidr;        // "10.44.0.1/24"; "" for bridged networks (the gateway is outside)
  std::string uplink;              // bridged: host interface (or VLAN link) joined to the bridge, else ""
  std::string vlan_link;           // bridged with vlan: VLAN link to create on config.host_interface
  bool dnsmasq = false;            // run dnsmasq (dhcp on, not bridged)
  host::DnsmasqFiles files;
  std::string conf;                // rendered dnsmasq.conf
  std::string hosts;               // rendered hosts file
  std::vector<std::string> taps;   // instance taps on this node that belong to this bridge
  std::string owner_mark;          // the bridge's ifalias ("" = none wanted)
  bool overlay = false;            // nat/isolated network on a node with an underlay and a VNI: joins the segment
  DesiredOverlay vxlan;            // when overlay
  std::string vxlan_link;          // VxlanName(bridge), wanted or not (a stale one is removed)
};

// What the host shows for it.
struct ObservedNetwork {
  host::LinkState bridge;
  host::LinkState uplink;                     // state of desired.uplink (exists=false when absent)
  host::LinkState vlan;                       // state of desired.vlan_link
  std::map<std::string, host::LinkState> taps;  // state of each desired tap (absent ones may be missing)
  host::DnsmasqState dnsmasq;
  host::LinkState vxlan;                      // state of desired.vxlan_link
  std::vector<std::string> flood;             // its flood list (remote VTEPs), when it exists
};

enum class StepKind {
  kDeleteLink,      // target: link (wrong kind of link squatting on our name, or teardown)
  kCreateBridge,    // target: bridge, mtu
  kSetAlias,        // target: link, arg: alias (the owner mark)
  kSetMtu,          // target: link, mtu
  kSetUp,           // target: link
  kAddAddress,      // target: bridge, arg: a.b.c.d/p
  kDeleteAddress,   // target: bridge, arg: a.b.c.d/p
  kCreateVlan,      // target: vlan link, arg: parent, mtu: vlan id
  kAttach,          // target: port, arg: bridge
  kStartDnsmasq,
  kRestartDnsmasq,  // stop then start: the conf changed or the bridge was recreated
  kReloadDnsmasq,   // hosts changed: rewrite and SIGHUP
  kStopDnsmasq,
  kCreateVxlan,     // target: vxlan link, arg: underlay device, mtu (vni and local from the desired overlay)
  kAddFloodPeer,    // target: vxlan link, arg: remote underlay address
  kDeleteFloodPeer, // target: vxlan link, arg: remote underlay address
};

struct Step {
  StepKind kind;
  std::string target;
  std::string arg;
  int mtu = 0;
  std::string reason;  // human-readable, for logs and Events ("bridge st-1a2b was missing")
  bool repair = false; // true when this undoes drift (something that had been made is gone or changed)
  bool operator==(const Step& o) const { return kind == o.kind && target == o.target && arg == o.arg && mtu == o.mtu; }
};

const char* StepKindName(StepKind k);

// Builds the DesiredNetwork of `net` (names, gateway cidr, dnsmasq files under `state_dir`/<bridge>, rendered
// conf and hosts from `table`), with `taps` the local instance taps on it. With `overlay` (a node with an
// underlay) a nat or isolated network with a VNI gets a VXLAN port flooding to the peers, and its MTU (bridge,
// DHCP option 26) becomes min(spec.mtu, underlay MTU - 50). kInvalid when something does not render.
StatusOr<DesiredNetwork> Desire(const NetworkConfig& net, const AllocationTable& table, const std::string& state_dir,
                                std::vector<std::string> taps, const DnsmasqOptions& dnsmasq = {},
                                const OverlayInput* overlay = nullptr);

// The steps that make the host match `want`, in execution order; empty when nothing is to be done.
// `first_time` says whether this process has brought the network up before (drift vs. initial creation, for the
// `repair` flag only).
std::vector<Step> PlanNetwork(const DesiredNetwork& want, const ObservedNetwork& seen, bool first_time = false);

// The steps that remove the network from the host: stop dnsmasq, delete the bridge, its VXLAN port and VLAN link.
std::vector<Step> PlanTeardown(const std::string& bridge, const std::string& vlan_link, const ObservedNetwork& seen);

// Floating addresses answered on the pools' interfaces: each associated address of an instance on this node is
// added to its pool's interface as a /32 (so the kernel answers ARP for it and the DNAT in the ruleset takes the
// traffic), and any /32 inside a pool's cidr on a pool interface that is no longer wanted is removed (addresses of
// the pools are ours; nothing else on those interfaces is touched). `want`: interface -> "a.b.c.d/32";
// `seen`: the state of each pool interface. A missing interface gets no steps (the caller reports it).
std::vector<Step> PlanFloatingAddresses(const std::map<std::string, std::set<std::string>>& want,
                                        const std::map<std::string, host::LinkState>& seen,
                                        const std::vector<Ipv4Net>& pools);

// Bridges carrying our prefix that no desired network claims (left behind by a network deleted while the agent
// was down): to be torn down.
std::vector<std::string> OrphanBridges(const std::vector<std::string>& observed, const std::set<std::string>& desired);

}  // namespace stratus::network
