// Request metrics in Prometheus text exposition format: requests by verb, resource and code, a latency
// histogram by verb, and the number of open watches.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace stratus {

class Metrics {
 public:
  // Records one finished request.
  void Observe(const std::string& verb, const std::string& resource, int code, double seconds);
  void WatchOpened() { ++watches_; }
  void WatchClosed() { --watches_; }
  // Renders every metric; `extra` is appended verbatim (store gauges etc.).
  std::string Render(const std::string& extra = "") const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  5.0};
  struct Hist {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Hist> latency_;
  std::atomic<int64_t> watches_{0};
};

}  // namespace stratus
