#include "lib/apply.h"

#include <chrono>
#include <thread>

#include "stratus/core/merge.h"
#include "stratus/core/object.h"
#include "stratus/core/schema.h"

namespace stratus::cli {

std::string PreparedObject::Ref() const { return (resource ? resource->singular : "object") + "/" + name; }

const char* ApplyActionName(ApplyAction a) {
  switch (a) {
    case ApplyAction::kCreated: return "created";
    case ApplyAction::kConfigured: return "configured";
    case ApplyAction::kUnchanged: return "unchanged";
  }
  return "";
}

StatusOr<PreparedObject> PrepareForApply(const json& user_obj, const std::string& default_ns, bool ns_explicit) {
  if (!user_obj.is_object()) return BadRequest("object is not a mapping");
  if (!user_obj.contains("kind") || !user_obj["kind"].is_string() || user_obj["kind"].get<std::string>().empty()) {
    return BadRequest("kind: Required value: every object needs apiVersion and kind");
  }
  std::string kind = user_obj["kind"].get<std::string>();
  if (!user_obj.contains("apiVersion") || !user_obj["apiVersion"].is_string()) {
    return BadRequest("apiVersion: Required value: set apiVersion: " + std::string(kApiVersion));
  }
  std::string api_version = user_obj["apiVersion"].get<std::string>();
  if (api_version != kApiVersion) {
    return BadRequest("no matches for kind \"" + kind + "\" in version \"" + api_version + "\" (Stratus serves " +
                      kApiVersion + ")");
  }
  const ResourceInfo* r = FindByKind(kind);
  if (r == nullptr) {
    return BadRequest("no matches for kind \"" + kind + "\" in version \"" + api_version + "\"");
  }
  if (!user_obj.contains("metadata") || !user_obj["metadata"].is_object()) {
    return BadRequest("metadata: Required value: every object needs metadata.name");
  }
  const json& meta = user_obj["metadata"];
  if (!meta.contains("name") || !meta["name"].is_string() || meta["name"].get<std::string>().empty()) {
    return BadRequest("metadata.name: Required value" +
                      std::string(meta.contains("generateName") ? " (generateName is not supported by apply)" : ""));
  }

  PreparedObject p;
  p.resource = r;
  p.name = meta["name"].get<std::string>();
  json obj = user_obj;
  json& m = obj["metadata"];
  if (r->namespaced) {
    std::string ns = m.contains("namespace") && m["namespace"].is_string() ? m["namespace"].get<std::string>() : "";
    if (ns.empty()) {
      ns = default_ns.empty() ? "default" : default_ns;
    } else if (ns_explicit && !default_ns.empty() && ns != default_ns) {
      return BadRequest("the namespace from the provided object \"" + ns + "\" does not match the namespace \"" +
                        default_ns + "\". You must pass '--namespace=" + ns + "' to perform this operation.");
    }
    m["namespace"] = ns;
    p.ns = ns;
  } else {
    m.erase("namespace");
  }
  // Fields only the server writes: a file saved with `get -o yaml` applies as its desired state.
  obj.erase("status");
  for (const char* f : {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "managedFields", "selfLink"}) {
    m.erase(f);
  }
  if (m.contains("annotations") && m["annotations"].is_object()) {
    m["annotations"].erase(kLastAppliedAnnotation);
    if (m["annotations"].empty()) m.erase("annotations");
  }
  std::string last_applied = obj.dump();
  m["annotations"][kLastAppliedAnnotation] = last_applied;
  p.modified = std::move(obj);
  return p;
}

json LastApplied(const json& live) {
  const json* ann = nullptr;
  if (live.is_object() && live.contains("metadata") && live["metadata"].is_object() &&
      live["metadata"].contains("annotations") && live["metadata"]["annotations"].is_object()) {
    ann = &live["metadata"]["annotations"];
  }
  if (ann == nullptr || !ann->contains(kLastAppliedAnnotation) || !(*ann)[kLastAppliedAnnotation].is_string()) {
    return nullptr;
  }
  json j = json::parse((*ann)[kLastAppliedAnnotation].get<std::string>(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return nullptr;
  return j;
}

namespace {

bool IsEmptyPatch(const json& patch) { return patch.is_null() || (patch.is_object() && patch.empty()); }

// What the server will hold for `obj`: the user's object with the schema's defaults filled in. Comparing this
// (rather than the bare object) with the live one keeps defaulted fields inside lists (a security group
// rule's protocol) from looking like changes on every apply.
json Defaulted(const PreparedObject& obj) {
  json mod = obj.modified;
  SchemaRegistry::Builtin().ApplyDefaults(obj.resource->kind, mod);
  mod.erase("status");
  return mod;
}

// The three-way patch for `obj` against `live`, never touching status (the server ignores it on the main
// resource, and sending it would make every apply look like a change).
json ComputePatch(const PreparedObject& obj, const json& live) {
  json patch = ThreeWayMergePatch(LastApplied(live), Defaulted(obj), live);
  if (patch.is_object()) patch.erase("status");
  return patch;
}

}  // namespace

StatusOr<ApplyAction> ApplyObject(ApiClient& client, const PreparedObject& obj, int max_attempts) {
  Status last;
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    if (attempt > 1) std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt - 1)));
    auto live = client.Get(obj.resource->plural, obj.ns, obj.name);
    if (!live.ok()) {
      if (live.status().code() != Code::kNotFound) return live.status();
      auto created = client.Create(obj.resource->plural, obj.ns, obj.modified);
      if (created.ok()) return ApplyAction::kCreated;
      last = created.status();
      if (last.code() == Code::kAlreadyExists || last.code() == Code::kConflict) continue;  // raced: patch instead
      return last;
    }
    json patch = ComputePatch(obj, *live);
    if (IsEmptyPatch(patch)) return ApplyAction::kUnchanged;
    // Pin the version the patch was computed against: a concurrent write makes the server answer 409 and the
    // patch is recomputed from the new state.
    std::string rv = MetaString(*live, "resourceVersion");
    if (!rv.empty()) patch["metadata"]["resourceVersion"] = rv;
    auto patched = client.Patch(obj.resource->plural, obj.ns, obj.name, patch);
    if (patched.ok()) return ApplyAction::kConfigured;
    last = patched.status();
    if (last.code() == Code::kConflict) continue;
    if (last.code() == Code::kNotFound) continue;  // deleted meanwhile: create it
    return last;
  }
  return Status(last.code(), last.message() + " (gave up after " + std::to_string(max_attempts) + " attempts)",
                last.causes());
}

StatusOr<ApplyPreview> PreviewApply(ApiClient& client, const PreparedObject& obj) {
  ApplyPreview p;
  auto live = client.Get(obj.resource->plural, obj.ns, obj.name);
  if (!live.ok()) {
    if (live.status().code() != Code::kNotFound) return live.status();
    p.live = nullptr;
    p.merged = Defaulted(obj);
    p.patch = obj.modified;
    return p;
  }
  p.live = *live;
  p.patch = ComputePatch(obj, *live);
  p.merged = IsEmptyPatch(p.patch) ? *live : ApplyMergePatch(*live, p.patch);
  return p;
}

}  // namespace stratus::cli
