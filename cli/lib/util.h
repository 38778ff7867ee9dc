// Small pure helpers shared by stratusctl's commands: durations, strings, JSON paths, quantities.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::cli {

// Parses a duration as kubectl accepts it: "60s", "2m", "1h", "1h30m", "500ms", "1.5h" or a bare number of
// seconds ("90"). Returns kBadRequest naming the text when malformed or negative.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);
// "1m30s" style rendering of a duration (for messages).
std::string FormatDuration(std::chrono::milliseconds d);

std::string ToLower(std::string s);
// Splits on `sep`, keeping empty fields.
std::vector<std::string> Split(const std::string& s, char sep);
std::string Trim(const std::string& s);
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

// Set by the SIGINT/SIGTERM handler stratusctl installs; long-running commands (watch, wait) stop when true.
std::atomic<bool>& Interrupted();

}  // namespace stratus::cli
