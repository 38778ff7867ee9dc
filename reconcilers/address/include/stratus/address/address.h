// The cluster-wide address reconciler (nova-network's floating IP allocation, in the server). For each AddressPool
// the table status.allocations (address -> Address namespace/name and uid) is the single record of who holds which
// address: it is written first, with optimistic concurrency (409 on a stale cache -> retry), and only then is the
// Address told its ip, so two Addresses never hold one address even across restarts or two servers. An Address
// keeps its ip for its whole life (a fixed spec.ip when inside the pool and free, else a deterministic choice from
// its uid) and the ip is freed once the Address is gone from the cache (no finalizer needed: the record is the
// pool's, and it is only planned from synced caches).
//
// Status fields and their single writer — this reconciler:
//   AddressPool: status.allocations, allocated, free, observedGeneration, condition Ready.
//   Address:     status.ip, pool, instance, privateIp, network, node, phase, observedGeneration, conditions
//                Allocated and Ready.
// The node that runs the associated instance (its network reconciler) makes the address reachable from
// spec.instance and status.ip; it writes no status of the Address.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/network/ipam.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::address {

// The label that marks the pool EC2's AllocateAddress takes addresses from.
inline constexpr const char* kDefaultPoolLabel = "stratus.io/default-pool";

// The validated parts of an AddressPool.
struct PoolConfig {
  std::string name;
  network::Ipv4Net cidr;
  std::set<uint32_t> exclude;
  std::string interface;
  // Addresses handed out: every address of the cidr (a /31 or /32 too) less the excluded ones.
  uint32_t Size() const;
  bool Usable(uint32_t ip) const;
};
// Reads an AddressPool object. kInvalid naming the field (spec.cidr, spec.exclude[i], spec.interface).
StatusOr<PoolConfig> ParsePool(const json& pool);

// Who holds an address of a pool.
struct Holder {
  std::string address;  // "namespace/name"
  std::string uid;
  bool operator==(const Holder& o) const { return address == o.address && uid == o.uid; }
};
using PoolTable = std::map<uint32_t, Holder>;
json PoolTableToJson(const PoolTable& t);
// Null/absent -> empty. kInvalid naming the entry when malformed (never guess over a damaged record).
StatusOr<PoolTable> PoolTableFromJson(const json& j);

// The outcome for one Address.
struct Outcome {
  uint32_t ip = 0;          // 0: none (see error)
  std::string error;        // why not, starting with the field path ("spec.ip: 203.0.113.9 is held by ...")
  std::string reason;       // AddressRefused | PoolExhausted
};
struct PoolPlan {
  PoolTable table;
  bool changed = false;
  std::map<std::string, Outcome> outcomes;  // Address "ns/name" -> outcome (every address naming the pool)
};
// Pure: allocates for every Address in `addresses` (all Addresses naming the pool, any namespace). Holders keep
// their address; newcomers are served oldest first, a fixed spec.ip when usable and free, else hash(uid) into the
// pool and linear probing to the next free address. Terminating Addresses keep what they hold and get nothing new.
// Entries whose uid is no longer among `addresses` are freed first (a re-created Address is a new holder).
PoolPlan PlanPool(const PoolConfig& pool, PoolTable table, const std::vector<json>& addresses);

// What the cluster shows about an Address's association (gathered by the reconciler from its caches).
struct Association {
  bool instance_found = false;
  std::string node;        // the instance's spec.nodeName
  std::string network;     // the network of its first NIC
  uint32_t private_ip = 0; // IPAM's address of that NIC (0: none yet)
};
// Pure: the Address's status after this pass (phase, ip, association fields, Allocated and Ready conditions),
// from the address object, its outcome and, when spec.instance is set, the association.
json DecideAddressStatus(const json& address, const Outcome& outcome, const std::string& pool,
                         const Association& assoc);

class AddressReconciler : public runtime::Reconciler {
 public:
  AddressReconciler(ApiClient* client, runtime::Informer* pools, runtime::Informer* addresses,
                    runtime::Informer* instances, runtime::Informer* networks);
  std::string Name() const override { return "address"; }
  std::vector<const runtime::Informer*> Reads() const override { return {pools_, addresses_, instances_, networks_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  // Key: the pool name.
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  Association Associate(const json& address) const;
  Status WriteAddressStatus(const json& address, const json& status);

  ApiClient* client_;
  runtime::Informer* pools_;
  runtime::Informer* addresses_;
  runtime::Informer* instances_;
  runtime::Informer* networks_;
  runtime::EventRecorder events_;
};

}  // namespace stratus::address
