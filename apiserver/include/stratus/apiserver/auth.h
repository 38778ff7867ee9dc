// Who is calling (authentication: bearer Tokens) and what they may do (authorization: RoleBindings per namespace,
// ClusterRoleBindings, and the fixed rules of node credentials). Both read the objects from the store as they are
// now, so a deleted Token or RoleBinding stops working with the next request. Transport-free: the HTTP front
// (server.cpp) and the EC2 front call the same checks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "stratus/apiserver/bearer.h"
#include "stratus/apiserver/registry.h"
#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus {

// The authenticated caller.
struct UserInfo {
  std::string name;  // a User's name, "system:node:NODE" (a node credential) or "system:bootstrap"
  bool IsNode() const { return name.rfind(kNodePrefix, 0) == 0; }
  std::string NodeName() const { return IsNode() ? name.substr(sizeof(kNodePrefix) - 1) : ""; }
  bool IsBootstrap() const { return name == "system:bootstrap"; }
  static constexpr char kNodePrefix[] = "system:node:";
};

class Authenticator {
 public:
  using Now = std::function<int64_t()>;  // seconds since the epoch
  explicit Authenticator(const Registry* registry, Now now = {});
  // The caller an Authorization header names. kUnauthorized (one message for every reason, so a caller learns
  // nothing about which tokens exist) when the header is missing or malformed, the Token does not exist, the
  // secret does not match, the Token has expired, or its User is missing or disabled.
  StatusOr<UserInfo> Authenticate(const std::string& authorization_header) const;
  // The same check for a User named by another credential (an EC2 AccessKey).
  Status CheckUser(const std::string& user) const;

 private:
  const Registry* registry_;
  Now now_;
};

// One request as authorization sees it (Kubernetes' request attributes).
struct RequestAttributes {
  std::string verb;                        // get list watch create update patch delete
  const ResourceInfo* resource = nullptr;  // null for a non-resource path
  std::string ns;                          // namespace; "" for cluster-scoped kinds and for all-namespaces lists
  std::string name;                        // the object's name ("" for lists; a create's name from its body)
  std::string subresource;                 // "", status, upload, log
  std::string path;                        // a non-resource path ("/apis", "/metrics")
};

class Authorizer {
 public:
  explicit Authorizer(const Registry* registry);
  // OK when allowed; kForbidden naming the user, the verb and the resource otherwise. `body` is a create's or
  // update's object (node and bootstrap credentials are checked against it); may be null.
  Status Authorize(const UserInfo& user, const RequestAttributes& a, const json* body = nullptr) const;
  // True when a ClusterRoleBinding makes `user` a cluster-admin.
  bool IsClusterAdmin(const std::string& user) const;

 private:
  bool ClusterRoleAllows(const std::string& user, const RequestAttributes& a) const;
  bool NamespaceRoleAllows(const std::string& user, const RequestAttributes& a) const;
  bool NodeAllows(const UserInfo& user, const RequestAttributes& a, const json* body) const;
  bool HasAnyBinding(const std::string& user, const std::string& ns) const;

  const Registry* registry_;
};

// Makes sure a Token named `token_name` for `user` exists whose bearer token is in `path` (mode 0600): reuses the
// file when its token still authenticates, otherwise makes a new secret, writes the file (atomically) and then
// creates or updates the Token. Returns the bearer token. With `cluster_admin`, also makes the User and its
// cluster-admin ClusterRoleBinding (the `admin` a new cloud starts with).
StatusOr<std::string> EnsureTokenFile(Registry* registry, const std::string& path, const std::string& token_name,
                                      const std::string& user, bool cluster_admin);

// Kubernetes' wording of a denial: `instances "web" is forbidden: User "alice" cannot delete resource "instances"
// in API group "stratus.io" in the namespace "team-b"`.
Status Forbidden(const UserInfo& user, const RequestAttributes& a);

}  // namespace stratus
