// Small file helpers shared by everything that writes state a crash must not tear.
#pragma once

#include <sys/types.h>

#include <string>

#include "stratus/core/status.h"

namespace stratus {

// Writes `data` to `path` atomically: a temporary file in the same directory (mode `mode` before any byte is
// written), synced, renamed over `path`, and the directory synced. kUnavailable naming the path and the reason.
Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode);

}  // namespace stratus
