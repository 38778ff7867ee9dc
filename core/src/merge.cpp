// JSON merge patch (RFC 7386) and kubectl's client-side three-way merge.
#include "stratus/core/merge.h"

namespace stratus {
namespace {

// Keeps only the deletions (null leaves) of a merge patch when `keep_null`, or only the additions/changes
// otherwise. Nested objects are filtered recursively and dropped when nothing is left in them; an object that
// is empty in the patch itself is an explicit value ("set to {}") and counts as a change.
json FilterPatch(const json& patch, bool keep_null) {
  json out = json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const json& v = it.value();
    if (v.is_null()) {
      if (keep_null) out[it.key()] = nullptr;
    } else if (v.is_object() && !v.empty()) {
      json sub = FilterPatch(v, keep_null);
      if (!sub.empty()) out[it.key()] = std::move(sub);
    } else if (!keep_null) {
      out[it.key()] = v;  // scalars, arrays (always replaced whole) and explicit empty objects
    }
  }
  return out;
}

}  // namespace

json ApplyMergePatch(const json& target, const json& patch) {
  json result = target;
  result.merge_patch(patch);
  return result;
}

json CreateMergePatch(const json& from, const json& to) {
  if (!from.is_object() || !to.is_object()) {
    return from == to ? json::object() : to;
  }
  json patch = json::object();
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (!to.contains(it.key())) patch[it.key()] = nullptr;
  }
  for (auto it = to.begin(); it != to.end(); ++it) {
    auto old = from.find(it.key());
    if (old == from.end()) {
      patch[it.key()] = it.value();
    } else if (old->is_object() && it->is_object()) {
      json sub = CreateMergePatch(*old, *it);
      if (!sub.empty()) patch[it.key()] = std::move(sub);
    } else if (*old != *it) {
      patch[it.key()] = it.value();
    }
  }
  return patch;
}

json ThreeWayMergePatch(const json& last_applied, const json& modified, const json& current) {
  if (!modified.is_object() || !current.is_object()) {
    return modified == current ? json::object() : modified;
  }
  // Deletions: what the user removed since the last apply.
  json deletions =
      last_applied.is_object() ? FilterPatch(CreateMergePatch(last_applied, modified), true) : json::object();
  // Additions and changes: what the live object lacks or has differently, ignoring fields only it has.
  json changes = FilterPatch(CreateMergePatch(current, modified), false);
  deletions.merge_patch(changes);
  return deletions;
}

}  // namespace stratus
