#include "stratus/gitops/gitops.h"

#include <spdlog/spdlog.h>

#include "stratus/core/base64.h"
#include "stratus/core/object.h"

namespace stratus::gitops {
namespace {

constexpr size_t kMaxReportedErrors = 50;

std::string Short(const std::string& rev) { return rev.substr(0, 12); }

std::string Join(const std::vector<std::string>& v, size_t max = 5) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max) s += ", ...";
  return s;
}

}  // namespace

ManifestSourceReconciler::ManifestSourceReconciler(ApiClient* client, runtime::Informer* sources,
                                                   GitFetcher* fetcher)
    : client_(client), sources_(sources), fetcher_(fetcher), events_(client, "gitops") {}

std::vector<runtime::WatchSpec> ManifestSourceReconciler::Watches() { return {{sources_, nullptr}}; }

Status ManifestSourceReconciler::Credentials(const std::string& ns, const std::string& secret, FetchSpec* spec) {
  auto s = client_->Get("secrets", ns, secret);
  if (!s.ok()) return Status(s.status().code(), "spec.secretRef: Secret \"" + secret + "\": " + s.status().message());
  const json data = s->value("data", json::object());
  for (auto [key, out] : {std::pair{"username", &spec->username}, std::pair{"password", &spec->password}}) {
    if (!data.contains(key)) continue;
    auto v = data[key].is_string() ? Base64Decode(data[key].get<std::string>()) : std::nullopt;
    if (!v) return BadRequest("spec.secretRef: Secret \"" + secret + "\" data." + key + " is not base64");
    *out = *v;
  }
  if (spec->password.empty()) {
    return BadRequest("spec.secretRef: Secret \"" + secret + "\" has no data.password (a password or token)");
  }
  return Status::Ok();
}

StatusOr<runtime::Result> ManifestSourceReconciler::Report(const json& source, json status, const std::string& reason,
                                                           const std::string& message,
                                                           std::chrono::milliseconds again) {
  json desired = source;
  status["observedGeneration"] = source["metadata"].value("generation", int64_t{1});
  if (source.contains("status") && source["status"].contains("conditions")) {
    status["conditions"] = source["status"]["conditions"];
  }
  desired["status"] = std::move(status);
  runtime::SetCondition(desired, "Ready", reason == "Applied" ? "True" : "False", reason, message);
  auto w = runtime::UpdateStatusIfChanged(client_, "manifestsources", source, desired);
  if (!w.ok() && w.status().code() != Code::kNotFound) return w.status();
  if (again.count() <= 0) return runtime::Result::Done();
  return runtime::Result::After(again);
}

bool ManifestSourceReconciler::PruneAll(const json& source, const std::set<std::string>& inventory) {
  std::string ns = MetaString(source, "namespace"), name = MetaString(source, "name");
  bool all = true;
  for (const auto& ref : inventory) {
    const ResourceInfo* r = FindByKind(ref.substr(0, ref.find('/')));
    if (r == nullptr) continue;
    std::string obj = ref.substr(ref.find('/') + 1);
    auto live = client_->Get(r->plural, ns, obj);
    if (!live.ok()) continue;  // gone already
    const json md = live->value("metadata", json::object());
    if (md.value("labels", json::object()).value(kSourceLabel, "") != name) continue;  // not ours (any more)
    auto d = client_->Delete(r->plural, ns, obj, MetaString(*live, "uid"));
    if (!d.ok() && d.status().code() != Code::kNotFound) {
      all = false;
      continue;
    }
    events_.Record(source, "Normal", "Pruned", ref + " deleted: it is no longer in the repository");
  }
  return all;
}

