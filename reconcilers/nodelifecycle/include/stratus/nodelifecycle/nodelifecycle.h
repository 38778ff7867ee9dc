// Node lifecycle (cluster-wide): a Node whose agent stopped heartbeating for longer than the grace period is
// marked Ready=Unknown (NodeStatusUnknown), so placement stops choosing it.
#pragma once

#include <chrono>

#include "stratus/core/api_client.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::nodelifecycle {

class NodeLifecycleReconciler : public runtime::Reconciler {
 public:
  NodeLifecycleReconciler(ApiClient* client, runtime::Informer* nodes, std::chrono::seconds grace)
      : client_(client), nodes_(nodes), grace_(grace) {}
  std::string Name() const override { return "node-lifecycle"; }
  std::vector<const runtime::Informer*> Reads() const override { return {nodes_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  ApiClient* client_;
  runtime::Informer* nodes_;
  std::chrono::seconds grace_;
};

}  // namespace stratus::nodelifecycle
