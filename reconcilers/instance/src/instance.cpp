#include "stratus/instance/instance.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>

#include "stratus/core/object.h"
#include "stratus/image/image.h"
#include "stratus/runtime/migration_phases.h"
#include "stratus/network/plan.h"
#include "stratus/volume/volume.h"

namespace stratus::instance {
namespace fs = std::filesystem;
using runtime::Result;

InstanceReconciler::InstanceReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* images,
                                       runtime::Informer* flavors, host::Hypervisor* hv, host::StoragePools* storage,
                                       Options opts, runtime::Informer* volumes, runtime::Informer* networks,
                                       runtime::Informer* migrations)
    : client_(client), instances_(instances), images_(images), flavors_(flavors), volumes_(volumes),
      networks_(networks), migrations_(migrations), hv_(hv),
      storage_(storage), opts_(std::move(opts)), events_(client, "instance-agent", opts_.node) {}

StatusOr<ObservedDomain> InstanceReconciler::ObserveDomain(const std::string& dom, bool details) {
  ObservedDomain d;
  auto info = hv_->Lookup(dom);
  if (!info.ok()) return info.status();
  d.info = *info;
  if (!details || d.info.state == host::DomainState::kNotFound) return d;
  if (auto p = hv_->Disks(dom, true); p.ok()) d.persistent_disks = std::move(*p);
  if (auto p = hv_->Nics(dom, true); p.ok()) d.persistent_nics = std::move(*p);
  if (d.running()) {
    // What hot-plug compares against must be known: a failure here is retried rather than guessed around.
    auto disks = hv_->Disks(dom, false);
    if (!disks.ok()) return disks.status();
    d.live_disks = std::move(*disks);
    if (networks_ != nullptr) {
      auto nics = hv_->Nics(dom, false);
      if (!nics.ok()) return nics.status();
      d.live_nics = std::move(*nics);
    }
  }
  return d;
}

StatusOr<json> InstanceReconciler::KeyPair(const std::string& ns, const std::string& name) {
  const std::string key = ns + "/" + name;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(key_pairs_mu_);
    auto it = key_pairs_.find(key);
    if (it != key_pairs_.end() && now - it->second.read < kKeyPairTtl) return it->second.value;
  }
  auto kp = client_->Get("keypairs", ns, name);
  // Only a pair is kept: a missing one (made right after the instance) or an error is asked again next pass.
  if (kp.ok()) {
    std::lock_guard lock(key_pairs_mu_);
    if (key_pairs_.size() > 10000) key_pairs_.clear();  // bounded: many namespaces' keys churn through
    key_pairs_.insert_or_assign(key, CachedKeyPair{kp, now});
  }
  return kp;
}

