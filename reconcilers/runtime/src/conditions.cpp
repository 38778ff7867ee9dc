// Conditions, status writes that skip no-ops, and Event recording.
#include "stratus/runtime/conditions.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include "stratus/core/object.h"

namespace stratus::runtime {
namespace {

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string Truncate(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

std::string RandomHex16() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          (static_cast<uint64_t>(std::random_device{}()) << 32));
  static const char* kHex = "0123456789abcdef";
  uint64_t v = rng();
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[v & 0xF];
    v >>= 4;
  }
  return out;
}

// `<object-name>.<hex>`: a DNS-1123 subdomain of at most 253 characters.
std::string EventName(const std::string& object_name) {
  std::string base = Truncate(object_name, 253 - 17);
  while (!base.empty() && (base.back() == '-' || base.back() == '.')) base.pop_back();
  if (base.empty()) base = "event";
  return base + "." + RandomHex16();
}

}  // namespace

bool RemoveCondition(json& obj, const std::string& type) {
  if (!obj.is_object() || !obj.contains("status") || !obj["status"].is_object()) return false;
  if (!obj["status"].contains("conditions") || !obj["status"]["conditions"].is_array()) return false;
  json& conds = obj["status"]["conditions"];
  for (auto it = conds.begin(); it != conds.end(); ++it) {
    if (it->is_object() && it->value("type", "") == type) {
      conds.erase(it);
      return true;
    }
  }
  return false;
}

json DeleteBlockedStatus(const json& obj, const std::string& message, std::vector<PendingEvent>* events) {
  json out = obj;
  out["status"]["phase"] = "Deleting";
  if (SetCondition(out, "Ready", "False", "DeleteBlocked", message)) {
    events->push_back({"Warning", "DeleteBlocked", message});
  }
  return out;
}

bool SetCondition(json& obj, const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message) {
  if (!obj.is_object()) obj = json::object();
  if (!obj.contains("status") || !obj["status"].is_object()) obj["status"] = json::object();
  json& conds = obj["status"]["conditions"];
  if (!conds.is_array()) conds = json::array();
  json generation;
  if (obj.contains("metadata") && obj["metadata"].is_object() && obj["metadata"].contains("generation") &&
      obj["metadata"]["generation"].is_number_integer()) {
    generation = obj["metadata"]["generation"];
  }
  for (auto& c : conds) {
    if (!c.is_object() || c.value("type", "") != type) continue;
    bool changed = false;
    if (!c.contains("status") || c["status"] != status) {
      c["status"] = status;
      c["lastTransitionTime"] = NowRfc3339();
      changed = true;
    } else if (!c.contains("lastTransitionTime")) {
      c["lastTransitionTime"] = NowRfc3339();
      changed = true;
    }
    if (!c.contains("reason") || c["reason"] != reason) {
      c["reason"] = reason;
      changed = true;
    }
    if (!c.contains("message") || c["message"] != message) {
      c["message"] = message;
      changed = true;
    }
    if (!generation.is_null() && (!c.contains("observedGeneration") || c["observedGeneration"] != generation)) {
      c["observedGeneration"] = generation;
      changed = true;
    }
    return changed;
  }
  json c = {{"type", type},
            {"status", status},
            {"reason", reason},
            {"message", message},
            {"lastTransitionTime", NowRfc3339()}};
  if (!generation.is_null()) c["observedGeneration"] = generation;
  conds.push_back(std::move(c));
  return true;
}

json GetCondition(const json& obj, const std::string& type) {
  if (!obj.is_object() || !obj.contains("status") || !obj["status"].is_object()) return json();
  const json& st = obj["status"];
  if (!st.contains("conditions") || !st["conditions"].is_array()) return json();
  for (const auto& c : st["conditions"]) {
    if (c.is_object() && c.value("type", "") == type) return c;
  }
  return json();
}

bool IsConditionTrue(const json& obj, const std::string& type) {
  json c = GetCondition(obj, type);
  return c.is_object() && c.contains("status") && c["status"] == "True";
}

bool HasFinalizer(const json& obj, const std::string& finalizer) {
  if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].contains("finalizers")) return false;
  const json& fins = obj["metadata"]["finalizers"];
  if (!fins.is_array()) return false;
  for (const auto& f : fins) {
    if (f == finalizer) return true;
  }
  return false;
}

namespace {
StatusOr<json> PatchFinalizers(ApiClient* client, const std::string& plural, const json& obj, const json& fins) {
  return client->Patch(plural, MetaString(obj, "namespace"), MetaString(obj, "name"),
                       {{"metadata", {{"finalizers", fins}, {"resourceVersion", MetaString(obj, "resourceVersion")}}}});
}
}  // namespace

StatusOr<json> AddFinalizer(ApiClient* client, const std::string& plural, const json& obj,
                            const std::string& finalizer) {
  if (HasFinalizer(obj, finalizer)) return obj;
  json fins = obj["metadata"].value("finalizers", json::array());
  fins.push_back(finalizer);
  return PatchFinalizers(client, plural, obj, fins);
}

Status RemoveFinalizer(ApiClient* client, const std::string& plural, const json& obj, const std::string& finalizer) {
  json fins = json::array();
  for (const auto& f : obj["metadata"].value("finalizers", json::array())) {
    if (f != finalizer) fins.push_back(f);
  }
  auto p = PatchFinalizers(client, plural, obj, fins);
  if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
  return Status::Ok();
}

