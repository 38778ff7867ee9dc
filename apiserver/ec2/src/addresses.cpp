// Elastic IP addresses (nova-network's floating IPs, as EC2 shows them): AllocateAddress, AssociateAddress,
// DisassociateAddress, ReleaseAddress and DescribeAddresses onto Address objects. Every address is a VPC address
// (domain "vpc"). The allocation id is Ec2Id("eipalloc", uid of the Address); the association id is
// Ec2Id("eipassoc", "<address uid>/<instance uid>"), so it changes with each association, as EC2's does.
// AllocateAddress takes addresses from the AddressPool labelled stratus.io/default-pool=true (the oldest such
// pool), or from the only pool when there is exactly one.
#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include "internal.h"
#include "stratus/core/ipv4.h"
#include "stratus/core/object.h"

namespace stratus::ec2::actions {
namespace {

const std::regex& AllocationIdPattern() {
  static const std::regex k("eipalloc-[0-9a-f]{8,17}");
  return k;
}
const std::regex& AssociationIdPattern() {
  static const std::regex k("eipassoc-[0-9a-f]{8,17}");
  return k;
}
const std::regex& InstanceIdPattern() {
  static const std::regex k("i-[0-9a-f]{8,17}");
  return k;
}

// One Address with what EC2 shows of it.
struct View {
  json obj;
  std::string allocation_id;
  std::string public_ip;       // status.ip ("" until allocated)
  json instance;               // the associated Instance (null when none)
  std::string instance_id;
  std::string association_id;
  std::string private_ip;      // status.privateIp
};

struct World {
  std::vector<View> addresses;
  json instances;  // the caller's instances (List result)
};

std::optional<Error> Load(ApiClient* api, const Call& c, World* w) {
  auto addrs = api->List("addresses", c.caller->ns, {});
  if (!addrs.ok()) return FromStatus(addrs.status());
  auto insts = api->List("instances", c.caller->ns, {});
  if (!insts.ok()) return FromStatus(insts.status());
  w->instances = *insts;
  std::map<std::string, json> by_name;
  for (const auto& i : (*insts)["items"]) by_name[Name(i)] = i;
  for (const auto& a : (*addrs)["items"]) {
    View v;
    v.obj = a;
    v.allocation_id = Ec2Id("eipalloc", Uid(a));
    v.public_ip = Str(a, "status", "ip");
    std::string inst = Str(a, "spec", "instance");
    auto it = by_name.find(inst);
    if (!inst.empty() && it != by_name.end()) {
      v.instance = it->second;
      v.instance_id = Ec2Id("i", Uid(it->second));
      v.association_id = Ec2Id("eipassoc", Uid(a) + "/" + Uid(it->second));
      v.private_ip = Str(a, "status", "privateIp");
    }
    w->addresses.push_back(std::move(v));
  }
  return std::nullopt;
}

// The Address named by AllocationId or PublicIp (exactly one of them).
std::optional<Error> Named(const World& w, const Call& c, const View** out, bool allow_public_ip = true) {
  auto alloc = c.params.Get("AllocationId");
  auto pub = c.params.Get("PublicIp");
  if (alloc && !alloc->empty() && pub && !pub->empty()) {
    return Error{"InvalidParameterCombination", "Specify AllocationId or PublicIp, not both", 400};
  }
  if (alloc && !alloc->empty()) {
    if (!std::regex_match(*alloc, AllocationIdPattern())) {
      return Error{"InvalidAllocationID.Malformed", "Invalid id: \"" + *alloc + "\"", 400};
    }
    for (const auto& v : w.addresses) {
      if (v.allocation_id == *alloc) {
        *out = &v;
        return std::nullopt;
      }
    }
    return Error{"InvalidAllocationID.NotFound", "The allocation ID '" + *alloc + "' does not exist", 400};
  }
  if (allow_public_ip && pub && !pub->empty()) {
    if (!ParseIpv4(*pub).ok()) return InvalidParameterValue("Invalid value '" + *pub + "' for PublicIp");
    for (const auto& v : w.addresses) {
      if (v.public_ip == *pub) {
        *out = &v;
        return std::nullopt;
      }
    }
    return Error{"InvalidAddress.NotFound", "Address '" + *pub + "' not found.", 400};
  }
  return MissingParameter(allow_public_ip ? "AllocationId" : "AllocationId");
}

// Sets or clears spec.instance, pinned to the version read (409: the caller's state changed; EC2 callers retry).
Status SetInstance(ApiClient* api, const std::string& ns, const json& addr, const std::string& instance) {
  json patch = {{"metadata", {{"resourceVersion", Str(addr, "metadata", "resourceVersion")}}},
                {"spec", {{"instance", instance.empty() ? json(nullptr) : json(instance)}}}};
  auto p = api->Patch("addresses", ns, Name(addr), patch);
  return p.ok() ? Status() : p.status();
}

std::optional<Error> WriteError(const Status& s) {
  if (s.code() == Code::kConflict) {
    return Error{"IncorrectState", "The address changed while this request was served; try again", 409};
  }
  if (s.code() == Code::kNotFound) return Error{"InvalidAllocationID.NotFound", s.message(), 400};
  return FromStatus(s);
}

// The pool AllocateAddress takes from.
std::optional<Error> DefaultPool(ApiClient* api, std::string* out) {
  auto pools = api->List("addresspools", "", {});
  if (!pools.ok()) return FromStatus(pools.status());
  const json* best = nullptr;
  const auto& items = (*pools)["items"];
  for (const auto& p : items) {
    const json& md = p["metadata"];
    bool marked = md.contains("labels") && md["labels"].is_object() &&
                  md["labels"].value(address_default_label(), "") == "true";
    if (!marked) continue;
    if (!best || MetaString(p, "creationTimestamp") < MetaString(*best, "creationTimestamp")) best = &p;
  }
  if (!best && items.size() == 1) best = &items[0];
  if (!best) {
    return Error{"InsufficientAddressCapacity",
                 "No address pool is available: label one AddressPool stratus.io/default-pool=true", 400};
  }
  *out = Name(*best);
  return std::nullopt;
}

}  // namespace

const char* address_default_label() { return "stratus.io/default-pool"; }

std::optional<Error> AllocateAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::string domain = c.params.Get("Domain").value_or("vpc");
  if (domain != "vpc" && domain != "standard") {
    return InvalidParameterValue("Invalid value '" + domain + "' for Domain (vpc or standard)");
  }
  json spec = json::object();
  if (auto want = c.params.Get("Address"); want && !want->empty()) {
    if (!ParseIpv4(*want).ok()) return InvalidParameterValue("Invalid value '" + *want + "' for Address");
    spec["ip"] = *want;
  }
  std::string pool;
  if (auto e = DefaultPool(api, &pool)) return e;
  spec["pool"] = pool;
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Address"},
              {"metadata", {{"generateName", "eip-"}}},
              {"spec", spec}};
  auto made = api->Create("addresses", c.caller->ns, obj);
  if (!made.ok()) {
    if (made.status().code() == Code::kForbidden) {
      return Error{"AddressLimitExceeded", "The maximum number of addresses has been reached: " +
                                               made.status().message(), 400};
    }
    if (made.status().code() == Code::kInvalid) return InvalidParameterValue(made.status().message());
    return FromStatus(made.status());
  }
  // EC2 answers the address itself: wait (bounded) for the address reconciler's record.
  std::string name = Name(*made);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  json cur = *made;
  for (;;) {
    std::string ip = Str(cur, "status", "ip");
    if (!ip.empty()) {
      AddText(r->root(), "publicIp", ip);
      AddText(r->root(), "domain", "vpc");
      AddText(r->root(), "allocationId", Ec2Id("eipalloc", Uid(cur)));
      AddText(r->root(), "publicIpv4Pool", pool);
      AddText(r->root(), "networkBorderGroup", "default");
      return std::nullopt;
    }
    json cond;
    if (cur.contains("status") && cur["status"].contains("conditions")) {
      for (const auto& cnd : cur["status"]["conditions"]) {
        if (cnd.value("type", "") == "Allocated" && cnd.value("status", "") == "False" &&
            cnd.value("reason", "") != "Pending") {
          cond = cnd;
        }
      }
    }
    if (!cond.is_null() || std::chrono::steady_clock::now() > deadline) {
      // Nothing half-made: the Address that got no ip goes again.
      auto d = api->Delete("addresses", c.caller->ns, name, Uid(cur));
      (void)d;
      if (cond.is_null()) return Error{"InsufficientAddressCapacity", "No address was allocated in time", 400};
      if (cond.value("reason", "") == "PoolExhausted") {
        return Error{"InsufficientAddressCapacity", cond.value("message", ""), 400};
      }
      return InvalidParameterValue(cond.value("message", ""));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto g = api->Get("addresses", c.caller->ns, name);
    if (!g.ok()) return FromStatus(g.status());
    cur = *g;
  }
}

