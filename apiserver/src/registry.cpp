#include "stratus/apiserver/registry.h"

#include <cpprest/asyncrt_utils.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>
#include <set>

#include "stratus/apiserver/admission.h"
#include "stratus/core/merge.h"
#include "stratus/core/object.h"
#include "stratus/core/selector.h"

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

// Everything a user owns in an object: all but status and server-managed metadata.
json UserView(const json& obj) {
  json v = obj;
  v.erase("status");
  if (v.contains("metadata") && v["metadata"].is_object()) {
    for (const char* f : {"resourceVersion", "generation", "managedFields"}) v["metadata"].erase(f);
  }
  return v;
}

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

Registry::Registry(Store* store, const SchemaRegistry* schemas) : store_(store), schemas_(schemas) {}

Registry::~Registry() { StopBackground(); }

Status Registry::ValidateObject(const ResourceInfo& r, const json& obj) const {
  // The schema checks everything, labels included, and writes the message with every cause.
  return schemas_->Validate(r.kind, obj);
}

void Registry::AddValidator(const std::string& kind, Validator v) { validators_[kind].push_back(std::move(v)); }

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

StatusOr<json> Registry::Create(const ResourceInfo& r, const std::string& ns, json obj) {
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
  if (r.kind == "Namespace") obj["status"] = {{"phase", "Active"}};
  schemas_->ApplyDefaults(r.kind, obj);
  Status v = ValidateObject(r, obj);
  if (!v.ok()) return v;
  v = RunValidators(r, obj);
  if (!v.ok()) return v;
  Status nss = CheckNamespace(r, ns);
  if (!nss.ok()) return nss;
  ObjectKey key = KeyOf(r.plural, obj);  // before the move below
  return store_->Create(key, std::move(obj));
}

StatusOr<json> Registry::Get(const ResourceInfo& r, const std::string& ns, const std::string& name) const {
  auto o = store_->Get({r.plural, r.namespaced ? ns : "", name});
  if (!o.ok()) return NotFound(Describe(r, name) + " not found");
  return **o;
}

StatusOr<json> Registry::List(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const {
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
  StoreListResult res = store_->List(o);
  json items = json::array();
  for (const auto& p : res.items) items.push_back(*p);
  json meta = {{"resourceVersion", std::to_string(res.rv)}};
  if (!res.last_name.empty()) meta["continue"] = EncodeContinue(res.last_name);
  return json{{"apiVersion", kApiVersion}, {"kind", r.kind + "List"}, {"metadata", meta}, {"items", items}};
}

StatusOr<json> Registry::UpdateFrom(const ResourceInfo& r, const ObjectKey& key, const json& cur, json obj,
                                    bool status_only, uint64_t expected_rv) {
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
    schemas_->ApplyDefaults(r.kind, next);
    if (GenerationView(next) != GenerationView(cur)) {
      md["generation"] = cmd.value("generation", int64_t{1}) + 1;
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
    Status a = AdmitUpdate(r, cur, next);
    if (!a.ok()) return a;
    if (next.value("spec", json()) != cur.value("spec", json())) {  // metadata-only writes pass as stored
      a = RunValidators(r, next);
      if (!a.ok()) return a;
    }
  }
  if (next == cur) return cur;  // no-op: keep the resourceVersion
  if (IsDeleting(next) && !HasFinalizers(next)) {
    auto d = store_->Delete(key, expected_rv);
    if (d.ok()) spdlog::debug("object finalized and removed: key={}", key.ToString());
    return d;
  }
  return store_->Update(key, std::move(next), expected_rv);
}

StatusOr<json> Registry::Update(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
                                bool status_only) {
  if (!obj.is_object()) return BadRequest("the request body must be a JSON or YAML object");
  if (obj.contains("kind") && obj["kind"] != r.kind) {
    return BadRequest("the kind in the body (" + obj["kind"].dump() + ") does not match the resource in the path (" +
                      r.plural + ")");
  }
  std::string body_name = MetaString(obj, "name");
  if (!body_name.empty() && body_name != name) {
    return BadRequest("the name of the object (" + body_name + ") does not match the name on the URL (" + name + ")");
  }
  std::string body_ns = MetaString(obj, "namespace");
  if (r.namespaced && !body_ns.empty() && body_ns != ns) {
    return BadRequest("the namespace of the object (" + body_ns + ") does not match the namespace on the URL (" +
                      ns + ")");
  }
  std::string rv_text = MetaString(obj, "resourceVersion");
  uint64_t pinned = ResourceVersionOf(obj);
  if (!rv_text.empty() && pinned == 0) {
    return InvalidError("metadata.resourceVersion: Invalid value: \"" + rv_text + "\": must be a positive integer",
                        {{"metadata.resourceVersion", "must be a positive integer"}});
  }
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    auto cur = store_->Get(key);
    if (!cur.ok()) return NotFound(Describe(r, name) + " not found");
    uint64_t cur_rv = ResourceVersionOf(**cur);
    if (pinned && pinned != cur_rv) {
      return Status(Code::kConflict, "Operation cannot be fulfilled on " + Describe(r, name) +
                                         ": the object has been modified; please apply your changes to the latest "
                                         "version and try again");
    }
    auto res = UpdateFrom(r, key, **cur, obj, status_only, cur_rv);
    if (!res.ok() && res.status().code() == Code::kConflict && !pinned) continue;
    return res;
  }
  return Status(Code::kConflict, "too many concurrent writers on " + Describe(r, name));
}

