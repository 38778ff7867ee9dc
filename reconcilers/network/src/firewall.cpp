#include "stratus/network/firewall.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "stratus/host/netdev.h"

namespace stratus::network {

namespace {

Status RuleError(const std::string& group, const std::string& field, const std::string& what) {
  std::string f = field;
  return InvalidError("securitygroup " + group + ": " + f + ": " + what, {FieldCause{f, what}});
}

// Parses one rule of a SecurityGroup spec. `peers` is resolved from cidr or the peer group's members.
StatusOr<FirewallRule> ParseRule(const std::string& group, const std::string& field, const json& r,
                                 const std::map<std::string, std::vector<uint32_t>>& members) {
  if (!r.is_object()) return RuleError(group, field, "must be an object");
  FirewallRule out;
  out.protocol = r.value("protocol", "tcp");
  if (out.protocol != "tcp" && out.protocol != "udp" && out.protocol != "icmp" && out.protocol != "all") {
    return RuleError(group, field + ".protocol", "'" + out.protocol + "' is not one of tcp, udp, icmp, all");
  }
  auto port = [&](const char* name, int* dst) -> Status {
    if (!r.contains(name) || r[name].is_null()) return Status::Ok();
    if (!r[name].is_number_integer()) return RuleError(group, field + "." + name, "must be an integer");
    int v = r[name].get<int>();
    int max = out.protocol == "icmp" ? 255 : 65535;
    if (v < 0 || v > max) {
      return RuleError(group, field + "." + name, "must be between 0 and " + std::to_string(max));
    }
    *dst = v;
    return Status::Ok();
  };
  Status s = port("fromPort", &out.from_port);
  if (!s.ok()) return s;
  s = port("toPort", &out.to_port);
  if (!s.ok()) return s;
  if (out.protocol == "tcp" || out.protocol == "udp") {
    if (out.to_port >= 0 && out.from_port < 0) return RuleError(group, field + ".fromPort", "is required with toPort");
    if (out.from_port >= 0 && out.to_port < 0) out.to_port = out.from_port;
    if (out.to_port < out.from_port) {
      return RuleError(group, field + ".toPort", "must not be below fromPort " + std::to_string(out.from_port));
    }
  } else if (out.protocol == "icmp") {
    if (out.to_port >= 0 && out.from_port < 0) {
      return RuleError(group, field + ".fromPort", "an ICMP code needs an ICMP type");
    }
  } else {
    out.from_port = out.to_port = -1;  // "all": ports mean nothing
  }
  bool has_cidr = r.contains("cidr") && r["cidr"].is_string();
  bool has_group = r.contains("securityGroup") && r["securityGroup"].is_string();
  if (has_cidr == has_group) return RuleError(group, field, "needs exactly one of cidr and securityGroup");
  if (has_cidr) {
    std::string c = r["cidr"].get<std::string>();
    auto n = ParseCidr(c);
    if (!n.ok()) {
      auto ip = ParseIpv4(c);  // a bare address means /32
      if (!ip.ok()) return RuleError(group, field + ".cidr", n.status().message());
      n = Ipv4Net{*ip, 32};
    }
    out.peers.push_back(*n);
  } else {
    out.peer_group = r["securityGroup"].get<std::string>();
    auto it = members.find(out.peer_group);
    if (it != members.end()) {
      std::set<uint32_t> uniq(it->second.begin(), it->second.end());
      for (uint32_t ip : uniq) out.peers.push_back(Ipv4Net{ip, 32});
    }
  }
  return out;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// Comments reach nft inside double quotes: keep only harmless characters.
std::string Comment(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '.' || c == '_' || c == '#' ||
        c == ' ' || c == ':') {
      out += c;
    }
  }
  return out.substr(0, 120);
}

std::string PeerSet(const std::vector<Ipv4Net>& peers) {
  auto one = [](const Ipv4Net& n) { return n.prefix == 32 ? FormatIpv4(n.base) : n.ToString(); };
  if (peers.size() == 1) return one(peers[0]);
  std::string s = "{ ";
  for (size_t i = 0; i < peers.size(); ++i) s += (i ? ", " : "") + one(peers[i]);
  return s + " }";
}

// "ip saddr {..} tcp dport 22-80" (without the verdict). Empty when the rule can match nothing.
std::string RuleMatch(const FirewallRule& r, const char* peer_dir) {
  if (r.peers.empty()) return "";
  std::string m = std::string("ip ") + peer_dir + " " + PeerSet(r.peers);
  if (r.protocol == "tcp" || r.protocol == "udp") {
    if (r.from_port < 0) {
      m += " meta l4proto " + r.protocol;
    } else if (r.from_port == r.to_port) {
      m += " " + r.protocol + " dport " + std::to_string(r.from_port);
    } else {
      m += " " + r.protocol + " dport " + std::to_string(r.from_port) + "-" + std::to_string(r.to_port);
    }
  } else if (r.protocol == "icmp") {
    if (r.from_port < 0) {
      m += " meta l4proto icmp";
    } else {
      m += " icmp type " + std::to_string(r.from_port);
      if (r.to_port >= 0) m += " icmp code " + std::to_string(r.to_port);
    }
  }
  return m;
}

Status CheckIf(const std::string& name, const std::string& what) { return host::ValidateIfName(name, what); }

}  // namespace

