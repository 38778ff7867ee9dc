#include "stratus/apiserver/managed_fields.h"

#include <algorithm>
#include <map>

#include "stratus/core/resources.h"

namespace stratus {
namespace {

// Metadata the server sets: owned by nobody, never merged from an applied configuration.
bool ServerMetadata(const std::string& k) {
  static const std::set<std::string> kServer = {"name",       "generateName",      "namespace",
                                                "uid",        "resourceVersion",   "generation",
                                                "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                                                "managedFields", "selfLink"};
  return kServer.count(k) > 0;
}

bool RootSkipped(const std::string& k) { return k == "apiVersion" || k == "kind" || k == "status"; }

// Whether the key `k` under `path` is part of what managers own.
bool Owned(const FieldPath& path, const std::string& k) {
  if (path.empty()) return !RootSkipped(k);
  if (path.size() == 1 && path[0] == "metadata") return !ServerMetadata(k);
  return true;
}

void Walk(const json& v, FieldPath* path, FieldSet* out) {
  if (v.is_object() && !v.empty()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.value().is_null() || !Owned(*path, it.key())) continue;
      path->push_back(it.key());
      Walk(it.value(), path, out);
      path->pop_back();
    }
    return;
  }
  if (!path->empty()) out->insert(*path);
}

void WalkAt(const json& v, FieldPath path, FieldSet* out) { Walk(v, &path, out); }

bool IsPrefix(const FieldPath& a, const FieldPath& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

bool Overlaps(const FieldPath& a, const FieldPath& b) { return IsPrefix(a, b) || IsPrefix(b, a); }

const json* ValueAt(const json& obj, const FieldPath& p) {
  const json* cur = &obj;
  for (const auto& k : p) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(k);
    if (it == cur->end() || it->is_null()) return nullptr;
    cur = &*it;
  }
  return cur;
}

void EraseAt(json* obj, const FieldPath& p) {
  json* cur = obj;
  for (size_t i = 0; i + 1 < p.size(); ++i) {
    if (!cur->is_object() || !cur->contains(p[i])) return;
    cur = &(*cur)[p[i]];
  }
  if (cur->is_object() && !p.empty()) cur->erase(p.back());
}

// Sets every non-null field of `config` in `target`: maps merge, lists and scalars replace.
void MergeInto(json* target, const json& config, FieldPath* path) {
  for (auto it = config.begin(); it != config.end(); ++it) {
    if (it.value().is_null() || !Owned(*path, it.key())) continue;
    json& t = (*target)[it.key()];
    if (it.value().is_object() && t.is_object() && !it.value().empty()) {
      path->push_back(it.key());
      MergeInto(&t, it.value(), path);
      path->pop_back();
    } else {
      t = it.value();
    }
  }
}

// Fields whose value differs between `a` and `b` (set in b), and fields of `a` that `b` no longer has.
void Diff(const json& a, const json& b, FieldPath* path, FieldSet* changed, FieldSet* removed) {
  for (auto it = b.begin(); it != b.end(); ++it) {
    if (it.value().is_null() || !Owned(*path, it.key())) continue;
    auto ai = a.find(it.key());
    path->push_back(it.key());
    if (ai == a.end() || ai->is_null()) {
      Walk(it.value(), path, changed);
    } else if (ai->is_object() && it.value().is_object() && !ai->empty() && !it.value().empty()) {
      Diff(*ai, it.value(), path, changed, removed);
    } else if (*ai != it.value()) {
      Walk(it.value(), path, changed);
      FieldSet old;
      Walk(*ai, path, &old);
      for (const auto& f : old) {
        if (!changed->count(f)) removed->insert(f);
      }
    }
    path->pop_back();
  }
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (it.value().is_null() || !Owned(*path, it.key())) continue;
    auto bi = b.find(it.key());
    if (bi != b.end() && !bi->is_null()) continue;
    path->push_back(it.key());
    Walk(it.value(), path, removed);
    path->pop_back();
  }
}