StatusOr<Observed> InstanceReconciler::Observe(const json& inst) {
  Observed o;
  o.inst = inst;
  o.now = std::chrono::system_clock::now();
  o.manages_volumes = volumes_ != nullptr;
  o.networking = networks_ != nullptr;
  const std::string ns = MetaString(inst, "namespace"), name = MetaString(inst, "name");
  const json& spec = inst["spec"];
  if (!spec.contains("resources")) o.flavor = flavors_->Get(spec.value("instanceType", ""));
  auto boot_image = [&](const std::string& image_name, const std::string& want_type) {
    BootImage b;
    json img = images_->Get(ns + "/" + image_name);
    if (img.is_null()) {
      b.not_ready = "image \"" + image_name + "\" does not exist";
      return b;
    }
    std::string type = img["spec"].value("type", "disk");
    if (type != want_type) {
      b.not_ready = "image \"" + image_name + "\" is of type " + type + ", not " + want_type;
    } else if (!image::CachedOn(img, opts_.node)) {
      json e = image::NodeEntry(img, opts_.node);
      b.not_ready = "image \"" + image_name + "\" is not Ready on node " + opts_.node + " yet (" +
                    (e.is_object() ? e.value("phase", "Pending") : std::string("Pending")) + ")";
    } else if (auto v = storage_->Volume(opts_.image_pool, image::CacheVolumeName(img)); v.ok()) {
      b.path = v->path;
    } else {
      b.not_ready = "image \"" + image_name + "\" is not cached on node " + opts_.node + " yet";
    }
    return b;
  };
  if (!spec.value("kernelImage", "").empty()) o.kernel = boot_image(spec["kernelImage"], "kernel");
  if (!spec.value("ramdiskImage", "").empty()) o.ramdisk = boot_image(spec["ramdiskImage"], "ramdisk");
  if (!spec.value("image", "").empty() && volumes_ != nullptr) {
    o.image = images_->Get(ns + "/" + spec.value("image", ""));
    std::string root = volume::RootVolumeName(inst);
    o.root_volume = volumes_->Get(ns + "/" + root);
    if (o.root_volume.is_null()) {
      // The cache may lag behind a create of ours: ask the API before deciding to create it.
      auto got = client_->Get("volumes", ns, root);
      if (got.ok()) o.root_volume = *got;
      else if (got.status().code() != Code::kNotFound) return got.status();
    }
  }
  if (volumes_ != nullptr) {
    for (const auto& u : volume::VolumesOf(inst)) {
      json v = volumes_->Get(ns + "/" + u.volume);
      if (!v.is_null()) o.volumes[u.volume] = std::move(v);
    }
  }
  if (networks_ != nullptr && spec.contains("networks") && spec["networks"].is_array()) {
    const std::string uid = MetaString(inst, "uid");
    for (const auto& n : spec["networks"]) {
      std::string net_name = n.value("network", "");
      json net = networks_->Get(ns + "/" + net_name);
      if (net.is_null()) continue;
      if (opts_.leases != nullptr && net.contains("status") && net["status"].contains("allocations")) {
        for (const auto& [ip, a] : net["status"]["allocations"].items()) {
          if (a.value("uid", "") != uid) continue;
          std::string mac = a.value("mac", "");
          o.leased[mac + " " + ip] = opts_.leases->Leased(network::BridgeName(ns, net_name), mac, ip);
        }
      }
      o.networks[net_name] = std::move(net);
    }
  }
  if (opts_.seeds != nullptr) {
    o.seeding = true;
    o.seed_stamp = opts_.seeds->Stamp(SeedPath(opts_.data_dir, ns, name));
    const std::string key_name = spec.value("keyName", "");
    if (!key_name.empty()) {
      auto kp = KeyPair(ns, key_name);
      if (kp.ok()) o.key_pair = std::move(*kp);
      else if (kp.status().code() != Code::kNotFound) o.key_pair_error = kp.status().message();
    }
  }
  auto dom = ObserveDomain(DomainName(ns, name), true);
  if (!dom.ok()) return dom.status();
  o.domain = std::move(*dom);
  return o;
}

