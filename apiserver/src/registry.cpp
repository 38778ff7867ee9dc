#include "stratus/apiserver/registry.h"

#include <cpprest/asyncrt_utils.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <random>
#include <set>

#include "stratus/apiserver/admission.h"
#include "stratus/apiserver/managed_fields.h"
#include "stratus/core/base64.h"
#include "stratus/core/merge.h"
#include "stratus/core/object.h"
#include "stratus/core/selector.h"
#include "stratus/ec2/ids.h"
#include "stratus/ec2/keys.h"

namespace stratus {
namespace {

constexpr int kMaxConflictRetries = 16;

std::string Describe(const ResourceInfo& r, const std::string& name) { return r.plural + " \"" + name + "\""; }

std::string RandomSuffix() {
  static const char kChars[] = "bcdfghjklmnpqrstvwxz2456789";
  static thread_local std::mt19937 rng(std::random_device{}());
  std::string s;
  for (int i = 0; i < 5; ++i) s += kChars[rng() % (sizeof(kChars) - 1)];
  return s;
}

std::string ManagerName(const std::string& m) { return m.empty() ? "unknown" : m; }

// The part whose change bumps metadata.generation: spec, or for kinds without spec everything but metadata/status.
json GenerationView(const json& obj) {
  if (obj.contains("spec")) return obj["spec"];
  json v = obj;
  v.erase("metadata");
  v.erase("status");
  return v;
}

bool HasFinalizers(const json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return false;
  auto f = m->find("finalizers");
  return f != m->end() && f->is_array() && !f->empty();
}

bool IsDeleting(const json& obj) { return !MetaString(obj, "deletionTimestamp").empty(); }

// A Secret's stringData goes into data, base64-encoded (as Kubernetes does): what is stored has data only.
void FoldStringData(const ResourceInfo& r, json& obj) {
  if (r.kind != "Secret" || !obj.contains("stringData")) return;
  if (obj["stringData"].is_object()) {
    if (!obj.contains("data") || !obj["data"].is_object()) obj["data"] = json::object();
    for (auto it = obj["stringData"].begin(); it != obj["stringData"].end(); ++it) {
      if (it.value().is_string()) obj["data"][it.key()] = Base64Encode(it.value().get<std::string>());
    }
    obj.erase("stringData");
  }  // else the schema names the problem
}

}  // namespace

std::string EncodeContinue(const std::string& last_name) {
  std::vector<unsigned char> bytes(last_name.begin(), last_name.end());
  return utility::conversions::to_base64(bytes);
}

StatusOr<std::string> DecodeContinue(const std::string& token) {
  try {
    auto bytes = utility::conversions::from_base64(token);
    std::string s(bytes.begin(), bytes.end());
    if (s.find('/') == std::string::npos) return BadRequest("continue: not a token this server issued");
    return s;
  } catch (...) {
    return BadRequest("continue: not a token this server issued");
  }
}

Registry::Registry(Store* store, const SchemaRegistry* schemas)
    : store_(store), quotas_(std::make_unique<Quotas>(store, QuotaAmounts{})), schemas_(schemas) {}

Registry::~Registry() { StopBackground(); }

Status Registry::ValidateObject(const ResourceInfo& r, const json& obj) const {
  // The schema checks everything, labels included, and writes the message with every cause.
  return schemas_->Validate(r.kind, obj);
}

void Registry::AddValidator(const std::string& kind, Validator v) { validators_[kind].push_back(std::move(v)); }
void Registry::AddUpdateValidator(const std::string& kind, UpdateValidator v) {
  update_validators_[kind].push_back(std::move(v));
}

Status Registry::RunValidators(const ResourceInfo& r, const json& obj) const {
  auto it = validators_.find(r.kind);
  if (it == validators_.end()) return Status::Ok();
  for (const auto& v : it->second) {
    Status s = v(obj);
    if (!s.ok()) {
      if (s.code() != Code::kInvalid) return s;
      return InvalidError(r.kind + ".stratus.io \"" + MetaString(obj, "name") + "\" is invalid: " + s.message(),
                          s.causes());
    }
  }
  return Status::Ok();
}

Status Registry::CheckNamespace(const ResourceInfo& r, const std::string& ns) const {
  if (!r.namespaced) return Status::Ok();
  auto n = store_->Get({"namespaces", "", ns});
  if (!n.ok()) return NotFound("namespaces \"" + ns + "\" not found");
  if (IsDeleting(**n)) {
    return Status(Code::kForbidden, Describe(r, "") + " cannot be created in namespace \"" + ns +
                                        "\" because it is being terminated");
  }
  return Status::Ok();
}

StatusOr<json> Registry::PrepareCreate(const ResourceInfo& r, const std::string& ns, json obj,
                                       const std::optional<std::string>& manager) const {
  if (!obj.is_object()) return BadRequest("the request body must be a JSON or YAML object");
  std::string kind = obj.value("kind", "");
  if (obj.contains("kind") && kind != r.kind) {
    return BadRequest("the kind in the body (" + (obj["kind"].is_string() ? kind : obj["kind"].dump()) +
                      ") does not match the resource in the path (" + r.plural + ")");
  }
  if (obj.contains("apiVersion") && obj["apiVersion"] != kApiVersion) {
    return BadRequest("apiVersion " + obj["apiVersion"].dump() + " is not served here; use " + kApiVersion);
  }
  obj["apiVersion"] = kApiVersion;
  obj["kind"] = r.kind;
  if (!obj.contains("metadata") || obj["metadata"].is_null()) obj["metadata"] = json::object();
  if (!obj["metadata"].is_object()) {
    return InvalidError("metadata: must be an object", {{"metadata", "must be an object", "FieldValueTypeInvalid"}});
  }
  json& md = obj["metadata"];
  if (r.namespaced) {
    if (md.contains("namespace") && md["namespace"].is_string() && !md["namespace"].get<std::string>().empty() &&
        md["namespace"] != ns) {
      return BadRequest("the namespace of the provided object (" + md["namespace"].get<std::string>() +
                        ") does not match the namespace sent on the request (" + ns + ")");
    }
    md["namespace"] = ns;
  } else {
    md.erase("namespace");
  }
  if ((!md.contains("name") || md["name"] == "") && md.contains("generateName") && md["generateName"].is_string()) {
    md["name"] = md["generateName"].get<std::string>() + RandomSuffix();
  }
  for (const char* f : {"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"}) md.erase(f);
  md["uid"] = NewUuid();
  md["creationTimestamp"] = NowRfc3339();
  md["generation"] = 1;
  if (r.has_status) obj.erase("status");
  FoldStringData(r, obj);
  if (manager) {
    md.erase("managedFields");
    std::string now = md["creationTimestamp"];
    obj = RecordUpdate(nullptr, std::move(obj), ManagerName(*manager), now);
  }
  json& md2 = obj["metadata"];
  if (std::string id = ec2::Ec2IdOf(obj); !id.empty()) {
    // Recorded once, from the uid: what EC2 tools call this object (`-l ec2.stratus.io/id=i-...` finds it).
    if (!md2.contains("labels") || md2["labels"].is_null()) md2["labels"] = json::object();
    if (md2["labels"].is_object()) md2["labels"][ec2::kIdLabel] = id;  // else the schema names the problem
  }
  if (r.kind == "Namespace") obj["status"] = {{"phase", "Active"}};
  if (r.kind == "AccessKey") {
    // The server picks the id (from the uid: a new object is a new key); the secret is never stored.
    obj.erase("status");
    if (obj.contains("spec") && obj["spec"].is_object()) obj["spec"]["accessKeyId"] = ec2::AccessKeyIdFor(md2["uid"]);
  }
  if (r.kind == "Token") {
    // The API server makes the secret and sets its hash (server.cpp); the token itself is never stored.
    obj.erase("status");
    if (!obj.contains("spec") || !obj["spec"].is_object() || !obj["spec"].contains("tokenHash")) {
      return InvalidError("spec.tokenHash: set by the server when it makes the token",
                          {{"spec.tokenHash", "set by the server when it makes the token", "FieldValueRequired"}});
    }
  }
  schemas_->ApplyDefaults(r.kind, obj);
  Status v = ValidateObject(r, obj);
  if (!v.ok()) return v;
  v = RunValidators(r, obj);
  if (!v.ok()) return v;
  v = AdmitCreate(r, obj, *store_);
  if (!v.ok()) return v;
  Status nss = CheckNamespace(r, ns);
  if (!nss.ok()) return nss;
  return obj;
}

namespace {

// Holds a quota reservation until the write has completed (the store shows the object, or the write failed).
Registry::Done Holding(std::shared_ptr<Quotas::Reservation> held, Registry::Done done) {
  if (!held) return done;
  return [held = std::move(held), done = std::move(done)](StatusOr<StoredObject> res) mutable {
    // Released before `done`: the write has completed (the store shows it, or it failed), and `done` may retry
    // the same object at once after a conflict, whose new reservation must not meet this one ("a write in
    // progress", 16 times over: the 409 "too many concurrent writers" QuotaTest met under load).
    held.reset();
    done(std::move(res));
  };
}

}  // namespace

void Registry::SetDefaultQuota(QuotaAmounts defaults) { quotas_ = std::make_unique<Quotas>(store_, std::move(defaults)); }

void Registry::CreateAsync(const ResourceInfo& r, const std::string& ns, json obj, Done done,
                           const std::string& manager) {
  auto next = PrepareCreate(r, ns, std::move(obj), manager);
  if (!next.ok()) return done(next.status());
  ObjectKey key = KeyOf(r.plural, *next);
  auto held = quotas_->Reserve(r, key, nullptr, *next);
  if (!held.ok()) return done(held.status());
  store_->CreateAsync(key, std::move(*next), Holding(std::move(*held), std::move(done)));
}

StatusOr<json> Registry::Get(const ResourceInfo& r, const std::string& ns, const std::string& name) const {
  auto o = store_->Get({r.plural, r.namespaced ? ns : "", name});
  if (!o.ok()) return NotFound(Describe(r, name) + " not found");
  return **o;
}

StatusOr<EncodedPtr> Registry::GetEncoded(const ResourceInfo& r, const std::string& ns, const std::string& name) const {
  auto o = store_->GetStored({r.plural, r.namespaced ? ns : "", name});
  if (!o.ok()) return NotFound(Describe(r, name) + " not found");
  return o->encoded;
}

StatusOr<StoreListResult> Registry::Query(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const {
  auto ls = LabelSelector::Parse(req.label_selector);
  if (!ls.ok()) return ls.status();
  auto fs = FieldSelector::Parse(req.field_selector);
  if (!fs.ok()) return fs.status();
  if (req.limit < 0) return BadRequest("limit: must be >= 0");
  StoreListOptions o;
  o.plural = r.plural;
  o.ns = r.namespaced ? ns : "";
  o.limit = static_cast<size_t>(req.limit);
  if (!req.continue_token.empty()) {
    auto c = DecodeContinue(req.continue_token);
    if (!c.ok()) return c.status();
    o.after_name = *c;
  }
  LabelSelector lsel = *ls;
  FieldSelector fsel = *fs;
  if (!lsel.empty() || !fsel.empty()) {
    o.filter = [lsel, fsel](const json& obj) {
      const json& md = obj["metadata"];
      static const json kNull;
      const json& labels = md.contains("labels") ? md["labels"] : kNull;
      return lsel.Matches(labels) && fsel.Matches(obj);
    };
  }
  return store_->List(o);
}

namespace {
json ListMeta(const StoreListResult& res) {
  json meta = {{"resourceVersion", std::to_string(res.rv)}};
  if (!res.last_name.empty()) meta["continue"] = EncodeContinue(res.last_name);
  return meta;
}
}  // namespace

StatusOr<json> Registry::List(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const {
  auto res = Query(r, ns, req);
  if (!res.ok()) return res.status();
  json items = json::array();
  for (const auto& p : res->items) items.push_back(*p);
  return json{{"apiVersion", kApiVersion}, {"kind", r.kind + "List"}, {"metadata", ListMeta(*res)}, {"items", items}};
}

StatusOr<std::string> Registry::ListEncoded(const ResourceInfo& r, const std::string& ns,
                                            const ListRequest& req) const {
  auto res = Query(r, ns, req);
  if (!res.ok()) return res.status();
  // The same members in the same order as List's json (nlohmann orders keys), items spliced in as stored.
  std::string head = std::string("{\"apiVersion\":") + json(kApiVersion).dump() + ",\"items\":[";
  std::string tail = "],\"kind\":" + json(r.kind + "List").dump() + ",\"metadata\":" + ListMeta(*res).dump() + "}";
  size_t size = head.size() + tail.size() + res->encoded.size();
  for (const auto& e : res->encoded) size += e->size();
  std::string out;
  out.reserve(size);
  out += head;
  for (size_t i = 0; i < res->encoded.size(); ++i) {
    if (i) out += ',';
    out += *res->encoded[i];
  }
  out += tail;
  return out;
}

StatusOr<json> Registry::PrepareUpdate(const ResourceInfo& r, const ObjectKey& key, const json& cur, json obj,
                                       bool status_only, const std::optional<std::string>& manager) const {
  json next;
  if (status_only) {
    next = cur;
    if (obj.contains("status")) {
      next["status"] = obj["status"];
    } else {
      next.erase("status");
    }
  } else {
    next = std::move(obj);
    next["apiVersion"] = kApiVersion;
    next["kind"] = r.kind;
    if (!next.contains("metadata") || !next["metadata"].is_object()) next["metadata"] = json::object();
    json& md = next["metadata"];
    const json& cmd = cur["metadata"];
    md["name"] = key.name;
    if (r.namespaced) {
      md["namespace"] = key.ns;
    } else {
      md.erase("namespace");
    }
    for (const char* f : {"uid", "creationTimestamp", "deletionTimestamp", "generation"}) {
      if (cmd.contains(f)) {
        md[f] = cmd[f];
      } else {
        md.erase(f);
      }
    }
    if (r.has_status) {
      if (cur.contains("status")) {
        next["status"] = cur["status"];
      } else {
        next.erase("status");
      }
    }
    FoldStringData(r, next);
    schemas_->ApplyDefaults(r.kind, next);
    if (GenerationView(next) != GenerationView(cur)) {
      md["generation"] = cmd.value("generation", int64_t{1}) + 1;
    }
    if (manager) {
      next = RecordUpdate(&cur, std::move(next), ManagerName(*manager), NowRfc3339());
    }
    if (IsDeleting(cur) && next.contains("metadata") && next["metadata"].contains("finalizers")) {
      // A terminating object may lose finalizers but not gain new ones.
      std::set<std::string> had;
      if (cmd.contains("finalizers") && cmd["finalizers"].is_array()) {
        for (const auto& f : cmd["finalizers"]) {
          if (f.is_string()) had.insert(f.get<std::string>());
        }
      }
      if (next["metadata"]["finalizers"].is_array()) {
        for (const auto& f : next["metadata"]["finalizers"]) {
          if (f.is_string() && !had.count(f.get<std::string>())) {
            return InvalidError("metadata.finalizers: Forbidden: no new finalizers can be added if the object is "
                                "being deleted",
                                {{"metadata.finalizers", "no new finalizers can be added if the object is being deleted",
                                  "FieldValueForbidden"}});
          }
        }
      }
    }
  }
  next["metadata"]["resourceVersion"] = cur["metadata"].value("resourceVersion", "");
  Status v = ValidateObject(r, next);
  if (!v.ok()) return v;
  if (!status_only) {
    Status a = AdmitUpdate(r, cur, next, *store_);
    if (!a.ok()) return a;
    if (next.value("spec", json()) != cur.value("spec", json())) {  // metadata-only writes pass as stored
      a = RunValidators(r, next);
      if (!a.ok()) return a;
      if (auto it = update_validators_.find(r.kind); it != update_validators_.end()) {
        for (const auto& uv : it->second) {
          a = uv(cur, next);
          if (!a.ok()) {
            if (a.code() != Code::kInvalid) return a;
            return InvalidError(r.kind + ".stratus.io \"" + MetaString(next, "name") + "\" is invalid: " + a.message(),
                                a.causes());
          }
        }
      }
    }
  }
  return next;
}

void Registry::WritePrepared(const ResourceInfo& r, const ObjectKey& key, const StoredObject& cur, json next,
                             bool status_only, uint64_t expected_rv, Done done) {
  if (next == *cur.object) return done(cur);  // no-op: keep the resourceVersion
  if (IsDeleting(next) && !HasFinalizers(next)) {
    RecordTombstone(next, [this, key, expected_rv, done = std::move(done)]() mutable {
      store_->DeleteAsync(key, expected_rv, [key, done = std::move(done)](StatusOr<StoredObject> d) {
        if (d.ok()) spdlog::debug("object finalized and removed: key={}", key.ToString());
        done(std::move(d));
      });
    });
    return;
  }
  std::shared_ptr<Quotas::Reservation> held;
  if (!status_only) {
    auto reserved = quotas_->Reserve(r, key, cur.object.get(), next);
    if (!reserved.ok()) return done(reserved.status());
    held = std::move(*reserved);
  }
  store_->UpdateAsync(key, std::move(next), expected_rv, Holding(std::move(held), std::move(done)));
}

namespace {

Status ModifiedConflict(const ResourceInfo& r, const std::string& name) {
  return Status(Code::kConflict, "Operation cannot be fulfilled on " + Describe(r, name) +
                                     ": the object has been modified; please apply your changes to the latest "
                                     "version and try again");
}

Status TooManyWriters(const ResourceInfo& r, const std::string& name) {
  return Status(Code::kConflict, "too many concurrent writers on " + Describe(r, name));
}

}  // namespace

void Registry::UpdateAsync(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
                           bool status_only, Done done, const std::string& manager) {
  if (!obj.is_object()) return done(BadRequest("the request body must be a JSON or YAML object"));
  if (obj.contains("kind") && obj["kind"] != r.kind) {
    return done(BadRequest("the kind in the body (" + obj["kind"].dump() +
                           ") does not match the resource in the path (" + r.plural + ")"));
  }
  std::string body_name = MetaString(obj, "name");
  if (!body_name.empty() && body_name != name) {
    return done(
        BadRequest("the name of the object (" + body_name + ") does not match the name on the URL (" + name + ")"));
  }
  std::string body_ns = MetaString(obj, "namespace");
  if (r.namespaced && !body_ns.empty() && body_ns != ns) {
    return done(BadRequest("the namespace of the object (" + body_ns + ") does not match the namespace on the URL (" +
                           ns + ")"));
  }
  std::string rv_text = MetaString(obj, "resourceVersion");
  uint64_t pinned = ResourceVersionOf(obj);
  if (!rv_text.empty() && pinned == 0) {
    return done(InvalidError("metadata.resourceVersion: Invalid value: \"" + rv_text + "\": must be a positive integer",
                             {{"metadata.resourceVersion", "must be a positive integer"}}));
  }
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  UpdateAttempt(&r, std::move(key), std::make_shared<const json>(std::move(obj)), status_only, pinned, manager, 0,
                std::move(done));
}

void Registry::UpdateAttempt(const ResourceInfo* r, ObjectKey key, std::shared_ptr<const json> obj, bool status_only,
                             uint64_t pinned, std::string manager, int attempt, Done done) {
  if (attempt >= kMaxConflictRetries) return done(TooManyWriters(*r, key.name));
  auto cur = store_->GetStored(key);
  if (!cur.ok()) return done(NotFound(Describe(*r, key.name) + " not found"));
  uint64_t cur_rv = ResourceVersionOf(*cur->object);
  if (pinned && pinned != cur_rv) return done(ModifiedConflict(*r, key.name));
  auto next = PrepareUpdate(*r, key, *cur->object, *obj, status_only, manager);
  if (!next.ok()) return done(next.status());
  WritePrepared(*r, key, *cur, std::move(*next), status_only, cur_rv,
                [this, r, key, obj, status_only, pinned, manager, attempt, done](StatusOr<StoredObject> res) {
                  if (!res.ok() && res.status().code() == Code::kConflict && !pinned) {
                    return UpdateAttempt(r, key, obj, status_only, pinned, manager, attempt + 1, done);
                  }
                  done(std::move(res));
                });
}

void Registry::PatchAsync(const ResourceInfo& r, const std::string& ns, const std::string& name, json patch,
                          bool status_only, bool json_patch, Done done, const std::string& manager) {
  if (!json_patch && !patch.is_object()) return done(BadRequest("a merge patch must be a JSON object"));
  if (json_patch && !patch.is_array()) return done(BadRequest("a JSON patch must be an array of operations"));
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  PatchAttempt(&r, std::move(key), std::make_shared<const json>(std::move(patch)), status_only, json_patch, manager,
               0, std::move(done));
}

StatusOr<json> Registry::Patched(const ResourceInfo& r, const ObjectKey& key, const json& curobj, const json& patch,
                                 bool json_patch, bool* pins) const {
  json patched;
  if (json_patch) {
    try {
      patched = curobj.patch(patch);
    } catch (const std::exception& e) {
      return Status(Code::kInvalid, std::string("the JSON patch could not be applied: ") + e.what());
    }
  } else {
    patched = ApplyMergePatch(curobj, patch);
  }
  if (!patched.is_object()) return BadRequest("the patched object is not an object");
  std::string rv_text = MetaString(patched, "resourceVersion");
  *pins = rv_text != curobj.at("metadata").value("resourceVersion", "");
  if (*pins && ResourceVersionOf(patched) != ResourceVersionOf(curobj)) return ModifiedConflict(r, key.name);
  if (MetaString(patched, "name") != key.name) return BadRequest("metadata.name cannot be changed by a patch");
  return patched;
}

StatusOr<json> Registry::DryRunCreate(const ResourceInfo& r, const std::string& ns, json obj,
                                      const std::string& manager) const {
  return PrepareCreate(r, ns, std::move(obj), manager);
}

StatusOr<json> Registry::DryRunUpdate(const ResourceInfo& r, const std::string& ns, const std::string& name,
                                      const json* obj, const json* patch, bool json_patch, bool status_only,
                                      const std::string& manager) const {
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  auto cur = store_->Get(key);
  if (!cur.ok()) return NotFound(Describe(r, name) + " not found");
  if (obj == nullptr && patch == nullptr) return **cur;  // a delete: what is stored stays as it is
  json next;
  if (patch != nullptr) {
    if (!json_patch && !patch->is_object()) return BadRequest("a merge patch must be a JSON object");
    if (json_patch && !patch->is_array()) return BadRequest("a JSON patch must be an array of operations");
    bool pins = false;
    auto p = Patched(r, key, **cur, *patch, json_patch, &pins);
    if (!p.ok()) return p.status();
    next = std::move(*p);
  } else {
    next = *obj;
  }
  return PrepareUpdate(r, key, **cur, std::move(next), status_only, manager);
}

void Registry::PatchAttempt(const ResourceInfo* r, ObjectKey key, std::shared_ptr<const json> patch,
                            bool status_only, bool json_patch, std::string manager, int attempt, Done done) {
  if (attempt >= kMaxConflictRetries) return done(TooManyWriters(*r, key.name));
  auto cur = store_->GetStored(key);
  if (!cur.ok()) return done(NotFound(Describe(*r, key.name) + " not found"));
  const json& curobj = *cur->object;
  uint64_t cur_rv = ResourceVersionOf(curobj);
  bool pins = false;
  auto patched = Patched(*r, key, curobj, *patch, json_patch, &pins);
  if (!patched.ok()) return done(patched.status());
  auto next = PrepareUpdate(*r, key, curobj, std::move(*patched), status_only, manager);
  if (!next.ok()) return done(next.status());
  WritePrepared(*r, key, *cur, std::move(*next), status_only, cur_rv,
                [this, r, key, patch, status_only, json_patch, pins, manager, attempt, done](StatusOr<StoredObject> res) {
                  if (!res.ok() && res.status().code() == Code::kConflict && !pins) {
                    return PatchAttempt(r, key, patch, status_only, json_patch, manager, attempt + 1, done);
                  }
                  done(std::move(res));
                });
}

void Registry::DeleteAsync(const ResourceInfo& r, const std::string& ns, const std::string& name,
                           std::string precondition_uid, Done done) {
  if (r.kind == "Namespace" && name == "default") {
    return done(Status(Code::kForbidden, "namespace \"default\" is protected and cannot be deleted"));
  }
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  DeleteAttempt(&r, std::move(key), std::move(precondition_uid), 0, std::move(done));
}

void Registry::DeleteAttempt(const ResourceInfo* r, ObjectKey key, std::string precondition_uid, int attempt,
                             Done done) {
  if (attempt >= kMaxConflictRetries) return done(TooManyWriters(*r, key.name));
  auto cur = store_->GetStored(key);
  if (!cur.ok()) return done(NotFound(Describe(*r, key.name) + " not found"));
  const json& obj = *cur->object;
  if (!precondition_uid.empty() && MetaString(obj, "uid") != precondition_uid) {
    return done(Status(Code::kConflict, "Precondition failed: UID in precondition: " + precondition_uid +
                                            ", UID in object meta: " + MetaString(obj, "uid")));
  }
  uint64_t cur_rv = ResourceVersionOf(obj);
  if (!IsDeleting(obj)) {
    Status a = AdmitDelete(*r, obj, *store_);
    if (!a.ok()) return done(a);
  }
  bool is_namespace = r->kind == "Namespace";
  auto finish = [this, r, key, precondition_uid, attempt, done, is_namespace](StatusOr<StoredObject> res) {
    if (!res.ok() && res.status().code() == Code::kConflict) {
      return DeleteAttempt(r, key, precondition_uid, attempt + 1, done);
    }
    if (!res.ok() && res.status().code() == Code::kNotFound) return done(NotFound(Describe(*r, key.name) + " not found"));
    if (res.ok() && is_namespace) {
      std::lock_guard lock(bg_mu_);
      bg_kick_ = true;
      bg_cv_.notify_all();
    }
    done(std::move(res));
  };
  if (is_namespace) {
    // Namespaces always go through the lifecycle loop, which empties them first.
    if (IsDeleting(obj)) return done(*cur);
    json next = obj;
    next["metadata"]["deletionTimestamp"] = NowRfc3339();
    json fins = json::array({kNamespaceFinalizer});
    if (obj["metadata"].contains("finalizers") && obj["metadata"]["finalizers"].is_array()) {
      for (const auto& f : obj["metadata"]["finalizers"]) {
        if (f != kNamespaceFinalizer) fins.push_back(f);
      }
    }
    next["metadata"]["finalizers"] = fins;
    next["status"]["phase"] = "Terminating";
    store_->UpdateAsync(key, std::move(next), cur_rv, std::move(finish));
  } else if (HasFinalizers(obj)) {
    if (IsDeleting(obj)) return done(*cur);
    json next = obj;
    next["metadata"]["deletionTimestamp"] = NowRfc3339();
    store_->UpdateAsync(key, std::move(next), cur_rv, std::move(finish));
  } else {
    RecordTombstone(obj, [this, key, cur_rv, finish = std::move(finish)]() mutable {
      store_->DeleteAsync(key, cur_rv, std::move(finish));
    });
  }
}

void Registry::RecordTombstone(const json& gone, std::function<void()> then) {
  const ResourceInfo* events = FindByKind("Event");
  std::string ns = MetaString(gone, "namespace"), name = MetaString(gone, "name"), uid = MetaString(gone, "uid");
  if (gone.value("kind", "") != "Instance" || events == nullptr || ns.empty() || name.empty() || uid.size() < 8) {
    return then();
  }
  // What a terminated instance still shows (EC2's describe-instances lists it as terminated for an hour).
  const json spec = gone.value("spec", json::object());
  json shown = json::object();
  for (const char* f : {"instanceType", "image", "keyName", "nodeName"}) {
    if (spec.contains(f) && spec[f].is_string()) shown[f] = spec[f];
  }
  shown["launchTime"] = MetaString(gone, "creationTimestamp");
  std::string now = NowRfc3339();
  json ev = {{"apiVersion", kApiVersion},
             {"kind", "Event"},
             {"metadata",
              {{"name", name + "." + uid.substr(0, 8) + ".terminated"},
               {"labels", {{kTombstoneLabel, "Instance"}}},
               {"annotations", {{kTombstoneAnnotation, shown.dump()}}}}},
             {"involvedObject", {{"apiVersion", kApiVersion}, {"kind", "Instance"}, {"namespace", ns}, {"name", name}, {"uid", uid}}},
             {"reason", "Terminated"},
             {"message", "instance " + name + " was deleted"},
             {"type", "Normal"},
             {"count", 1},
             {"firstTimestamp", now},
             {"lastTimestamp", now},
             {"source", {{"component", "apiserver"}}}};
  CreateAsync(*events, ns, std::move(ev), [ns, name, then = std::move(then)](StatusOr<StoredObject> res) {
    // A namespace being emptied refuses new objects: its instances leave no tombstone, as they leave nothing else.
    // A removal retried after a conflict finds its tombstone made already.
    if (!res.ok() && res.status().code() != Code::kAlreadyExists) {
      spdlog::debug("tombstone not recorded: instance={}/{} error={}", ns, name, res.status().ToString());
    }
    then();
  });
}

StatusOr<json> Registry::Create(const ResourceInfo& r, const std::string& ns, json obj, const std::string& manager) {
  return AwaitWrite([&](Done d) { CreateAsync(r, ns, std::move(obj), std::move(d), manager); });
}

StatusOr<json> Registry::Update(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
                                bool status_only, const std::string& manager) {
  return AwaitWrite([&](Done d) { UpdateAsync(r, ns, name, std::move(obj), status_only, std::move(d), manager); });
}

StatusOr<json> Registry::Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                               const json& patch, bool status_only, bool json_patch, const std::string& manager) {
  return AwaitWrite(
      [&](Done d) { PatchAsync(r, ns, name, patch, status_only, json_patch, std::move(d), manager); });
}

StatusOr<json> Registry::Apply(const ResourceInfo& r, const std::string& ns, const std::string& name,
                               const json& config, const std::string& manager, bool force) {
  return AwaitWrite([&](Done d) { ApplyAsync(r, ns, name, config, manager, force, std::move(d)); });
}

// --- server-side apply -------------------------------------------------------------------------------------------

namespace {

// What an apply configuration must say about itself: its kind, version and name (the path's).
Status CheckApplyConfig(const ResourceInfo& r, const std::string& ns, const std::string& name, const json& config) {
  if (!config.is_object()) return BadRequest("an apply configuration must be a YAML or JSON object");
  if (!config.contains("apiVersion") || !config.contains("kind")) {
    return BadRequest("an apply configuration must set apiVersion and kind (" + std::string(kApiVersion) + ", " +
                      r.kind + ")");
  }
  if (config["kind"] != r.kind) {
    return BadRequest("the kind in the body (" + config["kind"].dump() + ") does not match the resource in the path (" +
                      r.plural + ")");
  }
  if (config["apiVersion"] != kApiVersion) {
    return BadRequest("apiVersion " + config["apiVersion"].dump() + " is not served here; use " + kApiVersion);
  }
  std::string body_name = MetaString(config, "name");
  if (body_name != name) {
    return BadRequest("the name of the object (" + body_name + ") does not match the name on the URL (" + name + ")");
  }
  std::string body_ns = MetaString(config, "namespace");
  if (r.namespaced && !body_ns.empty() && body_ns != ns) {
    return BadRequest("the namespace of the object (" + body_ns + ") does not match the namespace on the URL (" + ns +
                      ")");
  }
  if (config.contains("metadata") && config["metadata"].is_object() && config["metadata"].contains("managedFields")) {
    return BadRequest("metadata.managedFields must be left out of an apply configuration");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<json> Registry::PrepareApply(const ResourceInfo& r, const ObjectKey& key, const StoredObject* cur,
                                      const json& config, const std::string& manager, bool force) const {
  json cfg = config;
  if (r.has_status) cfg.erase("status");  // the main resource's apply owns no status (as Kubernetes resets it)
  if (cur == nullptr) {
    auto merged = ServerSideApply(nullptr, cfg, manager, force, NowRfc3339());
    if (!merged.ok()) return merged.status();
    return PrepareCreate(r, key.ns, std::move(*merged), std::nullopt);
  }
  auto merged = ServerSideApply(cur->object.get(), cfg, manager, force, NowRfc3339());
  if (!merged.ok()) return merged.status();
  return PrepareUpdate(r, key, *cur->object, std::move(*merged), false, std::nullopt);
}

void Registry::ApplyAsync(const ResourceInfo& r, const std::string& ns, const std::string& name, json config,
                          const std::string& manager, bool force, Done done) {
  Status s = CheckApplyConfig(r, ns, name, config);
  if (!s.ok()) return done(s);
  if (manager.empty()) return done(BadRequest("fieldManager: Required value: is required for apply patch"));
  bool pins = !MetaString(config, "resourceVersion").empty();
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  ApplyAttempt(&r, std::move(key), std::make_shared<const json>(std::move(config)), manager, force, pins, 0,
               std::move(done));
}

void Registry::ApplyAttempt(const ResourceInfo* r, ObjectKey key, std::shared_ptr<const json> config,
                            std::string manager, bool force, bool pins, int attempt, Done done) {
  if (attempt >= kMaxConflictRetries) return done(TooManyWriters(*r, key.name));
  auto retry = [this, r, key, config, manager, force, pins, attempt, done](StatusOr<StoredObject> res) {
    // Lost a race with another writer (or a create with another create): merge again onto what won.
    bool lost = !res.ok() && !pins &&
                (res.status().code() == Code::kAlreadyExists ||
                 (res.status().code() == Code::kConflict && res.status().causes().empty()));
    if (lost) return ApplyAttempt(r, key, config, manager, force, pins, attempt + 1, done);
    done(std::move(res));
  };
  auto cur = store_->GetStored(key);
  if (!cur.ok()) {
    if (pins) return done(NotFound(Describe(*r, key.name) + " not found"));
    auto next = PrepareApply(*r, key, nullptr, *config, manager, force);
    if (!next.ok()) return done(next.status());
    auto held = quotas_->Reserve(*r, key, nullptr, *next);
    if (!held.ok()) return done(held.status());
    store_->CreateAsync(key, std::move(*next), Holding(std::move(*held), std::move(retry)));
    return;
  }
  uint64_t cur_rv = ResourceVersionOf(*cur->object);
  if (pins && ResourceVersionOf(*config) != cur_rv) return done(ModifiedConflict(*r, key.name));
  auto next = PrepareApply(*r, key, &*cur, *config, manager, force);
  if (!next.ok()) return done(next.status());
  WritePrepared(*r, key, *cur, std::move(*next), false, cur_rv, std::move(retry));
}

StatusOr<json> Registry::DryRunApply(const ResourceInfo& r, const std::string& ns, const std::string& name,
                                     const json& config, const std::string& manager, bool force) const {
  Status s = CheckApplyConfig(r, ns, name, config);
  if (!s.ok()) return s;
  if (manager.empty()) return BadRequest("fieldManager: Required value: is required for apply patch");
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  auto cur = store_->GetStored(key);
  return PrepareApply(r, key, cur.ok() ? &*cur : nullptr, config, manager, force);
}

StatusOr<json> Registry::Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                                const std::string& precondition_uid) {
  return AwaitWrite([&](Done d) { DeleteAsync(r, ns, name, precondition_uid, std::move(d)); });
}

Status Registry::Bootstrap() {
  const ResourceInfo* ns = FindByKind("Namespace");
  if (store_->Get({"namespaces", "", "default"}).ok()) return Status::Ok();
  auto res = Create(*ns, "", json{{"metadata", {{"name", "default"}}}});
  if (!res.ok() && res.status().code() != Code::kAlreadyExists) return res.status();
  return Status::Ok();
}

void Registry::ReconcileNamespaces() {
  StoreListOptions o;
  o.plural = "namespaces";
  for (const auto& nsobj : store_->List(o).items) {
    if (!IsDeleting(*nsobj)) continue;
    std::string ns = MetaString(*nsobj, "name");
    size_t remaining = 0;
    for (const auto& r : AllResources()) {
      if (!r.namespaced) continue;
      StoreListOptions lo;
      lo.plural = r.plural;
      lo.ns = ns;
      for (const auto& obj : store_->List(lo).items) {
        ++remaining;
        if (IsDeleting(*obj)) continue;
        auto d = Delete(r, ns, MetaString(*obj, "name"), "");
        if (!d.ok() && d.status().code() != Code::kNotFound) {
          spdlog::warn("namespace cleanup: delete failed: namespace={} object={}/{} error={}", ns, r.plural,
                       MetaString(*obj, "name"), d.status().message());
        }
      }
    }
    if (remaining > 0) continue;
    // Empty: drop our finalizer; the object goes when no other finalizer holds it.
    const ResourceInfo* nsr = FindByKind("Namespace");
    json patch = *nsobj;
    json fins = json::array();
    for (const auto& f : (*nsobj)["metadata"].value("finalizers", json::array())) {
      if (f != kNamespaceFinalizer) fins.push_back(f);
    }
    patch["metadata"]["finalizers"] = fins;
    auto u = Update(*nsr, "", ns, patch, false);
    if (u.ok()) spdlog::info("namespace emptied and removed: namespace={}", ns);
  }
}

void Registry::RefreshQuotaStatus() {
  const ResourceInfo* qr = FindByKind("Quota");
  StoreListOptions o;
  o.plural = "quotas";
  for (const auto& q : store_->List(o).items) {
    if (IsDeleting(*q)) continue;
    std::string ns = MetaString(*q, "namespace");
    json used = json::object(), hard = json::object();
    QuotaAmounts u = quotas_->Used(ns), h = quotas_->Hard(ns);
    for (const auto& res : QuotaResources()) {
      used[res] = u.count(res) ? u[res] : 0;
      if (h.count(res)) hard[res] = h[res];
    }
    json status = (*q).value("status", json::object());
    if (status.value("used", json()) == used && status.value("hard", json()) == hard) continue;
    json next = *q;
    next["status"]["used"] = used;
    next["status"]["hard"] = hard;
    auto w = Update(*qr, ns, MetaString(*q, "name"), next, /*status_only=*/true);
    if (!w.ok() && w.status().code() != Code::kConflict && w.status().code() != Code::kNotFound) {
      spdlog::warn("quota status not written: namespace={} error={}", ns, w.status().message());
    }
  }
}

void Registry::StartBackground() {
  bg_ = std::thread([this] {
    std::unique_lock lock(bg_mu_);
    while (!bg_stop_) {
      bg_cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return bg_stop_ || bg_kick_; });
      if (bg_stop_) break;
      bg_kick_ = false;
      lock.unlock();
      ReconcileNamespaces();
      RefreshQuotaStatus();
      lock.lock();
    }
  });
}

void Registry::StopBackground() {
  {
    std::lock_guard lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_.joinable()) bg_.join();
}

}  // namespace stratus
