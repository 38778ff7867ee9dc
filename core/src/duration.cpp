#include "stratus/core/duration.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace stratus {

StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
  std::string s = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  auto bad = [&]() {
    return BadRequest("invalid duration \"" + text + "\": use a number with a unit such as 30s, 5m or 1h");
  };
  if (s.empty()) return bad();
  // A bare number is seconds.
  bool all_digits = true;
  for (char c : s) all_digits = all_digits && std::isdigit(static_cast<unsigned char>(c));
  if (all_digits) {
    if (s.size() > 12) return bad();
    return std::chrono::milliseconds(std::stoll(s) * 1000);
  }
  double total_ms = 0;
  size_t i = 0;
  if (s[0] == '-') return BadRequest("invalid duration \"" + text + "\": must not be negative");
  if (s[0] == '+') i = 1;
  if (i >= s.size()) return bad();
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return bad();
    std::string num = s.substr(start, i - start);
    if (num == "." || std::count(num.begin(), num.end(), '.') > 1 || num.size() > 15) return bad();
    double v = std::stod(num);
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(ustart, i - ustart);
    double mult;
    if (unit == "ms") mult = 1;
    else if (unit == "s") mult = 1000;
    else if (unit == "m") mult = 60 * 1000;
    else if (unit == "h") mult = 3600 * 1000;
    else if (unit == "d") mult = 86400 * 1000;
    else return bad();
    total_ms += v * mult;
  }
  if (total_ms > 1e15) return bad();
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

}  // namespace stratus
