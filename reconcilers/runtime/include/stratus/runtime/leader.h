// Leader election over a Lease object (client-go's leaderelection): one of several servers holds the lease and
// runs the cluster reconcilers. Timings as Kubernetes' defaults: the lease lasts 15 s, the holder renews every 2 s
// and gives up leading (stops its workers) when it could not renew for 10 s, before anyone else may take over.
// A candidate tries again at the retry period or the moment the holder's lease runs out, whichever comes first.
// Expiry is judged by each candidate's own clock from when it last saw the lease change (its resourceVersion; never by comparing
// timestamps written by other machines), and every write is conditional on the lease's resourceVersion, so two
// candidates never both believe they hold it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "stratus/core/api_client.h"
#include "stratus/runtime/clock.h"

namespace stratus::runtime {

struct LeaderOptions {
  std::string lease = "stratus-controllers";
  std::string identity;  // unique per server (and stable across its restarts)
  std::chrono::milliseconds duration{15000}, renew_deadline{10000}, retry{2000};
};

class LeaderElector {
 public:
  // `started` runs (on the elector's thread) when this server becomes the leader, `stopped` when it stops being it
  // (lost the lease, could not renew in time, or Stop).
  LeaderElector(ApiClient* client, LeaderOptions opts, std::function<void()> started, std::function<void()> stopped,
                Clock* clock = nullptr);
  ~LeaderElector();
  void Start();
  // Stops leading (calling `stopped`) and releases the lease so that another server takes over at once.
  void Stop();
  bool IsLeader() const { return leading_.load(); }
  // One attempt: acquire (when free or expired) or renew. True when this elector holds the lease afterwards.
  bool TryAcquireOrRenew();

 private:
  void Loop();
  void Release();
  // After creating or updating the lease: true when `written` succeeded (this elector holds it, as of `now`).
  bool Wrote(const StatusOr<json>& written, const char* what, Clock::time_point now);

  ApiClient* client_;
  LeaderOptions o_;
  std::function<void()> started_, stopped_;
  Clock* clock_;
  std::string observed_;                 // holder + renewTime last seen
  Clock::time_point observed_at_{};
  Clock::time_point last_renew_{};
  Clock::time_point expires_at_{};       // when another holder's lease runs out, as this server saw it
  std::atomic<bool> leading_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace stratus::runtime
