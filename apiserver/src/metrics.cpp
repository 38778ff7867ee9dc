#include "stratus/apiserver/metrics.h"

#include <sstream>

namespace stratus {

void Metrics::Observe(const std::string& verb, const std::string& resource, int code, double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{verb, resource, code}];
  Hist& h = latency_[verb];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render(const std::string& extra) const {
  std::ostringstream o;
  std::lock_guard lock(mu_);
  o << "# HELP stratus_apiserver_requests_total Requests served, by verb, resource and HTTP code.\n"
    << "# TYPE stratus_apiserver_requests_total counter\n";
  for (const auto& [k, v] : requests_) {
    o << "stratus_apiserver_requests_total{verb=\"" << std::get<0>(k) << "\",resource=\"" << std::get<1>(k)
      << "\",code=\"" << std::get<2>(k) << "\"} " << v << "\n";
  }
  o << "# HELP stratus_apiserver_request_duration_seconds Request latency, by verb.\n"
    << "# TYPE stratus_apiserver_request_duration_seconds histogram\n";
  for (const auto& [verb, h] : latency_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      o << "stratus_apiserver_request_duration_seconds_bucket{verb=\"" << verb << "\",le=\"" << kBuckets[i]
        << "\"} " << h.counts[i] << "\n";
    }
    o << "stratus_apiserver_request_duration_seconds_bucket{verb=\"" << verb << "\",le=\"+Inf\"} " << h.count
      << "\n";
    o << "stratus_apiserver_request_duration_seconds_sum{verb=\"" << verb << "\"} " << h.sum << "\n";
    o << "stratus_apiserver_request_duration_seconds_count{verb=\"" << verb << "\"} " << h.count << "\n";
  }
  o << "# HELP stratus_apiserver_watches Open watch streams.\n"
    << "# TYPE stratus_apiserver_watches gauge\n"
    << "stratus_apiserver_watches " << watches_.load() << "\n";
  o << extra;
  return o.str();
}

}  // namespace stratus
