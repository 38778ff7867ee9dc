// SchemaRegistry: loads the YAML schemas (a structural subset of OpenAPI v3, see schema.h), compiles them into
// an immutable tree with precompiled patterns, and walks objects against it to validate, default and explain.
#include "stratus/core/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "stratus/core/ipv4.h"
#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/core/resources.h"

namespace stratus {

// Generated from schemas/*.yaml by schemas/embed.cmake (library stratus_schemas).
const std::map<std::string, std::string>& EmbeddedSchemas();

namespace {

// Patterns are applied only to strings up to this many bytes: std::regex backtracks recursively and must not be
// handed hostile megabyte strings.
constexpr size_t kMaxPatternInput = 4096;
// At most this many causes are reported for one object.
constexpr size_t kMaxCauses = 100;
constexpr int kMaxSchemaDepth = 64;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// YAML (schema files) -> json, with YAML 1.2 core-schema scalars; quoted scalars stay strings.

bool IsPlainInt(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

bool IsPlainFloat(const std::string& s) {
  static const std::regex kFloat(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
  return s.size() < 64 && std::regex_match(s, kFloat);
}

StatusOr<json> YamlToJson(const YAML::Node& n, int depth) {
  if (depth > kMaxSchemaDepth) return BadRequest("nesting too deep");
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() != "?") return json(s);  // quoted or explicitly tagged: a string
      if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return json(nullptr);
      if (s == "true" || s == "True" || s == "TRUE") return json(true);
      if (s == "false" || s == "False" || s == "FALSE") return json(false);
      if (IsPlainInt(s)) {
        try {
          return json(static_cast<int64_t>(std::stoll(s)));
        } catch (...) {
          return json(s);
        }
      }
      if (IsPlainFloat(s)) {
        try {
          return json(std::stod(s));
        } catch (...) {
          return json(s);
        }
      }
      return json(s);
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : n) {
        auto v = YamlToJson(item, depth + 1);
        if (!v.ok()) return v;
        a.push_back(std::move(*v));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) return BadRequest("mapping keys must be scalars");
        auto v = YamlToJson(kv.second, depth + 1);
        if (!v.ok()) return v;
        o[kv.first.Scalar()] = std::move(*v);
      }
      return o;
    }
  }
  return json(nullptr);
}

// ---------------------------------------------------------------------------------------------------------
// Formats.

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }


// A Kubernetes "name" part of a qualified name or a label value: alphanumeric at both ends, '-', '_' and '.' inside.
bool IsQualifiedNamePart(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  if (!IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool IsRfc3339(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto num = [&](size_t pos, size_t len, int* out) {
    if (pos + len > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (!IsDigit(s[i])) return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, &y) || s.size() < 20 || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' || !num(8, 2, &d) ||
      (s[10] != 'T' && s[10] != 't') || !num(11, 2, &h) || s[13] != ':' || !num(14, 2, &mi) || s[16] != ':' ||
      !num(17, 2, &sec)) {
    return false;
  }
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1) return false;
  int dim = kDays[mo - 1] + (mo == 2 && IsLeap(y) ? 1 : 0);
  if (d > dim || h > 23 || mi > 59 || sec > 60) return false;
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start || i - start > 9) return false;
  }
  if (i >= s.size()) return false;
  if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == s.size()) return true;
  if (s[i] != '+' && s[i] != '-') return false;
  int oh, om;
  return i + 6 == s.size() && num(i + 1, 2, &oh) && s[i + 3] == ':' && num(i + 4, 2, &om) && oh <= 23 && om <= 59;
}

const std::set<std::string>& KnownFormats() {
  static const std::set<std::string> k = {"dns1123-label", "dns1123-subdomain", "ipv4",         "cidr", "quantity",
                                          "date-time",     "mac",               "qualified-name", "label-value"};
  return k;
}

