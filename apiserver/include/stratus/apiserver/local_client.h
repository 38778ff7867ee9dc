// The in-process ApiClient: `stratusd server` runs its reconcilers and embedded agent against the Registry
// directly, with the same semantics as the HTTP API (validation, defaults, 409 on stale writes, watch with
// resourceVersion, selectors and 410 Gone), without a socket in between.
#pragma once

#include <memory>

#include "stratus/apiserver/registry.h"
#include "stratus/core/api_client.h"

namespace stratus {

// `registry` must outlive the client and every Watch running on it. Its writes are `field_manager`'s
// (metadata.managedFields), as an HTTP client's are its User-Agent's.
std::unique_ptr<ApiClient> NewLocalApiClient(Registry* registry,
                                             const std::string& field_manager = "stratus-controller-manager");

}  // namespace stratus
