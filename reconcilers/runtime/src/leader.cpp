#include "stratus/runtime/leader.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "stratus/core/object.h"

namespace stratus::runtime {

LeaderElector::LeaderElector(ApiClient* client, LeaderOptions opts, std::function<void()> started,
                             std::function<void()> stopped, Clock* clock)
    : client_(client), o_(std::move(opts)), started_(std::move(started)), stopped_(std::move(stopped)),
      clock_(OrSystemClock(clock)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start() {
  thread_ = std::thread([this] { Loop(); });
}

bool LeaderElector::TryAcquireOrRenew() {
  auto now = clock_->Now();
  std::string stamp = NowRfc3339();
  int64_t secs = std::max<int64_t>(1, (o_.duration.count() + 999) / 1000);  // whole seconds, at least one
  auto cur = client_->Get("leases", "", o_.lease);
  if (!cur.ok()) {
    if (cur.status().code() != Code::kNotFound) {
      spdlog::debug("leader election: lease not read: {}", cur.status().ToString());
      return false;
    }
    json lease = {{"apiVersion", kApiVersion},
                  {"kind", "Lease"},
                  {"metadata", {{"name", o_.lease}}},
                  {"spec", {{"holderIdentity", o_.identity}, {"leaseDurationSeconds", secs}, {"acquireTime", stamp},
                            {"renewTime", stamp}, {"leaseTransitions", 0}}}};
    return Wrote(client_->Create("leases", "", lease), "created", now);
  }
  json spec = cur->value("spec", json::object());
  std::string holder = spec.value("holderIdentity", "");
  // Any write to the lease (a renewal, whatever its timestamp's resolution) changes its resourceVersion.
  std::string record = holder + "@" + MetaString(*cur, "resourceVersion");
  if (record != observed_) {
    observed_ = record;
    observed_at_ = now;
  }
  int64_t held_for = spec.value("leaseDurationSeconds", secs);
  if (!holder.empty() && holder != o_.identity && now < observed_at_ + std::chrono::seconds(held_for)) {
    // Someone else holds it and renewed within its duration, as this server saw it: try again at the next retry or
    // the moment it would expire, whichever comes first (a crashed holder is replaced one lease after its last
    // renewal, not up to one retry period later).
    expires_at_ = observed_at_ + std::chrono::seconds(held_for);
    return false;
  }
  expires_at_ = {};
  json next = *cur;
  if (holder != o_.identity) {
    next["spec"]["acquireTime"] = stamp;
    next["spec"]["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
  }
  next["spec"]["holderIdentity"] = o_.identity;
  next["spec"]["leaseDurationSeconds"] = secs;
  next["spec"]["renewTime"] = stamp;
  // Conditional on the resourceVersion read above.
  return Wrote(client_->Update("leases", "", next), "updated", now);
}

bool LeaderElector::Wrote(const StatusOr<json>& written, const char* what, Clock::time_point now) {
  if (!written.ok()) {
    spdlog::debug("leader election: lease not {}: {}", what, written.status().ToString());
    return false;
  }
  observed_ = o_.identity + "@" + MetaString(*written, "resourceVersion");  // our own write, seen now
  observed_at_ = now;
  return true;
}

void LeaderElector::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    bool held = TryAcquireOrRenew();
    auto now = clock_->Now();
    if (held) {
      last_renew_ = now;
      if (!leading_.exchange(true)) {
        spdlog::warn("leader election: leading: lease={} identity={}", o_.lease, o_.identity);
        started_();
      }
    } else if (leading_.load() && now - last_renew_ >= o_.renew_deadline) {
      // Could not renew in time: stop the workers before the lease can expire for the others.
      leading_ = false;
      spdlog::warn("leader election: lost the lease: lease={} identity={}", o_.lease, o_.identity);
      stopped_();
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(o_.retry);
    if (!held && expires_at_ != Clock::time_point{}) {
      auto until = std::chrono::duration_cast<std::chrono::milliseconds>(expires_at_ - now) +
                   std::chrono::milliseconds(1);
      wait = std::clamp(until, std::chrono::milliseconds(1), wait);
    }
    lock.lock();
    clock_->WaitFor(lock, cv_, wait, [&] { return stop_; });
  }
}

void LeaderElector::Release() {
  auto cur = client_->Get("leases", "", o_.lease);
  if (!cur.ok() || (*cur)["spec"].value("holderIdentity", "") != o_.identity) return;
  json next = *cur;
  next["spec"]["holderIdentity"] = "";
  auto u = client_->Update("leases", "", next);
  if (!u.ok()) spdlog::debug("leader election: release failed: {}", u.status().message());
}

void LeaderElector::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (leading_.exchange(false)) {
    stopped_();
    Release();
  }
}

}  // namespace stratus::runtime
