// Instances as EC2 shows them: RunInstances, DescribeInstances, DescribeInstanceStatus, Start/Stop/Reboot/
// TerminateInstances, GetConsoleOutput, DescribeInstanceAttribute and ModifyInstanceAttribute onto Instance
// objects. A terminated instance's object is gone; the Event the API server records when it leaves the store
// (label stratus.io/tombstone=Instance) keeps it visible as `terminated` for an hour, as EC2 does.
#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/base64.h"
#include "stratus/core/object.h"
#include "stratus/core/resources.h"

namespace stratus::ec2::actions {
namespace {

constexpr const char* kClientTokenAnnotation = "ec2.stratus.io/client-token";
constexpr int64_t kTombstoneSeconds = 3600;  // how long a terminated instance stays visible

const std::regex& InstanceIdPattern() {
  static const std::regex k("i-[0-9a-f]{8,17}");
  return k;
}

bool IsTerminated(const json& inst) { return Str(inst, "status", "phase") == "Terminated"; }

// EC2's instance state (code, name) for an Instance's phase.
std::pair<int, std::string> InstanceState(const json& inst) {
  std::string phase = Str(inst, "status", "phase");
  if (phase == "Terminated") return {48, "terminated"};
  if (inst.contains("metadata") && inst["metadata"].contains("deletionTimestamp")) return {32, "shutting-down"};
  if (phase == "Running") return {16, "running"};
  if (phase == "Stopping") return {64, "stopping"};
  // EC2 has no paused state; a suspended instance is what EC2 calls hibernated, which it shows as stopped.
  if (phase == "Stopped" || phase == "Failed" || phase == "Paused" || phase == "Suspended") return {80, "stopped"};
  if (phase == "Terminating") return {32, "shutting-down"};
  return {0, "pending"};
}

std::string PrivateIp(const json& inst) {
  if (inst.contains("status") && inst["status"].contains("addresses") && inst["status"]["addresses"].is_array() &&
      !inst["status"]["addresses"].empty()) {
    return Str(inst["status"]["addresses"][0], "ip");
  }
  return "";
}

// What Describe* needs besides the instances: zones of nodes, subnets of networks, ids of groups and images.
struct View {
  std::string default_zone, vpc;
  std::map<std::string, std::string> node_zone, subnet, group_id, image_id;
  std::string Zone(const json& inst) const {
    auto it = node_zone.find(Str(inst, "spec", "nodeName"));
    return it != node_zone.end() ? it->second : default_zone;
  }
};

std::optional<Error> LoadView(ApiClient* api, const ApiOptions& o, const Call& c, View* v) {
  v->default_zone = DefaultZone(o);
  v->vpc = Ec2Id("vpc", "namespace/" + c.caller->ns);
  auto nodes = api->List("nodes", "", {});
  if (nodes.ok()) {
    for (const auto& n : (*nodes)["items"]) v->node_zone[Name(n)] = ZoneOfNode(n, o);
  }
  for (const char* plural : {"networks", "securitygroups", "images"}) {
    auto l = api->List(plural, c.caller->ns, {});
    if (!l.ok()) return FromStatus(l.status());
    auto& m = std::string(plural) == "networks" ? v->subnet : std::string(plural) == "images" ? v->image_id : v->group_id;
    for (const auto& obj : (*l)["items"]) m[Name(obj)] = Ec2IdOf(obj);
  }
  return std::nullopt;
}

// Terminated instances of the last hour, from their tombstone Events, as Instance-shaped objects (phase Terminated).
std::vector<json> Tombstones(ApiClient* api, const std::string& ns) {
  ListOptions lo;
  lo.label_selector = std::string(kTombstoneLabel) + "=Instance";
  auto events = api->List("events", ns, lo);
  std::vector<json> out;
  if (!events.ok()) return out;
  int64_t now = ParseRfc3339(NowRfc3339());
  for (const auto& ev : (*events)["items"]) {
    int64_t at = ParseRfc3339(Str(ev, "lastTimestamp"));
    if (at <= 0 || now - at > kTombstoneSeconds) continue;
    json shown = json::object();
    if (ev.contains("metadata") && ev["metadata"].contains("annotations")) {
      shown = json::parse(ev["metadata"]["annotations"].value(kTombstoneAnnotation, "{}"), nullptr, false);
      if (!shown.is_object()) shown = json::object();
    }
    const json involved = ev.value("involvedObject", json::object());
    json spec = json::object();
    for (const char* f : {"instanceType", "image", "keyName", "nodeName"}) {
      if (shown.contains(f) && shown[f].is_string()) spec[f] = shown[f];
    }
    out.push_back({{"kind", "Instance"},
                   {"metadata",
                    {{"name", involved.value("name", "")},
                     {"uid", involved.value("uid", "")},
                     {"creationTimestamp", shown.value("launchTime", "")}}},
                   {"spec", spec},
                   {"status", {{"phase", "Terminated"}, {"terminatedAt", Str(ev, "lastTimestamp")}}}});
  }
  return out;
}

// The caller's instances (and, with `terminated`, the tombstones of the last hour) by EC2 id.
std::optional<Error> InstancesById(ApiClient* api, const Call& c, bool terminated, std::map<std::string, json>* out) {
  auto list = api->List("instances", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  if (terminated) {
    for (auto& t : Tombstones(api, c.caller->ns)) {
      std::string id = Ec2IdOf(t);  // before the move: json's operator= takes its argument by value
      (*out)[id] = std::move(t);
    }
  }
  for (const auto& inst : (*list)["items"]) (*out)[Ec2IdOf(inst)] = inst;  // a live object wins over a tombstone
  return std::nullopt;
}

// One instance as EC2 shows it (an `item` of an instancesSet).
void InstanceItem(pugi::xml_node item, const json& inst, const View& v) {
  auto [code, state] = InstanceState(inst);
  const json spec = inst.value("spec", json::object());
  auto image = v.image_id.find(Str(spec, "image"));
  AddText(item, "instanceId", Ec2IdOf(inst));
  AddText(item, "imageId", image != v.image_id.end() ? image->second : "");
  auto st = item.append_child("instanceState");
  AddText(st, "code", std::to_string(code));
  AddText(st, "name", state);
  AddText(item, "privateDnsName", Name(inst));
  AddText(item, "dnsName", "");
  if (IsTerminated(inst)) AddText(item, "reason", "User initiated (" + Str(inst, "status", "terminatedAt") + ")");
  AddText(item, "keyName", Str(spec, "keyName"));
  AddText(item, "amiLaunchIndex", "0");
  AddText(item, "instanceType", Str(spec, "instanceType"));
  AddText(item, "launchTime", Str(inst, "metadata", "creationTimestamp"));
  auto placement = item.append_child("placement");
  AddText(placement, "availabilityZone", v.Zone(inst));
  AddText(placement, "tenancy", "default");
  for (const auto& [field, kind] : {std::pair<const char*, const char*>{"kernelImage", "kernelId"}, {"ramdiskImage", "ramdiskId"}}) {
    auto it = v.image_id.find(Str(spec, field));
    if (it != v.image_id.end()) AddText(item, kind, it->second);
  }
  auto mon = item.append_child("monitoring");
  AddText(mon, "state", "disabled");
  std::string ip = PrivateIp(inst);
  if (!IsTerminated(inst)) {
    std::string net = spec.contains("networks") && spec["networks"].is_array() && !spec["networks"].empty()
                          ? Str(spec["networks"][0], "network")
                          : "default";
    auto subnet = v.subnet.find(net);
    if (subnet != v.subnet.end()) AddText(item, "subnetId", subnet->second);
    AddText(item, "vpcId", v.vpc);
    if (!ip.empty()) AddText(item, "privateIpAddress", ip);
  }
  auto groups = AddSet(item, "groupSet");
  if (spec.contains("securityGroups") && spec["securityGroups"].is_array()) {
    for (const auto& g : spec["securityGroups"]) {
      if (!g.is_string()) continue;
      auto gi = AddItem(groups);
      auto id = v.group_id.find(g.get<std::string>());
      AddText(gi, "groupId", id != v.group_id.end() ? id->second : "");
      AddText(gi, "groupName", g.get<std::string>());
    }
  }
  AddText(item, "architecture", "x86_64");
  AddText(item, "rootDeviceType", "ebs");
  AddText(item, "rootDeviceName", "/dev/vda");
  auto bdm = AddSet(item, "blockDeviceMapping");
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (const auto& vol : spec["volumes"]) {
      auto b = AddItem(bdm);
      AddText(b, "deviceName", "/dev/" + Str(vol, "device"));
      auto ebs = b.append_child("ebs");
      AddText(ebs, "status", "attached");
      AddBool(ebs, "deleteOnTermination", false);
    }
  }
  AddText(item, "virtualizationType", "hvm");
  AddText(item, "hypervisor", "xen");  // what EC2 tools expect; the guest runs on libvirt/QEMU
  AddTagSet(item, inst);
}

// The caller's instances named by InstanceId.N (at least one), in the order given; EC2's errors otherwise.
std::optional<Error> NamedInstances(ApiClient* api, const Call& c, bool terminated,
                                    std::vector<std::pair<std::string, json>>* out) {
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", InstanceIdPattern(), "InvalidInstanceID.Malformed", &ids)) return e;
  if (ids.empty()) return MissingParameter("InstanceId");
  std::map<std::string, json> by_id;
  if (auto e = InstancesById(api, c, terminated, &by_id)) return e;
  std::vector<std::string> missing;
  for (const auto& id : ids) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      missing.push_back(id);
    } else {
      out->emplace_back(id, it->second);
    }
  }
  if (!missing.empty()) {
    std::string list_text;
    for (const auto& m : missing) list_text += (list_text.empty() ? "" : ", ") + m;
    return Error{"InvalidInstanceID.NotFound", "The instance IDs '" + list_text + "' do not exist", 400};
  }
  return std::nullopt;
}

