// StoragePools over libvirt's storage API: a `dir` pool (files) and a `logical` pool (an LVM volume group) go
// through the same calls. Pool and volume XML are built with pugixml.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <pugixml.hpp>
#include <spdlog/spdlog.h>
#include <sstream>
#include <thread>

#include "libvirt_connection_impl.h"
#include "stratus/core/exec.h"
#include "stratus/host/storage.h"

namespace stratus::host {

namespace {

constexpr size_t kUploadChunk = 4 << 20;  // 4 MiB per virStreamSend

void Attr(pugi::xml_node n, const char* name, const std::string& value) {
  n.append_attribute(name).set_value(value.c_str());
}
pugi::xml_node TextElem(pugi::xml_node parent, const char* name, const std::string& text) {
  pugi::xml_node n = parent.append_child(name);
  n.text().set(text.c_str());
  return n;
}
std::string Serialize(const pugi::xml_document& doc) {
  std::ostringstream os;
  doc.save(os, "  ", pugi::format_indent | pugi::format_no_declaration, pugi::encoding_utf8);
  return os.str();
}

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

Status ValidatePoolName(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || HasControlChars(name) || name[0] == '.') {
    return InvalidError("invalid storage pool name \"" + name + "\"", {{"pool", "invalid pool name"}});
  }
  return Status::Ok();
}

// An absolute path without control characters or ".." components.
Status ValidatePath(const std::string& field, const std::string& p) {
  if (p.empty() || p[0] != '/' || HasControlChars(p)) {
    return InvalidError(field + " must be an absolute path, not \"" + p + "\"", {{field, "not an absolute path"}});
  }
  std::string seg;
  std::istringstream in(p);
  while (std::getline(in, seg, '/')) {
    if (seg == "..") return InvalidError(field + " must not contain \"..\"", {{field, "contains .."}});
  }
  return Status::Ok();
}

Status ValidateFormat(const std::string& pool_type, const std::string& format) {
  if (pool_type == "logical") {
    if (!format.empty() && format != "raw") {
      return InvalidError("volumes in a logical pool are raw; format " + format + " is not supported",
                          {{"format", "logical pools hold raw volumes"}});
    }
    return Status::Ok();
  }
  if (format != "raw" && format != "qcow2") {
    return InvalidError("volume format must be raw or qcow2, not \"" + format + "\"", {{"format", "unsupported"}});
  }
  return Status::Ok();
}

// "/a//b/" -> "/a/b", as libvirt stores pool paths.
std::string CleanPath(const std::string& p) {
  std::string out;
  for (char ch : p) {
    if (ch == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(ch);
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

StatusOr<PoolPtr> FindPool(virConnectPtr c, const std::string& name) {
  virStoragePoolPtr p = virStoragePoolLookupByName(c, name.c_str());
  if (!p) return LastErrorStatus("storage pool " + name);
  return PoolPtr(p);
}

struct PoolXmlFacts {
  std::string type, path, source_name, uuid;
};
StatusOr<PoolXmlFacts> ReadPoolXml(virStoragePoolPtr p, const std::string& name) {
  char* x = virStoragePoolGetXMLDesc(p, 0);
  if (!x) return LastErrorStatus("reading XML of storage pool " + name);
  std::string xml = TakeString(x);
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str())) return Internal("cannot parse the XML of storage pool " + name);
  pugi::xml_node pool = doc.child("pool");
  return PoolXmlFacts{pool.attribute("type").value(), pool.child("target").child("path").text().get(),
                      pool.child("source").child("name").text().get(), pool.child("uuid").text().get()};
}

StatusOr<VolumeInfo> Describe(virStorageVolPtr v) {
  VolumeInfo out;
  const char* nm = virStorageVolGetName(v);
  out.name = nm ? nm : "";
  char* path = virStorageVolGetPath(v);
  if (!path) return LastErrorStatus("reading path of volume " + out.name);
  out.path = TakeString(path);
  virStorageVolInfo vi{};
  if (virStorageVolGetInfo(v, &vi) < 0) return LastErrorStatus("reading volume " + out.name);
  out.capacity_bytes = vi.capacity;
  out.allocation_bytes = vi.allocation;
  char* x = virStorageVolGetXMLDesc(v, 0);
  if (!x) return LastErrorStatus("reading XML of volume " + out.name);
  std::string xml = TakeString(x);
  pugi::xml_document doc;
  if (doc.load_string(xml.c_str())) {
    out.format = doc.child("volume").child("target").child("format").attribute("type").value();
  }
  if (out.format.empty()) out.format = "raw";
  return out;
}

// The volume `name` in `pool`; kNotFound naming both when absent.
StatusOr<VolPtr> FindVolume(virStoragePoolPtr pool, const std::string& pool_name, const std::string& name) {
  virStorageVolPtr v = virStorageVolLookupByName(pool, name.c_str());
  if (!v) return LastErrorStatus("volume " + name + " in storage pool " + pool_name);
  return VolPtr(v);
}

bool VolumeExists(virStoragePoolPtr pool, const std::string& name) {
  virStorageVolPtr v = virStorageVolLookupByName(pool, name.c_str());
  if (!v) {
    TakeLastError();
    return false;
  }
  virStorageVolFree(v);
  return true;
}

StatusOr<VolPtr> CreateFromXml(virStoragePoolPtr pool, const std::string& pool_name, const std::string& name,
                               const std::string& xml) {
  virStorageVolPtr v = virStorageVolCreateXML(pool, xml.c_str(), 0);
  if (!v) return LastErrorStatus("creating volume " + name + " in storage pool " + pool_name);
  return VolPtr(v);
}

// Refreshes the pool, waiting out libvirt's own refresh after an upload ("asynchronous jobs running").
void RefreshPool(virStoragePoolPtr pool) {
  for (int i = 0; i < 20; ++i) {
    if (virStoragePoolRefresh(pool, 0) == 0) return;
    TakeLastError();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool SameUuid(const std::string& a, const std::string& b) {
  auto norm = [](std::string s) {
    std::string out;
    for (char ch : s) {
      if (ch != '-') out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    }
    return out;
  };
  return norm(a) == norm(b);
}

// Stops (when active) and undefines a pool of ours so that it can be defined again under its current name and
// path. Its files stay: for a dir pool stopping only deactivates it in libvirt; a logical pool's volume group is
// deactivated, which LVM refuses while a volume is open (the error says so and nothing changed).
Status Redefine(PoolPtr pool, const std::string& name, const std::string& why) {
  if (virStoragePoolIsActive(pool.get()) == 1 && virStoragePoolDestroy(pool.get()) < 0) {
    return LastErrorStatus("stopping storage pool " + name + " to redefine it (" + why + ")");
  }
  if (virStoragePoolIsPersistent(pool.get()) == 1 && virStoragePoolUndefine(pool.get()) < 0) {
    return LastErrorStatus("undefining storage pool " + name + " to redefine it (" + why + ")");
  }
  spdlog::info("storage pool redefined: pool={} reason={}", name, why);
  return Status::Ok();
}

std::string RenderPool(const PoolConfig& cfg) {
  pugi::xml_document doc;
  pugi::xml_node pool = doc.append_child("pool");
  Attr(pool, "type", cfg.type);
  TextElem(pool, "name", cfg.name);
  if (!cfg.uuid.empty()) TextElem(pool, "uuid", cfg.uuid);
  if (cfg.type == "logical") {
    pugi::xml_node source = pool.append_child("source");
    TextElem(source, "name", cfg.source_vg);
    Attr(source.append_child("format"), "type", "lvm2");
    TextElem(pool.append_child("target"), "path", cfg.path.empty() ? "/dev/" + cfg.source_vg : cfg.path);
  } else {
    TextElem(pool.append_child("target"), "path", cfg.path);
  }
  return Serialize(doc);
}

Status ValidatePoolConfig(const PoolConfig& cfg) {
  Status s = ValidatePoolName(cfg.name);
  if (!s.ok()) return s;
  if (cfg.type == "dir") return ValidatePath("pool path", cfg.path);
  if (cfg.type == "logical") {
    if (cfg.source_vg.empty() || cfg.source_vg.find('/') != std::string::npos || HasControlChars(cfg.source_vg)) {
      return InvalidError("a logical pool needs the name of an existing volume group, not \"" + cfg.source_vg + "\"",
                          {{"source_vg", "invalid volume group"}});
    }
    return cfg.path.empty() ? Status::Ok() : ValidatePath("pool path", cfg.path);
  }
  return InvalidError("storage pool type must be dir or logical, not \"" + cfg.type + "\"", {{"type", "unsupported"}});
}

class LibvirtStorage final : public StoragePools {
 public:
  explicit LibvirtStorage(std::shared_ptr<LibvirtConnection> conn) : conn_(std::move(conn)) {}

  std::string RenderPoolXml(const PoolConfig& pool) const override { return RenderPool(pool); }

  Status EnsurePool(const PoolConfig& cfg) override {
    Status v = ValidatePoolConfig(cfg);
    if (!v.ok()) return v;
    std::string want_path = CleanPath(cfg.type == "logical" && cfg.path.empty() ? "/dev/" + cfg.source_vg : cfg.path);
    return conn_->Call([&](virConnectPtr c) -> Status {
      PoolPtr pool;
      virStoragePoolPtr raw = virStoragePoolLookupByName(c, cfg.name.c_str());
      auto same_place = [&](const PoolXmlFacts& f) {
        return f.type == cfg.type && CleanPath(f.path) == want_path &&
               (cfg.type != "logical" || f.source_name == cfg.source_vg);
      };
      // Our pool (by its mark) elsewhere: it follows a data dir that moved, never one that was copied (two
      // copies running would take the pool from each other at every start).
      auto moved = [&](const PoolXmlFacts& f, const std::string& name) -> Status {
        std::error_code ec;
        if (f.type == "dir" && cfg.type == "dir" && !std::filesystem::exists(f.path, ec)) return Status::Ok();
        return Status(Code::kConflict, "storage pool " + name + " of this cluster and node stands at " + f.path +
                                           ", which still exists, not at " + want_path +
                                           " (another copy of this data dir running?); it is left alone: remove it " +
                                           "with virsh pool-destroy and pool-undefine " + name + " if it is stale");
      };
      if (raw) {
        pool.reset(raw);
        auto facts = ReadPoolXml(raw, cfg.name);
        if (!facts.ok()) return facts.status();
        if (!cfg.uuid.empty() && !SameUuid(facts->uuid, cfg.uuid)) {
          return Status(Code::kConflict, "storage pool " + cfg.name + " exists but was not made by this agent (uuid " +
                                             facts->uuid + ", expected " + cfg.uuid + "): it is left alone");
        }
        if (!same_place(*facts)) {
          if (cfg.uuid.empty()) {
            return Status(Code::kConflict, "storage pool " + cfg.name + " exists as a " + facts->type + " pool at " +
                                               facts->path + ", not a " + cfg.type + " pool at " + want_path);
          }
          Status s = moved(*facts, cfg.name);
          if (s.ok()) s = Redefine(std::move(pool), cfg.name, "it moved from " + facts->path + " to " + want_path);
          if (!s.ok()) return s;
        }
      } else {
        LibvirtError e = TakeLastError();
        if (e.code != VIR_ERR_NO_STORAGE_POOL) return ToStatus("looking up storage pool " + cfg.name, e);
      }
      if (!pool && !cfg.uuid.empty()) {
        // Ours by its mark under another name.
        if (virStoragePoolPtr other = virStoragePoolLookupByUUIDString(c, cfg.uuid.c_str())) {
          PoolPtr p(other);
          const char* nm = virStoragePoolGetName(other);
          std::string old_name = nm ? nm : "?";
          auto facts = ReadPoolXml(other, old_name);
          if (!facts.ok()) return facts.status();
          Status s = same_place(*facts) ? Status::Ok() : moved(*facts, old_name);
          if (s.ok()) s = Redefine(std::move(p), old_name, "renamed to " + cfg.name);
          if (!s.ok()) return s;
        } else {
          TakeLastError();
        }
      }
      if (!pool && !cfg.adopt_name.empty() && cfg.adopt_name != cfg.name) {
        // Ours from before owner marks: only where it stands exactly where ours would.
        if (virStoragePoolPtr old = virStoragePoolLookupByName(c, cfg.adopt_name.c_str())) {
          PoolPtr p(old);
          auto facts = ReadPoolXml(old, cfg.adopt_name);
          if (facts.ok() && same_place(*facts)) {
            Status s = Redefine(std::move(p), cfg.adopt_name, "adopted as " + cfg.name);
            if (!s.ok()) return s;
          }
        } else {
          TakeLastError();
        }
      }
      if (!pool) {
        std::string xml = RenderPool(cfg);
        raw = virStoragePoolDefineXML(c, xml.c_str(), 0);
        if (!raw) return LastErrorStatus("defining storage pool " + cfg.name);
        pool.reset(raw);
      }
      if (virStoragePoolIsActive(pool.get()) != 1) {
        Status built;
        // dir: creates the directory (fine when it exists). logical: the volume group must already exist;
        // building would run pvcreate/vgcreate over devices, which is not ours to do.
        if (cfg.type == "dir" && virStoragePoolBuild(pool.get(), 0) < 0) {
          built = LastErrorStatus("building storage pool " + cfg.name);
        }
        if (virStoragePoolCreate(pool.get(), 0) < 0) {
          LibvirtError e = TakeLastError();
          if (virStoragePoolIsActive(pool.get()) != 1) {
            Status s = ToStatus("starting storage pool " + cfg.name, e);
            if (!built.ok()) s = Status(s.code(), s.message() + " (after " + built.message() + ")");
            return s;
          }
        }
      } else if (virStoragePoolRefresh(pool.get(), 0) < 0) {
        TakeLastError();  // busy with a volume job; it refreshes itself afterwards
      }
      if (virStoragePoolSetAutostart(pool.get(), 1) < 0) TakeLastError();  // nice to have
      return Status::Ok();
    });
  }

  Status RemovePool(const std::string& name) override {
    Status v = ValidatePoolName(name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> Status {
      virStoragePoolPtr raw = virStoragePoolLookupByName(c, name.c_str());
      if (!raw) {
        LibvirtError e = TakeLastError();
        return e.code == VIR_ERR_NO_STORAGE_POOL ? Status::Ok() : ToStatus("looking up storage pool " + name, e);
      }
      PoolPtr pool(raw);
      if (virStoragePoolIsActive(pool.get()) == 1 && virStoragePoolDestroy(pool.get()) < 0) {
        return LastErrorStatus("stopping storage pool " + name);
      }
      if (virStoragePoolIsPersistent(pool.get()) == 1 && virStoragePoolUndefine(pool.get()) < 0) {
        return LastErrorStatus("undefining storage pool " + name);
      }
      return Status::Ok();
    });
  }

  StatusOr<PoolInfo> Pool(const std::string& name) override {
    Status v = ValidatePoolName(name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> StatusOr<PoolInfo> {
      auto pool = FindPool(c, name);
      if (!pool.ok()) return pool.status();
      virStoragePoolInfo pi{};
      if (virStoragePoolGetInfo(pool->get(), &pi) < 0) return LastErrorStatus("reading storage pool " + name);
      auto facts = ReadPoolXml(pool->get(), name);
      if (!facts.ok()) return facts.status();
      PoolInfo out;
      out.name = name;
      out.type = facts->type;
      out.capacity_bytes = pi.capacity;
      out.allocation_bytes = pi.allocation;
      out.available_bytes = pi.available;
      return out;
    });
  }

  StatusOr<VolumeInfo> Volume(const std::string& pool_name, const std::string& name) override {
    Status v = CheckNames(pool_name, name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> StatusOr<VolumeInfo> {
      auto pool = FindPool(c, pool_name);
      if (!pool.ok()) return pool.status();
      auto vol = FindVolume(pool->get(), pool_name, name);
      if (!vol.ok()) return vol.status();
      return Describe(vol->get());
    });
  }

  StatusOr<std::vector<VolumeInfo>> ListVolumes(const std::string& pool_name) override {
    Status v = ValidatePoolName(pool_name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> StatusOr<std::vector<VolumeInfo>> {
      auto pool = FindPool(c, pool_name);
      if (!pool.ok()) return pool.status();
      virStorageVolPtr* vols = nullptr;
      int n = virStoragePoolListAllVolumes(pool->get(), &vols, 0);
      if (n < 0) return LastErrorStatus("listing volumes of storage pool " + pool_name);
      std::vector<VolPtr> owned;
      for (int i = 0; i < n; ++i) owned.emplace_back(vols[i]);
      free(vols);  // NOLINT: malloc'd by libvirt
      std::vector<VolumeInfo> out;
      for (auto& vol : owned) {
        auto info = Describe(vol.get());
        if (info.ok()) out.push_back(std::move(*info));  // a volume deleted meanwhile is skipped
      }
      std::sort(out.begin(), out.end(), [](const VolumeInfo& a, const VolumeInfo& b) { return a.name < b.name; });
      return out;
    });
  }

  StatusOr<VolumeInfo> CreateVolume(const std::string& pool_name, const std::string& name, uint64_t bytes,
                                    const std::string& format, const std::string& backing_path,
                                    const std::string& backing_format) override {
    Status v = CheckNames(pool_name, name);
    if (!v.ok()) return v;
    if (!backing_path.empty()) {
      v = ValidatePath("backing path", backing_path);
      if (!v.ok()) return v;
    }
    return conn_->Call([&](virConnectPtr c) -> StatusOr<VolumeInfo> {
      auto pool = FindPool(c, pool_name);
      if (!pool.ok()) return pool.status();
      auto facts = ReadPoolXml(pool->get(), pool_name);
      if (!facts.ok()) return facts.status();
      Status s = ValidateFormat(facts->type, format);
      if (!s.ok()) return s;
      VolumeSpec spec{name, bytes, format, backing_path, backing_format};
      if (!backing_path.empty()) {
        if (facts->type != "dir") {
          return InvalidError("backing files need a dir pool; storage pool " + pool_name + " is " + facts->type,
                              {{"backing_path", "unsupported by the pool type"}});
        }
        if (format != "qcow2") {
          return InvalidError("a volume over a backing file must be qcow2, not " + format, {{"format", "not qcow2"}});
        }
        if (spec.backing_format.empty()) {
          // Never let anything probe the backing format: ask libvirt what the backing volume is.
          virStorageVolPtr bv = virStorageVolLookupByPath(c, backing_path.c_str());
          if (!bv) {
            TakeLastError();
            return InvalidError("backing format not given and " + backing_path + " is not a known volume",
                                {{"backing_format", "required"}});
          }
          VolPtr owned(bv);
          auto binfo = Describe(bv);
          if (!binfo.ok()) return binfo.status();
          spec.backing_format = binfo->format;
        }
        s = ValidateFormat("dir", spec.backing_format);
        if (!s.ok()) return InvalidError("backing " + s.message(), {{"backing_format", "unsupported"}});
      } else if (bytes == 0) {
        return InvalidError("volume " + name + " needs a size", {{"bytes", "must be > 0"}});
      }
      if (VolumeExists(pool->get(), name)) {
        return Status(Code::kAlreadyExists, "volume " + name + " already exists in storage pool " + pool_name);
      }
      auto vol = CreateFromXml(pool->get(), pool_name, name, RenderVolumeXml(facts->type, spec));
      if (!vol.ok()) return vol.status();
      return Describe(vol->get());
    });
  }

  StatusOr<VolumeInfo> CloneVolume(const std::string& pool_name, const std::string& name,
                                   const std::string& source_pool, const std::string& source_name, uint64_t bytes,
                                   const std::string& format) override {
    Status v = CheckNames(pool_name, name);
    if (v.ok()) v = CheckNames(source_pool, source_name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> StatusOr<VolumeInfo> {
      auto pool = FindPool(c, pool_name);
      if (!pool.ok()) return pool.status();
      auto facts = ReadPoolXml(pool->get(), pool_name);
      if (!facts.ok()) return facts.status();
      Status s = ValidateFormat(facts->type, format);
      if (!s.ok()) return s;
      auto spool = FindPool(c, source_pool);
      if (!spool.ok()) return spool.status();
      auto src = FindVolume(spool->get(), source_pool, source_name);
      if (!src.ok()) return src.status();
      virStorageVolInfo si{};
      if (virStorageVolGetInfo(src->get(), &si) < 0) return LastErrorStatus("reading volume " + source_name);
      if (bytes != 0 && bytes < si.capacity) {
        return InvalidError("volume " + name + " cannot be smaller than its source " + source_name + " (" +
                                std::to_string(si.capacity) + " bytes)",
                            {{"bytes", "smaller than the source"}});
      }
      uint64_t want = std::max<uint64_t>(bytes, si.capacity);
      if (VolumeExists(pool->get(), name)) {
        return Status(Code::kAlreadyExists, "volume " + name + " already exists in storage pool " + pool_name);
      }
      std::string xml = RenderVolumeXml(facts->type, VolumeSpec{name, want, format, "", ""});
      virStorageVolPtr raw = virStorageVolCreateXMLFrom(pool->get(), xml.c_str(), src->get(), 0);
      if (!raw && conn_->is_test() && source_pool != pool_name) {
        // libvirt's test driver looks the source up in the destination pool, so it cannot clone across pools;
        // it keeps no data either: a new volume of the right size stands in.
        TakeLastError();
        raw = virStorageVolCreateXML(pool->get(), xml.c_str(), 0);
      }
      if (!raw) {
        return LastErrorStatus("cloning volume " + source_pool + "/" + source_name + " into " + pool_name + "/" + name);
      }
      VolPtr vol(raw);
      virStorageVolInfo vi{};
      if (virStorageVolGetInfo(vol.get(), &vi) == 0 && vi.capacity < want) {
        s = Resize(c, vol.get(), name, want);  // some backends copy the source size only
        if (!s.ok()) return s;
      } else {
        TakeLastError();
      }
      return Describe(vol.get());
    });
  }

  StatusOr<VolumeInfo> CopyOpenVolume(const std::string& pool_name, const std::string& name,
                                      const std::string& source_pool, const std::string& source_name,
                                      const std::string& format) override {
    auto src = Volume(source_pool, source_name);
    if (!src.ok()) return src.status();
    auto made = CreateVolume(pool_name, name, src->capacity_bytes, format, "", "");
    if (!made.ok()) return made.status();
    if (conn_->is_test()) return made;  // libvirt's test driver keeps no data to copy
    // -n: into the volume just made (an LV, or a qcow2 file libvirt laid out); -f: never probe the source's
    // format; -U: the guest's QEMU holds the source open.
    auto c = ExecChecked({"qemu-img", "convert", "-U", "-n", "-f", src->format.empty() ? "raw" : src->format, "-O",
                          made->format.empty() ? "raw" : made->format, src->path, made->path},
                         3600);
    if (!c.ok()) {
      Status d = DeleteVolume(pool_name, name);
      if (!d.ok()) spdlog::warn("half-made copy not removed: pool={} volume={} error={}", pool_name, name, d.message());
      return Status(c.status().code(), "copying volume " + source_pool + "/" + source_name + ": " + c.status().message());
    }
    return Volume(pool_name, name);
  }

  StatusOr<VolumeInfo> ImportFile(const std::string& pool_name, const std::string& name, const std::string& file,
                                  const std::string& format,
                                  const std::function<void(uint64_t, uint64_t)>& progress) override {
    Status v = CheckNames(pool_name, name);
    if (!v.ok()) return v;
    struct stat st {};
    if (stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return InvalidError("cannot import " + file + ": not a readable regular file", {{"file", "not a file"}});
    }
    uint64_t total = static_cast<uint64_t>(st.st_size);
    if (total == 0) return InvalidError("cannot import " + file + ": it is empty", {{"file", "empty"}});
    auto report = [&](uint64_t done) {
      if (progress) progress(done, total);
    };
    // Not retried on a reconnect: a half-sent stream cannot be resumed; the partial volume is removed instead.
    auto c = conn_->Get();
    if (!c.ok()) return c.status();
    auto pool = FindPool(c->get(), pool_name);
    if (!pool.ok()) return pool.status();
    auto facts = ReadPoolXml(pool->get(), pool_name);
    if (!facts.ok()) return facts.status();
    Status s = ValidateFormat(facts->type, format);
    if (!s.ok()) return s;
    if (VolumeExists(pool->get(), name)) {
      return Status(Code::kAlreadyExists, "volume " + name + " already exists in storage pool " + pool_name);
    }
    // A raw container of exactly the file's size; the bytes that follow decide what it holds.
    auto vol = CreateFromXml(pool->get(), pool_name, name,
                             RenderVolumeXml(facts->type, VolumeSpec{name, total, "raw", "", ""}));
    if (!vol.ok()) return vol.status();
    report(0);
    bool unsupported = false;
    Status up = Upload(c->get(), vol->get(), name, file, total, report, &unsupported);
    if (!up.ok() && unsupported && conn_->is_test()) {
      // libvirt's test driver cannot upload and keeps no data anyway: the volume of the right size stands in.
      report(total);
    } else if (!up.ok()) {
      if (virStorageVolDelete(vol->get(), 0) < 0) TakeLastError();  // nothing half-imported stays behind
      return up;
    }
    RefreshPool(pool->get());  // so that libvirt sees the new content (format, virtual size)
    VolPtr fresh(virStorageVolLookupByName(pool->get(), name.c_str()));
    if (!fresh) TakeLastError();
    auto info = Describe(fresh ? fresh.get() : vol->get());
    if (info.ok() && facts->type == "dir") info->format = format;  // what the caller determined, not a probe
    return info;
  }

  Status DeleteVolume(const std::string& pool_name, const std::string& name) override {
    Status v = CheckNames(pool_name, name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> Status {
      auto pool = FindPool(c, pool_name);
      if (!pool.ok()) return pool.status();
      virStorageVolPtr raw = virStorageVolLookupByName(pool->get(), name.c_str());
      if (!raw) {
        LibvirtError e = TakeLastError();
        return e.code == VIR_ERR_NO_STORAGE_VOL ? Status::Ok()
                                                : ToStatus("looking up volume " + name + " in " + pool_name, e);
      }
      VolPtr vol(raw);
      if (virStorageVolDelete(vol.get(), 0) < 0) {
        LibvirtError e = TakeLastError();
        if (e.code == VIR_ERR_NO_STORAGE_VOL) return Status::Ok();
        return ToStatus("deleting volume " + name + " from storage pool " + pool_name, e);
      }
      return Status::Ok();
    });
  }

  Status ResizeVolume(const std::string& pool_name, const std::string& name, uint64_t bytes) override {
    Status v = CheckNames(pool_name, name);
    if (!v.ok()) return v;
    return conn_->Call([&](virConnectPtr c) -> Status {
      auto pool = FindPool(c, pool_name);
      if (!pool.ok()) return pool.status();
      auto vol = FindVolume(pool->get(), pool_name, name);
      if (!vol.ok()) return vol.status();
      return Resize(c, vol->get(), name, bytes);
    });
  }

 private:
  static Status CheckNames(const std::string& pool, const std::string& name) {
    Status s = ValidatePoolName(pool);
    return s.ok() ? ValidateVolumeName(name) : s;
  }

  // Grow-only resize of `vol`.
  Status Resize(virConnectPtr c, virStorageVolPtr vol, const std::string& name, uint64_t bytes) {
    virStorageVolInfo vi{};
    if (virStorageVolGetInfo(vol, &vi) < 0) return LastErrorStatus("reading volume " + name);
    if (bytes < vi.capacity) {
      return InvalidError("shrinking volume " + name + " from " + std::to_string(vi.capacity) + " to " +
                              std::to_string(bytes) + " bytes is not supported",
                          {{"size", "shrinking is not supported"}});
    }
    if (bytes == vi.capacity) return Status::Ok();
    if (virStorageVolResize(vol, bytes, 0) == 0) return Status::Ok();
    LibvirtError e = TakeLastError();
    if (e.code == VIR_ERR_NO_SUPPORT && conn_->is_test()) return EmulateVolumeResize(c, vol, bytes);
    return ToStatus("resizing volume " + name + " to " + std::to_string(bytes) + " bytes", e);
  }

  // Streams `file` into `vol` in chunks; `*unsupported` when the driver cannot upload at all.
  static Status Upload(virConnectPtr c, virStorageVolPtr vol, const std::string& name, const std::string& file,
                       uint64_t total, const std::function<void(uint64_t)>& report, bool* unsupported) {
    std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!in) return Internal("cannot open " + file + " for import");
    StreamPtr st(virStreamNew(c, 0));
    if (!st) return LastErrorStatus("opening a stream for volume " + name);
    if (virStorageVolUpload(vol, st.get(), 0, total, 0) < 0) {
      LibvirtError e = TakeLastError();
      *unsupported = e.code == VIR_ERR_NO_SUPPORT;
      return ToStatus("uploading into volume " + name, e);
    }
    std::vector<char> buf(kUploadChunk);
    uint64_t done = 0;
    while (done < total) {
      size_t n = std::fread(buf.data(), 1, buf.size(), in.get());
      if (n == 0) {
        virStreamAbort(st.get());
        TakeLastError();
        return Internal("reading " + file + " failed after " + std::to_string(done) + " of " + std::to_string(total) +
                        " bytes");
      }
      size_t off = 0;
      while (off < n) {
        int sent = virStreamSend(st.get(), buf.data() + off, n - off);
        if (sent < 0) {
          Status s = LastErrorStatus("uploading into volume " + name);
          virStreamAbort(st.get());
          TakeLastError();
          return s;
        }
        off += static_cast<size_t>(sent);
      }
      done += n;
      report(done);
    }
    if (virStreamFinish(st.get()) < 0) return LastErrorStatus("finishing the upload into volume " + name);
    return Status::Ok();
  }

  std::shared_ptr<LibvirtConnection> conn_;
};

}  // namespace

Status ValidateVolumeName(const std::string& name) {
  if (name.empty()) return InvalidError("volume name is empty", {{"name", "required"}});
  if (name.size() > 255) return InvalidError("volume name is longer than 255 bytes", {{"name", "too long"}});
  if (name.find('/') != std::string::npos) {
    return InvalidError("volume name \"" + name + "\" must not contain '/'", {{"name", "contains '/'"}});
  }
  if (name[0] == '.') {
    return InvalidError("volume name \"" + name + "\" must not start with '.'", {{"name", "starts with '.'"}});
  }
  if (HasControlChars(name)) return InvalidError("volume name contains control characters", {{"name", "control"}});
  return Status::Ok();
}

std::string RenderVolumeXml(const std::string& pool_type, const VolumeSpec& spec) {
  pugi::xml_document doc;
  pugi::xml_node vol = doc.append_child("volume");
  TextElem(vol, "name", spec.name);
  bool dir = pool_type != "logical";
  if (spec.capacity_bytes > 0 || spec.backing_path.empty()) {
    Attr(TextElem(vol, "capacity", std::to_string(spec.capacity_bytes)), "unit", "bytes");
  }
  if (!dir) return Serialize(doc);  // an LV: fully allocated, raw, no backing store
  Attr(TextElem(vol, "allocation", "0"), "unit", "bytes");  // sparse
  pugi::xml_node target = vol.append_child("target");
  Attr(target.append_child("format"), "type", spec.format.empty() ? "raw" : spec.format);
  // qcow2 v3 (QEMU 1.1+): without it libvirt asks qemu-img for the old 0.10 format (no zero clusters, no
  // lazy refcounts).
  if (spec.format == "qcow2") TextElem(target, "compat", "1.1");
  if (!spec.backing_path.empty()) {
    pugi::xml_node bs = vol.append_child("backingStore");
    TextElem(bs, "path", spec.backing_path);
    Attr(bs.append_child("format"), "type", spec.backing_format.empty() ? "raw" : spec.backing_format);
  }
  return Serialize(doc);
}

Status EmulateVolumeResize(virConnectPtr /*c*/, virStorageVolPtr vol, uint64_t bytes) {
  virStoragePoolPtr raw = virStoragePoolLookupByVolume(vol);
  if (!raw) return LastErrorStatus("finding the pool of a volume");
  PoolPtr pool(raw);
  auto facts = ReadPoolXml(pool.get(), virStoragePoolGetName(pool.get()));
  if (!facts.ok()) return facts.status();
  auto info = Describe(vol);
  if (!info.ok()) return info.status();
  if (bytes < info->capacity_bytes) {
    return InvalidError("shrinking volume " + info->name + " is not supported", {{"size", "shrinking"}});
  }
  if (virStorageVolDelete(vol, 0) < 0) return LastErrorStatus("resizing volume " + info->name + " (delete)");
  std::string xml = RenderVolumeXml(facts->type, VolumeSpec{info->name, bytes, info->format, "", ""});
  auto nv = CreateFromXml(pool.get(), virStoragePoolGetName(pool.get()), info->name, xml);
  return nv.ok() ? Status::Ok() : nv.status();
}

std::unique_ptr<StoragePools> NewLibvirtStorage(std::shared_ptr<LibvirtConnection> conn) {
  return std::make_unique<LibvirtStorage>(std::move(conn));
}

}  // namespace stratus::host
