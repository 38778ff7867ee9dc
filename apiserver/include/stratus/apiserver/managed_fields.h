// Field ownership (Kubernetes' managedFields) and server-side apply, on plain JSON objects.
//
// Every object records, in metadata.managedFields, which field manager set which of its fields and through which
// operation (Apply for server-side apply, Update for create/update/patch). Apply merges a manager's partial
// configuration into the live object: fields another manager owns with a different value are conflicts (409
// naming each field and its manager) unless forced; fields the applier owned before and no longer sends are
// removed when nobody else owns them. Updates move the fields they change to their manager.
//
// Simplifications against Kubernetes, all stated: lists are atomic (owned as a whole; Kubernetes also knows
// associative lists by key), status is not tracked (status writers are reconcilers, one per status), and the
// server-set metadata (name, namespace, uid, resourceVersion, generation, timestamps, managedFields) is owned by
// nobody.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

using FieldPath = std::vector<std::string>;
using FieldSet = std::set<FieldPath>;

// ".spec.instanceType" for {"spec","instanceType"}.
std::string FieldPathString(const FieldPath& p);

// The leaf fields of an object's user-owned part (maps are walked, lists and scalars are leaves, an empty map is a
// leaf; null values are not fields).
FieldSet FieldsOf(const json& obj);

// FieldsV1 ({"f:spec":{"f:cpu":{}}}) to and from a set.
json ToFieldsV1(const FieldSet& fields);
FieldSet FromFieldsV1(const json& v1);

// One entry of metadata.managedFields.
struct ManagedEntry {
  std::string manager;
  std::string operation;  // "Apply" or "Update"
  std::string time;
  FieldSet fields;
};
std::vector<ManagedEntry> ManagedEntriesOf(const json& obj);
// Writes `entries` (those that own something) into obj.metadata.managedFields, or removes it when none do.
void SetManagedEntries(json* obj, const std::vector<ManagedEntry>& entries);

// `after` with managedFields carried over from `before` (null for a create) and updated for an Update by
// `manager` at `now`: the fields whose values changed become the manager's, others lose them; removed fields are
// nobody's. Whatever managedFields `after` carried is ignored (clients send back what they read). When nothing
// changed, the entries stay exactly as they were (a no-op write stays a no-op).
json RecordUpdate(const json* before, json after, const std::string& manager, const std::string& now);

// Server-side apply of `config` (a partial object: apiVersion, kind, metadata.name and the fields the manager
// wants) by `manager` onto `live` (null when the object does not exist yet). Returns the merged object with its
// managedFields updated, or kConflict naming every conflicting field and its manager (unless `force`, which takes
// those fields over).
StatusOr<json> ServerSideApply(const json* live, const json& config, const std::string& manager, bool force,
                               const std::string& now);

}  // namespace stratus
