#include "stratus/core/columns.h"

#include "stratus/core/sshkey.h"

#include <functional>

#include "stratus/core/json_text.h"
#include "stratus/core/object.h"

namespace stratus {

namespace {

using Getter = std::function<std::string(const json& obj, int64_t now)>;

struct Column {
  std::string header;
  Getter get;
  bool wide_only = false;
};

std::string OrNone(std::string s) { return s.empty() ? "<none>" : s; }

Getter Path(std::vector<std::string> paths, std::string fallback = "<none>") {
  return [paths, fallback](const json& o, int64_t) {
    std::string t = FirstText(o, paths);
    return t.empty() ? fallback : t;
  };
}

bool Terminating(const json& o) { return !MetaString(o, "deletionTimestamp").empty(); }

std::string Phase(const json& o, const std::string& fallback = "<none>") {
  if (Terminating(o)) return "Terminating";
  std::string p = JsonText(o, "status.phase");
  return p.empty() ? fallback : p;
}

std::string Ready(const json& o) {
  std::string s = ConditionStatus(o, "Ready");
  return s.empty() ? "<none>" : s;
}

std::string MiBAt(const json& o, const std::string& path) {
  const json* v = JsonAt(o, path);
  if (v == nullptr || v->is_null()) return "<none>";
  if (v->is_number_integer() || v->is_number_unsigned()) return FormatMiB(v->get<int64_t>());
  return ScalarText(*v);
}

std::string BytesAt(const json& o, const std::string& path) {
  const json* v = JsonAt(o, path);
  if (v == nullptr || v->is_null()) return "<none>";
  if (v->is_number_integer() || v->is_number_unsigned()) return FormatBytes(v->get<int64_t>());
  return ScalarText(*v);
}

std::string FirstAddress(const json& o) {
  const json* a = JsonAt(o, "status.addresses");
  if (a == nullptr || !a->is_array()) return "<none>";
  std::vector<std::string> ips;
  for (const auto& x : *a) {
    if (x.is_object()) {
      std::string ip = x.contains("ip") ? ScalarText(x["ip"]) : (x.contains("address") ? ScalarText(x["address"]) : "");
      if (!ip.empty()) ips.push_back(ip);
    }
  }
  return ips.empty() ? "<none>" : Join(ips, ",");
}

std::string ArraySize(const json& o, const std::string& path) {
  const json* a = JsonAt(o, path);
  if (a == nullptr || !a->is_array()) return "0";
  return std::to_string(a->size());
}

std::string EventLastSeen(const json& o, int64_t now) {
  std::string last = FirstText(o, {"lastTimestamp", "eventTime", "firstTimestamp", "metadata.creationTimestamp"});
  std::string age = AgeSince(last, now);
  const json* count = JsonAt(o, "count");
  if (count != nullptr && count->is_number_integer() && count->get<int64_t>() > 1) {
    std::string first = FirstText(o, {"firstTimestamp", "metadata.creationTimestamp"});
    age += " (x" + std::to_string(count->get<int64_t>()) + " over " + AgeSince(first, now) + ")";
  }
  return age;
}

std::string EventObject(const json& o, int64_t) {
  std::string kind = ToLower(JsonText(o, "involvedObject.kind"));
  std::string name = JsonText(o, "involvedObject.name");
  if (kind.empty()) return OrNone(name);
  return kind + "/" + name;
}

std::string NodeReady(const json& o, int64_t) {
  std::string s = ConditionStatus(o, "Ready");
  std::string out = s == "True" ? "Ready" : (s.empty() ? "Unknown" : "NotReady");
  const json* u = JsonAt(o, "spec.unschedulable");
  if (u != nullptr && u->is_boolean() && u->get<bool>()) out += ",SchedulingDisabled";
  return out;
}

std::string NetworkReady(const json& o, int64_t) {
  std::string s = ConditionStatus(o, "Ready");
  if (!s.empty()) return s;
  return Phase(o);
}

std::string ImageProgress(const json& o, int64_t) {
  const json* p = JsonAt(o, "status.progress");
  if (p == nullptr || p->is_null()) return "<none>";
  return ScalarText(*p) + "%";
}

std::vector<Column> ColumnsFor(const ResourceInfo& r) {
  Getter age = [](const json& o, int64_t now) { return AgeOf(o, now); };
  const std::string& k = r.kind;
  if (k == "Instance") {
    return {{"STATUS", [](const json& o, int64_t) { return Phase(o); }},
            {"READY", [](const json& o, int64_t) { return Ready(o); }},
            {"NODE", Path({"status.nodeName", "spec.nodeName"})},
            {"IP", [](const json& o, int64_t) { return FirstAddress(o); }},
            {"AGE", age},
            {"TYPE", [](const json& o, int64_t) {
               std::string t = JsonText(o, "spec.instanceType");
               if (!t.empty()) return t;
               std::string c = JsonText(o, "spec.resources.vcpus");
               std::string m = JsonText(o, "spec.resources.memoryMiB");
               if (c.empty() && m.empty()) return std::string("<none>");
               return c + "vcpu/" + MiBAt(o, "spec.resources.memoryMiB");
             }, true},
            {"IMAGE", Path({"spec.image", "spec.kernelImage"}), true},
            {"POWER", Path({"status.powerState", "spec.powerState"}), true}};
  }
  if (k == "Image") {
    return {{"TYPE", Path({"spec.type"}, "disk")},
            {"PHASE", [](const json& o, int64_t) { return Phase(o); }},
            {"SIZE", [](const json& o, int64_t) { return BytesAt(o, "status.size"); }},
            {"PROGRESS", ImageProgress},
            {"AGE", age},
            {"FORMAT", Path({"status.format", "spec.format"}), true},
            {"SOURCE", Path({"spec.source.url"}), true}};
  }
  if (k == "Volume") {
    return {{"SIZE", Path({"status.capacity", "spec.size"})},
            {"PHASE", [](const json& o, int64_t) { return Phase(o); }},
            {"NODE", Path({"status.node", "status.nodeName", "spec.nodeName"})},
            {"ATTACHED-TO", [](const json& o, int64_t) {
               std::string inst = JsonText(o, "status.attachment.instance");
               if (inst.empty()) return std::string("<none>");
               std::string dev = JsonText(o, "status.attachment.device");
               return dev.empty() ? inst : inst + ":" + dev;
             }},
            {"AGE", age},
            {"POOL", Path({"status.pool", "spec.pool"}), true},
            {"FORMAT", Path({"spec.format"}), true},
            {"SOURCE", [](const json& o, int64_t) {
               std::string img = JsonText(o, "spec.source.image");
               if (!img.empty()) return "image/" + img;
               std::string vol = JsonText(o, "spec.source.volume");
               if (!vol.empty()) return "volume/" + vol;
               std::string snap = JsonText(o, "spec.source.snapshot");
               if (!snap.empty()) return "volumesnapshot/" + snap;
               return std::string("<none>");
             }, true}};
  }
  if (k == "Migration") {
    return {{"INSTANCE", Path({"spec.instance"})},
            {"SOURCE", Path({"status.sourceNode"})},
            {"TARGET", Path({"status.targetNode", "spec.targetNode"})},
            {"PHASE", [](const json& o, int64_t) { return Phase(o); }},
            {"PROGRESS", Path({"status.progress.percent"}), false},
            {"AGE", age},
            {"MESSAGE", Path({"status.message"}), true}};
  }
  if (k == "VolumeSnapshot") {
    return {{"VOLUME", Path({"spec.volume"})},
            {"SIZE", Path({"status.size"})},
            {"PHASE", [](const json& o, int64_t) { return Phase(o); }},
            {"NODE", Path({"status.node"})},
            {"AGE", age},
            {"PAUSED-MS", Path({"status.pausedMillis"}), true},
            {"PATH", Path({"status.path"}), true}};
  }
  if (k == "Network") {
    return {{"CIDR", Path({"spec.cidr"})},
            {"MODE", Path({"spec.mode"}, "nat")},
            {"READY", NetworkReady},
            {"AGE", age},
            {"GATEWAY", Path({"status.gateway", "spec.gateway"}), true},
            {"BRIDGE", Path({"status.bridge"}), true},
            {"ALLOCATED", Path({"status.allocated"}), true}};
  }
  if (k == "Node") {
    return {{"READY", NodeReady},
            {"VCPUS", Path({"status.capacity.vcpus"})},
            {"MEMORY", [](const json& o, int64_t) { return MiBAt(o, "status.capacity.memoryMiB"); }},
            {"VIRT", Path({"status.virtType"})},
            {"AGE", age},
            {"ALLOCATABLE-VCPUS", Path({"status.allocatable.vcpus"}), true},
            {"ALLOCATABLE-MEMORY", [](const json& o, int64_t) { return MiBAt(o, "status.allocatable.memoryMiB"); },
             true},
            {"LIBVIRT", Path({"status.nodeInfo.libvirtVersion"}), true},
            {"HEARTBEAT", [](const json& o, int64_t now) {
               std::string hb = JsonText(o, "status.lastHeartbeatTime");
               return hb.empty() ? std::string("<none>") : AgeSince(hb, now);
             }, true}};
  }
  if (k == "InstanceType") {
    return {{"VCPUS", Path({"spec.vcpus"})},
            {"MEMORY", [](const json& o, int64_t) { return MiBAt(o, "spec.memoryMiB"); }},
            {"DISK", [](const json& o, int64_t) {
               std::string d = JsonText(o, "spec.diskGiB");
               return d.empty() ? std::string("<none>") : d + "Gi";
             }},
            {"AGE", age, true}};
  }
  if (k == "Event") {
    return {{"TYPE", Path({"type"}, "Normal")},
            {"REASON", Path({"reason"})},
            {"OBJECT", EventObject},
            {"MESSAGE", Path({"message"}, "")},
            {"SOURCE", [](const json& o, int64_t) {
               std::string c = JsonText(o, "source.component");
               std::string h = JsonText(o, "source.host");
               if (c.empty()) return OrNone(h);
               return h.empty() ? c : c + ", " + h;
             }, true},
            {"COUNT", Path({"count"}, "1"), true}};
  }
  if (k == "Namespace") {
    return {{"STATUS", [](const json& o, int64_t) { return Phase(o, "Active"); }}, {"AGE", age}};
  }
  if (k == "KeyPair") {
    return {{"TYPE", [](const json& o, int64_t) {
               auto k = ParseSshPublicKey(JsonText(o, "spec.publicKey"));
               return k.ok() ? k->type : std::string("<none>");
             }},
            {"FINGERPRINT", [](const json& o, int64_t) {
               auto k = ParseSshPublicKey(JsonText(o, "spec.publicKey"));
               return k.ok() ? SshFingerprint(*k) : std::string("<none>");
             }},
            {"AGE", age}};
  }
  if (k == "SecurityGroup") {
    return {{"INGRESS", [](const json& o, int64_t) { return ArraySize(o, "spec.ingress"); }},
            {"EGRESS", [](const json& o, int64_t) { return ArraySize(o, "spec.egress"); }},
            {"AGE", age}};
  }
  if (k == "Address") {
    return {{"IP", Path({"status.ip", "spec.ip"})},
            {"POOL", Path({"spec.pool"})},
            {"INSTANCE", Path({"spec.instance"})},
            {"PRIVATE-IP", Path({"status.privateIp"})},
            {"PHASE", [](const json& o, int64_t) { return Phase(o); }},
            {"AGE", age},
            {"NODE", Path({"status.node"}), true},
            {"READY", [](const json& o, int64_t) { return Ready(o); }, true}};
  }
  if (k == "ManifestSource") {
    return {{"URL", Path({"spec.url"})},
            {"REVISION", [](const json& o, int64_t) { return OrNone(JsonText(o, "status.revision").substr(0, 12)); }},
            {"LAST APPLIED", [](const json& o, int64_t now) {
               std::string t = JsonText(o, "status.lastAppliedTime");
               return t.empty() ? std::string("<none>") : AgeSince(t, now);
             }},
            {"READY", [](const json& o, int64_t) { return Ready(o); }},
            {"AGE", age},
            {"PATH", Path({"spec.path"}), true},
            {"MESSAGE", [](const json& o, int64_t) {
               const json* c = FindCondition(o, "Ready");
               return OrNone(c == nullptr ? "" : JsonText(*c, "message"));
             }, true}};
  }
  if (k == "Lease") {
    return {{"HOLDER", Path({"spec.holderIdentity"})},
            {"RENEWED", [](const json& o, int64_t now) {
               std::string t = JsonText(o, "spec.renewTime");
               return t.empty() ? std::string("<none>") : AgeSince(t, now);
             }},
            {"TRANSITIONS", Path({"spec.leaseTransitions"}, "0")},
            {"AGE", age}};
  }
  if (k == "InstanceGroup") {
    return {{"POLICY", Path({"spec.policy"})}, {"AGE", age}};
  }
  if (k == "Secret") {
    return {{"TYPE", Path({"type"})},
            {"DATA", [](const json& o, int64_t) {
               return std::to_string(o.contains("data") && o["data"].is_object() ? o["data"].size() : 0);
             }},
            {"AGE", age}};
  }
  if (k == "AddressPool") {
    return {{"CIDR", Path({"spec.cidr"})},
            {"INTERFACE", Path({"spec.interface"})},
            {"ALLOCATED", Path({"status.allocated"}, "0")},
            {"FREE", Path({"status.free"})},
            {"AGE", age},
            {"DEFAULT", [](const json& o, int64_t) {
               // EC2's AllocateAddress takes from the pool labelled stratus.io/default-pool=true.
               const json& md = o.contains("metadata") ? o["metadata"] : json();
               bool d = md.is_object() && md.contains("labels") && md["labels"].is_object() &&
                        md["labels"].value("stratus.io/default-pool", "") == "true";
               return std::string(d ? "true" : "false");
             }, true}};
  }
  return {{"AGE", age}};
}

}  // namespace

std::vector<std::string> TableHeader(const ResourceInfo& r, const TableOptions& opts) {
  std::vector<std::string> h;
  if (opts.with_namespace && r.namespaced) h.push_back("NAMESPACE");
  if (r.kind == "Event") {
    h.push_back("LAST SEEN");
  } else {
    h.push_back("NAME");
  }
  for (const auto& c : ColumnsFor(r)) {
    if (!c.wide_only || opts.wide) h.push_back(c.header);
  }
  if (r.kind == "Event" && opts.wide) h.push_back("NAME");
  if (opts.show_labels) h.push_back("LABELS");
  return h;
}

std::vector<std::string> TableRow(const ResourceInfo& r, const json& obj, const TableOptions& opts, int64_t now) {
  std::vector<std::string> row;
  if (opts.with_namespace && r.namespaced) row.push_back(OrNone(MetaString(obj, "namespace")));
  std::string name = MetaString(obj, "name");
  if (opts.kind_prefix) name = KindSlashName(r, name);
  if (r.kind == "Event") {
    row.push_back(EventLastSeen(obj, now));
  } else {
    row.push_back(name);
  }
  for (const auto& c : ColumnsFor(r)) {
    if (!c.wide_only || opts.wide) row.push_back(c.get(obj, now));
  }
  if (r.kind == "Event" && opts.wide) row.push_back(name);
  if (opts.show_labels) row.push_back(LabelsText(obj));
  return row;
}

std::string KindSlashName(const ResourceInfo& r, const std::string& name) { return r.singular + "/" + name; }

const json* FindCondition(const json& obj, const std::string& type) {
  const json* conds = JsonAt(obj, "status.conditions");
  if (conds == nullptr || !conds->is_array()) return nullptr;
  std::string want = ToLower(type);
  for (const auto& c : *conds) {
    if (c.is_object() && c.contains("type") && c["type"].is_string() && ToLower(c["type"].get<std::string>()) == want) {
      return &c;
    }
  }
  return nullptr;
}

std::string ConditionStatus(const json& obj, const std::string& type) {
  const json* c = FindCondition(obj, type);
  if (c == nullptr) return "";
  std::string s = JsonText(*c, "status");
  return s.empty() ? "Unknown" : s;
}

std::string AgeSince(const std::string& ts, int64_t now) {
  if (ts.empty()) return "<unknown>";
  int64_t t = ParseRfc3339(ts);
  if (t < 0) return "<unknown>";
  return HumanAge(now - t);
}

std::string AgeOf(const json& obj, int64_t now) { return AgeSince(MetaString(obj, "creationTimestamp"), now); }

std::string LabelsText(const json& obj) {
  const json* labels = JsonAt(obj, "metadata.labels");
  if (labels == nullptr || !labels->is_object() || labels->empty()) return "<none>";
  std::vector<std::string> parts;
  for (auto it = labels->begin(); it != labels->end(); ++it) parts.push_back(it.key() + "=" + ScalarText(it.value()));
  return Join(parts, ",");
}

std::string ProgressSummary(const json& obj) {
  std::vector<std::string> parts;
  std::string phase = Terminating(obj) ? "Terminating" : JsonText(obj, "status.phase");
  if (!phase.empty()) {
    std::string p = "phase " + phase;
    const json* prog = JsonAt(obj, "status.progress");
    if (prog != nullptr && prog->is_number() && phase != "Ready") p += " " + ScalarText(*prog) + "%";
    parts.push_back(p);
  }
  const json* ready = FindCondition(obj, "Ready");
  if (ready != nullptr) {
    std::string c = "Ready=" + OrNone(JsonText(*ready, "status"));
    std::string reason = JsonText(*ready, "reason");
    std::string msg = JsonText(*ready, "message");
    if (!reason.empty() || !msg.empty()) {
      c += " (" + reason + (reason.empty() || msg.empty() ? "" : ": ") + msg + ")";
    }
    parts.push_back(c);
  } else {
    // No Ready condition yet: the first condition that is not True says what the object is waiting for.
    const json* conds = JsonAt(obj, "status.conditions");
    if (conds != nullptr && conds->is_array()) {
      for (const auto& cnd : *conds) {
        if (JsonText(cnd, "status") == "True") continue;
        std::string c = JsonText(cnd, "type") + "=" + JsonText(cnd, "status");
        std::string reason = JsonText(cnd, "reason");
        if (!reason.empty()) c += " (" + reason + ")";
        parts.push_back(c);
        break;
      }
    }
  }
  if (parts.empty()) return "no status reported yet";
  return Join(parts, ", ");
}

}  // namespace stratus
