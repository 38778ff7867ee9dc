#include "stratus/summary/summary.h"

#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"

namespace stratus::summary {

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

std::map<std::string, json> EntriesOfExistingNodes(const json& object, const std::vector<json>& nodes) {
  std::map<std::string, json> entries;
  if (!object.contains("status") || !object["status"].is_object() || !object["status"].contains("nodes") ||
      !object["status"]["nodes"].is_object()) {
    return entries;
  }
  const json& all = object["status"]["nodes"];
  for (const auto& n : nodes) {
    std::string name = MetaString(n, "name");
    if (all.contains(name) && all[name].is_object()) entries[name] = all[name];
  }
  return entries;
}

std::string NotReadyNodes(const std::string& lead, const std::vector<json>& nodes) {
  if (nodes.empty()) return "no node has registered (is a node agent running?)";
  std::string msg = lead + ":";
  for (const auto& n : nodes) {
    std::string why;
    if (!NodeReady(n, &why)) msg += " node " + MetaString(n, "name") + ": " + why + ";";
  }
  msg.pop_back();
  return msg;
}

SummaryReconciler::SummaryReconciler(ApiClient* client, std::string plural, runtime::Informer* objects,
                                     runtime::Informer* nodes, SummarizeFn summarize)
    : client_(client), plural_(std::move(plural)), objects_(objects), nodes_(nodes), summarize_(std::move(summarize)) {}

std::vector<std::string> SummaryReconciler::AllKeys() const {
  std::vector<std::string> keys;
  for (const auto& i : objects_->List()) keys.push_back(runtime::KeyFor(i));
  return keys;
}

StatusOr<runtime::Result> SummaryReconciler::Reconcile(const std::string& key) {
  json img = objects_->Get(key);
  if (img.is_null() || !MetaString(img, "deletionTimestamp").empty()) return runtime::Result::Done();
  Summary sum = summarize_(img, nodes_->List());
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
  auto u = runtime::UpdateStatusIfChanged(client_, plural_, img, desired);
  if (!u.ok()) return u.status();
  return runtime::Result::Done();
}

std::vector<runtime::WatchSpec> SummaryReconciler::Watches() {
  // A node's readiness is part of every summary (NodeNotReady reasons): a node change looks at them all.
  return {{objects_, nullptr}, {nodes_, [this](const std::string&, const json&) { return AllKeys(); }}};
}

}  // namespace stratus::summary