StatusOr<Result> InstanceReconciler::Act(const json& inst, Decision d) {
  const std::string key = runtime::KeyFor(inst);
  const std::string ns = MetaString(inst, "namespace"), name = MetaString(inst, "name");
  const std::string dom = DomainName(ns, name);
  for (const Action& a : d.actions) {
    Status s;
    switch (a.kind) {
      case Action::Kind::kCreateRootVolume: {
        auto c = client_->Create("volumes", ns, a.volume);
        if (!c.ok() && c.status().code() != Code::kAlreadyExists) s = c.status();
        if (!c.ok()) {  // someone else made it, or it failed: nothing to tell
          if (!s.ok()) return s;
          continue;
        }
        break;
      }
      case Action::Kind::kGrowRootVolume: {
        auto p = client_->Patch("volumes", ns, a.name, {{"spec", {{"size", a.size}}}});
        if (!p.ok()) s = p.status();
        break;
      }
      case Action::Kind::kWriteSeed:
        s = opts_.seeds != nullptr ? opts_.seeds->Write(a.name, a.seed_files, a.seed_stamp)
                                   : Status(Code::kInternal, "no seed writer");
        break;
      case Action::Kind::kDefine: {
        std::error_code ec;
        fs::create_directories(fs::path(a.domain.serial_log_path).parent_path(), ec);
        s = hv_->Define(a.domain);
        // The new generation is not observed until a definition of it exists.
        if (!s.ok()) d.status["status"]["observedGeneration"] = inst.value("status", json::object()).value("observedGeneration", int64_t{0});
        break;
      }
      case Action::Kind::kDetachDisk: s = hv_->DetachDisk(dom, a.target); break;
      case Action::Kind::kAttachDisk: s = hv_->AttachDisk(dom, a.disk); break;
      case Action::Kind::kDetachNic: s = hv_->DetachNic(dom, a.mac); break;
      case Action::Kind::kAttachNic: s = hv_->AttachNic(dom, a.nic); break;
      case Action::Kind::kReboot: s = hv_->Reboot(dom); break;
      case Action::Kind::kPause: s = hv_->Pause(dom); break;
      case Action::Kind::kResume: s = hv_->Resume(dom); break;
      case Action::Kind::kManagedSave: s = hv_->ManagedSave(dom); break;
      case Action::Kind::kSetVcpus:
        if (Status v = hv_->SetVcpus(dom, a.domain.vcpus); !v.ok()) {
          // Not fatal: the size applies at the next restart, as for any resize that cannot be done live.
          runtime::SetCondition(d.status, "RestartRequired", "True", "LiveResizeFailed",
                                "vCPUs not added live (" + v.message() + "); " + std::to_string(a.domain.vcpus) +
                                    " vCPU apply when it is restarted (stratusctl restart)");
          events_.Record(inst, "Warning", "ResizeFailed", v.message());
          continue;
        }
        break;
      case Action::Kind::kStart: {
        std::error_code ec;
        fs::create_directories(fs::path(ConsoleLogPath(opts_.data_dir, ns, name)).parent_path(), ec);
        s = hv_->Start(dom);
        break;
      }
      case Action::Kind::kShutdown:
        if (Status sd = hv_->Shutdown(dom); !sd.ok()) {
          spdlog::debug("graceful shutdown request failed: domain={} error={}", dom, sd.message());
        }
        break;
      case Action::Kind::kDestroy: s = hv_->Destroy(dom); break;
      case Action::Kind::kUndefine: s = hv_->Undefine(dom); break;
      case Action::Kind::kDeleteRootVolume: {
        auto del = client_->Delete("volumes", ns, a.name, a.target);
        if (!del.ok() && del.status().code() != Code::kNotFound) s = del.status();
        break;
      }
    }
    if (!s.ok()) {
      if (!a.fail_condition.empty()) {
        if (!a.fail_phase.empty()) d.status["status"]["phase"] = a.fail_phase;
        runtime::SetCondition(d.status, a.fail_condition, "False", a.fail_reason, s.message());
        runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "instances", inst, d.status),
                              "status of instance " + key);
        events_.Record(inst, "Warning", a.fail_reason, s.message());
      }
      return s;
    }
    if (!a.event_reason.empty()) events_.Record(inst, a.event_type, a.event_reason, a.event_message);
  }
  if (d.report_volumes) {
    // What the domain really has attached now (the volumes' status mirrors this).
    auto now = ObserveDomain(dom, false);
    bool live = now.ok() && now->running();
    auto disks = hv_->Disks(dom, !live);
    if (disks.ok()) {
      json vols = json::array();
      for (const auto& disk : *disks) {
        if (disk.device != "disk") continue;
        for (const auto& u : volume::VolumesOf(inst)) {
          json v = volumes_ ? volumes_->Get(ns + "/" + u.volume) : json();
          if (!v.is_null() && v.contains("status") && v["status"].value("path", "") == disk.path) {
            vols.push_back({{"name", u.volume}, {"device", disk.target}});
          }
        }
      }
      d.status["status"]["volumes"] = vols;
    }
  }
  auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, d.status);
  if (!u.ok() && u.status().code() == Code::kConflict && !d.actions.empty()) {
    // Acted, but another writer (placement, IPAM) changed the object meanwhile: record what was done on the
    // latest version, so that the retry does not repeat a one-shot action.
    auto latest = client_->Get("instances", ns, name);
    if (latest.ok()) u = runtime::UpdateStatusIfChanged(client_, "instances", *latest, WithOwnStatus(*latest, d.status));
  }
  if (!u.ok()) return u.status();
  for (const auto& e : d.events) events_.Record(inst, e.type, e.reason, e.message);
  return d.next;
}

