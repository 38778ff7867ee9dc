// Volumes (nova-volume's job) on each node: a Volume bound to this node gets its storage in one of the node's
// libvirt storage pools (a `dir` pool of files or a `logical` pool of LVs, one code path), blank or cloned from
// an Image or another Volume, grown (live when attached), and removed on delete once nothing uses it.
//
// Attachments have one source of truth, the Instances' specs: an Instance asks for a volume in spec.volumes (or
// gets its root volume from spec.image), this reconciler picks the single holder and mirrors it into the
// Volume's status.attachment; the Instance reconciler attaches only what it holds and reports in
// status.volumes what the domain really has.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/host/hypervisor.h"
#include "stratus/host/storage.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::volume {

inline constexpr const char* kFinalizer = "stratus.io/volume-storage";
// Label on a root volume naming the Instance it was made for.
inline constexpr const char* kRootOfLabel = "stratus.io/root-of";

// --- attachment bookkeeping (pure) ---------------------------------------------------------------------------

struct VolumeUse {
  std::string volume;  // Volume name (same namespace as the instance)
  std::string device;  // vda for the root volume, vdb..vdz for data volumes
  bool root = false;
};
// Name of the root Volume made for an Instance from spec.image: "<name>-root", shortened with a uid suffix
// when that would not be a DNS-1123 label.
std::string RootVolumeName(const json& inst);
// The volumes an Instance asks for, root first.
std::vector<VolumeUse> VolumesOf(const json& inst);
// True when `inst` reports `volume` attached to its domain (status.volumes).
bool ReportsAttached(const json& inst, const std::string& volume);
// The Instance (name) that holds `volume` among `instances` (same namespace): the current holder
// (status.attachment.instance) while it still asks for it or still has it attached; otherwise the oldest
// instance asking for it (creationTimestamp, then name). Empty when nobody asks.
std::string ChooseHolder(const json& volume, const std::vector<json>& instances);

// --- storage decisions (pure) --------------------------------------------------------------------------------

struct CreatePlan {
  enum class Method { kBlank, kBackingFile, kFullCopy, kCloneVolume } method = Method::kBlank;
  uint64_t bytes = 0;          // size of the new volume
  std::string format;          // raw | qcow2 (logical pools: raw)
  std::string source_pool, source_name, source_path, source_format;  // for the copies
};
struct SourceInfo {
  std::string pool, name, path, format;  // libvirt location of the image cache volume / source volume
  uint64_t virtual_bytes = 0;
};
// How to create a volume of `requested` bytes in a pool of `pool_type` from `source` (null: blank). `kind` is
// "image", "volume" or "snapshot". A qcow2 volume in a dir pool from an image or a snapshot is a qcow2 overlay
// on it (backing file, instant); raw volumes and logical pools get a full copy; volumes clone volumes by copy.
// kInvalid when the request is smaller than the source (the message names spec.size).
StatusOr<CreatePlan> PlanCreate(const std::string& pool_type, const std::string& format, uint64_t requested,
                                const std::string& kind, const SourceInfo* source);

enum class ResizeAction { kNone, kGrowLive, kGrowOffline, kRefuseShrink };
// What to do when the volume has `current` bytes and spec asks `requested`; `attached_running` when a running
// domain has it attached (the guest must see the new size, so the hypervisor resizes it).
ResizeAction PlanResize(uint64_t current, uint64_t requested, bool attached_running);

// --- the reconciler ------------------------------------------------------------------------------------------

struct PoolConfig {
  std::string name;          // Stratus pool name (Volume spec.pool), e.g. "default"
  std::string libvirt_name;  // libvirt pool name, e.g. "stratus-node-a-default"
  std::string type = "dir";  // dir | logical
};

struct Options {
  std::string node;
  std::map<std::string, PoolConfig> pools;  // by Stratus name
  std::string default_pool = "default";
  std::string image_pool;                   // libvirt pool of the image cache
};

struct Observed;  // decide.h

class VolumeReconciler : public runtime::Reconciler {
 public:
  // `volumes`, `images` and `snapshots` see every namespace; `instances` those bound to this node. Without
  // `snapshots`, volumes made from a snapshot wait.
  VolumeReconciler(ApiClient* client, runtime::Informer* volumes, runtime::Informer* instances,
                   runtime::Informer* images, host::StoragePools* storage, host::Hypervisor* hv, Options opts,
                   runtime::Informer* snapshots = nullptr);
  std::string Name() const override { return "volume"; }
  std::vector<const runtime::Informer*> Reads() const override {
    if (snapshots_ == nullptr) return {volumes_, instances_, images_};
    return {volumes_, instances_, images_, snapshots_};
  }
  std::vector<runtime::WatchSpec> Watches() override;
  // How often every volume on the node is looked at again even when nothing changed (storage drift).
  static constexpr std::chrono::milliseconds kDriftCheck{10000};
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

  // libvirt volume name of a Volume's storage ("vol-<uid>").
  static std::string StorageName(const json& volume);

 private:
  // Everything Decide needs, from the caches, the API (what the cache may not show yet), storage and the holder's
  // domain. `vol` carries our finalizer.
  StatusOr<Observed> Observe(const json& vol);
  // A volume in this node's storage (another volume, a snapshot) as the source of a copy or an overlay.
  StatusOr<SourceInfo> StorageSource(const std::string& pool, const std::string& name);
  StatusOr<runtime::Result> Delete(const json& vol, const std::string& key);
  std::vector<json> InstancesIn(const std::string& ns) const;

  ApiClient* client_;
  runtime::Informer* volumes_;
  runtime::Informer* instances_;
  runtime::Informer* images_;
  runtime::Informer* snapshots_;
  host::StoragePools* storage_;
  host::Hypervisor* hv_;
  Options opts_;
  runtime::EventRecorder events_;
};

}  // namespace stratus::volume