std::optional<Error> AssociateAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  if (c.params.Has("NetworkInterfaceId")) {
    return InvalidParameterValue("NetworkInterfaceId: addresses are associated with instances (their first NIC)");
  }
  auto inst_id = c.params.Get("InstanceId");
  if (!inst_id || inst_id->empty()) return MissingParameter("InstanceId");
  if (!std::regex_match(*inst_id, InstanceIdPattern())) {
    return Error{"InvalidInstanceID.Malformed", "Invalid id: \"" + *inst_id + "\"", 400};
  }
  bool allow = true;
  Error e;
  if (!c.params.Bool("AllowReassociation", true, &allow, &e)) return e;
  World w;
  if (auto err = Load(api, c, &w)) return err;
  const View* v = nullptr;
  if (auto err = Named(w, c, &v)) return err;
  const json* inst = nullptr;
  for (const auto& i : w.instances["items"]) {
    if (Ec2Id("i", Uid(i)) == *inst_id) inst = &i;
  }
  if (!inst) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + *inst_id + "' does not exist", 400};
  if (auto pip = c.params.Get("PrivateIpAddress"); pip && !pip->empty() && !v->private_ip.empty() &&
                                                   *pip != v->private_ip) {
    return InvalidParameterValue("PrivateIpAddress: only the instance's primary address can be associated");
  }
  std::string current = Str(v->obj, "spec", "instance");
  if (!current.empty() && current != Name(*inst) && !allow) {
    return Error{"Resource.AlreadyAssociated", "Address " + v->allocation_id + " is already associated with " +
                                                   (v->instance_id.empty() ? current : v->instance_id), 400};
  }
  // An instance holds one address: another address of it is disassociated (it stays allocated), as EC2 does.
  for (const auto& other : w.addresses) {
    if (&other == v || Str(other.obj, "spec", "instance") != Name(*inst)) continue;
    Status s = SetInstance(api, c.caller->ns, other.obj, "");
    if (!s.ok()) return WriteError(s);
  }
  if (current != Name(*inst)) {
    Status s = SetInstance(api, c.caller->ns, v->obj, Name(*inst));
    if (!s.ok()) return WriteError(s);
  }
  AddText(r->root(), "return", "true");
  AddText(r->root(), "associationId", Ec2Id("eipassoc", Uid(v->obj) + "/" + Uid(*inst)));
  return std::nullopt;
}

