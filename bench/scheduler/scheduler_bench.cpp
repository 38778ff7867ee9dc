// scheduler_bench: decisions per second of the placement reconciler's scheduler (CapacityCache::ChooseAndAssume
// over the node views the cache keeps: every filter, every weigher, the assumption) for clusters of 10 to 5,000
// nodes holding up to 50,000 instances, with and without an InstanceGroup. The cache is fed as the reconciler's
// informer handlers feed it: Node objects (ObserveNode), the flavor, bound instances; during the run a node
// heartbeats (a new resourceVersion, re-parsed) at every decision and each bind shows in the instance cache 100
// decisions after it was decided. One thread, as a decision holds the cache's lock: this is the ceiling of
// placement throughput whatever the number of workers. Then it checks what was decided: no node over capacity,
// every anti-affinity group spread, the kept views equal to views rebuilt from scratch, and a sample of decisions
// equal to the ones the from-scratch path (ViewNodes + AddTo + Choose) takes. Numbers: bench/scheduler/README.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "stratus/core/object.h"
#include "stratus/placement/placement.h"

using namespace stratus;
using namespace stratus::placement;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kNow = 1796428800;  // 2026-12-04T00:00:00Z: every node heartbeated at this second
constexpr int kBindLag = 100;          // decisions between a decision and its bind showing in the instance cache
constexpr int kSampleEvery = 100;      // every so many decisions, compare with the from-scratch path

json NodeObject(int i) {
  std::string zone = "az" + std::to_string(i % 3);
  return {{"metadata", {{"name", "node-" + std::to_string(i)}, {"resourceVersion", "1"},
                        {"labels", {{"stratus.io/zone", zone}}}}},
          {"spec", json::object()},
          {"status", {{"allocatable", {{"vcpus", 64}, {"memoryMiB", 256 * 1024}}},
                      {"lastHeartbeatTime", FormatRfc3339(kNow)},
                      {"nodeInfo", {{"arch", "x86_64"}}},
                      {"pools", {{{"name", "default"}, {"default", true}, {"availableBytes", int64_t{1} << 40},
                                  {"capacityBytes", int64_t{1} << 40}}}},
                      {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "AgentReady"}}}}}}};
}

json Instance(const std::string& uid, const std::string& node, const std::string& group) {
  json spec = {{"nodeName", node}, {"instanceType", "m1"}};
  if (!group.empty()) spec["instanceGroup"] = group;
  return {{"metadata", {{"uid", uid}, {"namespace", "ns"}, {"name", uid}}}, {"spec", spec}};
}

bool SameUsage(const NodeView& a, const NodeView& b) {
  return a.name == b.name && a.ready == b.ready && a.used_vcpus == b.used_vcpus &&
         a.used_memory_mib == b.used_memory_mib && a.instances == b.instances && a.group_members == b.group_members &&
         a.pool_free == b.pool_free;
}

}  // namespace

