// Volumes (nova-volume's, as EC2 shows them): CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume and
// DetachVolume onto Volume objects and the Instances' spec.volumes.
#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/object.h"
#include "stratus/core/quantity.h"

namespace stratus::ec2::actions {
namespace {

const std::regex& VolumeIdPattern() {
  static const std::regex k("vol-[0-9a-f]{8,17}");
  return k;
}

// EC2's volume state for a Volume.
std::string VolumeState(const json& vol) {
  if (vol.contains("metadata") && vol["metadata"].contains("deletionTimestamp")) return "deleting";
  std::string phase = Str(vol, "status", "phase");
  if (phase == "Available") return "available";
  if (phase == "InUse") return "in-use";
  if (phase == "Failed") return "error";
  return "creating";
}

long long SizeGiB(const json& vol) {
  auto b = ParseQuantityBytes(Str(vol, "spec", "size"));
  if (!b.ok()) return 0;
  return static_cast<long long>((*b + (1ull << 30) - 1) >> 30);
}

// Where each volume is attached, by the instances' spec.volumes: volume name -> (instance, device).
struct Attachment {
  json instance;
  std::string device;
};
std::map<std::string, Attachment> Attachments(const json& instances) {
  std::map<std::string, Attachment> out;
  for (const auto& inst : instances["items"]) {
    if (!inst.contains("spec") || !inst["spec"].contains("volumes") || !inst["spec"]["volumes"].is_array()) continue;
    for (const auto& v : inst["spec"]["volumes"]) out[Str(v, "volume")] = {inst, Str(v, "device")};
  }
  return out;
}

void VolumeItem(pugi::xml_node item, const json& vol, const std::map<std::string, Attachment>& att,
                const std::string& zone, const std::map<std::string, std::string>& snapshot_ids) {
  std::string id = Ec2Id("vol", Uid(vol));
  AddText(item, "volumeId", id);
  AddText(item, "size", std::to_string(SizeGiB(vol)));
  auto from = vol.contains("spec") && vol["spec"].contains("source") && vol["spec"]["source"].is_object()
                  ? snapshot_ids.find(vol["spec"]["source"].value("snapshot", ""))
                  : snapshot_ids.end();
  AddText(item, "snapshotId", from != snapshot_ids.end() ? from->second : "");
  AddText(item, "availabilityZone", zone);
  std::string state = VolumeState(vol);
  auto a = att.find(Name(vol));
  AddText(item, "status", a != att.end() && state != "deleting" ? "in-use" : state);
  AddText(item, "createTime", Str(vol, "metadata", "creationTimestamp"));
  auto set = AddSet(item, "attachmentSet");
  if (a != att.end()) {
    auto at = AddItem(set);
    AddText(at, "volumeId", id);
    AddText(at, "instanceId", Ec2Id("i", Uid(a->second.instance)));
    AddText(at, "device", "/dev/" + a->second.device);
    AddText(at, "status", state == "in-use" ? "attached" : "attaching");
    AddText(at, "attachTime", Str(vol, "metadata", "creationTimestamp"));
    AddBool(at, "deleteOnTermination", false);
  }
  AddText(item, "volumeType", "standard");
  AddBool(item, "encrypted", false);
  AddBool(item, "multiAttachEnabled", false);
  AddTagSet(item, vol);
}

// The zone of the node that holds the volume (the default zone before it is placed).
std::string VolumeZone(const json& vol, const std::map<std::string, std::string>& node_zone, const ApiOptions& o) {
  std::string node = Str(vol, "status", "node");
  if (node.empty()) node = Str(vol, "spec", "nodeName");
  auto it = node_zone.find(node);
  return it != node_zone.end() ? it->second : DefaultZone(o);
}

std::map<std::string, std::string> NodeZones(ApiClient* api, const ApiOptions& o) {
  std::map<std::string, std::string> out;
  auto nodes = api->List("nodes", "", {});
  if (nodes.ok()) {
    for (const auto& n : (*nodes)["items"]) out[Name(n)] = ZoneOfNode(n, o);
  }
  return out;
}

constexpr const char* kModificationAnnotation = "ec2.stratus.io/modification";

// The caller's volume named by VolumeId.
std::optional<Error> NamedVolume(ApiClient* api, const Call& c, json* out) {
  auto id = c.params.Get("VolumeId");
  if (!id || id->empty()) return MissingParameter("VolumeId");
  if (!std::regex_match(*id, VolumeIdPattern())) return Error{"InvalidVolumeID.Malformed", "Invalid id: \"" + *id + "\"", 400};
  auto list = api->List("volumes", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  for (const auto& v : (*list)["items"]) {
    if (Ec2Id("vol", Uid(v)) == *id) {
      *out = v;
      return std::nullopt;
    }
  }
  return Error{"InvalidVolume.NotFound", "The volume '" + *id + "' does not exist.", 400};
}

// EC2's device names (/dev/sdf, /dev/xvdf, /dev/vdf, sdf) as our guest devices (vdf).
std::optional<std::string> GuestDevice(std::string d) {
  if (d.rfind("/dev/", 0) == 0) d = d.substr(5);
  for (const char* p : {"xvd", "sd", "vd"}) {
    std::string pre = p;
    if (d.size() == pre.size() + 1 && d.rfind(pre, 0) == 0 && d.back() >= 'b' && d.back() <= 'z') {
      return std::string("vd") + d.back();
    }
  }
  return std::nullopt;
}

// Replaces an instance's spec.volumes, pinned to the version read (a concurrent change is retried by the caller).
Status SetInstanceVolumes(ApiClient* api, const std::string& ns, const json& inst, const json& volumes) {
  json patch = {{"metadata", {{"resourceVersion", Str(inst, "metadata", "resourceVersion")}}},
                {"spec", {{"volumes", volumes}}}};
  auto p = api->Patch("instances", ns, Name(inst), patch);
  return p.ok() ? Status() : p.status();
}

}  // namespace

std::optional<Error> CreateVolume(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  long long size = 0;
  Error e;
  // From a snapshot: at least its size (the default), on its node (placement pins it there).
  json snap;
  if (auto sid = c.params.Get("SnapshotId"); sid && !sid->empty()) {
    if (auto err = FindSnapshot(api, c, *sid, &snap)) return err;
    auto b = ParseQuantityBytes(Str(snap, "status", "size"));
    if (Str(snap, "status", "phase") != "Ready" || !b.ok()) {
      return Error{"IncorrectState", "Snapshot " + *sid + " is not completed yet", 400};
    }
    long long min = static_cast<long long>((*b + (1ull << 30) - 1) >> 30);
    if (!c.params.Has("Size")) {
      size = min;
    } else {
      if (!c.params.Int("Size", 1, 1, 16384, &size, &e)) return e;
      if (size < min) {
        return InvalidParameterValue("Volume of " + std::to_string(size) + "GiB is too small; minimum is " +
                                     std::to_string(min) + "GiB (the snapshot's size)");
      }
    }
  } else {
    if (!c.params.Has("Size")) return MissingParameter("Size");
    if (!c.params.Int("Size", 1, 1, 16384, &size, &e)) return e;
  }
  if (auto vt = c.params.Get("VolumeType"); vt && *vt != "standard" && *vt != "gp2" && *vt != "gp3") {
    return InvalidParameterValue("VolumeType '" + *vt + "' is not served (standard, gp2 and gp3 are one kind here)");
  }
  // A zone is where the volume's node must be: the zone's nodes (a label), or anywhere for the default zone.
  std::string zone = DefaultZone(o);
  json spec = {{"size", std::to_string(size) + "Gi"}};
  if (!snap.is_null()) spec["source"] = {{"snapshot", Name(snap)}};
  if (auto z = c.params.Get("AvailabilityZone"); z && !z->empty() && *z != DefaultZone(o) && snap.is_null()) {
    auto zones = NodeZones(api, o);
    std::string node;
    for (const auto& [n, nz] : zones) {
      if (nz == *z && node.empty()) node = n;
    }
    if (node.empty()) return InvalidParameterValue("Invalid availability zone: [" + *z + "]");
    spec["nodeName"] = node;
    zone = *z;
  }
  Tags tags;
  if (auto err = SpecTags(c.params, {"volume"}, "volume", &tags)) return err;
  std::string name = NameFromTags(tags, true);
  json md = json::object();
  if (!name.empty()) {
    md["name"] = name;
  } else {
    md["generateName"] = "vol-";
  }
  PutTags(&md, tags);
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Volume"},
              {"metadata", md},
              {"spec", spec}};
  auto made = api->Create("volumes", c.caller->ns, obj);
  if (!made.ok()) {
    if (made.status().code() == Code::kAlreadyExists) {
      return InvalidParameterValue("a volume named '" + name + "' already exists");
    }
    if (made.status().code() == Code::kForbidden) {
      return Error{"VolumeLimitExceeded", made.status().message(), 400};
    }
    if (made.status().code() == Code::kInvalid) return InvalidParameterValue(made.status().message());
    return FromStatus(made.status());
  }
  AddText(r->root(), "volumeId", Ec2Id("vol", Uid(*made)));
  AddText(r->root(), "size", std::to_string(size));
  AddText(r->root(), "snapshotId", snap.is_null() ? "" : c.params.Get("SnapshotId").value_or(""));
  AddText(r->root(), "availabilityZone", zone);
  AddText(r->root(), "status", "creating");
  AddText(r->root(), "createTime", Str(*made, "metadata", "creationTimestamp"));
  AddText(r->root(), "volumeType", "standard");
  AddBool(r->root(), "encrypted", false);
  AddTagSet(r->root(), *made);
  return std::nullopt;
}

std::optional<Error> DescribeVolumes(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "VolumeId", VolumeIdPattern(), "InvalidVolumeID.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (f.name != "status" && f.name != "volume-id" && f.name != "attachment.instance-id" &&
        f.name != "availability-zone" && f.name != "size" && !IsTagFilter(f.name)) {
      return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
    }
  }
  auto list = api->List("volumes", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  auto insts = api->List("instances", c.caller->ns, {});
  if (!insts.ok()) return FromStatus(insts.status());
  auto att = Attachments(*insts);
  auto zones = NodeZones(api, o);
  std::map<std::string, std::string> snapshot_ids;  // name -> EC2 id
  if (auto snaps = api->List("volumesnapshots", c.caller->ns, {}); snaps.ok()) {
    for (const auto& sn : (*snaps)["items"]) snapshot_ids[Name(sn)] = Ec2Id("snap", Uid(sn));
  }
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "volumeSet");
  for (const auto& v : (*list)["items"]) {
    std::string id = Ec2Id("vol", Uid(v));
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    auto a = att.find(Name(v));
    std::string state = a != att.end() && VolumeState(v) != "deleting" ? "in-use" : VolumeState(v);
    std::string inst_id = a != att.end() ? Ec2Id("i", Uid(a->second.instance)) : "";
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, v);
        continue;
      }
      std::string val = f.name == "status" ? state : f.name == "volume-id" ? id : f.name == "size" ? std::to_string(SizeGiB(v))
                      : f.name == "availability-zone" ? VolumeZone(v, zones, o) : inst_id;
      match = match && AnyMatch(f.values, val);
    }
    if (match) VolumeItem(AddItem(set), v, att, VolumeZone(v, zones, o), snapshot_ids);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidVolume.NotFound", "The volume '" + id + "' does not exist.", 400};
  }
  return std::nullopt;
}

