// Request query parameters: percent-decoding and validation of every LIST/WATCH parameter in one place, so that
// malformed input is a 400 naming the parameter (never a 500 from deep inside a parser).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "stratus/core/status.h"

namespace stratus {

// Splits and percent-decodes a raw query string ("a=1&b=%2F"). A malformed escape is kBadRequest naming the
// parameter ("query parameter continue: invalid percent-encoding").
StatusOr<std::map<std::string, std::string>> DecodeQuery(const std::string& raw);

struct ListParams {
  bool watch = false;
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;              // 0 = no limit
  std::string continue_token;     // as sent (the registry decodes it)
  bool has_resource_version = false;
  uint64_t resource_version = 0;  // 0 with has_resource_version: "any" (Kubernetes' "0")
  int timeout_seconds = 0;        // 0 = the server's default
};

// Validates the LIST/WATCH parameters of `query`; errors are kBadRequest and start with the parameter's name.
StatusOr<ListParams> ParseListParams(const std::map<std::string, std::string>& query);

}  // namespace stratus
