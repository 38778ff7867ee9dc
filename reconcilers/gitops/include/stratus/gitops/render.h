// Pure parts of the GitOps reconciler: reading a ManifestSource's spec, turning a revision's files into the
// objects to apply (in dependency order), and deciding what to prune.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "stratus/core/resources.h"
#include "stratus/core/status.h"
#include "stratus/gitops/fetcher.h"

namespace stratus::gitops {

// The field manager every object a ManifestSource applies is written as, and the label naming the source.
inline constexpr const char* kFieldManager = "stratus-gitops";
inline constexpr const char* kSourceLabel = "gitops.stratus.io/source";
inline constexpr const char* kPruneFinalizer = "gitops.stratus.io/prune";

struct SourceConfig {
  FetchSpec fetch;  // without credentials (those come from the Secret)
  std::chrono::milliseconds interval{60000};
  bool prune = true;
  bool suspend = false;
  std::string secret;  // spec.secretRef.name
};
// kInvalid naming the field (spec.url, spec.path, spec.interval) when the spec cannot be used.
StatusOr<SourceConfig> ParseSource(const json& source);
// The same checks as a validator for the API (a bad spec is refused at write time).
Status ValidateManifestSource(const json& source);

struct RenderedObject {
  const ResourceInfo* resource = nullptr;
  std::string file;  // where it came from (path inside the repository, "#N" for the Nth document)
  std::string name;
  json object;       // the apply configuration (namespace set, status dropped, the source label added)
  std::string Ref() const { return resource->kind + "/" + name; }
};
struct RenderError {
  std::string where;  // "apps/web.yaml#2" or "Instance/web"
  std::string message;
};
struct Rendered {
  std::vector<RenderedObject> objects;  // in apply order: networks and groups, images, volumes, instances, rest
  std::vector<RenderError> errors;      // files that do not parse, objects refused before any write
  bool complete = true;                 // false when some file did not parse: its objects are unknown
};
// Reads every file of `snap` as YAML (multi-document) or JSON; each object must be of a namespaced kind, in
// `ns` (or say no namespace), named, and appear once.
Rendered Render(const Snapshot& snap, const std::string& ns, const std::string& source_name);

// An inventory entry: "Kind/name" (all in the source's namespace).
std::set<std::string> InventoryOf(const json& source);
// What to delete: inventory entries no longer rendered. Nothing when the render is incomplete (a file that does
// not parse must not read as "everything in it was removed").
std::vector<std::string> PlanPrune(const std::set<std::string>& inventory, const Rendered& r);

// The fields of `config` whose live value differs: what someone changed by hand (".spec.instanceType").
std::vector<std::string> Drift(const json& live, const json& config);

}  // namespace stratus::gitops
