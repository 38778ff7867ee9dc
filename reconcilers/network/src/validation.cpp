#include "stratus/network/validation.h"

#include <map>

#include "stratus/core/object.h"
#include "stratus/network/firewall.h"
#include "stratus/network/ipam.h"

namespace stratus::network {

namespace {
// The message without the prefix the reconcilers add for their logs ("securitygroup web: "): the API puts the
// object's name in front itself.
Status FromCause(const Status& s) {
  if (s.ok() || s.causes().empty()) return s;
  const FieldCause& c = s.causes()[0];
  return InvalidError(c.field + ": " + c.message, s.causes());
}
}  // namespace

Status ValidateNetwork(const json& network) {
  auto cfg = ParseNetwork(network);
  return cfg.ok() ? Status::Ok() : FromCause(cfg.status());
}

Status ValidateSecurityGroup(const json& group) {
  std::string name = MetaString(group, "name");
  auto rules = ResolveNicRules({name}, {{name, group}}, {});
  return rules.ok() ? Status::Ok() : FromCause(rules.status());
}

}  // namespace stratus::network