int main(int argc, char** argv) {
  int decisions = argc > 1 ? std::atoi(argv[1]) : 2000;
  int max_nodes = argc > 2 ? std::atoi(argv[2]) : 5000;
  std::printf("%8s %10s %10s %14s %10s %10s %8s\n", "nodes", "instances", "group", "decisions/s", "p50 us",
              "p99 us", "check");
  int failures = 0;
  for (int nodes : {10, 100, 1000, 5000}) {
    if (nodes > max_nodes) break;
    for (std::string policy : {"", "soft-anti-affinity", "anti-affinity"}) {
      CapacityCache cache;
      Options o;
      std::vector<json> node_objects;
      for (int i = 0; i < nodes; ++i) {
        node_objects.push_back(NodeObject(i));
        cache.ObserveNode(node_objects.back(), false);
      }
      json flavor = {{"metadata", {{"name", "m1"}}}, {"spec", {{"vcpus", 1}, {"memoryMiB", 512}}}};
      std::map<std::string, json> flavors = {{"m1", flavor}};
      cache.ObserveFlavor(flavor, false);
      // The cluster already runs 10 instances per node, bound (as the instance cache shows them).
      int existing = nodes * 10;
      for (int i = 0; i < existing; ++i) {
        cache.Observe(Instance("old-" + std::to_string(i), "node-" + std::to_string(i % nodes), ""), false);
      }
      Demand d;
      d.vcpus = 1;
      d.memory_mib = 512;
      d.root_bytes = 1ll << 30;
      // soft-anti-affinity: one group of every new instance; anti-affinity: groups of 5 (each must be spread).
      auto group_of = [&](int i) {
        if (policy.empty()) return std::string();
        return policy == "anti-affinity" ? "g" + std::to_string(i / 5) : std::string("web");
      };
      std::vector<std::string> placed(decisions);
      std::vector<double> us;
      us.reserve(decisions);
      Clock::duration busy{};  // decisions plus the informer events fed in between, not the sampled checks
      std::string error;
      int64_t rv = 1;
      for (int i = 0; i < decisions && error.empty(); ++i) {
        std::string group = group_of(i);
        d.group = group.empty() ? "" : "ns/" + group;
        d.group_policy = policy;
        std::string uid = "new-" + std::to_string(i);
        Decision want;
        if (i % kSampleEvery == 0) {  // the from-scratch path, as the reconciler decided before
          std::vector<NodeView> fresh = ViewNodes(node_objects, kNow, o);
          cache.AddTo(&fresh, flavors);
          want = Choose(d, json::object(), fresh, o);
        }
        auto t0 = Clock::now();
        Decision dec = cache.ChooseAndAssume(uid, d, json::object(), kNow, o);
        auto t1 = Clock::now();
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        if (dec.node.empty()) {
          error = "no node at decision " + std::to_string(i) + ": " + dec.Message(dec.reasons.size());
          break;
        }
        if (i % kSampleEvery == 0 && (want.node != dec.node || want.weights != dec.weights)) {
          error = "decision " + std::to_string(i) + " chose " + dec.node + ", from scratch " + want.node;
        }
        placed[i] = dec.node;
        // What the informers deliver meanwhile: a node's heartbeat, and the bind of an earlier decision.
        json& hb = node_objects[i % nodes];
        hb["metadata"]["resourceVersion"] = std::to_string(++rv);
        json bound;
        if (i >= kBindLag) bound = Instance("new-" + std::to_string(i - kBindLag), placed[i - kBindLag], group_of(i - kBindLag));
        auto t2 = Clock::now();
        cache.ObserveNode(hb, false);
        if (!bound.is_null()) cache.Observe(bound, false);
        busy += (t1 - t0) + (Clock::now() - t2);
      }
      // Checks: capacity, spread, the kept views against views rebuilt from scratch, what is still assumed.
      std::vector<NodeView> kept = cache.Views(kNow, o);
      std::vector<NodeView> fresh = ViewNodes(node_objects, kNow, o);
      cache.AddTo(&fresh, flavors);
      int total = 0, lo = 1 << 30, hi = 0;
      for (size_t n = 0; n < kept.size() && error.empty(); ++n) {
        const NodeView& v = kept[n];
        total += v.instances;
        if (v.used_vcpus > v.alloc_vcpus * o.cpu_overcommit || v.used_memory_mib > v.alloc_memory_mib ||
            v.pool_free.at("default") < 0) {
          error = v.name + " over capacity";
        }
        if (!SameUsage(v, fresh[n])) error = v.name + ": kept view differs from one rebuilt from scratch";
        auto web = v.group_members.find("ns/web");
        int members = web == v.group_members.end() ? 0 : web->second;
        lo = std::min(lo, members);
        hi = std::max(hi, members);
        for (const auto& [g, count] : v.group_members) {
          if (policy == "anti-affinity" && count > 1) error = v.name + " runs " + std::to_string(count) + " of " + g;
        }
      }
      if (error.empty() && total != existing + decisions) error = "counted " + std::to_string(total) + " instances";
      if (error.empty() && policy == "soft-anti-affinity" && hi - lo > 1) {
        error = "soft-anti-affinity group not spread: " + std::to_string(lo) + " to " + std::to_string(hi) + " per node";
      }
      if (error.empty() && cache.NumAssumed() != static_cast<size_t>(std::min(decisions, kBindLag))) {
        error = std::to_string(cache.NumAssumed()) + " assumptions left";
      }
      if (!error.empty()) {
        std::fprintf(stderr, "%d nodes %s: FAILED: %s\n", nodes, policy.c_str(), error.c_str());
        ++failures;
      }
      double secs = std::chrono::duration<double>(busy).count();
      std::sort(us.begin(), us.end());
      std::printf("%8d %10d %10s %14.0f %10.1f %10.1f %8s\n", nodes, existing, policy.empty() ? "-" : policy.c_str(),
                  us.size() / secs, us[us.size() / 2], us[us.size() * 99 / 100], error.empty() ? "ok" : "FAILED");
      std::fflush(stdout);
    }
  }
  return failures == 0 ? 0 : 1;
}
