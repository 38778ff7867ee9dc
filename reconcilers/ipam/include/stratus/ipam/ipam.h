// The cluster-wide IPAM reconciler: for each Network, the table of addresses (status.allocations) is the single
// record of who holds which address. Every Instance NIC on the network gets one (a requested ip when valid and
// free, else a deterministic choice), kept for the life of the instance, and freed only once the instance is
// gone (so an address is never handed out twice). The table is written with optimistic concurrency, so two
// servers could never both give out one address. Refusals land on the Instance as its condition
// AddressesAllocated=False (reason AddressRefused), which IPAM alone writes; the node's instance reconciler, sole
// writer of NetworkReady, repeats it there.
#pragma once

#include <map>
#include <mutex>
#include <set>

#include "stratus/core/api_client.h"
#include "stratus/network/ipam.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::ipam {

// The Instance condition IPAM owns (one writer per status field).
inline constexpr const char* kCondition = "AddressesAllocated";

// What one pass decided for a Network (pure; unit-tested).
struct Plan {
  network::AllocationTable table;  // the table after the pass
  bool changed = false;
  // instance key ("ns/name") -> refusal messages (empty vector: every NIC on this network has an address)
  std::map<std::string, std::vector<std::string>> refused;
  std::map<std::string, int> asked;  // instance key -> NICs on this network
};
// Allocates for every live instance NIC on `net`, keeps what holders still ask for, and frees addresses of
// instances that no longer exist (`instances`: every Instance in the network's namespace). NICs of a terminating
// instance keep their address until the instance is gone.
Plan PlanAllocations(const network::NetworkConfig& net, network::AllocationTable table, const std::vector<json>& instances);

// The VXLAN network identifier of a Network (status.vni, 1..16777215), which IPAM also records: the one it has
// when no older network holds it too, else the first free one from a start that follows the network's uid
// (`networks`: every Network, each with metadata and status; `reserved`: VNIs this process handed out that the
// cache may not show yet). Two networks never keep one VNI: the younger (creationTimestamp, then uid) moves.
uint32_t ChooseVni(const json& network, const std::vector<json>& networks, const std::set<uint32_t>& reserved = {});

class IpamReconciler : public runtime::Reconciler {
 public:
  IpamReconciler(ApiClient* client, runtime::Informer* networks, runtime::Informer* instances);
  std::string Name() const override { return "ipam"; }
  std::vector<const runtime::Informer*> Reads() const override { return {networks_, instances_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;
  // Instance event -> keys of the networks it names (and named before, through the allocation tables).
  std::vector<std::string> NetworksOf(const json& instance) const;

 private:
  Status ReportOnInstance(const std::string& key, const std::string& network, const std::vector<std::string>& refused);

  ApiClient* client_;
  runtime::Informer* networks_;
  runtime::Informer* instances_;
  runtime::EventRecorder events_;
  std::mutex vni_mu_;
  std::map<std::string, uint32_t> vni_given_;  // network uid -> VNI this process wrote (the cache may lag)
};

}  // namespace stratus::ipam
