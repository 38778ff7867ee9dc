// Line-based unified diff, as `diff -u` prints it, for `stratusctl diff`.
#pragma once

#include <string>
#include <vector>

namespace stratus::cli {

// Splits text into lines (a trailing newline does not make an extra empty line).
std::vector<std::string> SplitLines(const std::string& text);

// Returns the unified diff turning `a` into `b` with `context` lines around each change, headed by
// "--- a_label" and "+++ b_label"; an empty string when the texts are equal.
std::string UnifiedDiff(const std::string& a, const std::string& b, const std::string& a_label,
                        const std::string& b_label, int context = 3);

}  // namespace stratus::cli
