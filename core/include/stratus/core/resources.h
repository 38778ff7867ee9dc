// The kinds Stratus serves: names, plural paths, scope. The one table every component (API server, CLI,
// reconcilers) uses to map `instance`, `instances`, `inst` or `Instance` to the same resource.
#pragma once

#include <string>
#include <vector>

namespace stratus {

inline constexpr const char* kGroup = "stratus.io";
inline constexpr const char* kVersion = "v1";
inline constexpr const char* kApiVersion = "stratus.io/v1";
// When an Instance leaves the store the API server records an Event labelled kTombstoneLabel=Instance whose
// kTombstoneAnnotation holds what the instance was (JSON: instanceType, image, keyName, nodeName, launchTime):
// EC2 tools still see a terminated instance for an hour.
inline constexpr const char* kTombstoneLabel = "stratus.io/tombstone";
inline constexpr const char* kTombstoneAnnotation = "stratus.io/tombstone";

struct ResourceInfo {
  std::string kind;        // Instance
  std::string plural;      // instances
  std::string singular;    // instance
  bool namespaced = true;
  std::vector<std::string> short_names;  // inst
  bool has_status = true;  // served with a /status subresource
  std::vector<std::string> categories;   // "all"
};

// Every kind, in a stable order.
const std::vector<ResourceInfo>& AllResources();
// Looks up by plural path segment (exact); nullptr when unknown.
const ResourceInfo* FindByPlural(const std::string& plural);
// Looks up by Kind (exact, case-sensitive); nullptr when unknown.
const ResourceInfo* FindByKind(const std::string& kind);
// Looks up what a user types: kind, plural, singular or short name, case-insensitive; nullptr when unknown.
const ResourceInfo* FindByAnyName(const std::string& name);

}  // namespace stratus
