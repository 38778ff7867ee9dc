#include "stratus/apiserver/query.h"

#include <cpprest/uri.h>

#include "stratus/core/selector.h"

namespace stratus {
namespace {

// Printable form of user input for an error message (control bytes escaped, long values cut).
std::string Quote(const std::string& v) {
  std::string out = "\"";
  for (unsigned char c : v.substr(0, 64)) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (v.size() > 64) out += "...";
  return out + "\"";
}

// A decimal integer in [min, max] with nothing else around it.
StatusOr<int64_t> Integer(const std::string& name, const std::string& v, int64_t min, int64_t max,
                          const std::string& what) {
  bool digits = !v.empty() && v.size() <= 19;
  for (size_t i = 0; i < v.size() && digits; ++i) digits = (v[i] >= '0' && v[i] <= '9') || (i == 0 && v[i] == '-' && v.size() > 1);
  if (!digits) return BadRequest(name + ": must be " + what + " (got " + Quote(v) + ")");
  int64_t n = 0;
  try {
    n = std::stoll(v);
  } catch (...) {
    return BadRequest(name + ": must be " + what + " (got " + Quote(v) + ")");
  }
  if (n < min || n > max) return BadRequest(name + ": must be " + what + " (got " + Quote(v) + ")");
  return n;
}

}  // namespace

StatusOr<std::map<std::string, std::string>> DecodeQuery(const std::string& raw) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : web::uri::split_query(raw)) {
    std::string key;
    try {
      key = web::uri::decode(k);
    } catch (const std::exception&) {
      return BadRequest("query parameter " + Quote(k) + ": invalid percent-encoding in its name");
    }
    try {
      out[key] = web::uri::decode(v);
    } catch (const std::exception&) {
      return BadRequest("query parameter " + key + ": invalid percent-encoding in " + Quote(v));
    }
  }
  return out;
}

StatusOr<ListParams> ParseListParams(const std::map<std::string, std::string>& query) {
  ListParams p;
  auto get = [&](const char* name) -> const std::string* {
    auto it = query.find(name);
    return it == query.end() ? nullptr : &it->second;
  };
  if (const std::string* w = get("watch")) {
    if (*w == "1" || *w == "true") {
      p.watch = true;
    } else if (!(*w == "0" || *w == "false" || w->empty())) {
      return BadRequest("watch: must be true, false, 1 or 0 (got " + Quote(*w) + ")");
    }
  }
  if (const std::string* v = get("labelSelector")) {
    auto s = LabelSelector::Parse(*v);
    if (!s.ok()) return BadRequest("labelSelector: " + s.status().message());
    p.label_selector = *v;
  }
  if (const std::string* v = get("fieldSelector")) {
    auto s = FieldSelector::Parse(*v);
    if (!s.ok()) return BadRequest("fieldSelector: " + s.status().message());
    p.field_selector = *v;
  }
  if (const std::string* v = get("limit"); v && !v->empty()) {
    auto n = Integer("limit", *v, 0, INT64_MAX, "a non-negative integer");
    if (!n.ok()) return n.status();
    p.limit = *n;
  }
  if (const std::string* v = get("continue"); v && !v->empty()) {
    bool ok = v->size() <= 4096;
    for (char c : *v) {
      ok &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
            c == '=' || c == '-' || c == '_';
    }
    if (!ok) return BadRequest("continue: not a token this server issued (got " + Quote(*v) + ")");
    p.continue_token = *v;
  }
  if (const std::string* v = get("resourceVersion"); v && !v->empty()) {
    auto n = Integer("resourceVersion", *v, 0, INT64_MAX, "a non-negative integer");
    if (!n.ok()) return n.status();
    p.has_resource_version = true;
    p.resource_version = static_cast<uint64_t>(*n);
  }
  if (const std::string* v = get("timeoutSeconds"); v && !v->empty()) {
    auto n = Integer("timeoutSeconds", *v, 0, 1000000000, "a non-negative integer of seconds");
    if (!n.ok()) return n.status();
    p.timeout_seconds = static_cast<int>(*n);
  }
  return p;
}

}  // namespace stratus