std::optional<Error> DeleteVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json vol;
  if (auto e = NamedVolume(api, c, &vol)) return e;
  auto insts = api->List("instances", c.caller->ns, {});
  if (!insts.ok()) return FromStatus(insts.status());
  auto att = Attachments(*insts);
  auto a = att.find(Name(vol));
  if (a != att.end()) {
    return Error{"VolumeInUse", "Volume " + Ec2Id("vol", Uid(vol)) + " is currently attached to " +
                                    Ec2Id("i", Uid(a->second.instance)), 400};
  }
  auto d = api->Delete("volumes", c.caller->ns, Name(vol), Uid(vol));
  if (!d.ok() && d.status().code() != Code::kNotFound) {
    if (d.status().code() == Code::kConflict) return Error{"VolumeInUse", d.status().message(), 400};
    return FromStatus(d.status());
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

std::optional<Error> AttachVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json vol;
  if (auto e = NamedVolume(api, c, &vol)) return e;
  auto device_param = c.params.Get("Device");
  if (!device_param || device_param->empty()) return MissingParameter("Device");
  auto device = GuestDevice(*device_param);
  if (!device) {
    return InvalidParameterValue("Invalid value '" + *device_param + "' for unixDevice. Attachment point " +
                                 *device_param + " is not in a valid format (/dev/sd[b-z], /dev/xvd[b-z], /dev/vd[b-z])");
  }
  static const std::regex kInstance("i-[0-9a-f]{8,17}");
  auto inst_id = c.params.Get("InstanceId");
  if (!inst_id || inst_id->empty()) return MissingParameter("InstanceId");
  if (!std::regex_match(*inst_id, kInstance)) return Error{"InvalidInstanceID.Malformed", "Invalid id: \"" + *inst_id + "\"", 400};
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto insts = api->List("instances", c.caller->ns, {});
    if (!insts.ok()) return FromStatus(insts.status());
    auto att = Attachments(*insts);
    if (att.count(Name(vol))) {
      return Error{"VolumeInUse", "vol " + Ec2Id("vol", Uid(vol)) + " is already attached to an instance", 400};
    }
    const json* target = nullptr;
    for (const auto& inst : (*insts)["items"]) {
      if (Ec2Id("i", Uid(inst)) == *inst_id) target = &inst;
    }
    if (!target) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + *inst_id + "' does not exist", 400};
    json volumes = target->contains("spec") && (*target)["spec"].contains("volumes") && (*target)["spec"]["volumes"].is_array()
                       ? (*target)["spec"]["volumes"]
                       : json::array();
    for (const auto& v : volumes) {
      if (Str(v, "device") == *device) {
        return InvalidParameterValue("Invalid value '" + *device_param + "' for unixDevice. Attachment point " +
                                     *device_param + " is already in use");
      }
    }
    volumes.push_back({{"volume", Name(vol)}, {"device", *device}});
    Status s = SetInstanceVolumes(api, c.caller->ns, *target, volumes);
    if (s.code() == Code::kConflict) continue;  // the instance changed meanwhile: read it again
    if (!s.ok()) {
      if (s.code() == Code::kInvalid) return InvalidParameterValue(s.message());
      return FromStatus(s);
    }
    AddText(r->root(), "volumeId", Ec2Id("vol", Uid(vol)));
    AddText(r->root(), "instanceId", *inst_id);
    AddText(r->root(), "device", *device_param);
    AddText(r->root(), "status", "attaching");
    AddText(r->root(), "attachTime", NowRfc3339());
    return std::nullopt;
  }
  return Error{"IncorrectState", "the instance kept changing; try again", 400};
}

