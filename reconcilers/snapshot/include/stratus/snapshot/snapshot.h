// Volume snapshots (Cinder's, Kubernetes' VolumeSnapshot) on each node: a VolumeSnapshot of a Volume on this node
// becomes a standalone copy in the volume's pool, point-in-time: a qcow2 volume in use is copied while its
// guest is paused (QEMU drains and flushes on pause, so the copy is what a power cut would leave), a raw volume
// only while no running guest writes it (a raw copy is the whole disk: the pause would last as long). Volumes
// (spec.source.snapshot) and Images (spec.source.snapshot) are made from it; the snapshot stays while a volume
// is a qcow2 overlay over it.
#pragma once

#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/host/hypervisor.h"
#include "stratus/host/storage.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"
#include "stratus/volume/volume.h"

namespace stratus::snapshot {

inline constexpr const char* kFinalizer = "stratus.io/snapshot-storage";

// libvirt volume name of a snapshot's storage ("snap-<uid>").
std::string StorageName(const json& snapshot);
// The node a snapshot belongs to: status.node once taken, else its volume's node ("" when neither is known).
std::string NodeOf(const json& snapshot, const json& volume);

struct Observed;
struct Decision;

class SnapshotReconciler : public runtime::Reconciler {
 public:
  // `snapshots` and `volumes` see every namespace.
  SnapshotReconciler(ApiClient* client, runtime::Informer* snapshots, runtime::Informer* volumes,
                     host::StoragePools* storage, host::Hypervisor* hv, volume::Options opts);
  std::string Name() const override { return "volumesnapshot"; }
  std::vector<const runtime::Informer*> Reads() const override { return {snapshots_, volumes_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  StatusOr<Observed> Observe(const json& snap);
  StatusOr<runtime::Result> Delete(const json& snap, const std::string& key);
  // Pauses (when told), copies, checks nothing resumed the guest meanwhile, resumes. The pause in ms.
  StatusOr<int64_t> Copy(const Observed& o, const Decision& d, const std::string& name);

  ApiClient* client_;
  runtime::Informer* snapshots_;
  runtime::Informer* volumes_;
  host::StoragePools* storage_;
  host::Hypervisor* hv_;
  volume::Options opts_;
  runtime::EventRecorder events_;
};

}  // namespace stratus::snapshot
