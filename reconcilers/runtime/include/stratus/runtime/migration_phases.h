// The phases of a Migration and who holds a moving instance: what the node's reconcilers need while an instance
// moves — the instance reconciler leaves it alone on its source (its domain is in flight) and keeps its fence off
// an arriving domain, the network reconciler filters an arriving guest's NICs. The migration reconcilers
// (reconcilers/migration) own the kind and build on the same names.
#pragma once

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

// The newest Migration (by creationTimestamp, then name) of instance `ns/name` among `migrations`; null when none.
inline json LatestMigration(const std::vector<json>& migrations, const std::string& ns, const std::string& name) {
  json best;
  for (const auto& m : migrations) {
    if (MetaString(m, "namespace") != ns || !m.contains("spec") || !m["spec"].is_object() ||
        m["spec"].value("instance", "") != name) {
      continue;
    }
    auto k = std::make_pair(MetaString(m, "creationTimestamp"), MetaString(m, "name"));
    if (best.is_null() || k > std::make_pair(MetaString(best, "creationTimestamp"), MetaString(best, "name"))) best = m;
  }
  return best;
}

// True when a migration of instance `ns/name` away from `node` holds its domain: the newest of its migrations that
// got under way (Pending and Failed ones do not count: a refused or not yet scheduled second one must not lift the
// hold of the one in flight) moves it away from `node` and is in flight (TargetReady, Running, Migrated) or so
// recently Succeeded (within `settle_seconds` of `now`) that the binding to the target may not have reached that
// node's cache. A newer one that brought it back to `node` ends the hold.
inline bool HeldBy(const std::vector<json>& migrations, const std::string& ns, const std::string& name,
                   const std::string& node, int64_t now, int64_t settle_seconds = 120) {
  json newest;
  for (const auto& m : migrations) {
    if (MetaString(m, "namespace") != ns || !m.contains("spec") || !m["spec"].is_object() ||
        m["spec"].value("instance", "") != name) {
      continue;
    }
    const std::string phase = PhaseOf(m);
    if (phase == kPending || phase == kFailed) continue;
    auto k = std::make_pair(MetaString(m, "creationTimestamp"), MetaString(m, "name"));
    if (newest.is_null() || k > std::make_pair(MetaString(newest, "creationTimestamp"), MetaString(newest, "name"))) {
      newest = m;
    }
  }
  if (newest.is_null()) return false;
  const json st = newest.value("status", json::object());
  if (st.value("sourceNode", "") != node) return false;
  const std::string phase = st.value("phase", "");
  if (phase == kTargetReady || phase == kRunning || phase == kMigrated) return true;
  return phase == kSucceeded && now - ParseRfc3339(st.value("completionTime", "")) < settle_seconds;
}

}  // namespace stratus::migration
