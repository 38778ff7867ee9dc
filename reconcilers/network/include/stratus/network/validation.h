// Semantic validation of Networks and SecurityGroups for the API server (Registry::AddValidator): the very checks
// the IPAM and node network reconcilers apply, run at the door, so a Network whose gateway lies outside its cidr
// or a rule whose port range runs backwards is refused with the field named instead of failing later on every
// node. Schemas already checked types, formats and enums.
#pragma once

#include "stratus/core/status.h"

namespace stratus::network {

// kInvalid with a field cause (e.g. "spec.gateway: 10.1.0.1 is outside 10.0.0.0/24") when ParseNetwork refuses it.
Status ValidateNetwork(const json& network);

// kInvalid with a field cause (e.g. "spec.ingress[0].toPort: must not be below fromPort 90") for a malformed rule.
Status ValidateSecurityGroup(const json& group);

}  // namespace stratus::network
