#include "stratus/instance/instance.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/image/image.h"
#include "stratus/network/dnsmasq.h"
#include "stratus/network/plan.h"
#include "stratus/volume/volume.h"

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
  if (r.root_disk && args.find("root=") == std::string::npos) args += " root=/dev/vda";
  if (!d.kernel_path.empty()) d.cmdline = args;
  d.disks = r.disks;
  d.nics = r.nics;
  d.serial_log_path = ConsoleLogPath(opts.data_dir, ns, name);
  return d;
}

InstanceReconciler::InstanceReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* images,
                                       runtime::Informer* flavors, host::Hypervisor* hv, host::StoragePools* storage,
                                       Options opts, runtime::Informer* volumes, runtime::Informer* networks)
    : client_(client), instances_(instances), images_(images), flavors_(flavors), volumes_(volumes),
      networks_(networks), hv_(hv),
      storage_(storage), opts_(std::move(opts)), events_(client, "instance-agent", opts_.node) {}

namespace {

bool OwnedBy(const json& obj, const std::string& uid) {
  if (!obj.contains("metadata") || !obj["metadata"].contains("ownerReferences")) return false;
  for (const auto& o : obj["metadata"]["ownerReferences"]) {
    if (o.value("uid", "") == uid) return true;
  }
  return false;
}

bool SameDisk(const host::DomainSpec::Disk& a, const host::DomainSpec::Disk& b) {
  return a.target == b.target && a.path == b.path;
}

}  // namespace

StatusOr<std::string> InstanceReconciler::EnsureRootVolume(const json& inst, std::string* not_ready) {
  auto [ns, name] = runtime::SplitKey(runtime::KeyFor(inst));
  const json& spec = inst["spec"];
  std::string root = volume::RootVolumeName(inst);
  std::string uid = MetaString(inst, "uid");
  json rd = spec.value("rootDisk", json::object());
  json rv = volumes_->Get(ns + "/" + root);
  if (rv.is_null()) {
    // The informer may lag behind a create we made: ask the API before creating.
    auto got = client_->Get("volumes", ns, root);
    if (got.ok()) rv = *got;
    else if (got.status().code() != Code::kNotFound) return got.status();
  }
  if (rv.is_null()) {
    std::string img_name = spec.value("image", "");
    json img = images_->Get(ns + "/" + img_name);
    if (img.is_null()) {
      *not_ready = "image \"" + img_name + "\" does not exist";
      return root;
    }
    if (img["spec"].value("type", "disk") != "disk") {
      *not_ready = "spec.image: image \"" + img_name + "\" is a " + img["spec"].value("type", "") +
                   " image; spec.image needs a disk image";
      return root;
    }
    std::string size = rd.value("size", "");
    if (size.empty()) {
      uint64_t vs = img.contains("status") ? img["status"].value("virtualSize", uint64_t{0}) : 0;
      if (vs == 0) {
        *not_ready = "image \"" + img_name + "\" is not Ready yet (its size sizes the root disk)";
        return root;
      }
      size = FormatQuantityBytes(vs);
    }
    json v = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Volume"},
              {"metadata",
               {{"name", root},
                {"namespace", ns},
                {"labels", {{volume::kRootOfLabel, name}}},
                {"ownerReferences", json::array({{{"apiVersion", "stratus.io/v1"},
                                                  {"kind", "Instance"},
                                                  {"name", name},
                                                  {"uid", uid},
                                                  {"controller", true},
                                                  {"blockOwnerDeletion", true}}})}}},
              {"spec", {{"size", size}, {"format", "qcow2"}, {"nodeName", opts_.node}, {"source", {{"image", img_name}}}}}};
    if (!rd.value("pool", "").empty()) v["spec"]["pool"] = rd["pool"];
    auto c = client_->Create("volumes", ns, v);
    if (!c.ok() && c.status().code() != Code::kAlreadyExists) return c.status();
    if (c.ok()) {
      events_.Record(inst, "Normal", "RootVolumeCreated", "root volume " + root + " (" + size + ") from image " + img_name);
      return root;
    }
    auto got = client_->Get("volumes", ns, root);
    if (!got.ok()) return got.status();
    rv = *got;
  }
  if (!OwnedBy(rv, uid)) {
    *not_ready = "a Volume named " + root + " already exists and does not belong to this instance; delete or "
                 "rename it so the root disk can be made";
    return root;
  }
  // Grow the root volume to rootDisk.size (never shrink it).
  std::string want = rd.value("size", "");
  if (!want.empty()) {
    auto w = ParseQuantityBytes(want);
    auto have = ParseQuantityBytes(rv["spec"].value("size", "0"));
    if (w.ok() && have.ok() && *w > *have) {
      auto p = client_->Patch("volumes", ns, root, {{"spec", {{"size", want}}}});
      if (!p.ok()) return p.status();
    }
  }
  return root;
}

