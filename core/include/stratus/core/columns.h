// How objects are shown as tables, by stratusctl get and by the API server's meta.k8s.io Table: columns per kind,
// and small accessors that the printers, `describe` and `wait` share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus {

struct TableOptions {
  bool wide = false;            // -o wide: extra columns
  bool with_namespace = false;  // -A: leading NAMESPACE column (namespaced kinds only)
  bool kind_prefix = false;     // NAME shown as instance/web-1 (several kinds in one `get`)
  bool show_labels = false;     // trailing LABELS column
};

// The header row of `r`'s table.
std::vector<std::string> TableHeader(const ResourceInfo& r, const TableOptions& opts);
// One object's row; `now` is seconds since the epoch (for AGE columns).
std::vector<std::string> TableRow(const ResourceInfo& r, const json& obj, const TableOptions& opts, int64_t now);

// "instance/web-1".
std::string KindSlashName(const ResourceInfo& r, const std::string& name);
// The condition of `type` (case-insensitive) in status.conditions, or nullptr.
const json* FindCondition(const json& obj, const std::string& type);
// "True", "False", "Unknown" or "" when the condition is absent.
std::string ConditionStatus(const json& obj, const std::string& type);
// AGE column: time since metadata.creationTimestamp ("<unknown>" when absent).
std::string AgeOf(const json& obj, int64_t now);
// Age of any RFC 3339 timestamp relative to `now`; "<unknown>" when unparsable.
std::string AgeSince(const std::string& ts, int64_t now);
// Labels as "k=v,k2=v2" ("<none>" when empty).
std::string LabelsText(const json& obj);
// A one-line summary of where an object is in its life: phase, progress and the Ready condition, e.g.
// "Downloading 45%, Ready=False (Downloading: fetching http://...)". Used by `wait` to show progress.
std::string ProgressSummary(const json& obj);

}  // namespace stratus
