// What the EC2 actions share (api.cpp dispatches; the actions of one area live in a file of their own).
#pragma once

#include <functional>
#include <optional>
#include <regex>
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