Status InstanceReconciler::ResolveDisks(const json& inst, Resolved* r, std::vector<std::string>* waiting,
                                        bool* in_use) {
  auto [ns, name] = runtime::SplitKey(runtime::KeyFor(inst));
  auto uses = volume::VolumesOf(inst);
  if (uses.empty()) return Status::Ok();
  if (volumes_ == nullptr) {
    waiting->push_back("this agent does not manage volumes");
    return Status::Ok();
  }
  for (const auto& u : uses) {
    json v = volumes_->Get(ns + "/" + u.volume);
    std::string what = (u.root ? "root volume " : "volume ") + u.volume;
    if (v.is_null()) {
      waiting->push_back(what + " does not exist");
      continue;
    }
    std::string node = v["spec"].value("nodeName", "");
    if (node.empty()) {
      waiting->push_back(what + " is not placed on a node yet");
      continue;
    }
    if (node != opts_.node) {
      waiting->push_back(what + " is on node " + node + ", this instance on " + opts_.node +
                         " (local storage cannot be attached across nodes)");
      continue;
    }
    const json st = v.value("status", json::object());
    if (st.value("path", "").empty()) {
      std::string phase = st.value("phase", "Pending");
      json ready = runtime::GetCondition(v, "Ready");
      std::string why = ready.is_null() ? "" : ": " + ready.value("message", "");
      waiting->push_back(what + " is not created yet (" + phase + why + ")");
      continue;
    }
    std::string holder = st.contains("attachment") ? st["attachment"].value("instance", "") : "";
    if (holder != name) {
      if (holder.empty()) {
        waiting->push_back(what + " is being reserved for this instance");
      } else {
        *in_use = true;
        waiting->push_back(what + " is attached to instance " + holder + "; one instance at a time");
      }
      continue;
    }
    host::DomainSpec::Disk d;
    d.path = st["path"];
    d.format = st.value("format", v["spec"].value("format", "qcow2"));
    if (d.format != "raw" && d.format != "qcow2") d.format = "raw";
    d.block = d.path.rfind("/dev/", 0) == 0;
    d.target = u.device;
    if (u.root) r->root_disk = true;
    r->disks.push_back(d);
  }
  return Status::Ok();
}