std::optional<Error> DisassociateAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  World w;
  if (auto err = Load(api, c, &w)) return err;
  const View* v = nullptr;
  auto assoc = c.params.Get("AssociationId");
  auto pub = c.params.Get("PublicIp");
  if (assoc && !assoc->empty()) {
    if (pub && !pub->empty()) {
      return Error{"InvalidParameterCombination", "Specify AssociationId or PublicIp, not both", 400};
    }
    if (!std::regex_match(*assoc, AssociationIdPattern())) {
      return Error{"InvalidAssociationID.Malformed", "Invalid id: \"" + *assoc + "\"", 400};
    }
    for (const auto& x : w.addresses) {
      if (!x.association_id.empty() && x.association_id == *assoc) v = &x;
    }
    if (!v) return Error{"InvalidAssociationID.NotFound", "The association ID '" + *assoc + "' does not exist", 400};
  } else if (pub && !pub->empty()) {
    if (!ParseIpv4(*pub).ok()) return InvalidParameterValue("Invalid value '" + *pub + "' for PublicIp");
    for (const auto& x : w.addresses) {
      if (x.public_ip == *pub) v = &x;
    }
    if (!v) return Error{"InvalidAddress.NotFound", "Address '" + *pub + "' not found.", 400};
  } else {
    return MissingParameter("AssociationId");
  }
  if (!Str(v->obj, "spec", "instance").empty()) {
    Status s = SetInstance(api, c.caller->ns, v->obj, "");
    if (!s.ok()) return WriteError(s);
  }
  AddText(r->root(), "return", "true");
  return std::nullopt;
}

