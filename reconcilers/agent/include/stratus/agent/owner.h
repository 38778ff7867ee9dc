// Which Stratus owns a host resource. Several Stratus clusters (data dirs) may share one libvirtd: every host
// resource an agent makes carries its owner, the cluster (the uid of the Namespace "default", which the API never
// lets anyone delete, as Kubernetes tools use kube-system's) and the node, so that two clusters never collide and
// an agent never touches what another made.
#pragma once

#include <string>

#include "stratus/core/api_client.h"
#include "stratus/core/status.h"

namespace stratus::agent {

struct Owner {
  std::string cluster;  // a uid
  std::string node;
};

// The cluster's identity as the API reports it (the uid of Namespace "default").
StatusOr<Owner> DiscoverOwner(ApiClient* client, const std::string& node);

// libvirt name of the node's pool `pool` ("images", "default", ...): stratus-<node>-<pool>-<8 hex of the cluster>.
std::string PoolName(const Owner& owner, const std::string& pool);
// The name pools had before they carried their owner (stratus-<node>-<pool>): adopted when found at the same path.
std::string LegacyPoolName(const std::string& node, const std::string& pool);
// The pool's UUID, derived from owner and pool: the owner mark libvirt keeps for a pool (pools have no metadata).
// A pool with the expected name but another UUID is someone else's and is never touched.
std::string PoolUuid(const Owner& owner, const std::string& pool);

// The mark on other host resources (a bridge's ifalias): "stratus:<cluster uid>/<node>".
std::string OwnerMark(const Owner& owner);

}  // namespace stratus::agent