std::optional<Error> DetachVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json vol;
  if (auto e = NamedVolume(api, c, &vol)) return e;
  auto want_inst = c.params.Get("InstanceId");
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto insts = api->List("instances", c.caller->ns, {});
    if (!insts.ok()) return FromStatus(insts.status());
    auto att = Attachments(*insts);
    auto a = att.find(Name(vol));
    if (a == att.end()) {
      return Error{"IncorrectState", "Volume '" + Ec2Id("vol", Uid(vol)) + "' is in the 'available' state.", 400};
    }
    std::string inst_id = Ec2Id("i", Uid(a->second.instance));
    if (want_inst && !want_inst->empty() && *want_inst != inst_id) {
      return Error{"InvalidAttachment.NotFound", "The volume is not attached to instance " + *want_inst, 400};
    }
    json volumes = json::array();
    for (const auto& v : a->second.instance["spec"]["volumes"]) {
      if (Str(v, "volume") != Name(vol)) volumes.push_back(v);
    }
    Status s = SetInstanceVolumes(api, c.caller->ns, a->second.instance, volumes);
    if (s.code() == Code::kConflict) continue;
    if (!s.ok()) return FromStatus(s);
    AddText(r->root(), "volumeId", Ec2Id("vol", Uid(vol)));
    AddText(r->root(), "instanceId", inst_id);
    AddText(r->root(), "device", "/dev/" + a->second.device);
    AddText(r->root(), "status", "detaching");
    AddText(r->root(), "attachTime", Str(vol, "metadata", "creationTimestamp"));
    return std::nullopt;
  }
  return Error{"IncorrectState", "the instance kept changing; try again", 400};
}

