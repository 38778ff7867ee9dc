// The node's network reconciler (nova-network's job on each host): for every Network it keeps a Linux bridge
// with the gateway address, one dnsmasq serving the network's IPAM allocations, and the instance taps of this
// node attached; drift (a deleted bridge, a killed dnsmasq) is repaired; teardown happens behind the finalizer
// `stratus.io/network-teardown` once no Instance uses the network. A node-wide key keeps the nftables ruleset
// (security groups of this node's NICs, isolation, NAT) in line with Networks, Instances and SecurityGroups, and
// removes bridges of Networks that no longer exist.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/host/netdev.h"
#include "stratus/network/firewall.h"
#include "stratus/network/plan.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::network {

inline constexpr const char* kNetworkFinalizer = "stratus.io/network-teardown";

struct Options {
  std::string node;                           // this node's name (Instances with spec.nodeName == node are local)
  std::string state_dir = "/var/lib/stratus/agent/networks";  // dnsmasq files: <state_dir>/<bridge>/
  std::chrono::milliseconds resync{15000};    // drift check period for each network and the ruleset
  std::chrono::milliseconds in_use_retry{5000};
  DnsmasqOptions dnsmasq;                     // lease time, user dnsmasq drops privileges to
  // Network namespace (name under /run/netns) to act in, where libvirtd makes the instances' taps; "" = the
  // namespace of the thread that calls Reconcile. Each reconciling thread enters it once (host::EnterNetns).
  std::string netns;
  // The owner mark this agent puts on the bridges it makes (their ifalias), e.g. "stratus:<cluster uid>/<node>".
  // A bridge that carries another mark is another Stratus': never changed, torn down or swept as an orphan. An
  // unmarked one of ours (made before marks) is marked. "" = no marks (tests of one owner).
  std::string owner_mark;
  // The node's underlay device (e.g. "ul", in `netns`): with it, every nat or isolated Network joins a VXLAN
  // segment over it (VNI: the Network's status.vni) flooding to the underlay addresses the other Nodes report in
  // status.underlay, so one Network spans hosts. "" = single host: bridges only.
  std::string underlay_interface;
};

class NetworkReconciler : public runtime::Reconciler {
 public:
  // The key of the node-wide ruleset and orphan sweep (not a valid namespace/name).
  static constexpr const char* kFirewallKey = "~firewall";

  // `networks`, `instances` and `groups` are informers over all namespaces of networks, instances (all nodes:
  // peer groups and "in use" need them) and securitygroups. `netdev` acts in this process's network namespace.
  // `addresses` and `pools` (optional, all namespaces) bring floating addresses: for each Address whose
  // spec.instance runs on this node, DNAT/SNAT in the ruleset and the /32 on its pool's interface.
  NetworkReconciler(ApiClient* client, runtime::Informer* networks, runtime::Informer* instances,
                    runtime::Informer* groups, host::NetDev* netdev, Options opts,
                    runtime::Informer* addresses = nullptr, runtime::Informer* pools = nullptr,
                    runtime::Informer* nodes = nullptr, runtime::Informer* migrations = nullptr);
  std::string Name() const override { return "network"; }
  std::vector<const runtime::Informer*> Reads() const override {
    std::vector<const runtime::Informer*> r = {networks_, instances_, groups_};
    if (addresses_) r.push_back(addresses_);
    if (pools_) r.push_back(pools_);
    if (nodes_) r.push_back(nodes_);
    if (migrations_) r.push_back(migrations_);
    return r;
  }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

  // Controller::Watch mappings: a Network event wakes the network and the ruleset; an Instance event wakes the
  // networks it names (taps to attach, in-use checks) and the ruleset; a SecurityGroup event wakes the ruleset.
  static std::vector<std::string> NetworkKeys(const std::string& key, const json& network);
  static std::vector<std::string> InstanceKeys(const std::string& key, const json& instance);
  static std::vector<std::string> SecurityGroupKeys(const std::string& key, const json& group);

  // What this node brings to the overlay of `network` now (its underlay device, address and MTU, the network's
  // VNI, the other nodes' underlay addresses); null when there is no underlay. kUnavailable when the underlay
  // device is missing or has no IPv4 address (the network is then not brought up half-joined).
  StatusOr<std::optional<OverlayInput>> Overlay(const json& network);

  // The ruleset this node should have now (exposed for tests and `describe`).
  StatusOr<std::string> RenderNodeRuleset();

  // The floating addresses this node makes reachable now, and the /32s they need on the pools' interfaces
  // (interface -> "ip/32"); `pools` receives every pool's cidr by interface (what may be swept).
  struct Floating {
    std::vector<FloatingFirewall> rules;
    std::map<std::string, std::set<std::string>> want;
    std::map<std::string, std::vector<Ipv4Net>> pools;
  };
  Floating LocalFloating();

 private:
  StatusOr<runtime::Result> ReconcileNetwork(const std::string& key);
  StatusOr<runtime::Result> SyncFirewall();
  Status SyncFloatingAddresses(const Floating& f);
  Status Teardown(const std::string& bridge, const std::string& vlan_link);
  // True when `link` carries another Stratus' owner mark (see Options::owner_mark).
  bool Foreign(const host::LinkState& link) const {
    return !opts_.owner_mark.empty() && link.exists && !link.alias.empty() && link.alias != opts_.owner_mark;
  }
  Status Execute(const DesiredNetwork& want, const std::vector<Step>& steps);
  StatusOr<ObservedNetwork> Observe(const DesiredNetwork& want);
  std::vector<std::string> LocalTaps(const std::string& ns, const std::string& name);
  std::vector<std::string> Users(const std::string& ns, const std::string& name);
  Status WriteStatus(const json& obj, const std::string& phase, const std::string& ready, const std::string& reason,
                     const std::string& message, const DesiredNetwork* want);

  ApiClient* client_;
  runtime::Informer* networks_;
  runtime::Informer* instances_;
  runtime::Informer* groups_;
  runtime::Informer* addresses_ = nullptr;
  runtime::Informer* pools_ = nullptr;
  runtime::Informer* nodes_ = nullptr;  // peers' underlay addresses (with Options::underlay_interface)
  // Migrations: an instance arriving here by live migration has its NICs here (taps, security groups) before it
  // is bound here.
  runtime::Informer* migrations_ = nullptr;
  std::set<std::string> Arriving();  // "ns/name" of instances migrating here now
  bool Local(const json& inst, const std::set<std::string>& arriving) const;
  host::NetDev* netdev_;
  Options opts_;
  runtime::EventRecorder events_;
  std::mutex host_mu_;                  // one host mutation at a time
  std::set<std::string> brought_up_;    // networks this process has converged once (drift vs. first creation)
  std::string applied_ruleset_;         // last ruleset applied by this process
};

}  // namespace stratus::network