// Returns "" when `v` satisfies `format`, else why not.
std::string CheckFormat(const std::string& format, const std::string& v) {
  if (format == "dns1123-label" || format == "dns1123-subdomain") {
    Status s = format == "dns1123-label" ? ValidateDns1123Label(v, "x") : ValidateDns1123Subdomain(v, "x");
    if (s.ok()) return "";
    return s.causes().empty() ? s.message() : s.causes()[0].message;
  }
  if (format == "ipv4") {
    return ParseIpv4(v).ok() ? "" : "must be a valid IPv4 address (e.g. 10.44.0.12)";
  }
  if (format == "cidr") {
    const char* kWhy = "must be an IPv4 network in CIDR notation (e.g. 10.44.0.0/24)";
    size_t slash = v.find('/');
    if (slash == std::string::npos) return kWhy;
    auto a = ParseIpv4(v.substr(0, slash));
    if (!a.ok()) return kWhy;
    std::string p = v.substr(slash + 1);
    if (p.empty() || p.size() > 2 || !IsDigit(p[0]) || (p.size() == 2 && (!IsDigit(p[1]) || p[0] == '0'))) {
      return kWhy;
    }
    Ipv4Net n;
    n.prefix = std::stoi(p);
    if (n.prefix > 32) return "prefix length must be between 0 and 32";
    n.base = *a & n.mask();
    if (n.base != *a) return "must be a network address with the host bits zero (did you mean " + n.ToString() + "?)";
    return "";
  }
  if (format == "quantity") {
    auto q = ParseQuantityBytes(v);
    if (q.ok()) return "";
    const std::string& m = q.status().message();
    auto colon = m.find("\": ");
    return "must be a quantity: " + (colon == std::string::npos ? m : m.substr(colon + 3));
  }
  if (format == "date-time") {
    return IsRfc3339(v) ? "" : "must be an RFC 3339 date-time (e.g. 2026-01-02T15:04:05Z)";
  }
  if (format == "mac") {
    const char* kWhy = "must be a MAC address such as 52:54:00:12:34:56";
    if (v.size() != 17) return kWhy;
    for (size_t i = 0; i < 17; ++i) {
      if (i % 3 == 2 ? v[i] != ':' : !IsHex(v[i])) return kWhy;
    }
    int first = std::stoi(v.substr(0, 2), nullptr, 16);
    if (first & 1) return "must be a unicast MAC address (the lowest bit of the first octet must be 0)";
    return "";
  }
  if (format == "qualified-name") {
    const char* kWhy =
        "must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63 alphanumerics, '-', '_' "
        "or '.', starting and ending with an alphanumeric (e.g. 'stratus.io/zone' or 'app')";
    size_t slash = v.find('/');
    std::string name = v;
    if (slash != std::string::npos) {
      std::string prefix = v.substr(0, slash);
      name = v.substr(slash + 1);
      if (prefix.empty() || !ValidateDns1123Subdomain(prefix, "x").ok()) return kWhy;
    }
    return IsQualifiedNamePart(name) ? "" : kWhy;
  }
  if (format == "label-value") {
    if (v.empty() || IsQualifiedNamePart(v)) return "";
    return "must be at most 63 characters: alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// Compiled schema.

struct Node;
using NodePtr = std::shared_ptr<const Node>;

enum class Additional { kForbidden, kAny, kSchema };

enum class Type { kObject, kArray, kString, kInteger, kNumber, kBoolean };

struct Node {
  std::string type;  // object, array, string, integer, number, boolean (as written; `t` is the same, for speed)
  Type t = Type::kObject;
  std::string description;
  std::vector<std::pair<std::string, NodePtr>> properties;  // sorted by name
  bool has_properties = false;
  std::vector<std::string> required;
  Additional additional = Additional::kForbidden;
  NodePtr additional_schema;
  NodePtr property_names;
  NodePtr items;
  std::vector<json> enum_values;
  std::optional<json> minimum, maximum;
  std::optional<int64_t> min_length, max_length, min_items, max_items, max_bytes;
  std::string pattern;
  std::shared_ptr<const std::regex> regex;
  std::string format;
  std::optional<json> default_value;
  bool preserve_unknown = false;
  bool unique_items = false;
  std::vector<std::string> unique_keys;
  std::vector<std::vector<std::string>> exactly_one_of, at_most_one_of;
  std::string name_format;  // top level of a kind: dns1123-label (default) or dns1123-subdomain

  const Node* Property(const std::string& name) const {
    auto it = std::lower_bound(properties.begin(), properties.end(), name,
                               [](const std::pair<std::string, NodePtr>& p, const std::string& n) { return p.first < n; });
    return it != properties.end() && it->first == name ? it->second.get() : nullptr;
  }
  bool IsRequired(const std::string& name) const {
    return std::find(required.begin(), required.end(), name) != required.end();
  }
};

long double ToLd(const json& v) {
  if (v.is_number_unsigned()) return static_cast<long double>(v.get<uint64_t>());
  if (v.is_number_integer()) return static_cast<long double>(v.get<int64_t>());
  return static_cast<long double>(v.get<double>());
}

bool MatchesType(Type type, const json& v) {
  switch (type) {
    case Type::kObject: return v.is_object();
    case Type::kArray: return v.is_array();
    case Type::kString: return v.is_string();
    case Type::kBoolean: return v.is_boolean();
    case Type::kNumber: return v.is_number();
    case Type::kInteger:
      if (v.is_number_integer()) return true;
      if (v.is_number_float()) {
        double d = v.get<double>();
        return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18;
      }
      return false;
  }
  return false;
}

std::string Dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// How a value appears in an error message: strings quoted (and shortened), composites by their type.
std::string RenderValue(const json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.size() > 80) return Dump(json(s.substr(0, 80))) + "...";
    return Dump(v);
  }
  if (v.is_object()) return "object";
  if (v.is_array()) return "array";
  return Dump(v);
}

std::string ShortKey(const std::string& k) { return k.size() > 64 ? k.substr(0, 64) + "..." : k; }

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep, const std::string& quote = "") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + quote + v[i] + quote;
  return out;
}