StatusOr<json> Registry::Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                               const json& patch, bool status_only, bool json_patch) {
  if (!json_patch && !patch.is_object()) return BadRequest("a merge patch must be a JSON object");
  if (json_patch && !patch.is_array()) return BadRequest("a JSON patch must be an array of operations");
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    auto cur = store_->Get(key);
    if (!cur.ok()) return NotFound(Describe(r, name) + " not found");
    json patched;
    if (json_patch) {
      try {
        patched = (*cur)->patch(patch);
      } catch (const std::exception& e) {
        return Status(Code::kInvalid, std::string("the JSON patch could not be applied: ") + e.what());
      }
    } else {
      patched = ApplyMergePatch(**cur, patch);
    }
    if (!patched.is_object()) return BadRequest("the patched object is not an object");
    uint64_t cur_rv = ResourceVersionOf(**cur);
    std::string rv_text = MetaString(patched, "resourceVersion");
    uint64_t pinned = ResourceVersionOf(patched);
    bool pins = rv_text != (*cur)->at("metadata").value("resourceVersion", "");
    if (pins && pinned != cur_rv) {
      return Status(Code::kConflict, "Operation cannot be fulfilled on " + Describe(r, name) +
                                         ": the object has been modified; please apply your changes to the latest "
                                         "version and try again");
    }
    if (MetaString(patched, "name") != name) {
      return BadRequest("metadata.name cannot be changed by a patch");
    }
    auto res = UpdateFrom(r, key, **cur, std::move(patched), status_only, cur_rv);
    if (!res.ok() && res.status().code() == Code::kConflict && !pins) continue;
    return res;
  }
  return Status(Code::kConflict, "too many concurrent writers on " + Describe(r, name));
}

StatusOr<json> Registry::Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                                const std::string& precondition_uid) {
  if (r.kind == "Namespace" && name == "default") {
    return Status(Code::kForbidden, "namespace \"default\" is protected and cannot be deleted");
  }
  ObjectKey key{r.plural, r.namespaced ? ns : "", name};
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    auto cur = store_->Get(key);
    if (!cur.ok()) return NotFound(Describe(r, name) + " not found");
    const json& obj = **cur;
    if (!precondition_uid.empty() && MetaString(obj, "uid") != precondition_uid) {
      return Status(Code::kConflict, "Precondition failed: UID in precondition: " + precondition_uid +
                                         ", UID in object meta: " + MetaString(obj, "uid"));
    }
    uint64_t cur_rv = ResourceVersionOf(obj);
    if (!IsDeleting(obj)) {
      Status a = AdmitDelete(r, obj, *store_);
      if (!a.ok()) return a;
    }
    StatusOr<json> res = Status();
    if (r.kind == "Namespace") {
      // Namespaces always go through the lifecycle loop, which empties them first.
      if (IsDeleting(obj)) return obj;
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
      res = store_->Update(key, std::move(next), cur_rv);
      if (res.ok()) {
        std::lock_guard lock(bg_mu_);
        bg_kick_ = true;
        bg_cv_.notify_all();
      }
    } else if (HasFinalizers(obj)) {
      if (IsDeleting(obj)) return obj;
      json next = obj;
      next["metadata"]["deletionTimestamp"] = NowRfc3339();
      res = store_->Update(key, std::move(next), cur_rv);
    } else {
      res = store_->Delete(key, cur_rv);
    }
    if (!res.ok() && res.status().code() == Code::kConflict) continue;
    if (!res.ok() && res.status().code() == Code::kNotFound) return NotFound(Describe(r, name) + " not found");
    return res;
  }
  return Status(Code::kConflict, "too many concurrent writers on " + Describe(r, name));
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

void Registry::StartBackground() {
  bg_ = std::thread([this] {
    std::unique_lock lock(bg_mu_);
    while (!bg_stop_) {
      bg_cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return bg_stop_ || bg_kick_; });
      if (bg_stop_) break;
      bg_kick_ = false;
      lock.unlock();
      ReconcileNamespaces();
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
