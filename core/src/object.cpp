#include "stratus/core/object.h"

#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

namespace stratus {

static bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

Status ValidateDns1123Label(const std::string& name, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return InvalidError(field + ": " + why, {{field, why, "FieldValueInvalid"}});
  };
  if (name.empty()) return InvalidError(field + ": Required value", {{field, "Required value", "FieldValueRequired"}});
  if (name.size() > 63) return bad("must be no more than 63 characters (got " + std::to_string(name.size()) + ")");
  for (char c : name) {
    if (!IsAlnumLower(c) && c != '-') {
      return bad("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                 "start and end with an alphanumeric character (e.g. 'my-name')");
    }
  }
  if (!IsAlnumLower(name.front()) || !IsAlnumLower(name.back())) {
    return bad("a lowercase RFC 1123 label must start and end with an alphanumeric character");
  }
  return Status::Ok();
}

Status ValidateDns1123Subdomain(const std::string& name, const std::string& field) {
  if (name.empty()) return InvalidError(field + ": Required value", {{field, "Required value", "FieldValueRequired"}});
  if (name.size() > 253) {
    std::string why = "must be no more than 253 characters";
    return InvalidError(field + ": " + why, {{field, why}});
  }
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string label = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Status s = ValidateDns1123Label(label, field);
    if (!s.ok()) {
      std::string why = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                        "'.', and must start and end with an alphanumeric character (e.g. 'm1.small')";
      return InvalidError(field + ": " + why, {{field, why}});
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return Status::Ok();
}

std::string NowRfc3339() { return FormatRfc3339(static_cast<int64_t>(std::time(nullptr))); }

std::string FormatRfc3339(int64_t seconds) {
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t ParseRfc3339(const std::string& ts) {
  std::tm tm{};
  int y, mo, d, h, mi, s;
  if (std::sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm));
}

std::string NewUuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    for (auto& x : b) x = static_cast<unsigned char>(rng());
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char out[37];
  std::snprintf(out, sizeof(out), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

std::string HumanAge(int64_t s) {
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 3600 * 2) return std::to_string(s / 60) + "m";
  if (s < 86400 * 2) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string MetaString(const json& obj, const char* field) {
  if (!obj.is_object()) return "";
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  if (f == m->end() || !f->is_string()) return "";
  return f->get<std::string>();
}

uint64_t ResourceVersionOf(const json& obj) {
  std::string rv = MetaString(obj, "resourceVersion");
  if (rv.empty()) return 0;
  try {
    size_t pos = 0;
    unsigned long long v = std::stoull(rv, &pos);
    return pos == rv.size() ? v : 0;
  } catch (...) {
    return 0;
  }
}

ObjectKey KeyOf(const std::string& plural, const json& obj) {
  return {plural, MetaString(obj, "namespace"), MetaString(obj, "name")};
}

bool RebuildReplaces(const json& inst, const json& root_volume) {
  if (!inst.is_object() || !inst.contains("spec") || !inst["spec"].is_object()) return false;
  if (!root_volume.is_object() || !root_volume.contains("spec") || !root_volume["spec"].is_object()) return false;
  const json& spec = inst["spec"];
  const json& src = root_volume["spec"].contains("source") ? root_volume["spec"]["source"] : json();
  std::string from = src.is_object() ? src.value("image", "") : "";
  return spec.value("rebuildPolicy", "") == "Recreate" && !from.empty() && spec.value("image", "") != from;
}

}  // namespace stratus
