// Networks as EC2 sees them: each namespace is one default VPC, each Network one of its subnets (DescribeVpcs,
// DescribeSubnets). Read-only translation; the VPC's id derives from the namespace, a subnet's from the Network.
#include <algorithm>
#include <cstdlib>
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/object.h"

namespace stratus::ec2::actions {
namespace {

std::string VpcId(const std::string& ns) { return Ec2Id("vpc", "namespace/" + ns); }

std::string SubnetState(const json& net) { return Str(net, "status", "phase") == "Ready" ? "available" : "pending"; }

// Addresses left for instances: the range minus network, gateway, broadcast and what IPAM has allocated.
long long FreeAddresses(const json& net) {
  std::string cidr = Str(net, "spec", "cidr");
  auto slash = cidr.find('/');
  if (slash == std::string::npos) return 0;
  int bits = std::atoi(cidr.c_str() + slash + 1);
  if (bits < 0 || bits > 30) return 0;
  long long size = 1LL << (32 - bits);
  long long used = 0;
  if (net.contains("status") && net["status"].contains("allocated") && net["status"]["allocated"].is_number()) {
    used = net["status"]["allocated"].get<long long>();
  }
  return std::max(0LL, size - 3 - used);
}

}  // namespace

std::optional<Error> DescribeVpcs(Api*, ApiClient*, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("vpc-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "VpcId", kId, "InvalidVpcID.Malformed", &ids)) return e;
  std::string vpc = VpcId(c.caller->ns);
  for (const auto& id : ids) {
    if (id != vpc) return Error{"InvalidVpcID.NotFound", "The vpc ID '" + id + "' does not exist", 400};
  }
  auto item = AddItem(AddSet(r->root(), "vpcSet"));
  AddText(item, "vpcId", vpc);
  AddText(item, "ownerId", c.caller->ns);
  AddText(item, "state", "available");
  AddText(item, "cidrBlock", "0.0.0.0/0");  // its subnets are the namespace's Networks, each with its own range
  AddText(item, "dhcpOptionsId", "default");
  AddText(item, "instanceTenancy", "default");
  AddBool(item, "isDefault", true);
  auto tag = AddItem(AddSet(item, "tagSet"));
  AddText(tag, "key", "Name");
  AddText(tag, "value", c.caller->ns);
  return std::nullopt;
}

std::optional<Error> DescribeSubnets(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  static const std::regex kId("subnet-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "SubnetId", kId, "InvalidSubnetID.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (f.name != "vpc-id" && f.name != "subnet-id" && f.name != "cidr-block" && f.name != "state" &&
        f.name != "availability-zone" && f.name != "default-for-az" && !IsTagFilter(f.name)) {
      return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
    }
  }
  auto list = api->List("networks", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::string vpc = VpcId(c.caller->ns);
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "subnetSet");
  for (const auto& net : (*list)["items"]) {
    std::string id = Ec2Id("subnet", Uid(net));
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, net);
        continue;
      }
      std::string v = f.name == "vpc-id"       ? vpc
                      : f.name == "subnet-id"  ? id
                      : f.name == "cidr-block" ? Str(net, "spec", "cidr")
                      : f.name == "state"      ? SubnetState(net)
                      : f.name == "availability-zone" ? DefaultZone(o)
                                               : (Name(net) == "default" ? "true" : "false");
      match = match && AnyMatch(f.values, v);
    }
    if (!match) continue;
    auto item = AddItem(set);
    AddText(item, "subnetId", id);
    AddText(item, "subnetArn", "arn:aws:ec2:" + c.caller->ns + ":subnet/" + id);
    AddText(item, "state", SubnetState(net));
    AddText(item, "ownerId", c.caller->ns);
    AddText(item, "vpcId", vpc);
    AddText(item, "cidrBlock", Str(net, "spec", "cidr"));
    AddText(item, "availableIpAddressCount", std::to_string(FreeAddresses(net)));
    AddText(item, "availabilityZone", DefaultZone(o));  // a Network spans the nodes that run its instances
    AddBool(item, "defaultForAz", Name(net) == "default");
    AddBool(item, "mapPublicIpOnLaunch", false);
    AddTagSet(item, net);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidSubnetID.NotFound", "The subnet ID '" + id + "' does not exist", 400};
  }
  return std::nullopt;
}

