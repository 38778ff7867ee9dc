// The Instance reconciler's pure decisions (see decide.h): no API, hypervisor, storage or clock calls here.
#include "stratus/instance/decide.h"

#include <filesystem>
#include <optional>
#include <set>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/core/sha256.h"
#include "stratus/host/names.h"
#include "stratus/instance/instance.h"
#include "stratus/instance/seed.h"
#include "stratus/network/ipam.h"
#include "stratus/network/plan.h"
#include "stratus/runtime/conditions.h"
#include "stratus/volume/volume.h"

namespace stratus::instance {
namespace fs = std::filesystem;
using runtime::Result;

std::string DomainName(const std::string& ns, const std::string& name) { return host::DomainName(ns, name); }

std::string ConsoleLogPath(const std::string& data_dir, const std::string& ns, const std::string& name) {
  return (fs::path(data_dir) / "instances" / (ns + "_" + name) / "console.log").string();
}

std::string SeedPath(const std::string& data_dir, const std::string& ns, const std::string& name) {
  return (fs::path(data_dir) / "instances" / (ns + "_" + name) / "seed.iso").string();
}

host::DomainSpec BuildDomainSpec(const json& inst, const Resolved& r, const Options& opts) {
  host::DomainSpec d;
  std::string ns = MetaString(inst, "namespace"), name = MetaString(inst, "name");
  d.name = DomainName(ns, name);
  d.uuid = MetaString(inst, "uid");  // the domain UUID is the Instance uid: one domain per instance, ever
  d.instance_uid = d.uuid;
  d.instance_ref = ns + "/" + name;
  d.owner = opts.owner;
  d.virt_type = opts.virt_type;
  d.vcpus = r.vcpus;
  d.max_vcpus = std::max(r.vcpus, opts.max_vcpus);
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
  if (!r.seed_path.empty()) {
    host::DomainSpec::Disk seed;
    seed.path = r.seed_path;
    seed.format = "raw";
    seed.device = "cdrom";
    seed.target = kSeedTarget;
    seed.read_only = true;
    d.disks.push_back(seed);
  }
  d.nics = r.nics;
  d.serial_log_path = ConsoleLogPath(opts.data_dir, ns, name);
  return d;
}

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

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

json Lookup(const std::map<std::string, json>& m, const std::string& name) {
  auto it = m.find(name);
  return it == m.end() ? json() : it->second;
}

// The disks of `o.inst`: each volume that this instance holds and that is made, in `r`; the others described in
// `waiting`, `in_use` when another instance holds one.
void ResolveDisks(const Observed& o, const Options& opts, Resolved* r, std::vector<std::string>* waiting,
                  bool* in_use) {
  const std::string name = MetaString(o.inst, "name");
  auto uses = volume::VolumesOf(o.inst);
  if (uses.empty()) return;
  if (!o.manages_volumes) {
    waiting->push_back("this agent does not manage volumes");
    return;
  }
  for (const auto& u : uses) {
    json v = Lookup(o.volumes, u.volume);
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
    if (node != opts.node) {
      waiting->push_back(what + " is on node " + node + ", this instance on " + opts.node +
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
}

// The NICs of `o.inst` from the networks' allocation tables (IPAM); the ones that cannot be wired yet are
// described in `waiting`.
void ResolveNics(const Observed& o, Resolved* r, std::vector<std::string>* waiting) {
  const json& spec = o.inst["spec"];
  if (!spec.contains("networks") || !spec["networks"].is_array() || !o.networking) return;
  const std::string ns = MetaString(o.inst, "namespace"), uid = MetaString(o.inst, "uid");
  for (size_t i = 0; i < spec["networks"].size(); ++i) {
    std::string net_name = spec["networks"][i].value("network", "");
    json net = Lookup(o.networks, net_name);
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
      json refused = runtime::GetCondition(o.inst, "AddressesAllocated");  // IPAM's
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
    auto leased = o.leased.find(mac + " " + ip);
    if (leased != o.leased.end()) addr["leased"] = leased->second;
    r->addresses.push_back(std::move(addr));
  }
}

// The root Volume of an instance with spec.image: made (owned by the instance) when missing, grown to
// rootDisk.size, and made again from a new spec.image when spec.rebuildPolicy is Recreate (`*rebuilding` then).
// Returns why the instance must wait, or "".
std::string DecideRootVolume(const Observed& o, const Options& opts, Decision* d, bool* rebuilding) {
  const json& spec = o.inst["spec"];
  const std::string ns = MetaString(o.inst, "namespace"), name = MetaString(o.inst, "name");
  const std::string uid = MetaString(o.inst, "uid");
  std::string root = volume::RootVolumeName(o.inst);
  d->status["status"]["rootVolume"] = root;
  json rd = spec.value("rootDisk", json::object());
  const json& rv = o.root_volume;
  if (rv.is_null()) {
    std::string img_name = spec.value("image", "");
    const json& img = o.image;
    if (img.is_null()) return "image \"" + img_name + "\" does not exist";
    if (img["spec"].value("type", "disk") != "disk") {
      return "spec.image: image \"" + img_name + "\" is a " + img["spec"].value("type", "") +
             " image; spec.image needs a disk image";
    }
    std::string size = rd.value("size", "");
    if (size.empty()) {
      uint64_t vs = img.contains("status") ? img["status"].value("virtualSize", uint64_t{0}) : 0;
      if (vs == 0) return "image \"" + img_name + "\" is not Ready yet (its size sizes the root disk)";
      size = FormatQuantityBytes(vs);
    }
    Action a{Action::Kind::kCreateRootVolume};
    a.volume = {{"apiVersion", "stratus.io/v1"},
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
                {"spec", {{"size", size}, {"format", "qcow2"}, {"nodeName", opts.node}, {"source", {{"image", img_name}}}}}};
    if (!rd.value("pool", "").empty()) a.volume["spec"]["pool"] = rd["pool"];
    a.name = root;
    a.event_reason = "RootVolumeCreated";
    a.event_message = "root volume " + root + " (" + size + ") from image " + img_name;
    d->actions.push_back(std::move(a));
    return "";
  }
  if (!OwnedBy(rv, uid)) {
    return "a Volume named " + root + " already exists and does not belong to this instance; delete or "
           "rename it so the root disk can be made";
  }
  // A new spec.image: rebuild (Recreate) or say that the running disk is from the old one (never silently).
  const std::string img_name = spec.value("image", "");
  const json src = rv["spec"].value("source", json::object());
  const std::string from = src.is_object() ? src.value("image", "") : "";
  if (!from.empty() && from != img_name) {
    if (!RebuildReplaces(o.inst, rv)) {
      runtime::SetCondition(d->status, "RebuildRequired", "True", "ImageChanged",
                            "spec.image is \"" + img_name + "\" but root volume " + root + " was made from \"" +
                                from + "\"; set spec.rebuildPolicy: Recreate to rebuild from it (the root volume is "
                                "replaced; addresses and data volumes stay)");
    } else {
      *rebuilding = true;
      runtime::RemoveCondition(d->status, "RebuildRequired");
      d->status["status"]["volumes"] = json::array();  // the domain goes (or is gone): nothing is attached
      if (!MetaString(rv, "deletionTimestamp").empty()) {
        return "rebuilding from image \"" + img_name + "\": root volume " + root + " (from \"" + from +
               "\") is being deleted";
      }
      // The domain goes first (its definition names the old disk), then the old root volume; the next passes make
      // the new one and define and start the domain again, with the same uid, MACs, addresses and data volumes.
      if (o.domain.info.state != host::DomainState::kNotFound) {
        if (o.domain.running()) d->actions.push_back(Action{Action::Kind::kDestroy});
        Action undef{Action::Kind::kUndefine};
        undef.fail_condition = "Ready";
        undef.fail_reason = "RebuildFailed";
        d->actions.push_back(std::move(undef));
      }
      Action del{Action::Kind::kDeleteRootVolume};
      del.fail_condition = "Ready";
      del.fail_reason = "RebuildFailed";
      del.name = root;
      del.target = MetaString(rv, "uid");
      del.event_reason = "Rebuilding";
      del.event_message = "root volume " + root + " (from image \"" + from + "\") deleted to rebuild from image \"" +
                          img_name + "\"";
      d->actions.push_back(std::move(del));
      return "rebuilding from image \"" + img_name + "\": deleting root volume " + root;
    }
  } else {
    runtime::RemoveCondition(d->status, "RebuildRequired");
  }
  std::string want = rd.value("size", "");  // grow to rootDisk.size, never shrink
  if (!want.empty()) {
    auto w = ParseQuantityBytes(want);
    auto have = ParseQuantityBytes(rv["spec"].value("size", "0"));
    if (w.ok() && have.ok() && *w > *have) {
      Action a{Action::Kind::kGrowRootVolume};
      a.name = root;
      a.size = want;
      d->actions.push_back(std::move(a));
    }
  }
  return "";
}

// One step with the event it tells when done and, with `fail_reason`, the Ready condition it sets when it fails.
Action Step(Action::Kind kind, std::string reason, std::string message, std::string fail_reason = "",
            std::string fail_phase = "") {
  Action a{kind};
  a.event_reason = std::move(reason);
  a.event_message = std::move(message);
  if (!fail_reason.empty()) {
    a.fail_condition = "Ready";
    a.fail_reason = std::move(fail_reason);
    a.fail_phase = std::move(fail_phase);
  }
  return a;
}

// Why an instance's seed cannot be made: the condition reason and message.
struct SeedWait {
  std::string reason, message;
};

// The NoCloud seed of `o.inst` (cloud-init's cidata: meta-data, user-data with the KeyPair's public key,
// network-config with the IPAM addresses of r->addresses): written when its stamp (a digest of the three files)
// differs from the one on the node, and attached (r->seed_path). Returns why it cannot be made.
std::optional<SeedWait> DecideSeed(const Observed& o, const Options& opts, Resolved* r, Decision* d) {
  const json& spec = o.inst["spec"];
  const std::string ns = MetaString(o.inst, "namespace"), name = MetaString(o.inst, "name");
  SeedInput in;
  in.instance_id = MetaString(o.inst, "uid");
  in.hostname = name;
  in.user_data = spec.value("userData", "");
  const std::string key_name = spec.value("keyName", "");
  if (!key_name.empty()) {
    std::string pub = o.key_pair.is_null() ? "" : o.key_pair["spec"].value("publicKey", "");
    if (pub.empty()) {
      return SeedWait{"KeyPairNotFound", "spec.keyName: " + (o.key_pair_error.empty()
                                                                  ? "key pair \"" + key_name + "\" does not exist "
                                                                    "in namespace " + ns
                                                                  : o.key_pair_error)};
    }
    in.ssh_keys.push_back(pub);
  }
  for (const auto& a : r->addresses) {
    SeedNic nic;
    nic.mac = a.value("mac", "");
    auto cfg = network::ParseNetwork(Lookup(o.networks, a.value("network", "")));
    if (cfg.ok()) {
      nic.address = a.value("ip", "") + "/" + std::to_string(cfg->cidr.prefix);
      if (cfg->mode != "isolated") nic.gateway = FormatIpv4(cfg->gateway);
      for (uint32_t dns : cfg->dns) nic.dns.push_back(FormatIpv4(dns));
    }
    in.nics.push_back(std::move(nic));
  }
  auto seed = MakeSeed(in);
  if (!seed.ok()) return SeedWait{"InvalidUserData", seed.status().message()};
  std::map<std::string, std::string> files = {
      {"meta-data", seed->meta_data}, {"user-data", seed->user_data}, {"network-config", seed->network_config}};
  Sha256 h;
  for (const auto& [file, data] : files) {
    std::string framed = file + '\0' + std::to_string(data.size()) + '\0' + data;
    h.Update(framed.data(), framed.size());
  }
  std::string stamp = h.Hex();
  r->seed_path = SeedPath(opts.data_dir, ns, name);
  if (o.seed_stamp != stamp) {
    Action a{Action::Kind::kWriteSeed};
    a.name = r->seed_path;
    a.seed_files = std::move(files);
    a.seed_stamp = stamp;
    if (o.seed_stamp.empty()) {
      a.event_reason = "SeedWritten";
      a.event_message = "NoCloud seed written (" + std::to_string(in.ssh_keys.size()) + " key(s), " +
                        std::to_string(in.user_data.size()) + " bytes of user data)";
    } else {
      a.event_reason = "SeedUpdated";
      a.event_message = "NoCloud seed rewritten (key pair, user data or addresses changed); the guest reads it at "
                        "its next start";
    }
    a.fail_condition = "Ready";
    a.fail_reason = "SeedFailed";
    d->actions.push_back(std::move(a));
  }
  return std::nullopt;
}

void HotplugDisks(const Observed& o, const std::vector<host::DomainSpec::Disk>& want, Decision* d) {
  const auto& live = *o.domain.live_disks;
  for (const auto& l : live) {
    if (l.device != "disk") continue;
    bool keep = false;
    for (const auto& w : want) keep |= SameDisk(l, w);
    if (keep) continue;
    // An unplug needs the guest's help and may still be under way: ask again, but tell once (while the
    // persistent definition still has it).
    bool first = false;
    if (o.domain.persistent_disks) {
      for (const auto& p : *o.domain.persistent_disks) first |= SameDisk(p, l);
    }
    Action a{Action::Kind::kDetachDisk};
    a.target = l.target;
    if (first) {
      a.event_reason = "VolumeDetached";
      a.event_message = "disk " + l.target + " (" + l.path + ") unplugged";
    }
    a.fail_condition = "VolumesReady";
    a.fail_reason = "HotplugFailed";
    d->actions.push_back(std::move(a));
  }
  for (const auto& w : want) {
    bool have = false, busy = false;
    for (const auto& l : live) {
      have |= SameDisk(l, w);
      busy |= l.target == w.target;
    }
    if (have || busy) continue;  // busy: the old disk's unplug has not finished, next pass
    Action a{Action::Kind::kAttachDisk};
    a.disk = w;
    a.event_reason = "VolumeAttached";
    a.event_message = "disk " + w.target + " (" + w.path + ") hot-plugged";
    a.fail_condition = "VolumesReady";
    a.fail_reason = "HotplugFailed";
    d->actions.push_back(std::move(a));
  }
}

void HotplugNics(const Observed& o, const std::vector<host::DomainSpec::Nic>& want, Decision* d) {
  const auto& live = *o.domain.live_nics;
  auto wanted = [&](const std::string& mac) {
    for (const auto& w : want) {
      if (w.mac == mac) return true;
    }
    return false;
  };
  for (const auto& l : live) {
    if (l.mac.empty() || wanted(l.mac)) continue;
    bool first = false;  // like a disk: ask again while the guest finishes the unplug, tell once
    if (o.domain.persistent_nics) {
      for (const auto& p : *o.domain.persistent_nics) first |= p.mac == l.mac;
    }
    Action a{Action::Kind::kDetachNic};
    a.mac = l.mac;
    if (first) {
      a.event_reason = "NicDetached";
      a.event_message = "NIC " + l.mac + " (" + l.bridge + ") unplugged";
    }
    a.fail_condition = "NetworkReady";
    a.fail_reason = "HotplugFailed";
    d->actions.push_back(std::move(a));
  }
  for (const auto& w : want) {
    bool have = false;
    for (const auto& l : live) have |= l.mac == w.mac;
    if (have) continue;
    Action a{Action::Kind::kAttachNic};
    a.nic = w;
    a.event_reason = "NicAttached";
    a.event_message = "NIC " + w.mac + " hot-plugged on bridge " + w.bridge;
    a.fail_condition = "NetworkReady";
    a.fail_reason = "HotplugFailed";
    d->actions.push_back(std::move(a));
  }
}

}  // namespace

Decision Decide(const Observed& o, const Options& opts) {
  Decision d;
  const json& inst = o.inst;
  const json& spec = inst["spec"];
  const std::string ns = MetaString(inst, "namespace"), name = MetaString(inst, "name");
  const std::string dom = DomainName(ns, name);
  const json prior = inst.value("status", json::object());
  d.status = inst;
  json& st = d.status["status"];
  st["nodeName"] = opts.node;
  st["observedGeneration"] = inst["metadata"].value("generation", int64_t{1});
  auto wait = [&](const std::string& phase, std::chrono::milliseconds after) {
    if (st.value("phase", "") != phase) st["phase"] = phase;
    // A domain defined from an older generation is not brought to this one: that one is not observed yet.
    if (o.domain.info.state != host::DomainState::kNotFound) {
      if (prior.contains("observedGeneration")) st["observedGeneration"] = prior["observedGeneration"];
      else st.erase("observedGeneration");
    }
    d.next = Result::After(after);
    d.report_volumes = false;
    return d;
  };

  // 1. Flavor and boot images.
  Resolved r;
  if (spec.contains("resources")) {
    r.vcpus = spec["resources"].value("vcpus", 1);
    r.memory_mib = spec["resources"].value("memoryMiB", int64_t{256});
  } else if (o.flavor.is_null()) {
    runtime::SetCondition(d.status, "Ready", "False", "InstanceTypeNotFound",
                          "instanceType \"" + spec.value("instanceType", "") + "\" not found");
    return wait("Pending", std::chrono::seconds(5));
  } else {
    r.vcpus = o.flavor["spec"].value("vcpus", 1);
    r.memory_mib = o.flavor["spec"].value("memoryMiB", int64_t{256});
  }
  std::string not_ready;
  if (!spec.value("kernelImage", "").empty()) {
    r.kernel_path = o.kernel.path;
    if (r.kernel_path.empty()) not_ready = o.kernel.not_ready;
  }
  if (not_ready.empty() && !spec.value("ramdiskImage", "").empty()) {
    r.initrd_path = o.ramdisk.path;
    if (r.initrd_path.empty()) not_ready = o.ramdisk.not_ready;
  }
  if (not_ready.empty() && r.kernel_path.empty() && spec.value("image", "").empty()) {
    not_ready = "nothing to boot: set spec.image (a disk image) or spec.kernelImage";
  }
  bool rebuilding = false;
  if (not_ready.empty() && !spec.value("image", "").empty()) {
    not_ready = o.manages_volumes ? DecideRootVolume(o, opts, &d, &rebuilding)
                                  : "this agent does not manage volumes, so spec.image cannot be used";
  }
  if (rebuilding && !not_ready.empty()) {
    runtime::SetCondition(d.status, "Ready", "False", "Rebuilding", not_ready);
    return wait("Rebuilding", std::chrono::seconds(2));
  }
  if (!not_ready.empty()) {
    if (runtime::SetCondition(d.status, "ImagesReady", "False", "ImageNotReady", not_ready)) {
      d.events.push_back({"Normal", "WaitingForImages", not_ready});
    }
    runtime::SetCondition(d.status, "Ready", "False", "ImagesNotReady", not_ready);
    return wait("Pending", std::chrono::seconds(3));
  }
  runtime::SetCondition(d.status, "ImagesReady", "True", "ImagesCached", "images cached on node " + opts.node);

  // 2. Volumes (each attached only while this instance holds it) and NICs (an IPAM address each).
  std::vector<std::string> waiting, net_waiting;
  bool in_use = false;
  ResolveDisks(o, opts, &r, &waiting, &in_use);
  ResolveNics(o, &r, &net_waiting);
  bool wants_nics = spec.contains("networks") && spec["networks"].is_array() && !spec["networks"].empty();
  if (wants_nics && !o.networking) {
    runtime::SetCondition(d.status, "NetworkReady", "False", "NetworkingDisabled",
                          "node " + opts.node + " runs without networking; the instance has no NICs");
  } else if (!net_waiting.empty()) {
    json c = runtime::GetCondition(inst, "AddressesAllocated");  // written by IPAM only
    bool refused = !c.is_null() && c.value("reason", "") == "AddressRefused";
    runtime::SetCondition(d.status, "NetworkReady", "False", refused ? "AddressRefused" : "AddressPending",
                          Join(net_waiting));
  } else if (wants_nics) {
    runtime::SetCondition(d.status, "NetworkReady", "True", "AddressesAllocated", "every NIC has an address");
  }
  st["addresses"] = r.addresses;
  const std::string vol_msg = Join(waiting);
  if (!waiting.empty()) {
    if (runtime::SetCondition(d.status, "VolumesReady", "False", in_use ? "VolumeInUse" : "VolumesNotReady",
                              vol_msg)) {
      d.events.push_back({in_use ? "Warning" : "Normal", in_use ? "VolumeInUse" : "WaitingForVolumes", vol_msg});
    }
  } else if (!volume::VolumesOf(inst).empty()) {
    runtime::SetCondition(d.status, "VolumesReady", "True", "VolumesAttached", "every volume is attached");
  } else {
    runtime::RemoveCondition(d.status, "VolumesReady");
  }

  // 3. The domain: never touch one that is not ours.
  const host::DomainInfo& info = o.domain.info;
  const bool exists = info.state != host::DomainState::kNotFound;
  if (exists && !info.instance_uid.empty() && info.instance_uid != MetaString(inst, "uid")) {
    runtime::SetCondition(d.status, "Ready", "False", "DomainConflict",
                          "a domain named " + dom + " exists on node " + opts.node +
                              " that belongs to another object (uid " + info.instance_uid + "); it is left alone");
    return wait("Failed", std::chrono::seconds(30));
  }
  if (!exists && (!waiting.empty() || !net_waiting.empty())) {
    // First boot waits for every volume and address (as Nova does); later volumes are hot-plugged as they come.
    std::vector<std::string> all = waiting;
    all.insert(all.end(), net_waiting.begin(), net_waiting.end());
    runtime::SetCondition(d.status, "Ready", "False",
                          in_use ? "VolumeInUse" : (waiting.empty() ? "NetworkNotReady" : "VolumesNotReady"),
                          Join(all));
    return wait("Pending", std::chrono::seconds(3));
  }
  if (o.seeding) {
    if (auto why = DecideSeed(o, opts, &r, &d)) {
      if (!exists) {
        runtime::SetCondition(d.status, "Ready", "False", why->reason, why->message);
        return wait("Pending", std::chrono::seconds(5));
      }
      // A running instance keeps the seed it booted with.
      if (!o.seed_stamp.empty()) r.seed_path = SeedPath(opts.data_dir, ns, name);
      d.events.push_back({"Warning", why->reason, why->message + " (the seed is not rewritten)"});
    }
  }
  host::DomainSpec ds = BuildDomainSpec(inst, r, opts);
  std::vector<host::DomainSpec::Disk> virtio_disks;  // what hot-plug manages (the seed cdrom is not hot-plugged)
  for (const auto& disk : ds.disks) {
    if (disk.device == "disk") virtio_disks.push_back(disk);
  }
  int64_t gen = inst["metadata"].value("generation", int64_t{1});
  int64_t observed = prior.value("observedGeneration", int64_t{0});
  bool disks_differ = false;
  if (exists && o.domain.persistent_disks) {
    std::vector<host::DomainSpec::Disk> have;
    for (const auto& disk : *o.domain.persistent_disks) {
      if (disk.device == "disk" || (disk.device == "cdrom" && disk.target == kSeedTarget)) have.push_back(disk);
    }
    disks_differ = have.size() != ds.disks.size();
    for (size_t i = 0; !disks_differ && i < have.size(); ++i) {
      bool found = false;
      for (const auto& w : ds.disks) found |= SameDisk(have[i], w);
      disks_differ = !found;
    }
  }
  if (!exists || gen != observed || disks_differ) {
    Action a{Action::Kind::kDefine};
    a.domain = ds;
    if (!exists) {
      a.event_reason = "Defined";
      a.event_message = "domain " + dom + " defined on node " + opts.node;
    }
    a.fail_condition = "Ready";
    a.fail_reason = "DefineFailed";
    a.fail_phase = "Failed";
    d.actions.push_back(std::move(a));
  }
  st["domainUUID"] = exists ? info.uuid : ds.uuid;
  const bool running = o.domain.running();
  if (running && o.domain.live_disks) HotplugDisks(o, virtio_disks, &d);
  if (running && o.networking && o.domain.live_nics) HotplugNics(o, ds.nics, &d);

  // 4. Power state: Running, Paused (vCPUs stopped, memory kept), Suspended (memory saved to disk, domain off;
  // a start restores it) or Stopped.
  d.next = Result::After(opts.resync);
  const std::string want = spec.value("powerState", "Running");
  const bool paused = info.state == host::DomainState::kPaused;
  // The running configuration against the definition (an instanceType change): vCPUs are added live up to the
  // domain's ceiling; anything else (memory, fewer vCPUs, past the ceiling) applies at the next cold start.
  int live_vcpus = info.vcpus;
  const json restart_cond = runtime::GetCondition(d.status, "RestartRequired");
  const bool live_failed = restart_cond.is_object() && restart_cond.value("reason", "") == "LiveResizeFailed";
  if (running && info.vcpus > 0 && ds.vcpus > info.vcpus && ds.vcpus <= info.max_vcpus && !live_failed) {
    Action a = Step(Action::Kind::kSetVcpus, "Resized",
                    "domain " + dom + " grown from " + std::to_string(info.vcpus) + " to " + std::to_string(ds.vcpus) +
                        " vCPUs while running");
    a.domain = ds;
    d.actions.push_back(std::move(a));
    live_vcpus = ds.vcpus;
  }
  const bool resize_pending = running && info.vcpus > 0 &&
                              (live_vcpus != ds.vcpus || info.memory_mib != ds.memory_mib);
  if (resize_pending && live_failed) {
    // Said when the hot-add failed (Act); kept until the restart applies the size.
  } else if (resize_pending) {
    runtime::SetCondition(d.status, "RestartRequired", "True", "ResizePending",
                          "runs with " + std::to_string(live_vcpus) + " vCPU and " + std::to_string(info.memory_mib) +
                              " MiB; " + std::to_string(ds.vcpus) + " vCPU and " + std::to_string(ds.memory_mib) +
                              " MiB apply when it is restarted (stratusctl restart)");
  } else {
    runtime::RemoveCondition(d.status, "RestartRequired");
  }
  if (want == "Running" || want == "Paused") {
    st.erase("shutdownStartedAt");
    std::string restart_req = spec.value("restartRequestedAt", "");
    if (want == "Running" && !restart_req.empty() && restart_req != prior.value("restartedAt", "")) {
      if (running && resize_pending) {
        // A reboot keeps the running configuration: power-cycle so the new size applies.
        d.actions.push_back(Action{Action::Kind::kDestroy});
        d.actions.push_back(Step(Action::Kind::kStart, "Restarted",
                                 "domain " + dom + " power-cycled on request, with " + std::to_string(ds.vcpus) +
                                     " vCPU and " + std::to_string(ds.memory_mib) + " MiB",
                                 "StartFailed", "Failed"));
        runtime::RemoveCondition(d.status, "RestartRequired");
      } else if (running) {
        Action a{Action::Kind::kReboot};
        a.event_reason = "Restarted";
        a.event_message = "domain " + dom + " restarted on request";
        d.actions.push_back(std::move(a));
      }
      st["restartedAt"] = restart_req;  // when stopped, the start below satisfies the request
    }
    if (!running) {
      bool was_ours = prior.value("phase", "") == "Running";
      Action a{Action::Kind::kStart};
      if (info.managed_save) {
        a.event_reason = "Restored";
        a.event_message = "domain " + dom + " restored from its saved memory";
      } else {
        a.event_reason = was_ours ? "Repaired" : "Started";
        a.event_message = was_ours ? "domain " + dom + " was not running; started it again"
                                   : "domain " + dom + " started on node " + opts.node;
      }
      a.fail_condition = "Ready";
      a.fail_reason = "StartFailed";
      a.fail_phase = "Failed";
      d.actions.push_back(std::move(a));
    }
    if (want == "Running" && paused) {
      d.actions.push_back(Step(Action::Kind::kResume, "Resumed", "domain " + dom + " resumed"));
    } else if (want == "Paused" && !paused) {
      d.actions.push_back(Step(Action::Kind::kPause, "Paused",
                               "domain " + dom + " paused (its vCPUs stopped, memory kept)", "PauseFailed"));
    }
    st["phase"] = want;
    st["powerState"] = want;
    if (want == "Running") {
      runtime::SetCondition(d.status, "Ready", "True", "Running", "domain " + dom + " is running on node " + opts.node);
    } else {
      runtime::SetCondition(d.status, "Ready", "False", "Paused", "powerState is Paused (stratusctl resume)");
    }
  } else if (want == "Suspended") {
    st.erase("shutdownStartedAt");
    if (running) {
      d.actions.push_back(Step(Action::Kind::kManagedSave, "Suspended",
                               "domain " + dom + "'s memory saved and the domain stopped; powerState Running restores it",
                               "SuspendFailed"));
    }
    if (running || info.managed_save) {
      st["phase"] = "Suspended";
      st["powerState"] = "Suspended";
      runtime::SetCondition(d.status, "Ready", "False", "Suspended",
                            "powerState is Suspended: memory saved on node " + opts.node + " (stratusctl resume)");
    } else {
      // Off without a saved image (it was stopped): there is nothing to save.
      st["phase"] = "Stopped";
      st["powerState"] = "Stopped";
      runtime::SetCondition(d.status, "Ready", "False", "Stopped",
                            "powerState is Suspended, but the domain was off: nothing to save");
    }
  } else {  // Stopped
    if (running) {
      // The graceful-shutdown deadline lives on the object, so an agent restart does not extend it.
      std::string since = prior.value("shutdownStartedAt", "");
      int64_t since_s = since.empty() ? -1 : ParseRfc3339(since);
      auto started = since_s < 0 ? o.now : std::chrono::system_clock::from_time_t(static_cast<std::time_t>(since_s));
      if (since_s < 0) st["shutdownStartedAt"] = FormatRfc3339(std::chrono::system_clock::to_time_t(o.now));
      if (o.now - started < opts.shutdown_timeout) {
        if (paused) d.actions.push_back(Action{Action::Kind::kResume});  // a paused guest cannot hear ACPI
        d.actions.push_back(Action{Action::Kind::kShutdown});
        runtime::SetCondition(d.status, "Ready", "False", "Stopping", "graceful shutdown requested");
        return wait("Stopping", std::chrono::seconds(1));
      }
      Action a{Action::Kind::kDestroy};
      a.event_type = "Warning";
      a.event_reason = "ForcedOff";
      a.event_message = "the guest did not shut down within " + std::to_string(opts.shutdown_timeout.count()) +
                        " s; powered off";
      d.actions.push_back(std::move(a));
    } else if (prior.contains("shutdownStartedAt")) {
      d.events.push_back({"Normal", "Stopped", "domain " + dom + " shut down"});
    }
    st.erase("shutdownStartedAt");
    st["phase"] = "Stopped";
    st["powerState"] = "Stopped";
    runtime::SetCondition(d.status, "Ready", "False", "Stopped", "powerState is Stopped");
  }
  if (st.value("phase", "") == "Running") {
    for (const auto& a : r.addresses) {
      // The guest asks for its lease shortly after boot: look again soon rather than at the next resync.
      if (!a.value("leased", true)) {
        d.next = Result::After(std::min<std::chrono::milliseconds>(opts.lease_poll, opts.resync));
      }
    }
  }
  return d;
}

json WithOwnStatus(const json& latest, const json& ours) {
  static const std::set<std::string> kOwned = {"Ready", "ImagesReady", "NetworkReady", "VolumesReady",
                                               "RestartRequired", "RebuildRequired"};
  json out = latest;
  const json mine = ours.value("status", json::object());
  json& st = out["status"];
  if (!st.is_object()) st = json::object();
  for (auto it = st.begin(); it != st.end();) {  // fields we dropped (e.g. shutdownStartedAt) go
    if (it.key() != "conditions" && !mine.contains(it.key())) it = st.erase(it);
    else ++it;
  }
  for (const auto& [k, v] : mine.items()) {
    if (k != "conditions") st[k] = v;
  }
  json conditions = json::array();
  for (const auto& c : st.value("conditions", json::array())) {
    if (!kOwned.count(c.value("type", ""))) conditions.push_back(c);
  }
  for (const auto& c : mine.value("conditions", json::array())) {
    if (kOwned.count(c.value("type", ""))) conditions.push_back(c);
  }
  st["conditions"] = conditions;
  return out;
}

TeardownDecision DecideTeardown(const TeardownObserved& o) {
  TeardownDecision t;
  const host::DomainInfo& info = o.domain.info;
  const std::string uid = MetaString(o.inst, "uid");
  if (info.state != host::DomainState::kNotFound) {
    t.foreign_domain = !info.instance_uid.empty() && info.instance_uid != uid;
    t.destroy_domain = !t.foreign_domain;
  }
  const json& st = o.inst.value("status", json::object());
  t.clear_volumes = st.contains("volumes") && !st["volumes"].empty();
  if (!o.root_volume.is_null() && OwnedBy(o.root_volume, uid)) {
    bool keep = !o.inst["spec"].value("rootDisk", json::object()).value("deleteOnTermination", true);
    t.root = keep ? TeardownDecision::Root::kKeep : TeardownDecision::Root::kDelete;
    if (keep) {
      t.root_owner_refs = json::array();
      for (const auto& r : o.root_volume["metadata"]["ownerReferences"]) {
        if (r.value("uid", "") != uid) t.root_owner_refs.push_back(r);
      }
    }
  }
  return t;
}

std::vector<std::string> DomainsToFence(const std::vector<host::DomainInfo>& domains, const std::string& owner,
                                        const std::set<std::string>& bound_uids) {
  std::vector<std::string> out;
  if (owner.empty()) return out;
  for (const auto& d : domains) {
    if (d.owner != owner || d.instance_uid.empty() || d.state == host::DomainState::kNotFound) continue;
    if (!bound_uids.count(d.instance_uid)) out.push_back(d.name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace stratus::instance
