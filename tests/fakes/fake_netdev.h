// An in-memory host network for unit tests of the network reconciler: links (bridges, VLANs, ports), addresses,
// dnsmasq instances per state dir, the applied nftables ruleset and sysctls. Not thread-safe: the tests call the
// reconciler from one thread.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "stratus/host/netdev.h"

namespace stratus::fakes {

class FakeNetDev : public host::NetDev {
 public:
  std::map<std::string, host::LinkState> links;
  struct Dns {
    bool running = false;
    int pid = 0;
    std::string conf, hosts;
    int starts = 0, reloads = 0;
  };
  std::map<std::string, Dns> dns;  // by dir
  std::string nft;                 // the applied ruleset text
  bool nft_tables = false;
  int applies = 0;
  bool forward = false, brnf = false;
  int next_pid = 1000;

  StatusOr<host::LinkState> Link(const std::string& name) override {
    auto it = links.find(name);
    if (it == links.end()) {
      host::LinkState s;
      s.name = name;
      return s;
    }
    return it->second;
  }
  StatusOr<std::vector<std::string>> ListBridges(const std::string& prefix) override {
    std::vector<std::string> out;
    for (const auto& [n, l] : links) {
      if (l.is_bridge && n.rfind(prefix, 0) == 0) out.push_back(n);
    }
    return out;
  }
  Status CreateBridge(const std::string& name, int mtu) override {
    if (links.count(name)) return Status(Code::kAlreadyExists, name);
    links[name] = {name, true, true, false, mtu ? mtu : 1500, "", {}};
    links[name].kind = "bridge";
    return Status::Ok();
  }
  Status SetAlias(const std::string& name, const std::string& alias) override {
    if (!links.count(name)) return NotFound(name);
    links[name].alias = alias;
    return Status::Ok();
  }
  Status SetMtu(const std::string& name, int mtu) override {
    if (!links.count(name)) return NotFound(name);
    links[name].mtu = mtu;
    return Status::Ok();
  }
  Status SetUp(const std::string& name) override {
    if (!links.count(name)) return NotFound(name);
    links[name].up = true;
    return Status::Ok();
  }
  Status AddAddress(const std::string& name, const std::string& a) override {
    if (!links.count(name)) return NotFound(name);
    auto& v = links[name].ipv4;
    if (std::find(v.begin(), v.end(), a) == v.end()) v.push_back(a);
    return Status::Ok();
  }
  Status DeleteAddress(const std::string& name, const std::string& a) override {
    if (!links.count(name)) return Status::Ok();
    auto& v = links[name].ipv4;
    v.erase(std::remove(v.begin(), v.end(), a), v.end());
    return Status::Ok();
  }
  Status DeleteLink(const std::string& name) override {
    links.erase(name);
    flood.erase(name);
    for (auto& [n, l] : links) {
      if (l.master == name) l.master = "";
    }
    return Status::Ok();
  }
  Status SetMaster(const std::string& port, const std::string& bridge) override {
    if (!links.count(port) || !links.count(bridge)) return NotFound(port);
    links[port].master = bridge;
    links[port].up = true;
    return Status::Ok();
  }
  Status EnsureVlan(const std::string& name, const std::string& parent, int vlan) override {
    links[name] = {name, true, false, false, 1500, "", {}};
    return Status::Ok();
  }
  std::map<std::string, std::vector<std::string>> flood;  // vxlan link -> remote VTEPs
  Status CreateVxlan(const std::string& name, uint32_t vni, const std::string& local, const std::string& dev,
                     int mtu) override {
    if (links.count(name)) return Status(Code::kAlreadyExists, name);
    if (!links.count(dev)) return NotFound("link " + dev + " does not exist");
    host::LinkState l{name, true, false, false, mtu ? mtu : 1450, "", {}};
    l.kind = "vxlan";
    l.vxlan_id = vni;
    l.vxlan_local = local;
    links[name] = l;
    flood[name].clear();
    return Status::Ok();
  }
  StatusOr<std::vector<std::string>> FloodPeers(const std::string& vxlan) override {
    if (!links.count(vxlan)) return NotFound(vxlan);
    auto v = flood[vxlan];
    std::sort(v.begin(), v.end());
    return v;
  }
  Status AddFloodPeer(const std::string& vxlan, const std::string& remote) override {
    if (!links.count(vxlan)) return NotFound(vxlan);
    auto& v = flood[vxlan];
    if (std::find(v.begin(), v.end(), remote) == v.end()) v.push_back(remote);
    return Status::Ok();
  }
  Status DeleteFloodPeer(const std::string& vxlan, const std::string& remote) override {
    auto& v = flood[vxlan];
    v.erase(std::remove(v.begin(), v.end(), remote), v.end());
    return Status::Ok();
  }
  StatusOr<host::DnsmasqState> Dnsmasq(const host::DnsmasqFiles& f) override {
    auto& d = dns[f.dir];
    return host::DnsmasqState{d.running, d.pid, d.conf, d.hosts};
  }
  Status StartDnsmasq(const host::DnsmasqFiles& f, const std::string& conf, const std::string& hosts) override {
    auto& d = dns[f.dir];
    if (d.running) return Status(Code::kAlreadyExists, "running");
    d = {true, next_pid++, conf, hosts, d.starts + 1, d.reloads};
    return Status::Ok();
  }
  Status ReloadDnsmasq(const host::DnsmasqFiles& f, const std::string& hosts) override {
    auto& d = dns[f.dir];
    if (!d.running) return NotFound("not running");
    d.hosts = hosts;
    d.reloads++;
    return Status::Ok();
  }
  Status StopDnsmasq(const host::DnsmasqFiles& f) override {
    dns[f.dir].running = false;
    return Status::Ok();
  }
  Status ApplyNftables(const std::string& ruleset) override {
    nft = ruleset;
    nft_tables = ruleset.find("table inet stratus {") != std::string::npos;
    applies++;
    return Status::Ok();
  }
  StatusOr<std::string> ListNftTable(const std::string&, const std::string&) override {
    return nft_tables ? std::string("table inet stratus { ... }") : std::string();
  }
  Status EnableIpForward() override {
    forward = true;
    return Status::Ok();
  }
  Status EnableBridgeNetfilter() override {
    brnf = true;
    return Status::Ok();
  }
};

}  // namespace stratus::fakes