// The one instance InstanceId names (a live one: a terminated instance has no attributes or console left).
std::optional<Error> OneInstance(ApiClient* api, const Call& c, json* out) {
  auto id = c.params.Get("InstanceId");
  if (!id || id->empty()) return MissingParameter("InstanceId");
  if (!std::regex_match(*id, InstanceIdPattern())) return Error{"InvalidInstanceID.Malformed", "Invalid id: \"" + *id + "\"", 400};
  std::map<std::string, json> by_id;
  if (auto e = InstancesById(api, c, false, &by_id)) return e;
  auto it = by_id.find(*id);
  if (it == by_id.end()) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + *id + "' does not exist", 400};
  *out = it->second;
  return std::nullopt;
}

void StateChange(pugi::xml_node set, const std::string& id, std::pair<int, std::string> before,
                 std::pair<int, std::string> after) {
  auto item = AddItem(set);
  AddText(item, "instanceId", id);
  auto cur = item.append_child("currentState");
  AddText(cur, "code", std::to_string(after.first));
  AddText(cur, "name", after.second);
  auto prev = item.append_child("previousState");
  AddText(prev, "code", std::to_string(before.first));
  AddText(prev, "name", before.second);
}

// The reservation of a RunInstances: its instances, as EC2 answers it.
std::optional<Error> Reservation(ApiClient* api, const ApiOptions& o, Response* r, const Call& c,
                                 const std::vector<json>& made) {
  View v;
  if (auto e = LoadView(api, o, c, &v)) return e;
  AddText(r->root(), "reservationId", Ec2Id("r", Uid(made.front())));
  AddText(r->root(), "ownerId", c.caller->ns);
  AddSet(r->root(), "groupSet");
  auto set = AddSet(r->root(), "instancesSet");
  for (const auto& m : made) InstanceItem(AddItem(set), m, v);
  return std::nullopt;
}

