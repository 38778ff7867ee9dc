// An in-memory hypervisor for unit tests of the reconcilers: domains with a persistent definition and a live
// configuration, power states, hot-plug, and failures injected per operation. Thread-safe (controllers call
// it from their workers). Behaves like libvirt where the reconcilers rely on it: redefining changes only the
// persistent definition; a start makes the live configuration from it; hot-plug changes both.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "stratus/host/hypervisor.h"

namespace stratus::fakes {

class FakeHypervisor : public host::Hypervisor {
 public:
  struct Domain {
    host::DomainSpec spec;  // persistent definition
    host::DomainState state = host::DomainState::kShutoff;
    std::vector<host::DomainSpec::Disk> live_disks;  // while running
    std::vector<host::DomainSpec::Nic> live_nics;
    std::string instance_uid;  // <metadata>; a domain made by someone else may carry another or none
    bool managed_save = false;  // memory saved (ManagedSave); the next Start restores the saved configuration
    int live_vcpus = 0;         // the running configuration (from the definition at Start, or the save)
    int live_max_vcpus = 0;     // its hot-add ceiling
    uint64_t live_memory_mib = 0;
  };

  // --- test controls ---
  // The next call of `op` ("Define", "Start", "AttachDisk", ... as named by the method) fails with `s`.
  void FailNext(const std::string& op, Status s);
  // When false, an ACPI shutdown request is ignored (the guest hangs) and live unplugs never finish.
  void SetGuestCooperates(bool yes);
  // A domain made behind the reconciler's back (another cluster, an operator).
  void Put(const std::string& name, Domain d);
  void SetState(const std::string& name, host::DomainState s);  // e.g. the guest powered itself off
  void Remove(const std::string& name);                          // undefined behind our back
  bool Has(const std::string& name) const;
  Domain Get(const std::string& name) const;  // NotFound domains come back empty (state kNotFound)
  // Every call that changed something, as "Op name" lines, in order; cleared by TakeCalls.
  std::vector<std::string> TakeCalls();

  // --- host::Hypervisor ---
  StatusOr<host::HostCapacity> Capacity() override;
  std::string RenderDomainXml(const host::DomainSpec& spec) const override;
  Status Define(const host::DomainSpec& spec) override;
  StatusOr<host::DomainInfo> Lookup(const std::string& name) override;
  StatusOr<std::vector<host::DomainInfo>> List() override;
  Status Start(const std::string& name) override;
  Status Shutdown(const std::string& name) override;
  Status Destroy(const std::string& name) override;
  Status Reboot(const std::string& name) override;
  Status Undefine(const std::string& name) override;
  Status Reset(const std::string& name) override;
  Status Pause(const std::string& name) override;
  Status SetVcpus(const std::string& name, int vcpus) override;
  Status Resume(const std::string& name) override;
  Status ManagedSave(const std::string& name) override;
  Status AttachDisk(const std::string& name, const host::DomainSpec::Disk& disk) override;
  Status DetachDisk(const std::string& name, const std::string& target) override;
  Status BlockResize(const std::string& name, const std::string& target, uint64_t bytes) override;
  Status AttachNic(const std::string& name, const host::DomainSpec::Nic& nic) override;
  Status DetachNic(const std::string& name, const std::string& mac) override;
  StatusOr<std::vector<host::DomainSpec::Nic>> Nics(const std::string& name, bool persistent) override;
  StatusOr<std::vector<host::DomainSpec::Disk>> Disks(const std::string& name, bool persistent) override;
  StatusOr<std::string> DomainXml(const std::string& name, bool inactive) override;
  StatusOr<std::string> MigratableXml(const std::string& name) override;
  // Records the request; a success removes the domain here (it now runs on the destination).
  Status Migrate(const std::string& name, const host::MigrateRequest& req) override;
  StatusOr<host::MigrationProgress> Migration(const std::string& name) override;
  std::vector<host::MigrateRequest> migrations;  // every Migrate that succeeded, in order

 private:
  // Fails when `op` has an injected failure (consumed) and records the call otherwise.
  Status Enter(const std::string& op, const std::string& name);
  // Runs `f` on domain `name` under the lock when it runs (or is paused); NotFound / kConflict otherwise.
  Status OnRunning(const std::string& name, const std::function<Status(Domain&)>& f);
  static bool Running(const Domain& d) {
    return d.state == host::DomainState::kRunning || d.state == host::DomainState::kPaused;
  }

  mutable std::mutex mu_;
  std::map<std::string, Domain> domains_;
  std::map<std::string, Status> fail_next_;
  std::vector<std::string> calls_;
  bool cooperates_ = true;
};

}  // namespace stratus::fakes
