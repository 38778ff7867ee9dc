#include "stratus/core/json_text.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace stratus {

std::string ToLower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

const json* JsonAt(const json& obj, const std::string& dotted) {
  const json* cur = &obj;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(part);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

std::string ScalarText(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%g", d);
    return buf;
  }
  return v.dump();
}

std::string JsonText(const json& obj, const std::string& dotted) {
  const json* v = JsonAt(obj, dotted);
  return v == nullptr ? "" : ScalarText(*v);
}

std::string FirstText(const json& obj, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    std::string t = JsonText(obj, p);
    if (!t.empty()) return t;
  }
  return "";
}

std::string FormatMiB(int64_t mib) {
  if (mib != 0 && mib % (1024 * 1024) == 0) return std::to_string(mib / (1024 * 1024)) + "Ti";
  if (mib != 0 && mib % 1024 == 0) return std::to_string(mib / 1024) + "Gi";
  return std::to_string(mib) + "Mi";
}

std::string FormatBytes(int64_t bytes) {
  static const char* kUnits[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
  if (bytes < 1024) return std::to_string(bytes);
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (v < 10 && std::floor(v) != v) {
    std::snprintf(buf, sizeof(buf), "%.1f%s", v, kUnits[u]);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f%s", v, kUnits[u]);
  }
  return buf;
}

}  // namespace stratus
