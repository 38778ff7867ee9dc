// The narrow interface between node-local reconcilers and the hypervisor. LibvirtHypervisor implements it over
// the libvirt C API for any URI (qemu:///system for real guests, test:///default for tests and benchmarks).
#pragma once

#include <cstdint>
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::host {

// Everything needed to render a domain. Every string here may come from a user and is escaped by the XML
// library, never spliced into text.
struct DomainSpec {
  std::string name;             // libvirt domain name, e.g. "stratus-default-web-1"
  std::string uuid;             // libvirt UUID; empty = let libvirt choose
  std::string instance_uid;     // Stratus Instance metadata.uid, kept in <metadata>
  std::string instance_ref;     // "namespace/name", kept in <metadata>
  std::string owner;            // the cluster and node whose agent made it (OwnerMark), kept in <metadata>
  std::string virt_type = "qemu";  // qemu (TCG) | kvm | test
  std::string arch = "x86_64";
  std::string machine = "pc";      // libvirt's test driver accepts these too
  int vcpus = 1;
  uint64_t memory_mib = 256;
  int max_vcpus = 0;            // vCPUs that may be added while it runs (hot-add ceiling); 0 = vcpus
  std::string kernel_path;      // direct kernel boot when set
  std::string initrd_path;
  std::string cmdline;
  struct Disk {
    std::string path;           // file or block device
    std::string format = "qcow2";  // qcow2 | raw
    std::string target = "vda";    // vda, vdb, ...
    bool read_only = false;
    bool block = false;         // a block device (logical pool) instead of a file
    std::string device = "disk";   // disk | cdrom (e.g. a NoCloud seed ISO)
    std::string bus;               // empty: virtio for disks, ide for cdroms (machine pc)
    std::string serial;            // optional; the guest sees /dev/disk/by-id/virtio-<serial>
  };
  std::vector<Disk> disks;
  struct Nic {
    std::string mac;
    std::string bridge;         // host bridge to join; empty = no NIC backend (user networking not used)
    std::string tap;            // target dev name; empty = libvirt picks
  };
  std::vector<Nic> nics;
  std::string serial_log_path;  // serial console written to this file
};

enum class DomainState { kNotFound, kRunning, kPaused, kShutoff, kShuttingDown, kCrashed, kOther };

struct DomainInfo {
  std::string name;
  std::string uuid;
  std::string instance_uid;    // from <metadata>; empty when the domain is not Stratus'
  std::string owner;           // from <metadata>: the agent (cluster and node) that made it; "" for older ones
  DomainState state = DomainState::kNotFound;
  bool persistent = false;
  bool managed_save = false;   // a managed save image exists: the next start restores it
  int vcpus = 0;               // while active: the running configuration's vCPUs and memory
  uint64_t memory_mib = 0;
  int max_vcpus = 0;           // while active: how many vCPUs it can run (SetVcpus' ceiling)
};

// A live migration of one domain to another host, peer to peer: this host's libvirtd connects to the destination's.
struct MigrateRequest {
  std::string dest_uri;        // the destination libvirtd, as this host's libvirtd reaches it
  std::string migrate_uri;     // where the destination QEMU takes the memory stream ("tcp://10.250.0.12"); "" = default
  std::string listen_address;  // the address the destination QEMU listens on; "" = libvirt's default
  std::string dest_xml;        // the domain as the destination defines it (its own file paths); "" = unchanged
  bool copy_storage = false;   // copy its writable local disks too (non-shared storage)
};

// Libvirt's statistics of the domain's migration job, while one runs.
struct MigrationProgress {
  bool active = false;           // a migration job is running
  uint64_t data_total = 0;       // bytes (memory and disks) to send, as libvirt estimates it now
  uint64_t data_processed = 0;
  uint64_t data_remaining = 0;
  uint64_t memory_dirty_rate = 0;  // pages/s dirtied by the guest
  int64_t elapsed_ms = 0;
  int percent() const {
    if (data_total == 0) return 0;
    return static_cast<int>(100 - (100 * std::min(data_remaining, data_total)) / data_total);
  }
};

struct HostCapacity {
  int vcpus = 0;
  uint64_t memory_mib = 0;
  std::string virt_type;       // the best working type: kvm when it really works, else qemu (test for test://)
  std::string hostname;
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  virtual StatusOr<HostCapacity> Capacity() = 0;
  // Renders the domain XML for `spec` (exposed for tests and for `define`).
  virtual std::string RenderDomainXml(const DomainSpec& spec) const = 0;
  // Defines (or redefines) a persistent domain from `spec`.
  virtual Status Define(const DomainSpec& spec) = 0;
  virtual StatusOr<DomainInfo> Lookup(const std::string& name) = 0;
  virtual StatusOr<std::vector<DomainInfo>> List() = 0;
  virtual Status Start(const std::string& name) = 0;
  // ACPI shutdown request; returns immediately.
  virtual Status Shutdown(const std::string& name) = 0;
  // Hard stop (virDomainDestroy). Ok when already stopped.
  virtual Status Destroy(const std::string& name) = 0;
  virtual Status Reboot(const std::string& name) = 0;
  // Undefines (removing managed save/NVRAM); Ok when absent.
  virtual Status Undefine(const std::string& name) = 0;

  // Pauses the vCPUs of a running domain (virDomainSuspend; nova's pause); Ok when paused already. kConflict when
  // it is not running.
  virtual Status Pause(const std::string& name) = 0;
  // Lets a paused domain run again (virDomainResume); Ok when it runs already. kConflict when it is not active.
  virtual Status Resume(const std::string& name) = 0;
  // Sets the vCPUs of a running domain (virDomainSetVcpusFlags, live): hot-adds up to its max_vcpus. kConflict
  // when it is not running, kInvalid above its ceiling.
  virtual Status SetVcpus(const std::string& name, int vcpus) = 0;
  // Saves a running domain's memory to libvirt's managed save image and stops it (virDomainManagedSave; nova's
  // suspend); the next Start restores it. kConflict when it is not active.
  virtual Status ManagedSave(const std::string& name) = 0;
  // Hard reset of a running domain (virDomainReset), for when the guest ignores an ACPI reboot.
  virtual Status Reset(const std::string& name) = 0;
  // Hot-plugs `disk` into the running domain and adds it to the persistent definition (each part only when
  // missing, so repeating it is Ok). kConflict when `disk.target` already holds another source.
  virtual Status AttachDisk(const std::string& name, const DomainSpec::Disk& disk) = 0;
  // Unplugs the disk at `target` ("vdb") from the running domain and the persistent definition; Ok when absent.
  // The live unplug needs the guest's cooperation and may finish after this returns: check Disks().
  virtual Status DetachDisk(const std::string& name, const std::string& target) = 0;
  // Grows the disk at `target` of a running domain to `bytes` (the guest sees the new size). kInvalid for a
  // shrink; kConflict when the domain is not running (resize the volume itself then).
  virtual Status BlockResize(const std::string& name, const std::string& target, uint64_t bytes) = 0;
  // Hot-plugs `nic` (mac required) into the running domain and adds it to the persistent definition, each only
  // when no interface with that MAC is there. libvirt makes the tap `nic.tap` and joins it to `nic.bridge`.
  virtual Status AttachNic(const std::string& name, const DomainSpec::Nic& nic) = 0;
  // Unplugs the interface with MAC `mac` from the running domain and the persistent definition; Ok when absent.
  // Like a disk unplug it needs the guest's cooperation and may finish later: check Nics().
  virtual Status DetachNic(const std::string& name, const std::string& mac) = 0;
  // The NICs of the domain (mac, bridge, tap): running configuration, or the persistent one when `persistent`.
  virtual StatusOr<std::vector<DomainSpec::Nic>> Nics(const std::string& name, bool persistent = false) = 0;
  // The disks of the domain: the running configuration, or the persistent one when `persistent`.
  virtual StatusOr<std::vector<DomainSpec::Disk>> Disks(const std::string& name, bool persistent = false) = 0;
  // The domain XML as libvirt holds it (live, or the persistent definition when `inactive`).
  virtual StatusOr<std::string> DomainXml(const std::string& name, bool inactive = false) = 0;
  // The running domain's XML in the form a migration destination takes (VIR_DOMAIN_XML_MIGRATABLE).
  virtual StatusOr<std::string> MigratableXml(const std::string& name) = 0;
  // Live-migrates running domain `name` (peer to peer, persistent on the destination, undefined here once it runs
  // there); blocks until it ends. On failure the domain keeps running here (libvirt's guarantee) and the error says
  // why. Not retried on a dead connection: a migration is not repeated behind the caller's back.
  virtual Status Migrate(const std::string& name, const MigrateRequest& req) = 0;
  // The running migration job of `name` (active=false when none).
  virtual StatusOr<MigrationProgress> Migration(const std::string& name) = 0;
};

// Namespace URI of Stratus' element in a domain's <metadata> (<stratus:instance><uid/><ref/></stratus:instance>).
inline constexpr const char* kInstanceMetadataNs = "https://stratus.io/xmlns/instance/1";

// One libvirt connection (virConnectPtr), shared by the hypervisor and storage adapters: with test:///default
// all state lives in the connection, so both must use the same one. Thread-safe.
class LibvirtConnection;
// Connects to `uri`; kUnavailable naming the URI when libvirt cannot be reached.
StatusOr<std::shared_ptr<LibvirtConnection>> ConnectLibvirt(const std::string& uri);
// Capacity().virt_type is "test" for test:// URIs; "kvm" only when /dev/kvm is usable and the environment says
// KVM really runs guests (STRATUS_AUTO_KVM=1); otherwise "qemu" (TCG), which works everywhere.
std::unique_ptr<Hypervisor> NewLibvirtHypervisor(std::shared_ptr<LibvirtConnection> conn);

}  // namespace stratus::host