ManagedEntry* EntryFor(std::vector<ManagedEntry>* entries, const std::string& manager, const std::string& op) {
  for (auto& e : *entries) {
    if (e.manager == manager && e.operation == op) return &e;
  }
  entries->push_back({manager, op, "", {}});
  return &entries->back();
}

void DropOverlapping(FieldSet* fields, const FieldPath& p) {
  for (auto it = fields->begin(); it != fields->end();) {
    it = Overlaps(*it, p) ? fields->erase(it) : std::next(it);
  }
}

bool AnyOverlaps(const FieldSet& fields, const FieldPath& p) {
  return std::any_of(fields.begin(), fields.end(), [&](const FieldPath& f) { return Overlaps(f, p); });
}

}  // namespace

std::string FieldPathString(const FieldPath& p) {
  std::string s;
  for (const auto& k : p) s += "." + k;
  return s;
}

FieldSet FieldsOf(const json& obj) {
  FieldSet out;
  if (obj.is_object()) WalkAt(obj, {}, &out);
  return out;
}

json ToFieldsV1(const FieldSet& fields) {
  json root = json::object();
  for (const auto& p : fields) {
    json* cur = &root;
    for (const auto& k : p) cur = &(*cur)["f:" + k];
    if (cur->is_null()) *cur = json::object();
  }
  return root;
}

namespace {
void ReadFieldsV1(const json& v, FieldPath* path, FieldSet* out) {
  bool any = false;
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.key().rfind("f:", 0) != 0) continue;  // "k:"/"v:"/"." (associative lists) are not used here
      any = true;
      path->push_back(it.key().substr(2));
      ReadFieldsV1(it.value(), path, out);
      path->pop_back();
    }
  }
  if (!any && !path->empty()) out->insert(*path);
}
}  // namespace

FieldSet FromFieldsV1(const json& v1) {
  FieldSet out;
  FieldPath p;
  ReadFieldsV1(v1, &p, &out);
  return out;
}

std::vector<ManagedEntry> ManagedEntriesOf(const json& obj) {
  std::vector<ManagedEntry> out;
  const json* mf = ValueAt(obj, {"metadata", "managedFields"});
  if (mf == nullptr || !mf->is_array()) return out;
  for (const auto& e : *mf) {
    if (!e.is_object()) continue;
    ManagedEntry m;
    m.manager = e.value("manager", "");
    m.operation = e.value("operation", "Update");
    m.time = e.value("time", "");
    if (e.contains("fieldsV1")) m.fields = FromFieldsV1(e["fieldsV1"]);
    if (!m.fields.empty()) out.push_back(std::move(m));
  }
  return out;
}

void SetManagedEntries(json* obj, const std::vector<ManagedEntry>& entries) {
  json arr = json::array();
  for (const auto& e : entries) {
    if (e.fields.empty()) continue;
    json j = {{"manager", e.manager},       {"operation", e.operation}, {"apiVersion", kApiVersion},
              {"fieldsType", "FieldsV1"},   {"fieldsV1", ToFieldsV1(e.fields)}};
    if (!e.time.empty()) j["time"] = e.time;
    arr.push_back(std::move(j));
  }
  if (!obj->contains("metadata") || !(*obj)["metadata"].is_object()) (*obj)["metadata"] = json::object();
  if (arr.empty()) {
    (*obj)["metadata"].erase("managedFields");
  } else {
    (*obj)["metadata"]["managedFields"] = std::move(arr);
  }
}

