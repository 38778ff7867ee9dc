// Small pure helpers shared by stratusctl's commands: durations, strings, JSON paths, quantities.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/json_text.h"
#include "stratus/core/status.h"

namespace stratus::cli {

// Parses a duration as kubectl accepts it: "60s", "2m", "1h", "1h30m", "500ms", "1.5h" or a bare number of
// seconds ("90"). Returns kBadRequest naming the text when malformed or negative.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);
// "1m30s" style rendering of a duration (for messages).
std::string FormatDuration(std::chrono::milliseconds d);

// Splits on `sep`, keeping empty fields.
std::vector<std::string> Split(const std::string& s, char sep);
std::string Trim(const std::string& s);

// Set by the SIGINT/SIGTERM handler stratusctl installs; long-running commands (watch, wait) stop when true.
std::atomic<bool>& Interrupted();

}  // namespace stratus::cli
