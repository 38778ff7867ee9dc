#include "stratus/ec2/api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "stratus/core/base64.h"
#include "stratus/core/object.h"
#include "stratus/core/sha256.h"
#include "stratus/core/sshkey.h"
#include "stratus/ec2/query.h"
#include "stratus/ec2/xml.h"
#include "internal.h"

namespace stratus::ec2 {
namespace {

using namespace actions;

// EC2's instance states (code, name) for an Instance's phase.
std::pair<int, std::string> InstanceState(const json& inst) {
  std::string phase = Str(inst, "status", "phase");
  if (inst.contains("metadata") && inst["metadata"].contains("deletionTimestamp")) return {32, "shutting-down"};
  if (phase == "Running") return {16, "running"};
  if (phase == "Stopping") return {64, "stopping"};
  if (phase == "Stopped" || phase == "Failed") return {80, "stopped"};
  if (phase == "Terminating") return {32, "shutting-down"};
  return {0, "pending"};
}

std::optional<Error> DescribeRegions(Api*, ApiClient*, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> names;
  Error e;
  if (!c.params.List("RegionName", &names, &e)) return e;
  for (const auto& n : names) {
    if (n != o.region) return Error{"InvalidParameterValue", "Invalid region: " + n + " (this cloud serves " + o.region + ")", 400};
  }
  auto item = AddItem(AddSet(r->root(), "regionInfo"));
  AddText(item, "regionName", o.region);
  AddText(item, "regionEndpoint", c.host);
  AddText(item, "optInStatus", "opt-in-not-required");
  return std::nullopt;
}

std::optional<Error> DescribeAvailabilityZones(Api*, ApiClient* api, const ApiOptions& o, const Call&, Response* r) {
  auto nodes = api->List("nodes", "", {});
  if (!nodes.ok()) return FromStatus(nodes.status());
  std::set<std::string> zones;
  for (const auto& n : (*nodes)["items"]) {
    if (n.contains("metadata") && n["metadata"].contains("labels") && n["metadata"]["labels"].is_object()) {
      const json& l = n["metadata"]["labels"];
      if (l.contains("stratus.io/zone") && l["stratus.io/zone"].is_string() && !l["stratus.io/zone"].get<std::string>().empty()) {
        zones.insert(l["stratus.io/zone"].get<std::string>());
      }
    }
  }
  auto set = AddSet(r->root(), "availabilityZoneInfo");
  for (const auto& z : zones) {
    auto item = AddItem(set);
    AddText(item, "zoneName", z);
    AddText(item, "zoneState", "available");
    AddText(item, "regionName", o.region);
    AddText(item, "zoneType", "availability-zone");
    AddSet(item, "messageSet");
  }
  return std::nullopt;
}

// One instance as EC2 shows it (an `item` of an instancesSet).
void InstanceItem(pugi::xml_node item, const json& inst) {
  std::string id = Ec2Id("i", Uid(inst));
  auto [code, state] = InstanceState(inst);
  AddText(item, "instanceId", id);
  const json spec = inst.value("spec", json::object());
  AddText(item, "imageId", spec.contains("image") && spec["image"].is_string() ? spec["image"].get<std::string>() : "");
  auto st = item.append_child("instanceState");
  AddText(st, "code", std::to_string(code));
  AddText(st, "name", state);
  AddText(item, "privateDnsName", Name(inst));
  AddText(item, "dnsName", "");
  AddText(item, "keyName", Str(spec, "keyName"));
  AddText(item, "amiLaunchIndex", "0");
  AddText(item, "instanceType", Str(spec, "instanceType"));
  AddText(item, "launchTime", Str(inst, "metadata", "creationTimestamp"));
  auto placement = item.append_child("placement");
  AddText(placement, "availabilityZone", "");
  AddText(placement, "tenancy", "default");
  std::string ip;
  if (inst.contains("status") && inst["status"].contains("addresses") && inst["status"]["addresses"].is_array() &&
      !inst["status"]["addresses"].empty()) {
    ip = Str(inst["status"]["addresses"][0], "ip");
  }
  if (!ip.empty()) AddText(item, "privateIpAddress", ip);
  auto tag = AddItem(AddSet(item, "tagSet"));
  AddText(tag, "key", "Name");
  AddText(tag, "value", Name(inst));
}

// DescribeInstances: InstanceId.N, filters (values ORed within a filter, filters ANDed, wildcards), and pages of
// MaxResults (5-1000) in instance-id order, NextToken being the last id of the previous page.
std::optional<Error> DescribeInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("i-[0-9a-f]{8,17}");
  static const std::set<std::string> kFilters = {"instance-id",  "instance-state-name", "instance-state-code",
                                                 "instance-type", "image-id",          "key-name",
                                                 "private-ip-address", "private-dns-name", "tag:Name",
                                                 "tag-key",      "tag-value"};
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", kId, "InvalidInstanceID.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (!kFilters.count(f.name)) return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
  }
  long long max_results = 0;
  if (c.params.Has("MaxResults")) {
    if (!ids.empty()) {
      return Error{"InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults", 400};
    }
    if (!c.params.Int("MaxResults", 1000, 5, 1000, &max_results, &fe)) return fe;
  }
  std::string after = c.params.Get("NextToken").value_or("");
  if (!after.empty() && !std::regex_match(after, kId)) return InvalidParameterValue("NextToken '" + after + "' is not valid");
  auto list = api->List("instances", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::map<std::string, json> by_id;  // instance-id order: stable pages
  for (const auto& inst : (*list)["items"]) by_id[Ec2Id("i", Uid(inst))] = inst;
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
    std::string ip;
    if (inst.contains("status") && inst["status"].contains("addresses") && inst["status"]["addresses"].is_array() &&
        !inst["status"]["addresses"].empty()) {
      ip = Str(inst["status"]["addresses"][0], "ip");
    }
    bool match = true;
    for (const auto& f : filters) {
      std::string v;
      if (f.name == "instance-id") v = id;
      if (f.name == "instance-state-name") v = state;
      if (f.name == "instance-state-code") v = std::to_string(code);
      if (f.name == "instance-type") v = Str(spec, "instanceType");
      if (f.name == "image-id") v = Str(spec, "image");
      if (f.name == "key-name") v = Str(spec, "keyName");
      if (f.name == "private-ip-address") v = ip;
      if (f.name == "private-dns-name" || f.name == "tag:Name" || f.name == "tag-value") v = Name(inst);
      if (f.name == "tag-key") v = "Name";  // the one tag instances carry: their name
      match = match && AnyMatch(f.values, v);
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
    InstanceItem(AddItem(AddSet(res, "instancesSet")), inst);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist", 400};
  }
  if (more) AddText(r->root(), "nextToken", last);
  return std::nullopt;
}

std::optional<Error> DescribeKeyPairs(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::string> names;
  Error e;
  if (!c.params.List("KeyName", &names, &e)) return e;
  auto list = api->List("keypairs", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(names.begin(), names.end()), seen;
  auto set = AddSet(r->root(), "keySet");
  for (const auto& kp : (*list)["items"]) {
    std::string name = Name(kp);
    if (!wanted.empty() && !wanted.count(name)) continue;
    seen.insert(name);
    auto item = AddItem(set);
    AddText(item, "keyPairId", Ec2Id("key", Uid(kp)));
    AddText(item, "keyName", name);
    std::string pub = Str(kp, "spec", "publicKey");
    auto parsed = ParseSshPublicKey(pub);
    AddText(item, "keyType", parsed.ok() ? parsed->type : pub.rfind("ssh-ed25519", 0) == 0 ? "ed25519" : "rsa");
    AddText(item, "keyFingerprint", parsed.ok() ? SshFingerprint(*parsed) : "");
    if (c.params.Get("IncludePublicKey").value_or("") == "true") AddText(item, "publicKey", pub);
    AddText(item, "createTime", Str(kp, "metadata", "creationTimestamp"));
  }
  for (const auto& n : wanted) {
    if (!seen.count(n)) return Error{"InvalidKeyPair.NotFound", "The key pair '" + n + "' does not exist", 400};
  }
  return std::nullopt;
}

std::optional<Error> DescribeImages(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("(ami|aki|ari)-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "ImageId", kId, "InvalidAMIID.Malformed", &ids)) return e;
  auto list = api->List("images", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "imagesSet");
  for (const auto& img : (*list)["items"]) {
    std::string type = Str(img, "spec", "type");
    std::string prefix = type == "kernel" ? "aki" : type == "ramdisk" ? "ari" : "ami";
    std::string id = Ec2Id(prefix, Uid(img));
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    std::string phase = Str(img, "status", "phase");
    auto item = AddItem(set);
    AddText(item, "imageId", id);
    AddText(item, "imageLocation", c.caller->ns + "/" + Name(img));
    AddText(item, "imageState", phase == "Ready" ? "available" : phase == "Failed" ? "failed" : "pending");
    AddText(item, "imageOwnerId", c.caller->ns);
    AddBool(item, "isPublic", false);
    AddText(item, "architecture", "x86_64");
    AddText(item, "imageType", type == "kernel" ? "kernel" : type == "ramdisk" ? "ramdisk" : "machine");
    AddText(item, "name", Name(img));
    AddText(item, "rootDeviceType", "ebs");
    AddText(item, "creationDate", Str(img, "metadata", "creationTimestamp"));
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidAMIID.NotFound", "The image id '[" + id + "]' does not exist", 400};
  }
  return std::nullopt;
}

// Each instance's state and status checks (what `aws ec2 wait instance-status-ok` polls): running instances whose
// Ready condition is True are "ok", other running ones "initializing"; others are listed only with
// IncludeAllInstances=true, as EC2 does.
std::optional<Error> DescribeInstanceStatus(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("i-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", kId, "InvalidInstanceID.Malformed", &ids)) return e;
  bool all = false;
  Error e;
  if (!c.params.Bool("IncludeAllInstances", false, &all, &e)) return e;
  auto list = api->List("instances", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "instanceStatusSet");
  for (const auto& inst : (*list)["items"]) {
    std::string id = Ec2Id("i", Uid(inst));
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
    AddText(item, "availabilityZone", "default");
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

// The caller's instances named by InstanceId.N (at least one), in the order given; EC2's errors otherwise.
std::optional<Error> NamedInstances(ApiClient* api, const Call& c, std::vector<std::pair<std::string, json>>* out) {
  static const std::regex kId("i-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", kId, "InvalidInstanceID.Malformed", &ids)) return e;
  if (ids.empty()) return MissingParameter("InstanceId");
  auto list = api->List("instances", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::map<std::string, json> by_id;
  for (const auto& inst : (*list)["items"]) by_id[Ec2Id("i", Uid(inst))] = inst;
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
void Reservation(Response* r, const Call& c, const std::vector<json>& made) {
  AddText(r->root(), "reservationId", Ec2Id("r", Uid(made.front())));
  AddText(r->root(), "ownerId", c.caller->ns);
  AddSet(r->root(), "groupSet");
  auto set = AddSet(r->root(), "instancesSet");
  for (const auto& m : made) InstanceItem(AddItem(set), m);
}

constexpr const char* kClientTokenAnnotation = "ec2.stratus.io/client-token";

std::optional<Error> RunInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
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
    if (!before.empty()) {
      Reservation(r, c, before);
      return std::nullopt;
    }
  }
  static const std::regex kAmi("ami-[0-9a-f]{8,17}");
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
  auto image_id = c.params.Get("ImageId");
  if (!image_id || image_id->empty()) return MissingParameter("ImageId");
  if (!std::regex_match(*image_id, kAmi)) return Error{"InvalidAMIID.Malformed", "Invalid id: \"" + *image_id + "\"", 400};
  long long min_count = 0, max_count = 0;
  Error e;
  if (!c.params.Has("MinCount")) return MissingParameter("MinCount");
  if (!c.params.Has("MaxCount")) return MissingParameter("MaxCount");
  if (!c.params.Int("MinCount", 1, 1, 20, &min_count, &e) || !c.params.Int("MaxCount", 1, 1, 20, &max_count, &e)) return e;
  if (min_count > max_count) {
    return Error{"InvalidParameterCombination", "MinCount (" + std::to_string(min_count) +
                                                    ") must not be more than MaxCount (" + std::to_string(max_count) + ")", 400};
  }
  // The image, by its EC2 id, among the caller's.
  auto images = api->List("images", c.caller->ns, {});
  if (!images.ok()) return FromStatus(images.status());
  std::string image;
  for (const auto& img : (*images)["items"]) {
    if (Ec2Id("ami", Uid(img)) == *image_id && Str(img, "spec", "type") != "kernel" && Str(img, "spec", "type") != "ramdisk") {
      image = Name(img);
    }
  }
  if (image.empty()) return Error{"InvalidAMIID.NotFound", "The image id '[" + *image_id + "]' does not exist", 400};

  json spec = {{"image", image}, {"instanceType", c.params.Get("InstanceType").value_or("m1.small")}};
  if (auto key = c.params.Get("KeyName")) {
    auto kp = api->Get("keypairs", c.caller->ns, *key);
    if (!kp.ok()) return Error{"InvalidKeyPair.NotFound", "The key pair '" + *key + "' does not exist", 400};
    spec["keyName"] = *key;
  }
  if (auto ud = c.params.Get("UserData")) {
    std::optional<std::string> decoded;
    if (ud->size() > 22000 || !(decoded = Base64Decode(*ud))) {
      return InvalidParameterValue("UserData must be base64 of at most 16 KiB");
    }
    std::string text = std::move(*decoded);
    if (text.size() > 16384) return InvalidParameterValue("UserData is over 16 KiB once decoded");
    try {
      (void)json(text).dump();  // user data is stored as text: it must be UTF-8
    } catch (const std::exception&) {
      return InvalidParameterValue("UserData must decode to UTF-8 text");
    }
    spec["userData"] = text;
  }
  // Security groups by name (SecurityGroup.N) or id (SecurityGroupId.N).
  std::vector<std::string> group_names, group_ids;
  if (!c.params.List("SecurityGroup", &group_names, &e) || !c.params.List("SecurityGroupId", &group_ids, &e)) return e;
  if (!group_ids.empty()) {
    auto groups = api->List("securitygroups", c.caller->ns, {});
    if (!groups.ok()) return FromStatus(groups.status());
    for (const auto& gid : group_ids) {
      std::string found;
      for (const auto& g : (*groups)["items"]) {
        if (Ec2Id("sg", Uid(g)) == gid) found = Name(g);
      }
      if (found.empty()) return Error{"InvalidGroup.NotFound", "The security group '" + gid + "' does not exist", 400};
      group_names.push_back(found);
    }
  }
  if (!group_names.empty()) spec["securityGroups"] = group_names;

  std::string name = TagValue(c.params, "instance", "Name");
  if (!name.empty() && (max_count > 1 || !std::regex_match(name, kLabel))) {
    return InvalidParameterValue("the Name tag (" + name + ") becomes the instance's name: a DNS label (lowercase "
                                 "letters, digits and '-', at most 63) and only with MaxCount 1");
  }
  std::vector<json> made;
  for (long long i = 0; i < max_count; ++i) {
    json md = name.empty() ? json{{"generateName", "ec2-"}} : json{{"name", name}};
    md["labels"] = {{"ec2.stratus.io/launched-by", "ec2"}};
    if (!client_token.empty()) md["annotations"] = {{kClientTokenAnnotation, client_token}};
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
  Reservation(r, c, made);
  return std::nullopt;
}

std::optional<Error> TerminateInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::pair<std::string, json>> insts;
  if (auto e = NamedInstances(api, c, &insts)) return e;
  auto set = AddSet(r->root(), "instancesSet");
  for (const auto& [id, inst] : insts) {
    auto before = InstanceState(inst);
    auto d = api->Delete("instances", c.caller->ns, Name(inst));
    if (!d.ok() && d.status().code() != Code::kNotFound) return FromStatus(d.status());
    StateChange(set, id, before, {32, "shutting-down"});
  }
  return std::nullopt;
}

// Start and Stop: the desired power state, as `stratusctl start|stop` writes it.
std::optional<Error> SetPower(ApiClient* api, const Call& c, Response* r, const std::string& power,
                              std::pair<int, std::string> next) {
  std::vector<std::pair<std::string, json>> insts;
  if (auto e = NamedInstances(api, c, &insts)) return e;
  for (const auto& [id, inst] : insts) {
    if (inst["metadata"].contains("deletionTimestamp")) {
      return Error{"IncorrectInstanceState", "The instance '" + id + "' is shutting down", 400};
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

std::optional<Error> StopInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return SetPower(api, c, r, "Stopped", {64, "stopping"});
}

std::optional<Error> StartInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return SetPower(api, c, r, "Running", {0, "pending"});
}

std::optional<Error> RebootInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::pair<std::string, json>> insts;
  if (auto e = NamedInstances(api, c, &insts)) return e;
  for (const auto& [id, inst] : insts) {
    auto p = api->Patch("instances", c.caller->ns, Name(inst), {{"spec", {{"restartRequestedAt", NowRfc3339()}}}});
    if (!p.ok()) return FromStatus(p.status());
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

const std::map<std::string, Handler>& Handlers() {
  static const std::map<std::string, Handler> h = {
      {"DescribeRegions", DescribeRegions},
      {"DescribeAvailabilityZones", DescribeAvailabilityZones},
      {"DescribeInstances", DescribeInstances},
      {"DescribeKeyPairs", DescribeKeyPairs},
      {"DescribeImages", DescribeImages},
      {"RunInstances", RunInstances},
      {"TerminateInstances", TerminateInstances},
      {"StartInstances", StartInstances},
      {"StopInstances", StopInstances},
      {"RebootInstances", RebootInstances},
      {"DescribeInstanceStatus", DescribeInstanceStatus},
      {"CreateKeyPair", CreateKeyPair},
      {"ImportKeyPair", ImportKeyPair},
      {"DeleteKeyPair", DeleteKeyPair},
      {"DescribeInstanceTypes", DescribeInstanceTypes},
      {"CreateVolume", CreateVolume},
      {"DescribeVolumes", DescribeVolumes},
      {"DeleteVolume", DeleteVolume},
      {"AttachVolume", AttachVolume},
      {"DetachVolume", DetachVolume},
      {"DescribeVpcs", DescribeVpcs},
      {"DescribeSubnets", DescribeSubnets},
      {"CreateSecurityGroup", CreateSecurityGroup},
      {"DescribeSecurityGroups", DescribeSecurityGroups},
      {"DeleteSecurityGroup", DeleteSecurityGroup},
      {"AuthorizeSecurityGroupIngress", AuthorizeSecurityGroupIngress},
      {"AuthorizeSecurityGroupEgress", AuthorizeSecurityGroupEgress},
      {"RevokeSecurityGroupIngress", RevokeSecurityGroupIngress},
      {"RevokeSecurityGroupEgress", RevokeSecurityGroupEgress},
      // Addresses (addresses.cpp)
      {"AllocateAddress", AllocateAddress},
      {"AssociateAddress", AssociateAddress},
      {"DisassociateAddress", DisassociateAddress},
      {"ReleaseAddress", ReleaseAddress},
      {"DescribeAddresses", DescribeAddresses},
  };
  return h;
}

std::string HeaderValue(const SignedRequest& req, const std::string& lower) {
  for (const auto& [k, v] : req.headers) {
    std::string l = k;
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (l == lower) return v;
  }
  return "";
}

}  // namespace

namespace actions {

bool WildcardMatch(const std::string& p, const std::string& v) {
  // Iterative glob with backtracking to the last `*`.
  size_t pi = 0, vi = 0, star = std::string::npos, mark = 0;
  while (vi < v.size()) {
    if (pi < p.size() && p[pi] == '\\' && pi + 1 < p.size() && p[pi + 1] == v[vi]) {
      pi += 2;
      ++vi;
    } else if (pi < p.size() && p[pi] != '*' && p[pi] != '\\' && (p[pi] == '?' || p[pi] == v[vi])) {
      ++pi;
      ++vi;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = vi;
    } else if (star != std::string::npos) {
      pi = star + 1;
      vi = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool AnyMatch(const std::vector<std::string>& values, const std::string& value) {
  for (const auto& p : values) {
    if (WildcardMatch(p, value)) return true;
  }
  return false;
}
// The value of tag `key` for `resource` in TagSpecification.N (ResourceType, Tag.M.Key, Tag.M.Value).
std::string TagValue(const Params& p, const std::string& resource, const std::string& key) {
  for (int n = 1; n <= 50; ++n) {
    std::string base = "TagSpecification." + std::to_string(n);
    auto type = p.Get(base + ".ResourceType");
    if (!type) continue;
    if (*type != resource) continue;
    for (int m = 1; m <= 50; ++m) {
      auto k = p.Get(base + ".Tag." + std::to_string(m) + ".Key");
      if (k && *k == key) return p.Get(base + ".Tag." + std::to_string(m) + ".Value").value_or("");
    }
  }
  return "";
}

}  // namespace actions

std::string Ec2Id(const std::string& prefix, const std::string& uid) {
  Sha256 h;
  h.Update(uid.data(), uid.size());
  return prefix + "-" + h.Hex().substr(0, 17);
}

Api::Api(ApiClient* client, AccessKeys* keys, ApiOptions opts) : client_(client), keys_(keys), opts_(std::move(opts)) {}

Reply Api::Handle(const SignedRequest& req, std::chrono::system_clock::time_point now) {
  std::string request_id = NewRequestId();
  auto fail = [&](const Error& e) { return Reply{e.http, ErrorXml(e, request_id)}; };
  if (req.method != "GET" && req.method != "POST") {
    return fail({"InvalidAction", "the EC2 API takes GET and POST requests", 400});
  }
  // Parameters: the query string, and for a POST the form-encoded body.
  std::vector<std::pair<std::string, std::string>> pairs, body_pairs;
  Error e;
  if (!DecodeForm(req.raw_query, &pairs, &e)) return fail(e);
  if (req.method == "POST" && !req.body.empty()) {
    std::string ct = HeaderValue(req, "content-type");
    if (ct.rfind("application/x-www-form-urlencoded", 0) != 0) {
      return fail(InvalidParameterValue("a POST body must be application/x-www-form-urlencoded"));
    }
    if (!DecodeForm(req.body, &body_pairs, &e)) return fail(e);
    pairs.insert(pairs.end(), body_pairs.begin(), body_pairs.end());
  }
  Params params(pairs);

  // Who is calling: the access key's secret verifies the signature.
  std::optional<AccessKey> key;
  VerifyOptions vo;
  vo.region = opts_.region;
  vo.now = now;
  Credential cred;
  bool verified = Verify(
      req,
      [&](const std::string& id) -> std::optional<std::string> {
        key = keys_->Find(id);
        if (!key) return std::nullopt;
        return key->secret;
      },
      vo, &cred, &e);
  if (!verified) {
    spdlog::info("ec2 request refused: code={} access_key={}", e.code, cred.access_key_id);
    return fail(e);
  }

  auto action = params.Get("Action");
  if (!action || action->empty()) return fail(MissingParameter("Action"));
  auto it = Handlers().find(*action);
  if (it == Handlers().end()) {
    return fail({"InvalidAction", "The action " + *action + " is not valid for this web service.", 400});
  }
  // The same authorization as the main API, before DryRun (EC2 answers a dry run by the caller's permissions).
  if (opts_.authorize) {
    static const std::map<std::string, std::pair<const char*, const char*>> kNeeds = {
        {"DescribeInstances", {"list", "instances"}},  {"DescribeKeyPairs", {"list", "keypairs"}},
        {"DescribeImages", {"list", "images"}},        {"RunInstances", {"create", "instances"}},
        {"TerminateInstances", {"delete", "instances"}}, {"StartInstances", {"patch", "instances"}},
        {"StopInstances", {"patch", "instances"}},     {"RebootInstances", {"patch", "instances"}},
        {"DescribeRegions", {"get", "namespaces"}},    {"DescribeAvailabilityZones", {"get", "namespaces"}},
        {"DescribeInstanceStatus", {"list", "instances"}},
        {"CreateKeyPair", {"create", "keypairs"}},     {"ImportKeyPair", {"create", "keypairs"}},
        {"DeleteKeyPair", {"delete", "keypairs"}},     {"DescribeInstanceTypes", {"list", "instancetypes"}},
        {"CreateVolume", {"create", "volumes"}},       {"DescribeVolumes", {"list", "volumes"}},
        {"DeleteVolume", {"delete", "volumes"}},       {"AttachVolume", {"patch", "instances"}},
        {"DetachVolume", {"patch", "instances"}},
        {"DescribeVpcs", {"get", "namespaces"}},       {"DescribeSubnets", {"list", "networks"}},
        {"CreateSecurityGroup", {"create", "securitygroups"}}, {"DescribeSecurityGroups", {"list", "securitygroups"}},
        {"DeleteSecurityGroup", {"delete", "securitygroups"}},
        {"AuthorizeSecurityGroupIngress", {"patch", "securitygroups"}},
        {"AuthorizeSecurityGroupEgress", {"patch", "securitygroups"}},
        {"RevokeSecurityGroupIngress", {"patch", "securitygroups"}},
        {"RevokeSecurityGroupEgress", {"patch", "securitygroups"}},
        // Addresses (addresses.cpp)
        {"AllocateAddress", {"create", "addresses"}},  {"AssociateAddress", {"patch", "addresses"}},
        {"DisassociateAddress", {"patch", "addresses"}}, {"ReleaseAddress", {"delete", "addresses"}},
        {"DescribeAddresses", {"list", "addresses"}},
    };
    auto need = kNeeds.find(*action);
    if (need != kNeeds.end()) {
      Status s = opts_.authorize(*key, need->second.first, need->second.second);
      if (s.code() == Code::kUnauthorized) {
        return fail({"AuthFailure", "AWS was not able to validate the provided access credentials", 401});
      }
      if (!s.ok()) {
        spdlog::info("ec2 request denied: action={} user={} namespace={}", *action, key->user, key->ns);
        return fail({"UnauthorizedOperation", "You are not authorized to perform this operation. " + s.message(), 403});
      }
    }
  }
  bool dry_run = false;
  if (!params.Bool("DryRun", false, &dry_run, &e)) return fail(e);
  if (dry_run) {
    return fail({"DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412});
  }
  Response resp(*action, request_id);
  Call call{&*key, params, HeaderValue(req, "host"), request_id};
  if (auto err = it->second(this, client_, opts_, call, &resp)) return fail(*err);
  spdlog::debug("ec2 request: action={} user={} namespace={}", *action, key->user, key->ns);
  return {200, resp.Str()};
}

}  // namespace stratus::ec2