std::string ChildPath(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

// ---------------------------------------------------------------------------------------------------------
// Loading: raw json per file, $ref resolution, compilation, self-checks.

class Loader {
 public:
  std::map<std::string, json> raw;

  StatusOr<NodePtr> Compile(const std::string& file, const json& j, const std::string& where, int depth);

 private:
  std::map<std::string, NodePtr> ref_cache_;
  std::vector<std::string> ref_stack_;

  Status Err(const std::string& where, const std::string& what) {
    return BadRequest("schema " + where + ": " + what);
  }
  StatusOr<NodePtr> Resolve(const std::string& file, const std::string& ref, const std::string& where, int depth);
};

StatusOr<NodePtr> Loader::Resolve(const std::string& file, const std::string& ref, const std::string& where,
                                  int depth) {
  std::string target_file = file, pointer;
  size_t hash = ref.find('#');
  if (hash == std::string::npos) {
    target_file = ref;
  } else {
    if (hash > 0) target_file = ref.substr(0, hash);
    pointer = ref.substr(hash + 1);
  }
  std::string key = target_file + "#" + pointer;
  if (auto it = ref_cache_.find(key); it != ref_cache_.end()) return it->second;
  if (std::find(ref_stack_.begin(), ref_stack_.end(), key) != ref_stack_.end()) {
    return Err(where, "$ref cycle through \"" + ref + "\"");
  }
  auto f = raw.find(target_file);
  if (f == raw.end()) return Err(where, "$ref to unknown schema file \"" + target_file + "\"");
  const json* target = &f->second;
  if (!pointer.empty()) {
    try {
      json::json_pointer ptr(pointer);
      if (!f->second.contains(ptr)) return Err(where, "$ref \"" + ref + "\" does not resolve");
      target = &f->second.at(ptr);
    } catch (const std::exception& e) {
      return Err(where, "bad $ref \"" + ref + "\": " + e.what());
    }
  }
  ref_stack_.push_back(key);
  auto node = Compile(target_file, *target, target_file + (pointer.empty() ? "" : "#" + pointer), depth + 1);
  ref_stack_.pop_back();
  if (node.ok()) ref_cache_[key] = *node;
  return node;
}

StatusOr<NodePtr> Loader::Compile(const std::string& file, const json& j, const std::string& where, int depth) {
  if (depth > kMaxSchemaDepth) return Err(where, "schema nesting too deep");
  if (!j.is_object()) return Err(where, "a schema must be a mapping");

  if (j.contains("$ref")) {
    if (!j["$ref"].is_string()) return Err(where, "$ref must be a string");
    for (const auto& [k, v] : j.items()) {
      if (k != "$ref" && k != "description") return Err(where, "only description may accompany $ref (got " + k + ")");
    }
    auto target = Resolve(file, j["$ref"].get<std::string>(), where, depth);
    if (!target.ok() || !j.contains("description")) return target;
    if (!j["description"].is_string()) return Err(where, "description must be a string");
    auto copy = std::make_shared<Node>(**target);
    copy->description = j["description"].get<std::string>();
    return NodePtr(copy);
  }

  static const std::set<std::string> kKeywords = {
      "type",      "description", "properties", "required", "additionalProperties", "items",
      "enum",      "minimum",     "maximum",    "minLength", "maxLength",           "minItems",
      "maxItems",  "pattern",     "format",     "default",  "definitions",          "propertyNames",
      "uniqueItems", "x-stratus-preserve-unknown-fields", "x-stratus-unique-keys", "x-stratus-exactly-one-of",
      "x-stratus-at-most-one-of", "x-stratus-name-format", "x-stratus-max-bytes"};
  for (const auto& [k, v] : j.items()) {
    if (!kKeywords.count(k)) return Err(where, "unknown keyword \"" + k + "\"");
  }

  auto n = std::make_shared<Node>();
  auto str = [&](const char* k, std::string* out) -> Status {
    if (!j.contains(k)) return Status::Ok();
    if (!j[k].is_string()) return Err(where, std::string(k) + " must be a string");
    *out = j[k].get<std::string>();
    return Status::Ok();
  };
  auto count = [&](const char* k, std::optional<int64_t>* out) -> Status {
    if (!j.contains(k)) return Status::Ok();
    if (!j[k].is_number_integer() || j[k].get<int64_t>() < 0) return Err(where, std::string(k) + " must be >= 0");
    *out = j[k].get<int64_t>();
    return Status::Ok();
  };
  auto flag = [&](const char* k, bool* out) -> Status {
    if (!j.contains(k)) return Status::Ok();
    if (!j[k].is_boolean()) return Err(where, std::string(k) + " must be a boolean");
    *out = j[k].get<bool>();
    return Status::Ok();
  };
  auto names = [&](const json& v, const char* k, std::vector<std::string>* out) -> Status {
    if (!v.is_array()) return Err(where, std::string(k) + " must be a list of names");
    for (const auto& s : v) {
      if (!s.is_string()) return Err(where, std::string(k) + " must be a list of names");
      out->push_back(s.get<std::string>());
    }
    return Status::Ok();
  };

  Status s;
  if (!(s = str("type", &n->type)).ok()) return s;
  if (!(s = str("description", &n->description)).ok()) return s;
  if (!(s = str("pattern", &n->pattern)).ok()) return s;
  if (!(s = str("format", &n->format)).ok()) return s;
  if (!(s = str("x-stratus-name-format", &n->name_format)).ok()) return s;
  if (!(s = count("minLength", &n->min_length)).ok()) return s;
  if (!(s = count("maxLength", &n->max_length)).ok()) return s;
  if (!(s = count("minItems", &n->min_items)).ok()) return s;
  if (!(s = count("maxItems", &n->max_items)).ok()) return s;
  if (!(s = count("x-stratus-max-bytes", &n->max_bytes)).ok()) return s;
  if (!(s = flag("x-stratus-preserve-unknown-fields", &n->preserve_unknown)).ok()) return s;
  if (!(s = flag("uniqueItems", &n->unique_items)).ok()) return s;

  static const std::map<std::string, Type> kTypes = {{"object", Type::kObject},   {"array", Type::kArray},
                                                     {"string", Type::kString},   {"integer", Type::kInteger},
                                                     {"number", Type::kNumber},   {"boolean", Type::kBoolean}};
  if (n->type.empty()) return Err(where, "type is required");
  auto type_it = kTypes.find(n->type);
  if (type_it == kTypes.end()) return Err(where, "unknown type \"" + n->type + "\"");
  n->t = type_it->second;
  if (n->description.empty()) return Err(where, "description is required (stratusctl explain shows it)");
  if (!n->format.empty() && !KnownFormats().count(n->format)) return Err(where, "unknown format \"" + n->format + "\"");
  if (!n->name_format.empty() && n->name_format != "dns1123-label" && n->name_format != "dns1123-subdomain") {
    return Err(where, "x-stratus-name-format must be dns1123-label or dns1123-subdomain");
  }
  if (!n->pattern.empty()) {
    try {
      n->regex = std::make_shared<const std::regex>(n->pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return Err(where, "bad pattern \"" + n->pattern + "\": " + e.what());
    }
  }
  for (const char* k : {"minimum", "maximum"}) {
    if (!j.contains(k)) continue;
    if (!j[k].is_number()) return Err(where, std::string(k) + " must be a number");
    (std::string(k) == "minimum" ? n->minimum : n->maximum) = j[k];
  }

  if (j.contains("properties")) {
    if (!j["properties"].is_object()) return Err(where, "properties must be a mapping");
    n->has_properties = true;
    for (const auto& [name, sub] : j["properties"].items()) {
      auto child = Compile(file, sub, where + ".properties." + name, depth + 1);
      if (!child.ok()) return child;
      n->properties.emplace_back(name, *child);
    }
    std::sort(n->properties.begin(), n->properties.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  if (j.contains("required")) {
    if (!(s = names(j["required"], "required", &n->required)).ok()) return s;
    for (const auto& r : n->required) {
      if (!n->Property(r)) return Err(where, "required field \"" + r + "\" is not among the properties");
    }
  }
  if (j.contains("additionalProperties")) {
    const json& a = j["additionalProperties"];
    if (a.is_boolean()) {
      n->additional = a.get<bool>() ? Additional::kAny : Additional::kForbidden;
    } else {
      auto child = Compile(file, a, where + ".additionalProperties", depth + 1);
      if (!child.ok()) return child;
      n->additional = Additional::kSchema;
      n->additional_schema = *child;
    }
  }
  if (j.contains("propertyNames")) {
    auto child = Compile(file, j["propertyNames"], where + ".propertyNames", depth + 1);
    if (!child.ok()) return child;
    if ((*child)->type != "string") return Err(where, "propertyNames must be of type string");
    n->property_names = *child;
  }
  if (j.contains("items")) {
    auto child = Compile(file, j["items"], where + ".items", depth + 1);
    if (!child.ok()) return child;
    n->items = *child;
  }
  if (j.contains("x-stratus-unique-keys")) {
    if (!(s = names(j["x-stratus-unique-keys"], "x-stratus-unique-keys", &n->unique_keys)).ok()) return s;
  }
  for (const char* k : {"x-stratus-exactly-one-of", "x-stratus-at-most-one-of"}) {
    if (!j.contains(k)) continue;
    auto* groups = std::string(k) == "x-stratus-exactly-one-of" ? &n->exactly_one_of : &n->at_most_one_of;
    if (!j[k].is_array()) return Err(where, std::string(k) + " must be a list of lists of names");
    for (const auto& g : j[k]) {
      std::vector<std::string> group;
      if (!(s = names(g, k, &group)).ok()) return s;
      if (group.size() < 2) return Err(where, std::string(k) + " groups need at least two names");
      for (const auto& name : group) {
        if (!n->Property(name)) return Err(where, std::string(k) + " names unknown field \"" + name + "\"");
      }
      groups->push_back(std::move(group));
    }
  }

  // Shape checks: a keyword must suit the type it is declared on.
  if (n->type == "object") {
    if (!n->has_properties && n->additional == Additional::kForbidden && !n->preserve_unknown) {
      return Err(where, "an object needs properties, additionalProperties or x-stratus-preserve-unknown-fields");
    }
  } else if (n->has_properties || j.contains("additionalProperties") || n->property_names || n->max_bytes ||
             !n->required.empty() || !n->exactly_one_of.empty() || !n->at_most_one_of.empty()) {
    return Err(where, "object keywords on a schema of type " + n->type);
  }
  if (n->type == "array") {
    if (!n->items) return Err(where, "an array needs items");
    for (const auto& k : n->unique_keys) {
      if (n->items->type != "object" || !n->items->Property(k)) {
        return Err(where, "x-stratus-unique-keys names unknown item field \"" + k + "\"");
      }
    }
  } else if (n->items || n->min_items || n->max_items || n->unique_items || !n->unique_keys.empty()) {
    return Err(where, "array keywords on a schema of type " + n->type);
  }
  if (n->type != "string" && (n->min_length || n->max_length || !n->pattern.empty() || !n->format.empty())) {
    return Err(where, "string keywords on a schema of type " + n->type);
  }
  if (n->type != "integer" && n->type != "number" && (n->minimum || n->maximum)) {
    return Err(where, "numeric keywords on a schema of type " + n->type);
  }
  if (j.contains("enum")) {
    if (!j["enum"].is_array() || j["enum"].empty()) return Err(where, "enum must be a non-empty list");
    for (const auto& v : j["enum"]) {
      if (!MatchesType(n->t, v)) return Err(where, "enum value " + Dump(v) + " is not of type " + n->type);
      n->enum_values.push_back(v);
    }
  }
  if (j.contains("default")) n->default_value = j["default"];  // checked against the node once compiled
  return NodePtr(n);
}

// ---------------------------------------------------------------------------------------------------------
// Validation.

class Validator {
 public:
  explicit Validator(std::vector<FieldCause>* causes) : causes_(causes) {}

  void Add(const std::string& field, const std::string& message, const char* reason = "FieldValueInvalid") {
    if (causes_->size() < kMaxCauses) {
      causes_->push_back({field, message, reason});
    } else if (!truncated_) {
      truncated_ = true;
      causes_->push_back({"", "too many errors, only the first " + std::to_string(kMaxCauses) + " are reported",
                          "FieldValueInvalid"});
    }
  }
  bool Full() const { return truncated_; }

  void Check(const Node& s, const json& v, const std::string& path) {
    if (Full()) return;
    if (!MatchesType(s.t, v)) {
      std::string hint = s.format == "quantity" ? " (a quantity such as 10Gi)" : "";
      Add(path, "Invalid value: " + RenderValue(v) + ": must be of type " + s.type + hint);
      return;
    }
    if (!s.enum_values.empty() && std::find(s.enum_values.begin(), s.enum_values.end(), v) == s.enum_values.end()) {
      std::vector<std::string> allowed;
      for (const auto& e : s.enum_values) allowed.push_back(Dump(e));
      Add(path, "Unsupported value: " + RenderValue(v) + ": supported values: " + Join(allowed, ", "),
          "FieldValueNotSupported");
      return;
    }
    if (s.t == Type::kString) {
      CheckString(s, v.get_ref<const std::string&>(), v, path);
    } else if (s.t == Type::kInteger || s.t == Type::kNumber) {
      if (s.minimum && ToLd(v) < ToLd(*s.minimum)) Add(path, "Invalid value: " + Dump(v) + ": must be >= " + Dump(*s.minimum));
      if (s.maximum && ToLd(v) > ToLd(*s.maximum)) Add(path, "Invalid value: " + Dump(v) + ": must be <= " + Dump(*s.maximum));
    } else if (s.t == Type::kArray) {
      CheckArray(s, v, path);
    } else if (s.t == Type::kObject) {
      CheckObject(s, v, path);
    }
  }

 private:
  void CheckString(const Node& s, const std::string& str, const json& v, const std::string& path) {
    size_t len = (s.min_length || s.max_length) ? Utf8Length(str) : 0;
    if (s.max_length && len > static_cast<size_t>(*s.max_length)) {
      Add(path, "Invalid value: " + RenderValue(v) + ": must be no more than " + std::to_string(*s.max_length) +
                    " characters (got " + std::to_string(len) + ")");
      return;
    }
    if (s.min_length && len < static_cast<size_t>(*s.min_length)) {
      Add(path, "Invalid value: " + RenderValue(v) + ": must be at least " + std::to_string(*s.min_length) +
                    " characters");
      return;
    }
    // An empty string means "unset" (as in Kubernetes): required fields report it as missing, and patterns and
    // formats do not apply.
    if (str.empty()) return;
    if (s.regex) {
      if (str.size() > kMaxPatternInput) {
        Add(path, "Invalid value: " + RenderValue(v) + ": must be no more than " + std::to_string(kMaxPatternInput) +
                      " characters");
        return;
      }
      bool match = false;
      try {
        match = std::regex_search(str, *s.regex);
      } catch (const std::regex_error&) {
        match = false;  // complexity or stack limits: treat as no match
      }
      if (!match) {
        Add(path, "Invalid value: " + RenderValue(v) + ": must match the pattern '" + s.pattern + "'");
        return;
      }
    }
    if (!s.format.empty()) {
      std::string why = CheckFormat(s.format, str);
      if (!why.empty()) Add(path, "Invalid value: " + RenderValue(v) + ": " + why);
    }
  }

  void CheckArray(const Node& s, const json& v, const std::string& path) {
    if (s.max_items && v.size() > static_cast<size_t>(*s.max_items)) {
      Add(path, "Too many: " + std::to_string(v.size()) + ": must have at most " + std::to_string(*s.max_items) +
                    " items");
      return;
    }
    if (s.min_items && v.size() < static_cast<size_t>(*s.min_items)) {
      Add(path, "Invalid value: must have at least " + std::to_string(*s.min_items) + " items");
    }
    std::set<std::string> seen;
    std::vector<std::map<std::string, size_t>> seen_keys(s.unique_keys.size());
    for (size_t i = 0; i < v.size() && !Full(); ++i) {
      std::string item_path = path + "[" + std::to_string(i) + "]";
      Check(*s.items, v[i], item_path);
      if (s.unique_items && !seen.insert(Dump(v[i])).second) {
        Add(item_path, "Duplicate value: " + RenderValue(v[i]));
      }
      if (v[i].is_object()) {
        for (size_t k = 0; k < s.unique_keys.size(); ++k) {
          auto f = v[i].find(s.unique_keys[k]);
          if (f == v[i].end() || f->is_null()) continue;
          auto [it, inserted] = seen_keys[k].emplace(Dump(*f), i);
          if (!inserted) {
            Add(item_path + "." + s.unique_keys[k], "Duplicate value: " + RenderValue(*f) + ": already used by " +
                                                        path + "[" + std::to_string(it->second) + "]");
          }
        }
      }
    }
  }

  void CheckObject(const Node& s, const json& v, const std::string& path) {
    size_t bytes = 0;
    for (const auto& [key, val] : v.items()) {
      if (Full()) return;
      if (s.max_bytes) {
        bytes += key.size() + (val.is_string() ? val.get_ref<const std::string&>().size() : Dump(val).size());
      }
      if (const Node* p = s.Property(key)) {
        Check(*p, val, ChildPath(path, key));
        continue;
      }
      if (s.property_names) {
        // Keys of a map: report under the map's own path, naming the key.
        std::vector<FieldCause> key_causes;
        Validator kv(&key_causes);
        kv.Check(*s.property_names, json(key), path);
        for (auto& c : key_causes) Add(c.field, c.message, "FieldValueInvalid");
      }
      if (s.additional == Additional::kSchema) {
        Check(*s.additional_schema, val, path + "[" + ShortKey(key) + "]");
      } else if (s.additional == Additional::kForbidden && !s.preserve_unknown) {
        Add(ChildPath(path, ShortKey(key)), "Unsupported field \"" + ShortKey(key) + "\"", "FieldValueUnknown");
      }
    }
    if (s.max_bytes && bytes > static_cast<size_t>(*s.max_bytes)) {
      Add(path, "Too long: must have at most " + std::to_string(*s.max_bytes) + " bytes in total (got " +
                    std::to_string(bytes) + ")");
    }
    auto present = [&](const std::string& k) {
      auto f = v.find(k);
      return f != v.end() && !f->is_null() && !(f->is_string() && f->get_ref<const std::string&>().empty());
    };
    for (const auto& r : s.required) {
      if (!present(r)) Add(ChildPath(path, r), "Required value", "FieldValueRequired");
    }
    auto check_group = [&](const std::vector<std::string>& group, bool need_one) {
      std::vector<std::string> set;
      for (const auto& k : group) {
        if (present(k)) set.push_back(k);
      }
      if (set.empty() && need_one) {
        Add(path, "Required value: exactly one of " + Join(group, ", ", "\"") + " must be set", "FieldValueRequired");
      }
      for (size_t i = 1; i < set.size(); ++i) {
        Add(ChildPath(path, set[i]), "Forbidden: may not be set together with \"" + set[0] + "\"");
      }
    };
    for (const auto& g : s.exactly_one_of) check_group(g, true);
    for (const auto& g : s.at_most_one_of) check_group(g, false);
  }

  std::vector<FieldCause>* causes_;
  bool truncated_ = false;
};

// Name rules that depend on more than one field (name or generateName) and on the kind.
void CheckName(const Node& root, const json& obj, Validator* v) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return;
  const bool subdomain = root.name_format == "dns1123-subdomain";
  auto check = [&](const std::string& value, const std::string& field, const std::string& shown) {
    Status s = subdomain ? ValidateDns1123Subdomain(value, field) : ValidateDns1123Label(value, field);
    if (!s.ok()) {
      v->Add(field, "Invalid value: " + RenderValue(json(shown)) + ": " +
                        (s.causes().empty() ? s.message() : s.causes()[0].message));
    }
  };
  auto name = m->find("name");
  auto gen = m->find("generateName");
  std::string name_s = name != m->end() && name->is_string() ? name->get<std::string>() : "";
  std::string gen_s = gen != m->end() && gen->is_string() ? gen->get<std::string>() : "";
  if (name != m->end() && !name->is_null() && !name->is_string()) return;  // type error already reported
  if (!name_s.empty()) {
    check(name_s, "metadata.name", name_s);
  } else if (gen_s.empty()) {
    v->Add("metadata.name", "Required value: name or generateName is required", "FieldValueRequired");
  } else {
    // The server appends random alphanumerics; the prefix must make a valid name with them.
    check(gen_s + "x", "metadata.generateName", gen_s);
  }
}

void Defaults(const Node& s, json& v) {
  if (s.t == Type::kObject && v.is_object()) {
    for (const auto& [name, child] : s.properties) {
      auto it = v.find(name);
      if (it != v.end() && it->is_null()) {
        v.erase(it);  // null means absent (as Kubernetes prunes nulls before defaulting)
        it = v.end();
      }
      if (it == v.end()) {
        if (!child->default_value) continue;
        it = v.emplace(name, *child->default_value).first;
      }
      Defaults(*child, *it);
    }
    if (s.additional == Additional::kSchema) {
      for (auto& [key, val] : v.items()) {
        if (!s.Property(key)) Defaults(*s.additional_schema, val);
      }
    }
  } else if (s.t == Type::kArray && v.is_array()) {
    for (auto& item : v) Defaults(*s.items, item);
  }
}

// Removes the keys the schema does not know (fieldValidation=Warn|Ignore), recording their paths.
void DropUnknown(const Node& s, json& v, const std::string& path, std::vector<std::string>* dropped) {
  if (s.t == Type::kObject && v.is_object()) {
    for (auto it = v.begin(); it != v.end();) {
      const std::string key = it.key();
      if (const Node* p = s.Property(key)) {
        DropUnknown(*p, it.value(), ChildPath(path, key), dropped);
      } else if (s.additional == Additional::kSchema) {
        DropUnknown(*s.additional_schema, it.value(), path + "[" + key + "]", dropped);
      } else if (s.additional == Additional::kForbidden && !s.preserve_unknown) {
        dropped->push_back(ChildPath(path, key));
        it = v.erase(it);
        continue;
      }
      ++it;
    }
  } else if (s.t == Type::kArray && v.is_array() && s.items) {
    for (size_t i = 0; i < v.size(); ++i) DropUnknown(*s.items, v[i], path + "[" + std::to_string(i) + "]", dropped);
  }
}

// Checks every default declared in the tree against its own schema (a broken schema file fails to load).
Status CheckDefaults(const Node& n, const std::string& where, std::set<const Node*>* done) {
  if (!done->insert(&n).second) return Status::Ok();
  if (n.default_value) {
    json v = *n.default_value;
    Defaults(n, v);
    std::vector<FieldCause> causes;
    Validator(&causes).Check(n, v, "default");
    if (!causes.empty()) return BadRequest("schema " + where + ": " + causes[0].field + ": " + causes[0].message);
  }
  for (const auto& [name, child] : n.properties) {
    Status s = CheckDefaults(*child, where + "." + name, done);
    if (!s.ok()) return s;
  }
  for (const NodePtr& c : {n.items, n.additional_schema}) {
    if (!c) continue;
    Status s = CheckDefaults(*c, where + "[]", done);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------------------
// Explain and SchemaOf.

std::string TypeName(const Node& n) {
  if (n.type == "array") return "[]" + TypeName(*n.items);
  if (n.type == "object") {
    if (!n.has_properties && n.additional == Additional::kSchema) return "map[string]" + TypeName(*n.additional_schema);
    if (!n.has_properties && n.additional == Additional::kAny) return "map[string]any";
    return "Object";
  }
  return n.type;
}

// The documented rules of a field, each a short phrase ("default: Running").
std::vector<std::string> Constraints(const Node& n) {
  std::vector<std::string> out;
  if (!n.enum_values.empty()) {
    std::vector<std::string> e;
    for (const auto& v : n.enum_values) e.push_back(v.is_string() ? v.get<std::string>() : Dump(v));
    out.push_back("allowed values: " + Join(e, ", "));
  }
  if (n.default_value) {
    out.push_back("default: " + (n.default_value->is_string() ? n.default_value->get<std::string>()
                                                                 : Dump(*n.default_value)));
  }
  if (n.minimum && n.maximum) {
    out.push_back("range: " + Dump(*n.minimum) + " to " + Dump(*n.maximum));
  } else if (n.minimum) {
    out.push_back("minimum: " + Dump(*n.minimum));
  } else if (n.maximum) {
    out.push_back("maximum: " + Dump(*n.maximum));
  }
  if (n.min_length) out.push_back("min length: " + std::to_string(*n.min_length));
  if (n.max_length) out.push_back("max length: " + std::to_string(*n.max_length));
  if (n.max_items) out.push_back("max items: " + std::to_string(*n.max_items));
  if (!n.pattern.empty()) out.push_back("pattern: " + n.pattern);
  if (!n.format.empty()) out.push_back("format: " + n.format);
  for (const auto& g : n.exactly_one_of) out.push_back("exactly one of: " + Join(g, ", "));
  for (const auto& g : n.at_most_one_of) out.push_back("at most one of: " + Join(g, ", "));
  if (!n.unique_keys.empty()) out.push_back("unique: " + Join(n.unique_keys, ", "));
  return out;
}

// Word-wraps `text` at 80 columns with `indent` spaces before every line.
std::string Wrap(const std::string& text, size_t indent) {
  std::string out, line;
  std::istringstream words(text);
  std::string w;
  const std::string pad(indent, ' ');
  while (words >> w) {
    if (!line.empty() && indent + line.size() + 1 + w.size() > 80) {
      out += pad + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  if (!line.empty()) out += pad + line + "\n";
  return out;
}

// The node whose fields an explain listing shows: arrays show their items' fields, maps their values'.
const Node* FieldsOf(const Node* n) {
  while (n->type == "array") n = n->items.get();
  if (n->type == "object" && !n->has_properties && n->additional == Additional::kSchema) {
    return FieldsOf(n->additional_schema.get());
  }
  return n;
}

json ToSchemaJson(const Node& n) {
  json j = {{"type", n.type}, {"description", n.description}};
  if (n.has_properties) {
    j["properties"] = json::object();
    for (const auto& [name, child] : n.properties) j["properties"][name] = ToSchemaJson(*child);
  }
  if (!n.required.empty()) j["required"] = n.required;
  if (n.type == "object" && n.additional == Additional::kAny) j["additionalProperties"] = true;
  if (n.type == "object" && n.has_properties && n.additional == Additional::kForbidden && !n.preserve_unknown) {
    j["additionalProperties"] = false;
  }
  if (n.additional_schema) j["additionalProperties"] = ToSchemaJson(*n.additional_schema);
  if (n.property_names) j["propertyNames"] = ToSchemaJson(*n.property_names);
  if (n.items) j["items"] = ToSchemaJson(*n.items);
  if (!n.enum_values.empty()) j["enum"] = n.enum_values;
  if (n.minimum) j["minimum"] = *n.minimum;
  if (n.maximum) j["maximum"] = *n.maximum;
  if (n.min_length) j["minLength"] = *n.min_length;
  if (n.max_length) j["maxLength"] = *n.max_length;
  if (n.min_items) j["minItems"] = *n.min_items;
  if (n.max_items) j["maxItems"] = *n.max_items;
  if (!n.pattern.empty()) j["pattern"] = n.pattern;
  if (!n.format.empty()) j["format"] = n.format;
  if (n.default_value) j["default"] = *n.default_value;
  if (n.preserve_unknown) j["x-stratus-preserve-unknown-fields"] = true;
  if (n.unique_items) j["uniqueItems"] = true;
  if (!n.unique_keys.empty()) j["x-stratus-unique-keys"] = n.unique_keys;
  if (!n.exactly_one_of.empty()) j["x-stratus-exactly-one-of"] = n.exactly_one_of;
  if (!n.at_most_one_of.empty()) j["x-stratus-at-most-one-of"] = n.at_most_one_of;
  if (!n.name_format.empty()) j["x-stratus-name-format"] = n.name_format;
  if (n.max_bytes) j["x-stratus-max-bytes"] = *n.max_bytes;
  return j;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

struct SchemaRegistry::Impl {
  std::map<std::string, NodePtr> roots;  // file base name -> compiled top-level schema

  // The schema of a kind: `Instance` -> file `instance`.
  const Node* Find(const std::string& kind) const {
    auto it = roots.find(Lower(kind));
    return it == roots.end() ? nullptr : it->second.get();
  }
};

SchemaRegistry::SchemaRegistry() : impl_(std::make_unique<Impl>()) {}
SchemaRegistry::~SchemaRegistry() = default;

const SchemaRegistry& SchemaRegistry::Builtin() {
  static const std::shared_ptr<SchemaRegistry> registry = [] {
    std::vector<std::pair<std::string, std::string>> files(EmbeddedSchemas().begin(), EmbeddedSchemas().end());
    auto r = Load(files);
    if (!r.ok()) {
      std::fprintf(stderr, "stratus: built-in schemas do not load: %s\n", r.status().message().c_str());
      std::abort();
    }
    return *r;
  }();
  return *registry;
}

StatusOr<std::shared_ptr<SchemaRegistry>> SchemaRegistry::Load(
    const std::vector<std::pair<std::string, std::string>>& files) {
  Loader loader;
  for (const auto& [file_name, text] : files) {
    std::string name = file_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0) name.resize(name.size() - 5);
    json j;
    try {
      YAML::Node doc = YAML::Load(text);
      auto converted = YamlToJson(doc, 0);
      if (!converted.ok()) return BadRequest("schema " + name + ": " + converted.status().message());
      j = std::move(*converted);
    } catch (const YAML::Exception& e) {
      return BadRequest("schema " + name + ": " + e.what());
    }
    if (!j.is_object()) return BadRequest("schema " + name + ": the file must hold a mapping");
    loader.raw[name] = std::move(j);
  }
  auto reg = std::make_shared<SchemaRegistry>();
  for (const auto& [name, j] : loader.raw) {
    // Files holding only `definitions` (common.yaml) describe no object of their own.
    if (!j.contains("type")) {
      for (const auto& [k, v] : j.items()) {
        if (k != "definitions") return BadRequest("schema " + name + ": unknown top-level key \"" + k + "\"");
      }
      continue;
    }
    auto node = loader.Compile(name, j, name, 0);
    if (!node.ok()) return node.status();
    std::set<const Node*> done;
    Status s = CheckDefaults(**node, name, &done);
    if (!s.ok()) return s;
    reg->impl_->roots[name] = *node;
  }
  // Compile definitions too, so a broken definition that nothing references yet still fails the load.
  for (const auto& [name, j] : loader.raw) {
    if (!j.contains("definitions")) continue;
    if (!j["definitions"].is_object()) return BadRequest("schema " + name + ": definitions must be a mapping");
    for (const auto& [def, sub] : j["definitions"].items()) {
      auto node = loader.Compile(name, sub, name + "#/definitions/" + def, 0);
      if (!node.ok()) return node.status();
    }
  }
  return reg;
}

Status SchemaRegistry::Validate(const std::string& kind, const json& obj) const {
  const Node* root = impl_->Find(kind);
  if (!root) return BadRequest("no schema for kind \"" + kind + "\"");
  std::vector<FieldCause> causes;
  Validator v(&causes);
  if (!obj.is_object()) {
    v.Add("", "Invalid value: " + RenderValue(obj) + ": must be of type object");
  } else {
    if (root->Property("metadata")) CheckName(*root, obj, &v);
    v.Check(*root, obj, "");
  }
  if (causes.empty()) return Status::Ok();
  std::string name = MetaString(obj, "name");
  if (name.size() > 80) name = name.substr(0, 80) + "...";
  const ResourceInfo* info = FindByKind(kind);
  std::string msg = (info ? info->kind : kind) + "." + kGroup + " \"" + name + "\" is invalid: ";
  auto fmt = [](const FieldCause& c) { return c.field.empty() ? c.message : c.field + ": " + c.message; };
  // Several causes are joined with "; " (messages themselves contain commas).
  for (size_t i = 0; i < causes.size(); ++i) msg += (i ? "; " : "") + fmt(causes[i]);
  return InvalidError(msg, std::move(causes));
}

void SchemaRegistry::ApplyDefaults(const std::string& kind, json& obj) const {
  const Node* root = impl_->Find(kind);
  if (root) Defaults(*root, obj);
}

std::vector<std::string> SchemaRegistry::DropUnknownFields(const std::string& kind, json& obj) const {
  std::vector<std::string> dropped;
  const Node* root = impl_->Find(kind);
  if (root) DropUnknown(*root, obj, "", &dropped);
  return dropped;
}

StatusOr<std::string> SchemaRegistry::Explain(const std::string& kind_in, const std::string& field_path) const {
  const ResourceInfo* info = FindByKind(kind_in);
  if (!info) info = FindByAnyName(kind_in);
  std::string kind = info ? info->kind : kind_in;
  const Node* root = impl_->Find(kind);
  if (!root) return NotFound("the server doesn't have a resource type \"" + kind_in + "\"");

  // Split `spec.networks[0].ip` into segments, dropping indexes; a leading kind name is dropped too
  // (`instance.spec` as kubectl accepts it).
  std::vector<std::string> segs;
  std::string cur;
  int bracket = 0;
  for (char c : field_path) {
    if (c == '[') ++bracket;
    else if (c == ']') bracket = std::max(0, bracket - 1);
    else if (bracket) continue;
    else if (c == '.') {
      if (!cur.empty()) segs.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) segs.push_back(cur);
  if (!segs.empty() && !root->Property(segs[0])) {
    const ResourceInfo* first = FindByAnyName(segs[0]);
    if (first && first->kind == kind) segs.erase(segs.begin());
  }

  const Node* node = root;
  std::string path;
  bool required = false;
  for (const auto& seg : segs) {
    const Node* fields = FieldsOf(node);
    const Node* next = fields->Property(seg);
    path = ChildPath(path, seg);
    if (!next) return NotFound("field \"" + path + "\" does not exist");
    required = fields->IsRequired(seg);
    node = next;
  }

  std::string out = "KIND:       " + kind + "\nVERSION:    " + kApiVersion + "\n\n";
  if (!segs.empty()) {
    out += "FIELD: " + segs.back() + " <" + TypeName(*node) + ">" + (required ? " -required-" : "") + "\n\n";
  }
  out += "DESCRIPTION:\n" + Wrap(node->description, 4);
  for (const auto& c : Constraints(*node)) out += Wrap(c, 4);
  const Node* fields = FieldsOf(node);
  if (fields->has_properties && !fields->properties.empty()) {
    out += "\nFIELDS:\n";
    for (const auto& [name, child] : fields->properties) {
      out += "  " + name + "\t<" + TypeName(*child) + ">" + (fields->IsRequired(name) ? " -required-" : "") + "\n";
      std::string text = child->description;
      auto cons = Constraints(*child);
      if (!cons.empty()) text += " (" + Join(cons, "; ") + ")";
      out += Wrap(text, 4) + "\n";
    }
  }
  return out;
}

json SchemaRegistry::SchemaOf(const std::string& kind) const {
  const Node* root = impl_->Find(kind);
  return root ? ToSchemaJson(*root) : json(nullptr);
}

}  // namespace stratus
