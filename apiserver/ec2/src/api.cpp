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

// Zones are the nodes' stratus.io/zone labels; nodes without one are in the default zone.
std::optional<Error> DescribeAvailabilityZones(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> names;
  Error e;
  if (!c.params.List("ZoneName", &names, &e)) return e;
  auto nodes = api->List("nodes", "", {});
  if (!nodes.ok()) return FromStatus(nodes.status());
  std::set<std::string> zones;
  for (const auto& n : (*nodes)["items"]) zones.insert(ZoneOfNode(n, o));
  if (zones.empty()) zones.insert(DefaultZone(o));
  for (const auto& n : names) {
    if (!zones.count(n)) return InvalidParameterValue("The zone '" + n + "' does not exist.");
  }
  std::set<std::string> wanted(names.begin(), names.end());
  auto set = AddSet(r->root(), "availabilityZoneInfo");
  for (const auto& z : zones) {
    if (!wanted.empty() && !wanted.count(z)) continue;
    auto item = AddItem(set);
    AddText(item, "zoneName", z);
    AddText(item, "zoneState", "available");
    AddText(item, "regionName", o.region);
    AddText(item, "zoneType", "availability-zone");
    AddSet(item, "messageSet");
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
    auto parsed = ParseSshPublicKey(pub);
    AddText(item, "keyType", parsed.ok() ? parsed->type : pub.rfind("ssh-ed25519", 0) == 0 ? "ed25519" : "rsa");
    AddText(item, "keyFingerprint", parsed.ok() ? SshFingerprint(*parsed) : "");
    if (c.params.Get("IncludePublicKey").value_or("") == "true") AddText(item, "publicKey", pub);
    AddText(item, "createTime", Str(kp, "metadata", "creationTimestamp"));
    AddTagSet(item, kp);
  }
  for (const auto& n : wanted) {
    if (!seen.count(n)) return Error{"InvalidKeyPair.NotFound", "The key pair '" + n + "' does not exist", 400};
  }
  return std::nullopt;
}

