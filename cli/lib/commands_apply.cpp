// stratusctl apply -f and diff -f.
#include "lib/apply.h"
#include "lib/commands.h"
#include "lib/common.h"
#include "lib/diff.h"
#include "lib/manifests.h"
#include "lib/util.h"
#include "stratus/core/yaml.h"

namespace stratus::cli {

int RunApply(Env& env, const ApplyOptions& opts) {
  if (opts.files.empty()) {
    *env.err << "error: must specify -f FILE, -f DIR or -f - (stdin)\n";
    return 1;
  }
  LoadedManifests loaded = LoadManifests(opts.files, opts.recursive, *env.in);
  bool failed = false;
  for (const auto& [source, status] : loaded.errors) {
    *env.err << "error: " << source << ": " << status.ToString() << "\n";
    failed = true;
  }
  if (loaded.objects.empty() && !failed) {
    *env.err << "error: no objects passed to apply\n";
    return 1;
  }
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
    if (opts.server_side) {
      // The server merges; the configuration goes as the user wrote it, without client-side apply's annotation.
      json config = prepared->modified;
      if (config["metadata"].contains("annotations")) {
        config["metadata"]["annotations"].erase(kLastAppliedAnnotation);
        if (config["metadata"]["annotations"].empty()) config["metadata"].erase("annotations");
      }
      auto applied = env.client->Apply(prepared->resource->plural, prepared->ns, config, opts.field_manager,
                                       opts.force_conflicts);
      if (!applied.ok()) {
        *env.err << "error: " << m.source << ": " << prepared->Ref() << ": " << applied.status().ToString() << "\n";
        failed = true;
        if (applied.status().code() == Code::kUnavailable) break;
        continue;
      }
      *env.out << prepared->Ref() << " serverside-applied" << std::endl;
      continue;
    }
    if (opts.force_conflicts) {
      *env.err << "error: --force-conflicts only works with --server-side\n";
      return 1;
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
