#include "lib/util.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace stratus::cli {

StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  std::string s = Trim(text);
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

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) {
    out += std::to_string(s / 3600) + "h";
    s %= 3600;
  }
  if (s >= 60) {
    out += std::to_string(s / 60) + "m";
    s %= 60;
  }
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    if (p == std::string::npos) {
      out.push_back(s.substr(start));
      break;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::atomic<bool>& Interrupted() {
  static std::atomic<bool> flag{false};
  return flag;
}

}  // namespace stratus::cli
