#include "stratus/network/plan.h"

#include <algorithm>
#include <cstdio>

#include "stratus/network/dnsmasq.h"

namespace stratus::network {

namespace {

std::string Hex12(const std::string& s) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(StableHash(s)));
  return std::string(buf, 12);
}

}  // namespace

std::string BridgeName(const std::string& ns, const std::string& name) {
  return kBridgePrefix + Hex12("bridge/" + ns + "/" + name);
}
std::string VlanLinkName(const std::string& ns, const std::string& name) {
  return kVlanPrefix + Hex12("vlan/" + ns + "/" + name);
}
std::string VxlanName(const std::string& bridge) {
  std::string hash = bridge.rfind(kBridgePrefix, 0) == 0 ? bridge.substr(std::string(kBridgePrefix).size()) : bridge;
  return (kVxlanPrefix + hash).substr(0, 15);
}
std::string TapName(const std::string& instance_uid, int nic) {
  return kTapPrefix + Hex12("tap/" + instance_uid + "/" + std::to_string(nic));
}

const char* StepKindName(StepKind k) {
  switch (k) {
    case StepKind::kDeleteLink: return "DeleteLink";
    case StepKind::kCreateBridge: return "CreateBridge";
    case StepKind::kSetAlias: return "SetAlias";
    case StepKind::kSetMtu: return "SetMtu";
    case StepKind::kSetUp: return "SetUp";
    case StepKind::kAddAddress: return "AddAddress";
    case StepKind::kDeleteAddress: return "DeleteAddress";
    case StepKind::kCreateVlan: return "CreateVlan";
    case StepKind::kAttach: return "Attach";
    case StepKind::kStartDnsmasq: return "StartDnsmasq";
    case StepKind::kRestartDnsmasq: return "RestartDnsmasq";
    case StepKind::kReloadDnsmasq: return "ReloadDnsmasq";
    case StepKind::kStopDnsmasq: return "StopDnsmasq";
    case StepKind::kCreateVxlan: return "CreateVxlan";
    case StepKind::kAddFloodPeer: return "AddFloodPeer";
    case StepKind::kDeleteFloodPeer: return "DeleteFloodPeer";
  }
  return "?";
}

StatusOr<DesiredNetwork> Desire(const NetworkConfig& net, const AllocationTable& table, const std::string& state_dir,
                                std::vector<std::string> taps, const DnsmasqOptions& dnsmasq,
                                const OverlayInput* overlay) {
  DesiredNetwork d;
  d.config = net;
  d.bridge = BridgeName(net.ns, net.name);
  d.vxlan_link = VxlanName(d.bridge);
  bool bridged = net.mode == "bridged";
  if (overlay && JoinsOverlay(net, overlay->vni)) {
    Status s = host::ValidateIfName(overlay->dev, "underlay device");
    if (!s.ok()) return s;
    auto local = ParseIpv4(overlay->local);
    if (!local.ok()) return InvalidError("underlay address '" + overlay->local + "' is not IPv4");
    if (overlay->vni > 16777215) return InvalidError("vni " + std::to_string(overlay->vni) + " is out of range");
    int mtu = overlay->dev_mtu - kVxlanOverhead;
    if (mtu < 576) {
      return InvalidError("underlay device " + overlay->dev + " has mtu " + std::to_string(overlay->dev_mtu) +
                          ": too small to carry VXLAN (576 + 50 at least)");
    }
    d.overlay = true;
    d.vxlan.link = d.vxlan_link;
    d.vxlan.vni = overlay->vni;
    d.vxlan.local = overlay->local;
    d.vxlan.dev = overlay->dev;
    d.vxlan.mtu = mtu;
    for (const auto& p : overlay->peers) {
      auto ip = ParseIpv4(p);
      if (!ip.ok()) return InvalidError("underlay peer '" + p + "' is not IPv4");
      if (p != overlay->local) d.vxlan.peers.push_back(FormatIpv4(*ip));
    }
    std::sort(d.vxlan.peers.begin(), d.vxlan.peers.end());
    d.vxlan.peers.erase(std::unique(d.vxlan.peers.begin(), d.vxlan.peers.end()), d.vxlan.peers.end());
    // Guests and the bridge carry what fits in the underlay's frames after the VXLAN header.
    d.config.mtu = net.mtu > 0 ? std::min(net.mtu, mtu) : mtu;
  }
  if (!bridged) d.gateway_cidr = FormatIpv4(net.gateway) + "/" + std::to_string(net.cidr.prefix);
  if (bridged) {
    if (net.vlan > 0) {
      d.vlan_link = VlanLinkName(net.ns, net.name);
      d.uplink = d.vlan_link;
    } else {
      d.uplink = net.host_interface;
    }
  }
  d.dnsmasq = net.dhcp && !bridged;
  d.files.dir = state_dir + "/" + d.bridge;
  if (d.dnsmasq) {
    auto conf = RenderDnsmasqConf(d.config, d.bridge, d.files, dnsmasq);
    if (!conf.ok()) return conf.status();
    d.conf = std::move(*conf);
    auto hosts = RenderDhcpHosts(d.config, HostsFromAllocations(table));
    if (!hosts.ok()) return hosts.status();
    d.hosts = std::move(*hosts);
  }
  std::sort(taps.begin(), taps.end());
  taps.erase(std::unique(taps.begin(), taps.end()), taps.end());
  for (const auto& t : taps) {
    Status s = host::ValidateIfName(t, "tap");
    if (!s.ok()) return s;
  }
  d.taps = std::move(taps);
  return d;
}

