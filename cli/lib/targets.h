// Resolving what users type on the command line: `instances`, `inst web-1 web-2`, `instance/web-1`,
// `instances,volumes`, `all`.
#pragma once

#include <string>
#include <vector>

#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus::cli {

struct Target {
  const ResourceInfo* resource = nullptr;
  std::vector<std::string> names;  // empty: every object of the kind (filtered by selectors)
};

// Resolves a kind as typed (kind, plural, singular, short name, case-insensitive).
StatusOr<const ResourceInfo*> ResolveKind(const std::string& typed);

// Parses `args` as either `KIND[,KIND...] [NAME...]` or `KIND/NAME...`. "all" expands to the kinds in the
// "all" category. Names given with several kinds are an error (as in kubectl).
StatusOr<std::vector<Target>> ParseTargets(const std::vector<std::string>& args);

// Resolves `instance/NAME` or `NAME` (the kind defaults to instance) to instance names; another kind is an error.
StatusOr<std::vector<std::string>> InstanceNames(const std::vector<std::string>& args);

}  // namespace stratus::cli
