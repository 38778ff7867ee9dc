// kubectl-style client-side apply: create, or three-way merge against the last applied configuration kept in
// the `stratus.io/last-applied-configuration` annotation.
#pragma once

#include <string>

#include "stratus/core/api_client.h"
#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus::cli {

inline constexpr const char* kLastAppliedAnnotation = "stratus.io/last-applied-configuration";

// An object from a manifest, checked and ready to send.
struct PreparedObject {
  const ResourceInfo* resource = nullptr;
  std::string ns;    // empty for cluster-scoped kinds
  std::string name;
  json modified;     // what the user applies, carrying the last-applied annotation
  std::string Ref() const;  // "instance/web-1"
};

// Checks apiVersion/kind/metadata.name, resolves the namespace (metadata.namespace, else `default_ns`;
// cluster-scoped kinds drop it), drops fields only the server writes (status, uid, resourceVersion, ...)
// and adds the last-applied annotation: the compact JSON of the object without that annotation.
// When `ns_explicit` and the object names another namespace, that is an error (as kubectl does).
StatusOr<PreparedObject> PrepareForApply(const json& user_obj, const std::string& default_ns, bool ns_explicit);

// The last applied configuration stored on a live object, or null when absent or unparsable.
json LastApplied(const json& live);

enum class ApplyAction { kCreated, kConfigured, kUnchanged };
const char* ApplyActionName(ApplyAction a);

// Creates the object when absent; otherwise sends the three-way merge patch when it is not empty. Retries the
// whole step on 409 (Conflict, AlreadyExists) up to `max_attempts` times.
StatusOr<ApplyAction> ApplyObject(ApiClient& client, const PreparedObject& obj, int max_attempts = 5);

// What applying `obj` would do, without doing it: `live` is the current object (null when absent), `merged`
// the object apply would produce (for an absent object: what would be created), `patch` the merge patch.
struct ApplyPreview {
  json live;
  json merged;
  json patch;
};
StatusOr<ApplyPreview> PreviewApply(ApiClient& client, const PreparedObject& obj);

}  // namespace stratus::cli
