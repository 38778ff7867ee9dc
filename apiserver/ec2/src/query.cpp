#include "stratus/ec2/query.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace stratus::ec2 {
namespace {

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Decode(const std::string& s, std::string* out) {
  out->clear();
  out->reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      *out += ' ';
    } else if (c == '%') {
      if (i + 2 >= s.size() || HexVal(s[i + 1]) < 0 || HexVal(s[i + 2]) < 0) return false;
      *out += static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2]));
      i += 2;
    } else {
      *out += c;
    }
  }
  return true;
}

// A positive decimal index ("1", "12"); 0 when `s` is not one.
long ParseIndex(const std::string& s) {
  if (s.empty() || s.size() > 9 || s[0] == '0' ||
      !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return 0;
  }
  return std::strtol(s.c_str(), nullptr, 10);
}

}  // namespace

bool DecodeForm(const std::string& raw, std::vector<std::pair<std::string, std::string>>* out, Error* err) {
  out->clear();
  size_t start = 0;
  while (start <= raw.size()) {
    size_t amp = raw.find('&', start);
    std::string part = raw.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!part.empty()) {
      auto eq = part.find('=');
      std::string k, v;
      if (!Decode(part.substr(0, eq), &k)) {
        *err = InvalidParameterValue("a parameter name has an invalid percent-encoding");
        return false;
      }
      if (eq != std::string::npos && !Decode(part.substr(eq + 1), &v)) {
        *err = InvalidParameterValue("parameter " + k + " has an invalid percent-encoding");
        return false;
      }
      out->emplace_back(std::move(k), std::move(v));
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return true;
}

Params::Params(const std::vector<std::pair<std::string, std::string>>& pairs) {
  for (const auto& [k, v] : pairs) values_[k] = v;
}

std::optional<std::string> Params::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

bool Params::List(const std::string& name, std::vector<std::string>* out, Error* err) const {
  out->clear();
  std::map<long, std::string> by_index;
  std::string prefix = name + ".";
  for (auto it = values_.lower_bound(prefix); it != values_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it) {
    std::string rest = it->first.substr(prefix.size());
    long idx = ParseIndex(rest);
    if (idx == 0) {
      *err = InvalidParameterValue("parameter " + it->first + ": " + name + " members are numbered " + name +
                                   ".1, " + name + ".2, ...");
      return false;
    }
    by_index[idx] = it->second;
  }
  for (auto& [i, v] : by_index) out->push_back(v);
  return true;
}

bool Params::Filters(std::vector<Filter>* out, Error* err) const {
  out->clear();
  std::map<long, Filter> by_index;
  std::map<long, bool> named;
  const std::string prefix = "Filter.";
  for (auto it = values_.lower_bound(prefix); it != values_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it) {
    std::string rest = it->first.substr(prefix.size());
    auto dot = rest.find('.');
    long idx = ParseIndex(rest.substr(0, dot));
    std::string field = dot == std::string::npos ? "" : rest.substr(dot + 1);
    if (idx == 0 || field.empty()) {
      *err = InvalidParameterValue("parameter " + it->first + ": filters are Filter.N.Name and Filter.N.Value.M");
      return false;
    }
    if (field == "Name") {
      by_index[idx].name = it->second;
      named[idx] = true;
    } else if (field.compare(0, 6, "Value.") == 0 && ParseIndex(field.substr(6)) > 0) {
      by_index[idx].values.push_back(it->second);
    } else {
      *err = InvalidParameterValue("parameter " + it->first + ": filters are Filter.N.Name and Filter.N.Value.M");
      return false;
    }
  }
  for (auto& [i, f] : by_index) {
    if (!named[i] || f.name.empty()) {
      *err = {"MissingParameter", "The request must contain the parameter Filter." + std::to_string(i) + ".Name", 400};
      return false;
    }
    out->push_back(std::move(f));
  }
  return true;
}

bool Params::Bool(const std::string& name, bool dflt, bool* out, Error* err) const {
  auto v = Get(name);
  if (!v) {
    *out = dflt;
    return true;
  }
  std::string s = *v;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true") {
    *out = true;
  } else if (s == "false") {
    *out = false;
  } else {
    *err = InvalidParameterValue("Value (" + *v + ") for parameter " + name + " is invalid. Expected: true or false");
    return false;
  }
  return true;
}

bool Params::Int(const std::string& name, long long dflt, long long lo, long long hi, long long* out,
                 Error* err) const {
  auto v = Get(name);
  if (!v) {
    *out = dflt;
    return true;
  }
  const std::string& s = *v;
  bool ok = !s.empty() && s.size() <= 18 &&
            std::all_of(s.begin() + (s[0] == '-' ? 1 : 0), s.end(), [](unsigned char c) { return std::isdigit(c); }) &&
            !(s[0] == '-' && s.size() == 1);
  long long n = ok ? std::strtoll(s.c_str(), nullptr, 10) : 0;
  if (!ok || n < lo || n > hi) {
    *err = InvalidParameterValue("Value (" + s + ") for parameter " + name + " is invalid. Expected an integer from " +
                                 std::to_string(lo) + " to " + std::to_string(hi));
    return false;
  }
  *out = n;
  return true;
}

}  // namespace stratus::ec2