std::vector<Step> PlanNetwork(const DesiredNetwork& want, const ObservedNetwork& seen, bool first_time) {
  std::vector<Step> steps;
  const bool repair = !first_time;
  const std::string& br = want.bridge;
  bool recreated = false;
  if (seen.bridge.exists && !seen.bridge.is_bridge) {
    steps.push_back({StepKind::kDeleteLink, br, "", 0, "link " + br + " exists but is not a bridge", repair});
  }
  if (!seen.bridge.exists || !seen.bridge.is_bridge) {
    recreated = true;
    steps.push_back({StepKind::kCreateBridge, br, "", want.config.mtu,
                     seen.bridge.exists ? "replacing link " + br : "bridge " + br + " is missing", repair});
  } else if (want.config.mtu > 0 && seen.bridge.mtu != want.config.mtu) {
    steps.push_back({StepKind::kSetMtu, br, "", want.config.mtu,
                     "bridge " + br + " has mtu " + std::to_string(seen.bridge.mtu), false});
  }
  if (!want.owner_mark.empty() && (recreated || seen.bridge.alias != want.owner_mark)) {
    steps.push_back({StepKind::kSetAlias, br, want.owner_mark, 0,
                     recreated ? "owner mark of a new bridge" : "bridge " + br + " carries no owner mark", false});
  }
  if (recreated || !seen.bridge.up) {
    steps.push_back({StepKind::kSetUp, br, "", 0, "bridge " + br + " is down", repair && !recreated});
  }
  // Addresses: exactly the gateway (none for bridged networks). A recreated bridge has none.
  const std::vector<std::string> no_addresses;
  const auto& have = recreated ? no_addresses : seen.bridge.ipv4;
  for (const auto& a : have) {
    if (a != want.gateway_cidr) {
      steps.push_back({StepKind::kDeleteAddress, br, a, 0, "stray address " + a + " on " + br, false});
    }
  }
  if (!want.gateway_cidr.empty() && std::find(have.begin(), have.end(), want.gateway_cidr) == have.end()) {
    steps.push_back({StepKind::kAddAddress, br, want.gateway_cidr, 0,
                     "gateway " + want.gateway_cidr + " is not on " + br, repair && !recreated});
  }
  // Uplink of bridged networks.
  if (!want.vlan_link.empty() && !seen.vlan.exists) {
    steps.push_back({StepKind::kCreateVlan, want.vlan_link, want.config.host_interface, want.config.vlan,
                     "vlan link " + want.vlan_link + " is missing", repair});
  }
  if (!want.uplink.empty()) {
    const host::LinkState& up = want.vlan_link.empty() ? seen.uplink : seen.vlan;
    bool will_exist = up.exists || !want.vlan_link.empty();
    if (will_exist && (recreated || up.master != br || !up.up)) {
      steps.push_back({StepKind::kAttach, want.uplink, br, 0, "uplink " + want.uplink + " is not a port of " + br,
                       repair && !recreated});
    }
  }
  // The VXLAN port of a network that spans hosts: the right VNI and source address, on the bridge, flooding to
  // every peer. A port that no longer should be (the node lost its underlay) is removed.
  const host::LinkState& vx = seen.vxlan;
  if (want.overlay) {
    const DesiredOverlay& o = want.vxlan;
    bool wrong = vx.exists && (vx.kind != "vxlan" || vx.vxlan_id != o.vni || vx.vxlan_local != o.local);
    if (wrong) {
      steps.push_back({StepKind::kDeleteLink, o.link, "", 0,
                       "vxlan " + o.link + " is not vni " + std::to_string(o.vni) + " from " + o.local, false});
    }
    bool made = !vx.exists || wrong;
    if (made) {
      steps.push_back({StepKind::kCreateVxlan, o.link, o.dev, o.mtu,
                       "vxlan " + o.link + " (vni " + std::to_string(o.vni) + ") is missing", repair && !wrong});
    } else if (vx.mtu != o.mtu) {
      steps.push_back({StepKind::kSetMtu, o.link, "", o.mtu, "vxlan " + o.link + " has mtu " + std::to_string(vx.mtu),
                       false});
    }
    if (made || recreated || vx.master != br || !vx.up) {
      steps.push_back({StepKind::kAttach, o.link, br, 0, "vxlan " + o.link + " is not a port of " + br,
                       repair && !made && !recreated});
    }
    const std::vector<std::string> none;
    const auto& have = made ? none : seen.flood;
    for (const auto& p : have) {
      if (!std::binary_search(o.peers.begin(), o.peers.end(), p)) {
        steps.push_back({StepKind::kDeleteFloodPeer, o.link, p, 0, "node at " + p + " is no longer a peer", false});
      }
    }
    for (const auto& p : o.peers) {
      if (std::find(have.begin(), have.end(), p) == have.end()) {
        steps.push_back({StepKind::kAddFloodPeer, o.link, p, 0, "peer node at " + p + " is not in the flood list", false});
      }
    }
  } else if (vx.exists && !want.vxlan_link.empty()) {
    steps.push_back({StepKind::kDeleteLink, want.vxlan_link, "", 0, "vxlan " + want.vxlan_link + " is not wanted here",
                     false});
  }
  // Instance taps that exist but lost their bridge (a recreated bridge has no ports).
  for (const auto& t : want.taps) {
    auto it = seen.taps.find(t);
    if (it == seen.taps.end() || !it->second.exists) continue;  // the domain is not running: nothing to attach
    if (recreated || it->second.master != br || !it->second.up) {
      steps.push_back({StepKind::kAttach, t, br, 0, "tap " + t + " is not a port of " + br, repair});
    }
  }
  // dnsmasq.
  if (!want.dnsmasq) {
    if (seen.dnsmasq.running) {
      steps.push_back({StepKind::kStopDnsmasq, br, "", 0, "dhcp is off for " + want.config.Key(), false});
    }
  } else if (!seen.dnsmasq.running) {
    steps.push_back({StepKind::kStartDnsmasq, br, "", 0, "dnsmasq for " + br + " is not running",
                     repair && seen.dnsmasq.pid != 0});
  } else if (recreated || seen.dnsmasq.conf != want.conf) {
    steps.push_back({StepKind::kRestartDnsmasq, br, "", 0,
                     recreated ? "bridge " + br + " was recreated" : "dnsmasq configuration changed", false});
  } else if (seen.dnsmasq.hosts != want.hosts) {
    steps.push_back({StepKind::kReloadDnsmasq, br, "", 0, "dhcp hosts changed", false});
  }
  return steps;
}

