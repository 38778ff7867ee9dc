#include "stratus/imagestatus/imagestatus.h"

#include <map>

#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"

namespace stratus::imagestatus {
namespace {

// "True" when the Node's Ready condition is True; its message otherwise (or a description of the missing status).
bool NodeReady(const json& node, std::string* why) {
  json c = runtime::GetCondition(node, "Ready");
  if (c.is_object() && c.value("status", "") == "True") return true;
  if (c.is_object()) {
    *why = c.value("reason", "NotReady") + ": " + c.value("message", "");
  } else {
    *why = "has not reported yet";
  }
  return false;
}

}  // namespace

Summary Summarize(const json& image, const std::vector<json>& nodes) {
  Summary s;
  std::map<std::string, json> entries;  // node -> its entry, for nodes that exist
  std::map<std::string, std::string> not_ready;  // node -> why
  std::vector<std::string> ready_nodes;
  const json* all = nullptr;
  if (image.contains("status") && image["status"].is_object() && image["status"].contains("nodes") &&
      image["status"]["nodes"].is_object()) {
    all = &image["status"]["nodes"];
  }
  for (const auto& n : nodes) {
    std::string name = MetaString(n, "name");
    std::string why;
    if (NodeReady(n, &why)) {
      ready_nodes.push_back(name);
    } else {
      not_ready[name] = why;
    }
    if (all && all->contains(name) && (*all)[name].is_object()) entries[name] = (*all)[name];
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
  if (ready_nodes.empty()) {
    s.ready_reason = "NodeNotReady";
    if (nodes.empty()) {
      s.ready_message = "no node has registered to import it (is a node agent running?)";
    } else {
      std::string msg = "no Ready node can import it:";
      for (const auto& [node, why] : not_ready) msg += " node " + node + ": " + why + ";";
      msg.pop_back();
      s.ready_message = msg;
    }
    return s;
  }
  s.ready_reason = "Pending";
  s.ready_message = "waiting for a node to import it";
  return s;
}

ImageStatusReconciler::ImageStatusReconciler(ApiClient* client, runtime::Informer* images, runtime::Informer* nodes)
    : client_(client), images_(images), nodes_(nodes) {}

std::vector<std::string> ImageStatusReconciler::AllImages() const {
  std::vector<std::string> keys;
  for (const auto& i : images_->List()) keys.push_back(runtime::KeyFor(i));
  return keys;
}

StatusOr<runtime::Result> ImageStatusReconciler::Reconcile(const std::string& key) {
  json img = images_->Get(key);
  if (img.is_null() || !MetaString(img, "deletionTimestamp").empty()) return runtime::Result::Done();
  Summary sum = Summarize(img, nodes_->List());
  json desired = img;
  json& st = desired["status"];
  if (!st.is_object()) st = json::object();
  for (const auto& [k, v] : sum.fields.items()) {
    if (v.is_null()) {
      st.erase(k);
    } else {
      st[k] = v;
    }
  }
  runtime::SetCondition(desired, "Ready", sum.ready_status, sum.ready_reason, sum.ready_message);
  // Written with the cached resourceVersion: a node's entry written meanwhile makes this a 409 and a retry, so
  // the summary never drops an entry.
  auto u = runtime::UpdateStatusIfChanged(client_, "images", img, desired);
  if (!u.ok()) return u.status();
  return runtime::Result::Done();
}

}  // namespace stratus::imagestatus
