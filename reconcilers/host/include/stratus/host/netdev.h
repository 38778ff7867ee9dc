// Node networking behind a narrow interface: Linux bridges and their addresses (netlink through libnl-route),
// one dnsmasq per network (started from an argument vector, tracked by pid file), the nftables ruleset
// (libnftables, applied as one transaction) and IPv4 forwarding. Everything acts in the network namespace of
// the calling thread. Names and values are validated before they reach the kernel or a process; nothing goes
// through a shell.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::host {

// kInvalid unless `name` is a usable Linux interface name: 1..15 characters of [A-Za-z0-9_.-], not "." or "..".
// `field` names the field in the message.
Status ValidateIfName(const std::string& name, const std::string& field = "interface name");

// Moves the calling thread (only it: setns(CLONE_NEWNET) is per thread) into the network namespace named `name`
// (the file /run/netns/<name> that `ip netns add` makes). Netlink sockets, libnftables contexts and processes the
// thread starts afterwards all act there. kInvalid for a name that is not 1..63 of [A-Za-z0-9_.-] (no '/'),
// kNotFound when there is no such namespace, kInternal when setns fails.
Status EnterNetns(const std::string& name);

// One node network reconciler per network namespace: its bridges, dnsmasq processes and nftables tables are
// replaced and swept as a whole, so two agents acting in one namespace would undo each other. Takes an exclusive
// flock on <lock_dir>/netns-<inode>.lock for namespace `name` ("" = the calling thread's own) and writes this
// process's pid into it. Returns the open descriptor, to be closed when networking stops (the kernel also drops the
// lock when the process dies). kAlreadyExists naming the holder's pid when another process holds it.
StatusOr<int> LockNetworkNamespace(const std::string& name, const std::string& lock_dir = "/run/stratus");

// What the kernel reports about one link.
struct LinkState {
  std::string name;
  bool exists = false;
  bool is_bridge = false;
  bool up = false;               // administratively up (IFF_UP)
  int mtu = 0;
  std::string master;            // name of the bridge this link is a port of, "" when none
  std::vector<std::string> ipv4; // addresses with prefix, "10.44.0.1/24"
  std::string alias;             // the link's ifalias: Stratus' owner mark on bridges it made
  std::string kind;              // rtnetlink link kind: "bridge", "vxlan", "veth", "" for plain devices
  uint32_t vxlan_id = 0;         // VXLAN links: the VNI
  std::string vxlan_local;       // VXLAN links: the source (local) underlay address, "" when unset
};

// A dnsmasq instance serving one network: its files live in `dir` (conf, hosts, leases, pid, log).
struct DnsmasqFiles {
  std::string dir;
  std::string conf() const { return dir + "/dnsmasq.conf"; }
  std::string hosts() const { return dir + "/hosts"; }
  std::string leases() const { return dir + "/leases"; }
  std::string pid() const { return dir + "/dnsmasq.pid"; }
  std::string log() const { return dir + "/dnsmasq.log"; }
};

struct DnsmasqState {
  bool running = false;   // the pid in the pid file is a live dnsmasq started with our conf file
  int pid = 0;
  std::string conf;       // contents of the conf file on disk ("" when absent)
  std::string hosts;      // contents of the hosts file on disk
};

class NetDev {
 public:
  virtual ~NetDev() = default;

