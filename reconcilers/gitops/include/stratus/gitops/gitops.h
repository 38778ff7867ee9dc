// The GitOps reconciler (in the server): keeps each ManifestSource's repository applied in its namespace.
//
// Every interval (and on every change of the source) it fetches the repository (GitFetcher), renders the manifests
// under spec.path (render.h), applies each object with server-side apply as the field manager stratus-gitops with
// force (what git says wins: a field changed by hand is put back, and an Event on the object and the source says
// which), prunes inventory entries that left the repository (only objects carrying its source label, never
// anything else), and reports per-object errors without stopping the rest. Nothing waits for readiness: each
// kind's own reconciler waits for what it needs, so an Image still importing blocks no Network.
//
// Status fields and their single writer — this reconciler:
//   ManifestSource: status.url, revision, lastAppliedRevision, lastAppliedTime, inventory, errors, skipped,
//                   observedGeneration, condition Ready.
// The finalizer gitops.stratus.io/prune: deleting a source with prune deletes what it applied.
#pragma once

#include <string>

#include "stratus/core/api_client.h"
#include "stratus/gitops/fetcher.h"
#include "stratus/gitops/render.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::gitops {

class ManifestSourceReconciler : public runtime::Reconciler {
 public:
  ManifestSourceReconciler(ApiClient* client, runtime::Informer* sources, GitFetcher* fetcher);
  std::string Name() const override { return "gitops"; }
  std::vector<const runtime::Informer*> Reads() const override { return {sources_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  // Key: "namespace/name" of a ManifestSource.
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  // Deletes the inventory of a source (its labelled objects); false while some deletion failed.
  bool PruneAll(const json& source, const std::set<std::string>& inventory);
  // Reads spec.secretRef's username/password into `spec`.
  Status Credentials(const std::string& ns, const std::string& secret, FetchSpec* spec);
  StatusOr<runtime::Result> Report(const json& source, json status, const std::string& reason,
                                   const std::string& message, std::chrono::milliseconds again);

  ApiClient* client_;
  runtime::Informer* sources_;
  GitFetcher* fetcher_;
  runtime::EventRecorder events_;
};

}  // namespace stratus::gitops
