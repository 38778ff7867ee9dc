#include "stratus/network/ipam.h"

#include <cctype>
#include <cstdio>

#include "stratus/host/netdev.h"

namespace stratus::network {

namespace {

Status FieldError(const std::string& field, const std::string& what) {
  return InvalidError(field + ": " + what, {FieldCause{field, what}});
}

std::string OwnerField(const NicRequest& req) {
  return req.field.empty() ? "spec.networks[" + std::to_string(req.nic) + "]" : req.field;
}

// First and last usable host addresses (network and broadcast excluded).
uint32_t FirstHost(const Ipv4Net& n) { return n.base + 1; }
uint32_t LastHost(const Ipv4Net& n) { return n.broadcast() - 1; }

bool MacInUse(const AllocationTable& table, const std::string& mac, const std::string& uid, int nic,
              const Allocation** holder) {
  for (const auto& [ip, a] : table) {
    if (a.mac == mac && !a.SameOwner(uid, nic)) {
      if (holder) *holder = &a;
      return true;
    }
  }
  return false;
}

}  // namespace

uint64_t StableHash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // FNV-1a mixes the low bits poorly for short inputs; finish with a splitmix64 round.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

uint32_t NetworkConfig::HostCount() const {
  if (cidr.prefix > 30) return 0;
  return LastHost(cidr) - FirstHost(cidr) + 1;
}

uint32_t VniOf(const json& network) {
  if (!network.is_object() || !network.contains("status") || !network["status"].is_object()) return 0;
  const json& v = network["status"].value("vni", json());
  return v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= 16777215 ? v.get<uint32_t>() : 0;
}

StatusOr<NetworkConfig> ParseNetwork(const json& network) {
  if (!network.is_object() || !network.contains("metadata") || !network["metadata"].is_object()) {
    return InvalidError("not a Network object");
  }
  NetworkConfig c;
  const json& md = network["metadata"];
  c.ns = md.value("namespace", "");
  c.name = md.value("name", "");
  c.uid = md.value("uid", "");
  static const json kEmpty = json::object();
  const json& spec = network.contains("spec") && network["spec"].is_object() ? network["spec"] : kEmpty;
  if (!spec.contains("cidr") || !spec["cidr"].is_string()) return FieldError("spec.cidr", "is required");
  auto cidr = ParseCidr(spec["cidr"].get<std::string>());
  if (!cidr.ok()) return FieldError("spec.cidr", cidr.status().message());
  c.cidr = *cidr;
  if (c.cidr.prefix > 30) {
    return FieldError("spec.cidr", c.cidr.ToString() + " leaves no room for instances (use /30 or larger)");
  }
  c.gateway = FirstHost(c.cidr);
  if (spec.contains("gateway") && spec["gateway"].is_string() && !spec["gateway"].get<std::string>().empty()) {
    std::string g = spec["gateway"].get<std::string>();
    auto gw = ParseIpv4(g);
    if (!gw.ok()) return FieldError("spec.gateway", gw.status().message());
    if (!c.cidr.Contains(*gw)) return FieldError("spec.gateway", g + " is outside " + c.cidr.ToString());
    if (*gw == c.cidr.base || *gw == c.cidr.broadcast()) {
      return FieldError("spec.gateway", g + " is the network or broadcast address of " + c.cidr.ToString());
    }
    c.gateway = *gw;
  }
  c.dhcp = spec.value("dhcp", true);
  c.mode = spec.value("mode", "nat");
  if (c.mode != "nat" && c.mode != "isolated" && c.mode != "bridged") {
    return FieldError("spec.mode", "'" + c.mode + "' is not one of nat, isolated, bridged");
  }
  c.host_interface = spec.value("hostInterface", "");
  if (!c.host_interface.empty()) {
    Status s = host::ValidateIfName(c.host_interface, "spec.hostInterface");
    if (!s.ok()) return s;
  }
  if (c.mode == "bridged" && c.host_interface.empty()) {
    return FieldError("spec.hostInterface", "is required when mode is bridged");
  }
  if (c.mode != "bridged" && !c.host_interface.empty()) {
    return FieldError("spec.hostInterface", "only applies to mode bridged (mode is " + c.mode + ")");
  }
  if (spec.contains("vlan") && spec["vlan"].is_number_integer()) {
    c.vlan = spec["vlan"].get<int>();
    if (c.vlan < 1 || c.vlan > 4094) return FieldError("spec.vlan", "must be between 1 and 4094");
    if (c.mode != "bridged") return FieldError("spec.vlan", "only applies to mode bridged (mode is " + c.mode + ")");
  }
  if (spec.contains("dns") && spec["dns"].is_array()) {
    for (size_t i = 0; i < spec["dns"].size(); ++i) {
      const json& d = spec["dns"][i];
      std::string field = "spec.dns[" + std::to_string(i) + "]";
      if (!d.is_string()) return FieldError(field, "must be an IPv4 address");
      auto ip = ParseIpv4(d.get<std::string>());
      if (!ip.ok()) return FieldError(field, ip.status().message());
      c.dns.push_back(*ip);
    }
    if (c.dns.size() > 8) return FieldError("spec.dns", "at most 8 servers");
  }
  if (spec.contains("mtu") && spec["mtu"].is_number_integer()) {
    c.mtu = spec["mtu"].get<int>();
    if (c.mtu < 576 || c.mtu > 9216) return FieldError("spec.mtu", "must be between 576 and 9216");
  }
  return c;
}

json AllocationsToJson(const AllocationTable& table) {
  json out = json::object();
  for (const auto& [ip, a] : table) {
    out[FormatIpv4(ip)] = {{"instance", a.instance}, {"uid", a.uid}, {"nic", a.nic}, {"mac", a.mac}};
  }
  return out;
}

StatusOr<AllocationTable> AllocationsFromJson(const json& j) {
  AllocationTable t;
  if (j.is_null()) return t;
  if (!j.is_object()) return InvalidError("status.allocations must be an object of ip -> owner");
  std::map<std::pair<std::string, int>, uint32_t> owners;  // (uid, nic) -> ip: one address per NIC
  for (const auto& [k, v] : j.items()) {
    std::string field = "status.allocations[" + k + "]";
    auto ip = ParseIpv4(k);
    if (!ip.ok()) return FieldError(field, ip.status().message());
    if (!v.is_object() || !v.contains("uid") || !v["uid"].is_string() || v["uid"].get<std::string>().empty()) {
      return FieldError(field, "must name the owning instance uid");
    }
    Allocation a;
    a.uid = v["uid"].get<std::string>();
    a.instance = v.value("instance", "");
    a.nic = v.contains("nic") && v["nic"].is_number_integer() ? v["nic"].get<int>() : -1;
    if (a.nic < 0) return FieldError(field, "must have a nic index >= 0");
    std::string mac = v.value("mac", "");
    if (!mac.empty()) {
      auto m = NormalizeMac(mac);
      if (!m.ok()) return FieldError(field, m.status().message());
      a.mac = *m;
    }
    auto [owner, fresh] = owners.emplace(std::make_pair(a.uid, a.nic), *ip);
    if (!fresh) {
      return FieldError(field, "nic " + std::to_string(a.nic) + " of " + a.instance + " also holds " +
                                   FormatIpv4(owner->second));
    }
    t.emplace(*ip, std::move(a));
  }
  return t;
}

std::string DeriveMac(const std::string& uid, int nic, int attempt) {
  uint64_t h = StableHash("mac/" + uid + "/" + std::to_string(nic) + "/" + std::to_string(attempt));
  char buf[18];
  std::snprintf(buf, sizeof(buf), "52:54:00:%02x:%02x:%02x", static_cast<unsigned>((h >> 16) & 255),
                static_cast<unsigned>((h >> 8) & 255), static_cast<unsigned>(h & 255));
  return buf;
}

StatusOr<std::string> NormalizeMac(const std::string& mac) {
  auto bad = [&](const std::string& why) { return InvalidError("'" + mac + "' " + why); };
  if (mac.size() != 17) return bad("is not a MAC address (aa:bb:cc:dd:ee:ff)");
  std::string out;
  for (size_t i = 0; i < 17; ++i) {
    char c = mac[i];
    if (i % 3 == 2) {
      if (c != ':') return bad("is not a MAC address (aa:bb:cc:dd:ee:ff)");
      out += ':';
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) return bad("is not a MAC address (aa:bb:cc:dd:ee:ff)");
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  int first = std::stoi(out.substr(0, 2), nullptr, 16);
  if (first & 1) return bad("is a multicast MAC address");
  if (out == "00:00:00:00:00:00") return bad("is the all-zero MAC address");
  return out;
}

uint32_t Lookup(const AllocationTable& table, const std::string& uid, int nic) {
  for (const auto& [ip, a] : table) {
    if (a.SameOwner(uid, nic)) return ip;
  }
  return 0;
}

StatusOr<NicAddress> Allocate(const NetworkConfig& net, AllocationTable& table, const NicRequest& req) {
  const std::string field = OwnerField(req);
  if (req.uid.empty()) return FieldError(field, "the instance has no uid yet");
  if (net.HostCount() == 0) return FieldError(field, "network " + net.name + " has no host addresses");
  uint32_t held = Lookup(table, req.uid, req.nic);
  // An address that is no longer a host address of the network (its cidr or gateway changed) is given up.
  uint32_t stale = 0;
  if (held && (!net.cidr.Contains(held) || held == net.gateway || held == net.cidr.base ||
               held == net.cidr.broadcast())) {
    stale = held;
  }

  // The MAC first: it does not depend on the address.
  std::string mac;
  if (!req.mac.empty()) {
    auto m = NormalizeMac(req.mac);
    if (!m.ok()) return FieldError(field + ".mac", m.status().message());
    const Allocation* holder = nullptr;
    if (MacInUse(table, *m, req.uid, req.nic, &holder)) {
      return FieldError(field + ".mac", *m + " is used by instance " + holder->instance + " on network " + net.name);
    }
    mac = *m;
  } else if (held && !table.at(held).mac.empty()) {
    mac = table.at(held).mac;  // keep what it was given: a guest's NIC identity does not change under it
  } else {
    for (int attempt = 0; attempt < 1024; ++attempt) {
      std::string m = DeriveMac(req.uid, req.nic, attempt);
      if (!MacInUse(table, m, req.uid, req.nic, nullptr)) {
        mac = m;
        break;
      }
    }
    if (mac.empty()) return Status(Code::kUnavailable, field + ": no free MAC address on network " + net.name);
  }

  uint32_t ip = 0;
  if (!req.ip.empty()) {
    const std::string f = field + ".ip";
    auto want = ParseIpv4(req.ip);
    if (!want.ok()) return FieldError(f, want.status().message());
    if (!net.cidr.Contains(*want)) return FieldError(f, req.ip + " is outside " + net.cidr.ToString());
    if (*want == net.cidr.base) {
      return FieldError(f, req.ip + " is the network address of " + net.cidr.ToString());
    }
    if (*want == net.cidr.broadcast()) {
      return FieldError(f, req.ip + " is the broadcast address of " + net.cidr.ToString());
    }
    if (*want == net.gateway) return FieldError(f, req.ip + " is the gateway of network " + net.name);
    auto it = table.find(*want);
    if (it != table.end() && !it->second.SameOwner(req.uid, req.nic)) {
      std::string who = it->second.instance.empty() ? "uid " + it->second.uid : it->second.instance;
      if (it->second.uid == req.uid) who += " (nic " + std::to_string(it->second.nic) + ")";
      return FieldError(f, req.ip + " is held by instance " + who);
    }
    ip = *want;
  } else if (held && !stale) {
    ip = held;
  } else {
    uint32_t first = FirstHost(net.cidr);
    uint32_t count = net.HostCount();
    uint32_t start = static_cast<uint32_t>(StableHash("ip/" + req.uid + "/" + std::to_string(req.nic)) % count);
    for (uint32_t i = 0; i < count; ++i) {
      uint32_t cand = first + (start + i) % count;
      if (cand == net.gateway || (table.count(cand) && cand != stale)) continue;
      ip = cand;
      break;
    }
    if (!ip) {
      size_t used = table.size() + (table.count(net.gateway) ? 0 : 1);
      return Status(Code::kUnavailable, field + ": network " + net.name + " has no free address (" +
                                            std::to_string(used) + " of " + std::to_string(count) + " in use)");
    }
  }

  NicAddress out;
  out.ip = ip;
  out.mac = mac;
  Allocation a{req.instance, req.uid, req.nic, mac};
  if (held && held != ip) {
    table.erase(held);
    out.changed = true;
  }
  auto it = table.find(ip);
  if (it == table.end() || !(it->second == a)) {
    table[ip] = a;
    out.changed = true;
  }
  return out;
}

int ReleaseInstance(AllocationTable& table, const std::string& uid) {
  int n = 0;
  for (auto it = table.begin(); it != table.end();) {
    if (it->second.uid == uid) {
      it = table.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

int ReleaseNic(AllocationTable& table, const std::string& uid, int nic) {
  uint32_t ip = Lookup(table, uid, nic);
  if (!ip) return 0;
  table.erase(ip);
  return 1;
}

int ReleaseRemovedNics(AllocationTable& table, const std::string& uid, int nic_count) {
  int n = 0;
  for (auto it = table.begin(); it != table.end();) {
    if (it->second.uid == uid && it->second.nic >= nic_count) {
      it = table.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

}  // namespace stratus::network
