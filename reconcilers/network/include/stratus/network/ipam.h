// IPv4 address management for Networks (nova-network's fixed IPs), as pure functions over an allocation table.
// The table (ip -> owning NIC) is persisted in the Network's status.allocations by the cluster-wide IPAM
// reconciler; everything here is deterministic so that the same instance NIC gets the same address and MAC
// across instance, agent and server restarts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "stratus/core/ipv4.h"
#include "stratus/core/status.h"

namespace stratus::network {

// ---- IPv4 helpers (stratus/core/ipv4.h, shared with schema validation) ---------------------------------------

using stratus::FormatIpv4;
using stratus::Ipv4Net;
using stratus::ParseCidr;
using stratus::ParseIpv4;

// ---- Network view ----------------------------------------------------------------------------------------------

// The validated parts of a Network object that IPAM and the node need. Built only by ParseNetwork, so every
// field holds a checked value.
struct NetworkConfig {
  std::string ns;
  std::string name;
  std::string uid;
  Ipv4Net cidr;
  uint32_t gateway = 0;          // spec.gateway, or the first host address
  bool dhcp = true;
  std::string mode = "nat";      // nat | isolated | bridged
  std::string host_interface;    // bridged mode
  int vlan = 0;                  // bridged mode, 0 = untagged
  std::vector<uint32_t> dns;     // spec.dns
  int mtu = 0;                   // 0 = kernel default (1500)

  std::string Key() const { return ns + "/" + name; }
  // Usable host addresses (network and broadcast excluded; the gateway counts).
  uint32_t HostCount() const;
};

// Reads a Network object (apiVersion/kind/metadata/spec). kInvalid naming the field for a prefix longer than /30
// (no room for instances), a gateway outside the cidr or equal to its network/broadcast address, a bad dns
// server, mtu or interface name.
StatusOr<NetworkConfig> ParseNetwork(const json& network);

// The VXLAN network identifier IPAM gave `network` (status.vni, 1..16777215); 0 before it has one (or when what is
// there is not one).
uint32_t VniOf(const json& network);

// ---- Allocation table ------------------------------------------------------------------------------------------

// Who holds an address: one NIC of one instance.
struct Allocation {
  std::string instance;  // "namespace/name"
  std::string uid;       // instance uid: the identity that matters (a re-created instance is another owner)
  int nic = 0;           // index in spec.networks
  std::string mac;       // lowercase aa:bb:cc:dd:ee:ff

  bool SameOwner(const std::string& u, int n) const { return uid == u && nic == n; }
  bool operator==(const Allocation& o) const {
    return instance == o.instance && uid == o.uid && nic == o.nic && mac == o.mac;
  }
};

// ip -> owner. Ordered by address, so its JSON form is stable.
using AllocationTable = std::map<uint32_t, Allocation>;

// {"10.44.0.5": {"instance": "default/web-1", "uid": "...", "nic": 0, "mac": "52:54:00:.."}, ...}
json AllocationsToJson(const AllocationTable& table);
// Reverses AllocationsToJson (null or absent -> empty table). kInvalid naming the entry when an address or entry
// is malformed, so that a corrupted status is noticed rather than silently handing an address out twice.
StatusOr<AllocationTable> AllocationsFromJson(const json& j);

// One NIC asking for an address.
struct NicRequest {
  std::string instance;  // "namespace/name"
  std::string uid;
  int nic = 0;
  std::string ip;        // spec.networks[i].ip, empty = allocate
  std::string mac;       // spec.networks[i].mac, empty = derive
  // Field path used in errors; defaults to "spec.networks[<nic>]".
  std::string field;
};

struct NicAddress {
  uint32_t ip = 0;
  std::string mac;
  bool changed = false;  // the table was modified
};

// Decides the address of one NIC and records it in `table`.
// - A NIC that already holds an address keeps it (when it asked for no particular ip, or for that same ip),
//   and keeps its MAC unless spec.mac names another.
// - A requested ip is honoured when it is a valid address inside the cidr, not the network, broadcast or gateway
//   address, and free or already held by this same NIC; a NIC moving to another requested ip releases the old.
// - Otherwise the address is chosen deterministically: hash(uid, nic) into the host range, then linear probing
//   to the next free address.
// - The MAC is spec.mac (validated, unicast, unused by another NIC of the network) or a deterministic
//   52:54:00:xx:xx:xx from (uid, nic), probing past collisions.
// Errors (kInvalid, with a FieldCause) start with the field path, e.g.
//   "spec.networks[0].ip: 10.44.0.1 is the gateway of network default";
// exhaustion is kUnavailable ("spec.networks[0]: network default has no free address (253 of 253 in use)").
// On error the table is unchanged.
StatusOr<NicAddress> Allocate(const NetworkConfig& net, AllocationTable& table, const NicRequest& req);

// Frees every address held by instance `uid` (all its NICs). Returns how many were freed.
int ReleaseInstance(AllocationTable& table, const std::string& uid);
// Frees the address held by NIC `nic` of instance `uid`. Returns how many were freed (0 or 1).
int ReleaseNic(AllocationTable& table, const std::string& uid, int nic);
// Frees the addresses of instance `uid`'s NICs with index >= `nic_count` (NICs removed from its spec).
int ReleaseRemovedNics(AllocationTable& table, const std::string& uid, int nic_count);

// The address held by (uid, nic), or 0.
uint32_t Lookup(const AllocationTable& table, const std::string& uid, int nic);

// Deterministic MAC under QEMU's 52:54:00 prefix for (uid, nic); `attempt` > 0 gives
// the probe sequence used past collisions.
std::string DeriveMac(const std::string& uid, int nic, int attempt = 0);
// Lowercases and validates "aa:bb:cc:dd:ee:ff" (unicast: the low bit of the first octet clear; not all zero).
StatusOr<std::string> NormalizeMac(const std::string& mac);

// 64-bit FNV-1a: the stable hash behind address and MAC choice (std::hash is not stable across builds).
uint64_t StableHash(const std::string& s);

}  // namespace stratus::network
