// Node lifecycle (cluster-wide): a Node whose agent stopped heartbeating for longer than the grace period is
// marked Ready=Unknown (NodeStatusUnknown), so placement stops choosing it, and the instances bound to it say so:
// Ready=Unknown, reason NodeNotReady (as Kubernetes' node lifecycle controller marks the pods of a lost node). Their
// own node's agent writes Ready again when it comes back.
//
// Evacuation (nova evacuate): an instance with spec.evacuationPolicy: Evacuate whose disks can be made again (boot
// images, a root volume from its image; data volumes cannot) is rebuilt elsewhere once its node has been lost for
// the evacuation grace period: its root Volume on the lost node is declared lost (deleted, and freed of the
// finalizers only that node would remove), then it is unbound, and placement binds it to another node, where it is
// made again with the same uid, addresses and MACs. Only this reconciler moves it, once: never on two hosts at once,
// because the lost node's agent, if it comes back, fences the domains of instances no longer bound to it (destroys
// and undefines them, never starts them). Manual (the default) waits for the node or the operator, and says so.
// This reconciler is the only writer of the Instance condition Evacuated.
#pragma once

#include <chrono>
#include <optional>

#include "stratus/core/api_client.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::nodelifecycle {

// Pure: `inst` (bound to the lost node `node`, silent for `age_seconds`) as it should be written, or nullopt when
// it says so already.
std::optional<json> MarkInstanceUnknown(const json& inst, const std::string& node, int64_t age_seconds);

// What becomes of an instance bound to node `node`, lost for `lost_seconds` (pure; table-tested).
struct Evacuation {
  enum class Kind { kStay, kWait, kBlocked, kEvacuate } kind = Kind::kStay;
  std::string reason, message;   // kBlocked, kEvacuate: condition Evacuated
  std::chrono::seconds wait{0};  // kWait: until it may go
  std::string root_volume;       // kEvacuate: its root Volume (on the lost node), declared lost first; "" = none
};
Evacuation DecideEvacuation(const json& inst, const std::string& node, int64_t lost_seconds,
                            std::chrono::seconds evacuation_grace);

class NodeLifecycleReconciler : public runtime::Reconciler {
 public:
  // `instances` (every namespace; may be null: nodes only).
  NodeLifecycleReconciler(ApiClient* client, runtime::Informer* nodes, std::chrono::seconds grace,
                          runtime::Informer* instances = nullptr,
                          std::chrono::seconds evacuation_grace = std::chrono::seconds(60))
      : client_(client), nodes_(nodes), grace_(grace), instances_(instances), evacuation_grace_(evacuation_grace),
        events_(client, "node-lifecycle", "") {}
  std::string Name() const override { return "node-lifecycle"; }
  std::vector<const runtime::Informer*> Reads() const override {
    if (instances_ == nullptr) return {nodes_};
    return {nodes_, instances_};
  }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  // Carries out kEvacuate for `inst` (bound to lost `node`).
  Status Evacuate(const json& inst, const std::string& node, const Evacuation& e);

  ApiClient* client_;
  runtime::Informer* nodes_;
  std::chrono::seconds grace_;
  runtime::Informer* instances_;
  std::chrono::seconds evacuation_grace_;
  runtime::EventRecorder events_;
};

}  // namespace stratus::nodelifecycle
