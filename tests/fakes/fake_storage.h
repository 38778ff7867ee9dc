// In-memory storage pools for unit tests of the image, volume and instance reconcilers: pools with volumes
// (name, path, capacity, format), failures injected per operation, and a record of what changed. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "stratus/host/storage.h"

namespace stratus::fakes {

class FakeStoragePools : public host::StoragePools {
 public:
  // --- test controls ---
  void FailNext(const std::string& op, Status s);  // op: "CreateVolume", "CloneVolume", "DeleteVolume", ...
  // A volume that appears without the reconciler (a partial create of a killed agent, an operator's file).
  void PutVolume(const std::string& pool, host::VolumeInfo v);
  void RemoveVolume(const std::string& pool, const std::string& name);  // lost behind our back
  bool HasVolume(const std::string& pool, const std::string& name) const;
  std::vector<std::string> TakeCalls();  // "Op pool/name" lines of every change, in order
  // Runs during each CopyOpenVolume, before the copy is made (what the guest does meanwhile).
  void SetCopyHook(std::function<void()> hook);

  // --- host::StoragePools ---
  Status EnsurePool(const host::PoolConfig& pool) override;
  StatusOr<host::PoolInfo> Pool(const std::string& pool) override;
  StatusOr<host::VolumeInfo> Volume(const std::string& pool, const std::string& name) override;
  StatusOr<host::VolumeInfo> CreateVolume(const std::string& pool, const std::string& name, uint64_t bytes,
                                          const std::string& format, const std::string& backing_path,
                                          const std::string& backing_format) override;
  StatusOr<host::VolumeInfo> ImportFile(const std::string& pool, const std::string& name, const std::string& file,
                                        const std::string& format,
                                        const std::function<void(uint64_t, uint64_t)>& progress) override;
  Status DeleteVolume(const std::string& pool, const std::string& name) override;
  Status ResizeVolume(const std::string& pool, const std::string& name, uint64_t bytes) override;
  std::string RenderPoolXml(const host::PoolConfig& pool) const override;
  StatusOr<host::VolumeInfo> CloneVolume(const std::string& pool, const std::string& name,
                                         const std::string& source_pool, const std::string& source_name,
                                         uint64_t bytes, const std::string& format) override;
  StatusOr<host::VolumeInfo> CopyOpenVolume(const std::string& pool, const std::string& name,
                                            const std::string& source_pool, const std::string& source_name,
                                            const std::string& format) override;
  StatusOr<std::vector<host::VolumeInfo>> ListVolumes(const std::string& pool) override;
  Status RemovePool(const std::string& pool) override;

 private:
  Status Enter(const std::string& op, const std::string& what);
  StatusOr<host::VolumeInfo> Make(const std::string& pool, const std::string& name, uint64_t bytes,
                                  const std::string& format);

  mutable std::mutex mu_;
  struct PoolState {
    host::PoolConfig config;
    std::map<std::string, host::VolumeInfo> volumes;
  };
  std::map<std::string, PoolState> pools_;
  std::map<std::string, Status> fail_next_;
  std::function<void()> copy_hook_;
  std::vector<std::string> calls_;
};

}  // namespace stratus::fakes
