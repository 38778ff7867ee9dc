// scheduler_bench: decisions per second of the placement reconciler's scheduler (CapacityCache::ChooseAndAssume:
// usage from the cache, every filter, every weigher) for clusters of 10 to 5,000 nodes holding up to 50,000
// instances, with and without an InstanceGroup. One thread, as a decision holds the cache's lock: this is the
// ceiling of placement throughput whatever the number of workers. Numbers: bench/scheduler/README.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "stratus/placement/placement.h"

using namespace stratus;
using namespace stratus::placement;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int decisions = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::printf("%8s %10s %8s %14s %10s %10s\n", "nodes", "instances", "group", "decisions/s", "p50 us", "p99 us");
  for (int nodes : {10, 100, 1000, 5000}) {
    for (bool group : {false, true}) {
      std::vector<NodeView> views;
      for (int i = 0; i < nodes; ++i) {
        NodeView n;
        n.name = "node-" + std::to_string(i);
        n.ready = true;
        n.alloc_vcpus = 64;
        n.alloc_memory_mib = 256 * 1024;
        n.zone = "az" + std::to_string(i % 3);
        n.labels = {{"stratus.io/zone", n.zone}};
        n.pool_free["default"] = 1ll << 40;
        n.default_pool = "default";
        views.push_back(n);
      }
      std::map<std::string, json> flavors = {{"m1", {{"spec", {{"vcpus", 1}, {"memoryMiB", 512}}}}}};
      CapacityCache cache;
      Options o;
      // The cluster already runs 10 instances per node, bound (as the instance cache shows them).
      int existing = nodes * 10;
      for (int i = 0; i < existing; ++i) {
        cache.Observe({{"metadata", {{"uid", "old-" + std::to_string(i)}, {"namespace", "ns"}}},
                       {"spec", {{"nodeName", "node-" + std::to_string(i % nodes)}, {"instanceType", "m1"}}}},
                      false);
      }
      Demand d;
      d.vcpus = 1;
      d.memory_mib = 512;
      d.root_bytes = 1ll << 30;
      if (group) {
        d.group = "ns/web";
        d.group_policy = "soft-anti-affinity";
      }
      std::vector<double> us;
      auto start = Clock::now();
      for (int i = 0; i < decisions; ++i) {
        auto t0 = Clock::now();
        Decision dec = cache.ChooseAndAssume("new-" + std::to_string(i), d, json::object(), views, flavors, o);
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        if (dec.node.empty()) {
          std::fprintf(stderr, "no node at decision %d: %s\n", i, dec.Message(views.size()).c_str());
          return 1;
        }
      }
      double secs = std::chrono::duration<double>(Clock::now() - start).count();
      std::sort(us.begin(), us.end());
      std::printf("%8d %10d %8s %14.0f %10.1f %10.1f\n", nodes, existing, group ? "soft-anti" : "-",
                  decisions / secs, us[us.size() / 2], us[us.size() * 99 / 100]);
    }
  }
  return 0;
}