namespace {

// What ModifyVolume recorded (original and target size, start time), as EC2's volumeModification: completed once
// the volume's capacity has reached the target.
void ModificationItem(pugi::xml_node item, const json& vol) {
  json m = json::object();
  if (vol.contains("metadata") && vol["metadata"].contains("annotations") && vol["metadata"]["annotations"].is_object()) {
    m = json::parse(vol["metadata"]["annotations"].value(kModificationAnnotation, "{}"), nullptr, false);
    if (!m.is_object()) m = json::object();
  }
  long long target = m.value("targetSize", 0LL);
  auto cap = ParseQuantityBytes(Str(vol, "status", "capacity"));
  bool done = cap.ok() && target > 0 && static_cast<long long>(*cap >> 30) >= target;
  AddText(item, "volumeId", Ec2IdOf(vol));
  AddText(item, "modificationState", done ? "completed" : "modifying");
  AddText(item, "targetSize", std::to_string(target));
  AddText(item, "originalSize", std::to_string(m.value("originalSize", 0LL)));
  AddText(item, "targetVolumeType", "standard");
  AddText(item, "originalVolumeType", "standard");
  AddText(item, "progress", done ? "100" : "0");
  AddText(item, "startTime", m.value("startTime", std::string()));
}

}  // namespace

