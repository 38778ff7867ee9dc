#include "stratus/ec2/api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "stratus/core/sha256.h"
#include "stratus/ec2/query.h"
#include "stratus/ec2/xml.h"

namespace stratus::ec2 {
namespace {

std::string Str(const json& j, const char* a, const char* b = nullptr) {
  if (!j.is_object() || !j.contains(a)) return "";
  const json& x = j[a];
  if (b == nullptr) return x.is_string() ? x.get<std::string>() : "";
  if (!x.is_object() || !x.contains(b) || !x[b].is_string()) return "";
  return x[b].get<std::string>();
}

std::string Uid(const json& obj) { return Str(obj, "metadata", "uid"); }
std::string Name(const json& obj) { return Str(obj, "metadata", "name"); }

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

struct Call {
  const AccessKey* caller;
  Params params;
  std::string host;
  std::string request_id;
};

using Handler = std::function<std::optional<Error>(Api*, ApiClient*, const ApiOptions&, const Call&, Response*)>;

std::optional<Error> FromStatus(const Status& s) {
  if (s.code() == Code::kForbidden) return Error{"UnauthorizedOperation", s.message(), 403};
  return Error{"InternalError", "the request could not be served: " + s.message(), 500};
}

// Reads the members of `name` (NAME.1, ...) and checks each against `pattern`; EC2 answers `malformed_code`.
std::optional<Error> IdList(const Params& p, const std::string& name, const std::regex& pattern,
                            const std::string& malformed_code, std::vector<std::string>* out) {
  Error e;
  if (!p.List(name, out, &e)) return e;
  for (const auto& id : *out) {
    if (!std::regex_match(id, pattern)) return Error{malformed_code, "Invalid id: \"" + id + "\"", 400};
  }
  return std::nullopt;
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

std::optional<Error> DescribeInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("i-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "InstanceId", kId, "InvalidInstanceID.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (f.name != "instance-state-name" && f.name != "instance-id") {
      return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
    }
  }
  auto list = api->List("instances", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "reservationSet");
  for (const auto& inst : (*list)["items"]) {
    std::string id = Ec2Id("i", Uid(inst));
    if (!wanted.empty() && !wanted.count(id)) continue;
    auto [code, state] = InstanceState(inst);
    bool match = true;
    for (const auto& f : filters) {
      const std::string& v = f.name == "instance-id" ? id : state;
      match = match && std::find(f.values.begin(), f.values.end(), v) != f.values.end();
    }
    seen.insert(id);
    if (!match) continue;
    auto res = AddItem(set);
    AddText(res, "reservationId", Ec2Id("r", Uid(inst)));
    AddText(res, "ownerId", c.caller->ns);
    AddSet(res, "groupSet");
    auto item = AddItem(AddSet(res, "instancesSet"));
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
    auto tags = AddSet(item, "tagSet");
    auto tag = AddItem(tags);
    AddText(tag, "key", "Name");
    AddText(tag, "value", Name(inst));
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist", 400};
  }
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
    AddText(item, "keyType", pub.rfind("ssh-ed25519", 0) == 0 ? "ed25519" : "rsa");
    Sha256 h;
    h.Update(pub.data(), pub.size());
    AddText(item, "keyFingerprint", h.Hex());
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

const std::map<std::string, Handler>& Handlers() {
  static const std::map<std::string, Handler> h = {
      {"DescribeRegions", DescribeRegions},
      {"DescribeAvailabilityZones", DescribeAvailabilityZones},
      {"DescribeInstances", DescribeInstances},
      {"DescribeKeyPairs", DescribeKeyPairs},
      {"DescribeImages", DescribeImages},
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
