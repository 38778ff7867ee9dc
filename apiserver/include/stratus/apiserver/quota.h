// Per-namespace quotas (Nova's set), enforced at admission atomically: a create or resize reserves its usage
// under the namespace's lock before its asynchronous write, and the reservation stands until the write has
// completed (committed, so the store shows the object, or failed), so concurrent writes can never overshoot.
// Usage is counted from the stored objects themselves, never from a counter that could drift.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "stratus/apiserver/store.h"
#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus {

// resource name (instances, cores, ramMiB, volumes, gigabytes, networks, securityGroups, keyPairs) -> amount.
using QuotaAmounts = std::map<std::string, int64_t>;

// The resources of Nova's quota set, in display order.
const std::vector<std::string>& QuotaResources();

// Parses "instances=10,cores=20" (the --default-quota flag); kBadRequest naming the bad entry.
StatusOr<QuotaAmounts> ParseQuotaAmounts(const std::string& text);

class Quotas {
 public:
  Quotas(const Store* store, QuotaAmounts defaults);

  // Held by a write from admission until its completion: dropping it releases the reservation.
  class Reservation;
  // Admits a write of `next` over `cur` (null for a create) of kind `r` at `key`: Ok with no reservation when the
  // kind is not counted, the write adds nothing, or no limit applies; a reservation when it fits; 403 reason
  // QuotaExceeded naming the resource, the amount asked for, the use and the limit otherwise.
  StatusOr<std::shared_ptr<Reservation>> Reserve(const ResourceInfo& r, const ObjectKey& key, const json* cur,
                                                 const json& next);

  // What the objects of `ns` use now (committed objects only).
  QuotaAmounts Used(const std::string& ns) const;
  // The limits in force in `ns`: its Quota's spec.hard over the defaults.
  QuotaAmounts Hard(const std::string& ns) const;
  // What one object counts for.
  QuotaAmounts UsageOf(const std::string& kind, const json& obj) const;

 private:
  struct Pending {
    std::string kind;
    json object;
  };
  struct Namespace {
    std::mutex mu;
    std::map<std::string, Pending> pending;  // "plural/name" -> the object being written
  };
  Namespace* Ns(const std::string& ns);
  QuotaAmounts UsedLocked(const std::string& ns, const Namespace& n) const;

  const Store* store_;
  QuotaAmounts defaults_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Namespace>> namespaces_;
};

}  // namespace stratus
