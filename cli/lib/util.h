// Small pure helpers shared by stratusctl's commands: durations, strings, JSON paths, quantities.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "stratus/core/duration.h"
#include "stratus/core/json_text.h"
#include "stratus/core/status.h"

namespace stratus::cli {

// ParseDuration (as kubectl accepts durations) lives in core/duration.h.
using stratus::ParseDuration;
// "1m30s" style rendering of a duration (for messages).
std::string FormatDuration(std::chrono::milliseconds d);

// Splits on `sep`, keeping empty fields.
std::vector<std::string> Split(const std::string& s, char sep);
std::string Trim(const std::string& s);

// Set by the SIGINT/SIGTERM handler stratusctl installs; long-running commands (watch, wait) stop when true.
std::atomic<bool>& Interrupted();

}  // namespace stratus::cli
