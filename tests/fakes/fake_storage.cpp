#include "fake_storage.h"

#include <filesystem>

namespace stratus::fakes {

void FakeStoragePools::FailNext(const std::string& op, Status s) {
  std::lock_guard l(mu_);
  fail_next_[op] = std::move(s);
}

void FakeStoragePools::PutVolume(const std::string& pool, host::VolumeInfo v) {
  std::lock_guard l(mu_);
  if (v.path.empty()) v.path = "/fake/" + pool + "/" + v.name;
  pools_[pool].volumes[v.name] = std::move(v);
}

void FakeStoragePools::RemoveVolume(const std::string& pool, const std::string& name) {
  std::lock_guard l(mu_);
  pools_[pool].volumes.erase(name);
}

bool FakeStoragePools::HasVolume(const std::string& pool, const std::string& name) const {
  std::lock_guard l(mu_);
  auto p = pools_.find(pool);
  return p != pools_.end() && p->second.volumes.count(name) > 0;
}

std::vector<std::string> FakeStoragePools::TakeCalls() {
  std::lock_guard l(mu_);
  return std::exchange(calls_, {});
}

Status FakeStoragePools::Enter(const std::string& op, const std::string& what) {
  auto it = fail_next_.find(op);
  if (it != fail_next_.end()) {
    Status s = it->second;
    fail_next_.erase(it);
    return s;
  }
  calls_.push_back(op + " " + what);
  return Status::Ok();
}

Status FakeStoragePools::EnsurePool(const host::PoolConfig& pool) {
  std::lock_guard l(mu_);
  if (Status s = Enter("EnsurePool", pool.name); !s.ok()) return s;
  pools_[pool.name].config = pool;
  return Status::Ok();
}

StatusOr<host::PoolInfo> FakeStoragePools::Pool(const std::string& pool) {
  std::lock_guard l(mu_);
  auto p = pools_.find(pool);
  if (p == pools_.end()) return NotFound("pool " + pool);
  host::PoolInfo i;
  i.name = pool;
  i.type = p->second.config.type;
  i.capacity_bytes = uint64_t{100} << 30;
  for (const auto& [n, v] : p->second.volumes) i.allocation_bytes += v.capacity_bytes;
  i.available_bytes = i.capacity_bytes > i.allocation_bytes ? i.capacity_bytes - i.allocation_bytes : 0;
  return i;
}

StatusOr<host::VolumeInfo> FakeStoragePools::Volume(const std::string& pool, const std::string& name) {
  std::lock_guard l(mu_);
  auto p = pools_.find(pool);
  if (p == pools_.end()) return NotFound("pool " + pool);
  auto v = p->second.volumes.find(name);
  if (v == p->second.volumes.end()) return NotFound("volume " + name + " in pool " + pool);
  return v->second;
}

StatusOr<host::VolumeInfo> FakeStoragePools::Make(const std::string& pool, const std::string& name, uint64_t bytes,
                                                  const std::string& format) {
  auto p = pools_.find(pool);
  if (p == pools_.end()) return NotFound("pool " + pool);
  if (p->second.volumes.count(name)) return Status(Code::kAlreadyExists, "volume " + name + " exists");
  host::VolumeInfo v;
  v.name = name;
  v.path = "/fake/" + pool + "/" + name;
  v.capacity_bytes = bytes;
  v.format = p->second.config.type == "logical" ? "" : format;
  p->second.volumes[name] = v;
  return v;
}

StatusOr<host::VolumeInfo> FakeStoragePools::CreateVolume(const std::string& pool, const std::string& name,
                                                          uint64_t bytes, const std::string& format,
                                                          const std::string& backing_path, const std::string&) {
  std::lock_guard l(mu_);
  if (Status s = Enter("CreateVolume", pool + "/" + name + (backing_path.empty() ? "" : " over " + backing_path));
      !s.ok()) {
    return s;
  }
  return Make(pool, name, bytes, format);
}

StatusOr<host::VolumeInfo> FakeStoragePools::ImportFile(const std::string& pool, const std::string& name,
                                                        const std::string& file, const std::string& format,
                                                        const std::function<void(uint64_t, uint64_t)>& progress) {
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(file, ec);
  if (ec) return NotFound("cannot read " + file + ": " + ec.message());
  if (progress) progress(size, size);
  std::lock_guard l(mu_);
  if (Status s = Enter("ImportFile", pool + "/" + name); !s.ok()) return s;
  return Make(pool, name, size, format);
}

Status FakeStoragePools::DeleteVolume(const std::string& pool, const std::string& name) {
  std::lock_guard l(mu_);
  if (Status s = Enter("DeleteVolume", pool + "/" + name); !s.ok()) return s;
  auto p = pools_.find(pool);
  if (p != pools_.end()) p->second.volumes.erase(name);
  return Status::Ok();
}

Status FakeStoragePools::ResizeVolume(const std::string& pool, const std::string& name, uint64_t bytes) {
  std::lock_guard l(mu_);
  auto p = pools_.find(pool);
  if (p == pools_.end() || !p->second.volumes.count(name)) return NotFound("volume " + name);
  if (Status s = Enter("ResizeVolume", pool + "/" + name + " " + std::to_string(bytes)); !s.ok()) return s;
  p->second.volumes[name].capacity_bytes = bytes;
  return Status::Ok();
}

std::string FakeStoragePools::RenderPoolXml(const host::PoolConfig& pool) const {
  return "<pool><name>" + pool.name + "</name></pool>";
}

StatusOr<host::VolumeInfo> FakeStoragePools::CloneVolume(const std::string& pool, const std::string& name,
                                                         const std::string& source_pool,
                                                         const std::string& source_name, uint64_t bytes,
                                                         const std::string& format) {
  std::lock_guard l(mu_);
  auto sp = pools_.find(source_pool);
  if (sp == pools_.end() || !sp->second.volumes.count(source_name)) return NotFound("volume " + source_name);
  uint64_t src = sp->second.volumes[source_name].capacity_bytes;
  if (Status s = Enter("CloneVolume", pool + "/" + name + " from " + source_pool + "/" + source_name); !s.ok()) {
    return s;
  }
  return Make(pool, name, bytes > src ? bytes : src, format);
}

StatusOr<host::VolumeInfo> FakeStoragePools::CopyOpenVolume(const std::string& pool, const std::string& name,
                                                            const std::string& source_pool,
                                                            const std::string& source_name,
                                                            const std::string& format) {
  std::function<void()> hook;
  {
    std::lock_guard l(mu_);
    hook = copy_hook_;
  }
  if (hook) hook();
  std::lock_guard l(mu_);
  auto sp = pools_.find(source_pool);
  if (sp == pools_.end() || !sp->second.volumes.count(source_name)) return NotFound("volume " + source_name);
  uint64_t src = sp->second.volumes[source_name].capacity_bytes;
  if (Status s = Enter("CopyOpenVolume", pool + "/" + name + " from " + source_pool + "/" + source_name); !s.ok()) {
    return s;
  }
  return Make(pool, name, src, format);
}

void FakeStoragePools::SetCopyHook(std::function<void()> hook) {
  std::lock_guard l(mu_);
  copy_hook_ = std::move(hook);
}

StatusOr<std::vector<host::VolumeInfo>> FakeStoragePools::ListVolumes(const std::string& pool) {
  std::lock_guard l(mu_);
  auto p = pools_.find(pool);
  if (p == pools_.end()) return NotFound("pool " + pool);
  std::vector<host::VolumeInfo> out;
  for (const auto& [n, v] : p->second.volumes) out.push_back(v);
  return out;
}

Status FakeStoragePools::RemovePool(const std::string& pool) {
  std::lock_guard l(mu_);
  if (Status s = Enter("RemovePool", pool); !s.ok()) return s;
  pools_.erase(pool);
  return Status::Ok();
}

}  // namespace stratus::fakes