// Actions that check the caller's permission on each resource they touch, and answer DryRun themselves.
const std::set<std::string> kSelfAuthorized = {"CreateTags", "DeleteTags"};

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
      {"CreateSnapshot", CreateSnapshot},
      {"DescribeSnapshots", DescribeSnapshots},
      {"DeleteSnapshot", DeleteSnapshot},
      {"DescribeVpcs", DescribeVpcs},
      {"DescribeSubnets", DescribeSubnets},
      {"CreateSecurityGroup", CreateSecurityGroup},
      {"DescribeSecurityGroups", DescribeSecurityGroups},
      {"DeleteSecurityGroup", DeleteSecurityGroup},
      {"AuthorizeSecurityGroupIngress", AuthorizeSecurityGroupIngress},
      {"AuthorizeSecurityGroupEgress", AuthorizeSecurityGroupEgress},
      {"RevokeSecurityGroupIngress", RevokeSecurityGroupIngress},
      {"RevokeSecurityGroupEgress", RevokeSecurityGroupEgress},
      {"CreateTags", CreateTags},
      {"DeleteTags", DeleteTags},
      {"DescribeTags", DescribeTags},
      {"GetConsoleOutput", GetConsoleOutput},
      {"DescribeInstanceAttribute", DescribeInstanceAttribute},
      {"ModifyInstanceAttribute", ModifyInstanceAttribute},
      {"RegisterImage", RegisterImage},
      {"DeregisterImage", DeregisterImage},
      {"DescribeImageAttribute", DescribeImageAttribute},
      {"CreateImage", CreateImage},
      {"CreateSubnet", CreateSubnet},
      {"DeleteSubnet", DeleteSubnet},
      {"ModifyVolume", ModifyVolume},
      {"DescribeVolumeStatus", DescribeVolumeStatus},
      {"DescribeVolumesModifications", DescribeVolumesModifications},
      {"DescribeSecurityGroupRules", DescribeSecurityGroupRules},
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
}  // namespace actions

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
        {"CreateSnapshot", {"create", "volumesnapshots"}}, {"DescribeSnapshots", {"list", "volumesnapshots"}},
        {"DeleteSnapshot", {"delete", "volumesnapshots"}},
        {"DescribeVpcs", {"get", "namespaces"}},       {"DescribeSubnets", {"list", "networks"}},
        {"CreateSecurityGroup", {"create", "securitygroups"}}, {"DescribeSecurityGroups", {"list", "securitygroups"}},
        {"DeleteSecurityGroup", {"delete", "securitygroups"}},
        {"AuthorizeSecurityGroupIngress", {"patch", "securitygroups"}},
        {"AuthorizeSecurityGroupEgress", {"patch", "securitygroups"}},
        {"RevokeSecurityGroupIngress", {"patch", "securitygroups"}},
        {"RevokeSecurityGroupEgress", {"patch", "securitygroups"}},
        {"CreateTags", {nullptr, nullptr}},  // per resource, in the handler
        {"DeleteTags", {nullptr, nullptr}},
        {"DescribeTags", {"get", "namespaces"}},  // and only the kinds the caller may list
        {"GetConsoleOutput", {"get", "instances"}},
        {"DescribeInstanceAttribute", {"get", "instances"}},
        {"ModifyInstanceAttribute", {"patch", "instances"}},
        {"RegisterImage", {"create", "images"}},
        {"DeregisterImage", {"delete", "images"}},
        {"DescribeImageAttribute", {"get", "images"}},
        {"CreateImage", {"create", "images"}},
        {"CreateSubnet", {"create", "networks"}},
        {"DeleteSubnet", {"delete", "networks"}},
        {"ModifyVolume", {"patch", "volumes"}},
        {"DescribeVolumeStatus", {"list", "volumes"}},
        {"DescribeVolumesModifications", {"list", "volumes"}},
        {"DescribeSecurityGroupRules", {"list", "securitygroups"}},
        // Addresses (addresses.cpp)
        {"AllocateAddress", {"create", "addresses"}},  {"AssociateAddress", {"patch", "addresses"}},
        {"DisassociateAddress", {"patch", "addresses"}}, {"ReleaseAddress", {"delete", "addresses"}},
        {"DescribeAddresses", {"list", "addresses"}},
    };
    auto need = kNeeds.find(*action);
    if (need == kNeeds.end()) {  // every action is in the table: one left out is refused, never let through
      spdlog::error("ec2 action without an authorization rule: action={}", *action);
      return fail({"UnauthorizedOperation", "You are not authorized to perform this operation.", 403});
    }
    if (need->second.first != nullptr) {
      Status s = opts_.authorize(*key, need->second.first, need->second.second);
      if (s.code() == Code::kUnauthorized) {
        return fail({"AuthFailure", "AWS was not able to validate the provided access credentials", 401});
      }
      if (!s.ok()) {
        spdlog::info("ec2 request denied: action={} user={} namespace={}", *action, key->user, key->ns);
        return fail({"UnauthorizedOperation", "You are not authorized to perform this operation. " + s.message(), 403});
      }
    } else {
      // The handler authorizes each resource; first the user must still be there and enabled.
      Status s = opts_.authorize(*key, "get", "namespaces");
      if (s.code() == Code::kUnauthorized) {
        return fail({"AuthFailure", "AWS was not able to validate the provided access credentials", 401});
      }
    }
  }
  bool dry_run = false;
  if (!params.Bool("DryRun", false, &dry_run, &e)) return fail(e);
  bool self_authorized = kSelfAuthorized.count(*action) > 0;
  if (dry_run && !self_authorized) {
    return fail({"DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412});
  }
  Response resp(*action, request_id);
  Call call{&*key, params, HeaderValue(req, "host"), request_id, dry_run};
  if (auto err = it->second(this, client_, opts_, call, &resp)) return fail(*err);
  spdlog::debug("ec2 request: action={} user={} namespace={}", *action, key->user, key->ns);
  return {200, resp.Str()};
}

}  // namespace stratus::ec2