void InstanceReconciler::ResolveNics(const json& inst, Resolved* r, std::vector<std::string>* waiting) {
  auto [ns, name] = runtime::SplitKey(runtime::KeyFor(inst));
  const json& spec = inst["spec"];
  if (!spec.contains("networks") || !spec["networks"].is_array() || networks_ == nullptr) return;
  std::string uid = MetaString(inst, "uid");
  for (size_t i = 0; i < spec["networks"].size(); ++i) {
    std::string net_name = spec["networks"][i].value("network", "");
    json net = networks_->Get(ns + "/" + net_name);
    if (net.is_null()) {
      waiting->push_back("network " + net_name + " does not exist");
      continue;
    }
    std::string ip, mac;
    if (net.contains("status") && net["status"].contains("allocations")) {
      for (const auto& [addr, a] : net["status"]["allocations"].items()) {
        if (a.value("uid", "") == uid && a.value("nic", -1) == static_cast<int>(i)) {
          ip = addr;
          mac = a.value("mac", "");
        }
      }
    }
    if (ip.empty() || mac.empty()) {
      json refused = runtime::GetCondition(inst, "AddressesAllocated");  // IPAM's
      if (!refused.is_null() && refused.value("reason", "") == "AddressRefused") {
        waiting->push_back(refused.value("message", ""));
      } else {
        waiting->push_back("waiting for an address on network " + net_name);
      }
      continue;
    }
    host::DomainSpec::Nic nic;
    nic.mac = mac;
    nic.bridge = network::BridgeName(ns, net_name);
    nic.tap = network::TapName(uid, static_cast<int>(i));
    r->nics.push_back(nic);
    json addr = {{"network", net_name}, {"ip", ip}, {"mac", mac}, {"interface", nic.tap}};
    if (!opts_.network_state_dir.empty()) {  // the node's dnsmasq files for this bridge
      host::DnsmasqFiles files{opts_.network_state_dir + "/" + nic.bridge};
      addr["leased"] = network::LeaseConfirms(network::ReadLeaseFile(files.leases()), mac, ip,
                                              static_cast<int64_t>(std::time(nullptr)));
    }
    r->addresses.push_back(std::move(addr));
  }
}

Status InstanceReconciler::SyncLiveDisks(const json& inst, const std::string& dom,
                                         const std::vector<host::DomainSpec::Disk>& want) {
  auto live = hv_->Disks(dom, false);
  if (!live.ok()) return live.status();
  auto persistent = hv_->Disks(dom, true);
  for (const auto& l : *live) {
    if (l.device != "disk") continue;
    bool keep = false;
    for (const auto& w : want) keep |= SameDisk(l, w);
    if (keep) continue;
    // An unplug needs the guest's help and may still be under way: ask again, but tell once.
    bool first = false;
    if (persistent.ok()) {
      for (const auto& p : *persistent) first |= SameDisk(p, l);
    }
    Status s = hv_->DetachDisk(dom, l.target);
    if (!s.ok()) return s;
    if (first) events_.Record(inst, "Normal", "VolumeDetached", "disk " + l.target + " (" + l.path + ") unplugged");
  }
  for (const auto& w : want) {
    bool have = false;
    for (const auto& l : *live) have |= SameDisk(l, w);
    if (have) continue;
    bool busy = false;
    for (const auto& l : *live) busy |= l.target == w.target;
    if (busy) continue;  // the old disk's unplug has not finished: next pass
    Status s = hv_->AttachDisk(dom, w);
    if (!s.ok()) return s;
    events_.Record(inst, "Normal", "VolumeAttached", "disk " + w.target + " (" + w.path + ") hot-plugged");
  }
  return Status::Ok();
}

