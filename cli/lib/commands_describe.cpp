// stratusctl describe: metadata, spec, status, conditions and the object's recent events.
#include <algorithm>
#include <cctype>
#include <sstream>

#include "lib/commands.h"
#include "lib/common.h"
#include "lib/apply.h"
#include "stratus/core/columns.h"
#include "lib/table.h"
#include "lib/targets.h"
#include "lib/util.h"
#include "stratus/core/object.h"
#include "stratus/core/yaml.h"

namespace stratus::cli {

namespace {

constexpr size_t kLabelWidth = 20;

std::string Indent(const std::string& text, const std::string& prefix) {
  std::string out;
  for (const auto& line : Split(text, '\n')) {
    if (line.empty()) continue;
    out += prefix + line + "\n";
  }
  return out;
}

void Field(std::ostream& out, const std::string& label, const std::string& value) {
  std::string l = label + ":";
  if (l.size() < kLabelWidth) l.append(kLabelWidth - l.size(), ' ');
  else l += " ";
  out << l << value << "\n";
}

// A map (labels, annotations) one entry a line, aligned under the first.
void MapField(std::ostream& out, const std::string& label, const json* map, const std::string& skip_key = "") {
  std::vector<std::string> lines;
  if (map != nullptr && map->is_object()) {
    for (auto it = map->begin(); it != map->end(); ++it) {
      if (it.key() == skip_key) continue;
      std::string v = ScalarText(it.value());
      if (v.size() > 120) v = v.substr(0, 117) + "...";
      lines.push_back(it.key() + "=" + v);
    }
  }
  if (lines.empty()) {
    Field(out, label, "<none>");
    return;
  }
  Field(out, label, lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) out << std::string(kLabelWidth, ' ') << lines[i] << "\n";
}

void Section(std::ostream& out, const std::string& title, const json& value) {
  if (value.is_null() || (value.is_object() && value.empty())) {
    out << title << ":" << std::string(title.size() + 1 < kLabelWidth ? kLabelWidth - title.size() - 1 : 1, ' ')
        << "<none>\n";
    return;
  }
  if (!value.is_object() && !value.is_array()) {
    Field(out, title, ScalarText(value));
    return;
  }
  out << title << ":\n" << Indent(ToYaml(value), "  ");
}

// "involvedObject" -> "Involved Object".
std::string Title(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 0) {
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else if (std::isupper(static_cast<unsigned char>(c)) && std::islower(static_cast<unsigned char>(s[i - 1]))) {
      out += ' ';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

void DescribeEvents(Env& env, std::ostream& out, const ResourceInfo& r, const json& obj) {
  ListOptions lo;
  std::string name = MetaString(obj, "name");
  lo.field_selector = "involvedObject.kind=" + r.kind + ",involvedObject.name=" + name;
  // Events about cluster-scoped objects may be recorded in any namespace.
  std::string ns = r.namespaced ? MetaString(obj, "namespace") : "";
  if (r.namespaced && !ns.empty()) lo.field_selector += ",involvedObject.namespace=" + ns;
  auto list = ListAll(*env.client, "events", ns, lo);
  if (!list.ok()) {
    out << "Events:             <unable to list events: " << list.status().ToString() << ">\n";
    return;
  }
  std::string uid = MetaString(obj, "uid");
  std::vector<json> events;
  if (list->contains("items") && (*list)["items"].is_array()) {
    for (auto& e : (*list)["items"]) {
      // An event about an earlier object of the same name is not about this one.
      std::string euid = JsonText(e, "involvedObject.uid");
      if (!uid.empty() && !euid.empty() && euid != uid) continue;
      events.push_back(e);
    }
  }
  if (events.empty()) {
    out << "Events:             <none>\n";
    return;
  }
  auto last = [](const json& e) {
    std::string t = FirstText(e, {"lastTimestamp", "eventTime", "firstTimestamp"});
    return t.empty() ? MetaString(e, "creationTimestamp") : t;
  };
  std::stable_sort(events.begin(), events.end(), [&](const json& a, const json& b) { return last(a) < last(b); });
  int64_t now = env.Now();
  Table t({"TYPE", "REASON", "AGE", "FROM", "MESSAGE"});
  for (const auto& e : events) {
    std::string age = AgeSince(last(e), now);
    const json* count = JsonAt(e, "count");
    if (count != nullptr && count->is_number_integer() && count->get<int64_t>() > 1) {
      age += " (x" + std::to_string(count->get<int64_t>()) + " over " +
             AgeSince(FirstText(e, {"firstTimestamp", "metadata.creationTimestamp"}), now) + ")";
    }
    std::string from = JsonText(e, "source.component");
    std::string host = JsonText(e, "source.host");
    if (!host.empty()) from += (from.empty() ? "" : ", ") + host;
    t.AddRow({JsonText(e, "type").empty() ? "Normal" : JsonText(e, "type"), JsonText(e, "reason"), age,
              from.empty() ? "<none>" : from, JsonText(e, "message")});
  }
  out << "Events:\n" << Indent(t.ToString(), "  ");
}

void DescribeObject(Env& env, const ResourceInfo& r, const json& obj) {
  std::ostream& out = *env.out;
  int64_t now = env.Now();
  Field(out, "Name", MetaString(obj, "name"));
  if (r.namespaced) Field(out, "Namespace", MetaString(obj, "namespace"));
  Field(out, "Kind", r.kind);
  MapField(out, "Labels", JsonAt(obj, "metadata.labels"));
  MapField(out, "Annotations", JsonAt(obj, "metadata.annotations"), kLastAppliedAnnotation);
  Field(out, "UID", MetaString(obj, "uid"));
  Field(out, "Resource Version", MetaString(obj, "resourceVersion"));
  std::string gen = JsonText(obj, "metadata.generation");
  if (!gen.empty()) Field(out, "Generation", gen);
  std::string created = MetaString(obj, "creationTimestamp");
  if (!created.empty()) Field(out, "Creation Timestamp", created + " (" + AgeSince(created, now) + " ago)");
  std::string deleting = MetaString(obj, "deletionTimestamp");
  if (!deleting.empty()) Field(out, "Deletion Timestamp", deleting + " (" + AgeSince(deleting, now) + " ago)");
  const json* fin = JsonAt(obj, "metadata.finalizers");
  if (fin != nullptr && fin->is_array() && !fin->empty()) {
    std::vector<std::string> f;
    for (const auto& x : *fin) f.push_back(ScalarText(x));
    Field(out, "Finalizers", Join(f, ", "));
  }
  const json* owners = JsonAt(obj, "metadata.ownerReferences");
  if (owners != nullptr && owners->is_array() && !owners->empty()) {
    std::vector<std::string> o;
    for (const auto& x : *owners) {
      std::string s = JsonText(x, "kind") + "/" + JsonText(x, "name");
      if (JsonText(x, "controller") == "true") s += " (controller)";
      o.push_back(s);
    }
    Field(out, "Owned By", Join(o, ", "));
  }

  if (r.kind == "Quota") {
    // As `kubectl describe quota`: one row per resource, its use against its limit.
    const json* used = JsonAt(obj, "status.used");
    const json* hard = JsonAt(obj, "status.hard");
    if (hard == nullptr || !hard->is_object()) hard = JsonAt(obj, "spec.hard");
    Table t({"RESOURCE", "USED", "HARD"});
    if (hard != nullptr && hard->is_object()) {
      for (auto it = hard->begin(); it != hard->end(); ++it) {
        std::string u = used != nullptr && used->is_object() && used->contains(it.key()) ? ScalarText((*used)[it.key()])
                                                                                         : "0";
        t.AddRow({it.key(), u, ScalarText(it.value())});
      }
    }
    out << "Resource Usage:\n" << Indent(t.ToString(), "  ");
    DescribeEvents(env, out, r, obj);
    return;
  }

  // Spec first, then any other top-level fields (Events keep theirs at the top level), then status.
  if (obj.contains("spec")) Section(out, "Spec", obj["spec"]);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& k = it.key();
    if (k == "apiVersion" || k == "kind" || k == "metadata" || k == "spec" || k == "status") continue;
    Section(out, Title(k), it.value());
  }
  if (r.has_status || obj.contains("status")) {
    json status = obj.contains("status") ? obj["status"] : json::object();
    json conditions = status.is_object() && status.contains("conditions") ? status["conditions"] : json();
    if (status.is_object()) status.erase("conditions");
    Section(out, "Status", status);
    if (conditions.is_array() && !conditions.empty()) {
      Table t({"TYPE", "STATUS", "REASON", "AGE", "MESSAGE"});
      for (const auto& c : conditions) {
        std::string since = JsonText(c, "lastTransitionTime");
        t.AddRow({JsonText(c, "type"), JsonText(c, "status"), JsonText(c, "reason").empty() ? "<none>" : JsonText(c, "reason"),
                  since.empty() ? "<unknown>" : AgeSince(since, now), JsonText(c, "message")});
      }
      out << "Conditions:\n" << Indent(t.ToString(), "  ");
    } else if (r.has_status) {
      Field(out, "Conditions", "<none>");
    }
  }
  if (r.kind != "Event") DescribeEvents(env, out, r, obj);
}

}  // namespace

int RunDescribe(Env& env, const DescribeOptions& opts) {
  auto targets = ParseTargets(opts.args);
  if (!targets.ok()) {
    PrintError(env, targets.status());
    return 1;
  }
  bool failed = false;
  bool first = true;
  bool any = false;
  for (const Target& t : *targets) {
    const ResourceInfo& r = *t.resource;
    std::string ns = NamespaceFor(env, r, opts.all_namespaces && t.names.empty());
    std::vector<json> objs;
    if (t.names.empty()) {
      ListOptions lo;
      lo.label_selector = opts.selector;
      auto list = ListAll(*env.client, r.plural, ns, lo);
      if (!list.ok()) {
        PrintError(env, list.status());
        failed = true;
        continue;
      }
      for (auto& o : (*list)["items"]) objs.push_back(std::move(o));
    } else {
      for (const auto& name : t.names) {
        auto obj = env.client->Get(r.plural, ns, name);
        if (!obj.ok()) {
          PrintError(env, obj.status());
          failed = true;
          continue;
        }
        objs.push_back(std::move(*obj));
      }
    }
    for (const auto& o : objs) {
      if (!first) *env.out << "\n\n";
      first = false;
      any = true;
      DescribeObject(env, r, o);
    }
  }
  if (!any && !failed) {
    *env.err << "No resources found in " << (env.ns.empty() ? "default" : env.ns) << " namespace.\n";
  }
  return failed ? 1 : 0;
}

}  // namespace stratus::cli
