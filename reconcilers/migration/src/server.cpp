// The server's part of a migration: Pending -> Scheduled (or a cold move, or Failed), Migrated -> Succeeded.
#include <spdlog/spdlog.h>

#include <ctime>

#include "stratus/core/object.h"
#include "stratus/migration/migration.h"

namespace stratus::migration {

MigrationReconciler::MigrationReconciler(ApiClient* client, runtime::Informer* migrations, runtime::Informer* instances,
                                         runtime::Informer* nodes, runtime::Informer* flavors, placement::Options opts)
    : client_(client), migrations_(migrations), instances_(instances), nodes_(nodes), flavors_(flavors),
      opts_(std::move(opts)), events_(client, "migration", "") {}

Status MigrationReconciler::Fail(const json& m, const std::string& reason, const std::string& message) {
  json d = m;
  const json failure = Failure(reason, message);
  for (auto it = failure.begin(); it != failure.end(); ++it) d["status"][it.key()] = it.value();
  auto u = runtime::UpdateStatusIfChanged(client_, "migrations", m, d);
  if (!u.ok()) return u.status();
  events_.Record(m, "Warning", reason, message);
  spdlog::warn("migration failed: migration={}/{} reason={} message={}", MetaString(m, "namespace"),
               MetaString(m, "name"), reason, message);
  return Status::Ok();
}

StatusOr<runtime::Result> MigrationReconciler::Schedule(const json& m) {
  const std::string ns = MetaString(m, "namespace");
  const json spec = m.value("spec", json::object());
  const std::string name = spec.value("instance", "");
  json inst = instances_->Get(ns + "/" + name);
  if (inst.is_null()) {
    Status s = Fail(m, "InstanceNotFound", "instance " + name + " does not exist");
    if (!s.ok()) return s;
    return runtime::Result::Done();
  }
  const std::string iphase = inst.value("status", json::object()).value("phase", "");
  const bool live = iphase == "Running" || iphase == "Paused";
  if (std::string why = Unmovable(inst, live); !why.empty()) {
    Status s = Fail(m, "Unmovable", "instance " + name + " cannot move: " + why);
    if (!s.ok()) return s;
    return runtime::Result::Done();
  }
  // One move at a time: one under way, or an older one still Pending, wins; this process' own recent decision
  // counts even before the cache shows it.
  std::lock_guard lock(schedule_mu_);
  const std::string inst_key = ns + "/" + name, key = ns + "/" + MetaString(m, "name");
  std::string busy;
  for (const auto& o : migrations_->List()) {
    if (MetaString(o, "namespace") != ns || MetaString(o, "name") == MetaString(m, "name")) continue;
    if (o.value("spec", json::object()).value("instance", "") != name || Terminal(PhaseOf(o))) continue;
    if (PhaseOf(o) != kPending || Newer(m, o)) busy = MetaString(o, "name");
  }
  if (auto it = scheduled_.find(inst_key); busy.empty() && it != scheduled_.end() && it->second != key) {
    json o = migrations_->Get(it->second);
    if (o.is_null() || !Terminal(PhaseOf(o))) busy = runtime::SplitKey(it->second).second;
  }
  if (!busy.empty()) {
    Status s = Fail(m, "AlreadyMigrating", "instance " + name + " is being moved by migration " + busy);
    if (!s.ok()) return s;
    return runtime::Result::Done();
  }
  const std::string source = inst["spec"].value("nodeName", "");
  std::map<std::string, json> flavors;
  for (const auto& f : flavors_->List()) flavors[MetaString(f, "name")] = f;
  auto target = ChooseTarget(inst, source, spec.value("targetNode", ""), nodes_->List(), instances_->List(), flavors,
                             std::time(nullptr), opts_);
  if (!target.ok()) {
    Status s = Fail(m, "NoTarget", target.status().message());
    if (!s.ok()) return s;
    return runtime::Result::Done();
  }
  json d = m;
  d["status"]["sourceNode"] = source;
  d["status"]["targetNode"] = *target;
  d["status"]["live"] = live;
  if (live) {
    d["status"]["phase"] = kScheduled;
    d["status"]["scheduledTime"] = NowRfc3339();
    d["status"]["reason"] = "TargetChosen";
    d["status"]["message"] = "live migration of " + name + " from " + source + " to " + *target;
    auto u = runtime::UpdateStatusIfChanged(client_, "migrations", m, d);
    if (!u.ok()) return u.status();
    scheduled_[inst_key] = key;
    events_.Record(m, "Normal", "Scheduled", d["status"]["message"].get<std::string>());
    return runtime::Result::Done();
  }
  // Not running: nothing is in flight; binding it to the target moves it (the source's agent removes its old
  // definition: the fence).
  json moved = inst;
  moved["spec"]["nodeName"] = *target;
  auto b = client_->Update("instances", ns, moved);
  if (!b.ok()) return b.status();  // changed meanwhile: looked at again
  d["status"]["phase"] = kSucceeded;
  d["status"]["reason"] = "MovedCold";
  d["status"]["message"] = "instance " + name + " (" + (iphase.empty() ? "not running" : iphase) + ") moved from " +
                           source + " to " + *target + " without live migration";
  d["status"]["completionTime"] = NowRfc3339();
  auto u = runtime::UpdateStatusIfChanged(client_, "migrations", m, d);
  if (!u.ok()) return u.status();
  events_.Record(m, "Normal", "MovedCold", d["status"]["message"].get<std::string>());
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationReconciler::Complete(const json& m) {
  const std::string ns = MetaString(m, "namespace");
  const std::string name = m["spec"].value("instance", "");
  const json st = m.value("status", json::object());
  const std::string target = st.value("targetNode", "");
  // Its volumes first: their storage was copied to the target's pools (status.volumes, written by the source
  // before libvirt started); they are bound there, at their new paths, before the instance is.
  for (const auto& v : st.value("volumes", json::array())) {
    auto vol = client_->Get("volumes", ns, v.value("name", ""));
    if (!vol.ok()) {
      if (vol.status().code() == Code::kNotFound) continue;
      return vol.status();
    }
    if ((*vol)["spec"].value("nodeName", "") != target) {
      json moved = *vol;
      moved["spec"]["nodeName"] = target;
      auto u = client_->Update("volumes", ns, moved);
      if (!u.ok()) return u.status();
      vol = u;
    }
    json desired = *vol;
    desired["status"]["path"] = v.value("targetPath", "");
    desired["status"]["node"] = target;
    auto u = runtime::UpdateStatusIfChanged(client_, "volumes", *vol, desired);
    if (!u.ok()) return u.status();
  }
  auto inst = client_->Get("instances", ns, name);
  if (!inst.ok() && inst.status().code() != Code::kNotFound) return inst.status();
  if (inst.ok() && (*inst)["spec"].value("nodeName", "") != target) {
    // The domain runs on the target now: the instance is bound there (its agent takes it over as its own).
    json moved = *inst;
    moved["spec"]["nodeName"] = target;
    auto u = client_->Update("instances", ns, moved);
    if (!u.ok()) return u.status();
  }
  json d = m;
  d["status"]["phase"] = kSucceeded;
  d["status"]["reason"] = "Migrated";
  d["status"]["message"] = "instance " + name + " runs on " + target + " (from " + st.value("sourceNode", "") + ")";
  d["status"]["completionTime"] = NowRfc3339();
  auto u = runtime::UpdateStatusIfChanged(client_, "migrations", m, d);
  if (!u.ok()) return u.status();
  events_.Record(m, "Normal", "Succeeded", d["status"]["message"].get<std::string>());
  spdlog::info("migration succeeded: migration={}/{} instance={} node={}", ns, MetaString(m, "name"), name, target);
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationReconciler::CheckStarted(const json& m) {
  const json st = m.value("status", json::object());
  int64_t since = ParseRfc3339(st.value("scheduledTime", ""));
  if (since < 0) since = ParseRfc3339(MetaString(m, "creationTimestamp"));
  int64_t left = since + kStartTimeout.count() - std::time(nullptr);
  if (left > 0) return runtime::Result::After(std::chrono::seconds(left + 1));
  const bool target_side = PhaseOf(m) == kScheduled;
  Status s = Fail(m, "StartTimeout",
                  "not started within " + std::to_string(kStartTimeout.count()) + " s: node " +
                      st.value(target_side ? "targetNode" : "sourceNode", "") +
                      (target_side ? " did not prepare to take it" : " did not begin to send it") +
                      "; the instance stays where it was");
  if (!s.ok()) return s;  // a node's write won the race: looked at again
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationReconciler::Reconcile(const std::string& key) {
  if (!runtime::AllSynced(Reads())) return runtime::Result::After(std::chrono::milliseconds(500));
  json m = migrations_->Get(key);
  if (m.is_null() || !MetaString(m, "deletionTimestamp").empty()) return runtime::Result::Done();
  std::string phase = PhaseOf(m);
  if (phase == kPending) return Schedule(m);
  if (phase == kMigrated) return Complete(m);
  if (phase == kScheduled || phase == kTargetReady) return CheckStarted(m);
  return runtime::Result::Done();  // the agents' phases, or over
}

std::vector<runtime::WatchSpec> MigrationReconciler::Watches() {
  return {{migrations_, nullptr}};
}

}  // namespace stratus::migration
