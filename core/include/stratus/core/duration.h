// Durations as people write them: 30s, 5m, 1h30m, 500ms, 1.5s, 2d; a bare number is seconds.
#pragma once

#include <chrono>
#include <string>

#include "stratus/core/status.h"

namespace stratus {

// kBadRequest naming the text when it is not a duration (or is negative).
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace stratus
