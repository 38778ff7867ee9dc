#include "stratus/apiserver/quota.h"

#include <cctype>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"

namespace stratus {
namespace {

// The kinds that count, and their collections.
const std::map<std::string, std::string>& Counted() {
  static const std::map<std::string, std::string> k = {{"Instance", "instances"},     {"Volume", "volumes"},
                                                       {"Network", "networks"},       {"SecurityGroup", "securitygroups"},
                                                       {"KeyPair", "keypairs"},       {"Address", "addresses"}};
  return k;
}

int64_t IntField(const json& o, const char* a, const char* b) {
  if (!o.is_object() || !o.contains(a) || !o[a].is_object() || !o[a].contains(b) || !o[a][b].is_number_integer()) {
    return 0;
  }
  return o[a][b].get<int64_t>();
}

}  // namespace

const std::vector<std::string>& QuotaResources() {
  static const std::vector<std::string> r = {"instances", "cores",          "ramMiB",  "volumes",
                                             "gigabytes", "networks",       "securityGroups", "keyPairs",
                                             "addresses"};
  return r;
}

StatusOr<QuotaAmounts> ParseQuotaAmounts(const std::string& text) {
  QuotaAmounts out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string name = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    bool known = false;
    for (const auto& r : QuotaResources()) known |= r == name;
    if (!known) return BadRequest("quota \"" + item + "\": unknown resource " + name);
    if (value.empty() || value.size() > 15 ||
        !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
      return BadRequest("quota \"" + item + "\": the limit must be a whole number");
    }
    out[name] = std::stoll(value);
  }
  return out;
}

class Quotas::Reservation {
 public:
  Reservation(Namespace* ns, std::string key) : ns_(ns), key_(std::move(key)) {}
  ~Reservation() {
    std::lock_guard lock(ns_->mu);
    ns_->pending.erase(key_);
  }

 private:
  Namespace* ns_;
  std::string key_;
};

// Floating addresses are scarce (public addresses): unless the server's defaults say otherwise, a namespace holds at
// most 10, as nova-network's floating_ips quota.
inline constexpr int64_t kDefaultAddresses = 10;

Quotas::Quotas(const Store* store, QuotaAmounts defaults) : store_(store), defaults_(std::move(defaults)) {
  defaults_.emplace("addresses", kDefaultAddresses);
}

Quotas::Namespace* Quotas::Ns(const std::string& ns) {
  std::lock_guard lock(mu_);
  auto& n = namespaces_[ns];
  if (!n) n = std::make_unique<Namespace>();
  return n.get();
}

QuotaAmounts Quotas::UsageOf(const std::string& kind, const json& obj) const {
  QuotaAmounts u;
  if (kind == "Instance") {
    u["instances"] = 1;
    int64_t vcpus = IntField(obj["spec"], "resources", "vcpus"), mem = IntField(obj["spec"], "resources", "memoryMiB");
    std::string type = obj["spec"].value("instanceType", "");
    if (!type.empty()) {
      auto it = store_->Get({"instancetypes", "", type});
      if (it.ok()) {
        vcpus = IntField(**it, "spec", "vcpus");
        mem = IntField(**it, "spec", "memoryMiB");
      }
    }
    u["cores"] = vcpus;
    u["ramMiB"] = mem;
  } else if (kind == "Volume") {
    u["volumes"] = 1;
    std::string size = obj["spec"].value("size", "");
    auto bytes = ParseQuantityBytes(size);
    u["gigabytes"] = bytes.ok() ? static_cast<int64_t>((*bytes + (1ull << 30) - 1) >> 30) : 0;
  } else if (kind == "Network") {
    u["networks"] = 1;
  } else if (kind == "SecurityGroup") {
    u["securityGroups"] = 1;
  } else if (kind == "KeyPair") {
    u["keyPairs"] = 1;
  } else if (kind == "Address") {
    u["addresses"] = 1;
  }
  return u;
}

QuotaAmounts Quotas::Hard(const std::string& ns) const {
  QuotaAmounts hard = defaults_;
  StoreListOptions lo;
  lo.plural = "quotas";
  lo.ns = ns;
  for (const auto& q : store_->List(lo).items) {
    const json& spec = (*q)["spec"];
    if (!spec.contains("hard") || !spec["hard"].is_object()) continue;
    for (const auto& [k, v] : spec["hard"].items()) {
      if (v.is_number_integer()) hard[k] = v.get<int64_t>();
    }
  }
  return hard;
}

QuotaAmounts Quotas::UsedLocked(const std::string& ns, const Namespace& n) const {
  QuotaAmounts used;
  for (const auto& [kind, plural] : Counted()) {
    StoreListOptions lo;
    lo.plural = plural;
    lo.ns = ns;
    for (const auto& o : store_->List(lo).items) {
      if (n.pending.count(plural + "/" + MetaString(*o, "name"))) continue;  // counted as its pending write
      for (const auto& [k, v] : UsageOf(kind, *o)) used[k] += v;
    }
  }
  for (const auto& [key, p] : n.pending) {
    for (const auto& [k, v] : UsageOf(p.kind, p.object)) used[k] += v;
  }
  return used;
}

QuotaAmounts Quotas::Used(const std::string& ns) const {
  Namespace empty;
  return UsedLocked(ns, empty);
}

StatusOr<std::shared_ptr<Quotas::Reservation>> Quotas::Reserve(const ResourceInfo& r, const ObjectKey& key,
                                                               const json* cur, const json& next) {
  if (!Counted().count(r.kind)) return std::shared_ptr<Reservation>();
  QuotaAmounts add = UsageOf(r.kind, next);
  if (cur != nullptr) {
    for (const auto& [k, v] : UsageOf(r.kind, *cur)) add[k] -= v;
  }
  bool grows = false;
  for (const auto& [k, v] : add) grows |= v > 0;
  if (!grows) return std::shared_ptr<Reservation>();
  QuotaAmounts hard = Hard(key.ns);
  bool limited = false;
  for (const auto& [k, v] : add) limited |= v > 0 && hard.count(k);
  if (!limited) return std::shared_ptr<Reservation>();

  Namespace* n = Ns(key.ns);
  std::string pkey = r.plural + "/" + key.name;
  std::lock_guard lock(n->mu);
  if (n->pending.count(pkey)) {
    return Status(Code::kConflict, r.kind + " \"" + key.name + "\" has a write in progress; try again");
  }
  QuotaAmounts used = UsedLocked(key.ns, *n);
  for (const auto& res : QuotaResources()) {
    auto a = add.find(res);
    auto h = hard.find(res);
    if (a == add.end() || a->second <= 0 || h == hard.end()) continue;
    if (used[res] + a->second > h->second) {
      Status s(Code::kForbidden, "exceeded quota: " + res + ", requested " + std::to_string(a->second) + ", used " +
                                     std::to_string(used[res]) + ", limited " + std::to_string(h->second));
      s.set_reason("QuotaExceeded");
      return s;
    }
  }
  n->pending[pkey] = Pending{r.kind, next};
  return std::make_shared<Reservation>(n, pkey);
}

}  // namespace stratus