StatusOr<NicRules> ResolveNicRules(const std::vector<std::string>& group_names,
                                   const std::map<std::string, json>& groups,
                                   const std::map<std::string, std::vector<uint32_t>>& members) {
  NicRules out;
  out.filtered = !group_names.empty();
  bool all_restrict = !group_names.empty();
  std::set<std::string> seen;
  for (const auto& name : group_names) {
    if (!seen.insert(name).second) continue;
    auto it = groups.find(name);
    if (it == groups.end()) {
      out.missing.push_back(name);  // allows nothing, and does not lift egress restrictions of the others
      continue;
    }
    static const json kEmpty = json::object();
    const json& spec = it->second.contains("spec") && it->second["spec"].is_object() ? it->second["spec"] : kEmpty;
    for (const char* dir : {"ingress", "egress"}) {
      if (!spec.contains(dir) || spec[dir].is_null()) continue;
      if (!spec[dir].is_array()) return RuleError(name, std::string("spec.") + dir, "must be a list of rules");
      for (size_t i = 0; i < spec[dir].size(); ++i) {
        std::string field = std::string("spec.") + dir + "[" + std::to_string(i) + "]";
        auto r = ParseRule(name, field, spec[dir][i], members);
        if (!r.ok()) return r.status();
        (std::string(dir) == "ingress" ? out.ingress : out.egress).push_back(std::move(*r));
      }
    }
    bool has_egress = spec.contains("egress") && spec["egress"].is_array() && !spec["egress"].empty();
    if (!has_egress) all_restrict = false;
  }
  // A group without egress rules allows all egress; only when every existing group restricts is egress limited.
  bool any_found = out.missing.size() < seen.size();
  out.restrict_egress = any_found ? all_restrict : !group_names.empty();
  if (!out.restrict_egress) out.egress.clear();
  return out;
}

