// The placement reconciler (the scheduler): binds each Instance without spec.nodeName to a Ready node with
// enough unreserved vcpus and memory, honouring nodeSelector, and explains every rejection when nothing fits.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::placement {

struct Options {
  double cpu_overcommit = 4.0;     // Nova's cpu_allocation_ratio default is 16; small hosts want less
  double memory_overcommit = 1.0;  // Nova's ram_allocation_ratio
  int heartbeat_grace_seconds = 40;
};

struct Demand {
  int vcpus = 0;
  int64_t memory_mib = 0;
};

struct NodeView {
  std::string name;
  bool ready = false;
  bool unschedulable = false;
  std::string not_ready_reason;
  json labels = json::object();
  int alloc_vcpus = 0;
  int64_t alloc_memory_mib = 0;
  int used_vcpus = 0;
  int64_t used_memory_mib = 0;
};

struct Decision {
  std::string node;                 // empty when nothing fits
  std::vector<std::string> reasons; // one line per rejected node
  std::string Message(size_t total_nodes) const;
};

// Pure decision: filters nodes (Ready, schedulable, nodeSelector, capacity with overcommit) and scores the rest
// by the most free memory share (spreads), ties by name.
Decision Choose(const Demand& demand, const json& node_selector, const std::vector<NodeView>& nodes,
                const Options& opts);

// The resources an Instance asks for: spec.resources, or its InstanceType's spec (looked up in `flavors`,
// name -> InstanceType object). kNotFound naming the flavor when it does not exist.
StatusOr<Demand> DemandOf(const json& instance, const std::map<std::string, json>& flavors);

class PlacementReconciler : public runtime::Reconciler {
 public:
  PlacementReconciler(ApiClient* client, runtime::Informer* instances, runtime::Informer* nodes,
                      runtime::Informer* flavors, Options opts);
  std::string Name() const override { return "placement"; }
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  std::vector<NodeView> Nodes(const std::string& skip_uid);

  ApiClient* client_;
  runtime::Informer* instances_;
  runtime::Informer* nodes_;
  runtime::Informer* flavors_;
  Options opts_;
  runtime::EventRecorder events_;
  // Reservations made by this reconciler that the instance cache may not show yet: uid -> (node, demand).
  std::mutex mu_;
  std::map<std::string, std::pair<std::string, Demand>> reserved_;
};

}  // namespace stratus::placement
