// The pure parts of migrations: phases, the latest migration of an instance, the XML the target gets, whether an
// instance can move and where to.
#include <pugixml.hpp>

#include <algorithm>
#include <map>
#include <sstream>

#include "stratus/core/object.h"
#include "stratus/migration/migration.h"
#include "stratus/volume/volume.h"

namespace stratus::migration {

std::vector<PoolMove> PoolMoves(const json& source, const json& target) {
  auto pools = [](const json& node) {
    std::map<std::string, std::string> out;
    const json st = node.is_object() ? node.value("status", json::object()) : json::object();
    for (const auto& p : st.value("pools", json::array())) {
      if (!p.is_object() || p.value("images", false)) continue;  // the image cache is each node's own
      std::string path = p.value("path", "");
      if (!path.empty()) out[p.value("name", "")] = path;
    }
    return out;
  };
  std::vector<PoolMove> out;
  auto there = pools(target);
  for (const auto& [name, path] : pools(source)) {
    auto t = there.find(name);
    if (t != there.end()) out.push_back({name, path, t->second});
  }
  return out;
}

StatusOr<std::string> RewriteForTarget(const std::string& xml, const json& target, const std::vector<PoolMove>& pools,
                                       std::vector<MovedDisk>* moved) {
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str(), pugi::parse_default | pugi::parse_declaration)) {
    return InvalidError("the domain XML does not parse");
  }
  pugi::xml_node dom = doc.child("domain");
  if (!dom) return InvalidError("the domain XML has no <domain>");
  auto path = [&](const char* key) { return target.is_object() ? target.value(key, "") : std::string(); };
  for (const char* key : {"kernel", "initrd"}) {
    std::string p = path(key);
    pugi::xml_node n = dom.child("os").child(key);
    if (!p.empty() && n) n.text().set(p.c_str());
  }
  std::string seed = path("seed");
  for (pugi::xml_node disk : dom.child("devices").children("disk")) {
    pugi::xml_node src = disk.child("source");
    if (std::string(disk.child("target").attribute("dev").value()) == instance::kSeedTarget) {
      if (seed.empty()) continue;
      if (!src) src = disk.append_child("source");
      if (src.attribute("file")) src.attribute("file").set_value(seed.c_str());
      else src.append_attribute("file") = seed.c_str();
      continue;
    }
    if (disk.child("readonly") || std::string(disk.attribute("device").value()) == "cdrom") continue;
    // A writable disk: copied into the same pool on the target, under the same file name.
    pugi::xml_attribute file = src.attribute("file") ? src.attribute("file") : src.attribute("dev");
    if (!file) continue;  // no local file (network disk): nothing to copy
    std::string from = file.value();
    const PoolMove* pm = nullptr;
    for (const auto& p : pools) {
      if (from.rfind(p.source_path + "/", 0) == 0) pm = &p;
    }
    if (pm == nullptr) {
      return InvalidError("disk " + std::string(disk.child("target").attribute("dev").value()) + " (" + from +
                          ") is in no storage pool the target node has");
    }
    std::string to = pm->target_path + from.substr(pm->source_path.size());
    file.set_value(to.c_str());
    if (moved) moved->push_back({pm->pool, from, to});
  }
  // The target's owner mark: once there, the domain is the target agent's (its fence, if it is lost later).
  std::string owner = path("owner");
  for (pugi::xml_node md : dom.child("metadata").children()) {
    std::string n = md.name();
    if (owner.empty() || (n != "instance" && (n.size() < 9 || n.compare(n.size() - 9, 9, ":instance") != 0))) continue;
    pugi::xml_node o;
    for (pugi::xml_node c : md.children()) {
      std::string cn = c.name();
      if (cn == "owner" || (cn.size() > 6 && cn.compare(cn.size() - 6, 6, ":owner") == 0)) o = c;
    }
    if (!o) o = md.append_child("owner");
    o.text().set(owner.c_str());
  }
  std::string log = path("consoleLog");
  for (const char* dev : {"serial", "console"}) {
    for (pugi::xml_node d : dom.child("devices").children(dev)) {
      pugi::xml_node l = d.child("log");
      if (!log.empty() && l && l.attribute("file")) l.attribute("file").set_value(log.c_str());
    }
  }
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration);
  return out.str();
}

std::string Unmovable(const json& inst, bool live) {
  if (!inst.is_object() || !inst.contains("spec") || !inst["spec"].is_object()) return "the instance does not exist";
  if (!MetaString(inst, "deletionTimestamp").empty()) return "the instance is being deleted";
  if (inst["spec"].value("nodeName", "").empty()) return "the instance is not bound to a node yet";
  if (live) return "";
  std::vector<std::string> vols;
  for (const auto& u : volume::VolumesOf(inst)) vols.push_back(u.volume + (u.root ? " (root)" : ""));
  if (!vols.empty()) {
    std::string names;
    for (size_t i = 0; i < vols.size(); ++i) names += (i ? ", " : "") + vols[i];
    return "it is not running, and its volumes (" + names + ") are node-local: they move only with a live "
           "migration (start it, then migrate it)";
  }
  return "";
}

StatusOr<std::string> ChooseTarget(const json& inst, const std::string& source, const std::string& wanted,
                                   const std::vector<json>& nodes, const std::vector<json>& instances,
                                   const std::map<std::string, json>& flavors, int64_t now,
                                   const placement::Options& opts) {
  auto demand = placement::DemandOf(inst, flavors);
  if (!demand.ok()) return demand.status();
  // The views with what is bound to each node (the moving instance counts on its source only, which is no choice).
  placement::CapacityCache usage;
  for (const auto& i : instances) usage.Observe(i, false);
  std::vector<placement::NodeView> views = placement::ViewNodes(nodes, now, opts);
  usage.AddTo(&views, flavors);
  std::vector<placement::NodeView> candidates;
  for (const auto& v : views) {
    if (v.name == source) continue;
    if (!wanted.empty() && v.name != wanted) continue;
    candidates.push_back(v);
  }
  if (!wanted.empty() && candidates.empty()) {
    return Status(Code::kInvalid,
                  wanted == source ? "spec.targetNode: the instance runs on " + source + " already"
                                   : "spec.targetNode: no node named " + wanted);
  }
  placement::Decision d = placement::Choose(*demand, inst["spec"].value("nodeSelector", json::object()), candidates, opts);
  if (d.node.empty()) {
    std::string why;
    for (const auto& r : d.reasons) why += (why.empty() ? "" : "; ") + r;
    return Status(Code::kInvalid, "no node can take it: " + (why.empty() ? "there is no other node" : why));
  }
  return d.node;
}

}  // namespace stratus::migration