StatusOr<std::string> RenderRuleset(const FirewallInput& in) {
  // Validate everything first: nothing is rendered from a bad value.
  std::set<std::string> taps;
  for (const auto& n : in.networks) {
    Status s = CheckIf(n.bridge, "bridge of network " + n.key);
    if (!s.ok()) return s;
    if (!n.overlay.empty()) {
      s = CheckIf(n.overlay, "vxlan port of network " + n.key);
      if (!s.ok()) return s;
    }
    if (n.mode != "nat" && n.mode != "isolated" && n.mode != "bridged") {
      return InvalidError("network " + n.key + ": unknown mode '" + n.mode + "'");
    }
  }
  std::vector<std::pair<const NicFirewall*, std::string>> nics;  // with normalised MAC
  for (const auto& n : in.nics) {
    Status s = CheckIf(n.tap, "tap of " + n.owner);
    if (!s.ok()) return s;
    s = CheckIf(n.bridge, "bridge of " + n.owner);
    if (!s.ok()) return s;
    if (!taps.insert(n.tap).second) return InvalidError("tap " + n.tap + " is listed twice");
    auto mac = NormalizeMac(n.mac);
    if (!mac.ok()) return InvalidError(n.owner + ": " + mac.status().message());
    if (n.ip == 0) return InvalidError(n.owner + ": no address");
    nics.emplace_back(&n, *mac);
  }
  std::sort(nics.begin(), nics.end(), [](const auto& a, const auto& b) { return a.first->tap < b.first->tap; });
  std::set<uint32_t> publics;
  for (const auto& f : in.floating) {
    Status s = CheckIf(f.bridge, "bridge of address " + f.owner);
    if (!s.ok()) return s;
    if (f.public_ip == 0 || f.private_ip == 0) return InvalidError("address " + f.owner + ": no ip");
    if (!publics.insert(f.public_ip).second) {
      return InvalidError("address " + f.owner + ": " + FormatIpv4(f.public_ip) + " is listed twice");
    }
  }
  std::vector<FloatingFirewall> floating = in.floating;
  std::sort(floating.begin(), floating.end(), [](const auto& a, const auto& b) { return a.public_ip < b.public_ip; });
  std::vector<NetworkFirewall> nets = in.networks;
  std::sort(nets.begin(), nets.end(), [](const auto& a, const auto& b) { return a.bridge < b.bridge; });

  std::ostringstream o;
  o << "# Generated by stratus; replaced as a whole on every change.\n";
  o << "table bridge " << kNftTable << "\n";
  o << "delete table bridge " << kNftTable << "\n";
  o << "table inet " << kNftTable << "\n";
  o << "delete table inet " << kNftTable << "\n";
  if (nets.empty() && nics.empty() && floating.empty()) return o.str();

  // ---- bridge: anti-spoofing per tap ----
  o << "table bridge " << kNftTable << " {\n";
  if (!nics.empty()) {
    o << "  chain prerouting {\n";
    o << "    type filter hook prerouting priority filter; policy accept;\n";
    o << "    iifname vmap {";
    for (size_t i = 0; i < nics.size(); ++i) {
      o << (i ? ", " : " ") << Quote(nics[i].first->tap) << " : jump spoof-" << nics[i].first->tap;
    }
    o << " }\n";
    o << "  }\n";
    for (const auto& [n, mac] : nics) {
      std::string ip = FormatIpv4(n->ip);
      o << "  chain spoof-" << n->tap << " {\n";
      o << "    # " << Comment(n->owner) << "\n";
      o << "    ether saddr != " << mac << " drop\n";
      o << "    arp saddr ip != { 0.0.0.0, " << ip << " } drop\n";
      o << "    ether type arp return\n";
      o << "    ether type ip udp sport 68 udp dport 67 return\n";
      o << "    ip saddr != " << ip << " drop\n";
      o << "    ether type ip return\n";
      o << "    drop\n";
      o << "  }\n";
    }
  }
  std::vector<const NetworkFirewall*> overlays;
  for (const auto& n : nets) {
    if (!n.overlay.empty()) overlays.push_back(&n);
  }
  if (!overlays.empty()) {
    std::string ports;
    for (size_t i = 0; i < overlays.size(); ++i) ports += (i ? ", " : "") + Quote(overlays[i]->overlay);
    // The host's own frames neither leave through nor arrive from a VXLAN port: every node is its network's
    // gateway and DHCP server for the guests it runs.
    o << "  chain overlay-output {\n";
    o << "    type filter hook output priority filter; policy accept;\n";
    o << "    oifname { " << ports << " } drop\n";
    o << "  }\n";
    o << "  chain overlay-input {\n";
    o << "    type filter hook input priority filter; policy accept;\n";
    o << "    iifname { " << ports << " } drop\n";
    o << "  }\n";
    o << "  chain overlay-forward {\n";
    o << "    type filter hook forward priority filter; policy accept;\n";
    for (const auto* n : overlays) {
      std::string port = Quote(n->overlay), gw = FormatIpv4(n->gateway);
      o << "    # network " << Comment(n->key) << ": gateway " << gw << " and DHCP are per node\n";
      for (const char* dir : {"oifname", "iifname"}) {
        o << "    " << dir << " " << port << " arp daddr ip " << gw << " drop\n";
        o << "    " << dir << " " << port << " arp saddr ip " << gw << " drop\n";
        o << "    " << dir << " " << port << " udp dport { 67, 68 } drop\n";
      }
    }
    o << "  }\n";
  }
  o << "}\n";

  // ---- inet: security groups, isolation, NAT ----
  std::vector<std::pair<const NicFirewall*, std::string>> filtered;
  for (const auto& p : nics) {
    if (p.first->rules.filtered) filtered.push_back(p);
  }
  auto vmap = [&](const char* ifdir, const char* ipdir, const char* chain_prefix) {
    std::string s = std::string("    ") + ifdir + " . ip " + ipdir + " vmap {";
    for (size_t i = 0; i < filtered.size(); ++i) {
      const NicFirewall* n = filtered[i].first;
      s += std::string(i ? ", " : " ") + Quote(n->bridge) + " . " + FormatIpv4(n->ip) + " : jump " + chain_prefix +
           n->tap;
    }
    return s + " }\n";
  };
  o << "table inet " << kNftTable << " {\n";
  o << "  chain forward {\n";
  o << "    type filter hook forward priority filter; policy accept;\n";
  if (!filtered.empty()) {
    o << vmap("iifname", "saddr", "out-");
    o << vmap("oifname", "daddr", "in-");
  }
  // Floating addresses: connections DNATed to an instance (the vmap above has already applied its security
  // groups) and its own traffic out, before any network's isolation.
  for (const auto& f : floating) {
    o << "    # address " << Comment(f.owner) << "\n";
    o << "    oifname " << Quote(f.bridge) << " ip daddr " << FormatIpv4(f.private_ip) << " ct status dnat accept\n";
    o << "    iifname " << Quote(f.bridge) << " ip saddr " << FormatIpv4(f.private_ip) << " accept\n";
  }
  for (const auto& n : nets) {
    std::string br = Quote(n.bridge);
    o << "    # network " << Comment(n.key) << " (" << n.mode << ")\n";
    o << "    iifname " << br << " oifname " << br << " accept\n";
    if (n.mode == "nat") {
      o << "    iifname " << br << " ip saddr " << n.cidr.ToString() << " accept\n";
      o << "    oifname " << br << " ip daddr " << n.cidr.ToString() << " ct state established,related accept\n";
      o << "    iifname " << br << " drop\n";
      o << "    oifname " << br << " drop\n";
    } else if (n.mode == "isolated") {
      o << "    iifname " << br << " drop\n";
      o << "    oifname " << br << " drop\n";
    }
  }
  o << "  }\n";
  if (!filtered.empty()) {
    o << "  chain input {\n";
    o << "    type filter hook input priority filter; policy accept;\n";
    o << vmap("iifname", "saddr", "out-");
    o << "  }\n";
    o << "  chain output {\n";
    o << "    type filter hook output priority filter; policy accept;\n";
    o << vmap("oifname", "daddr", "in-");
    o << "  }\n";
  }
  for (const auto& [n, mac] : filtered) {
    const NicRules& r = n->rules;
    o << "  chain in-" << n->tap << " {\n";
    o << "    # ingress of " << Comment(n->owner) << "\n";
    o << "    ct state established,related return\n";
    o << "    ip saddr " << FormatIpv4(n->gateway) << " udp sport 67 udp dport 68 return\n";
    for (const auto& rule : r.ingress) {
      std::string m = RuleMatch(rule, "saddr");
      if (m.empty()) {
        o << "    # group " << Comment(rule.peer_group) << " has no members yet\n";
        continue;
      }
      o << "    " << m << " return\n";
    }
    o << "    drop\n";
    o << "  }\n";
    o << "  chain out-" << n->tap << " {\n";
    o << "    # egress of " << Comment(n->owner) << "\n";
    o << "    ct state established,related return\n";
    o << "    ip daddr " << FormatIpv4(n->gateway) << " udp dport 67 return\n";
    if (r.restrict_egress) {
      for (const auto& rule : r.egress) {
        std::string m = RuleMatch(rule, "daddr");
        if (m.empty()) {
          o << "    # group " << Comment(rule.peer_group) << " has no members yet\n";
          continue;
        }
        o << "    " << m << " return\n";
      }
      o << "    drop\n";
    }
    o << "  }\n";
  }
  if (!floating.empty()) {
    // Inbound for a floating address goes to its instance, from outside (prerouting) and from this host (output).
    for (const char* hook : {"prerouting", "output"}) {
      o << "  chain dnat-" << hook << " {\n";
      o << "    type nat hook " << hook << " priority -100; policy accept;\n";  // dstnat: older nft refuses the name in inet output
      for (const auto& f : floating) {
        o << "    ip daddr " << FormatIpv4(f.public_ip) << " dnat ip to " << FormatIpv4(f.private_ip) << "\n";
      }
      o << "  }\n";
    }
  }
  bool any_nat = std::any_of(nets.begin(), nets.end(), [](const auto& n) { return n.mode == "nat"; });
  if (any_nat || !floating.empty()) {
    o << "  chain postrouting {\n";
    o << "    type nat hook postrouting priority srcnat; policy accept;\n";
    // First: an instance with a floating address leaves through it rather than through the node's masquerade.
    for (const auto& f : floating) {
      o << "    ip saddr " << FormatIpv4(f.private_ip) << " ip daddr != " << f.network.ToString() << " oifname != "
        << Quote(f.bridge) << " snat ip to " << FormatIpv4(f.public_ip) << "\n";
    }
    for (const auto& n : nets) {
      if (n.mode != "nat") continue;
      std::string c = n.cidr.ToString();
      o << "    ip saddr " << c << " ip daddr != { " << c << ", 224.0.0.0/24, 255.255.255.255 } oifname != "
        << Quote(n.bridge) << " masquerade\n";
    }
    o << "  }\n";
  }
  o << "}\n";
  return o.str();
}

}  // namespace stratus::network
