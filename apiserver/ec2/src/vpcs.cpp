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

std::optional<Error> DescribeSubnets(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kId("subnet-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "SubnetId", kId, "InvalidSubnetID.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (f.name != "vpc-id" && f.name != "subnet-id" && f.name != "cidr-block" && f.name != "state" &&
        f.name != "tag:Name") {
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
      std::string v = f.name == "vpc-id"       ? vpc
                      : f.name == "subnet-id"  ? id
                      : f.name == "cidr-block" ? Str(net, "spec", "cidr")
                      : f.name == "state"      ? SubnetState(net)
                                               : Name(net);
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
    AddText(item, "availabilityZone", "default");
    AddBool(item, "defaultForAz", Name(net) == "default");
    AddBool(item, "mapPublicIpOnLaunch", false);
    auto tag = AddItem(AddSet(item, "tagSet"));
    AddText(tag, "key", "Name");
    AddText(tag, "value", Name(net));
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidSubnetID.NotFound", "The subnet ID '" + id + "' does not exist", 400};
  }
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
