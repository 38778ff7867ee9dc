#include "fake_hypervisor.h"

#include <algorithm>

namespace stratus::fakes {
using host::DomainState;

void FakeHypervisor::FailNext(const std::string& op, Status s) {
  std::lock_guard l(mu_);
  fail_next_[op] = std::move(s);
}

void FakeHypervisor::SetGuestCooperates(bool yes) {
  std::lock_guard l(mu_);
  cooperates_ = yes;
}

void FakeHypervisor::Put(const std::string& name, Domain d) {
  std::lock_guard l(mu_);
  d.spec.name = name;
  domains_[name] = std::move(d);
}

void FakeHypervisor::SetState(const std::string& name, DomainState s) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it != domains_.end()) it->second.state = s;
}

void FakeHypervisor::Remove(const std::string& name) {
  std::lock_guard l(mu_);
  domains_.erase(name);
}

bool FakeHypervisor::Has(const std::string& name) const {
  std::lock_guard l(mu_);
  return domains_.count(name) > 0;
}

FakeHypervisor::Domain FakeHypervisor::Get(const std::string& name) const {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) {
    Domain d;
    d.state = DomainState::kNotFound;
    return d;
  }
  return it->second;
}

std::vector<std::string> FakeHypervisor::TakeCalls() {
  std::lock_guard l(mu_);
  return std::exchange(calls_, {});
}

Status FakeHypervisor::Enter(const std::string& op, const std::string& name) {
  auto it = fail_next_.find(op);
  if (it != fail_next_.end()) {
    Status s = it->second;
    fail_next_.erase(it);
    return s;
  }
  calls_.push_back(op + " " + name);
  return Status::Ok();
}

StatusOr<host::HostCapacity> FakeHypervisor::Capacity() {
  host::HostCapacity c;
  c.vcpus = 8;
  c.memory_mib = 16384;
  c.virt_type = "test";
  c.hostname = "fake";
  return c;
}

std::string FakeHypervisor::RenderDomainXml(const host::DomainSpec& spec) const {
  return "<domain><name>" + spec.name + "</name></domain>";
}

Status FakeHypervisor::Define(const host::DomainSpec& spec) {
  std::lock_guard l(mu_);
  if (Status s = Enter("Define", spec.name); !s.ok()) return s;
  Domain& d = domains_[spec.name];  // a new one starts shut off
  d.spec = spec;
  d.instance_uid = spec.instance_uid;
  return Status::Ok();
}

StatusOr<host::DomainInfo> FakeHypervisor::Lookup(const std::string& name) {
  std::lock_guard l(mu_);
  if (auto it = fail_next_.find("Lookup"); it != fail_next_.end()) {
    Status s = it->second;
    fail_next_.erase(it);
    return s;
  }
  host::DomainInfo i;
  i.name = name;
  auto it = domains_.find(name);
  if (it == domains_.end()) return i;  // kNotFound
  i.uuid = it->second.spec.uuid;
  i.instance_uid = it->second.instance_uid;
  i.owner = it->second.spec.owner;
  i.state = it->second.state;
  i.persistent = true;
  i.managed_save = it->second.managed_save;
  if (Running(it->second)) {
    i.vcpus = it->second.live_vcpus;
    i.memory_mib = it->second.live_memory_mib;
    i.max_vcpus = it->second.live_max_vcpus;
  }
  return i;
}

StatusOr<std::vector<host::DomainInfo>> FakeHypervisor::List() {
  std::vector<std::string> names;
  {
    std::lock_guard l(mu_);
    for (const auto& [n, d] : domains_) names.push_back(n);
  }
  std::vector<host::DomainInfo> out;
  for (const auto& n : names) {
    auto i = Lookup(n);
    if (i.ok() && i->state != DomainState::kNotFound) out.push_back(*i);
  }
  return out;
}

Status FakeHypervisor::Start(const std::string& name) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (Running(it->second)) return Status(Code::kConflict, "domain is already running");
  if (Status s = Enter("Start", name); !s.ok()) return s;
  it->second.state = DomainState::kRunning;
  if (it->second.managed_save) {  // restored as saved
    it->second.managed_save = false;
    return Status::Ok();
  }
  it->second.live_disks = it->second.spec.disks;
  it->second.live_nics = it->second.spec.nics;
  it->second.live_vcpus = it->second.spec.vcpus;
  it->second.live_max_vcpus = std::max(it->second.spec.vcpus, it->second.spec.max_vcpus);
  it->second.live_memory_mib = it->second.spec.memory_mib;
  return Status::Ok();
}

Status FakeHypervisor::OnRunning(const std::string& name, const std::function<Status(Domain&)>& f) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (!Running(it->second)) return Status(Code::kConflict, "domain is not running");
  return f(it->second);
}

Status FakeHypervisor::SetVcpus(const std::string& name, int vcpus) {
  return OnRunning(name, [&](Domain& d) -> Status {
    if (vcpus > d.live_max_vcpus) return InvalidError("more vCPUs than the domain's maximum");
    if (Status s = Enter("SetVcpus", name); !s.ok()) return s;
    d.live_vcpus = vcpus;
    return Status::Ok();
  });
}

Status FakeHypervisor::Pause(const std::string& name) {
  return OnRunning(name, [&](Domain& d) -> Status {
    if (Status s = Enter("Pause", name); !s.ok()) return s;
    d.state = DomainState::kPaused;
    return Status::Ok();
  });
}

Status FakeHypervisor::Resume(const std::string& name) {
  return OnRunning(name, [&](Domain& d) -> Status {
    if (Status s = Enter("Resume", name); !s.ok()) return s;
    d.state = DomainState::kRunning;
    return Status::Ok();
  });
}