// CreateSubnet: a Network with CidrBlock (a /16 to /28, as EC2 allows), in the caller's one VPC; named by its Name
// tag when that is a DNS label. The network is `nat` (its instances reach out), like a default VPC's subnets.
std::optional<Error> CreateSubnet(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  auto vpc = c.params.Get("VpcId");
  if (!vpc || vpc->empty()) return MissingParameter("VpcId");
  if (*vpc != VpcId(c.caller->ns)) return Error{"InvalidVpcID.NotFound", "The vpc ID '" + *vpc + "' does not exist", 400};
  auto cidr = c.params.Get("CidrBlock");
  if (!cidr || cidr->empty()) return MissingParameter("CidrBlock");
  static const std::regex kCidr("([0-9]{1,3}\\.){3}[0-9]{1,3}/([0-9]{1,2})");
  std::smatch m;
  if (!std::regex_match(*cidr, m, kCidr)) return InvalidParameterValue("Value (" + *cidr + ") for parameter cidrBlock is invalid. This is not a valid CIDR block.");
  int bits = std::stoi(m[2]);
  if (bits < 16 || bits > 28) return Error{"InvalidSubnet.Range", "The CIDR '" + *cidr + "' is invalid (a /16 to /28).", 400};
  if (auto z = c.params.Get("AvailabilityZone"); z && !z->empty() && *z != DefaultZone(o)) {
    return InvalidParameterValue("Value (" + *z + ") for parameter availabilityZone is invalid: subnets are in " + DefaultZone(o));
  }
  if (c.params.Has("Ipv6CidrBlock") || c.params.Has("Ipv6Native")) return InvalidParameterValue("IPv6 subnets are not served");
  auto nets = api->List("networks", c.caller->ns, {});
  if (!nets.ok()) return FromStatus(nets.status());
  for (const auto& n : (*nets)["items"]) {
    if (Str(n, "spec", "cidr") == *cidr) return Error{"InvalidSubnet.Conflict", "The CIDR '" + *cidr + "' conflicts with another subnet", 400};
  }
  Tags tags;
  if (auto err = SpecTags(c.params, {"subnet"}, "subnet", &tags)) return err;
  std::string name = NameFromTags(tags, true);
  json md = name.empty() ? json{{"generateName", "subnet-"}} : json{{"name", name}};
  PutTags(&md, tags);
  json obj = {{"apiVersion", "stratus.io/v1"}, {"kind", "Network"}, {"metadata", md}, {"spec", {{"cidr", *cidr}, {"mode", "nat"}}}};
  auto made = api->Create("networks", c.caller->ns, obj);
  if (!made.ok()) {
    if (made.status().code() == Code::kAlreadyExists) return InvalidParameterValue("a subnet named '" + name + "' already exists");
    if (made.status().code() == Code::kInvalid || made.status().code() == Code::kBadRequest) {
      // The network admission refuses ranges that overlap another network's: EC2's InvalidSubnet.Conflict.
      if (made.status().message().find("overlap") != std::string::npos) return Error{"InvalidSubnet.Conflict", made.status().message(), 400};
      return InvalidParameterValue(made.status().message());
    }
    if (made.status().reason() == "QuotaExceeded") return Error{"SubnetLimitExceeded", made.status().message(), 400};
    return FromStatus(made.status());
  }
  auto item = r->root().append_child("subnet");
  AddText(item, "subnetId", Ec2IdOf(*made));
  AddText(item, "state", "pending");
  AddText(item, "vpcId", *vpc);
  AddText(item, "cidrBlock", *cidr);
  AddText(item, "availableIpAddressCount", std::to_string(FreeAddresses(*made)));
  AddText(item, "availabilityZone", DefaultZone(o));
  AddBool(item, "defaultForAz", false);
  AddBool(item, "mapPublicIpOnLaunch", false);
  AddTagSet(item, *made);
  return std::nullopt;
}

// DeleteSubnet: refused while instances use the Network (DependencyViolation, as EC2 does).
std::optional<Error> DeleteSubnet(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("subnet-[0-9a-f]{8,17}");
  auto id = c.params.Get("SubnetId");
  if (!id || id->empty()) return MissingParameter("SubnetId");
  if (!std::regex_match(*id, kId)) return Error{"InvalidSubnetID.Malformed", "Invalid id: \"" + *id + "\"", 400};
  auto nets = api->List("networks", c.caller->ns, {});
  if (!nets.ok()) return FromStatus(nets.status());
  json net;
  for (const auto& n : (*nets)["items"]) {
    if (Ec2IdOf(n) == *id) net = n;
  }
  if (net.is_null()) return Error{"InvalidSubnetID.NotFound", "The subnet ID '" + *id + "' does not exist", 400};
  auto insts = api->List("instances", c.caller->ns, {});
  if (!insts.ok()) return FromStatus(insts.status());
  for (const auto& i : (*insts)["items"]) {
    const json spec = i.value("spec", json::object());
    bool uses = false;
    if (spec.contains("networks") && spec["networks"].is_array() && !spec["networks"].empty()) {
      for (const auto& nic : spec["networks"]) uses = uses || Str(nic, "network") == Name(net);
    } else {
      uses = Name(net) == "default";
    }
    if (uses) {
      return Error{"DependencyViolation", "The subnet '" + *id + "' has dependencies (instance " + Ec2IdOf(i) +
                                              ") and cannot be deleted.", 400};
    }
  }
  auto d = api->Delete("networks", c.caller->ns, Name(net), Uid(net));
  if (!d.ok() && d.status().code() != Code::kNotFound) {
    if (d.status().code() == Code::kConflict || d.status().code() == Code::kForbidden) {
      return Error{"DependencyViolation", d.status().message(), 400};
    }
    return FromStatus(d.status());
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
