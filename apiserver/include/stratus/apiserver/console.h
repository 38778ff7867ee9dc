// An instance's serial console log lives on the node that runs it; its agent serves it. These find that agent
// and read the log (the main API's `log` subresource proxies; EC2's GetConsoleOutput reads).
#pragma once

#include <string>

#include "stratus/apiserver/registry.h"
#include "stratus/core/status.h"

namespace stratus {

// The URL of the agent on the node instance `ns`/`name` is placed on: kNotFound for a missing instance,
// kBadRequest before it is placed, kUnavailable when its node reports no agent address.
StatusOr<std::string> AgentUrlOfInstance(Registry& registry, const std::string& ns, const std::string& name);

// The last `tail_bytes` of the instance's console log, read from its agent (at most `timeout_seconds`). Blocks:
// call it from a thread that may wait, never from one the HTTP client's own I/O needs.
StatusOr<std::string> ReadConsoleLog(Registry& registry, const std::string& ns, const std::string& name,
                                     size_t tail_bytes, int timeout_seconds);

}  // namespace stratus
