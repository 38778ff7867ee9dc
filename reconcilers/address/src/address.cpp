#include "stratus/address/address.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "stratus/core/object.h"

namespace stratus::address {

namespace {

const json& Field(const json& o, const char* a, const char* b) {
  static const json kNull;
  if (!o.is_object() || !o.contains(a) || !o[a].is_object() || !o[a].contains(b)) return kNull;
  return o[a][b];
}
std::string Str(const json& o, const char* a, const char* b) {
  const json& v = Field(o, a, b);
  return v.is_string() ? v.get<std::string>() : "";
}
std::string KeyOf(const json& o) { return MetaString(o, "namespace") + "/" + MetaString(o, "name"); }

}  // namespace

uint32_t PoolConfig::Size() const {
  uint64_t n = cidr.prefix == 0 ? (1ull << 32) : (1ull << (32 - cidr.prefix));
  uint64_t ex = 0;
  for (uint32_t ip : exclude) ex += Usable(ip) ? 0 : 1;  // exclusions are inside the cidr (ParsePool)
  return static_cast<uint32_t>(std::min<uint64_t>(n - ex, 0xffffffffu));
}

bool PoolConfig::Usable(uint32_t ip) const { return cidr.Contains(ip) && !exclude.count(ip); }

StatusOr<PoolConfig> ParsePool(const json& pool) {
  PoolConfig c;
  c.name = MetaString(pool, "name");
  auto bad = [&](const std::string& field, const std::string& what) {
    return InvalidError("addresspool " + c.name + ": " + field + ": " + what, {FieldCause{field, what}});
  };
  auto cidr = ParseCidr(Str(pool, "spec", "cidr"));
  if (!cidr.ok()) return bad("spec.cidr", cidr.status().message());
  c.cidr = *cidr;
  const json& ex = Field(pool, "spec", "exclude");
  if (ex.is_array()) {
    for (size_t i = 0; i < ex.size(); ++i) {
      std::string f = "spec.exclude[" + std::to_string(i) + "]";
      auto ip = ParseIpv4(ex[i].is_string() ? ex[i].get<std::string>() : "");
      if (!ip.ok()) return bad(f, ip.status().message());
      if (!c.cidr.Contains(*ip)) return bad(f, FormatIpv4(*ip) + " is outside " + c.cidr.ToString());
      c.exclude.insert(*ip);
    }
  }
  c.interface = Str(pool, "spec", "interface");
  if (c.interface.empty()) return bad("spec.interface", "is required");
  for (char ch : c.interface) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.' && ch != '-') {
      return bad("spec.interface", "'" + c.interface + "' is not an interface name");
    }
  }
  if (c.interface.size() > 15) return bad("spec.interface", "longer than 15 characters");
  return c;
}

json PoolTableToJson(const PoolTable& t) {
  json j = json::object();
  for (const auto& [ip, h] : t) j[FormatIpv4(ip)] = {{"address", h.address}, {"uid", h.uid}};
  return j;
}

StatusOr<PoolTable> PoolTableFromJson(const json& j) {
  PoolTable t;
  if (j.is_null()) return t;
  if (!j.is_object()) return InvalidError("status.allocations: must be an object");
  for (const auto& [k, v] : j.items()) {
    auto ip = ParseIpv4(k);
    if (!ip.ok() || !v.is_object() || !v.contains("uid") || !v["uid"].is_string() || v["uid"].get<std::string>().empty()) {
      return InvalidError("status.allocations[" + k + "]: malformed entry");
    }
    t[*ip] = Holder{v.value("address", ""), v["uid"].get<std::string>()};
  }
  return t;
}