// UserData as EC2 takes it (base64, at most 16 KiB decoded) as the text spec.userData holds.
std::optional<Error> DecodeUserData(const std::string& encoded, const std::string& param, std::string* out) {
  std::optional<std::string> decoded;
  if (encoded.size() > 22000 || !(decoded = Base64Decode(encoded))) {
    return InvalidParameterValue(param + " must be base64 of at most 16 KiB");
  }
  if (decoded->size() > 16384) return InvalidParameterValue(param + " is over 16 KiB once decoded");
  try {
    (void)json(*decoded).dump();  // user data is stored as text: it must be UTF-8
  } catch (const std::exception&) {
    return InvalidParameterValue(param + " must decode to UTF-8 text");
  }
  *out = std::move(*decoded);
  return std::nullopt;
}

// The name of the caller's image with EC2 id `id` of `prefix` (ami, aki, ari).
std::optional<Error> ImageName(const json& images, const std::string& id, const std::string& prefix, std::string* name) {
  static const std::regex kId("(ami|aki|ari)-[0-9a-f]{8,17}");
  if (!std::regex_match(id, kId) || id.rfind(prefix + "-", 0) != 0) {
    return Error{"InvalidAMIID.Malformed", "Invalid id: \"" + id + "\" (expecting \"" + prefix + "-...\")", 400};
  }
  for (const auto& img : images["items"]) {
    if (Ec2IdOf(img) == id) {
      *name = Name(img);
      return std::nullopt;
    }
  }
  return Error{"InvalidAMIID.NotFound", "The image id '[" + id + "]' does not exist", 400};
}

// BlockDeviceMapping.N: the root device's (DeviceName /dev/sda1, /dev/xvda, /dev/vda) Ebs.VolumeSize (GiB) and
// Ebs.DeleteOnTermination become spec.rootDisk. Data volumes are made with CreateVolume and AttachVolume.
std::optional<Error> RootDiskFrom(const Params& p, json* spec) {
  static const std::set<std::string> kRoot = {"/dev/sda1", "/dev/sda", "/dev/xvda", "/dev/vda"};
  for (int n = 1; n <= 25; ++n) {
    std::string base = "BlockDeviceMapping." + std::to_string(n);
    auto dev = p.Get(base + ".DeviceName");
    if (!dev) continue;
    if (!kRoot.count(*dev)) {
      return InvalidParameterValue(base + ".DeviceName '" + *dev + "': only the root device (/dev/sda1, /dev/xvda or "
                                   "/dev/vda) is mapped at launch; make data volumes with CreateVolume and AttachVolume");
    }
    if (p.Has(base + ".NoDevice") || p.Has(base + ".VirtualName") || p.Has(base + ".Ebs.SnapshotId")) {
      return InvalidParameterValue(base + ": the root device takes Ebs.VolumeSize and Ebs.DeleteOnTermination only");
    }
    long long size = 0;
    bool del = true;
    Error e;
    if (p.Has(base + ".Ebs.VolumeSize")) {
      if (!p.Int(base + ".Ebs.VolumeSize", 1, 1, 16384, &size, &e)) return e;
      (*spec)["rootDisk"]["size"] = std::to_string(size) + "Gi";
    }
    if (!p.Bool(base + ".Ebs.DeleteOnTermination", true, &del, &e)) return e;
    (*spec)["rootDisk"]["deleteOnTermination"] = del;
  }
  return std::nullopt;
}

}  // namespace

