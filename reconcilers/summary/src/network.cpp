#include "stratus/core/object.h"
#include "stratus/summary/summary.h"

namespace stratus::summary {

Summary SummarizeNetwork(const json& network, const std::vector<json>& nodes) {
  Summary s;
  std::map<std::string, json> entries = EntriesOfExistingNodes(network, nodes);
  json& f = s.fields;
  f["observedGeneration"] = network["metadata"].value("generation", 1);
  std::vector<std::string> ready, failed, terminating, pending;
  const json* any = nullptr;
  for (const auto& [node, e] : entries) {
    std::string phase = e.value("phase", "Pending");
    if (!any) any = &e;
    if (phase == "Ready") ready.push_back(node);
    else if (phase == "Failed") failed.push_back(node);
    else if (phase == "Terminating") terminating.push_back(node);
    else pending.push_back(node);
  }
  f["bridge"] = any && any->contains("bridge") ? (*any)["bridge"] : json();
  f["gateway"] = any && any->contains("gateway") ? (*any)["gateway"] : json();
  auto first = [&](const std::vector<std::string>& v) -> const json& { return entries[v.front()]; };
  auto why = [&](const std::vector<std::string>& v) {
    const json& e = first(v);
    return "node " + v.front() + ": " + e.value("message", "");
  };
  s.ready_status = "False";
  if (!terminating.empty()) {
    f["phase"] = "Terminating";
    s.ready_reason = first(terminating).value("reason", "Terminating");
    s.ready_message = why(terminating);
  } else if (!failed.empty()) {
    f["phase"] = "Failed";
    s.ready_reason = first(failed).value("reason", "Failed");
    s.ready_message = why(failed);
  } else if (!pending.empty()) {
    f["phase"] = "Pending";
    s.ready_reason = first(pending).value("reason", "Pending");
    s.ready_message = why(pending);
  } else if (!ready.empty()) {
    f["phase"] = "Ready";
    s.ready_status = "True";
    s.ready_reason = "Up";
    std::string on;
    for (const auto& n : ready) on += (on.empty() ? "" : ", ") + n;
    s.ready_message = "up on " + std::to_string(ready.size()) + " node(s): " + on;
  } else {
    f["phase"] = "Pending";
    bool any_ready_node = false;
    for (const auto& n : nodes) {
      std::string w;
      any_ready_node |= NodeReady(n, &w);
    }
    if (any_ready_node) {
      s.ready_reason = "Pending";
      s.ready_message = "no node with networking has reported it yet";
    } else {
      s.ready_reason = "NodeNotReady";
      s.ready_message = NotReadyNodes("no Ready node can set it up", nodes);
    }
  }
  return s;
}

}  // namespace stratus::summary
