// Objects the network tests create: an Instance bound to a node with one NIC on a network.
#pragma once

#include <string>

#include "stratus/core/status.h"

namespace stratus::network {

inline json NicInstance(const std::string& name, json groups = json::array(), const std::string& network = "default",
                        const std::string& node = "node-a") {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Instance"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec",
           {{"resources", {{"vcpus", 1}, {"memoryMiB", 64}}},
            {"image", "img"},
            {"nodeName", node},
            {"networks", {{{"network", network}}}},
            {"securityGroups", groups}}}};
}

}  // namespace stratus::network
