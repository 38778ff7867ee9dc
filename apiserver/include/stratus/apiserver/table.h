// meta.k8s.io/v1 Table answers: what `kubectl get` asks for (Accept: application/json;as=Table;v=v1;g=meta.k8s.io)
// so that it prints the same columns as `stratusctl get` (wide-only columns have priority 1, for `-o wide`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus {

// Whether an Accept header asks for a meta.k8s.io/v1 Table (v1beta1-only requests are not answered with one).
bool WantsTable(const std::string& accept);

// What each row carries besides its cells (the `includeObject` query parameter; Kubernetes' default is Metadata).
enum class IncludeObject { kNone, kMetadata, kObject };
StatusOr<IncludeObject> ParseIncludeObject(const std::string& value);

// A Table of `items` (objects of kind `r`); `list_meta` becomes its metadata (resourceVersion, continue). `now` is
// seconds since the epoch, for AGE cells.
json TableOf(const ResourceInfo& r, const std::vector<const json*>& items, const json& list_meta, IncludeObject inc,
             int64_t now);

}  // namespace stratus
