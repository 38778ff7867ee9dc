// The cluster's image-status reconciler: the single writer of an Image's top-level status (phase, progress,
// size, virtualSize, format, checksum, observedGeneration and the Ready condition). Each node's image reconciler
// reports only its own entry, status.nodes.<node>; this reconciler summarizes those entries over the nodes that
// exist, and says why an image cannot become Ready when no Ready node can import it (NodeNotReady, with the
// node's own reason), so `stratusctl wait image/X` shows the cause instead of "no status reported yet".
#pragma once

#include "stratus/core/api_client.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::imagestatus {

// The top-level status an image should have, from its per-node entries and the cluster's Nodes (pure;
// unit-tested). The result holds phase, progress, size, virtualSize, format, checksum (from a node that has it),
// observedGeneration, and `ready` = {status, reason, message} for the Ready condition.
struct Summary {
  json fields = json::object();  // top-level status fields to set (null: remove)
  std::string ready_status, ready_reason, ready_message;
};
Summary Summarize(const json& image, const std::vector<json>& nodes);

class ImageStatusReconciler : public runtime::Reconciler {
 public:
  ImageStatusReconciler(ApiClient* client, runtime::Informer* images, runtime::Informer* nodes);
  std::string Name() const override { return "image-status"; }
  std::vector<const runtime::Informer*> Reads() const override { return {images_, nodes_}; }
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;
  // A Node changed (Ready, gone): every image's summary may change.
  std::vector<std::string> AllImages() const;

 private:
  ApiClient* client_;
  runtime::Informer* images_;
  runtime::Informer* nodes_;
};

}  // namespace stratus::imagestatus
