// Filters and weighers of the placement reconciler, nova-scheduler's way: every filter is named, so "no valid
// host" says which one turned each node down.
#include <algorithm>
#include <cmath>

#include "stratus/core/quantity.h"
#include "stratus/placement/placement.h"

namespace stratus::placement {
namespace {

double Ratio(double node, double server) { return node > 0 ? node : server; }
int64_t CpuCap(const NodeView& n, const Options& o) {
  return static_cast<int64_t>(n.alloc_vcpus * Ratio(n.cpu_ratio, o.cpu_overcommit));
}
int64_t RamCap(const NodeView& n, const Options& o) {
  return static_cast<int64_t>(static_cast<double>(n.alloc_memory_mib) * Ratio(n.ram_ratio, o.memory_overcommit));
}
int GroupHere(const Demand& d, const NodeView& n) {
  auto it = n.group_members.find(d.group);
  return it == n.group_members.end() ? 0 : it->second;
}
int GroupAnywhere(const Demand& d, const std::vector<const NodeView*>& nodes) {
  int total = 0;
  for (const auto* n : nodes) total += GroupHere(d, *n);
  return total;
}

std::string ComputeFilter(const Demand&, const json&, const NodeView& n, const Options&) {
  if (!n.ready) return "not Ready" + (n.not_ready_reason.empty() ? "" : " (" + n.not_ready_reason + ")");
  if (n.unschedulable) return "unschedulable (cordoned)";
  return "";
}

std::string ZoneFilter(const Demand& d, const json&, const NodeView& n, const Options&) {
  if (d.zone.empty() || n.zone == d.zone) return "";
  return "in availability zone " + (n.zone.empty() ? std::string("<none>") : "\"" + n.zone + "\"") +
         ", the instance asks for \"" + d.zone + "\"";
}

std::string SelectorFilter(const Demand&, const json& sel, const NodeView& n, const Options&) {
  if (!sel.is_object() || sel.empty()) return "";
  for (const auto& [k, v] : sel.items()) {
    auto it = n.labels.find(k);
    if (it == n.labels.end() || *it != v) {
      return "does not match nodeSelector " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  return "";
}

std::string ArchFilter(const Demand& d, const json&, const NodeView& n, const Options&) {
  if (d.arch.empty() || n.arch == d.arch) return "";
  return "architecture " + (n.arch.empty() ? std::string("unknown") : n.arch) + ", the image needs " + d.arch;
}

std::string TraitsFilter(const Demand& d, const json&, const NodeView& n, const Options&) {
  std::string missing;
  for (const auto& t : d.traits) {
    if (!n.traits.count(t)) missing += (missing.empty() ? "" : ", ") + t;
  }
  if (missing.empty()) return "";
  return "lacks trait " + missing + " that image " + d.traits_of + " requires";
}

std::string PinFilter(const Demand& d, const json&, const NodeView& n, const Options&) {
  if (d.pinned_node.empty() || n.name == d.pinned_node) return "";
  return "does not hold " + d.pinned_why + " (on node " + d.pinned_node + ")";
}

std::string CoreFilter(const Demand& d, const json&, const NodeView& n, const Options& o) {
  int64_t cap = CpuCap(n, o), free = cap - n.used_vcpus;
  if (d.vcpus <= free) return "";
  return "insufficient vcpus (need " + std::to_string(d.vcpus) + ", free " + std::to_string(std::max<int64_t>(free, 0)) +
         " of " + std::to_string(cap) + ")";
}

std::string RamFilter(const Demand& d, const json&, const NodeView& n, const Options& o) {
  int64_t cap = RamCap(n, o), free = cap - n.used_memory_mib;
  if (d.memory_mib <= free) return "";
  return "insufficient memory (need " + std::to_string(d.memory_mib) + " MiB, free " +
         std::to_string(std::max<int64_t>(free, 0)) + " MiB of " + std::to_string(cap) + " MiB)";
}

std::string DiskFilter(const Demand& d, const json&, const NodeView& n, const Options& o) {
  if (d.root_bytes == 0) return "";
  int64_t free = PoolFree(n, d.root_pool);
  auto pool = [&d] { return d.root_pool.empty() ? std::string("default pool") : "pool " + d.root_pool; };
  if (free < 0) return "no " + pool();
  // Overcommitted disk (thin qcow2 root disks): the ratio lends capacity beyond what is physically free.
  double ratio = Ratio(n.disk_ratio, o.disk_overcommit);
  if (ratio > 1) {
    auto cap_it = n.pool_capacity.find(d.root_pool.empty() ? n.default_pool : d.root_pool);
    if (cap_it != n.pool_capacity.end()) free += static_cast<int64_t>(static_cast<double>(cap_it->second) * (ratio - 1));
  }
  if (static_cast<int64_t>(d.root_bytes) <= free) return "";
  return "insufficient storage for the root disk in the " + pool() + " (need " + FormatQuantityBytes(d.root_bytes) +
         ", free " + std::to_string(free >> 20) + " MiB)";
}

// Hard group policies need the whole picture: these two are checked in Choose, where every node is known.
std::string NoCheck(const Demand&, const json&, const NodeView&, const Options&) { return ""; }

double FreeRam(const Demand& d, const NodeView& n, const Options& o) {
  int64_t cap = RamCap(n, o);
  return cap > 0 ? static_cast<double>(cap - n.used_memory_mib - d.memory_mib) / static_cast<double>(cap) : 0;
}
double FreeCpu(const Demand& d, const NodeView& n, const Options& o) {
  int64_t cap = CpuCap(n, o);
  return cap > 0 ? static_cast<double>(cap - n.used_vcpus - d.vcpus) / static_cast<double>(cap) : 0;
}
double Load(const Demand&, const NodeView& n, const Options&) { return -static_cast<double>(n.instances); }
double Members(const Demand& d, const NodeView& n, const Options&) { return GroupHere(d, n); }

double Spread(const Options& o) { return o.strategy == "pack" ? -1.0 : 1.0; }
double RamMult(const Demand&, const Options& o) { return Spread(o) * o.ram_weight; }
double CpuMult(const Demand&, const Options& o) { return Spread(o) * o.cpu_weight; }
double LoadMult(const Demand&, const Options& o) { return Spread(o) * o.load_weight; }
double GroupMult(const Demand& d, const Options& o) {
  if (d.group_policy == "soft-affinity") return o.group_weight;
  if (d.group_policy == "soft-anti-affinity") return -o.group_weight;
  return 0;
}

}  // namespace

std::string Decision::Message(size_t total_nodes) const {
  std::string m = "0/" + std::to_string(total_nodes) + " nodes can run this instance";
  if (total_nodes == 0) return m + ": no nodes are registered";
  m += ": ";
  for (size_t i = 0; i < reasons.size(); ++i) m += (i ? "; " : "") + reasons[i];
  return m;
}

const std::vector<Filter>& Filters() {
  static const std::vector<Filter> f = {
      {"ComputeFilter", ComputeFilter}, {"AvailabilityZoneFilter", ZoneFilter},
      {"NodeSelectorFilter", SelectorFilter}, {"ArchitectureFilter", ArchFilter},
      {"TraitsFilter", TraitsFilter}, {"VolumePinFilter", PinFilter}, {"CoreFilter", CoreFilter}, {"RamFilter", RamFilter},
      {"DiskFilter", DiskFilter}, {"ServerGroupAffinityFilter", NoCheck},
      {"ServerGroupAntiAffinityFilter", NoCheck}};
  return f;
}

const std::vector<Weigher>& Weighers() {
  static const std::vector<Weigher> w = {{"RAMWeigher", FreeRam, RamMult},
                                         {"CPUWeigher", FreeCpu, CpuMult},
                                         {"LoadWeigher", Load, LoadMult},
                                         {"ServerGroupSoftAffinityWeigher", Members, GroupMult}};
  return w;
}

Decision Choose(const Demand& d, const json& node_selector, const std::vector<NodeView>& nodes, const Options& o) {
  std::vector<const NodeView*> views;
  views.reserve(nodes.size());
  for (const auto& n : nodes) views.push_back(&n);
  return Choose(d, node_selector, views, o);
}

Decision Choose(const Demand& d, const json& node_selector, const std::vector<const NodeView*>& nodes,
                const Options& o, bool in_name_order) {
  Decision out;
  // Only the affinity filter asks where the group's members run at all.
  int members = d.group.empty() || d.group_policy != "affinity" ? 0 : GroupAnywhere(d, nodes);
  std::vector<const NodeView*> passed;
  passed.reserve(nodes.size());
  const std::vector<Filter>& filters = Filters();
  const bool affinity = d.group_policy == "affinity", anti_affinity = d.group_policy == "anti-affinity";
  for (const auto* np : nodes) {
    const NodeView& n = *np;
    std::string why, filter;
    for (const auto& f : filters) {
      if (f.check == NoCheck) continue;  // the group filters, checked below
      why = f.check(d, node_selector, n, o);
      if (!why.empty()) {
        filter = f.name;
        break;
      }
    }
    if (why.empty() && affinity && members > 0 && GroupHere(d, n) == 0) {
      why = "not where the other members of InstanceGroup " + d.group + " run (affinity)";
      filter = "ServerGroupAffinityFilter";
    }
    if (why.empty() && anti_affinity && GroupHere(d, n) > 0) {
      why = "already runs " + std::to_string(GroupHere(d, n)) + " member(s) of InstanceGroup " + d.group +
            " (anti-affinity)";
      filter = "ServerGroupAntiAffinityFilter";
    }
    if (!why.empty()) {
      out.reasons.push_back(n.name + ": " + why + " [" + filter + "]");
      continue;
    }
    passed.push_back(&n);
  }
  if (passed.empty()) return out;
  std::vector<double> total(passed.size(), 0);
  for (const auto& w : Weighers()) {
    double mult = w.multiplier(d, o);
    if (mult == 0) continue;
    std::vector<double> v;
    v.reserve(passed.size());
    for (const auto* n : passed) v.push_back(w.value(d, *n, o));
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    double span = *hi - *lo;
    for (size_t i = 0; i < v.size(); ++i) total[i] += mult * (span > 0 ? (v[i] - *lo) / span : 0);
  }
  // Best first, ties by name (then as given). Sorted as indices: when the nodes come in name order (the capacity
  // cache's do), equal weights keep the order given, so no name is compared.
  std::vector<std::pair<double, uint32_t>> rank(passed.size());  // (-weight, index): ascending is best first
  for (uint32_t i = 0; i < rank.size(); ++i) rank[i] = {-total[i], i};
  bool by_name = true;  // checked unless vouched for
  for (size_t i = 1; i < passed.size() && by_name && !in_name_order; ++i) by_name = !(passed[i]->name < passed[i - 1]->name);
  if (by_name) {
    std::sort(rank.begin(), rank.end());
  } else {
    std::sort(rank.begin(), rank.end(), [&](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      if (passed[a.second]->name != passed[b.second]->name) return passed[a.second]->name < passed[b.second]->name;
      return a.second < b.second;
    });
  }
  out.weights.reserve(passed.size());
  for (const auto& r : rank) out.weights.emplace_back(passed[r.second]->name, total[r.second]);
  out.node = out.weights.front().first;
  return out;
}

}  // namespace stratus::placement
