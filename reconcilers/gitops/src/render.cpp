#include "stratus/gitops/render.h"

#include <algorithm>
#include <map>

#include "stratus/core/duration.h"
#include "stratus/core/object.h"
#include "stratus/core/yaml.h"

namespace stratus::gitops {
namespace {

Status Invalid(const std::string& field, const std::string& why) {
  return InvalidError(field + ": " + why, {{field, why}});
}

std::string SpecString(const json& spec, const char* f) {
  auto it = spec.find(f);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "";
}

// Apply order: what others refer to first. A later wave is applied in the same pass (nothing waits for
// readiness: the reconcilers of each kind wait for what they need), so one slow object blocks nothing.
int Wave(const std::string& kind) {
  if (kind == "Secret" || kind == "Network" || kind == "SecurityGroup" || kind == "KeyPair") return 0;
  if (kind == "Image") return 1;
  if (kind == "Volume") return 2;
  if (kind == "Instance") return 3;
  if (kind == "Address") return 4;
  return 5;
}

void Leaves(const json& config, const json* live, const std::string& path, bool root,
            std::vector<std::string>* out) {
  for (auto it = config.begin(); it != config.end(); ++it) {
    const std::string& k = it.key();
    if (root && (k == "apiVersion" || k == "kind" || k == "status")) continue;
    if (path == ".metadata" && k != "labels" && k != "annotations" && k != "finalizers" && k != "ownerReferences") {
      continue;
    }
    const json* l = live != nullptr && live->is_object() && live->contains(k) ? &(*live)[k] : nullptr;
    std::string p = path + "." + k;
    if (it.value().is_object() && !it.value().empty()) {
      Leaves(it.value(), l, p, false, out);
    } else if (!it.value().is_null() && (l == nullptr || *l != it.value())) {
      out->push_back(p);
    }
  }
}

}  // namespace

StatusOr<SourceConfig> ParseSource(const json& source) {
  SourceConfig c;
  const json spec = source.value("spec", json::object());
  c.fetch.url = SpecString(spec, "url");
  if (c.fetch.url.empty()) return Invalid("spec.url", "Required value");
  const std::string& u = c.fetch.url;
  bool local = u[0] == '/';
  bool known = local || u.rfind("file://", 0) == 0 || u.rfind("git://", 0) == 0 || u.rfind("http://", 0) == 0 ||
               u.rfind("https://", 0) == 0;
  if (!known) {
    return Invalid("spec.url", "\"" + u + "\": use an absolute path or a file://, git://, http:// or https:// URL");
  }
  if (u.find_first_of(std::string("\0\r\n \t", 5)) != std::string::npos) {
    return Invalid("spec.url", "must not contain whitespace or control characters");
  }
  c.fetch.branch = SpecString(spec, "branch");
  c.fetch.tag = SpecString(spec, "tag");
  c.fetch.commit = SpecString(spec, "commit");
  if (!c.fetch.commit.empty() &&
      (c.fetch.commit.size() < 4 || c.fetch.commit.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return Invalid("spec.commit", "\"" + c.fetch.commit + "\": must be a hex commit id (at least 4 digits)");
  }
  for (const auto& [field, v] : {std::pair{"spec.branch", c.fetch.branch}, std::pair{"spec.tag", c.fetch.tag}}) {
    if (v.find("..") != std::string::npos || v.find_first_of(std::string("\0 ~^:?*[\\", 9)) != std::string::npos ||
        (!v.empty() && (v[0] == '-' || v[0] == '/'))) {
      return Invalid(field, "\"" + v + "\" is not a valid git ref name");
    }
  }
  c.fetch.path = SpecString(spec, "path");
  const std::string& p = c.fetch.path;
  if (!p.empty() && (p[0] == '/' || p == ".." || p.rfind("../", 0) == 0 || p.find("/../") != std::string::npos ||
                     (p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0))) {
    return Invalid("spec.path", "\"" + p + "\": must be relative to the repository, without \"..\"");
  }
  if (spec.contains("interval")) {
    auto d = ParseDuration(SpecString(spec, "interval"));
    if (!d.ok()) return Invalid("spec.interval", d.status().message());
    if (*d < std::chrono::seconds(1)) return Invalid("spec.interval", "must be at least 1s");
    c.interval = *d;
  }
  c.prune = spec.value("prune", true);
  c.suspend = spec.value("suspend", false);
  if (spec.contains("secretRef") && spec["secretRef"].is_object()) c.secret = SpecString(spec["secretRef"], "name");
  return c;
}

Status ValidateManifestSource(const json& source) {
  auto c = ParseSource(source);
  return c.ok() ? Status::Ok() : c.status();
}

Rendered Render(const Snapshot& snap, const std::string& ns, const std::string& source_name) {
  Rendered out;
  std::set<std::string> seen;
  for (const auto& f : snap.files) {
    bool is_json = f.path.size() >= 5 && f.path.compare(f.path.size() - 5, 5, ".json") == 0;
    std::vector<json> docs;
    if (is_json) {
      auto j = ParseJson(f.text);
      if (!j.ok()) {
        out.errors.push_back({f.path, j.status().message()});
        out.complete = false;
        continue;
      }
      docs.push_back(std::move(*j));
    } else {
      auto d = ParseYamlDocuments(f.text);
      if (!d.ok()) {
        out.errors.push_back({f.path, d.status().message()});
        out.complete = false;
        continue;
      }
      docs = std::move(*d);
    }
    for (size_t i = 0; i < docs.size(); ++i) {
      std::string where = f.path + (docs.size() > 1 ? "#" + std::to_string(i + 1) : "");
      json& o = docs[i];
      if (o.is_null()) continue;
      auto fail = [&](const std::string& why) {
        out.errors.push_back({where, why});
        out.complete = false;  // what it meant to hold is unknown: never read it as removed
      };
      if (!o.is_object()) {
        fail("not a mapping (every document must be one object)");
        out.complete = false;  // whatever it meant to hold is unknown
        continue;
      }
      std::string kind = o.value("kind", "");
      std::string name = o.contains("metadata") && o["metadata"].is_object() ? MetaString(o, "name") : "";
      if (kind.empty() || !o["kind"].is_string()) {
        fail("kind: Required value");
        continue;
      }
      if (o.value("apiVersion", "") != kApiVersion) {
        fail("apiVersion: \"" + o.value("apiVersion", "") + "\": this server serves " + kApiVersion);
        continue;
      }
      const ResourceInfo* r = FindByKind(kind);
      if (r == nullptr) {
        fail("kind: no kind \"" + kind + "\" is served in " + kApiVersion);
        continue;
      }
      if (!r->namespaced) {
        fail(kind + " is cluster-scoped: a ManifestSource applies only namespaced kinds, in its own namespace");
        continue;
      }
      if (name.empty()) {
        fail("metadata.name: Required value");
        continue;
      }
      std::string ons = MetaString(o, "namespace");
      if (!ons.empty() && ons != ns) {
        fail(kind + "/" + name + ": metadata.namespace \"" + ons + "\": a ManifestSource in namespace \"" + ns +
             "\" applies only there");
        continue;
      }
      std::string ref = kind + "/" + name;
      if (!seen.insert(ref).second) {
        fail(ref + ": appears more than once in the repository");
        continue;
      }
      o["metadata"]["namespace"] = ns;
      if (!o["metadata"].contains("labels") || !o["metadata"]["labels"].is_object()) {
        o["metadata"]["labels"] = json::object();
      }
      o["metadata"]["labels"][kSourceLabel] = source_name;
      for (const char* server : {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                                 "managedFields"}) {
        o["metadata"].erase(server);
      }
      o.erase("status");
      out.objects.push_back({r, where, name, std::move(o)});
    }
  }
  std::stable_sort(out.objects.begin(), out.objects.end(), [](const RenderedObject& a, const RenderedObject& b) {
    return Wave(a.resource->kind) < Wave(b.resource->kind);
  });
  return out;
}

std::set<std::string> InventoryOf(const json& source) {
  std::set<std::string> inv;
  const json* st = source.contains("status") ? &source["status"] : nullptr;
  if (st == nullptr || !st->is_object() || !st->contains("inventory") || !(*st)["inventory"].is_array()) return inv;
  for (const auto& e : (*st)["inventory"]) {
    if (e.is_string()) inv.insert(e.get<std::string>());
  }
  return inv;
}

std::vector<std::string> PlanPrune(const std::set<std::string>& inventory, const Rendered& r) {
  if (!r.complete) return {};
  std::set<std::string> wanted;
  for (const auto& o : r.objects) wanted.insert(o.Ref());
  // Objects refused before any write are still wanted (an error is not a removal).
  for (const auto& e : r.errors) wanted.insert(e.where);
  std::vector<std::string> gone;
  for (const auto& ref : inventory) {
    if (!wanted.count(ref)) gone.push_back(ref);
  }
  // Instances before what they use (reverse apply order).
  std::stable_sort(gone.begin(), gone.end(), [](const std::string& a, const std::string& b) {
    return Wave(a.substr(0, a.find('/'))) > Wave(b.substr(0, b.find('/')));
  });
  return gone;
}

std::vector<std::string> Drift(const json& live, const json& config) {
  std::vector<std::string> out;
  if (config.is_object()) Leaves(config, &live, "", true, &out);
  return out;
}

}  // namespace stratus::gitops
