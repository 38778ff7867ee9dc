// Per-user request rate limits: one token bucket per user, so that one tenant's burst cannot starve the others.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace stratus {

class UserRateLimiter {
 public:
  using Now = std::function<std::chrono::steady_clock::time_point()>;
  // `qps` tokens per second refill each user's bucket of `burst` tokens; qps <= 0 turns the limit off.
  UserRateLimiter(double qps, double burst, Now now = {});
  // Takes one token from `user`'s bucket. False when it is empty; `retry_after_seconds` then says when the next
  // token is there (at least 1).
  bool Allow(const std::string& user, int* retry_after_seconds);
  bool enabled() const { return qps_ > 0; }

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  double qps_, burst_;
  Now now_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace stratus
