// stratusctl auth can-i: a SelfSubjectAccessReview, as kubectl auth can-i sends it.
#include "lib/commands.h"
#include "lib/common.h"
#include "stratus/core/resources.h"

namespace stratus::cli {

int RunCanI(Env& env, const CanIOptions& opts) {
  static const char* kVerbs[] = {"get", "list", "watch", "create", "update", "patch", "delete"};
  bool known = false;
  for (const char* v : kVerbs) known |= opts.verb == v;
  if (!known) {
    *env.err << "error: VERB \"" << opts.verb << "\" is not one of get, list, watch, create, update, patch, delete\n";
    return 2;
  }
  std::string kind = opts.target, name = opts.name;
  auto slash = kind.find('/');
  if (slash != std::string::npos) {
    if (!name.empty()) {
      *env.err << "error: give the name as KIND/NAME or as KIND NAME, not both\n";
      return 2;
    }
    name = kind.substr(slash + 1);
    kind = kind.substr(0, slash);
  }
  const ResourceInfo* r = FindByAnyName(kind);
  if (!r) {
    *env.err << "error: the server doesn't have a resource type \"" << kind << "\"\n";
    return 2;
  }
  json attrs = {{"verb", opts.verb}, {"group", "stratus.io"}, {"version", "v1"}, {"resource", r->plural}};
  if (r->namespaced && !opts.all_namespaces) attrs["namespace"] = env.ns;
  if (!name.empty()) attrs["name"] = name;
  if (!opts.subresource.empty()) attrs["subresource"] = opts.subresource;
  json review = {{"apiVersion", "authorization.k8s.io/v1"},
                 {"kind", "SelfSubjectAccessReview"},
                 {"spec", {{"resourceAttributes", attrs}}}};
  auto res = env.client->PostRaw("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review);
  if (!res.ok()) {
    PrintError(env, res.status());
    return 2;
  }
  const json& st = (*res).contains("status") ? (*res)["status"] : json::object();
  if (st.is_object() && st.value("allowed", false)) {
    *env.out << "yes\n";
    return 0;
  }
  *env.out << "no\n";
  if (st.is_object() && st.contains("reason")) *env.err << st["reason"].get<std::string>() << "\n";
  return 1;
}

}  // namespace stratus::cli
