// Helpers shared by the command implementations (not part of the commands' interface).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "lib/commands.h"
#include "stratus/core/api_client.h"
#include "stratus/core/resources.h"

namespace stratus::cli {

using Clock = std::chrono::steady_clock;

// "error: <reason>: <message>" line for a failed call.
void PrintError(Env& env, const Status& s, const std::string& prefix = "");
// The namespace a request for `r` goes to: "" for cluster-scoped kinds and for -A.
std::string NamespaceFor(const Env& env, const ResourceInfo& r, bool all_namespaces = false);
// LIST following `continue` tokens until the end; returns {Kind}List with every item and the last
// metadata.resourceVersion.
StatusOr<json> ListAll(ApiClient& client, const std::string& plural, const std::string& ns, ListOptions opts);
// `kind: List` holding `items` (what -o yaml|json prints for several objects).
json MakeList(const std::vector<json>& items);
// Renders an object (or a List) as YAML or JSON.
std::string RenderObject(const json& obj, const std::string& format);

// A flag that becomes true when the deadline passes or the user presses Ctrl-C; cancels blocking watches.
class StopFlag {
 public:
  explicit StopFlag(std::optional<Clock::time_point> deadline);
  ~StopFlag();
  const std::atomic<bool>* flag() const { return &stop_; }
  bool stopped() const { return stop_.load(); }
  bool timed_out() const { return timed_out_.load(); }
  bool interrupted() const;

 private:
  std::optional<Clock::time_point> deadline_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> timed_out_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

enum class WatchEnd { kDone, kTimedOut, kInterrupted, kError };
struct WatchResult {
  WatchEnd end = WatchEnd::kDone;
  Status error;  // when kError
};

// Watches `plural` in `ns` from `resource_version`, re-watching from the last seen version when a stream ends
// and calling `relist` (which returns a fresh version, or "" when the caller is done) after 410 Gone. Ends when `on_event` returns false
// (kDone), at `deadline` (kTimedOut), on Ctrl-C (kInterrupted) or on another error (kError).
WatchResult WatchLoop(ApiClient& client, const std::string& plural, const std::string& ns, const ListOptions& base,
                      std::string resource_version, std::optional<Clock::time_point> deadline,
                      const std::function<bool(const WatchEvent&)>& on_event,
                      const std::function<StatusOr<std::string>()>& relist);

// What `wait --for` and `delete --wait` wait for.
struct WaitSpec {
  enum Mode { kCondition, kDelete, kPhase } mode = kCondition;
  std::string type;             // condition type or phase
  std::string value = "True";   // expected condition status
  std::string Describe() const;
};
StatusOr<WaitSpec> ParseWaitFor(const std::string& text);
// True when `obj` satisfies a condition or phase spec (conditions must be current: a condition or status
// reporting an older observedGeneration than metadata.generation does not count).
bool WaitSpecMet(const WaitSpec& spec, const json& obj);

// Waits until the object meets `spec`. For kDelete, `uid` (when known) lets a re-created object with the same
// name count as deleted. Prints progress lines ("instance/web-1: phase Pending, ...") when `progress`.
// Returns Ok when met, kTimeout (message naming the last state seen) at the deadline, or the error.
Status WaitForObject(Env& env, const ResourceInfo& r, const std::string& ns, const std::string& name,
                     const WaitSpec& spec, Clock::time_point deadline, std::chrono::milliseconds timeout,
                     bool progress, const std::string& uid = "");

}  // namespace stratus::cli