// The zone of nodes without a stratus.io/zone label; agents label theirs "default" (--zone) unless told otherwise.
std::string DefaultZone(const ApiOptions&) { return "default"; }

std::string ZoneOfNode(const json& node, const ApiOptions& o) {
  if (node.contains("metadata") && node["metadata"].contains("labels") && node["metadata"]["labels"].is_object()) {
    const json& l = node["metadata"]["labels"];
    if (l.contains("stratus.io/zone") && l["stratus.io/zone"].is_string() && !l["stratus.io/zone"].get<std::string>().empty()) {
      return l["stratus.io/zone"].get<std::string>();
    }
  }
  return DefaultZone(o);
}

// DescribeInstances: InstanceId.N, filters (values ORed within a filter, filters ANDed, wildcards), and pages of
// MaxResults (5-1000) in instance-id order, NextToken being the last id of the previous page.
std::optional<Error> DescribeInstances(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  static const std::set<std::string> kFilters = {
      "instance-id",  "instance-state-name", "instance-state-code", "instance-type",       "image-id",
      "key-name",     "private-ip-address",  "private-dns-name",    "availability-zone",   "subnet-id",
      "vpc-id",       "instance.group-id",   "instance.group-name", "group-id",            "group-name"};
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", InstanceIdPattern(), "InvalidInstanceID.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (!kFilters.count(f.name) && !IsTagFilter(f.name)) {
      return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
    }
  }
  long long max_results = 0;
  if (c.params.Has("MaxResults")) {
    if (!ids.empty()) {
      return Error{"InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults", 400};
    }
    if (!c.params.Int("MaxResults", 1000, 5, 1000, &max_results, &fe)) return fe;
  }
  std::string after = c.params.Get("NextToken").value_or("");
  if (!after.empty() && !std::regex_match(after, InstanceIdPattern())) {
    return InvalidParameterValue("NextToken '" + after + "' is not valid");
  }
  std::map<std::string, json> by_id;  // instance-id order: stable pages
  if (auto e = InstancesById(api, c, true, &by_id)) return e;
  View v;
  if (auto e = LoadView(api, o, c, &v)) return e;
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "reservationSet");
  long long shown = 0;
  std::string last;
  bool more = false;
  for (const auto& [id, inst] : by_id) {
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    if (!after.empty() && id <= after) continue;
    auto [code, state] = InstanceState(inst);
    const json spec = inst.value("spec", json::object());
    std::vector<std::string> group_names, group_ids;
    if (spec.contains("securityGroups") && spec["securityGroups"].is_array()) {
      for (const auto& g : spec["securityGroups"]) {
        if (!g.is_string()) continue;
        group_names.push_back(g.get<std::string>());
        auto gi = v.group_id.find(g.get<std::string>());
        if (gi != v.group_id.end()) group_ids.push_back(gi->second);
      }
    }
    std::string net = spec.contains("networks") && spec["networks"].is_array() && !spec["networks"].empty()
                          ? Str(spec["networks"][0], "network")
                          : "default";
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, inst);
        continue;
      }
      if (f.name == "instance.group-id" || f.name == "group-id" || f.name == "instance.group-name" || f.name == "group-name") {
        const auto& of = f.name.find("id") != std::string::npos ? group_ids : group_names;
        match = match && std::any_of(of.begin(), of.end(), [&](const std::string& g) { return AnyMatch(f.values, g); });
        continue;
      }
      std::string val;
      if (f.name == "instance-id") val = id;
      if (f.name == "instance-state-name") val = state;
      if (f.name == "instance-state-code") val = std::to_string(code);
      if (f.name == "instance-type") val = Str(spec, "instanceType");
      if (f.name == "image-id") val = v.image_id.count(Str(spec, "image")) ? v.image_id.at(Str(spec, "image")) : "";
      if (f.name == "key-name") val = Str(spec, "keyName");
      if (f.name == "private-ip-address") val = PrivateIp(inst);
      if (f.name == "private-dns-name") val = Name(inst);
      if (f.name == "availability-zone") val = v.Zone(inst);
      if (f.name == "subnet-id") val = v.subnet.count(net) ? v.subnet.at(net) : "";
      if (f.name == "vpc-id") val = v.vpc;
      match = match && AnyMatch(f.values, val);
    }
    if (!match) continue;
    if (max_results > 0 && shown == max_results) {
      more = true;
      break;
    }
    ++shown;
    last = id;
    auto res = AddItem(set);
    AddText(res, "reservationId", Ec2Id("r", Uid(inst)));
    AddText(res, "ownerId", c.caller->ns);
    AddSet(res, "groupSet");
    InstanceItem(AddItem(AddSet(res, "instancesSet")), inst, v);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist", 400};
  }
  if (more) AddText(r->root(), "nextToken", last);
  return std::nullopt;
}

