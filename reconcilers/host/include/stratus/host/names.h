// Names Stratus gives the libvirt objects it makes, shared by every reconciler that finds them again.
#pragma once

#include <string>

namespace stratus::host {

// libvirt domain name of an Instance: "stratus_<namespace>_<name>" ('_' cannot occur in either part).
inline std::string DomainName(const std::string& ns, const std::string& name) {
  return "stratus_" + ns + "_" + name;
}

}  // namespace stratus::host
