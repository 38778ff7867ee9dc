#include "stratus/core/resources.h"

#include <algorithm>
#include <cctype>

namespace stratus {

const std::vector<ResourceInfo>& AllResources() {
  static const std::vector<ResourceInfo> kAll = {
      {"Instance", "instances", "instance", true, {"inst", "vm"}, true, {"all"}},
      {"Volume", "volumes", "volume", true, {"vol"}, true, {"all"}},
      {"VolumeSnapshot", "volumesnapshots", "volumesnapshot", true, {"vs", "snapshot", "snap"}, true, {"all"}},
      {"Network", "networks", "network", true, {"net"}, true, {"all"}},
      {"Image", "images", "image", true, {"img"}, true, {"all"}},
      {"KeyPair", "keypairs", "keypair", true, {"kp"}, false, {}},
      {"SecurityGroup", "securitygroups", "securitygroup", true, {"sg", "secgroup"}, false, {"all"}},
      {"Event", "events", "event", true, {"ev"}, false, {}},
      {"Node", "nodes", "node", false, {"no"}, true, {}},
      {"InstanceType", "instancetypes", "instancetype", false, {"it", "flavor", "flavors"}, false, {}},
      {"Namespace", "namespaces", "namespace", false, {"ns"}, true, {}},
      {"AccessKey", "accesskeys", "accesskey", false, {"ak"}, false, {}},
      {"Quota", "quotas", "quota", true, {}, true, {}},
      {"User", "users", "user", false, {}, false, {}},
      {"Token", "tokens", "token", false, {}, false, {}},
      {"RoleBinding", "rolebindings", "rolebinding", true, {"rb"}, false, {}},
      {"ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, {"crb"}, false, {}},
      {"Address", "addresses", "address", true, {"addr", "eip", "fip"}, true, {"all"}},
      {"AddressPool", "addresspools", "addresspool", false, {"ap"}, true, {}},
      {"ManifestSource", "manifestsources", "manifestsource", true, {"msrc", "gitrepo"}, true, {}},
      {"Secret", "secrets", "secret", true, {}, false, {}},
      {"InstanceGroup", "instancegroups", "instancegroup", true, {"ig", "servergroup"}, false, {}},
      {"Lease", "leases", "lease", false, {}, false, {}},
      {"Migration", "migrations", "migration", true, {"mig", "vmim"}, true, {}},
  };
  return kAll;
}

const ResourceInfo* FindByPlural(const std::string& plural) {
  for (const auto& r : AllResources()) {
    if (r.plural == plural) return &r;
  }
  return nullptr;
}

const ResourceInfo* FindByKind(const std::string& kind) {
  for (const auto& r : AllResources()) {
    if (r.kind == kind) return &r;
  }
  return nullptr;
}

const ResourceInfo* FindByAnyName(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  // Accept `instances.stratus.io` as kubectl does.
  auto dot = n.find('.');
  if (dot != std::string::npos) n = n.substr(0, dot);
  for (const auto& r : AllResources()) {
    std::string k = r.kind;
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
    if (n == k || n == r.plural || n == r.singular) return &r;
    for (const auto& s : r.short_names) {
      if (n == s) return &r;
    }
  }
  return nullptr;
}

}  // namespace stratus