Status InstanceReconciler::SyncLiveNics(const json& inst, const std::string& dom,
                                        const std::vector<host::DomainSpec::Nic>& want) {
  auto live = hv_->Nics(dom, false);
  if (!live.ok()) return live.status();
  auto wanted = [&](const std::string& mac) {
    for (const auto& w : want) {
      if (w.mac == mac) return true;
    }
    return false;
  };
  auto persistent = hv_->Nics(dom, true);
  for (const auto& l : *live) {
    if (l.mac.empty() || wanted(l.mac)) continue;
    // Like a disk, the unplug needs the guest and may still be under way: ask again, tell once.
    bool first = false;
    if (persistent.ok()) {
      for (const auto& p : *persistent) first |= p.mac == l.mac;
    }
    Status s = hv_->DetachNic(dom, l.mac);
    if (!s.ok()) return s;
    if (first) events_.Record(inst, "Normal", "NicDetached", "NIC " + l.mac + " (" + l.bridge + ") unplugged");
  }
  for (const auto& w : want) {
    bool have = false;
    for (const auto& l : *live) have |= l.mac == w.mac;
    if (have) continue;
    Status s = hv_->AttachNic(dom, w);
    if (!s.ok()) return s;
    events_.Record(inst, "Normal", "NicAttached", "NIC " + w.mac + " hot-plugged on bridge " + w.bridge);
  }
  return Status::Ok();
}

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
  if (!image::CachedOn(img, opts_.node)) {
    json e = image::NodeEntry(img, opts_.node);
    *not_ready = "image \"" + image_name + "\" is not Ready on node " + opts_.node + " yet (" +
                 (e.is_object() ? e.value("phase", "Pending") : std::string("Pending")) + ")";
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
        runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "instances", inst, d),
                              "status of instance " + key);
        events_.Record(inst, "Warning", "TeardownFailed", s.message());
        return s;
      }
    }
  }
  // The domain is gone: nothing is attached any more. Say so before releasing, so volumes can move on.
  if (inst.contains("status") && inst["status"].contains("volumes") && !inst["status"]["volumes"].empty()) {
    json d = inst;
    d["status"]["volumes"] = json::array();
    auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, d);
    if (!u.ok()) return u.status();
    inst = *u;
  }
  if (!inst["spec"].value("image", "").empty()) {
    std::string root = inst.contains("status") ? inst["status"].value("rootVolume", "") : "";
    if (root.empty()) root = volume::RootVolumeName(inst);
    auto rv = client_->Get("volumes", ns, root);
    if (rv.ok() && OwnedBy(*rv, MetaString(inst, "uid"))) {
      bool keep = !inst["spec"].value("rootDisk", json::object()).value("deleteOnTermination", true);
      if (keep) {
        json refs = json::array();
        for (const auto& o : (*rv)["metadata"]["ownerReferences"]) {
          if (o.value("uid", "") != MetaString(inst, "uid")) refs.push_back(o);
        }
        auto p = client_->Patch("volumes", ns, root, {{"metadata", {{"ownerReferences", refs}}}});
        if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
        events_.Record(inst, "Normal", "RootVolumeKept", "root volume " + root + " kept (deleteOnTermination: false)");
      } else {
        auto d = client_->Delete("volumes", ns, root, MetaString(*rv, "uid"));
        if (!d.ok() && d.status().code() != Code::kNotFound) return d.status();
      }
    } else if (!rv.ok() && rv.status().code() != Code::kNotFound) {
      return rv.status();
    }
  }
  std::error_code ec;
  fs::remove_all(fs::path(ConsoleLogPath(opts_.data_dir, ns, name)).parent_path(), ec);
  // Drop our finalizer; the API server removes the object when none remain.
  Status rf = runtime::RemoveFinalizer(client_, "instances", inst, kFinalizer);
  if (!rf.ok()) return rf;
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
    if (!runtime::HasFinalizer(inst, kFinalizer)) return Result::Done();
    return Teardown(inst, key);
  }
  // 1. Our finalizer first, so nothing we create can outlive the object.
  auto fin = runtime::AddFinalizer(client_, "instances", inst, kFinalizer);
  if (!fin.ok()) return fin.status();
  inst = *fin;
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
  if (not_ready.empty() && r.kernel_path.empty() && spec.value("image", "").empty()) {
    not_ready = "nothing to boot: set spec.image (a disk image) or spec.kernelImage";
  }
  if (not_ready.empty() && !spec.value("image", "").empty()) {
    if (volumes_ == nullptr) {
      not_ready = "this agent does not manage volumes, so spec.image cannot be used";
    } else {
      auto root = EnsureRootVolume(inst, &not_ready);
      if (!root.ok()) return root.status();
      desired["status"]["rootVolume"] = *root;
    }
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

  // 2b. Volumes: the root volume and spec.volumes, each attached only when this instance holds it.
  std::vector<std::string> waiting;
  bool in_use = false;
  Status rs = ResolveDisks(inst, &r, &waiting, &in_use);
  if (!rs.ok()) return rs;
  // 2c. NICs: an address from IPAM for each, on the network's bridge.
  std::vector<std::string> net_waiting;
  ResolveNics(inst, &r, &net_waiting);
  bool wants_nics = spec.contains("networks") && spec["networks"].is_array() && !spec["networks"].empty();
  if (wants_nics && networks_ == nullptr) {
    runtime::SetCondition(desired, "NetworkReady", "False", "NetworkingDisabled",
                          "node " + opts_.node + " runs without networking; the instance has no NICs");
  } else if (!net_waiting.empty()) {
    std::string msg;
    for (const auto& w : net_waiting) msg += (msg.empty() ? "" : "; ") + w;
    bool refused = false;
    json c = runtime::GetCondition(inst, "AddressesAllocated");  // written by IPAM only
    refused = !c.is_null() && c.value("reason", "") == "AddressRefused";
    runtime::SetCondition(desired, "NetworkReady", "False", refused ? "AddressRefused" : "AddressPending", msg);
  } else if (wants_nics) {
    runtime::SetCondition(desired, "NetworkReady", "True", "AddressesAllocated", "every NIC has an address");
  }
  desired["status"]["addresses"] = r.addresses;
  std::string vol_msg;
  for (const auto& w : waiting) vol_msg += (vol_msg.empty() ? "" : "; ") + w;
  if (!waiting.empty()) {
    const std::string& msg = vol_msg;
    if (runtime::SetCondition(desired, "VolumesReady", "False", in_use ? "VolumeInUse" : "VolumesNotReady", msg)) {
      events_.Record(inst, in_use ? "Warning" : "Normal", in_use ? "VolumeInUse" : "WaitingForVolumes", msg);
    }
  } else if (!volume::VolumesOf(inst).empty()) {
    runtime::SetCondition(desired, "VolumesReady", "True", "VolumesAttached", "every volume is attached");
  } else {
    runtime::RemoveCondition(desired, "VolumesReady");
  }

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
  if (info->state == host::DomainState::kNotFound && (!waiting.empty() || !net_waiting.empty())) {
    // First boot waits for every volume and address (as Nova does); later volumes are hot-plugged as they come.
    std::string msg = vol_msg;
    for (const auto& w : net_waiting) msg += (msg.empty() ? "" : "; ") + w;
    desired["status"]["phase"] = "Pending";
    runtime::SetCondition(desired, "Ready", "False",
                          in_use ? "VolumeInUse" : (waiting.empty() ? "NetworkNotReady" : "VolumesNotReady"), msg);
    Status s = write_status();
    if (!s.ok()) return s;
    return Result::After(std::chrono::seconds(3));
  }
  bool disks_differ = false;
  if (info->state != host::DomainState::kNotFound) {
    auto persistent = hv_->Disks(dom, true);
    if (persistent.ok()) {
      std::vector<host::DomainSpec::Disk> have;
      for (const auto& d : *persistent) {
        if (d.device == "disk") have.push_back(d);
      }
      disks_differ = have.size() != ds.disks.size();
      for (size_t i = 0; !disks_differ && i < have.size(); ++i) {
        bool found = false;
        for (const auto& w : ds.disks) found |= SameDisk(have[i], w);
        disks_differ = !found;
      }
    }
  }
  if (info->state == host::DomainState::kNotFound || gen != observed || disks_differ) {
    Status s = hv_->Define(ds);
    if (!s.ok()) {
      desired["status"]["phase"] = "Failed";
      runtime::SetCondition(desired, "Ready", "False", "DefineFailed", s.message());
      runtime::WarnIfFailed(write_status(), "status of instance " + key);
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
  bool is_running = info->state == host::DomainState::kRunning || info->state == host::DomainState::kPaused;
  if (is_running) {
    Status s = SyncLiveDisks(inst, dom, ds.disks);
    if (!s.ok()) {
      runtime::SetCondition(desired, "VolumesReady", "False", "HotplugFailed", s.message());
      runtime::WarnIfFailed(write_status(), "status of instance " + key);
      events_.Record(inst, "Warning", "HotplugFailed", s.message());
      return s;
    }
    if (networks_ != nullptr) {  // without networking the domain has no NICs of ours
      s = SyncLiveNics(inst, dom, ds.nics);
      if (!s.ok()) {
        runtime::SetCondition(desired, "NetworkReady", "False", "HotplugFailed", s.message());
        runtime::WarnIfFailed(write_status(), "status of instance " + key);
        events_.Record(inst, "Warning", "HotplugFailed", s.message());
        return s;
      }
    }
  }

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
        runtime::WarnIfFailed(write_status(), "status of instance " + key);
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
  // What the domain really has attached (the volumes' status mirrors this).
  {
    auto now = hv_->Lookup(dom);
    bool live = now.ok() && (now->state == host::DomainState::kRunning || now->state == host::DomainState::kPaused);
    auto disks = hv_->Disks(dom, !live);
    if (disks.ok()) {
      json vols = json::array();
      for (const auto& d : *disks) {
        if (d.device != "disk") continue;
        for (const auto& u : volume::VolumesOf(inst)) {
          json v = volumes_ ? volumes_->Get(ns + "/" + u.volume) : json();
          if (!v.is_null() && v.contains("status") && v["status"].value("path", "") == d.path) {
            vols.push_back({{"name", u.volume}, {"device", d.target}});
          }
        }
      }
      desired["status"]["volumes"] = vols;
    }
  }
  Status s = write_status();
  if (!s.ok()) return s;
  if (desired["status"].value("phase", "") == "Running") {
    for (const auto& a : r.addresses) {
      // The guest asks for its lease shortly after boot: look again soon rather than at the next resync.
      if (!a.value("leased", true)) {
        return Result::After(std::min<std::chrono::milliseconds>(opts_.lease_poll, opts_.resync));
      }
    }
  }
  return next;
}

std::vector<runtime::WatchSpec> InstanceReconciler::Watches() {
  runtime::Informer* instances = instances_;
  // This node's instances in `ns` for which `uses(instance)` holds.
  auto local = [instances](const std::string& ns, const std::function<bool(const json&)>& uses) {
    std::vector<std::string> keys;
    for (const auto& i : instances->List()) {
      if (MetaString(i, "namespace") == ns && uses(i)) keys.push_back(runtime::KeyFor(i));
    }
    return keys;
  };
  return {
      // Its own objects, with a drift check of what is on the node.
      {instances_, nullptr, kDriftCheck},
      // An image becoming Ready wakes the instances that boot from it.
      {images_,
       [local](const std::string&, const json& img) {
         std::string name = MetaString(img, "name");
         return local(MetaString(img, "namespace"), [&](const json& i) {
           const json& s = i["spec"];
           return s.value("kernelImage", "") == name || s.value("ramdiskImage", "") == name ||
                  s.value("image", "") == name;
         });
       }},
      // A volume changing (created, reserved, resized) wakes the instances that ask for it or hold it.
      {volumes_,
       [local](const std::string&, const json& vol) {
         std::string name = MetaString(vol, "name");
         return local(MetaString(vol, "namespace"), [&](const json& i) {
           bool uses = volume::ReportsAttached(i, name);
           for (const auto& u : volume::VolumesOf(i)) uses |= u.volume == name;
           return uses;
         });
       }},
      // An address allocated (the network's table changed) wakes the instances on that network.
      {networks_,
       [local](const std::string&, const json& net) {
         std::string name = MetaString(net, "name");
         return local(MetaString(net, "namespace"), [&](const json& i) {
           if (!i["spec"].contains("networks")) return false;
           for (const auto& n : i["spec"]["networks"]) {
             if (n.value("network", "") == name) return true;
           }
           return false;
         });
       }},
  };
}

}  // namespace stratus::instance
