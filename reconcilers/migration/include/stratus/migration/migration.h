// Migrations (KubeVirt's VirtualMachineInstanceMigration, nova live-migration): a Migration object moves one
// Instance to another node. Three reconcilers share it, each the only writer of its own phases:
//
//   server (MigrationReconciler, cluster-wide)  Pending -> Scheduled: checks the instance can move and chooses the
//                                                 target (spec.targetNode, or the scheduler's filters and weighers
//                                                 over the other nodes); a stopped instance is moved cold at once
//                                                 (rebound, Succeeded). Migrated -> Succeeded: binds the moved
//                                                 Volumes, then the instance, to the target (spec.nodeName). The one
//                                                 write it makes into another's status is the handover of each moved
//                                                 Volume's status.path and node (the target's volume reconciler writes
//                                                 the same from then on): the target's instance reconciler must never
//                                                 see the volume on the target with the source's path.
//   target agent (MigrationAgentReconciler)       Scheduled -> TargetReady: prepares what the domain needs there (its
//                                                 seed, console directory) and publishes the paths it will use.
//   source agent (MigrationAgentReconciler)       TargetReady -> Running -> Migrated: libvirt live-migrates the domain
//                                                 peer to peer (the domain XML rewritten to the target's paths),
//                                                 with libvirt's progress in status.progress; on failure the domain
//                                                 keeps running where it was and the phase is Failed with libvirt's
//                                                 reason.
//
// While it moves, the source's instance reconciler leaves the instance alone (the domain is in flight) and the
// target's fence does not take the arriving domain for an orphan (LatestMigration).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "stratus/core/api_client.h"
#include "stratus/host/hypervisor.h"
#include "stratus/host/storage.h"
#include "stratus/instance/instance.h"
#include "stratus/runtime/migration_phases.h"
#include "stratus/placement/placement.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::migration {

// The status fields of a migration that ended in failure (phase Failed, why, when), whoever writes it.
inline json Failure(const std::string& reason, const std::string& message) {
  return {{"phase", kFailed}, {"reason", reason}, {"message", message}, {"completionTime", NowRfc3339()}};
}

// A storage pool's place on the source and on the target (the same pool name on both nodes).
struct PoolMove {
  std::string pool;         // its name (Volume spec.pool)
  std::string source_path;  // its directory (or /dev/VG) on the source
  std::string target_path;  // on the target
};
// A writable disk the migration copies (non-shared storage).
struct MovedDisk {
  std::string pool, source_path, target_path;
};

// The domain XML a migration hands the target: `xml` (the source's migratable XML) with the boot images, the
// NoCloud seed (cdrom instance::kSeedTarget) and the serial console log at the target's paths, the target agent's
// owner mark in Stratus' metadata (`target`: {kernel, initrd, seed, consoleLog, owner}; an absent key leaves that
// alone), and each writable disk in one of
// `pools` moved to the same file name in that pool on the target (listed in `*moved`). kInvalid when `xml` does
// not parse, or a writable disk is in no pool the target has (it could not be copied there).
StatusOr<std::string> RewriteForTarget(const std::string& xml, const json& target, const std::vector<PoolMove>& pools = {},
                                       std::vector<MovedDisk>* moved = nullptr);

// The pools of `source` that `target` has too, from their Node status.pools (name, path).
std::vector<PoolMove> PoolMoves(const json& source, const json& target);

// Why `inst` cannot be moved ("" when it can): unbound, terminating; its node-local volumes move only with a
// live migration (libvirt copies them while it runs), so a cold move (`live` false) of an instance with volumes
// is refused.
std::string Unmovable(const json& inst, bool live = false);

// The server's choice of target node for `inst` (bound to `source`): `wanted` (spec.targetNode) when it is Ready,
// uncordoned and the instance fits there, else the best of the other nodes by the scheduler's filters and weighers.
// Returns the node, or kInvalid naming each node's reason.
StatusOr<std::string> ChooseTarget(const json& inst, const std::string& source, const std::string& wanted,
                                   const std::vector<json>& nodes, const std::vector<json>& instances,
                                   const std::map<std::string, json>& flavors, int64_t now,
                                   const placement::Options& opts);

class MigrationReconciler : public runtime::Reconciler {
 public:
  // A migration whose nodes have not started it (Scheduled: the target has not prepared; TargetReady: the source
  // has not begun) this long after it was scheduled fails (reason StartTimeout): a node gone quiet must not leave
  // it pending forever. Once libvirt runs it, libvirt and the source's agent bound it.
  static constexpr std::chrono::seconds kStartTimeout{300};
  MigrationReconciler(ApiClient* client, runtime::Informer* migrations, runtime::Informer* instances,
                      runtime::Informer* nodes, runtime::Informer* flavors, placement::Options opts);
  std::string Name() const override { return "migration"; }
  std::vector<const runtime::Informer*> Reads() const override { return {migrations_, instances_, nodes_, flavors_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  Status Fail(const json& m, const std::string& reason, const std::string& message);
  StatusOr<runtime::Result> Schedule(const json& m);
  StatusOr<runtime::Result> Complete(const json& m);
  StatusOr<runtime::Result> CheckStarted(const json& m);

  ApiClient* client_;
  runtime::Informer* migrations_;
  runtime::Informer* instances_;
  runtime::Informer* nodes_;
  runtime::Informer* flavors_;
  placement::Options opts_;
  runtime::EventRecorder events_;
  // One instance moves once at a time, even between this reconciler's workers and ahead of the cache: instance key
  // -> the migration this process scheduled for it (dropped once the cache shows that one ended).
  std::mutex schedule_mu_;
  std::map<std::string, std::string> scheduled_;
};

struct AgentOptions {
  std::string node;
  std::chrono::milliseconds progress_period{1000};  // how often status.progress is written while it runs
};

class MigrationAgentReconciler : public runtime::Reconciler {
 public:
  // `instances` prepares incoming domains (the node's instance reconciler); `nodes`: the target's migration
  // endpoint (Node status.migration: libvirtURI, address).
  // `storage`: the node's pools, where a source removes its copies of volumes that moved (null: left in place).
  MigrationAgentReconciler(ApiClient* client, runtime::Informer* migrations, runtime::Informer* nodes,
                           instance::InstanceReconciler* instances, host::Hypervisor* hv, AgentOptions opts,
                           host::StoragePools* storage = nullptr);
  std::string Name() const override { return "migration-agent"; }
  std::vector<const runtime::Informer*> Reads() const override { return {migrations_, nodes_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  StatusOr<runtime::Result> Prepare(const json& m);
  StatusOr<runtime::Result> Migrate(const json& m);
  StatusOr<runtime::Result> Recover(const json& m);
  StatusOr<runtime::Result> CleanUp(const json& m);
  // Writes Failure(reason, message) over `m`, with a Warning event.
  StatusOr<runtime::Result> Fail(const json& m, const std::string& reason, const std::string& message);
  // Writes `fields` into status (merged) with optimistic concurrency on `m`; returns the stored object.
  StatusOr<json> WriteStatus(const json& m, const json& fields);

  ApiClient* client_;
  runtime::Informer* migrations_;
  runtime::Informer* nodes_;
  instance::InstanceReconciler* instances_;
  host::Hypervisor* hv_;
  AgentOptions opts_;
  host::StoragePools* storage_;
  runtime::EventRecorder events_;
  std::mutex mu_;
  std::set<std::string> in_flight_;  // migrations this process is running now
};

}  // namespace stratus::migration
