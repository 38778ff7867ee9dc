#include "lib/targets.h"

#include <algorithm>

#include "lib/util.h"

namespace stratus::cli {

StatusOr<const ResourceInfo*> ResolveKind(const std::string& typed) {
  const ResourceInfo* r = FindByAnyName(typed);
  if (r == nullptr) {
    std::vector<std::string> known;
    for (const auto& x : AllResources()) known.push_back(x.plural);
    return BadRequest("the server doesn't have a resource type \"" + typed + "\" (known: " + Join(known, ", ") +
                      ")");
  }
  return r;
}

StatusOr<std::vector<Target>> ParseTargets(const std::vector<std::string>& args) {
  if (args.empty()) {
    return BadRequest("you must specify the type of resource, e.g. `instances`; known types: see `stratusctl "
                      "api-resources`");
  }
  std::vector<Target> out;
  bool slash = args[0].find('/') != std::string::npos;
  if (slash) {
    for (const auto& a : args) {
      auto pos = a.find('/');
      if (pos == std::string::npos || pos == 0 || pos + 1 == a.size()) {
        return BadRequest("there is no need to specify a resource type as a separate argument when passing "
                          "arguments in resource/name form (got \"" + a + "\")");
      }
      auto r = ResolveKind(a.substr(0, pos));
      if (!r.ok()) return r.status();
      std::string name = a.substr(pos + 1);
      auto it = std::find_if(out.begin(), out.end(), [&](const Target& t) { return t.resource == *r; });
      if (it == out.end()) {
        out.push_back({*r, {name}});
      } else {
        it->names.push_back(name);
      }
    }
    return out;
  }
  for (const auto& kind : Split(args[0], ',')) {
    if (kind.empty()) continue;
    if (ToLower(kind) == "all") {
      for (const auto& r : AllResources()) {
        if (std::find(r.categories.begin(), r.categories.end(), "all") != r.categories.end()) {
          out.push_back({&r, {}});
        }
      }
      continue;
    }
    auto r = ResolveKind(kind);
    if (!r.ok()) return r.status();
    out.push_back({*r, {}});
  }
  if (out.empty()) return BadRequest("you must specify the type of resource");
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i].find('/') != std::string::npos) {
      return BadRequest("arguments in resource/name form must have a single resource and name (got \"" + args[i] +
                        "\" after \"" + args[0] + "\")");
    }
  }
  if (args.size() > 1) {
    if (out.size() > 1) {
      return BadRequest("names cannot be given with several resource types; use TYPE/NAME form instead");
    }
    out[0].names.assign(args.begin() + 1, args.end());
  }
  return out;
}

// Resolves `instance/NAME` or `NAME` (kind defaults to instance) to instance names.
StatusOr<std::vector<std::string>> InstanceNames(const std::vector<std::string>& args) {
  std::vector<std::string> names;
  for (const auto& a : args) {
    auto slash = a.find('/');
    if (slash == std::string::npos) {
      names.push_back(a);
      continue;
    }
    auto r = ResolveKind(a.substr(0, slash));
    if (!r.ok()) return r.status();
    if ((*r)->kind != "Instance") return BadRequest("only instances have this action, not " + (*r)->plural);
    names.push_back(a.substr(slash + 1));
  }
  if (names.empty()) return BadRequest("name an instance: instance/NAME");
  return names;
}

}  // namespace stratus::cli