std::vector<Step> PlanTeardown(const std::string& bridge, const std::string& vlan_link, const ObservedNetwork& seen) {
  std::vector<Step> steps;
  if (seen.dnsmasq.running) steps.push_back({StepKind::kStopDnsmasq, bridge, "", 0, "network deleted", false});
  if (seen.bridge.exists) steps.push_back({StepKind::kDeleteLink, bridge, "", 0, "network deleted", false});
  if (seen.vxlan.exists) steps.push_back({StepKind::kDeleteLink, VxlanName(bridge), "", 0, "network deleted", false});
  if (!vlan_link.empty() && seen.vlan.exists) {
    steps.push_back({StepKind::kDeleteLink, vlan_link, "", 0, "network deleted", false});
  }
  return steps;
}

std::vector<std::string> OrphanBridges(const std::vector<std::string>& observed, const std::set<std::string>& desired) {
  std::vector<std::string> out;
  for (const auto& b : observed) {
    if (b.rfind(kBridgePrefix, 0) == 0 && !desired.count(b)) out.push_back(b);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Step> PlanFloatingAddresses(const std::map<std::string, std::set<std::string>>& want,
                                        const std::map<std::string, host::LinkState>& seen,
                                        const std::vector<Ipv4Net>& pools) {
  std::vector<Step> steps;
  static const std::set<std::string> kNone;
  for (const auto& [ifname, link] : seen) {
    if (!link.exists) continue;
    auto w = want.find(ifname);
    const std::set<std::string>& wanted = w == want.end() ? kNone : w->second;
    for (const auto& a : link.ipv4) {
      auto slash = a.find('/');
      if (slash == std::string::npos || a.substr(slash) != "/32") continue;
      auto ip = ParseIpv4(a.substr(0, slash));
      if (!ip.ok()) continue;
      bool ours = std::any_of(pools.begin(), pools.end(), [&](const Ipv4Net& p) { return p.Contains(*ip); });
      if (ours && !wanted.count(a)) {
        steps.push_back({StepKind::kDeleteAddress, ifname, a, 0, "floating address " + a + " is no longer associated here"});
      }
    }
  }
  for (const auto& [ifname, addrs] : want) {
    auto l = seen.find(ifname);
    if (l == seen.end() || !l->second.exists) continue;
    for (const auto& a : addrs) {
      if (std::find(l->second.ipv4.begin(), l->second.ipv4.end(), a) == l->second.ipv4.end()) {
        steps.push_back({StepKind::kAddAddress, ifname, a, 0, "floating address " + a + " associated here"});
      }
    }
  }
  return steps;
}

}  // namespace stratus::network