// ModifyVolume: a bigger Size (GiB; volumes only grow), applied live to an attached volume where the node can.
std::optional<Error> ModifyVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json vol;
  if (auto e = NamedVolume(api, c, &vol)) return e;
  if (c.params.Has("Iops") || c.params.Has("Throughput") || c.params.Has("MultiAttachEnabled")) {
    return InvalidParameterValue("only Size is modified here (volumes have no IOPS, throughput or multi-attach)");
  }
  if (auto vt = c.params.Get("VolumeType"); vt && *vt != "standard" && *vt != "gp2" && *vt != "gp3") {
    return InvalidParameterValue("VolumeType '" + *vt + "' is not served");
  }
  long long size = 0, now = SizeGiB(vol);
  Error e;
  if (!c.params.Has("Size")) return MissingParameter("Size");
  if (!c.params.Int("Size", 1, 1, 16384, &size, &e)) return e;
  if (size < now) {
    return InvalidParameterValue("New size cannot be smaller than existing size (" + std::to_string(now) + " GiB)");
  }
  if (size == now) return InvalidParameterValue("New size must differ from the existing size (" + std::to_string(now) + " GiB)");
  json mod = {{"originalSize", now}, {"targetSize", size}, {"startTime", NowRfc3339()}};
  json patch = {{"metadata", {{"resourceVersion", Str(vol, "metadata", "resourceVersion")},
                              {"annotations", {{kModificationAnnotation, mod.dump()}}}}},
                {"spec", {{"size", std::to_string(size) + "Gi"}}}};
  auto p = api->Patch("volumes", c.caller->ns, Name(vol), patch);
  if (!p.ok()) {
    if (p.status().code() == Code::kConflict) return Error{"IncorrectModificationState", "the volume is changing; try again", 400};
    if (p.status().code() == Code::kInvalid) return InvalidParameterValue(p.status().message());
    if (p.status().reason() == "QuotaExceeded") return Error{"VolumeLimitExceeded", p.status().message(), 400};
    return FromStatus(p.status());
  }
  ModificationItem(r->root().append_child("volumeModification"), *p);
  return std::nullopt;
}

std::optional<Error> DescribeVolumesModifications(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "VolumeId", VolumeIdPattern(), "InvalidVolumeID.Malformed", &ids)) return e;
  auto list = api->List("volumes", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "volumeModificationSet");
  for (const auto& v : (*list)["items"]) {
    std::string id = Ec2IdOf(v);
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    if (!v.contains("metadata") || !v["metadata"].contains("annotations") ||
        !v["metadata"]["annotations"].contains(kModificationAnnotation)) {
      continue;
    }
    ModificationItem(AddItem(set), v);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidVolume.NotFound", "The volume '" + id + "' does not exist.", 400};
  }
  return std::nullopt;
}

// DescribeVolumeStatus: "ok" for a volume that is available or in use, "impaired" for a failed one.
std::optional<Error> DescribeVolumeStatus(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "VolumeId", VolumeIdPattern(), "InvalidVolumeID.Malformed", &ids)) return e;
  auto list = api->List("volumes", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  auto zones = NodeZones(api, o);
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "volumeStatusSet");
  for (const auto& v : (*list)["items"]) {
    std::string id = Ec2IdOf(v);
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    std::string state = VolumeState(v);
    std::string status = state == "error" ? "impaired" : state == "creating" ? "insufficient-data" : "ok";
    auto item = AddItem(set);
    AddText(item, "volumeId", id);
    AddText(item, "availabilityZone", VolumeZone(v, zones, o));
    auto vs = item.append_child("volumeStatus");
    AddText(vs, "status", status);
    auto d = AddItem(AddSet(vs, "details"));
    AddText(d, "name", "io-enabled");
    AddText(d, "status", status == "ok" ? "passed" : status == "impaired" ? "failed" : "insufficient-data");
    AddSet(item, "eventsSet");
    AddSet(item, "actionsSet");
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidVolume.NotFound", "The volume '" + id + "' does not exist.", 400};
  }
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