PoolPlan PlanPool(const PoolConfig& pool, PoolTable table, const std::vector<json>& addresses) {
  PoolPlan p;
  // Holders that are gone free their address first, so a newcomer (a re-created Address too) can have it.
  std::set<std::string> existing;
  for (const auto& a : addresses) existing.insert(MetaString(a, "uid"));
  for (auto it = table.begin(); it != table.end();) {
    if (!existing.count(it->second.uid)) {
      it = table.erase(it);
      p.changed = true;
    } else {
      ++it;
    }
  }
  std::map<std::string, uint32_t> held;  // uid -> ip
  for (const auto& [ip, h] : table) held[h.uid] = ip;
  std::vector<const json*> order;
  for (const auto& a : addresses) order.push_back(&a);
  // Oldest first (then by name), so a fixed request of a newer Address never takes what an older one asked for.
  std::stable_sort(order.begin(), order.end(), [](const json* a, const json* b) {
    auto ka = std::make_pair(MetaString(*a, "creationTimestamp"), KeyOf(*a));
    auto kb = std::make_pair(MetaString(*b, "creationTimestamp"), KeyOf(*b));
    return ka < kb;
  });
  uint32_t size = pool.Size();
  for (const json* ap : order) {
    const json& a = *ap;
    std::string uid = MetaString(a, "uid"), key = KeyOf(a);
    Outcome& out = p.outcomes[key];
    auto h = held.find(uid);
    if (h != held.end()) {
      out.ip = h->second;
      continue;  // an Address keeps its address for life (spec.ip is immutable)
    }
    if (!MetaString(a, "deletionTimestamp").empty()) continue;
    std::string want = Str(a, "spec", "ip");
    if (!want.empty()) {
      auto ip = ParseIpv4(want);
      if (!ip.ok()) {
        out.error = "spec.ip: " + ip.status().message();
        out.reason = "AddressRefused";
      } else if (!pool.cidr.Contains(*ip)) {
        out.error = "spec.ip: " + want + " is outside pool " + pool.name + " (" + pool.cidr.ToString() + ")";
        out.reason = "AddressRefused";
      } else if (pool.exclude.count(*ip)) {
        out.error = "spec.ip: " + want + " is excluded from pool " + pool.name;
        out.reason = "AddressRefused";
      } else if (table.count(*ip)) {
        out.error = "spec.ip: " + want + " is held by Address " + table[*ip].address;
        out.reason = "AddressRefused";
      } else {
        table[*ip] = Holder{key, uid};
        held[uid] = *ip;
        out.ip = *ip;
        p.changed = true;
      }
      continue;
    }
    uint32_t used = 0;
    for (const auto& [ip, hh] : table) used += pool.Usable(ip) ? 1 : 0;
    if (used >= size) {
      out.error = "pool " + pool.name + " has no free address (" + std::to_string(used) + " of " +
                  std::to_string(size) + " in use)";
      out.reason = "PoolExhausted";
      continue;
    }
    uint64_t n = pool.cidr.prefix == 0 ? (1ull << 32) : (1ull << (32 - pool.cidr.prefix));
    uint64_t start = network::StableHash(uid) % n;
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t ip = pool.cidr.base + static_cast<uint32_t>((start + i) % n);
      if (!pool.Usable(ip) || table.count(ip)) continue;
      table[ip] = Holder{key, uid};
      held[uid] = ip;
      out.ip = ip;
      p.changed = true;
      break;
    }
  }
  p.table = std::move(table);
  return p;
}

json DecideAddressStatus(const json& address, const Outcome& outcome, const std::string& pool,
                         const Association& assoc) {
  json d = address;
  if (!d.contains("status") || !d["status"].is_object()) d["status"] = json::object();
  json& s = d["status"];
  s["pool"] = pool;
  if (address.contains("metadata") && address["metadata"].contains("generation")) {
    s["observedGeneration"] = address["metadata"]["generation"];
  }
  for (const char* f : {"instance", "privateIp", "network", "node"}) s.erase(f);
  if (outcome.ip == 0) {
    s.erase("ip");
    std::string reason = outcome.reason.empty() ? "Pending" : outcome.reason;
    std::string msg = outcome.error.empty() ? "waiting for an address from pool " + pool : outcome.error;
    s["phase"] = outcome.error.empty() ? "Pending" : "Failed";
    runtime::SetCondition(d, "Allocated", "False", reason, msg);
    runtime::SetCondition(d, "Ready", "False", reason, msg);
    return d;
  }
  std::string ip = FormatIpv4(outcome.ip);
  s["ip"] = ip;
  runtime::SetCondition(d, "Allocated", "True", "Allocated", ip + " from pool " + pool);
  std::string inst = Str(address, "spec", "instance");
  if (inst.empty()) {
    s["phase"] = "Allocated";
    runtime::SetCondition(d, "Ready", "True", "Allocated", ip + " is allocated and not associated");
    return d;
  }
  std::string why;
  if (!assoc.instance_found) {
    why = "spec.instance: instance " + inst + " does not exist";
  } else if (assoc.network.empty()) {
    why = "spec.instance: instance " + inst + " has no network interface";
  } else if (assoc.private_ip == 0) {
    why = "instance " + inst + " has no address on network " + assoc.network + " yet";
  } else if (assoc.node.empty()) {
    why = "instance " + inst + " is not placed on a node yet";
  }
  if (!why.empty()) {
    s["phase"] = "Allocated";
    runtime::SetCondition(d, "Ready", "False", "AssociationPending", why);
    return d;
  }
  s["instance"] = inst;
  s["privateIp"] = FormatIpv4(assoc.private_ip);
  s["network"] = assoc.network;
  s["node"] = assoc.node;
  s["phase"] = "Associated";
  runtime::SetCondition(d, "Ready", "True", "Associated",
                        ip + " forwards to " + inst + " (" + FormatIpv4(assoc.private_ip) + ") on node " + assoc.node);
  return d;
}

AddressReconciler::AddressReconciler(ApiClient* client, runtime::Informer* pools, runtime::Informer* addresses,
                                     runtime::Informer* instances, runtime::Informer* networks)
    : client_(client), pools_(pools), addresses_(addresses), instances_(instances), networks_(networks),
      events_(client, "address") {}