StatusOr<Result> InstanceReconciler::Teardown(json inst, const std::string& key) {
  auto [ns, name] = runtime::SplitKey(key);
  const std::string dom = DomainName(ns, name);
  TeardownObserved o;
  o.inst = inst;
  auto d = ObserveDomain(dom, false);
  if (!d.ok()) return d.status();
  o.domain = std::move(*d);
  std::string root;
  if (!inst["spec"].value("image", "").empty()) {
    root = inst.value("status", json::object()).value("rootVolume", "");
    if (root.empty()) root = volume::RootVolumeName(inst);
    auto rv = client_->Get("volumes", ns, root);
    if (rv.ok()) o.root_volume = *rv;
    else if (rv.status().code() != Code::kNotFound) return rv.status();
  }
  TeardownDecision t = DecideTeardown(o);
  if (t.foreign_domain) spdlog::warn("instance teardown: domain belongs to another object, left alone: domain={}", dom);
  if (t.destroy_domain) {
    Status s = hv_->Destroy(dom);
    if (s.ok()) s = hv_->Undefine(dom);
    if (!s.ok()) {
      json failed = inst;
      failed["status"]["phase"] = "Terminating";
      runtime::SetCondition(failed, "Ready", "False", "TeardownFailed", s.message());
      runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "instances", inst, failed),
                            "status of instance " + key);
      events_.Record(inst, "Warning", "TeardownFailed", s.message());
      return s;
    }
  }
  if (t.clear_volumes) {
    // The domain is gone: nothing is attached any more. Say so before releasing, so volumes can move on.
    json cleared = inst;
    cleared["status"]["volumes"] = json::array();
    auto u = runtime::UpdateStatusIfChanged(client_, "instances", inst, cleared);
    if (!u.ok()) return u.status();
    inst = *u;
  }
  if (t.root == TeardownDecision::Root::kKeep) {
    auto p = client_->Patch("volumes", ns, root, {{"metadata", {{"ownerReferences", t.root_owner_refs}}}});
    if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
    events_.Record(inst, "Normal", "RootVolumeKept", "root volume " + root + " kept (deleteOnTermination: false)");
  } else if (t.root == TeardownDecision::Root::kDelete) {
    auto del = client_->Delete("volumes", ns, root, MetaString(o.root_volume, "uid"));
    if (!del.ok() && del.status().code() != Code::kNotFound) return del.status();
  }
  std::error_code ec;
  fs::remove_all(fs::path(ConsoleLogPath(opts_.data_dir, ns, name)).parent_path(), ec);
  // Drop our finalizer; the API server removes the object when none remain.
  Status rf = runtime::RemoveFinalizer(client_, "instances", inst, kFinalizer);
  if (!rf.ok()) return rf;
  events_.Record(inst, "Normal", "Deleted", "domain " + dom + " destroyed and undefined on node " + opts_.node);
  spdlog::info("instance torn down: instance={} domain={}", key, dom);
  return Result::Done();
}

StatusOr<host::DomainSpec> InstanceReconciler::PrepareIncoming(const json& inst) {
  auto o = Observe(inst);
  if (!o.ok()) return o.status();
  if (o->domain.info.state != host::DomainState::kNotFound) {
    return Status(Code::kAlreadyExists, "node " + opts_.node + " has a domain named " + o->domain.info.name + " already");
  }
  // Decided as if it ran here with its volumes already here: they arrive with the domain (the source rewrites
  // their paths); only what this node makes for it (seed, console) and its boot images' paths matter.
  for (auto& [vname, v] : o->volumes) v["spec"]["nodeName"] = opts_.node;
  if (o->root_volume.is_object()) o->root_volume["spec"]["nodeName"] = opts_.node;
  Decision d = Decide(*o, opts_);
  const host::DomainSpec* spec = nullptr;
  for (const Action& a : d.actions) {
    if (a.kind == Action::Kind::kWriteSeed && opts_.seeds != nullptr) {
      Status s = opts_.seeds->Write(a.name, a.seed_files, a.seed_stamp);
      if (!s.ok()) return s;
    }
    if (a.kind == Action::Kind::kDefine) spec = &a.domain;
  }
  if (spec == nullptr) {
    json ready = runtime::GetCondition(d.status, "Ready");
    return Status(Code::kUnavailable, "node " + opts_.node + " cannot take it yet: " +
                                          (ready.is_object() ? ready.value("message", "") : std::string("not ready")));
  }
  std::error_code ec;
  fs::create_directories(fs::path(spec->serial_log_path).parent_path(), ec);
  if (ec) return Internal("cannot make the console directory of " + spec->name + ": " + ec.message());
  return *spec;
}

