// Small helpers over objects held as JSON (`apiVersion/kind/metadata/spec/status`).
#pragma once

#include <cstdint>
#include <string>
#include <tuple>

#include "stratus/core/status.h"

namespace stratus {

// Identifies one stored object. `ns` is empty for cluster-scoped kinds.
struct ObjectKey {
  std::string plural;
  std::string ns;
  std::string name;
  std::string ToString() const { return plural + "/" + (ns.empty() ? "" : ns + "/") + name; }
  bool operator<(const ObjectKey& o) const {
    return std::tie(plural, ns, name) < std::tie(o.plural, o.ns, o.name);
  }
  bool operator==(const ObjectKey& o) const { return plural == o.plural && ns == o.ns && name == o.name; }
};

// Returns an error when `name` is not a DNS-1123 label (lowercase alphanumerics and '-', starts and ends
// alphanumeric, at most 63 characters). `field` names the field in the message.
Status ValidateDns1123Label(const std::string& name, const std::string& field);
// Same for DNS-1123 subdomains (labels joined by '.', at most 253 characters) used by InstanceType names etc.
Status ValidateDns1123Subdomain(const std::string& name, const std::string& field);

// RFC 3339 UTC timestamp with second precision (what Kubernetes writes), e.g. 2026-11-23T19:13:04Z.
std::string NowRfc3339();
// The same format for `seconds` since the epoch.
std::string FormatRfc3339(int64_t seconds);
// Parses an RFC 3339 UTC timestamp; returns seconds since the epoch or -1.
int64_t ParseRfc3339(const std::string& ts);
// A random RFC 4122 version-4 UUID.
std::string NewUuid();
// "5m", "3h", "12d" style age, as kubectl prints it.
std::string HumanAge(int64_t seconds);

// metadata accessors that tolerate absent fields.
std::string MetaString(const json& obj, const char* field);
uint64_t ResourceVersionOf(const json& obj);  // 0 when absent or unparsable
ObjectKey KeyOf(const std::string& plural, const json& obj);

// True when Instance `inst` is being rebuilt away from `root_volume` (its root Volume): spec.rebuildPolicy is
// Recreate and spec.image names another image than the one the volume was made from. Its node then deletes that
// volume and makes a new one; nothing else may hold on to it meanwhile.
bool RebuildReplaces(const json& inst, const json& root_volume);

}  // namespace stratus