Association AddressReconciler::Associate(const json& address) const {
  Association a;
  std::string ns = MetaString(address, "namespace");
  std::string name = Str(address, "spec", "instance");
  if (name.empty()) return a;
  json inst = instances_->Get(ns + "/" + name);
  if (inst.is_null()) return a;
  a.instance_found = true;
  a.node = Str(inst, "spec", "nodeName");
  const json& nets = Field(inst, "spec", "networks");
  if (!nets.is_array() || nets.empty() || !nets[0].is_object()) return a;
  a.network = nets[0].value("network", "");
  json net = networks_->Get(ns + "/" + a.network);
  if (net.is_null()) return a;
  auto t = network::AllocationsFromJson(Field(net, "status", "allocations"));
  if (t.ok()) a.private_ip = network::Lookup(*t, MetaString(inst, "uid"), 0);
  return a;
}

Status AddressReconciler::WriteAddressStatus(const json& address, const json& desired) {
  auto u = runtime::UpdateStatusIfChanged(client_, "addresses", address, desired);
  if (u.ok() || u.status().code() == Code::kNotFound) return Status::Ok();
  return u.status();
}

StatusOr<runtime::Result> AddressReconciler::Reconcile(const std::string& key) {
  // Addresses are freed when absent from the cache: never plan from one that has not listed.
  if (!runtime::AllSynced(Reads())) return Status(Code::kUnavailable, "caches not synced yet");
  std::vector<json> mine;
  for (auto& a : addresses_->List()) {
    if (Str(a, "spec", "pool") == key) mine.push_back(std::move(a));
  }
  json pool = pools_->Get(key);
  if (pool.is_null()) {
    // Admission keeps a pool while Addresses name it; these were made before it, or name a pool that never was.
    Status first;
    for (const auto& a : mine) {
      Outcome o;
      o.error = "spec.pool: addresspool " + key + " does not exist";
      o.reason = "PoolNotFound";
      Status s = WriteAddressStatus(a, DecideAddressStatus(a, o, key, {}));
      if (!s.ok() && first.ok()) first = s;
    }
    if (!first.ok()) return first;
    return runtime::Result::Done();
  }
  auto cfg = ParsePool(pool);
  if (!cfg.ok()) {
    json d = pool;
    runtime::SetCondition(d, "Ready", "False", "InvalidSpec", cfg.status().message());
    auto u = runtime::UpdateStatusIfChanged(client_, "addresspools", pool, d);
    return u.ok() ? StatusOr<runtime::Result>(runtime::Result::Done()) : StatusOr<runtime::Result>(u.status());
  }
  auto table = PoolTableFromJson(Field(pool, "status", "allocations"));
  if (!table.ok()) {
    json d = pool;
    runtime::SetCondition(d, "Ready", "False", "CorruptAllocations", table.status().message());
    runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "addresspools", pool, d), "status of pool " + key);
    return table.status();
  }
  PoolPlan plan = PlanPool(*cfg, std::move(*table), mine);
  json d = pool;
  d["status"]["allocations"] = PoolTableToJson(plan.table);
  uint32_t used = 0;
  for (const auto& [ip, h] : plan.table) used += cfg->Usable(ip) ? 1 : 0;
  d["status"]["allocated"] = used;
  d["status"]["free"] = cfg->Size() - std::min(used, cfg->Size());
  if (pool["metadata"].contains("generation")) d["status"]["observedGeneration"] = pool["metadata"]["generation"];
  runtime::SetCondition(d, "Ready", "True", "Serving",
                        std::to_string(used) + " of " + std::to_string(cfg->Size()) + " addresses allocated");
  // The record first (409 on a stale cache -> the whole pass runs again); only then are Addresses told.
  auto u = runtime::UpdateStatusIfChanged(client_, "addresspools", pool, d);
  if (!u.ok()) return u.status();
  Status first;
  for (const auto& a : mine) {
    const Outcome& o = plan.outcomes[KeyOf(a)];
    json want = DecideAddressStatus(a, o, key, Associate(a));
    json was = runtime::GetCondition(a, "Allocated");
    if (!o.error.empty() && (!was.is_object() || was.value("message", "") != o.error)) {
      events_.Record(a, "Warning", o.reason, o.error);
    }
    Status s = WriteAddressStatus(a, want);
    if (!s.ok() && first.ok()) first = s;
  }
  if (!first.ok()) return first;
  return runtime::Result::Done();
}

std::vector<runtime::WatchSpec> AddressReconciler::Watches() {
  auto pools_of_all = [this](const std::string&, const json&) {
    // An instance moved, got its address, or went away; a network's allocations changed: the pools of the
    // Addresses that may point at it (few pools: all of them).
    std::set<std::string> keys;
    for (const auto& a : addresses_->List()) {
      if (!Str(a, "spec", "instance").empty()) keys.insert(Str(a, "spec", "pool"));
    }
    return std::vector<std::string>(keys.begin(), keys.end());
  };
  return {{pools_, nullptr},
          {addresses_, [](const std::string&, const json& a) { return std::vector<std::string>{Str(a, "spec", "pool")}; }},
          {instances_, pools_of_all},
          {networks_, pools_of_all}};
}

}  // namespace stratus::address
