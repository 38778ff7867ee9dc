// Cluster summaries of per-node facts: one writer per status field. A node-local reconciler writes only its own
// entry, `status.nodes.<node>` of an object (merge patch); a SummaryReconciler in the server is the single writer
// of the object's top-level status (phase, Ready and kind-specific fields), computed by a pure Summarize function
// over the entries of the nodes that exist. It says why an object cannot become Ready when no Ready node can serve
// it (NodeNotReady, with the node's own reason), so `stratusctl wait` shows the cause.
//   Image:   nodes write their import (image reconciler); the summary is Ready once any node has it cached.
//   Network: nodes write their bridge/dnsmasq state (network reconciler); the summary is Ready when every node that
//            reports it is Ready.
#pragma once

#include <functional>

#include "stratus/core/api_client.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::summary {

// A summary: top-level status fields to set (null: remove) and the Ready condition.
struct Summary {
  json fields = json::object();
  std::string ready_status, ready_reason, ready_message;
};
using SummarizeFn = std::function<Summary(const json& object, const std::vector<json>& nodes)>;

// Pure decisions, table-tested.
Summary SummarizeImage(const json& image, const std::vector<json>& nodes);
Summary SummarizeNetwork(const json& network, const std::vector<json>& nodes);

// Helpers the Summarize functions share: whether a Node is Ready (else why), and the entries of existing nodes.
bool NodeReady(const json& node, std::string* why);
std::map<std::string, json> EntriesOfExistingNodes(const json& object, const std::vector<json>& nodes);
// "no Ready node ...: node a: reason: message; node b: ..." for a NodeNotReady message.
std::string NotReadyNodes(const std::string& lead, const std::vector<json>& nodes);

class SummaryReconciler : public runtime::Reconciler {
 public:
  SummaryReconciler(ApiClient* client, std::string plural, runtime::Informer* objects, runtime::Informer* nodes,
                    SummarizeFn summarize);
  std::string Name() const override { return plural_ + "-summary"; }
  std::vector<const runtime::Informer*> Reads() const override { return {objects_, nodes_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;
  // A Node changed (Ready, gone): every object's summary may change.
  std::vector<std::string> AllKeys() const;

 private:
  ApiClient* client_;
  std::string plural_;
  runtime::Informer* objects_;
  runtime::Informer* nodes_;
  SummarizeFn summarize_;
};

}  // namespace stratus::summary
