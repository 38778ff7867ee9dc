// Host-independent parts of the NetDev adapter (validation), shared by the Linux implementation and fakes.
#include <cctype>

#include "stratus/host/netdev.h"

namespace stratus::host {

Status ValidateIfName(const std::string& name, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return InvalidError(field + ": '" + name + "' " + why, {FieldCause{field, "'" + name + "' " + why}});
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > 15) return bad("is longer than 15 characters (the Linux limit for interface names)");
  if (name == "." || name == "..") return bad("is not a usable interface name");
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '-') {
      return bad("may only contain letters, digits, '_', '.' and '-'");
    }
  }
  return Status::Ok();
}

}  // namespace stratus::host
