#include "stratus/summary/summary.h"

#include <map>

#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"

namespace stratus::summary {

Summary SummarizeImage(const json& image, const std::vector<json>& nodes) {
  Summary s;
  std::map<std::string, json> entries = EntriesOfExistingNodes(image, nodes);
  bool any_ready_node = false;
  for (const auto& n : nodes) {
    std::string why;
    any_ready_node |= NodeReady(n, &why);
  }
  std::vector<std::string> cached, importing, failed, waiting;
  const json* ready_entry = nullptr;
  int progress = 0;
  for (const auto& [node, e] : entries) {
    std::string phase = e.value("phase", "Pending");
    if (phase == "Ready") {
      cached.push_back(node);
      if (!ready_entry) ready_entry = &e;
    } else if (phase == "Downloading" || phase == "Converting") {
      importing.push_back(node);
      progress = std::max(progress, e.value("progress", 0));
    } else if (phase == "Failed") {
      failed.push_back(node);
    } else {
      waiting.push_back(node);
    }
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
    return out;
  };
  json& f = s.fields;
  f["observedGeneration"] = image["metadata"].value("generation", 1);
  for (const char* k : {"size", "virtualSize", "format", "checksum"}) {
    f[k] = ready_entry && ready_entry->contains(k) ? (*ready_entry)[k] : json();
  }
  if (ready_entry) {
    f["phase"] = "Ready";
    f["progress"] = 100;
    s.ready_status = "True";
    s.ready_reason = "Imported";
    s.ready_message = "cached on " + std::to_string(cached.size()) + " of " + std::to_string(nodes.size()) +
                      " node(s): " + list(cached);
    return s;
  }
  s.ready_status = "False";
  if (!importing.empty()) {
    f["phase"] = entries[importing.front()].value("phase", "Downloading");
    f["progress"] = progress;
    s.ready_reason = f["phase"];
    s.ready_message = "importing on " + list(importing);
    return s;
  }
  f["progress"] = json();
  if (!failed.empty() && failed.size() == entries.size()) {
    const json& e = entries[failed.front()];
    f["phase"] = "Failed";
    s.ready_reason = e.value("reason", "Failed");
    s.ready_message = "node " + failed.front() + ": " + e.value("message", "");
    return s;
  }
  f["phase"] = "Pending";
  // Waiting for the data (the nodes say why: the same everywhere, e.g. AwaitingUpload).
  for (const auto& node : waiting) {
    const json& e = entries[node];
    if (!e.value("reason", "").empty()) {
      s.ready_reason = e.value("reason", "");
      s.ready_message = e.value("message", "");
      return s;
    }
  }
  if (!any_ready_node) {
    s.ready_reason = "NodeNotReady";
    s.ready_message = NotReadyNodes("no Ready node can import it", nodes);
    return s;
  }
  s.ready_reason = "Pending";
  s.ready_message = "waiting for a node to import it";
  return s;
}

}  // namespace stratus::summary