// Each instance's state and status checks (what `aws ec2 wait instance-status-ok` polls): running instances whose
// Ready condition is True are "ok", other running ones "initializing"; others are listed only with
// IncludeAllInstances=true, as EC2 does.
std::optional<Error> DescribeInstanceStatus(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", InstanceIdPattern(), "InvalidInstanceID.Malformed", &ids)) return e;
  bool all = false;
  Error e;
  if (!c.params.Bool("IncludeAllInstances", false, &all, &e)) return e;
  std::map<std::string, json> by_id;
  if (auto err = InstancesById(api, c, true, &by_id)) return err;
  auto nodes = api->List("nodes", "", {});
  std::map<std::string, std::string> zone;
  if (nodes.ok()) {
    for (const auto& n : (*nodes)["items"]) zone[Name(n)] = ZoneOfNode(n, o);
  }
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "instanceStatusSet");
  for (const auto& [id, inst] : by_id) {
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    auto [code, state] = InstanceState(inst);
    if (code != 16 && !all) continue;
    bool ready = false;
    if (inst.contains("status") && inst["status"].contains("conditions") && inst["status"]["conditions"].is_array()) {
      for (const auto& cond : inst["status"]["conditions"]) {
        if (cond.value("type", "") == "Ready") ready = cond.value("status", "") == "True";
      }
    }
    std::string check = code != 16 ? "not-applicable" : ready ? "ok" : "initializing";
    auto item = AddItem(set);
    AddText(item, "instanceId", id);
    auto z = zone.find(Str(inst, "spec", "nodeName"));
    AddText(item, "availabilityZone", z != zone.end() ? z->second : DefaultZone(o));
    auto st = item.append_child("instanceState");
    AddText(st, "code", std::to_string(code));
    AddText(st, "name", state);
    for (const char* kind : {"systemStatus", "instanceStatus"}) {
      auto s = item.append_child(kind);
      AddText(s, "status", check);
      auto detail = AddItem(AddSet(s, "details"));
      AddText(detail, "name", "reachability");
      AddText(detail, "status", check == "ok" ? "passed" : check == "initializing" ? "initializing" : "not-applicable");
    }
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist", 400};
  }
  return std::nullopt;
}

