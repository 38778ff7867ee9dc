#include "stratus/agent/owner.h"

#include "stratus/core/object.h"
#include "stratus/core/sha256.h"

namespace stratus::agent {

StatusOr<Owner> DiscoverOwner(ApiClient* client, const std::string& node) {
  auto ns = client->Get("namespaces", "", "default");
  if (!ns.ok()) return Status(ns.status().code(), "reading the cluster's identity: " + ns.status().message());
  std::string uid = MetaString(*ns, "uid");
  if (uid.size() < 8) return Internal("namespace default has no uid: cannot tell this cluster's resources apart");
  return Owner{uid, node};
}

std::string PoolName(const Owner& owner, const std::string& pool) {
  std::string c;
  for (char ch : owner.cluster) {
    if (ch != '-') c.push_back(ch);
    if (c.size() == 8) break;
  }
  return "stratus-" + owner.node + "-" + pool + "-" + c;
}

std::string LegacyPoolName(const std::string& node, const std::string& pool) { return "stratus-" + node + "-" + pool; }

std::string PoolUuid(const Owner& owner, const std::string& pool) {
  Sha256 h;
  std::string in = "stratus/pool/" + owner.cluster + "/" + owner.node + "/" + pool;
  h.Update(in.data(), in.size());
  std::string x = h.Hex().substr(0, 32);
  x[12] = '5';                                             // a name-based UUID (RFC 4122 version 5 layout)
  x[16] = "89ab"[std::stoi(x.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return x.substr(0, 8) + "-" + x.substr(8, 4) + "-" + x.substr(12, 4) + "-" + x.substr(16, 4) + "-" + x.substr(20);
}

std::string OwnerMark(const Owner& owner) { return "stratus:" + owner.cluster + "/" + owner.node; }

}  // namespace stratus::agent
