// The phases of a Migration and who holds a moving instance: what the node's reconcilers need while an instance
// moves — the instance reconciler leaves it alone on its source (its domain is in flight) and keeps its fence off
// an arriving domain, the network reconciler filters an arriving guest's NICs. The migration reconcilers
// (reconcilers/migration) own the kind and build on the same names.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "stratus/core/object.h"
#include "stratus/core/status.h"

namespace stratus::migration {

inline constexpr const char* kPending = "Pending";
inline constexpr const char* kScheduled = "Scheduled";
inline constexpr const char* kTargetReady = "TargetReady";
inline constexpr const char* kRunning = "Running";
inline constexpr const char* kMigrated = "Migrated";
inline constexpr const char* kSucceeded = "Succeeded";
inline constexpr const char* kFailed = "Failed";

inline std::string PhaseOf(const json& m) {
  if (!m.is_object() || !m.contains("status") || !m["status"].is_object()) return kPending;
  std::string p = m["status"].value("phase", "");
  return p.empty() ? kPending : p;
}

inline bool Terminal(const std::string& phase) { return phase == kSucceeded || phase == kFailed; }

// Migrations in the order they were made: by creationTimestamp, then (within a second) by name.
inline bool Newer(const json& a, const json& b) {
  return std::make_pair(MetaString(a, "creationTimestamp"), MetaString(a, "name")) >
         std::make_pair(MetaString(b, "creationTimestamp"), MetaString(b, "name"));
}

inline bool Of(const json& m, const std::string& ns, const std::string& name) {
  return MetaString(m, "namespace") == ns && m.contains("spec") && m["spec"].is_object() &&
         m["spec"].value("instance", "") == name;
}

// The newest Migration of instance `ns/name` among `migrations` that `counts` (null: every one); null when none.
inline json LatestMigration(const std::vector<json>& migrations, const std::string& ns, const std::string& name,
                            bool (*counts)(const json&) = nullptr) {
  json best;
  for (const auto& m : migrations) {
    if (!Of(m, ns, name) || (counts != nullptr && !counts(m))) continue;
    if (best.is_null() || Newer(m, best)) best = m;
  }
  return best;
}

// True while migration `m` holds its instance's domain: in flight (TargetReady, Running, Migrated) or so recently
// Succeeded (within `settle_seconds` of `now`) that the binding to the target may not have reached every node's
// cache.
inline bool Holds(const json& m, int64_t now, int64_t settle_seconds = 120) {
  const std::string phase = PhaseOf(m);
  if (phase == kTargetReady || phase == kRunning || phase == kMigrated) return true;
  return phase == kSucceeded && now - ParseRfc3339(m["status"].value("completionTime", "")) < settle_seconds;
}

// True when a migration of instance `ns/name` away from `node` holds its domain: the newest of its migrations that
// got under way (Pending and Failed ones do not count: a refused or not yet scheduled second one must not lift the
// hold of the one in flight) moves it away from `node` and Holds. A newer one that brought it back to `node` ends
// the hold.
inline bool HeldBy(const std::vector<json>& migrations, const std::string& ns, const std::string& name,
                   const std::string& node, int64_t now, int64_t settle_seconds = 120) {
  json newest = LatestMigration(migrations, ns, name, [](const json& m) {
    return PhaseOf(m) != kPending && PhaseOf(m) != kFailed;
  });
  return !newest.is_null() && newest["status"].value("sourceNode", "") == node && Holds(newest, now, settle_seconds);
}

// The instances ("namespace/name") arriving at `node` by migration: their domain is (or is about to be) here before
// they are bound here.
inline std::set<std::string> ArrivingAt(const std::vector<json>& migrations, const std::string& node, int64_t now) {
  std::set<std::string> out;
  for (const auto& m : migrations) {
    if (PhaseOf(m) == kPending || m["status"].value("targetNode", "") != node || !Holds(m, now)) continue;
    out.insert(MetaString(m, "namespace") + "/" + m.value("spec", json::object()).value("instance", ""));
  }
  return out;
}

}  // namespace stratus::migration
