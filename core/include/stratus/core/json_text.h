// Text views of JSON objects for people: dotted-path lookups, scalars as text, sizes as quantities. Shared by
// stratusctl's printers and the API server's Table output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

std::string ToLower(std::string s);
std::string Join(const std::vector<std::string>& parts, const std::string& sep);

// Looks up a dotted path ("status.capacity.vcpus") in `obj`; nullptr when any step is absent or not an object.
const json* JsonAt(const json& obj, const std::string& dotted);
// The string at `dotted`, numbers and booleans rendered as text; "" when absent or null.
std::string JsonText(const json& obj, const std::string& dotted);
// The first non-empty JsonText among `paths`.
std::string FirstText(const json& obj, const std::vector<std::string>& paths);
// Renders a scalar JSON value as text (strings unquoted); objects/arrays as compact JSON.
std::string ScalarText(const json& v);

// Memory in MiB as a Kubernetes-style quantity: 512 -> "512Mi", 2048 -> "2Gi", 1536 -> "1536Mi".
std::string FormatMiB(int64_t mib);
// Bytes in binary units: 0 -> "0", 1536 -> "1.5Ki", 10737418240 -> "10Gi".
std::string FormatBytes(int64_t bytes);

}  // namespace stratus