Status FakeHypervisor::ManagedSave(const std::string& name) {
  return OnRunning(name, [&](Domain& d) -> Status {
    if (Status s = Enter("ManagedSave", name); !s.ok()) return s;
    d.state = DomainState::kShutoff;
    d.managed_save = true;
    return Status::Ok();
  });
}

Status FakeHypervisor::Shutdown(const std::string& name) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (Status s = Enter("Shutdown", name); !s.ok()) return s;
  if (cooperates_) it->second.state = DomainState::kShutoff;
  return Status::Ok();
}

Status FakeHypervisor::Destroy(const std::string& name) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (Status s = Enter("Destroy", name); !s.ok()) return s;
  it->second.state = DomainState::kShutoff;
  return Status::Ok();
}

Status FakeHypervisor::Reboot(const std::string& name) {
  return OnRunning(name, [&](Domain&) -> Status {
    return Enter("Reboot", name);
  });
}

Status FakeHypervisor::Undefine(const std::string& name) {
  std::lock_guard l(mu_);
  if (Status s = Enter("Undefine", name); !s.ok()) return s;
  auto it = domains_.find(name);
  if (it != domains_.end() && Running(it->second)) return Status(Code::kConflict, "domain is running");
  domains_.erase(name);
  return Status::Ok();
}

Status FakeHypervisor::Reset(const std::string& name) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end() || !Running(it->second)) return Status(Code::kConflict, "domain is not running");
  return Enter("Reset", name);
}

Status FakeHypervisor::AttachDisk(const std::string& name, const host::DomainSpec::Disk& disk) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  Domain& d = it->second;
  auto same_target = [&](const host::DomainSpec::Disk& x) { return x.target == disk.target; };
  for (auto* list : {&d.live_disks, &d.spec.disks}) {
    auto f = std::find_if(list->begin(), list->end(), same_target);
    if (f != list->end() && f->path != disk.path) return Status(Code::kConflict, "target " + disk.target + " is in use");
  }
  if (Status s = Enter("AttachDisk", name + " " + disk.target); !s.ok()) return s;
  if (Running(d) && std::none_of(d.live_disks.begin(), d.live_disks.end(), same_target)) d.live_disks.push_back(disk);
  if (std::none_of(d.spec.disks.begin(), d.spec.disks.end(), same_target)) d.spec.disks.push_back(disk);
  return Status::Ok();
}

Status FakeHypervisor::DetachDisk(const std::string& name, const std::string& target) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (Status s = Enter("DetachDisk", name + " " + target); !s.ok()) return s;
  Domain& d = it->second;
  auto at = [&](const host::DomainSpec::Disk& x) { return x.target == target; };
  d.spec.disks.erase(std::remove_if(d.spec.disks.begin(), d.spec.disks.end(), at), d.spec.disks.end());
  if (cooperates_) d.live_disks.erase(std::remove_if(d.live_disks.begin(), d.live_disks.end(), at), d.live_disks.end());
  return Status::Ok();
}

Status FakeHypervisor::BlockResize(const std::string& name, const std::string& target, uint64_t bytes) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end() || !Running(it->second)) return Status(Code::kConflict, "domain is not running");
  return Enter("BlockResize", name + " " + target + " " + std::to_string(bytes));
}

Status FakeHypervisor::AttachNic(const std::string& name, const host::DomainSpec::Nic& nic) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (Status s = Enter("AttachNic", name + " " + nic.mac); !s.ok()) return s;
  Domain& d = it->second;
  auto same = [&](const host::DomainSpec::Nic& x) { return x.mac == nic.mac; };
  if (Running(d) && std::none_of(d.live_nics.begin(), d.live_nics.end(), same)) d.live_nics.push_back(nic);
  if (std::none_of(d.spec.nics.begin(), d.spec.nics.end(), same)) d.spec.nics.push_back(nic);
  return Status::Ok();
}

Status FakeHypervisor::DetachNic(const std::string& name, const std::string& mac) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (Status s = Enter("DetachNic", name + " " + mac); !s.ok()) return s;
  Domain& d = it->second;
  auto same = [&](const host::DomainSpec::Nic& x) { return x.mac == mac; };
  d.spec.nics.erase(std::remove_if(d.spec.nics.begin(), d.spec.nics.end(), same), d.spec.nics.end());
  if (cooperates_) d.live_nics.erase(std::remove_if(d.live_nics.begin(), d.live_nics.end(), same), d.live_nics.end());
  return Status::Ok();
}

StatusOr<std::vector<host::DomainSpec::Nic>> FakeHypervisor::Nics(const std::string& name, bool persistent) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  return persistent || !Running(it->second) ? it->second.spec.nics : it->second.live_nics;
}

StatusOr<std::vector<host::DomainSpec::Disk>> FakeHypervisor::Disks(const std::string& name, bool persistent) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  return persistent || !Running(it->second) ? it->second.spec.disks : it->second.live_disks;
}

StatusOr<std::string> FakeHypervisor::DomainXml(const std::string& name, bool) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  return RenderDomainXml(it->second.spec);
}

StatusOr<std::string> FakeHypervisor::MigratableXml(const std::string& name) { return DomainXml(name, false); }

Status FakeHypervisor::Migrate(const std::string& name, const host::MigrateRequest& req) {
  std::lock_guard l(mu_);
  auto it = domains_.find(name);
  if (it == domains_.end()) return NotFound("domain " + name);
  if (!Running(it->second)) return Status(Code::kConflict, "domain " + name + " is not running");
  if (Status s = Enter("Migrate", name); !s.ok()) return s;
  migrations.push_back(req);
  domains_.erase(it);
  return Status::Ok();
}

StatusOr<host::MigrationProgress> FakeHypervisor::Migration(const std::string&) { return host::MigrationProgress{}; }

}  // namespace stratus::fakes
