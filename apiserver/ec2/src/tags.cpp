// Tags: CreateTags, DeleteTags, DescribeTags, and the tags every Describe shows and filters on. A resource's tags
// live on its object, as the annotation ec2.stratus.io/tags (a JSON object of key -> value): EC2's keys and values
// (up to 128 and 256 characters of any text) do not fit Kubernetes label syntax. `Name` is the object's name unless
// a Name tag was set.
#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/base64.h"
#include "stratus/core/object.h"

namespace stratus::ec2::actions {
namespace {

constexpr size_t kMaxTags = 50;

struct Kind {
  const char* prefix;
  const char* plural;
  const char* type;       // DescribeTags' resource-type
  const char* not_found;  // EC2's error code for an id that names nothing
};

const std::vector<Kind>& Kinds() {
  static const std::vector<Kind> k = {
      {"i", "instances", "instance", "InvalidInstanceID.NotFound"},
      {"vol", "volumes", "volume", "InvalidVolume.NotFound"},
      {"snap", "volumesnapshots", "snapshot", "InvalidSnapshot.NotFound"},
      {"ami", "images", "image", "InvalidAMIID.NotFound"},
      {"aki", "images", "image", "InvalidAMIID.NotFound"},
      {"ari", "images", "image", "InvalidAMIID.NotFound"},
      {"sg", "securitygroups", "security-group", "InvalidGroup.NotFound"},
      {"key", "keypairs", "key-pair", "InvalidKeyPair.NotFound"},
      {"subnet", "networks", "subnet", "InvalidSubnetID.NotFound"},
      {"eipalloc", "addresses", "elastic-ip", "InvalidAllocationID.NotFound"},
  };
  return k;
}

const Kind* KindOfId(const std::string& id) {
  static const std::regex kId("([a-z]+)-[0-9a-f]{8,17}");
  std::smatch m;
  if (!std::regex_match(id, m, kId)) return nullptr;
  for (const auto& k : Kinds()) {
    if (m[1] == k.prefix) return &k;
  }
  return nullptr;
}

std::optional<Error> CheckTag(const std::string& key, const std::string& value) {
  if (key.empty()) return InvalidParameterValue("Tag keys must not be empty");
  if (key.size() > 128) return InvalidParameterValue("Tag key exceeds the maximum length of 128 characters");
  if (value.size() > 256) return InvalidParameterValue("Tag value exceeds the maximum length of 256 characters");
  if (key.rfind("aws:", 0) == 0) return InvalidParameterValue("Tag keys starting with 'aws:' are reserved for internal use");
  try {
    (void)json(key).dump();
    (void)json(value).dump();
  } catch (const std::exception&) {
    return InvalidParameterValue("Tag keys and values must be UTF-8 text");
  }
  return std::nullopt;
}

// Tag.N.Key / Tag.N.Value: keys with their values (nullopt when Value is absent: DeleteTags then deletes any value).
std::optional<Error> TagParams(const Params& p, std::vector<std::pair<std::string, std::optional<std::string>>>* out) {
  std::set<int> indices;
  static const std::regex kMember("Tag\\.([1-9][0-9]{0,3})\\.(Key|Value)");
  for (const auto& [name, v] : p.all()) {
    std::smatch m;
    if (std::regex_match(name, m, kMember)) {
      indices.insert(std::stoi(m[1]));
    } else if (name.rfind("Tag.", 0) == 0) {
      return InvalidParameterValue("Invalid parameter " + name + " (Tag.N.Key and Tag.N.Value)");
    }
  }
  for (int n : indices) {
    std::string base = "Tag." + std::to_string(n);
    auto key = p.Get(base + ".Key");
    if (!key) return MissingParameter(base + ".Key");
    out->emplace_back(*key, p.Get(base + ".Value"));
  }
  return std::nullopt;
}

// The objects EC2 ids name, resolved in the caller's namespace: one list per kind.
struct Resolved {
  const Kind* kind;
  json obj;
};
std::optional<Error> Resolve(ApiClient* api, const Call& c, const std::vector<std::string>& ids,
                             std::vector<Resolved>* out) {
  std::map<std::string, json> lists;  // plural -> list
  for (const auto& id : ids) {
    const Kind* k = KindOfId(id);
    if (!k) return Error{"InvalidID", "The ID '" + id + "' is not valid", 400};
    if (!lists.count(k->plural)) {
      auto l = api->List(k->plural, c.caller->ns, {});
      if (!l.ok() && l.status().code() != Code::kNotFound) return FromStatus(l.status());
      lists[k->plural] = l.ok() ? *l : json{{"items", json::array()}};
    }
    const json* found = nullptr;
    for (const auto& o : lists[k->plural]["items"]) {
      if (Ec2IdOf(o) == id) found = &o;
    }
    if (!found) return Error{k->not_found, "The ID '" + id + "' does not exist", 400};
    out->push_back({k, *found});
  }
  return std::nullopt;
}

// The caller may `verb` each resource's kind (the same RoleBindings as the main API).
std::optional<Error> MayAll(const ApiOptions& o, const Call& c, const std::vector<Resolved>& rs, const char* verb) {
  if (!o.authorize) return std::nullopt;
  std::set<std::string> checked;
  for (const auto& r : rs) {
    if (!checked.insert(r.kind->plural).second) continue;
    Status s = o.authorize(*c.caller, verb, r.kind->plural);
    if (!s.ok()) {
      return Error{"UnauthorizedOperation", "You are not authorized to perform this operation. " + s.message(), 403};
    }
  }
  return std::nullopt;
}

// Writes `edit`ed tags onto the object, pinned to the version read; re-reads and retries on a conflict.
std::optional<Error> EditTags(ApiClient* api, const Call& c, const Resolved& r,
                              const std::function<void(Tags*)>& edit) {
  json obj = r.obj;
  for (int attempt = 0; attempt < 5; ++attempt) {
    Tags stored = StoredTags(obj);
    edit(&stored);
    if (stored.size() > kMaxTags) {
      return Error{"TagLimitExceeded", "The maximum number of tags (50) for resource " + Ec2IdOf(obj) + " has been reached.", 400};
    }
    json md = {{"resourceVersion", Str(obj, "metadata", "resourceVersion")}};
    md["annotations"][kTagsAnnotation] = stored.empty() ? json(nullptr) : json(json(stored).dump());
    auto p = api->Patch(r.kind->plural, c.caller->ns, Name(obj), {{"metadata", md}});
    if (p.ok()) return std::nullopt;
    if (p.status().code() != Code::kConflict) return FromStatus(p.status());
    auto again = api->Get(r.kind->plural, c.caller->ns, Name(obj));
    if (!again.ok()) return Error{r.kind->not_found, "The ID '" + Ec2IdOf(obj) + "' does not exist", 400};
    obj = *again;
  }
  return Error{"IncorrectState", "the resource kept changing; try again", 400};
}

}  // namespace

Tags StoredTags(const json& obj) {
  Tags out;
  if (!obj.contains("metadata") || !obj["metadata"].contains("annotations")) return out;
  const json& a = obj["metadata"]["annotations"];
  if (!a.is_object() || !a.contains(kTagsAnnotation) || !a[kTagsAnnotation].is_string()) return out;
  json parsed = json::parse(a[kTagsAnnotation].get<std::string>(), nullptr, false);
  if (!parsed.is_object()) return out;
  for (const auto& [k, v] : parsed.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

Tags TagsOf(const json& obj) {
  Tags t = StoredTags(obj);
  if (!t.count("Name") && !Name(obj).empty()) t["Name"] = Name(obj);
  return t;
}

void AddTagSet(pugi::xml_node item, const json& obj) {
  auto set = AddSet(item, "tagSet");
  for (const auto& [k, v] : TagsOf(obj)) {
    auto t = AddItem(set);
    AddText(t, "key", k);
    AddText(t, "value", v);
  }
}

bool IsTagFilter(const std::string& name) {
  return name == "tag-key" || name == "tag-value" || (name.rfind("tag:", 0) == 0 && name.size() > 4);
}

bool TagFilterMatches(const Filter& f, const json& obj) {
  Tags t = TagsOf(obj);
  for (const auto& [k, v] : t) {
    if (f.name == "tag-key" && AnyMatch(f.values, k)) return true;
    if (f.name == "tag-value" && AnyMatch(f.values, v)) return true;
    if (f.name.rfind("tag:", 0) == 0 && f.name.substr(4) == k && AnyMatch(f.values, v)) return true;
  }
  return false;
}

std::optional<Error> SpecTags(const Params& p, const std::set<std::string>& allowed, const std::string& type, Tags* out) {
  static const std::regex kMember("TagSpecification\\.([1-9][0-9]{0,2})\\.(ResourceType|Tag\\.([1-9][0-9]{0,2})\\.(Key|Value))");
  std::set<int> specs;
  for (const auto& [name, v] : p.all()) {
    if (name.rfind("TagSpecification.", 0) != 0) continue;
    std::smatch m;
    if (!std::regex_match(name, m, kMember)) return InvalidParameterValue("Invalid parameter " + name);
    specs.insert(std::stoi(m[1]));
  }
  std::set<std::string> types_seen;
  for (int n : specs) {
    std::string base = "TagSpecification." + std::to_string(n);
    auto rt = p.Get(base + ".ResourceType");
    if (!rt) return MissingParameter(base + ".ResourceType");
    if (!allowed.count(*rt)) {
      return InvalidParameterValue("'" + *rt + "' is not a valid taggable resource type for this operation.");
    }
    if (!types_seen.insert(*rt).second) {
      return InvalidParameterValue("The same resource type may not be specified more than once in tag specifications");
    }
    for (int m = 1; m <= 100; ++m) {
      auto k = p.Get(base + ".Tag." + std::to_string(m) + ".Key");
      auto v = p.Get(base + ".Tag." + std::to_string(m) + ".Value");
      if (!k && !v) continue;
      if (!k) return MissingParameter(base + ".Tag." + std::to_string(m) + ".Key");
      if (auto e = CheckTag(*k, v.value_or(""))) return e;
      if (*rt == type) (*out)[*k] = v.value_or("");
    }
  }
  if (out->size() > kMaxTags) return Error{"TagLimitExceeded", "at most 50 tags per resource", 400};
  return std::nullopt;
}

void PutTags(json* metadata, const Tags& tags) {
  if (tags.empty()) return;
  (*metadata)["annotations"][kTagsAnnotation] = json(tags).dump();
}

std::string NameFromTags(const Tags& tags, bool single) {
  auto it = tags.find("Name");
  if (!single || it == tags.end() || !ValidateDns1123Label(it->second, "Name").ok()) return "";
  return it->second;
}

std::optional<Error> CreateTags(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> ids;
  Error e;
  if (!c.params.List("ResourceId", &ids, &e)) return e;
  if (ids.empty()) return MissingParameter("ResourceId");
  if (ids.size() > 1000) return InvalidParameterValue("at most 1000 resources per call");
  std::vector<std::pair<std::string, std::optional<std::string>>> tags;
  if (auto err = TagParams(c.params, &tags)) return err;
  if (tags.empty()) return MissingParameter("Tag");
  for (const auto& [k, v] : tags) {
    if (auto err = CheckTag(k, v.value_or(""))) return err;
  }
  std::vector<Resolved> rs;
  if (auto err = Resolve(api, c, ids, &rs)) return err;
  if (auto err = MayAll(o, c, rs, "patch")) return err;
  if (c.dry_run) return Error{"DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412};
  for (const auto& res : rs) {
    auto err = EditTags(api, c, res, [&](Tags* t) {
      for (const auto& [k, v] : tags) (*t)[k] = v.value_or("");
    });
    if (err) return err;
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

std::optional<Error> DeleteTags(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<std::string> ids;
  Error e;
  if (!c.params.List("ResourceId", &ids, &e)) return e;
  if (ids.empty()) return MissingParameter("ResourceId");
  if (ids.size() > 1000) return InvalidParameterValue("at most 1000 resources per call");
  std::vector<std::pair<std::string, std::optional<std::string>>> tags;
  if (auto err = TagParams(c.params, &tags)) return err;
  std::vector<Resolved> rs;
  if (auto err = Resolve(api, c, ids, &rs)) return err;
  if (auto err = MayAll(o, c, rs, "patch")) return err;
  if (c.dry_run) return Error{"DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412};
  for (const auto& res : rs) {
    auto err = EditTags(api, c, res, [&](Tags* t) {
      if (tags.empty()) {  // no Tag: every tag of the resource
        t->clear();
        return;
      }
      for (const auto& [k, v] : tags) {
        auto it = t->find(k);
        if (it != t->end() && (!v || *v == it->second)) t->erase(it);  // a Value deletes only that value
      }
    });
    if (err) return err;
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

// Every tag of the caller's resources (of the kinds the caller may list), in (resource id, key) order, filtered by
// key, value, resource-id and resource-type; MaxResults/NextToken pages.
std::optional<Error> DescribeTags(Api*, ApiClient* api, const ApiOptions& o, const Call& c, Response* r) {
  std::vector<Filter> filters;
  Error e;
  if (!c.params.Filters(&filters, &e)) return e;
  for (const auto& f : filters) {
    if (f.name != "key" && f.name != "value" && f.name != "resource-id" && f.name != "resource-type") {
      return InvalidParameterValue("The filter '" + f.name + "' is invalid");
    }
  }
  long long max_results = 0;
  if (c.params.Has("MaxResults") && !c.params.Int("MaxResults", 1000, 5, 1000, &max_results, &e)) return e;
  std::string after;
  if (auto token = c.params.Get("NextToken"); token && !token->empty()) {
    auto decoded = Base64Decode(*token);
    if (!decoded || decoded->find('\n') == std::string::npos) return InvalidParameterValue("Invalid NextToken");
    after = *decoded;
  }
  struct Row {
    std::string id, type, key, value;
  };
  std::map<std::string, Row> rows;  // "id\nkey" -> row
  std::set<std::string> listed;
  for (const auto& k : Kinds()) {
    if (!listed.insert(k.plural).second) continue;
    if (o.authorize && !o.authorize(*c.caller, "list", k.plural).ok()) continue;  // kinds the caller cannot see
    auto l = api->List(k.plural, c.caller->ns, {});
    if (!l.ok()) {
      if (l.status().code() == Code::kNotFound) continue;
      return FromStatus(l.status());
    }
    for (const auto& obj : (*l)["items"]) {
      std::string id = Ec2IdOf(obj);
      const Kind* kind = KindOfId(id);
      if (!kind) continue;
      for (const auto& [key, value] : TagsOf(obj)) rows[id + "\n" + key] = {id, kind->type, key, value};
    }
  }
  auto set = AddSet(r->root(), "tagSet");
  long long shown = 0;
  std::string last;
  for (const auto& [order, row] : rows) {
    if (!after.empty() && order <= after) continue;
    bool match = true;
    for (const auto& f : filters) {
      const std::string& v = f.name == "key" ? row.key : f.name == "value" ? row.value
                           : f.name == "resource-id" ? row.id : row.type;
      match = match && AnyMatch(f.values, v);
    }
    if (!match) continue;
    if (max_results > 0 && shown == max_results) {
      AddText(r->root(), "nextToken", Base64Encode(last));
      break;
    }
    ++shown;
    last = order;
    auto item = AddItem(set);
    AddText(item, "resourceId", row.id);
    AddText(item, "resourceType", row.type);
    AddText(item, "key", row.key);
    AddText(item, "value", row.value);
  }
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
