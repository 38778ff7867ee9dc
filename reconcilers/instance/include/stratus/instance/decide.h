// The Instance reconciler's decisions, apart from its effects: Reconcile observes (caches, the API, the
// hypervisor, storage, DHCP leases) into an `Observed`, `Decide` turns that into a `Decision` (the host and API
// actions to take, in order, and the status to write), and Reconcile carries it out and writes the status once.
// Decide is pure: the unit tests drive it with tables of observed states.
#pragma once

#include <set>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stratus/core/status.h"
#include "stratus/host/hypervisor.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"

namespace stratus::instance {

struct Options;

// What a kernel or ramdisk image looks like from this node.
struct BootImage {
  std::string path;       // cached file on this node; empty when not usable yet
  std::string not_ready;  // why not (empty when `path` is set or nothing is asked)
};

// The domain as libvirt has it.
struct ObservedDomain {
  host::DomainInfo info;  // state kNotFound when there is none
  bool running() const {
    return info.state == host::DomainState::kRunning || info.state == host::DomainState::kPaused;
  }
  std::optional<std::vector<host::DomainSpec::Disk>> persistent_disks, live_disks;  // unset: unknown
  std::optional<std::vector<host::DomainSpec::Nic>> persistent_nics, live_nics;
};

struct Observed {
  json inst;                    // the Instance (carrying our finalizer)
  json flavor;                  // its InstanceType (null when spec.resources is used or it does not exist)
  BootImage kernel, ramdisk;    // spec.kernelImage / spec.ramdiskImage
  // spec.image: the Image and the root Volume as the API has them (null when absent).
  json image, root_volume;
  bool manages_volumes = true;  // this agent runs the volume reconciler
  bool networking = true;       // this agent runs the node network reconciler
  std::map<std::string, json> volumes;   // by name: every Volume the instance asks for or holds that exists
  std::map<std::string, json> networks;  // by name: every Network of spec.networks that exists
  std::map<std::string, bool> leased;    // "<mac> <ip>" -> the node's DHCP server has leased it
  // The NoCloud seed (only when the agent writes seeds): the KeyPair spec.keyName names (null when there is none
  // or it could not be read; `key_pair_error` then says why) and the stamp of the seed on the node ("" = none).
  bool seeding = false;
  json key_pair;
  std::string key_pair_error;
  std::string seed_stamp;
  ObservedDomain domain;
  std::chrono::system_clock::time_point now;
};

// One step of carrying out a decision.
struct Action {
  enum class Kind {
    kCreateRootVolume,  // volume: the Volume object to create
    kGrowRootVolume,    // name, size
    kWriteSeed,         // name (the image's path), seed_files, seed_stamp
    kDefine,            // domain
    kDetachDisk,        // target
    kAttachDisk,        // disk
    kDetachNic,         // mac
    kAttachNic,         // nic
    kReboot,
    kStart,
    kPause,
    kResume,
    kManagedSave,       // nova's suspend: memory to libvirt's managed save image, domain stopped
    kSetVcpus,          // domain.vcpus, hot-added to the running domain (a live resize)
    kShutdown,          // a failure is only logged: the guest may ignore or miss ACPI, the deadline decides
    kDestroy,
    kUndefine,          // the domain's definition (a rebuild defines it again)
    kDeleteRootVolume,  // name, target (its uid, as a precondition)
  };
  explicit Action(Kind k) : kind(k) {}
  Kind kind;
  json volume;
  std::string name, size, target, mac;
  host::DomainSpec domain;
  host::DomainSpec::Disk disk;
  host::DomainSpec::Nic nic;
  std::map<std::string, std::string> seed_files;
  std::string seed_stamp;
  // Recorded when the action succeeds (reason empty: nothing).
  std::string event_type = "Normal", event_reason, event_message;
  // When it fails: the condition set to False with this reason and the error as message (type empty: the error
  // is only returned), the phase (empty: unchanged), and a Warning event with this reason.
  std::string fail_condition, fail_reason, fail_phase;
};

using Event = runtime::PendingEvent;

struct Decision {
  std::vector<Action> actions;
  json status;                  // the object as it should be written (status only differs)
  std::vector<Event> events;    // recorded once the status is written
  runtime::Result next;
  // After acting, status.volumes is read back from what the domain really has attached.
  bool report_volumes = true;
};

// What to do for an Instance bound to this node and not being deleted.
Decision Decide(const Observed& o, const Options& opts);

// `latest` (the Instance as the API has it now) with the status this reconciler decided in `ours` written onto it:
// every status field but conditions from `ours`, and of the conditions only the ones this reconciler owns (Ready,
// ImagesReady, NetworkReady, VolumesReady, RestartRequired, RebuildRequired: set, or removed when `ours` has
// none), so that other writers' conditions (placement's Scheduled, IPAM's AddressesAllocated) stay. Used when the
// status write after acting lost a race: what was done is recorded, so a retry does not do a one-shot action
// (a restart request, a power cycle) again.
json WithOwnStatus(const json& latest, const json& ours);

// Teardown of a deleted Instance, decided the same way.
struct TeardownObserved {
  json inst;
  ObservedDomain domain;
  json root_volume;  // the root Volume when the instance has one and the API has it (null otherwise)
};
struct TeardownDecision {
  bool destroy_domain = false;     // destroy and undefine it
  bool foreign_domain = false;     // a domain of that name belongs to another object: left alone
  bool clear_volumes = false;      // status.volumes emptied before anything is released
  enum class Root { kNone, kDelete, kKeep } root = Root::kNone;
  json root_owner_refs;            // kKeep: the root Volume's ownerReferences without this instance
};
TeardownDecision DecideTeardown(const TeardownObserved& o);

// The fence of a node that was lost and came back: the domains this agent made (`owner` in their metadata) for
// instances no longer bound to this node (`bound_uids`: every Instance the node's cache holds) — moved elsewhere by
// an evacuation, or deleted while the node was away — are destroyed and undefined, never started. Domains of
// other agents (another node or cluster on a shared libvirtd) and of no owner are never touched.
std::vector<std::string> DomainsToFence(const std::vector<host::DomainInfo>& domains, const std::string& owner,
                                        const std::set<std::string>& bound_uids);

}  // namespace stratus::instance