std::optional<Error> RunInstances(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  // ClientToken: a retried request answers the instances the first one made (kept as an annotation on them).
  std::string client_token = c.params.Get("ClientToken").value_or("");
  if (client_token.size() > 64) return InvalidParameterValue("ClientToken is longer than 64 characters");
  if (!client_token.empty()) {
    auto existing = api->List("instances", c.caller->ns, {});
    if (!existing.ok()) return FromStatus(existing.status());
    std::vector<json> before;
    for (const auto& inst : (*existing)["items"]) {
      if (inst.contains("metadata") && inst["metadata"].contains("annotations") &&
          inst["metadata"]["annotations"].value(kClientTokenAnnotation, "") == client_token) {
        before.push_back(inst);
      }
    }
    if (!before.empty()) return Reservation(api, o, r, c, before);
  }
  auto image_id = c.params.Get("ImageId");
  if (!image_id || image_id->empty()) return MissingParameter("ImageId");
  long long min_count = 0, max_count = 0;
  Error e;
  if (!c.params.Has("MinCount")) return MissingParameter("MinCount");
  if (!c.params.Has("MaxCount")) return MissingParameter("MaxCount");
  if (!c.params.Int("MinCount", 1, 1, 20, &min_count, &e) || !c.params.Int("MaxCount", 1, 1, 20, &max_count, &e)) return e;
  if (min_count > max_count) {
    return Error{"InvalidParameterCombination", "MinCount (" + std::to_string(min_count) +
                                                    ") must not be more than MaxCount (" + std::to_string(max_count) + ")", 400};
  }
  auto images = api->List("images", c.caller->ns, {});
  if (!images.ok()) return FromStatus(images.status());
  std::string image;
  if (auto err = ImageName(*images, *image_id, "ami", &image)) return err;
  json spec = {{"image", image}, {"instanceType", c.params.Get("InstanceType").value_or("m1.small")}};
  // Kernel and ramdisk: as given, else what the image was registered with (RegisterImage's KernelId/RamdiskId).
  json image_obj;
  for (const auto& img : (*images)["items"]) {
    if (Name(img) == image) image_obj = img;
  }
  for (const auto& [param, field, prefix] : {std::tuple<const char*, const char*, const char*>{"KernelId", "kernelImage", "aki"},
                                             {"RamdiskId", "ramdiskImage", "ari"}}) {
    std::string id = c.params.Get(param).value_or(ImageDefault(image_obj, param));
    if (id.empty()) continue;
    std::string name;
    if (auto err = ImageName(*images, id, prefix, &name)) return err;
    spec[field] = name;
  }
  if (auto key = c.params.Get("KeyName")) {
    auto kp = api->Get("keypairs", c.caller->ns, *key);
    if (!kp.ok()) return Error{"InvalidKeyPair.NotFound", "The key pair '" + *key + "' does not exist", 400};
    spec["keyName"] = *key;
  }
  if (auto ud = c.params.Get("UserData")) {
    std::string text;
    if (auto err = DecodeUserData(*ud, "UserData", &text)) return err;
    spec["userData"] = text;
  }
  // Placement: a zone is the nodes labelled stratus.io/zone=ZONE; the default zone is every node.
  if (auto zone = c.params.Get("Placement.AvailabilityZone"); zone && !zone->empty()) {
    auto nodes = api->List("nodes", "", {});
    if (!nodes.ok()) return FromStatus(nodes.status());
    std::set<std::string> zones = {DefaultZone(o)};
    for (const auto& n : (*nodes)["items"]) zones.insert(ZoneOfNode(n, o));
    if (!zones.count(*zone)) return InvalidParameterValue("Invalid availability zone: [" + *zone + "]");
    if (*zone != DefaultZone(o)) spec["nodeSelector"] = {{"stratus.io/zone", *zone}};
  }
  // Subnet (a Network) and a fixed private address in it.
  auto subnet_id = c.params.Get("SubnetId");
  auto private_ip = c.params.Get("PrivateIpAddress");
  if ((subnet_id && !subnet_id->empty()) || (private_ip && !private_ip->empty())) {
    if (private_ip && !private_ip->empty() && max_count > 1) {
      return Error{"InvalidParameterCombination", "PrivateIpAddress can only be used with MaxCount 1", 400};
    }
    std::string network = "default";
    if (subnet_id && !subnet_id->empty()) {
      static const std::regex kSubnet("subnet-[0-9a-f]{8,17}");
      if (!std::regex_match(*subnet_id, kSubnet)) {
        return Error{"InvalidSubnetID.Malformed", "Invalid id: \"" + *subnet_id + "\"", 400};
      }
      auto nets = api->List("networks", c.caller->ns, {});
      if (!nets.ok()) return FromStatus(nets.status());
      network.clear();
      for (const auto& n : (*nets)["items"]) {
        if (Ec2IdOf(n) == *subnet_id) network = Name(n);
      }
      if (network.empty()) return Error{"InvalidSubnetID.NotFound", "The subnet ID '" + *subnet_id + "' does not exist", 400};
    }
    json nic = {{"network", network}};
    if (private_ip && !private_ip->empty()) nic["ip"] = *private_ip;
    spec["networks"] = json::array({nic});
  } else if (api->Get("networks", c.caller->ns, "default").ok()) {
    spec["networks"] = json::array({{{"network", "default"}}});  // the default VPC's default subnet, as in EC2
  }
  if (auto err = RootDiskFrom(c.params, &spec)) return err;
  // Security groups by name (SecurityGroup.N) or id (SecurityGroupId.N).
  std::vector<std::string> group_names, group_ids;
  if (!c.params.List("SecurityGroup", &group_names, &e) || !c.params.List("SecurityGroupId", &group_ids, &e)) return e;
  if (!group_ids.empty()) {
    auto groups = api->List("securitygroups", c.caller->ns, {});
    if (!groups.ok()) return FromStatus(groups.status());
    for (const auto& gid : group_ids) {
      std::string found;
      for (const auto& g : (*groups)["items"]) {
        if (Ec2IdOf(g) == gid) found = Name(g);
      }
      if (found.empty()) return Error{"InvalidGroup.NotFound", "The security group '" + gid + "' does not exist", 400};
      group_names.push_back(found);
    }
  }
  if (!group_names.empty()) spec["securityGroups"] = group_names;

  Tags tags;
  if (auto err = SpecTags(c.params, {"instance"}, "instance", &tags)) return err;
  std::string name = NameFromTags(tags, max_count == 1);
  std::vector<json> made;
  for (long long i = 0; i < max_count; ++i) {
    json md = name.empty() ? json{{"generateName", "ec2-"}} : json{{"name", name}};
    md["labels"] = {{"ec2.stratus.io/launched-by", "ec2"}};
    if (!client_token.empty()) md["annotations"] = {{kClientTokenAnnotation, client_token}};
    PutTags(&md, tags);
    json obj = {{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"}, {"metadata", md}, {"spec", spec}};
    auto created = api->Create("instances", c.caller->ns, obj);
    if (!created.ok()) {
      // All or nothing: undo what this call made.
      for (const auto& m : made) (void)api->Delete("instances", c.caller->ns, Name(m));
      if (created.status().code() == Code::kAlreadyExists) {
        return InvalidParameterValue("an instance named " + name + " already exists");
      }
      if (created.status().code() == Code::kInvalid || created.status().code() == Code::kBadRequest) {
        return InvalidParameterValue(created.status().message());
      }
      if (created.status().reason() == "QuotaExceeded") {
        return Error{"InstanceLimitExceeded", created.status().message(), 400};
      }
      return FromStatus(created.status());
    }
    made.push_back(*created);
  }
  return Reservation(api, o, r, c, made);
}

std::optional<Error> TerminateInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::pair<std::string, json>> insts;
  if (auto e = NamedInstances(api, c, true, &insts)) return e;
  auto set = AddSet(r->root(), "instancesSet");
  for (const auto& [id, inst] : insts) {
    auto before = InstanceState(inst);
    if (IsTerminated(inst)) {  // terminating a terminated instance answers its state, as EC2 does
      StateChange(set, id, before, before);
      continue;
    }
    auto d = api->Delete("instances", c.caller->ns, Name(inst), Uid(inst));
    if (!d.ok() && d.status().code() != Code::kNotFound) return FromStatus(d.status());
    StateChange(set, id, before, {32, "shutting-down"});
  }
  return std::nullopt;
}

namespace {

// Start and Stop: the desired power state, as `stratusctl start|stop` writes it.
std::optional<Error> SetPower(ApiClient* api, const Call& c, Response* r, const std::string& power,
                              std::pair<int, std::string> next) {
  std::vector<std::pair<std::string, json>> insts;
  if (auto e = NamedInstances(api, c, true, &insts)) return e;
  for (const auto& [id, inst] : insts) {
    if (IsTerminated(inst) || inst["metadata"].contains("deletionTimestamp")) {
      return Error{"IncorrectInstanceState", "The instance '" + id + "' is not in a state from which it can be " +
                                                 (power == "Running" ? "started" : "stopped"), 400};
    }
  }
  auto set = AddSet(r->root(), "instancesSet");
  for (const auto& [id, inst] : insts) {
    auto before = InstanceState(inst);
    auto p = api->Patch("instances", c.caller->ns, Name(inst), {{"spec", {{"powerState", power}}}});
    if (!p.ok()) return FromStatus(p.status());
    StateChange(set, id, before, before.second == (power == "Running" ? "running" : "stopped") ? before : next);
  }
  return std::nullopt;
}

}  // namespace

std::optional<Error> StopInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  bool force = false;
  Error e;
  if (!c.params.Bool("Force", false, &force, &e)) return e;  // the guest is asked first, then powered off either way
  return SetPower(api, c, r, "Stopped", {64, "stopping"});
}

