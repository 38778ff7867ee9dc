#include "stratus/ipam/ipam.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "stratus/core/object.h"

namespace stratus::ipam {

Plan PlanAllocations(const network::NetworkConfig& net, network::AllocationTable table,
                     const std::vector<json>& instances) {
  Plan p;
  std::set<std::string> existing;  // uids of instances that still exist (terminating ones included)
  // Holders first (stable), then newcomers by age, so an address someone holds is never taken by a request.
  std::vector<const json*> order;
  for (const auto& i : instances) order.push_back(&i);
  std::stable_sort(order.begin(), order.end(), [](const json* a, const json* b) {
    return MetaString(*a, "creationTimestamp") < MetaString(*b, "creationTimestamp");
  });
  for (const json* ip : order) {
    const json& inst = *ip;
    std::string uid = MetaString(inst, "uid");
    existing.insert(uid);
    std::string key = MetaString(inst, "namespace") + "/" + MetaString(inst, "name");
    const json& spec = inst["spec"];
    int count = spec.contains("networks") && spec["networks"].is_array() ? static_cast<int>(spec["networks"].size()) : 0;
    if (network::ReleaseRemovedNics(table, uid, count) > 0) p.changed = true;
    bool terminating = !MetaString(inst, "deletionTimestamp").empty();
    for (int n = 0; n < count; ++n) {
      const json& nic = spec["networks"][n];
      if (nic.value("network", "") != net.name) {
        if (network::ReleaseNic(table, uid, n) > 0) p.changed = true;  // this NIC moved to another network
        continue;
      }
      p.asked[key]++;
      if (terminating) continue;  // keeps what it has until it is gone
      network::NicRequest req;
      req.instance = key;
      req.uid = uid;
      req.nic = n;
      req.ip = nic.value("ip", "");
      req.mac = nic.value("mac", "");
      auto a = network::Allocate(net, table, req);
      if (!a.ok()) {
        p.refused[key].push_back(a.status().message());
        continue;
      }
      p.changed |= a->changed;
      p.refused.emplace(key, std::vector<std::string>{});
    }
  }
  for (auto it = table.begin(); it != table.end();) {
    if (!existing.count(it->second.uid)) {
      it = table.erase(it);  // the instance is gone: the address is free again
      p.changed = true;
    } else {
      ++it;
    }
  }
  p.table = std::move(table);
  return p;
}

IpamReconciler::IpamReconciler(ApiClient* client, runtime::Informer* networks, runtime::Informer* instances)
    : client_(client), networks_(networks), instances_(instances), events_(client, "ipam") {}

std::vector<std::string> IpamReconciler::NetworksOf(const json& inst) const {
  std::set<std::string> keys;
  std::string ns = MetaString(inst, "namespace");
  const json& spec = inst["spec"];
  if (spec.contains("networks") && spec["networks"].is_array()) {
    for (const auto& n : spec["networks"]) keys.insert(ns + "/" + n.value("network", ""));
  }
  // Networks that hold an address of this instance (a NIC removed, the instance deleted).
  std::string uid = MetaString(inst, "uid");
  for (const auto& net : networks_->List()) {
    if (MetaString(net, "namespace") != ns || !net.contains("status") || !net["status"].contains("allocations")) continue;
    for (const auto& [ip, a] : net["status"]["allocations"].items()) {
      if (a.value("uid", "") == uid) keys.insert(runtime::KeyFor(net));
    }
  }
  return {keys.begin(), keys.end()};
}

Status IpamReconciler::ReportOnInstance(const std::string& key, const std::string& network,
                                        const std::vector<std::string>& refused) {
  auto [ns, name] = runtime::SplitKey(key);
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cur = client_->Get("instances", ns, name);
    if (!cur.ok()) return cur.status().code() == Code::kNotFound ? Status::Ok() : cur.status();
    json d = *cur;
    bool changed;
    if (refused.empty()) {
      json c = runtime::GetCondition(d, kCondition);
      if (c.is_null() || c.value("reason", "") != "AddressRefused" ||
          c.value("message", "").find("network " + network) == std::string::npos) {
        return Status::Ok();  // nothing of ours to clear
      }
      changed = runtime::SetCondition(d, kCondition, "True", "AddressesAllocated", "every NIC has an address");
    } else {
      std::string msg;
      for (const auto& r : refused) msg += (msg.empty() ? "" : "; ") + r;
      changed = runtime::SetCondition(d, kCondition, "False", "AddressRefused", msg);
      if (changed) events_.Record(*cur, "Warning", "AddressRefused", msg);
    }
    if (!changed) return Status::Ok();
    auto u = client_->UpdateStatus("instances", ns, d);
    if (u.ok() || u.status().code() == Code::kNotFound) return Status::Ok();
    if (u.status().code() != Code::kConflict) return u.status();
  }
  return Status(Code::kConflict, "instance " + key + " keeps changing; retrying");
}

