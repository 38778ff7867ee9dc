// A node's part of a migration: as target, Scheduled -> TargetReady; as source, TargetReady -> Running -> Migrated
// (or Failed), with libvirt's progress while it runs.
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <map>
#include <thread>

#include "stratus/core/object.h"
#include "stratus/migration/migration.h"
#include "stratus/volume/volume.h"

namespace stratus::migration {

MigrationAgentReconciler::MigrationAgentReconciler(ApiClient* client, runtime::Informer* migrations,
                                                   runtime::Informer* nodes, instance::InstanceReconciler* instances,
                                                   host::Hypervisor* hv, AgentOptions opts,
                                                   host::StoragePools* storage)
    : client_(client), migrations_(migrations), nodes_(nodes), instances_(instances), hv_(hv), opts_(std::move(opts)),
      storage_(storage), events_(client, "migration-agent", opts_.node) {}

StatusOr<json> MigrationAgentReconciler::WriteStatus(const json& m, const json& fields) {
  json d = m;
  for (auto it = fields.begin(); it != fields.end(); ++it) d["status"][it.key()] = it.value();
  return runtime::UpdateStatusIfChanged(client_, "migrations", m, d);
}

StatusOr<runtime::Result> MigrationAgentReconciler::Fail(const json& m, const std::string& reason,
                                                         const std::string& message) {
  auto w = WriteStatus(m, Failure(reason, message));
  if (!w.ok()) return w.status();
  events_.Record(m, "Warning", reason, message);
  spdlog::warn("migration failed: migration={} reason={} message={}", runtime::KeyFor(m), reason, message);
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationAgentReconciler::Prepare(const json& m) {
  const std::string ns = MetaString(m, "namespace"), name = m["spec"].value("instance", "");
  auto inst = client_->Get("instances", ns, name);  // bound elsewhere: not in this node's cache
  if (!inst.ok()) {
    if (inst.status().code() != Code::kNotFound) return inst.status();
    return Fail(m, "InstanceNotFound", "instance " + name + " is gone");
  }
  auto spec = instances_->PrepareIncoming(*inst);
  if (!spec.ok()) {
    if (spec.status().code() == Code::kUnavailable) {
      // Not yet (an image still being cached here): say so and look again.
      auto w = WriteStatus(m, {{"reason", "TargetNotReady"}, {"message", spec.status().message()}});
      if (!w.ok()) return w.status();
      return runtime::Result::After(std::chrono::seconds(2));
    }
    return Fail(m, "TargetFailed", "node " + opts_.node + ": " + spec.status().message());
  }
  json target = {{"kernel", spec->kernel_path}, {"initrd", spec->initrd_path}, {"consoleLog", spec->serial_log_path}};
  if (!spec->owner.empty()) target["owner"] = spec->owner;
  for (const auto& d : spec->disks) {
    if (d.target == instance::kSeedTarget) target["seed"] = d.path;
  }
  auto w = WriteStatus(m, {{"phase", kTargetReady}, {"reason", "TargetReady"},
                           {"message", "node " + opts_.node + " is ready to take " + name}, {"target", target}});
  if (!w.ok()) return w.status();
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationAgentReconciler::Migrate(const json& m) {
  const std::string key = runtime::KeyFor(m);
  const std::string ns = MetaString(m, "namespace"), name = m["spec"].value("instance", "");
  const json st = m.value("status", json::object());
  const std::string target_node = st.value("targetNode", "");
  const std::string dom = instance::DomainName(ns, name);
  json node = nodes_->Get(target_node);
  const json endpoint = node.is_object() ? node.value("status", json::object()).value("migration", json::object())
                                         : json::object();
  host::MigrateRequest req;
  req.dest_uri = endpoint.value("libvirtURI", "");
  std::string addr = endpoint.value("address", "");
  if (req.dest_uri.empty()) {
    return Fail(m, "NoTargetEndpoint", "node " + target_node + " reports no migration endpoint (status.migration)");
  }
  if (!addr.empty()) {
    req.migrate_uri = "tcp://" + addr;
    req.listen_address = addr;
  }
  auto xml = hv_->MigratableXml(dom);
  if (!xml.ok()) return Fail(m, "SourceFailed", "domain " + dom + ": " + xml.status().message());
  std::vector<MovedDisk> moved;
  json self = nodes_->Get(opts_.node);
  auto rewritten = RewriteForTarget(*xml, st.value("target", json::object()), PoolMoves(self, node), &moved);
  if (!rewritten.ok()) return Fail(m, "SourceFailed", rewritten.status().message());
  req.dest_xml = *rewritten;
  req.copy_storage = !moved.empty();
  // The Volumes whose storage moves, so the server binds them to the target and this node removes its copies.
  json volumes = json::array();
  auto inst = client_->Get("instances", ns, name);
  if (!inst.ok()) return inst.status();
  std::map<std::string, std::string> libvirt_pools;  // pool name -> libvirt pool on this node
  for (const auto& p : self.value("status", json::object()).value("pools", json::array())) {
    libvirt_pools[p.value("name", "")] = p.value("libvirtName", "");
  }
  for (const auto& u : volume::VolumesOf(*inst)) {
    auto vol = client_->Get("volumes", ns, u.volume);
    if (!vol.ok()) continue;
    std::string path = vol->value("status", json::object()).value("path", "");
    for (const auto& d : moved) {
      if (d.source_path != path) continue;
      volumes.push_back({{"name", u.volume}, {"pool", d.pool}, {"sourcePool", libvirt_pools[d.pool]},
                         {"sourcePath", d.source_path}, {"targetPath", d.target_path},
                         {"storageName", d.source_path.substr(d.source_path.rfind('/') + 1)}});
    }
  }
  // Running, written before libvirt starts: an agent that dies meanwhile finds out what became of it (Recover).
  auto running = WriteStatus(m, {{"phase", kRunning}, {"reason", "Migrating"}, {"startTime", NowRfc3339()},
                                 {"volumes", volumes},
                                 {"message", "libvirt is migrating " + dom + " to " + target_node +
                                                 (moved.empty() ? "" : " with " + std::to_string(moved.size()) +
                                                                           " disk(s) copied")}});
  if (!running.ok()) return running.status();
  {
    std::lock_guard l(mu_);
    in_flight_.insert(key);
  }
  events_.Record(m, "Normal", "Migrating", "live migration of " + name + " to " + target_node + " started");
  // Progress while it runs, from another thread (the migration call blocks this one).
  std::mutex pm;
  std::condition_variable pcv;
  bool done = false;
  json last = *running;
  std::thread progress([&] {
    std::unique_lock l(pm);
    while (!pcv.wait_for(l, opts_.progress_period, [&] { return done; })) {
      l.unlock();
      auto p = hv_->Migration(dom);
      if (p.ok() && p->active) {
        json prog = {{"percent", p->percent()}, {"dataTotalBytes", p->data_total},
                     {"dataProcessedBytes", p->data_processed}, {"dataRemainingBytes", p->data_remaining},
                     {"elapsedMillis", p->elapsed_ms}};
        auto w = WriteStatus(last, {{"progress", prog}});
        if (w.ok()) last = *w;
      }
      l.lock();
    }
  });
  auto began = std::chrono::steady_clock::now();
  Status s = hv_->Migrate(dom, req);
  {
    std::lock_guard l(pm);
    done = true;
  }
  pcv.notify_all();
  progress.join();
  {
    std::lock_guard l(mu_);
    in_flight_.erase(key);
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();
  auto cur = client_->Get("migrations", ns, MetaString(m, "name"));
  if (!cur.ok()) return cur.status();
  if (!s.ok()) return Fail(*cur, "MigrationFailed", s.message() + "; " + name + " keeps running on " + opts_.node);
  json prog = cur->value("status", json::object()).value("progress", json::object());
  prog["percent"] = 100;
  prog["elapsedMillis"] = ms;
  auto w = WriteStatus(*cur, {{"phase", kMigrated}, {"reason", "Migrated"}, {"progress", prog},
                              {"message", "the domain runs on " + target_node + " (" + std::to_string(ms) + " ms)"}});
  if (!w.ok()) return w.status();
  spdlog::info("migrated: instance={}/{} from={} to={} millis={}", ns, name, opts_.node, target_node, ms);
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationAgentReconciler::Recover(const json& m) {
  // Running, but not by this process: the agent restarted while libvirt migrated (a client gone mid-migration makes
  // libvirt cancel it). Where the domain is tells how it ended.
  const std::string dom = instance::DomainName(MetaString(m, "namespace"), m["spec"].value("instance", ""));
  auto info = hv_->Lookup(dom);
  if (!info.ok()) return info.status();
  bool here = info->state == host::DomainState::kRunning || info->state == host::DomainState::kPaused;
  auto progress = hv_->Migration(dom);
  if (here && progress.ok() && progress->active) return runtime::Result::After(std::chrono::seconds(1));
  if (here) {
    return Fail(m, "Interrupted", "the migration was interrupted (node " + opts_.node +
                                      "'s agent restarted); the instance keeps running here");
  }
  auto w = WriteStatus(m, {{"phase", kMigrated}, {"reason", "Migrated"},
                           {"message", "the domain left node " + opts_.node + " while its agent restarted"}});
  if (!w.ok()) return w.status();
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationAgentReconciler::CleanUp(const json& m) {
  // The instance and its volumes are bound to the target now: this node's copies of the moved volumes go. A few
  // seconds after the binding, so that this node's volume reconciler has seen its volumes leave.
  const json st = m.value("status", json::object());
  int64_t done_at = ParseRfc3339(st.value("completionTime", ""));
  int64_t wait = done_at + 5 - std::time(nullptr);
  if (wait > 0) return runtime::Result::After(std::chrono::seconds(wait));
  for (const auto& v : st.value("volumes", json::array())) {
    auto vol = client_->Get("volumes", MetaString(m, "namespace"), v.value("name", ""));
    if (vol.ok() && (*vol)["spec"].value("nodeName", "") == opts_.node) continue;  // not moved after all: kept
    Status s = storage_->DeleteVolume(v.value("sourcePool", ""), v.value("storageName", ""));
    if (!s.ok()) return s;
    spdlog::info("migration: removed the source copy of volume {} ({}) on node {}", v.value("name", ""),
                 v.value("sourcePath", ""), opts_.node);
  }
  auto w = WriteStatus(m, {{"sourceCleanedUp", true}});
  if (!w.ok()) return w.status();
  return runtime::Result::Done();
}

StatusOr<runtime::Result> MigrationAgentReconciler::Reconcile(const std::string& key) {
  json m = migrations_->Get(key);
  if (m.is_null() || !MetaString(m, "deletionTimestamp").empty()) return runtime::Result::Done();
  const json st = m.value("status", json::object());
  const std::string phase = PhaseOf(m);
  if (phase == kScheduled && st.value("targetNode", "") == opts_.node) return Prepare(m);
  if (st.value("sourceNode", "") != opts_.node) return runtime::Result::Done();
  if (phase == kTargetReady) return Migrate(m);
  if (phase == kRunning) {
    std::lock_guard l(mu_);
    if (in_flight_.count(key)) return runtime::Result::Done();
  }
  if (phase == kRunning) return Recover(m);
  if (phase == kSucceeded && storage_ != nullptr && !st.value("sourceCleanedUp", false) &&
      !st.value("volumes", json::array()).empty()) {
    return CleanUp(m);
  }
  return runtime::Result::Done();
}

std::vector<runtime::WatchSpec> MigrationAgentReconciler::Watches() {
  return {{migrations_, nullptr}};
}

}  // namespace stratus::migration