std::optional<Error> StartInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return SetPower(api, c, r, "Running", {0, "pending"});
}

std::optional<Error> RebootInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::pair<std::string, json>> insts;
  if (auto e = NamedInstances(api, c, false, &insts)) return e;
  for (const auto& [id, inst] : insts) {
    auto p = api->Patch("instances", c.caller->ns, Name(inst), {{"spec", {{"restartRequestedAt", NowRfc3339()}}}});
    if (!p.ok()) return FromStatus(p.status());
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

// The serial console's last 64 KiB, base64 (EC2's GetConsoleOutput); empty before the instance is on a node.
std::optional<Error> GetConsoleOutput(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  json inst;
  if (auto e = OneInstance(api, c, &inst)) return e;
  std::string text;
  if (!Str(inst, "spec", "nodeName").empty() && o.console_output) {
    auto out = o.console_output(c.caller->ns, Name(inst));
    if (!out.ok()) {
      if (out.status().code() != Code::kNotFound) {
        return Error{"InternalError", "the console output could not be read: " + out.status().message(), 500};
      }
    } else {
      text = std::move(*out);
    }
  }
  AddText(r->root(), "instanceId", Ec2IdOf(inst));
  AddText(r->root(), "timestamp", NowRfc3339());
  AddText(r->root(), "output", Base64Encode(text));
  return std::nullopt;
}

namespace {

const std::set<std::string>& InstanceAttributes() {
  static const std::set<std::string> k = {"instanceType", "kernel", "ramdisk", "userData", "disableApiTermination",
                                          "instanceInitiatedShutdownBehavior", "rootDeviceName", "blockDeviceMapping",
                                          "groupSet", "sourceDestCheck", "ebsOptimized", "disableApiStop"};
  return k;
}

}  // namespace

std::optional<Error> DescribeInstanceAttribute(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  auto attr = c.params.Get("Attribute");
  if (!attr || attr->empty()) return MissingParameter("Attribute");
  if (!InstanceAttributes().count(*attr)) {
    return InvalidParameterValue("Value (" + *attr + ") for parameter attribute is invalid. Unknown attribute.");
  }
  json inst;
  if (auto e = OneInstance(api, c, &inst)) return e;
  View v;
  if (auto e = LoadView(api, o, c, &v)) return e;
  const json spec = inst.value("spec", json::object());
  AddText(r->root(), "instanceId", Ec2IdOf(inst));
  auto value = [&](const char* elem, const std::string& val) { AddText(r->root().append_child(elem), "value", val); };
  if (*attr == "instanceType") value("instanceType", Str(spec, "instanceType"));
  if (*attr == "kernel" || *attr == "ramdisk") {
    auto it = v.image_id.find(Str(spec, *attr == "kernel" ? "kernelImage" : "ramdiskImage"));
    auto node = r->root().append_child(*attr == "kernel" ? "kernel" : "ramdisk");
    if (it != v.image_id.end()) AddText(node, "value", it->second);
  }
  if (*attr == "userData") {
    auto node = r->root().append_child("userData");
    if (spec.contains("userData") && spec["userData"].is_string()) AddText(node, "value", Base64Encode(spec["userData"].get<std::string>()));
  }
  if (*attr == "disableApiTermination") value("disableApiTermination", "false");
  if (*attr == "disableApiStop") value("disableApiStop", "false");
  if (*attr == "instanceInitiatedShutdownBehavior") value("instanceInitiatedShutdownBehavior", "stop");
  if (*attr == "rootDeviceName") value("rootDeviceName", "/dev/vda");
  if (*attr == "sourceDestCheck") value("sourceDestCheck", "true");
  if (*attr == "ebsOptimized") value("ebsOptimized", "false");
  if (*attr == "blockDeviceMapping") {
    auto set = AddSet(r->root(), "blockDeviceMapping");
    if (spec.contains("volumes") && spec["volumes"].is_array()) {
      for (const auto& vol : spec["volumes"]) {
        auto b = AddItem(set);
        AddText(b, "deviceName", "/dev/" + Str(vol, "device"));
        auto ebs = b.append_child("ebs");
        AddText(ebs, "status", "attached");
        AddBool(ebs, "deleteOnTermination", false);
      }
    }
  }
  if (*attr == "groupSet") {
    auto set = AddSet(r->root(), "groupSet");
    if (spec.contains("securityGroups") && spec["securityGroups"].is_array()) {
      for (const auto& g : spec["securityGroups"]) {
        if (!g.is_string()) continue;
        auto id = v.group_id.find(g.get<std::string>());
        AddText(AddItem(set), "groupId", id != v.group_id.end() ? id->second : "");
      }
    }
  }
  return std::nullopt;
}

// ModifyInstanceAttribute: the instance type and user data of a stopped instance (EC2's rule; the next start uses
// them), and its security groups at any time (GroupId.N). One attribute per call.
std::optional<Error> ModifyInstanceAttribute(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json inst;
  if (auto e = OneInstance(api, c, &inst)) return e;
  std::string id = Ec2IdOf(inst);
  // The attribute: Attribute=NAME&Value=V, or NAME.Value=V.
  std::string attr = c.params.Get("Attribute").value_or("");
  std::optional<std::string> val = c.params.Get("Value");
  for (const char* a : {"InstanceType", "UserData", "Kernel", "Ramdisk", "DisableApiTermination", "SourceDestCheck",
                        "InstanceInitiatedShutdownBehavior", "EbsOptimized"}) {
    if (!c.params.Has(std::string(a) + ".Value")) continue;
    if (!attr.empty()) return Error{"InvalidParameterCombination", "Only one attribute can be modified at a time", 400};
    attr = std::string(1, static_cast<char>(std::tolower(a[0]))) + (a + 1);
    val = c.params.Get(std::string(a) + ".Value");
  }
  std::vector<std::string> groups;
  Error e;
  if (!c.params.List("GroupId", &groups, &e)) return e;
  if (!groups.empty()) {
    if (!attr.empty()) return Error{"InvalidParameterCombination", "Only one attribute can be modified at a time", 400};
    auto list = api->List("securitygroups", c.caller->ns, {});
    if (!list.ok()) return FromStatus(list.status());
    json names = json::array();
    for (const auto& gid : groups) {
      std::string found;
      for (const auto& g : (*list)["items"]) {
        if (Ec2IdOf(g) == gid) found = Name(g);
      }
      if (found.empty()) return Error{"InvalidGroup.NotFound", "The security group '" + gid + "' does not exist", 400};
      names.push_back(found);
    }
    auto p = api->Patch("instances", c.caller->ns, Name(inst), {{"spec", {{"securityGroups", names}}}});
    if (!p.ok()) return p.status().code() == Code::kInvalid ? InvalidParameterValue(p.status().message()) : FromStatus(p.status());
    AddBool(r->root(), "return", true);
    return std::nullopt;
  }
  if (attr.empty()) return MissingParameter("Attribute");
  if (!val) return MissingParameter("Value");
  json patch;
  if (attr == "instanceType" || attr == "userData") {
    if (InstanceState(inst).first != 80) {
      return Error{"IncorrectInstanceState", "The instance '" + id + "' is not in the 'stopped' state.", 400};
    }
    if (attr == "instanceType") {
      auto t = api->Get("instancetypes", "", *val);
      if (!t.ok()) return InvalidParameterValue("Invalid value '" + *val + "' for InstanceType.");
      patch = {{"spec", {{"instanceType", *val}}}};
    } else {
      std::string text;
      if (auto err = DecodeUserData(*val, "UserData", &text)) return err;
      patch = {{"spec", {{"userData", text.empty() ? json(nullptr) : json(text)}}}};
    }
  } else if (InstanceAttributes().count(attr)) {
    return InvalidParameterValue("Modifying " + attr + " is not supported here (instanceType, userData and "
                                 "groupSet are)");
  } else {
    return InvalidParameterValue("Value (" + attr + ") for parameter attribute is invalid. Unknown attribute.");
  }
  auto p = api->Patch("instances", c.caller->ns, Name(inst), patch);
  if (!p.ok()) return p.status().code() == Code::kInvalid ? InvalidParameterValue(p.status().message()) : FromStatus(p.status());
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
