#include "stratus/apiserver/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

#include "stratus/core/files.h"
#include "stratus/core/object.h"
#include "stratus/core/sha256.h"

namespace stratus {
namespace {

bool IsRead(const std::string& verb) { return verb == "get" || verb == "list" || verb == "watch"; }

// What members create, change and delete; admins also manage the namespace's RoleBindings.
const std::set<std::string>& CloudKinds() {
  static const std::set<std::string> k = {"Instance",      "Volume",  "VolumeSnapshot", "Network", "Image",
                                          "KeyPair",       "SecurityGroup", "Address", "ManifestSource", "Secret",
                                          "InstanceGroup", "Migration"};
  return k;
}
// Credentials: never readable by a viewer role, only by cluster-admin.
bool IsCredential(const std::string& kind) { return kind == "Token" || kind == "AccessKey" || kind == "Secret"; }

// Paths every authenticated caller may read (Kubernetes' system:discovery).
bool IsDiscoveryPath(const std::string& p) {
  return p == "/" || p == "/api" || p == "/apis" || p == "/apis/stratus.io" || p == "/apis/stratus.io/v1" ||
         p == "/version" || p == "/openapi";
}

std::string Spec(const json& o, const char* field) {
  if (!o.is_object() || !o.contains("spec") || !o["spec"].is_object()) return "";
  const json& v = o["spec"];
  auto it = v.find(field);
  return it != v.end() && it->is_string() ? it->get<std::string>() : "";
}

Status Unauthorized() {
  return Status(Code::kUnauthorized, "a valid bearer token is required (Authorization: Bearer NAME.SECRET)");
}

}  // namespace

// --- authentication ----------------------------------------------------------------------------------------------

Authenticator::Authenticator(const Registry* registry, Now now) : registry_(registry), now_(std::move(now)) {
  if (!now_) {
    now_ = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

StatusOr<UserInfo> Authenticator::Authenticate(const std::string& header) const {
  auto parts = ParseBearer(header);
  if (!parts) return Unauthorized();
  const std::string& name = parts->name;
  const std::string& secret = parts->secret;
  auto stored = registry_->store()->GetStored({"tokens", "", name});
  if (!stored.ok()) {
    spdlog::debug("authentication failed: reason=unknown-token token={}", name);
    return Unauthorized();
  }
  const json& t = *stored->object;
  std::string want = Spec(t, "tokenHash"), got = TokenHash(secret);
  if (want.size() != got.size() || CRYPTO_memcmp(want.data(), got.data(), got.size()) != 0) {
    spdlog::debug("authentication failed: reason=secret-mismatch token={}", name);
    return Unauthorized();
  }
  if (t.contains("metadata") && t["metadata"].contains("deletionTimestamp")) return Unauthorized();
  std::string expires = Spec(t, "expiresAt");
  if (!expires.empty()) {
    int64_t at = ParseRfc3339(expires);
    if (at <= 0 || at <= now_()) {
      spdlog::debug("authentication failed: reason=expired token={}", name);
      return Unauthorized();
    }
  }
  UserInfo u;
  u.name = Spec(t, "user");
  if (u.name.empty()) return Unauthorized();
  if (!u.IsNode() && !u.IsBootstrap()) {
    Status s = CheckUser(u.name);
    if (!s.ok()) {
      spdlog::debug("authentication failed: reason=user token={} user={}", name, u.name);
      return s;
    }
  }
  return u;
}

Status Authenticator::CheckUser(const std::string& user) const {
  auto stored = registry_->store()->GetStored({"users", "", user});
  if (!stored.ok()) return Unauthorized();
  const json& o = *stored->object;
  if (o.contains("spec") && o["spec"].is_object() && o["spec"].value("disabled", false)) return Unauthorized();
  return Status();
}

// --- authorization -------------------------------------------------------------------------------------------

Authorizer::Authorizer(const Registry* registry) : registry_(registry) {}

Status Forbidden(const UserInfo& user, const RequestAttributes& a) {
  std::string who = "User \"" + user.name + "\"";
  if (!a.resource) return Status(Code::kForbidden, "forbidden: " + who + " cannot " + a.verb + " path \"" + a.path + "\"");
  std::string res = a.resource->plural + (a.subresource.empty() ? "" : "/" + a.subresource);
  std::string head = a.name.empty() ? "" : a.resource->plural + " \"" + a.name + "\" is ";
  if (head.empty()) head = a.resource->plural + " is ";
  std::string where = a.resource->namespaced && !a.ns.empty() ? " in the namespace \"" + a.ns + "\""
                                                                : std::string(" at the cluster scope");
  return Status(Code::kForbidden, head + "forbidden: " + who + " cannot " + a.verb + " resource \"" + res +
                                      "\" in API group \"stratus.io\"" + where);
}

bool Authorizer::ClusterRoleAllows(const std::string& user, const RequestAttributes& a) const {
  StoreListOptions lo;
  lo.plural = "clusterrolebindings";
  auto bindings = registry_->store()->List(lo);
  for (const auto& b : bindings.items) {
    if (Spec(*b, "user") != user) continue;
    std::string role = Spec(*b, "role");
    if (role == "cluster-admin") return true;
    if (role == "cluster-viewer" && IsRead(a.verb)) {
      if (!a.resource) return true;
      if (!IsCredential(a.resource->kind)) return true;
    }
  }
  return false;
}

bool Authorizer::IsClusterAdmin(const std::string& user) const {
  StoreListOptions lo;
  lo.plural = "clusterrolebindings";
  for (const auto& b : registry_->store()->List(lo).items) {
    if (Spec(*b, "user") == user && Spec(*b, "role") == "cluster-admin") return true;
  }
  return false;
}

bool Authorizer::HasAnyBinding(const std::string& user, const std::string& ns) const {
  StoreListOptions lo;
  lo.plural = "rolebindings";
  lo.ns = ns;
  for (const auto& b : registry_->store()->List(lo).items) {
    if (Spec(*b, "user") == user) return true;
  }
  return false;
}

bool Authorizer::NamespaceRoleAllows(const std::string& user, const RequestAttributes& a) const {
  if (!a.resource || !a.resource->namespaced || a.ns.empty()) return false;
  const std::string& kind = a.resource->kind;
  bool read = IsRead(a.verb);
  // Status is what the cloud observed: only its reconcilers (cluster-admin, nodes) write it.
  if (a.subresource == "status" && !read) return false;
  StoreListOptions lo;
  lo.plural = "rolebindings";
  lo.ns = a.ns;
  for (const auto& b : registry_->store()->List(lo).items) {
    if (Spec(*b, "user") != user) continue;
    std::string role = Spec(*b, "role");
    // Every role reads everything in its namespace but Secrets, which only members and admins (who could make
    // a ManifestSource use them anyway) read.
    if (read && (!IsCredential(kind) || role == "member" || role == "admin")) return true;
    if (read) continue;
    if ((role == "member" || role == "admin") && CloudKinds().count(kind)) return true;
    if (role == "admin" && kind == "RoleBinding") return true;
  }
  return false;
}

// Kubernetes' NodeRestriction: a node reads what its reconcilers need, writes its own Node, the status of what
// is placed on it, the root volumes of its instances and Events; never credentials. A KeyPair only by name (get,
// never list or watch) while an instance placed on the node names it in spec.keyName (its public key goes into
// that instance's NoCloud seed), as Kubernetes' node authorizer lets a node read the Secrets its pods use.
bool Authorizer::NodeAllows(const UserInfo& user, const RequestAttributes& a, const json* body) const {
  if (!a.resource) return IsDiscoveryPath(a.path);
  const std::string& kind = a.resource->kind;
  const std::string node = user.NodeName();
  static const std::set<std::string> kReads = {"Instance", "Volume", "VolumeSnapshot", "Network", "Image", "SecurityGroup",
                                               "Node",     "InstanceType", "Namespace", "Event", "Quota",
                                               "Address",  "AddressPool", "Migration"};
  auto placed_here = [&](const json& o) {
    std::string n = Spec(o, "nodeName");
    if (n.empty() && o.contains("status") && o["status"].is_object()) n = o["status"].value("node", "");
    return n == node;
  };
  if (kind == "KeyPair") {
    if (a.verb != "get" || a.name.empty() || a.ns.empty()) return false;
    StoreListOptions list;
    list.plural = "instances";
    list.ns = a.ns;
    list.limit = 1;
    list.filter = [&](const json& inst) { return Spec(inst, "keyName") == a.name && placed_here(inst); };
    return !registry_->store()->List(list).items.empty();
  }
  if (IsRead(a.verb)) return kReads.count(kind) > 0;
  if (kind == "Event") return a.verb == "create" || a.verb == "update" || a.verb == "patch";
  if (kind == "Node") {
    if (a.verb == "delete") return false;
    std::string name = a.name;
    if (a.verb == "create" && body) name = MetaString(*body, "name");
    return name == node;
  }
  // A merge patch of metadata.finalizers alone (what a node's reconciler adds and removes on what it manages).
  auto finalizers_only = [&] {
    if (a.verb != "patch" || !body || !body->is_object() || body->size() != 1 || !body->contains("metadata")) {
      return false;
    }
    const json& md = (*body)["metadata"];
    if (!md.is_object()) return false;
    for (auto it = md.begin(); it != md.end(); ++it) {
      if (it.key() != "finalizers" && it.key() != "resourceVersion") return false;
    }
    return true;
  };
  if (kind == "Instance" || kind == "Volume") {
    if (a.verb == "create") return kind == "Volume" && body && placed_here(*body);
    auto cur = registry_->store()->GetStored({a.resource->plural, a.ns, a.name});
    if (!cur.ok()) return false;
    if (!placed_here(*cur->object)) return false;
    // An instance's spec is the user's; its node writes status and its finalizer. Volumes on the node are the
    // instances' root disks, which the node makes, grows, hands to their instance and deletes.
    return kind == "Volume" || a.subresource == "status" || finalizers_only();
  }
  // A snapshot belongs to the node that took it, or before that to the node holding its volume.
  auto snapshot_here = [&](const std::string& ns, const std::string& name) {
    auto snap = registry_->store()->GetStored({"volumesnapshots", ns, name});
    if (!snap.ok()) return false;
    const json& o = *snap->object;
    if (o.contains("status") && o["status"].is_object() && !o["status"].value("node", "").empty()) {
      return o["status"].value("node", "") == node;
    }
    auto vol = registry_->store()->GetStored({"volumes", ns, Spec(o, "volume")});
    return vol.ok() && placed_here(*vol->object);
  };
  if (kind == "VolumeSnapshot") {
    return (a.subresource == "status" || finalizers_only()) && snapshot_here(a.ns, a.name);
  }
  if (kind == "Network") return a.subresource == "status" || finalizers_only();  // a network spans nodes
  if (kind == "Migration") {
    // Its source and target nodes write their phases of it.
    if (a.subresource != "status") return false;
    auto m = registry_->store()->GetStored({a.resource->plural, a.ns, a.name});
    if (!m.ok()) return false;
    const json st = m->object->value("status", json::object());
    return st.value("sourceNode", "") == node || st.value("targetNode", "") == node;
  }
  if (kind == "Image") {
    if (a.subresource == "status") return true;
    // The data of an Image captured from a volume, uploaded once by the node that holds that volume.
    if (a.subresource != "upload" || a.verb != "update") return false;
    auto img = registry_->store()->GetStored({a.resource->plural, a.ns, a.name});
    if (!img.ok()) return false;
    const json& o = *img->object;
    if (o.contains("status") && o["status"].is_object() && o["status"].contains("upload")) return false;
    const json src = o.contains("spec") && o["spec"].is_object() ? o["spec"].value("source", json::object()) : json();
    if (!src.is_object()) return false;
    if (!src.value("snapshot", "").empty()) return snapshot_here(a.ns, src.value("snapshot", ""));
    std::string from = src.value("volume", "");
    if (from.empty()) return false;
    auto vol = registry_->store()->GetStored({"volumes", a.ns, from});
    return vol.ok() && placed_here(*vol->object);
  }
  return false;
}

Status Authorizer::Authorize(const UserInfo& user, const RequestAttributes& a, const json* body) const {
  if (user.IsNode()) return NodeAllows(user, a, body) ? Status() : Forbidden(user, a);
  if (user.IsBootstrap()) {
    // A bootstrap token only turns into a node credential.
    bool ok = a.resource && a.resource->kind == "Token" && a.verb == "create" && body &&
              Spec(*body, "user").rfind(UserInfo::kNodePrefix, 0) == 0;
    return ok ? Status() : Forbidden(user, a);
  }
  if (ClusterRoleAllows(user.name, a)) return Status();
  if (!a.resource) {
    return IsDiscoveryPath(a.path) && a.verb == "get" ? Status() : Forbidden(user, a);
  }
  const std::string& kind = a.resource->kind;
  if (kind == "InstanceType" && IsRead(a.verb)) return Status();  // flavors are public, as in Nova
  if (kind == "User" && a.verb == "get" && a.name == user.name) return Status();
  if (kind == "Namespace" && a.verb == "get" && !a.name.empty() && HasAnyBinding(user.name, a.name)) return Status();
  if (NamespaceRoleAllows(user.name, a)) return Status();
  return Forbidden(user, a);
}

namespace {

Status CreateIfMissing(Registry* registry, const char* kind, json obj) {
  auto c = registry->Create(*FindByKind(kind), "", std::move(obj));
  if (!c.ok() && c.status().code() != Code::kAlreadyExists) return c.status();
  return Status();
}

}  // namespace

StatusOr<std::string> EnsureTokenFile(Registry* registry, const std::string& path, const std::string& token_name,
                                      const std::string& user, bool cluster_admin) {
  if (cluster_admin) {
    Status s = CreateIfMissing(registry, "User", {{"metadata", {{"name", user}}},
                                                  {"spec", {{"displayName", "The cloud's first administrator"}}}});
    if (s.ok()) {
      s = CreateIfMissing(registry, "ClusterRoleBinding",
                          {{"metadata", {{"name", user + "-cluster-admin"}}},
                           {"spec", {{"user", user}, {"role", "cluster-admin"}}}});
    }
    if (!s.ok()) return s;
  }
  // The file's token, when it still authenticates as `user`, stays.
  std::ifstream in(path);
  std::string existing;
  if (in && std::getline(in, existing) && !existing.empty()) {
    Authenticator authn(registry);
    auto u = authn.Authenticate("Bearer " + existing);
    if (u.ok() && u->name == user && existing.rfind(token_name + ".", 0) == 0) return existing;
  }
  TokenSecret t = NewTokenSecret();
  std::string bearer = BearerToken(token_name, t.secret);
  // The file first: a crash between the two leaves a file whose token fails, and the next start replaces both.
  Status w = WriteFileAtomic(path, bearer + "\n", 0600);
  if (!w.ok()) return w;
  const ResourceInfo& tr = *FindByKind("Token");
  auto cur = registry->Get(tr, "", token_name);
  if (cur.ok()) {
    auto p = registry->Patch(tr, "", token_name, {{"spec", {{"tokenHash", t.hash}, {"user", user}}}}, false);
    if (!p.ok()) return p.status();
  } else {
    auto c = registry->Create(tr, "", {{"metadata", {{"name", token_name}}},
                                       {"spec", {{"user", user}, {"tokenHash", t.hash},
                                                 {"description", "made by stratusd at first start (" + path + ")"}}}});
    if (!c.ok()) return c.status();
  }
  return bearer;
}

}  // namespace stratus