namespace {

// Older first: (creationTimestamp, uid).
bool Older(const json& a, const json& b) {
  return std::make_pair(MetaString(a, "creationTimestamp"), MetaString(a, "uid")) <
         std::make_pair(MetaString(b, "creationTimestamp"), MetaString(b, "uid"));
}

}  // namespace

uint32_t ChooseVni(const json& network, const std::vector<json>& networks, const std::set<uint32_t>& reserved) {
  constexpr uint32_t kMax = 16777215;
  const std::string uid = MetaString(network, "uid");
  std::set<uint32_t> taken = reserved;
  uint32_t mine = network::VniOf(network);
  bool contested = false;
  for (const auto& n : networks) {
    if (MetaString(n, "uid") == uid) continue;
    uint32_t v = network::VniOf(n);
    if (!v) continue;
    taken.insert(v);
    if (v == mine && Older(n, network)) contested = true;
  }
  if (mine && !contested) return mine;
  uint32_t start = 1 + static_cast<uint32_t>(network::StableHash("vni/" + uid) % kMax);
  for (uint32_t i = 0; i < kMax; ++i) {
    uint32_t v = 1 + (start - 1 + i) % kMax;
    if (!taken.count(v)) return v;
  }
  return 0;  // sixteen million networks
}

StatusOr<runtime::Result> IpamReconciler::Reconcile(const std::string& key) {
  // Addresses are freed when their instance is absent from the cache: never plan from one that has not listed.
  if (!runtime::AllSynced(Reads())) return Status(Code::kUnavailable, "caches not synced yet");
  json net = networks_->Get(key);
  if (net.is_null()) return runtime::Result::Done();
  auto [ns, name] = runtime::SplitKey(key);
  auto cfg = network::ParseNetwork(net);
  if (!cfg.ok()) {
    json d = net;
    runtime::SetCondition(d, "AddressesAllocated", "False", "InvalidSpec", cfg.status().message());
    auto u = runtime::UpdateStatusIfChanged(client_, "networks", net, d);
    return u.ok() ? StatusOr<runtime::Result>(runtime::Result::Done()) : StatusOr<runtime::Result>(u.status());
  }
  json stored = net.contains("status") && net["status"].contains("allocations") ? net["status"]["allocations"] : json();
  auto table = network::AllocationsFromJson(stored);
  if (!table.ok()) {
    // Never guess over a damaged table: that is how addresses get handed out twice.
    json d = net;
    runtime::SetCondition(d, "AddressesAllocated", "False", "CorruptAllocations", table.status().message());
    runtime::WarnIfFailed(runtime::UpdateStatusIfChanged(client_, "networks", net, d), "status of network " + key);
    return table.status();
  }
  std::vector<json> insts;
  for (auto& i : instances_->List()) {
    if (MetaString(i, "namespace") == ns) insts.push_back(std::move(i));
  }
  Plan plan = PlanAllocations(*cfg, std::move(*table), insts);
  json d = net;
  d["status"]["allocations"] = network::AllocationsToJson(plan.table);
  uint32_t used = static_cast<uint32_t>(plan.table.size());
  d["status"]["allocated"] = used;  // what `stratusctl get networks` shows
  std::unique_lock vni_lock(vni_mu_);  // two workers must not both take one free VNI before the cache shows it
  {
    std::vector<json> all = networks_->List();
    std::set<std::string> live;
    for (const auto& n : all) live.insert(MetaString(n, "uid"));
    std::set<uint32_t> reserved;
    for (auto it = vni_given_.begin(); it != vni_given_.end();) {
      if (!live.count(it->first)) {  // that network is gone: its VNI is free again
        it = vni_given_.erase(it);
        continue;
      }
      if (it->first != MetaString(net, "uid")) reserved.insert(it->second);
      ++it;
    }
    uint32_t vni = ChooseVni(net, all, reserved);
    if (vni) d["status"]["vni"] = vni;
  }
  runtime::SetCondition(d, "AddressesAllocated", "True", "Allocated",
                        std::to_string(used) + " of " + std::to_string(cfg->HostCount() - 1) + " addresses in use");
  // Written before anyone is told their address: the table is the record (409 on a stale cache -> retry).
  auto u = runtime::UpdateStatusIfChanged(client_, "networks", net, d);
  if (!u.ok()) return u.status();
  if (d["status"].contains("vni")) vni_given_[MetaString(net, "uid")] = d["status"]["vni"].get<uint32_t>();
  vni_lock.unlock();
  for (const auto& [inst, refused] : plan.refused) {
    Status s = ReportOnInstance(inst, name, refused);
    if (!s.ok()) spdlog::debug("ipam: instance condition not written: instance={} error={}", inst, s.message());
  }
  return runtime::Result::Done();
}

std::vector<runtime::WatchSpec> IpamReconciler::Watches() {
  // An instance's NICs changing (or the instance going) changes the tables of the networks it names.
  return {{networks_, nullptr}, {instances_, [this](const std::string&, const json& inst) { return NetworksOf(inst); }}};
}

}  // namespace stratus::ipam
