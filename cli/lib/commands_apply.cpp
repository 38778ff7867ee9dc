// stratusctl apply -f and diff -f.
#include "lib/apply.h"
#include "lib/commands.h"
#include "lib/common.h"
#include "lib/diff.h"
#include "lib/manifests.h"
#include "lib/util.h"
#include "stratus/core/object.h"
#include "stratus/core/yaml.h"

#include <set>

namespace stratus::cli {

namespace {

// The kinds --prune looks at besides those in the files: what a tenant makes.
const std::vector<std::string>& PruneKinds() {
  static const std::vector<std::string> k = {"Instance",      "Volume",  "VolumeSnapshot", "Network", "Image",
                                             "KeyPair",       "SecurityGroup", "Address", "ManifestSource", "Secret"};
  return k;
}

// Deletes (or with dry_run, names) the objects matching `selector` in the applied namespaces that the files do
// not hold. False when some listing or deletion failed.
bool Prune(Env& env, const ApplyOptions& opts, const std::set<std::string>& applied,
           const std::set<const ResourceInfo*>& kinds_in_files, const std::set<std::string>& namespaces) {
  std::set<const ResourceInfo*> kinds = kinds_in_files;
  for (const auto& k : PruneKinds()) kinds.insert(FindByKind(k));
  bool ok = true;
  for (const ResourceInfo* r : kinds) {
    std::set<std::string> where = r->namespaced ? namespaces : std::set<std::string>{""};
    for (const auto& ns : where) {
      ListOptions lo;
      lo.label_selector = opts.selector;
      auto list = ListAll(*env.client, r->plural, ns, lo);
      if (!list.ok()) {
        *env.err << "error: prune: listing " << r->plural << ": " << list.status().ToString() << "\n";
        ok = false;
        continue;
      }
      for (const auto& o : (*list)["items"]) {
        std::string name = MetaString(o, "name");
        if (applied.count(r->kind + "/" + ns + "/" + name)) continue;
        if (!MetaString(o, "deletionTimestamp").empty()) continue;  // already going
        if (!opts.dry_run) {
          auto d = env.client->Delete(r->plural, ns, name, MetaString(o, "uid"));
          if (!d.ok() && d.status().code() != Code::kNotFound) {
            *env.err << "error: prune: " << r->singular << "/" << name << ": " << d.status().ToString() << "\n";
            ok = false;
            continue;
          }
        }
        *env.out << r->singular << "/" << name << " pruned" << (opts.dry_run ? " (dry run)" : "") << std::endl;
      }
    }
  }
  return ok;
}

}  // namespace

int RunApply(Env& env, const ApplyOptions& opts) {
  if (opts.files.empty()) {
    *env.err << "error: must specify -f FILE, -f DIR or -f - (stdin)\n";
    return 1;
  }
  if (opts.force_conflicts && !opts.server_side) {
    *env.err << "error: --force-conflicts only works with --server-side\n";
    return 1;
  }
  if (opts.prune && opts.selector.empty()) {
    *env.err << "error: --prune needs -l SELECTOR: the label selector of the objects it may delete\n";
    return 1;
  }
  if (!opts.selector.empty() && !opts.prune) {
    *env.err << "error: -l/--selector only works with --prune\n";
    return 1;
  }
  LoadedManifests loaded = LoadManifests(opts.files, opts.recursive, *env.in);
  bool failed = false;
  for (const auto& [source, status] : loaded.errors) {
    *env.err << "error: " << source << ": " << status.ToString() << "\n";
    failed = true;
  }
  if (loaded.objects.empty() && !failed && !opts.prune) {
    *env.err << "error: no objects passed to apply\n";
    return 1;
  }
  std::set<std::string> applied;  // Kind/namespace/name
  std::set<const ResourceInfo*> kinds;
  std::set<std::string> namespaces;
  const char* dry = opts.dry_run ? " (dry run)" : "";
  for (const auto& m : loaded.objects) {
    auto prepared = PrepareForApply(m.object, env.ns, env.ns_explicit);
    if (!prepared.ok()) {
      std::string name;
      if (m.object.is_object() && m.object.contains("kind") && m.object["kind"].is_string()) {
        name = m.object["kind"].get<std::string>();
        const json* n = m.object.contains("metadata") && m.object["metadata"].is_object() &&
                                m.object["metadata"].contains("name")
                            ? &m.object["metadata"]["name"]
                            : nullptr;
        if (n != nullptr && n->is_string()) name = ToLower(name) + "/" + n->get<std::string>();
      }
      *env.err << "error: " << m.source << ": " << (name.empty() ? "" : name + ": ")
               << prepared.status().ToString() << "\n";
      failed = true;
      continue;
    }
    applied.insert(prepared->resource->kind + "/" + prepared->ns + "/" + prepared->name);
    kinds.insert(prepared->resource);
    if (prepared->resource->namespaced) namespaces.insert(prepared->ns);
    if (opts.dry_run) {
      auto preview = PreviewApply(*env.client, *prepared);
      if (!preview.ok()) {
        *env.err << "error: " << m.source << ": " << prepared->Ref() << ": " << preview.status().ToString() << "\n";
        failed = true;
        continue;
      }
      const char* what = preview->live.is_null() ? "created" : preview->patch.empty() ? "unchanged" : "configured";
      *env.out << prepared->Ref() << " " << what << dry << std::endl;
      continue;
    }
    if (opts.server_side) {
      // The server merges; the configuration goes as the user wrote it, without client-side apply's annotation.
      json config = prepared->modified;
      if (config["metadata"].contains("annotations")) {
        config["metadata"]["annotations"].erase(kLastAppliedAnnotation);
        if (config["metadata"]["annotations"].empty()) config["metadata"].erase("annotations");
      }
      auto result = env.client->Apply(prepared->resource->plural, prepared->ns, config, opts.field_manager,
                                      opts.force_conflicts);
      if (!result.ok()) {
        *env.err << "error: " << m.source << ": " << prepared->Ref() << ": " << result.status().ToString() << "\n";
        failed = true;
        if (result.status().code() == Code::kUnavailable) break;
        continue;
      }
      *env.out << prepared->Ref() << " serverside-applied" << std::endl;
      continue;
    }
    auto action = ApplyObject(*env.client, *prepared);
    if (!action.ok()) {
      *env.err << "error: " << m.source << ": " << prepared->Ref() << ": " << action.status().ToString() << "\n";
      failed = true;
      if (action.status().code() == Code::kUnavailable) break;  // the server is down: every object would fail
      continue;
    }
    *env.out << prepared->Ref() << " " << ApplyActionName(*action) << std::endl;
  }
  if (opts.prune) {
    if (failed) {
      // Something in the files was not applied (or not read): what they hold is uncertain, so nothing is deleted.
      *env.err << "error: nothing pruned: fix the errors above first\n";
      return 1;
    }
    if (namespaces.empty()) namespaces.insert(env.ns.empty() ? "default" : env.ns);
    if (!Prune(env, opts, applied, kinds, namespaces)) failed = true;
  }
  return failed ? 1 : 0;
}

namespace {

// The YAML `diff` compares: the live object (or what will be created) without the bulky last-applied
// annotation, and without the fields that only record the server's bookkeeping.
std::string DiffText(json obj) {
  if (obj.is_null()) return "";
  if (obj.contains("metadata") && obj["metadata"].is_object()) {
    json& m = obj["metadata"];
    m.erase("managedFields");
    if (m.contains("annotations") && m["annotations"].is_object()) {
      m["annotations"].erase(kLastAppliedAnnotation);
      if (m["annotations"].empty()) m.erase("annotations");
    }
  }
  return ToYaml(obj);
}

}  // namespace

int RunDiff(Env& env, const DiffOptions& opts) {
  if (opts.files.empty()) {
    *env.err << "error: must specify -f FILE, -f DIR or -f - (stdin)\n";
    return 2;
  }
  LoadedManifests loaded = LoadManifests(opts.files, opts.recursive, *env.in);
  bool error = false;
  bool differs = false;
  for (const auto& [source, status] : loaded.errors) {
    *env.err << "error: " << source << ": " << status.ToString() << "\n";
    error = true;
  }
  for (const auto& m : loaded.objects) {
    auto prepared = PrepareForApply(m.object, env.ns, env.ns_explicit);
    if (!prepared.ok()) {
      *env.err << "error: " << m.source << ": " << prepared.status().ToString() << "\n";
      error = true;
      continue;
    }
    auto preview = PreviewApply(*env.client, *prepared);
    if (!preview.ok()) {
      *env.err << "error: " << m.source << ": " << prepared->Ref() << ": " << preview.status().ToString() << "\n";
      error = true;
      if (preview.status().code() == Code::kUnavailable) break;
      continue;
    }
    // For an object that does not exist yet, every line is new; strip its annotation as for live objects.
    std::string before = DiffText(preview->live);
    std::string after = DiffText(preview->merged);
    std::string label = prepared->Ref();
    if (prepared->resource->namespaced) label = prepared->ns + "/" + label;
    std::string d = UnifiedDiff(before, after, label + " (live)", label + " (after apply)");
    if (!d.empty()) {
      differs = true;
      *env.out << "diff -u " << label << "\n" << d;
    }
  }
  if (error) return 2;
  return differs ? 1 : 0;
}

}  // namespace stratus::cli