std::optional<Error> ReleaseAddress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  World w;
  if (auto err = Load(api, c, &w)) return err;
  const View* v = nullptr;
  if (auto err = Named(w, c, &v)) return err;
  if (!Str(v->obj, "spec", "instance").empty()) {
    // VPC addresses are disassociated before they are released (EC2 answers InvalidIPAddress.InUse).
    return Error{"InvalidIPAddress.InUse", "Address " + v->allocation_id + " is associated with " +
                                               (v->instance_id.empty() ? Str(v->obj, "spec", "instance") : v->instance_id) +
                                               "; disassociate it first", 400};
  }
  auto d = api->Delete("addresses", c.caller->ns, Name(v->obj), Uid(v->obj));
  if (!d.ok() && d.status().code() != Code::kNotFound) return FromStatus(d.status());
  AddText(r->root(), "return", "true");
  return std::nullopt;
}

std::optional<Error> DescribeAddresses(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::string> ids, ips;
  if (auto e = IdList(c.params, "AllocationId", AllocationIdPattern(), "InvalidAllocationID.Malformed", &ids)) return e;
  Error le;
  if (!c.params.List("PublicIp", &ips, &le)) return le;
  for (const auto& ip : ips) {
    if (!ParseIpv4(ip).ok()) return InvalidParameterValue("Invalid value '" + ip + "' for PublicIp");
  }
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  static const std::set<std::string> kFilters = {"allocation-id", "association-id",     "instance-id",
                                                 "public-ip",     "private-ip-address", "domain"};
  for (const auto& f : filters) {
    if (!kFilters.count(f.name)) return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
  }
  World w;
  if (auto err = Load(api, c, &w)) return err;
  std::set<std::string> want_ids(ids.begin(), ids.end()), want_ips(ips.begin(), ips.end()), seen_ids, seen_ips;
  auto set = AddSet(r->root(), "addressesSet");
  for (const auto& v : w.addresses) {
    if (v.public_ip.empty()) continue;  // not allocated yet (or refused): not an address EC2 would show
    if (!want_ids.empty() && !want_ids.count(v.allocation_id)) continue;
    if (!want_ips.empty() && !want_ips.count(v.public_ip)) continue;
    seen_ids.insert(v.allocation_id);
    seen_ips.insert(v.public_ip);
    bool match = true;
    for (const auto& f : filters) {
      std::string val = f.name == "allocation-id"        ? v.allocation_id
                        : f.name == "association-id"     ? v.association_id
                        : f.name == "instance-id"        ? v.instance_id
                        : f.name == "public-ip"          ? v.public_ip
                        : f.name == "private-ip-address" ? v.private_ip
                                                         : std::string("vpc");
      match = match && !val.empty() && AnyMatch(f.values, val);
    }
    if (!match) continue;
    auto item = AddItem(set);
    AddText(item, "publicIp", v.public_ip);
    AddText(item, "allocationId", v.allocation_id);
    AddText(item, "domain", "vpc");
    if (!v.instance_id.empty()) {
      AddText(item, "instanceId", v.instance_id);
      AddText(item, "associationId", v.association_id);
      if (!v.private_ip.empty()) AddText(item, "privateIpAddress", v.private_ip);
    }
    AddText(item, "publicIpv4Pool", Str(v.obj, "spec", "pool"));
    AddText(item, "networkBorderGroup", "default");
    auto tag = AddItem(AddSet(item, "tagSet"));
    AddText(tag, "key", "Name");
    AddText(tag, "value", Name(v.obj));
  }
  for (const auto& id : want_ids) {
    if (!seen_ids.count(id)) return Error{"InvalidAllocationID.NotFound", "The allocation ID '" + id + "' does not exist", 400};
  }
  for (const auto& ip : want_ips) {
    if (!seen_ips.count(ip)) return Error{"InvalidAddress.NotFound", "Address '" + ip + "' not found.", 400};
  }
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
