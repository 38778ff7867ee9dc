// The Instance reconciler (node-local): for every Instance bound to this node, make a libvirt domain exist and
// be in the declared power state; repair drift; tear down behind a finalizer on delete; report status.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "stratus/core/api_client.h"
#include "stratus/host/hypervisor.h"
#include "stratus/host/seed_disk.h"
#include "stratus/host/storage.h"
#include "stratus/instance/decide.h"
#include "stratus/network/leases.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::instance {

inline constexpr const char* kFinalizer = "stratus.io/instance-teardown";

struct Options {
  std::string node;
  std::string data_dir;                       // per-instance files under data_dir/instances/
  std::string image_pool = "stratus-images";  // where images are cached
  std::string virt_type = "qemu";
  std::chrono::seconds shutdown_timeout{30};  // graceful shutdown, then force
  std::chrono::seconds resync{10};            // drift check period
  // The node's DHCP leases (not owned): when set, each address in status.addresses says whether the node's
  // dnsmasq has leased it to the NIC's MAC (`leased`), and an instance whose guest has not taken every address
  // yet is looked at again every `lease_poll`.
  network::Leases* leases = nullptr;
  std::chrono::milliseconds lease_poll{2000};
  // Writes each instance's NoCloud seed (meta-data, user-data with the KeyPair's key, network-config) and attaches
  // it as a cdrom (not owned). Null: no seed, as a node without xorriso.
  host::SeedDisks* seeds = nullptr;
  // vCPUs a domain may grow to while it runs (the node's CPUs): a resize that only adds vCPUs is applied live up
  // to this; 0 = none (every resize waits for a restart).
  int max_vcpus = 0;
  // This agent's owner mark (cluster and node), written into each domain's metadata; with it, domains of ours
  // whose instance left this node are fenced (kSweepKey). "" = no marks, no fence (tests of one owner).
  std::string owner;
};

// libvirt domain name of an Instance: "stratus_<namespace>_<name>" ('_' cannot occur in either part).
std::string DomainName(const std::string& ns, const std::string& name);
// Where the serial console of an Instance is written.
std::string ConsoleLogPath(const std::string& data_dir, const std::string& ns, const std::string& name);
// Where its NoCloud seed image is written (beside the console log).
std::string SeedPath(const std::string& data_dir, const std::string& ns, const std::string& name);
// The seed's device: a read-only IDE cdrom (the guest's /dev/sr0), so the virtio disks keep their names.
inline constexpr const char* kSeedTarget = "hdc";

// Builds the DomainSpec for `inst` given resolved inputs (pure; unit-tested).
struct Resolved {
  int vcpus = 1;
  int64_t memory_mib = 256;
  std::string kernel_path, initrd_path;
  bool root_disk = false;                   // disks[0] is the root volume (vda)
  std::vector<host::DomainSpec::Disk> disks;  // root first, then data volumes
  std::vector<host::DomainSpec::Nic> nics;    // spec.networks order
  json addresses = json::array();             // [{network, ip, mac, interface[, leased]}] of the NICs
  std::string seed_path;                      // the NoCloud seed, attached as cdrom kSeedTarget ("" = none)
};
host::DomainSpec BuildDomainSpec(const json& inst, const Resolved& r, const Options& opts);

class InstanceReconciler : public runtime::Reconciler {
 public:
  // `volumes` (every namespace) may be null: then instances with disks wait with a condition saying so.
  // `networks` (every namespace) null means this node runs without networking: NICs are left out and the
  // instance says so in condition NetworkReady.
  InstanceReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* images,
                     runtime::Informer* flavors, host::Hypervisor* hv, host::StoragePools* storage, Options opts,
                     runtime::Informer* volumes = nullptr, runtime::Informer* networks = nullptr,
                     runtime::Informer* migrations = nullptr);
  std::string Name() const override { return "instance"; }
  std::vector<const runtime::Informer*> Reads() const override {
    return {instances_, images_, flavors_, volumes_, networks_, migrations_};
  }
  std::vector<runtime::WatchSpec> Watches() override;
  // How often every instance on the node is looked at again even when nothing changed (domain drift).
  static constexpr std::chrono::milliseconds kDriftCheck{10000};
  // The key of the node-wide fence (DomainsToFence); not a valid namespace/name. Queued at start and after every
  // instance event, and again every kDriftCheck.
  static constexpr const char* kSweepKey = "~sweep";
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

  // A migration target's preparation: what `inst` (bound to another node, moving here) needs on this node before
  // its domain arrives — its NoCloud seed written, its console log directory made — decided exactly as if it were
  // placed here; returns the domain this node would define (its paths). kUnavailable saying why when this node
  // cannot take it yet (an image not cached here, ...), kAlreadyExists when a domain of that name is here already.
  StatusOr<host::DomainSpec> PrepareIncoming(const json& inst);

 private:
  // Everything Decide needs, read from the caches, the API (what the caches may not show yet), the hypervisor,
  // storage and the DHCP leases.
  StatusOr<Observed> Observe(const json& inst);
  // Carries out `d`: its actions in order, then the one status write and its events.
  StatusOr<runtime::Result> Act(const json& inst, Decision d);
  StatusOr<runtime::Result> Teardown(json inst, const std::string& key);
  StatusOr<ObservedDomain> ObserveDomain(const std::string& dom, bool details);
  StatusOr<runtime::Result> Fence();

  ApiClient* client_;
  runtime::Informer* instances_;
  runtime::Informer* images_;
  runtime::Informer* flavors_;
  runtime::Informer* volumes_;
  runtime::Informer* networks_;
  runtime::Informer* migrations_ = nullptr;  // a moving instance is left alone (source) and not fenced (target)
  host::Hypervisor* hv_;
  host::StoragePools* storage_;
  Options opts_;
  runtime::EventRecorder events_;
  // KeyPairs read by name for seeds (a node may not list or watch them); one found is kept for kKeyPairTtl, so
  // the drift check of many instances does not read one per instance every pass; a changed key reaches the seed
  // within it.
  StatusOr<json> KeyPair(const std::string& ns, const std::string& name);
  static constexpr std::chrono::seconds kKeyPairTtl{60};
  struct CachedKeyPair {
    StatusOr<json> value;
    std::chrono::steady_clock::time_point read;
  };
  std::mutex key_pairs_mu_;
  std::map<std::string, CachedKeyPair> key_pairs_;
};

}  // namespace stratus::instance