StatusOr<runtime::Result> ManifestSourceReconciler::Reconcile(const std::string& key) {
  json source = sources_->Get(key);
  if (source.is_null()) return runtime::Result::Done();
  std::string ns = MetaString(source, "namespace"), name = MetaString(source, "name");
  std::string uid = MetaString(source, "uid");
  const json old = source.value("status", json::object());
  std::set<std::string> inventory = InventoryOf(source);
  auto cfg = ParseSource(source);

  if (!MetaString(source, "deletionTimestamp").empty()) {
    if (!runtime::HasFinalizer(source, kPruneFinalizer)) return runtime::Result::Done();
    if (cfg.ok() && cfg->prune && !PruneAll(source, inventory)) {
      return Status(Code::kUnavailable, "pruning the inventory of " + key + " failed; retrying");
    }
    fetcher_->Forget(uid);
    Status s = runtime::RemoveFinalizer(client_, "manifestsources", source, kPruneFinalizer);
    if (!s.ok() && s.code() != Code::kNotFound) return s;
    return runtime::Result::Done();
  }
  json status = old;
  status.erase("conditions");
  if (!cfg.ok()) return Report(source, status, "InvalidSpec", cfg.status().message(), {});
  if (!runtime::HasFinalizer(source, kPruneFinalizer)) {
    auto with = runtime::AddFinalizer(client_, "manifestsources", source, kPruneFinalizer);
    if (!with.ok()) return with.status();
    source = *with;
  }
  if (cfg->suspend) return Report(source, status, "Suspended", "suspended: nothing is fetched or applied", {});

  FetchSpec spec = cfg->fetch;
  if (!cfg->secret.empty()) {
    Status s = Credentials(ns, cfg->secret, &spec);
    if (!s.ok()) return Report(source, status, "CredentialsUnavailable", s.message(), cfg->interval);
  }
  status["url"] = spec.url;
  auto snap = fetcher_->Fetch(uid, spec);
  if (!snap.ok()) {
    events_.Record(source, "Warning", "FetchFailed", snap.status().message());
    std::string reason = snap.status().code() == Code::kUnauthorized ? "AuthenticationFailed" : "FetchFailed";
    return Report(source, status, reason, snap.status().message(), cfg->interval);
  }
  Rendered rendered = Render(*snap, ns, name);
  bool new_revision = old.value("lastAppliedRevision", "") != snap->revision;

  // Apply, in order; each object on its own (an error is reported and the rest goes on).
  json errors = json::array();
  auto error = [&](const std::string& where, const std::string& message) {
    if (errors.size() < kMaxReportedErrors) errors.push_back({{"object", where}, {"message", message}});
  };
  for (const auto& e : rendered.errors) error(e.where, e.message);
  size_t changed = 0;
  std::set<std::string> managed;
  for (const auto& o : rendered.objects) {
    auto live = client_->Get(o.resource->plural, ns, o.name);
    if (live.ok()) managed.insert(o.Ref());  // an object that exists is this source's, applied or not
    std::vector<std::string> drift = live.ok() ? Drift(*live, o.object) : std::vector<std::string>{};
    auto applied = client_->Apply(o.resource->plural, ns, o.object, kFieldManager, /*force=*/true);
    if (!applied.ok()) {
      error(o.Ref(), applied.status().message());
      continue;
    }
    managed.insert(o.Ref());
    if (!live.ok() || MetaString(*live, "resourceVersion") != MetaString(*applied, "resourceVersion")) ++changed;
    if (!drift.empty() && !new_revision && live.ok()) {
      // Same commit as last time, yet the object differed: someone changed it outside git. Put back (done).
      std::string msg = "changed outside git, put back to revision " + Short(snap->revision) + ": " + Join(drift);
      events_.Record(*applied, "Warning", "DriftReverted", msg);
      events_.Record(source, "Warning", "DriftReverted", o.Ref() + " " + msg);
    }
  }

  // Prune what left the repository (never while some file could not be read: its objects are unknown).
  std::set<std::string> keep = managed;
  if (!rendered.complete || !cfg->prune) {
    for (const auto& ref : inventory) keep.insert(ref);  // still this source's, not deleted
  }
  if (cfg->prune) {
    std::vector<std::string> gone = PlanPrune(inventory, rendered);
    for (const auto& ref : gone) {
      if (!PruneAll(source, {ref})) {
        error(ref, "prune failed; retrying at the next interval");
        keep.insert(ref);
      }
    }
    if (!gone.empty()) ++changed;
  }

  status["revision"] = snap->revision;
  status["lastAppliedRevision"] = snap->revision;
  if (new_revision || changed > 0 || !old.contains("lastAppliedTime")) status["lastAppliedTime"] = NowRfc3339();
  status["inventory"] = json(std::vector<std::string>(keep.begin(), keep.end()));
  status["errors"] = errors;
  status["skipped"] = json(snap->skipped.size() > 20 ? std::vector<std::string>(snap->skipped.begin(),
                                                                                 snap->skipped.begin() + 20)
                                                     : snap->skipped);
  if (errors.empty()) status.erase("errors");
  if (snap->skipped.empty()) status.erase("skipped");
  if (new_revision) {
    events_.Record(source, "Normal", "Applied",
                   "revision " + Short(snap->revision) + ": " + std::to_string(rendered.objects.size()) + " objects");
  }
  if (!errors.empty()) {
    std::string first = errors[0].value("object", "") + ": " + errors[0].value("message", "");
    std::string msg = std::to_string(errors.size()) + " error(s) at revision " + Short(snap->revision) +
                      " (the other objects are applied); first: " + first;
    events_.Record(source, "Warning", "ApplyFailed", msg);
    return Report(source, status, "ApplyFailed", msg, cfg->interval);
  }
  return Report(source, status, "Applied",
                "revision " + Short(snap->revision) + " applied: " + std::to_string(rendered.objects.size()) +
                    " objects",
                cfg->interval);
}

}  // namespace stratus::gitops