Status ReportNodeEntry(ApiClient* client, const std::string& plural, const json& obj, const std::string& node,
                       const json& entry) {
  const json* cur = nullptr;
  if (obj.contains("status") && obj["status"].is_object() && obj["status"].contains("nodes") &&
      obj["status"]["nodes"].is_object() && obj["status"]["nodes"].contains(node) &&
      obj["status"]["nodes"][node].is_object()) {
    cur = &obj["status"]["nodes"][node];
  }
  bool same = cur != nullptr;
  for (const auto& [k, v] : entry.items()) {
    if (!same) break;
    same = v.is_null() ? !cur->contains(k) : (cur->contains(k) && (*cur)[k] == v);
  }
  if (same) return Status::Ok();
  json patch = {{"status", {{"nodes", {{node, entry}}}}}};
  auto u = client->Patch(plural, MetaString(obj, "namespace"), MetaString(obj, "name"), patch, "status");
  if (!u.ok() && u.status().code() != Code::kNotFound) return u.status();
  return Status::Ok();
}

StatusOr<json> UpdateStatusIfChanged(ApiClient* client, const std::string& plural, const json& current,
                                     const json& desired) {
  static const json kNull;
  const json& cur = current.is_object() && current.contains("status") ? current["status"] : kNull;
  const json& want = desired.is_object() && desired.contains("status") ? desired["status"] : kNull;
  if (cur == want) return current;
  // The current object pins resourceVersion: a stale read gets 409 and the reconcile runs again.
  json body = current;
  if (want.is_null()) {
    body.erase("status");
  } else {
    body["status"] = want;
  }
  return client->UpdateStatus(plural, MetaString(current, "namespace"), body);
}

struct EventRecorder::State {
  struct Entry {
    std::string name;
    std::string ns;
    int64_t count = 1;
  };
  std::mutex mu;
  std::map<std::string, Entry> seen;
};

EventRecorder::EventRecorder(ApiClient* client, std::string component, std::string host)
    : client_(client),
      component_(std::move(component)),
      host_(host.empty() ? Hostname() : std::move(host)),
      state_(std::make_shared<State>()) {}

void EventRecorder::Record(const json& obj, const std::string& type, const std::string& reason,
                           const std::string& message) {
  try {
    if (client_ == nullptr || !obj.is_object()) return;
    std::string name = MetaString(obj, "name");
    if (name.empty()) return;
    std::string obj_ns = MetaString(obj, "namespace");
    std::string uid = MetaString(obj, "uid");
    std::string kind = obj.value("kind", "");
    std::string ns = obj_ns.empty() ? "default" : obj_ns;
    std::string ev_type = type == "Warning" ? "Warning" : "Normal";
    std::string ev_reason = Truncate(reason, 128);
    std::string ev_message = Truncate(message, 32768);
    std::string rv = MetaString(obj, "resourceVersion");
    std::string now = NowRfc3339();
    std::string dedupe = (uid.empty() ? kind + "/" + obj_ns + "/" + name : uid) + '\x1f' + ev_reason + '\x1f' +
                         ev_message;

    std::optional<State::Entry> prior;
    {
      std::lock_guard lock(state_->mu);
      auto it = state_->seen.find(dedupe);
      if (it != state_->seen.end()) prior = it->second;
    }
    if (prior) {
      json patch = {{"count", prior->count + 1}, {"lastTimestamp", now}};
      if (!rv.empty()) patch["involvedObject"] = {{"resourceVersion", rv}};
      auto p = client_->Patch("events", prior->ns, prior->name, patch);
      if (p.ok()) {
        std::lock_guard lock(state_->mu);
        auto it = state_->seen.find(dedupe);
        if (it != state_->seen.end() && it->second.name == prior->name) {
          it->second.count = std::max(it->second.count, prior->count + 1);
        }
        return;
      }
      if (p.status().code() != Code::kNotFound) {
        spdlog::debug("event update failed: event={}/{} reason={} error={}", prior->ns, prior->name, ev_reason,
                      p.status().ToString());
        return;
      }
      // The Event was deleted (expired, or by a user): record a new one.
      std::lock_guard lock(state_->mu);
      state_->seen.erase(dedupe);
    }

    json involved = {{"apiVersion", obj.value("apiVersion", std::string(kApiVersion))}, {"kind", kind}, {"name", name}};
    if (!obj_ns.empty()) involved["namespace"] = obj_ns;
    if (!uid.empty()) involved["uid"] = uid;
    if (!rv.empty()) involved["resourceVersion"] = rv;
    json source = {{"component", component_}};
    if (!host_.empty()) source["host"] = host_;
    json ev = {{"apiVersion", kApiVersion},
               {"kind", "Event"},
               {"metadata", {{"namespace", ns}}},
               {"involvedObject", involved},
               {"reason", ev_reason},
               {"message", ev_message},
               {"type", ev_type},
               {"count", 1},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"source", source}};
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::string ev_name = EventName(name);
      ev["metadata"]["name"] = ev_name;
      auto c = client_->Create("events", ns, ev);
      if (c.ok()) {
        std::lock_guard lock(state_->mu);
        if (state_->seen.size() >= 10000) state_->seen.clear();  // bound memory; worst case a new Event
        state_->seen[dedupe] = State::Entry{ev_name, ns, 1};
        return;
      }
      if (c.status().code() != Code::kAlreadyExists) {
        spdlog::debug("event not recorded: object={}/{} reason={} error={}", ns, name, ev_reason,
                      c.status().ToString());
        return;
      }
    }
  } catch (const std::exception& e) {
    spdlog::debug("event not recorded: reason={} error={}", reason, e.what());
  } catch (...) {
    spdlog::debug("event not recorded: reason={}", reason);
  }
}

void WarnIfFailed(const Status& s, const std::string& what) {
  if (!s.ok()) spdlog::warn("{} failed: {}", what, s.message());
}

}  // namespace stratus::runtime
