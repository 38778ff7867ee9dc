// Node storage through libvirt storage pools: a `dir` pool (files) or a `logical` pool (an LVM volume group)
// behind the same calls. The image cache and volumes use it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::host {

struct PoolConfig {
  std::string name;             // libvirt pool name, e.g. "stratus-images"
  std::string type = "dir";     // dir | logical
  std::string path;             // dir: directory; logical: /dev/<vg>
  std::string source_vg;        // logical: volume group name
  // The owner mark (libvirt keeps no metadata on pools, but keeps their UUID). When set: a pool with this name
  // and another UUID belongs to someone else and is never touched (kConflict); one with this UUID is ours even
  // at another path or under another name (the data dir moved, the naming changed) and is redefined as `name` at
  // `path`, its files untouched.
  std::string uuid;
  // A pool under this name at exactly `path` (of the same type) is ours from before pools carried an owner: it is
  // redefined as `name` with `uuid`, its files untouched. Elsewhere it is left alone.
  std::string adopt_name;
};

struct PoolInfo {
  std::string name;
  std::string type;
  uint64_t capacity_bytes = 0;
  uint64_t allocation_bytes = 0;
  uint64_t available_bytes = 0;
};

struct VolumeInfo {
  std::string name;
  std::string path;
  uint64_t capacity_bytes = 0;
  uint64_t allocation_bytes = 0;
  std::string format;           // raw | qcow2 (dir pools)
};

// A volume to create; rendered by RenderVolumeXml.
struct VolumeSpec {
  std::string name;
  uint64_t capacity_bytes = 0;  // 0 with a backing file: the backing file's size
  std::string format = "raw";   // dir pools: raw | qcow2; ignored by logical pools (always raw)
  std::string backing_path;     // dir pools: qcow2 over this file
  std::string backing_format;
};

// Volume XML for a pool of type `pool_type` (dir | logical). dir volumes are sparse (allocation 0); logical ones
// are fully allocated LVs with neither format nor backing store.
std::string RenderVolumeXml(const std::string& pool_type, const VolumeSpec& spec);
// kInvalid unless `name` is usable as a volume name: non-empty, at most 255 bytes, no '/', no leading '.', no
// control characters.
Status ValidateVolumeName(const std::string& name);

class StoragePools {
 public:
  virtual ~StoragePools() = default;
  // Defines, builds and starts the pool when missing (idempotent).
  virtual Status EnsurePool(const PoolConfig& pool) = 0;
  virtual StatusOr<PoolInfo> Pool(const std::string& pool) = 0;
  virtual StatusOr<VolumeInfo> Volume(const std::string& pool, const std::string& name) = 0;
  // Creates an empty volume (`format` raw|qcow2), optionally with a backing file (qcow2 over an image).
  virtual StatusOr<VolumeInfo> CreateVolume(const std::string& pool, const std::string& name, uint64_t bytes,
                                            const std::string& format, const std::string& backing_path = "",
                                            const std::string& backing_format = "") = 0;
  // Uploads a local file's bytes into a new volume (image import); `progress(done, total)` is called as it goes.
  virtual StatusOr<VolumeInfo> ImportFile(const std::string& pool, const std::string& name, const std::string& file,
                                          const std::string& format,
                                          const std::function<void(uint64_t, uint64_t)>& progress) = 0;
  virtual Status DeleteVolume(const std::string& pool, const std::string& name) = 0;  // Ok when absent
  virtual Status ResizeVolume(const std::string& pool, const std::string& name, uint64_t bytes) = 0;
  // Renders the pool / volume XML (exposed for unit tests of dir and logical).
  virtual std::string RenderPoolXml(const PoolConfig& pool) const = 0;

  // Full copy of `source_pool`/`source_name` into a new volume (converted to `format`, grown to `bytes` when
  // larger; 0 keeps the source size). Works across pool types (image in a dir pool -> LV in a logical pool).
  virtual StatusOr<VolumeInfo> CloneVolume(const std::string& pool, const std::string& name,
                                           const std::string& source_pool, const std::string& source_name,
                                           uint64_t bytes, const std::string& format) = 0;
  // A copy of a volume that a guest may hold open (QEMU's image lock is shared for the read, as `qemu-img
  // convert -U`): a new volume of the source's size in `format`, standing alone (the source's backing chain is
  // followed). The caller makes it point-in-time by keeping writers off meanwhile (the guest paused, or the
  // volume unattached). Nothing is left behind on failure.
  virtual StatusOr<VolumeInfo> CopyOpenVolume(const std::string& pool, const std::string& name,
                                              const std::string& source_pool, const std::string& source_name,
                                              const std::string& format) = 0;
  virtual StatusOr<std::vector<VolumeInfo>> ListVolumes(const std::string& pool) = 0;
  // Stops and undefines the pool; its directory / volume group and their data stay. Ok when absent.
  virtual Status RemovePool(const std::string& pool) = 0;
};

class LibvirtConnection;
std::unique_ptr<StoragePools> NewLibvirtStorage(std::shared_ptr<LibvirtConnection> conn);

}  // namespace stratus::host