StatusOr<Result> InstanceReconciler::Fence() {
  if (opts_.owner.empty()) return Result::Done();
  // Only from a full cache: a domain whose instance the cache has not listed yet is not an orphan.
  if (!runtime::AllSynced({instances_})) return Result::After(std::chrono::seconds(1));
  auto domains = hv_->List();
  if (!domains.ok()) return domains.status();
  std::set<std::string> bound;
  for (const auto& i : instances_->List()) {
    if (i["spec"].value("nodeName", "") == opts_.node) bound.insert(MetaString(i, "uid"));
  }
  // A domain arriving by migration is not an orphan: its instance is bound here once it runs here.
  std::set<std::string> arriving;
  if (migrations_ != nullptr) {
    for (const auto& key : migration::ArrivingAt(migrations_->List(), opts_.node, std::time(nullptr))) {
      auto [ns, name] = runtime::SplitKey(key);
      arriving.insert(DomainName(ns, name));
    }
  }
  for (const auto& name : DomainsToFence(*domains, opts_.owner, bound)) {
    if (arriving.count(name)) continue;
    Status s = hv_->Destroy(name);
    if (s.ok()) s = hv_->Undefine(name);
    if (!s.ok()) {
      spdlog::warn("instance fence: cannot remove domain {}: {}", name, s.message());
      continue;
    }
    spdlog::warn("instance fence: domain {} removed: its instance is no longer bound to node {}", name, opts_.node);
    // Say so on the instance where it lives now (if it still exists).
    std::string ns = name.substr(name.find('_') + 1);
    std::string inst_name = ns.substr(ns.find('_') + 1);
    ns = ns.substr(0, ns.find('_'));
    auto inst = client_->Get("instances", ns, inst_name);
    if (inst.ok()) {
      events_.Record(*inst, "Warning", "Fenced",
                     "node " + opts_.node + " came back with domain " + name + " of this instance, which runs on " +
                         (*inst)["spec"].value("nodeName", std::string("no node")) + " now: destroyed and undefined there");
    }
  }
  return Result::After(kDriftCheck);
}

StatusOr<Result> InstanceReconciler::Reconcile(const std::string& key) {
  if (key == kSweepKey) return Fence();
  json inst = instances_->Get(key);
  if (inst.is_null()) return Result::Done();  // our finalizer means deletions are handled while the object exists
  if (inst["spec"].value("nodeName", "") != opts_.node) return Result::Done();
  if (migrations_ != nullptr) {
    // Its domain is on its way to another node (or there already): nothing here is to be made or repaired.
    auto [ns, name] = runtime::SplitKey(key);
    if (migration::HeldBy(migrations_->List(), ns, name, opts_.node, std::time(nullptr))) {
      return Result::After(std::chrono::seconds(2));
    }
  }
  if (!MetaString(inst, "deletionTimestamp").empty()) {
    if (!runtime::HasFinalizer(inst, kFinalizer)) return Result::Done();
    return Teardown(inst, key);
  }
  // Our finalizer first, so nothing we create can outlive the object.
  auto fin = runtime::AddFinalizer(client_, "instances", inst, kFinalizer);
  if (!fin.ok()) return fin.status();
  auto observed = Observe(*fin);
  if (!observed.ok()) return observed.status();
  return Act(*fin, Decide(*observed, opts_));
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
      // Its own objects, with a drift check of what is on the node; any of them leaving (or coming) wakes the
      // fence.
      {instances_, [](const std::string& key, const json&) { return std::vector<std::string>{key, kSweepKey}; },
       kDriftCheck},
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
