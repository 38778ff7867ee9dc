#include "stratus/instance/instance.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "stratus/core/object.h"
#include "stratus/image/image.h"

namespace stratus::instance {
namespace fs = std::filesystem;
using runtime::Result;

std::string DomainName(const std::string& ns, const std::string& name) { return "stratus_" + ns + "_" + name; }

std::string ConsoleLogPath(const std::string& data_dir, const std::string& ns, const std::string& name) {
  return (fs::path(data_dir) / "instances" / (ns + "_" + name) / "console.log").string();
}

host::DomainSpec BuildDomainSpec(const json& inst, const Resolved& r, const Options& opts) {
  host::DomainSpec d;
  std::string ns = MetaString(inst, "namespace"), name = MetaString(inst, "name");
  d.name = DomainName(ns, name);
  d.uuid = MetaString(inst, "uid");  // the domain UUID is the Instance uid: one domain per instance, ever
  d.instance_uid = d.uuid;
  d.instance_ref = ns + "/" + name;
  d.virt_type = opts.virt_type;
  d.vcpus = r.vcpus;
  d.memory_mib = static_cast<uint64_t>(r.memory_mib);
  d.kernel_path = r.kernel_path;
  d.initrd_path = r.initrd_path;
  const json& spec = inst["spec"];
  std::string args = "console=ttyS0";
  if (spec.contains("kernelArgs") && spec["kernelArgs"].is_string() && !spec["kernelArgs"].get<std::string>().empty()) {
    args += " " + spec["kernelArgs"].get<std::string>();
  }
  if (!d.kernel_path.empty()) d.cmdline = args;
  d.serial_log_path = ConsoleLogPath(opts.data_dir, ns, name);
  return d;
}

InstanceReconciler::InstanceReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* images,
                                       runtime::Informer* flavors, host::Hypervisor* hv, host::StoragePools* storage,
                                       Options opts)
    : client_(client), instances_(instances), images_(images), flavors_(flavors), hv_(hv), storage_(storage),
      opts_(std::move(opts)), events_(client, "instance-agent", opts_.node) {}

StatusOr<std::string> InstanceReconciler::ImagePath(const std::string& ns, const std::string& image_name,
                                                    const std::string& want_type, std::string* not_ready) {
  json img = images_->Get(ns + "/" + image_name);
  if (img.is_null()) {
    *not_ready = "image \"" + image_name + "\" does not exist";
    return std::string();
  }
  std::string type = img["spec"].value("type", "disk");
  if (type != want_type) {
    *not_ready = "image \"" + image_name + "\" is of type " + type + ", not " + want_type;
    return std::string();
  }
  if (!img.contains("status") || img["status"].value("phase", "") != "Ready") {
    *not_ready = "image \"" + image_name + "\" is not Ready yet (" +
                 (img.contains("status") ? img["status"].value("phase", "Pending") : std::string("Pending")) + ")";
    return std::string();
  }
  auto v = storage_->Volume(opts_.image_pool, image::CacheVolumeName(img));
  if (!v.ok()) {
    *not_ready = "image \"" + image_name + "\" is not cached on node " + opts_.node + " yet";
    return std::string();
  }
  return v->path;
}

StatusOr<Result> InstanceReconciler::Teardown(json inst, const std::string& key) {
  auto [ns, name] = runtime::SplitKey(key);
  std::string dom = DomainName(ns, name);
  auto info = hv_->Lookup(dom);
  if (info.ok() && info->state != host::DomainState::kNotFound) {
    if (!info->instance_uid.empty() && info->instance_uid != MetaString(inst, "uid")) {
      spdlog::warn("instance teardown: domain belongs to another object, left alone: domain={}", dom);
    } else {
      Status s = hv_->Destroy(dom);
      if (s.ok()) s = hv_->Undefine(dom);
      if (!s.ok()) {
        json d = inst;
        d["status"]["phase"] = "Terminating";
        runtime::SetCondition(d, "Ready", "False", "TeardownFailed", s.message());
        runtime::UpdateStatusIfChanged(client_, "instances", inst, d);
        events_.Record(inst, "Warning", "TeardownFailed", s.message());
        return s;
      }
    }
  }
  std::error_code ec;
  fs::remove_all(fs::path(ConsoleLogPath(opts_.data_dir, ns, name)).parent_path(), ec);
  // Drop our finalizer; the API server removes the object when none remain.
  json fins = json::array();
  for (const auto& f : inst["metadata"].value("finalizers", json::array())) {
    if (f != kFinalizer) fins.push_back(f);
  }
  auto p = client_->Patch("instances", ns, name,
                          {{"metadata", {{"finalizers", fins}, {"resourceVersion", MetaString(inst, "resourceVersion")}}}});
  if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
  events_.Record(inst, "Normal", "Deleted", "domain " + dom + " destroyed and undefined on node " + opts_.node);
  spdlog::info("instance torn down: instance={} domain={}", key, dom);
  std::lock_guard lock(mu_);
  shutdown_started_.erase(key);
  return Result::Done();
}

