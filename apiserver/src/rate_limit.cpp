#include "stratus/apiserver/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace stratus {

UserRateLimiter::UserRateLimiter(double qps, double burst, Now now)
    : qps_(qps), burst_(std::max(1.0, burst)), now_(std::move(now)) {
  if (!now_) now_ = [] { return std::chrono::steady_clock::now(); };
}

bool UserRateLimiter::Allow(const std::string& user, int* retry_after_seconds) {
  if (qps_ <= 0) return true;
  auto now = now_();
  std::lock_guard lock(mu_);
  auto it = buckets_.find(user);
  if (it == buckets_.end()) it = buckets_.emplace(user, Bucket{burst_, now}).first;
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.at).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * qps_);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  if (retry_after_seconds) *retry_after_seconds = std::max(1, static_cast<int>(std::ceil((1.0 - b.tokens) / qps_)));
  return false;
}

}  // namespace stratus
