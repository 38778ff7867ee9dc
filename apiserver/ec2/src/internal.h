// What the EC2 actions share (api.cpp dispatches; the actions of one area live in a file of their own).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/ec2/api.h"
#include "stratus/ec2/query.h"
#include "stratus/ec2/xml.h"

namespace stratus::ec2::actions {

inline std::string Str(const json& j, const char* a, const char* b = nullptr) {
  if (!j.is_object() || !j.contains(a)) return "";
  const json& x = j[a];
  if (b == nullptr) return x.is_string() ? x.get<std::string>() : "";
  if (!x.is_object() || !x.contains(b) || !x[b].is_string()) return "";
  return x[b].get<std::string>();
}

inline std::string Uid(const json& obj) { return Str(obj, "metadata", "uid"); }
inline std::string Name(const json& obj) { return Str(obj, "metadata", "name"); }

struct Call {
  const AccessKey* caller;
  Params params;
  std::string host;
  std::string request_id;
  // DryRun=true, for the actions that authorize per resource themselves (the others never see a dry run).
  bool dry_run = false;
};

using Handler = std::function<std::optional<Error>(Api*, ApiClient*, const ApiOptions&, const Call&, Response*)>;

inline std::optional<Error> FromStatus(const Status& s) {
  if (s.code() == Code::kForbidden) return Error{"UnauthorizedOperation", s.message(), 403};
  return Error{"InternalError", "the request could not be served: " + s.message(), 500};
}

// Reads the members of `name` (NAME.1, ...) and checks each against `pattern`; EC2 answers `malformed_code`.
inline std::optional<Error> IdList(const Params& p, const std::string& name, const std::regex& pattern,
                            const std::string& malformed_code, std::vector<std::string>* out) {
  Error e;
  if (!p.List(name, out, &e)) return e;
  for (const auto& id : *out) {
    if (!std::regex_match(id, pattern)) return Error{malformed_code, "Invalid id: \"" + id + "\"", 400};
  }
  return std::nullopt;
}


// EC2's filter values: `*` any run of characters, `?` one character, `\` escapes the next one.
bool WildcardMatch(const std::string& pattern, const std::string& value);
// True when `value` matches one of `values` (a filter's values are ORed).
bool AnyMatch(const std::vector<std::string>& values, const std::string& value);

// Key pairs (keypairs.cpp).
std::optional<Error> CreateKeyPair(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> ImportKeyPair(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeleteKeyPair(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// Volumes (volumes.cpp).
std::optional<Error> CreateVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeVolumes(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeleteVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> AttachVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DetachVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// Snapshots (snapshots.cpp).
std::optional<Error> CreateSnapshot(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeSnapshots(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeleteSnapshot(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// The caller's VolumeSnapshot with EC2 id `id` (snap-...), or EC2's error.
std::optional<Error> FindSnapshot(ApiClient* api, const Call& c, const std::string& id, json* out);
// Security groups (securitygroups.cpp).
std::optional<Error> CreateSecurityGroup(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeSecurityGroups(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeleteSecurityGroup(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> AuthorizeSecurityGroupIngress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> AuthorizeSecurityGroupEgress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> RevokeSecurityGroupIngress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> RevokeSecurityGroupEgress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// VPCs and subnets (vpcs.cpp): a namespace is one default VPC, each Network a subnet.
std::optional<Error> DescribeVpcs(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeSubnets(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// Tags (tags.cpp): a resource's tags are the annotation kTagsAnnotation on its object (a JSON object).
inline constexpr const char* kTagsAnnotation = "ec2.stratus.io/tags";
using Tags = std::map<std::string, std::string>;
// The tags stored on the object.
Tags StoredTags(const json& obj);
// What EC2 shows: the stored tags, and `Name` = the object's name unless a Name tag was set.
Tags TagsOf(const json& obj);
// Appends <tagSet> with TagsOf(obj).
void AddTagSet(pugi::xml_node item, const json& obj);
// tag:KEY, tag-key and tag-value, which every Describe takes; TagFilterMatches applies one to the object.
bool IsTagFilter(const std::string& filter_name);
bool TagFilterMatches(const Filter& f, const json& obj);
// The tags TagSpecification.N gives the resource of `type` made by this call; InvalidParameterValue for a
// ResourceType not in `allowed`, bad keys or values.
std::optional<Error> SpecTags(const Params& p, const std::set<std::string>& allowed, const std::string& type, Tags* out);
// Adds `tags` to an object's metadata (nothing when empty).
void PutTags(json* metadata, const Tags& tags);
// The Name tag when it can be the object's name (a DNS label, and `single`: one object made), else "".
std::string NameFromTags(const Tags& tags, bool single);
std::optional<Error> CreateTags(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeleteTags(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeTags(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// Instances (instances.cpp).
std::optional<Error> DescribeInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeInstanceStatus(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> RunInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> TerminateInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> StartInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> StopInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> RebootInstances(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> GetConsoleOutput(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeInstanceAttribute(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> ModifyInstanceAttribute(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// Zones: a node's stratus.io/zone label (what `stratusd agent --zone` sets), else the default zone, "default".
std::string DefaultZone(const ApiOptions& o);
std::string ZoneOfNode(const json& node, const ApiOptions& o);
// Images (images.cpp).
std::optional<Error> DescribeImages(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> RegisterImage(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeregisterImage(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeImageAttribute(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> CreateImage(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// The EC2 id an image was registered with as its default kernel ("KernelId") or ramdisk ("RamdiskId"), or "".
std::string ImageDefault(const json& image, const std::string& param);
// More of volumes (volumes.cpp), security groups and subnets.
std::optional<Error> ModifyVolume(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeVolumeStatus(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeVolumesModifications(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeSecurityGroupRules(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> CreateSubnet(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DeleteSubnet(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// Addresses (addresses.cpp): Elastic IPs onto Address objects from the default AddressPool.
// The label that marks the pool AllocateAddress takes from ("stratus.io/default-pool": "true").
const char* address_default_label();
std::optional<Error> AllocateAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> AssociateAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DisassociateAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> ReleaseAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
std::optional<Error> DescribeAddresses(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);
// The value of tag `key` for `resource` in TagSpecification.N (api.cpp).
std::string TagValue(const Params& p, const std::string& resource, const std::string& key);
// Instance types (flavors).
std::optional<Error> DescribeInstanceTypes(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r);

}  // namespace stratus::ec2::actions