StatusOr<Result> InstanceReconciler::Reconcile(const std::string& key) {
  json inst = instances_->Get(key);
  auto [ns, name] = runtime::SplitKey(key);
  std::string dom = DomainName(ns, name);
  if (inst.is_null()) return Result::Done();  // our finalizer means deletions are handled while the object exists
  if (inst["spec"].value("nodeName", "") != opts_.node) return Result::Done();
  if (!MetaString(inst, "deletionTimestamp").empty()) {
    bool ours = false;
    for (const auto& f : inst["metadata"].value("finalizers", json::array())) ours |= f == kFinalizer;
    if (!ours) return Result::Done();
    return Teardown(inst, key);
  }
  // 1. Our finalizer first, so nothing we create can outlive the object.
  bool has_fin = false;
  json fins = inst["metadata"].value("finalizers", json::array());
  for (const auto& f : fins) has_fin |= f == kFinalizer;
  if (!has_fin) {
    fins.push_back(kFinalizer);
    auto p = client_->Patch("instances", ns, name,
                            {{"metadata", {{"finalizers", fins}, {"resourceVersion", MetaString(inst, "resourceVersion")}}}});
    if (!p.ok()) return p.status();
    inst = *p;
  }
  json desired = inst;
  desired["status"]["nodeName"] = opts_.node;
  auto write_status = [&]() -> Status {
    desired["status"]["observedGeneration"] = inst["metadata"].value("generation", 1);
    auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, desired);
    return u.ok() ? Status::Ok() : u.status();
  };

  // 2. Resolve flavor and images.
  Resolved r;
  const json& spec = inst["spec"];
  if (spec.contains("resources")) {
    r.vcpus = spec["resources"].value("vcpus", 1);
    r.memory_mib = spec["resources"].value("memoryMiB", int64_t{256});
  } else {
    json fl = flavors_->Get(spec.value("instanceType", ""));
    if (fl.is_null()) {
      desired["status"]["phase"] = "Pending";
      runtime::SetCondition(desired, "Ready", "False", "InstanceTypeNotFound",
                            "instanceType \"" + spec.value("instanceType", "") + "\" not found");
      Status s = write_status();
      if (!s.ok()) return s;
      return Result::After(std::chrono::seconds(5));
    }
    r.vcpus = fl["spec"].value("vcpus", 1);
    r.memory_mib = fl["spec"].value("memoryMiB", int64_t{256});
  }
  std::string not_ready;
  if (!spec.value("kernelImage", "").empty()) {
    auto p = ImagePath(ns, spec["kernelImage"], "kernel", &not_ready);
    if (!p.ok()) return p.status();
    r.kernel_path = *p;
  }
  if (not_ready.empty() && !spec.value("ramdiskImage", "").empty()) {
    auto p = ImagePath(ns, spec["ramdiskImage"], "ramdisk", &not_ready);
    if (!p.ok()) return p.status();
    r.initrd_path = *p;
  }
  if (not_ready.empty() && r.kernel_path.empty()) {
    not_ready = "no kernelImage: disk-image boot (spec.image) arrives with Volumes";
  }
  if (!not_ready.empty()) {
    bool changed = runtime::SetCondition(desired, "ImagesReady", "False", "ImageNotReady", not_ready);
    runtime::SetCondition(desired, "Ready", "False", "ImagesNotReady", not_ready);
    if (desired["status"].value("phase", "") != "Pending") desired["status"]["phase"] = "Pending";
    Status s = write_status();
    if (!s.ok()) return s;
    if (changed) events_.Record(inst, "Normal", "WaitingForImages", not_ready);
    return Result::After(std::chrono::seconds(3));
  }
  runtime::SetCondition(desired, "ImagesReady", "True", "ImagesCached", "images cached on node " + opts_.node);

  // 3. The domain: never touch one that is not ours.
  auto info = hv_->Lookup(dom);
  if (!info.ok()) return info.status();
  if (info->state != host::DomainState::kNotFound && !info->instance_uid.empty() &&
      info->instance_uid != MetaString(inst, "uid")) {
    std::string msg = "a domain named " + dom + " exists on node " + opts_.node +
                      " that belongs to another object (uid " + info->instance_uid + "); it is left alone";
    desired["status"]["phase"] = "Failed";
    runtime::SetCondition(desired, "Ready", "False", "DomainConflict", msg);
    Status s = write_status();
    if (!s.ok()) return s;
    return Result::After(std::chrono::seconds(30));
  }
  host::DomainSpec ds = BuildDomainSpec(inst, r, opts_);
  std::error_code ec;
  fs::create_directories(fs::path(ds.serial_log_path).parent_path(), ec);
  int64_t gen = inst["metadata"].value("generation", int64_t{1});
  int64_t observed = inst.contains("status") ? inst["status"].value("observedGeneration", int64_t{0}) : 0;
  bool created = false;
  if (info->state == host::DomainState::kNotFound || gen != observed) {
    Status s = hv_->Define(ds);
    if (!s.ok()) {
      desired["status"]["phase"] = "Failed";
      runtime::SetCondition(desired, "Ready", "False", "DefineFailed", s.message());
      write_status();
      events_.Record(inst, "Warning", "DefineFailed", s.message());
      return s;
    }
    created = info->state == host::DomainState::kNotFound;
    if (created) {
      events_.Record(inst, "Normal", "Defined", "domain " + dom + " defined on node " + opts_.node);
    }
    info = hv_->Lookup(dom);
    if (!info.ok()) return info.status();
  }
  desired["status"]["domainUUID"] = info->uuid;

  // 4. Power state.
  std::string want = spec.value("powerState", "Running");
  bool running = info->state == host::DomainState::kRunning || info->state == host::DomainState::kPaused;
  Result next = Result::After(opts_.resync);
  if (want == "Running") {
    {
      std::lock_guard lock(mu_);
      shutdown_started_.erase(key);
    }
    std::string restart_req = spec.value("restartRequestedAt", "");
    std::string restarted = inst.contains("status") ? inst["status"].value("restartedAt", "") : "";
    if (running && !restart_req.empty() && restart_req != restarted) {
      Status s = hv_->Reboot(dom);
      if (!s.ok()) return s;
      desired["status"]["restartedAt"] = restart_req;
      events_.Record(inst, "Normal", "Restarted", "domain " + dom + " restarted on request");
    } else if (!restart_req.empty() && restart_req != restarted) {
      desired["status"]["restartedAt"] = restart_req;  // a start below satisfies the request
    }
    if (!running) {
      Status s = hv_->Start(dom);
      if (!s.ok()) {
        desired["status"]["phase"] = "Failed";
        runtime::SetCondition(desired, "Ready", "False", "StartFailed", s.message());
        write_status();
        events_.Record(inst, "Warning", "StartFailed", s.message());
        return s;
      }
      bool was_ours = inst.contains("status") && inst["status"].value("phase", "") == "Running";
      events_.Record(inst, "Normal", was_ours ? "Repaired" : "Started",
                     was_ours ? "domain " + dom + " was not running; started it again"
                              : "domain " + dom + " started on node " + opts_.node);
    }
    desired["status"]["phase"] = "Running";
    desired["status"]["powerState"] = "Running";
    runtime::SetCondition(desired, "Ready", "True", "Running", "domain " + dom + " is running on node " + opts_.node);
  } else {  // Stopped
    if (running) {
      std::chrono::steady_clock::time_point started;
      {
        std::lock_guard lock(mu_);
        auto it = shutdown_started_.find(key);
        if (it == shutdown_started_.end()) it = shutdown_started_.emplace(key, std::chrono::steady_clock::now()).first;
        started = it->second;
      }
      if (std::chrono::steady_clock::now() - started < opts_.shutdown_timeout) {
        Status s = hv_->Shutdown(dom);
        if (!s.ok()) spdlog::debug("graceful shutdown request failed: domain={} error={}", dom, s.message());
        desired["status"]["phase"] = "Stopping";
        runtime::SetCondition(desired, "Ready", "False", "Stopping", "graceful shutdown requested");
        Status ws = write_status();
        if (!ws.ok()) return ws;
        return Result::After(std::chrono::seconds(1));
      }
      Status s = hv_->Destroy(dom);
      if (!s.ok()) return s;
      events_.Record(inst, "Warning", "ForcedOff",
                     "the guest did not shut down within " + std::to_string(opts_.shutdown_timeout.count()) +
                         " s; powered off");
    } else {
      std::lock_guard lock(mu_);
      if (shutdown_started_.erase(key)) events_.Record(inst, "Normal", "Stopped", "domain " + dom + " shut down");
    }
    desired["status"]["phase"] = "Stopped";
    desired["status"]["powerState"] = "Stopped";
    runtime::SetCondition(desired, "Ready", "False", "Stopped", "powerState is Stopped");
  }
  Status s = write_status();
  if (!s.ok()) return s;
  return next;
}

}  // namespace stratus::instance
