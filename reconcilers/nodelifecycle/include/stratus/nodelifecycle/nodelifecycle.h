// Node lifecycle (cluster-wide): a Node whose agent stopped heartbeating for longer than the grace period is
// marked Ready=Unknown (NodeStatusUnknown), so placement stops choosing it, and the instances bound to it say so:
// Ready=Unknown, reason NodeNotReady (as Kubernetes' node lifecycle controller marks the pods of a lost node). Their
// own node's agent writes Ready again when it comes back.
#pragma once

#include <chrono>
#include <optional>

#include "stratus/core/api_client.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::nodelifecycle {

// Pure: `inst` (bound to the lost node `node`, silent for `age_seconds`) as it should be written, or nullopt when
// it says so already.
std::optional<json> MarkInstanceUnknown(const json& inst, const std::string& node, int64_t age_seconds);

class NodeLifecycleReconciler : public runtime::Reconciler {
 public:
  // `instances` (every namespace; may be null: nodes only).
  NodeLifecycleReconciler(ApiClient* client, runtime::Informer* nodes, std::chrono::seconds grace,
                          runtime::Informer* instances = nullptr)
      : client_(client), nodes_(nodes), grace_(grace), instances_(instances) {}
  std::string Name() const override { return "node-lifecycle"; }
  std::vector<const runtime::Informer*> Reads() const override {
    if (instances_ == nullptr) return {nodes_};
    return {nodes_, instances_};
  }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  ApiClient* client_;
  runtime::Informer* nodes_;
  std::chrono::seconds grace_;
  runtime::Informer* instances_;
};

}  // namespace stratus::nodelifecycle