  // ---- links (netlink) ----
  // The state of link `name`; exists=false (and Ok) when there is no such link.
  virtual StatusOr<LinkState> Link(const std::string& name) = 0;
  // Names of the bridges whose name starts with `prefix`.
  virtual StatusOr<std::vector<std::string>> ListBridges(const std::string& prefix) = 0;
  // Creates bridge `name` (mtu 0 = kernel default). kAlreadyExists when a link of that name exists.
  virtual Status CreateBridge(const std::string& name, int mtu) = 0;
  // Sets the link's ifalias (`ip link set NAME alias ...`).
  virtual Status SetAlias(const std::string& name, const std::string& alias) = 0;
  // Sets the MTU of an existing link.
  virtual Status SetMtu(const std::string& name, int mtu) = 0;
  // Brings an existing link administratively up.
  virtual Status SetUp(const std::string& name) = 0;
  // Adds `cidr_addr` ("10.44.0.1/24", with broadcast) to link `name`; Ok when already present.
  virtual Status AddAddress(const std::string& name, const std::string& cidr_addr) = 0;
  // Removes `cidr_addr` from link `name`; Ok when absent.
  virtual Status DeleteAddress(const std::string& name, const std::string& cidr_addr) = 0;
  // Deletes link `name`; Ok when absent.
  virtual Status DeleteLink(const std::string& name) = 0;
  // Makes existing link `port` a port of bridge `bridge` and brings it up (bridged networks).
  virtual Status SetMaster(const std::string& port, const std::string& bridge) = 0;
  // Creates VLAN link `name` on `parent` with id `vlan` when missing.
  virtual Status EnsureVlan(const std::string& name, const std::string& parent, int vlan) = 0;

  // ---- VXLAN (networks that span hosts) ----
  // Creates VXLAN link `name`: VNI `vni` (1..16777215), source address `local` (IPv4) on underlay device `dev`,
  // UDP port 4789 (IANA), MAC learning on (a guest that moved is found again by its next frame), mtu (0 = kernel
  // default). kAlreadyExists when a link of that name exists.
  virtual Status CreateVxlan(const std::string& name, uint32_t vni, const std::string& local, const std::string& dev,
                             int mtu) = 0;
  // The remote VTEPs of the link's flood list (its all-zeros FDB entries: broadcast, multicast and unknown
  // unicast are sent to each of them; head-end replication, no multicast underlay needed), sorted.
  virtual StatusOr<std::vector<std::string>> FloodPeers(const std::string& vxlan) = 0;
  // Adds / removes `remote` (an IPv4 address) to / from the flood list; Ok when already present / absent.
  virtual Status AddFloodPeer(const std::string& vxlan, const std::string& remote) = 0;
  virtual Status DeleteFloodPeer(const std::string& vxlan, const std::string& remote) = 0;

  // ---- dnsmasq ----
  // Reads the files and checks the process (a pid whose /proc entry is a dnsmasq using our conf, not a zombie).
  virtual StatusOr<DnsmasqState> Dnsmasq(const DnsmasqFiles& files) = 0;
  // Writes conf and hosts (atomically, mode 0644) and starts dnsmasq with `--conf-file=<conf>`; waits until it has
  // daemonised and written its pid file. kInternal with the end of its log when it fails to start.
  virtual Status StartDnsmasq(const DnsmasqFiles& files, const std::string& conf, const std::string& hosts) = 0;
  // Rewrites the hosts file and sends SIGHUP to the running dnsmasq so it re-reads it.
  virtual Status ReloadDnsmasq(const DnsmasqFiles& files, const std::string& hosts) = 0;
  // Stops the dnsmasq recorded in the pid file (SIGTERM, then SIGKILL after a grace period); Ok when none runs.
  virtual Status StopDnsmasq(const DnsmasqFiles& files) = 0;

  // ---- nftables / sysctl ----
  // Runs `ruleset` (nft -f syntax) as one atomic transaction.
  virtual Status ApplyNftables(const std::string& ruleset) = 0;
  // `nft list table <family> <table>` text, or "" (Ok) when the table does not exist.
  virtual StatusOr<std::string> ListNftTable(const std::string& family, const std::string& table) = 0;
  // Sets net.ipv4.ip_forward=1 in the current namespace.
  virtual Status EnableIpForward() = 0;
  // Sets net.bridge.bridge-nf-call-iptables=1 in the current namespace, so that bridged IPv4 between instances
  // passes the inet hooks (conntrack, security groups).
  virtual Status EnableBridgeNetfilter() = 0;
};

// The Linux implementation. `dnsmasq_binary` is searched in PATH when it has no '/'.
std::unique_ptr<NetDev> NewLinuxNetDev(std::string dnsmasq_binary = "dnsmasq");

}  // namespace stratus::host
