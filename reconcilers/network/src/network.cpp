#include "stratus/network/network.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "stratus/core/object.h"
#include "stratus/runtime/migration_phases.h"

namespace stratus::network {

namespace {

// The networks an Instance names: (index, network name).
std::vector<std::pair<int, std::string>> NicsOf(const json& inst) {
  std::vector<std::pair<int, std::string>> out;
  if (!inst.contains("spec") || !inst["spec"].is_object()) return out;
  const json& spec = inst["spec"];
  if (!spec.contains("networks") || !spec["networks"].is_array()) return out;
  for (size_t i = 0; i < spec["networks"].size(); ++i) {
    const json& n = spec["networks"][i];
    if (n.is_object() && n.contains("network") && n["network"].is_string()) {
      out.emplace_back(static_cast<int>(i), n["network"].get<std::string>());
    }
  }
  return out;
}

std::vector<std::string> GroupsOf(const json& inst) {
  std::vector<std::string> out;
  if (!inst.contains("spec") || !inst["spec"].is_object()) return out;
  const json& spec = inst["spec"];
  if (!spec.contains("securityGroups") || !spec["securityGroups"].is_array()) return out;
  for (const auto& g : spec["securityGroups"]) {
    if (g.is_string()) out.push_back(g.get<std::string>());
  }
  return out;
}

std::string NodeOf(const json& inst) {
  if (inst.contains("spec") && inst["spec"].is_object()) return inst["spec"].value("nodeName", "");
  return "";
}

const json& StatusAllocations(const json& net) {
  static const json kNull;
  if (!net.contains("status") || !net["status"].is_object()) return kNull;
  const json& s = net["status"];
  return s.contains("allocations") ? s["allocations"] : kNull;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

}  // namespace

NetworkReconciler::NetworkReconciler(ApiClient* client, runtime::Informer* networks, runtime::Informer* instances,
                                     runtime::Informer* groups, host::NetDev* netdev, Options opts,
                                     runtime::Informer* addresses, runtime::Informer* pools,
                                     runtime::Informer* nodes, runtime::Informer* migrations)
    : client_(client), networks_(networks), instances_(instances), groups_(groups), addresses_(addresses),
      pools_(pools), nodes_(opts.underlay_interface.empty() ? nullptr : nodes), migrations_(migrations),
      netdev_(netdev), opts_(std::move(opts)), events_(client, "network", opts_.node) {}

std::vector<std::string> NetworkReconciler::NetworkKeys(const std::string& key, const json&) {
  return {key, kFirewallKey};
}

std::vector<std::string> NetworkReconciler::InstanceKeys(const std::string& key, const json& instance) {
  std::vector<std::string> out;
  std::string ns = runtime::SplitKey(key).first;
  for (const auto& [i, net] : NicsOf(instance)) out.push_back(ns + "/" + net);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  out.push_back(kFirewallKey);
  return out;
}

std::vector<std::string> NetworkReconciler::SecurityGroupKeys(const std::string&, const json&) {
  return {kFirewallKey};
}

StatusOr<runtime::Result> NetworkReconciler::Reconcile(const std::string& key) {
  if (!opts_.netns.empty()) {
    // Host effects follow the calling thread's namespace; the controller's workers stay in it once moved.
    thread_local std::string entered;
    if (entered != opts_.netns) {
      Status s = host::EnterNetns(opts_.netns);
      if (!s.ok()) return s;
      entered = opts_.netns;
    }
  }
  if (key == kFirewallKey) return SyncFirewall();
  return ReconcileNetwork(key);
}

std::set<std::string> NetworkReconciler::Arriving() {
  if (migrations_ == nullptr) return {};
  return migration::ArrivingAt(migrations_->List(), opts_.node, std::time(nullptr));
}

bool NetworkReconciler::Local(const json& inst, const std::set<std::string>& arriving) const {
  return NodeOf(inst) == opts_.node || arriving.count(runtime::KeyFor(inst)) > 0;
}

std::vector<std::string> NetworkReconciler::LocalTaps(const std::string& ns, const std::string& name) {
  std::vector<std::string> taps;
  const std::set<std::string> arriving = Arriving();
  for (const auto& inst : instances_->List()) {
    if (MetaString(inst, "namespace") != ns || !Local(inst, arriving)) continue;
    std::string uid = MetaString(inst, "uid");
    for (const auto& [i, net] : NicsOf(inst)) {
      if (net == name && !uid.empty()) taps.push_back(TapName(uid, i));
    }
  }
  return taps;
}

std::vector<std::string> NetworkReconciler::Users(const std::string& ns, const std::string& name) {
  std::vector<std::string> users;
  for (const auto& inst : instances_->List()) {
    if (MetaString(inst, "namespace") != ns) continue;
    for (const auto& [i, net] : NicsOf(inst)) {
      if (net == name) {
        users.push_back(MetaString(inst, "name"));
        break;
      }
    }
  }
  std::sort(users.begin(), users.end());
  return users;
}

StatusOr<ObservedNetwork> NetworkReconciler::Observe(const DesiredNetwork& want) {
  ObservedNetwork o;
  auto br = netdev_->Link(want.bridge);
  if (!br.ok()) return br.status();
  o.bridge = *br;
  if (!want.uplink.empty() && want.vlan_link.empty()) {
    auto up = netdev_->Link(want.uplink);
    if (!up.ok()) return up.status();
    o.uplink = *up;
  }
  if (!want.vlan_link.empty()) {
    auto v = netdev_->Link(want.vlan_link);
    if (!v.ok()) return v.status();
    o.vlan = *v;
  }
  for (const auto& t : want.taps) {
    auto l = netdev_->Link(t);
    if (!l.ok()) return l.status();
    if (l->exists) o.taps[t] = *l;
  }
  auto d = netdev_->Dnsmasq(want.files);
  if (!d.ok()) return d.status();
  o.dnsmasq = *d;
  auto vx = netdev_->Link(want.vxlan_link);
  if (!vx.ok()) return vx.status();
  o.vxlan = *vx;
  if (o.vxlan.exists && o.vxlan.kind == "vxlan") {
    auto f = netdev_->FloodPeers(want.vxlan_link);
    if (!f.ok()) return f.status();
    o.flood = *f;
  }
  return o;
}

StatusOr<std::optional<OverlayInput>> NetworkReconciler::Overlay(const json& network) {
  if (opts_.underlay_interface.empty()) return std::optional<OverlayInput>();
  OverlayInput in;
  in.dev = opts_.underlay_interface;
  auto link = netdev_->Link(in.dev);
  if (!link.ok()) return link.status();
  if (!link->exists || link->ipv4.empty()) {
    return Status(Code::kUnavailable, "underlay interface " + in.dev + (link->exists ? " has no IPv4 address" : " does not exist"));
  }
  in.local = link->ipv4.front().substr(0, link->ipv4.front().find('/'));
  in.dev_mtu = link->mtu > 0 ? link->mtu : 1500;
  in.vni = VniOf(network);
  if (nodes_) {
    for (const auto& n : nodes_->List()) {
      if (MetaString(n, "name") == opts_.node || !n.contains("status") || !n["status"].is_object()) continue;
      const json& u = n["status"].value("underlay", json::object());
      if (!u.is_object()) continue;
      std::string addr = u.value("address", "");
      if (ParseIpv4(addr).ok() && addr != in.local) in.peers.push_back(addr);
    }
  }
  return std::optional<OverlayInput>(std::move(in));
}

Status NetworkReconciler::Execute(const DesiredNetwork& want, const std::vector<Step>& steps) {
  for (const auto& s : steps) {
    Status st;
    switch (s.kind) {
      case StepKind::kDeleteLink: st = netdev_->DeleteLink(s.target); break;
      case StepKind::kCreateBridge:
        st = netdev_->CreateBridge(s.target, s.mtu);
        if (st.code() == Code::kAlreadyExists) st = Status::Ok();
        break;
      case StepKind::kSetAlias: st = netdev_->SetAlias(s.target, s.arg); break;
      case StepKind::kSetMtu: st = netdev_->SetMtu(s.target, s.mtu); break;
      case StepKind::kSetUp: st = netdev_->SetUp(s.target); break;
      case StepKind::kAddAddress: st = netdev_->AddAddress(s.target, s.arg); break;
      case StepKind::kDeleteAddress: st = netdev_->DeleteAddress(s.target, s.arg); break;
      case StepKind::kCreateVlan:
        st = netdev_->EnsureVlan(s.target, s.arg, s.mtu);
        if (st.ok()) st = netdev_->SetUp(s.target);
        break;
      case StepKind::kAttach: st = netdev_->SetMaster(s.target, s.arg); break;
      case StepKind::kStartDnsmasq: st = netdev_->StartDnsmasq(want.files, want.conf, want.hosts); break;
      case StepKind::kRestartDnsmasq:
        st = netdev_->StopDnsmasq(want.files);
        if (st.ok()) st = netdev_->StartDnsmasq(want.files, want.conf, want.hosts);
        break;
      case StepKind::kReloadDnsmasq: st = netdev_->ReloadDnsmasq(want.files, want.hosts); break;
      case StepKind::kStopDnsmasq: st = netdev_->StopDnsmasq(want.files); break;
      case StepKind::kCreateVxlan:
        st = netdev_->CreateVxlan(s.target, want.vxlan.vni, want.vxlan.local, s.arg, s.mtu);
        break;
      case StepKind::kAddFloodPeer: st = netdev_->AddFloodPeer(s.target, s.arg); break;
      case StepKind::kDeleteFloodPeer: st = netdev_->DeleteFloodPeer(s.target, s.arg); break;
    }
    if (!st.ok()) {
      return Status(st.code(), std::string(StepKindName(s.kind)) + " " + s.target + " (" + s.reason +
                                   "): " + st.message());
    }
    spdlog::info("network: {} {} {} ({}) node={}", StepKindName(s.kind), s.target, s.arg, s.reason, opts_.node);
  }
  return Status::Ok();
}

Status NetworkReconciler::Teardown(const std::string& bridge, const std::string& vlan_link) {
  host::DnsmasqFiles files{opts_.state_dir + "/" + bridge};
  ObservedNetwork seen;
  auto br = netdev_->Link(bridge);
  if (!br.ok()) return br.status();
  seen.bridge = *br;
  if (Foreign(seen.bridge)) {
    spdlog::warn("network: bridge {} belongs to another Stratus (owner mark \"{}\"): left alone node={}", bridge,
                 seen.bridge.alias, opts_.node);
    return Status::Ok();
  }
  if (!vlan_link.empty()) {
    auto v = netdev_->Link(vlan_link);
    if (!v.ok()) return v.status();
    seen.vlan = *v;
  }
  auto d = netdev_->Dnsmasq(files);
  if (!d.ok()) return d.status();
  seen.dnsmasq = *d;
  auto vx = netdev_->Link(VxlanName(bridge));
  if (!vx.ok()) return vx.status();
  seen.vxlan = *vx;
  if (Foreign(seen.vxlan)) seen.vxlan.exists = false;
  DesiredNetwork none;
  none.files = files;
  Status s = Execute(none, PlanTeardown(bridge, vlan_link, seen));
  if (!s.ok()) return s;
  std::error_code ec;
  std::filesystem::remove_all(files.dir, ec);
  return Status::Ok();
}

Status NetworkReconciler::WriteStatus(const json& obj, const std::string& phase, const std::string& ready,
                                      const std::string& reason, const std::string& message,
                                      const DesiredNetwork* want) {
  // Only this node's entry (status.nodes.<node>): the server's summary reconciler owns the top-level status.
  json entry = {{"phase", phase},
                {"ready", ready == "True"},
                {"reason", reason},
                {"message", message},
                {"observedGeneration", obj["metadata"].value("generation", 1)}};
  if (want) {
    entry["bridge"] = want->bridge;
    entry["gateway"] = FormatIpv4(want->config.gateway);
    if (want->overlay) {
      entry["vxlan"] = {{"link", want->vxlan.link}, {"vni", want->vxlan.vni}, {"local", want->vxlan.local},
                        {"mtu", want->vxlan.mtu}, {"peers", want->vxlan.peers}};
    }
  }
  return runtime::ReportNodeEntry(client_, "networks", obj, opts_.node, entry);
}

StatusOr<runtime::Result> NetworkReconciler::ReconcileNetwork(const std::string& key) {
  auto [ns, name] = runtime::SplitKey(key);
  const std::string bridge = BridgeName(ns, name);
  const std::string vlan = VlanLinkName(ns, name);
  json obj = networks_->Get(key);
  std::lock_guard lock(host_mu_);
  if (obj.is_null()) {
    // Gone (another node removed the finalizer, or it was deleted while we were down): clean up what is ours.
    brought_up_.erase(key);
    Status s = Teardown(bridge, vlan);
    if (!s.ok()) return s;
    return runtime::Result::Done();
  }

  if (!MetaString(obj, "deletionTimestamp").empty()) {
    auto users = Users(ns, name);
    if (!users.empty()) {
      std::string msg = "network is in use by instance" + std::string(users.size() > 1 ? "s " : " ") +
                        Join(users, ", ") + "; it is deleted once they are gone";
      Status s = WriteStatus(obj, "Terminating", "False", "InUse", msg, nullptr);
      if (!s.ok()) return s;
      return runtime::Result::After(opts_.in_use_retry);
    }
    Status s = Teardown(bridge, vlan);
    if (!s.ok()) {
      runtime::WarnIfFailed(
          WriteStatus(obj, "Terminating", "False", "TeardownFailed", "node " + opts_.node + ": " + s.message(), nullptr),
          "status of network " + key);
      return s;
    }
    brought_up_.erase(key);
    if (runtime::HasFinalizer(obj, kNetworkFinalizer)) {
      Status rf = runtime::RemoveFinalizer(client_, "networks", obj, kNetworkFinalizer);
      if (!rf.ok()) return rf;
      events_.Record(obj, "Normal", "TornDown", "bridge " + bridge + " and dnsmasq removed from node " + opts_.node);
    }
    spdlog::info("network torn down: network={} bridge={} node={}", key, bridge, opts_.node);
    return runtime::Result::Done();
  }

  {
    auto fin = runtime::AddFinalizer(client_, "networks", obj, kNetworkFinalizer);
    if (!fin.ok()) return fin.status();
    obj = *fin;
  }

  auto cfg = ParseNetwork(obj);
  if (!cfg.ok()) {
    Status s = WriteStatus(obj, "Failed", "False", "InvalidSpec", cfg.status().message(), nullptr);
    events_.Record(obj, "Warning", "InvalidSpec", cfg.status().message());
    if (!s.ok()) return s;
    return runtime::Result::Done();  // a spec change wakes us
  }
  auto table = AllocationsFromJson(StatusAllocations(obj));
  if (!table.ok()) {
    Status s = WriteStatus(obj, "Failed", "False", "InvalidAllocations", table.status().message(), nullptr);
    if (!s.ok()) return s;
    return runtime::Result::Done();
  }
  auto overlay = Overlay(obj);
  if (!overlay.ok()) {
    std::string msg = "node " + opts_.node + ": " + overlay.status().message();
    runtime::WarnIfFailed(WriteStatus(obj, "Pending", "False", "UnderlayMissing", msg, nullptr), "status of network " + key);
    return overlay.status();
  }
  auto want = Desire(*cfg, *table, opts_.state_dir, LocalTaps(ns, name), opts_.dnsmasq,
                     overlay->has_value() ? &**overlay : nullptr);
  if (!want.ok()) {
    Status s = WriteStatus(obj, "Failed", "False", "RenderFailed", want.status().message(), nullptr);
    if (!s.ok()) return s;
    return want.status();
  }
  want->owner_mark = opts_.owner_mark;
  auto seen = Observe(*want);
  if (!seen.ok()) return seen.status();
  if (Foreign(seen->bridge)) {
    std::string msg = "node " + opts_.node + ": bridge " + want->bridge + " belongs to another Stratus (owner mark \"" +
                      seen->bridge.alias + "\"); it is left alone";
    Status s = WriteStatus(obj, "Failed", "False", "BridgeConflict", msg, nullptr);
    events_.Record(obj, "Warning", "BridgeConflict", msg);
    if (!s.ok()) return s;
    return runtime::Result::After(opts_.resync);
  }
  bool first = !brought_up_.count(key);
  auto steps = PlanNetwork(*want, *seen, first);
  Status s = Execute(*want, steps);
  if (!s.ok()) {
    std::string msg = "node " + opts_.node + ": " + s.message();
    runtime::WarnIfFailed(WriteStatus(obj, "Pending", "False", "HostError", msg, &*want), "status of network " + key);
    events_.Record(obj, "Warning", "HostError", msg);
    return s;
  }
  std::vector<std::string> repaired;
  for (const auto& st : steps) {
    if (st.repair) repaired.push_back(st.reason);
  }
  if (!repaired.empty()) {
    std::string msg = "repaired on node " + opts_.node + ": " + Join(repaired, "; ");
    events_.Record(obj, "Warning", "Repaired", msg);
    spdlog::warn("network {}: {}", key, msg);
  }
  brought_up_.insert(key);
  std::string msg = "bridge " + want->bridge + (want->gateway_cidr.empty() ? "" : " with " + want->gateway_cidr) +
                    (want->dnsmasq ? ", dnsmasq serving " + std::to_string(table->size()) + " address(es)" : "");
  if (want->overlay) {
    msg += ", vxlan " + want->vxlan.link + " vni " + std::to_string(want->vxlan.vni) + " mtu " +
           std::to_string(want->vxlan.mtu) + " to " + std::to_string(want->vxlan.peers.size()) + " peer(s)";
  } else if (overlay->has_value() && cfg->mode != "bridged") {
    msg += ", no VNI yet: this node only";
  }
  s = WriteStatus(obj, "Ready", "True", "Up", msg, &*want);
  if (!s.ok()) return s;
  return runtime::Result::After(opts_.resync);
}

StatusOr<std::string> NetworkReconciler::RenderNodeRuleset() {
  FirewallInput in;
  // Networks, and each namespace's address book: (namespace, network) -> allocations.
  std::map<std::pair<std::string, std::string>, AllocationTable> tables;
  std::map<std::pair<std::string, std::string>, NetworkConfig> configs;
  for (const auto& obj : networks_->List()) {
    auto cfg = ParseNetwork(obj);
    if (!cfg.ok()) continue;  // reported on the Network by its own reconcile
    NetworkFirewall nf;
    nf.key = cfg->Key();
    nf.bridge = BridgeName(cfg->ns, cfg->name);
    nf.cidr = cfg->cidr;
    nf.gateway = cfg->gateway;
    nf.mode = cfg->mode;
    if (!opts_.underlay_interface.empty() && JoinsOverlay(*cfg, VniOf(obj))) {
      nf.overlay = VxlanName(nf.bridge);
    }
    in.networks.push_back(nf);
    auto t = AllocationsFromJson(StatusAllocations(obj));
    if (t.ok()) tables[{cfg->ns, cfg->name}] = std::move(*t);
    configs[{cfg->ns, cfg->name}] = *cfg;
  }
  // Security groups by namespace, and their members' addresses.
  std::map<std::string, std::map<std::string, json>> groups;  // ns -> name -> object
  for (const auto& g : groups_->List()) groups[MetaString(g, "namespace")][MetaString(g, "name")] = g;
  std::map<std::string, std::map<std::string, std::vector<uint32_t>>> members;  // ns -> group -> ips
  std::vector<json> instances = instances_->List();
  for (const auto& inst : instances) {
    std::string ns = MetaString(inst, "namespace");
    std::string uid = MetaString(inst, "uid");
    for (const auto& g : GroupsOf(inst)) {
      for (const auto& [i, net] : NicsOf(inst)) {
        auto t = tables.find({ns, net});
        if (t == tables.end()) continue;
        uint32_t ip = Lookup(t->second, uid, i);
        if (ip) members[ns][g].push_back(ip);
      }
    }
  }
  const std::set<std::string> arriving = Arriving();
  for (const auto& inst : instances) {
    if (!Local(inst, arriving)) continue;  // bound here, or arriving by live migration
    std::string ns = MetaString(inst, "namespace");
    std::string uid = MetaString(inst, "uid");
    auto rules = ResolveNicRules(GroupsOf(inst), groups[ns], members[ns]);
    if (!rules.ok()) {
      // A malformed group must not open anything: the NIC is filtered with no rules (all ingress dropped).
      spdlog::warn("network: instance {}/{}: {}", ns, MetaString(inst, "name"), rules.status().message());
      NicRules closed;
      closed.filtered = true;
      closed.restrict_egress = true;
      rules = closed;
    }
    for (const auto& [i, net] : NicsOf(inst)) {
      auto t = tables.find({ns, net});
      if (t == tables.end()) continue;
      uint32_t ip = Lookup(t->second, uid, i);
      if (!ip) continue;  // no address yet: nothing to match on
      const NetworkConfig& cfg = configs[{ns, net}];
      NicFirewall nic;
      nic.owner = ns + "/" + MetaString(inst, "name") + "#" + std::to_string(i);
      nic.tap = TapName(uid, i);
      nic.bridge = BridgeName(ns, net);
      nic.ip = ip;
      nic.mac = t->second.at(ip).mac;
      nic.gateway = cfg.gateway;
      nic.rules = *rules;
      if (nic.mac.empty()) continue;
      in.nics.push_back(std::move(nic));
    }
  }
  in.floating = LocalFloating().rules;
  return RenderRuleset(in);
}

NetworkReconciler::Floating NetworkReconciler::LocalFloating() {
  Floating out;
  if (!addresses_ || !pools_) return out;
  std::map<std::string, std::pair<Ipv4Net, std::string>> pools;  // name -> (cidr, interface)
  for (const auto& p : pools_->List()) {
    if (!p.contains("spec") || !p["spec"].is_object()) continue;
    auto cidr = ParseCidr(p["spec"].value("cidr", ""));
    std::string ifname = p["spec"].value("interface", "");
    if (!cidr.ok() || !host::ValidateIfName(ifname, "spec.interface").ok()) continue;
    pools[MetaString(p, "name")] = {*cidr, ifname};
    out.pools[ifname].push_back(*cidr);
  }
  for (const auto& a : addresses_->List()) {
    if (!a.contains("spec") || !a["spec"].is_object() || !a.contains("status") || !a["status"].is_object()) continue;
    std::string ns = MetaString(a, "namespace");
    std::string inst_name = a["spec"].value("instance", "");
    auto pub = ParseIpv4(a["status"].value("ip", ""));  // the pool's record, written by the address reconciler
    auto pool = pools.find(a["spec"].value("pool", ""));
    if (inst_name.empty() || !pub.ok() || pool == pools.end() || !pool->second.first.Contains(*pub)) continue;
    if (!MetaString(a, "deletionTimestamp").empty()) continue;
    json inst = instances_->Get(ns + "/" + inst_name);
    if (inst.is_null() || NodeOf(inst) != opts_.node) continue;  // another node's lane
    auto nics = NicsOf(inst);
    if (nics.empty() || nics[0].first != 0) continue;
    json net = networks_->Get(ns + "/" + nics[0].second);
    if (net.is_null()) continue;
    auto cfg = ParseNetwork(net);
    auto t = AllocationsFromJson(StatusAllocations(net));
    if (!cfg.ok() || !t.ok()) continue;
    uint32_t priv = Lookup(*t, MetaString(inst, "uid"), 0);
    if (!priv) continue;
    FloatingFirewall f;
    f.owner = ns + "/" + MetaString(a, "name");
    f.public_ip = *pub;
    f.private_ip = priv;
    f.bridge = BridgeName(cfg->ns, cfg->name);
    f.network = cfg->cidr;
    out.rules.push_back(f);
    out.want[pool->second.second].insert(FormatIpv4(*pub) + "/32");
  }
  return out;
}

Status NetworkReconciler::SyncFloatingAddresses(const Floating& f) {
  std::map<std::string, host::LinkState> seen;
  std::vector<Ipv4Net> all;
  for (const auto& [ifname, cidrs] : f.pools) {
    all.insert(all.end(), cidrs.begin(), cidrs.end());
    auto l = netdev_->Link(ifname);
    if (!l.ok()) return l.status();
    seen[ifname] = *l;
    if (!l->exists && f.want.count(ifname)) {
      spdlog::warn("network: node {} has no interface {} for floating addresses", opts_.node, ifname);
    }
  }
  Status first;
  for (const auto& s : PlanFloatingAddresses(f.want, seen, all)) {
    Status st = s.kind == StepKind::kAddAddress ? netdev_->AddAddress(s.target, s.arg)
                                                : netdev_->DeleteAddress(s.target, s.arg);
    if (!st.ok()) {
      spdlog::warn("network: {} {} on {}: {}", StepKindName(s.kind), s.arg, s.target, st.message());
      if (first.ok()) first = st;
    } else {
      spdlog::info("network: {} on node {}: {}", StepKindName(s.kind), opts_.node, s.reason);
    }
  }
  return first;
}

StatusOr<runtime::Result> NetworkReconciler::SyncFirewall() {
  if (!runtime::AllSynced(Reads())) return runtime::Result::After(std::chrono::milliseconds(500));
  auto ruleset = RenderNodeRuleset();
  if (!ruleset.ok()) return ruleset.status();
  std::lock_guard lock(host_mu_);
  bool want_tables = ruleset->find("table inet stratus {") != std::string::npos;
  if (want_tables) {
    Status s = netdev_->EnableIpForward();
    if (!s.ok()) spdlog::warn("network: cannot enable ip_forward: {}", s.message());
    s = netdev_->EnableBridgeNetfilter();
    if (!s.ok()) spdlog::warn("network: cannot enable bridge-nf-call-iptables: {}", s.message());
  }
  bool drifted = false;
  if (want_tables && *ruleset == applied_ruleset_) {
    auto cur = netdev_->ListNftTable("inet", kNftTable);
    drifted = cur.ok() && cur->empty();  // someone flushed the ruleset
  }
  if (*ruleset != applied_ruleset_ || drifted) {
    Status s = netdev_->ApplyNftables(*ruleset);
    if (!s.ok()) return s;
    if (drifted) spdlog::warn("network: nftables table inet {} was missing on node {}: restored", kNftTable, opts_.node);
    applied_ruleset_ = *ruleset;
  }
  // After the ruleset: an address answered on the interface is DNATed from its first packet.
  Status fs = SyncFloatingAddresses(LocalFloating());
  if (!fs.ok()) return fs;
  // Bridges of Networks that no longer exist (deleted while this agent was down, or torn down elsewhere).
  std::set<std::string> desired;
  for (const auto& obj : networks_->List()) {
    desired.insert(BridgeName(MetaString(obj, "namespace"), MetaString(obj, "name")));
  }
  auto bridges = netdev_->ListBridges(kBridgePrefix);
  if (bridges.ok()) {
    for (const auto& b : OrphanBridges(*bridges, desired)) {
      auto l = netdev_->Link(b);
      if (l.ok() && Foreign(*l)) continue;  // another Stratus' (Teardown would say so at every sweep)
      Status s = Teardown(b, "");
      if (!s.ok()) spdlog::warn("network: cannot remove orphan bridge {}: {}", b, s.message());
      else spdlog::info("network: removed orphan bridge {} on node {}", b, opts_.node);
    }
  }
  return runtime::Result::After(opts_.resync);
}

std::vector<runtime::WatchSpec> NetworkReconciler::Watches() {
  std::vector<runtime::WatchSpec> w = {{networks_, NetworkKeys}, {instances_, InstanceKeys}, {groups_, SecurityGroupKeys}};
  // Floating addresses live in the node's ruleset and on the pools' interfaces: any change wakes the ruleset.
  if (addresses_) w.push_back({addresses_, SecurityGroupKeys});
  if (pools_) w.push_back({pools_, SecurityGroupKeys});
  // A migration arriving here brings a NIC to filter before its instance is bound here.
  if (migrations_) w.push_back({migrations_, SecurityGroupKeys});
  // A node's underlay address appearing, changing or going changes every overlay's flood list.
  if (nodes_) {
    w.push_back({nodes_, [this](const std::string&, const json&) {
                   std::vector<std::string> keys;
                   for (const auto& n : networks_->List()) {
                     keys.push_back(MetaString(n, "namespace") + "/" + MetaString(n, "name"));
                   }
                   return keys;
                 }});
  }
  return w;
}

}  // namespace stratus::network