json RecordUpdate(const json* before, json after, const std::string& manager, const std::string& now) {
  FieldSet changed, removed;
  std::vector<ManagedEntry> entries;
  if (before == nullptr) {
    changed = FieldsOf(after);
  } else {
    FieldPath p;
    Diff(*before, after, &p, &changed, &removed);
    if (changed.empty() && removed.empty()) {
      const json* mf = ValueAt(*before, {"metadata", "managedFields"});
      if (mf != nullptr) {
        after["metadata"]["managedFields"] = *mf;
      } else if (after.contains("metadata") && after["metadata"].is_object()) {
        after["metadata"].erase("managedFields");
      }
      return after;
    }
    entries = ManagedEntriesOf(*before);
  }
  for (const auto& r : removed) {
    for (auto& e : entries) DropOverlapping(&e.fields, r);
  }
  for (const auto& c : changed) {
    for (auto& e : entries) {
      if (!(e.manager == manager && e.operation == "Update")) DropOverlapping(&e.fields, c);
    }
  }
  if (!changed.empty()) {
    ManagedEntry* mine = EntryFor(&entries, manager, "Update");
    mine->fields.insert(changed.begin(), changed.end());
    mine->time = now;
  }
  SetManagedEntries(&after, entries);
  return after;
}

StatusOr<json> ServerSideApply(const json* live, const json& config, const std::string& manager, bool force,
                               const std::string& now) {
  if (!config.is_object()) return BadRequest("an apply configuration must be a YAML or JSON object");
  FieldSet mine = FieldsOf(config);
  std::vector<ManagedEntry> entries = live ? ManagedEntriesOf(*live) : std::vector<ManagedEntry>{};
  json merged = json::object();
  if (live != nullptr) {
    merged = *live;
  } else {
    // A create: the identity comes from the configuration.
    for (const char* k : {"apiVersion", "kind"}) {
      if (config.contains(k)) merged[k] = config[k];
    }
    merged["metadata"] = json::object();
    if (config.contains("metadata") && config["metadata"].is_object()) {
      for (const char* k : {"name", "generateName", "namespace"}) {
        if (config["metadata"].contains(k)) merged["metadata"][k] = config["metadata"][k];
      }
    }
  }

  // Conflicts: a field another manager owns, which this configuration would set to a different value.
  struct Conflict {
    FieldPath field;
    std::string manager, operation;
  };
  std::vector<Conflict> conflicts;
  std::vector<std::pair<ManagedEntry*, FieldPath>> taken;
  for (auto& e : entries) {
    if (e.manager == manager && e.operation == "Apply") continue;
    for (const auto& f : e.fields) {
      for (const auto& c : mine) {
        if (!Overlaps(c, f)) continue;
        const json* have = live ? ValueAt(*live, c) : nullptr;
        const json* want = ValueAt(config, c);
        if (have != nullptr && want != nullptr && *have == *want) continue;  // same value: owned together
        conflicts.push_back({c, e.manager, e.operation});
        taken.emplace_back(&e, f);
      }
    }
  }
  if (!conflicts.empty() && !force) {
    std::string msg = "Apply failed with " + std::to_string(conflicts.size()) +
                      (conflicts.size() == 1 ? " conflict:" : " conflicts:");
    std::vector<FieldCause> causes;
    for (size_t i = 0; i < conflicts.size(); ++i) {
      const auto& c = conflicts[i];
      std::string who = "conflict with \"" + c.manager + "\"" + (c.operation == "Apply" ? "" : " using " +
                                                                  std::string(kApiVersion));
      msg += (i ? "; " : " ") + who + ": " + FieldPathString(c.field);
      causes.push_back({FieldPathString(c.field), who, "FieldManagerConflict"});
    }
    msg += " (apply again with force to take these fields over, or leave them out of the configuration)";
    return Status(Code::kConflict, msg, causes);
  }
  for (auto& [e, f] : taken) e->fields.erase(f);

  // Fields this manager applied before and no longer sends go, unless another manager owns them too.
  ManagedEntry* entry = EntryFor(&entries, manager, "Apply");
  for (const auto& f : entry->fields) {
    if (AnyOverlaps(mine, f)) continue;
    bool shared = std::any_of(entries.begin(), entries.end(), [&](const ManagedEntry& o) {
      return &o != entry && AnyOverlaps(o.fields, f);
    });
    if (!shared) EraseAt(&merged, f);
  }
  FieldPath root;
  MergeInto(&merged, config, &root);
  entry->fields = mine;
  entry->time = now;
  SetManagedEntries(&merged, entries);
  return merged;
}

}  // namespace stratus
