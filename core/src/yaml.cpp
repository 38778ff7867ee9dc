// YAML/JSON text <-> json values.
//
// JSON goes through nlohmann's (iterative) parser after a linear bracket-depth pre-scan. YAML goes through
// yaml-cpp's event parser: a small EventHandler builds the json value directly, applying YAML 1.2 core-schema typing to
// plain scalars and enforcing the nesting limit as containers open. Because yaml-cpp emits the start event of a
// container before it recurses into the container's children, throwing from the handler bounds yaml-cpp's
// own recursion to `max_depth` as well; yaml-cpp 0.7 additionally carries an internal DepthGuard, so even a
// caller-supplied huge `max_depth` cannot overflow the stack.
#include "stratus/core/yaml.h"

#include <yaml-cpp/depthguard.h>  // yaml-cpp >= 0.7: the parser bounds its own recursion
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>

namespace stratus {
namespace {

// Upper bound on the number of json nodes that anchors and aliases may copy in one document (defends against
// "billion laughs" documents where each alias multiplies the size, and against stacks of nested anchors).
constexpr size_t kMaxCopiedNodes = 1000000;

// ---------------------------------------------------------------------------------------------------------
// YAML 1.2 core schema resolution of plain scalars.
// ---------------------------------------------------------------------------------------------------------

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is malformed (overlong forms,
// surrogates and code points above U+10FFFF included). nlohmann refuses to serialize such strings, so they must
// not get into a json value.
size_t Utf8SeqLen(const std::string& s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool IsValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = Utf8SeqLen(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// `s` with every byte that is not part of well-formed UTF-8 replaced by a \xNN escape, so that error messages
// quoting user input can always be serialized as JSON.
std::string SanitizeUtf8(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len = Utf8SeqLen(s, i);
    if (len == 0) {
      unsigned char c = static_cast<unsigned char>(s[i++]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out.append(s, i, len);
      i += len;
    }
  }
  return out;
}

bool IsNullWord(const std::string& s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

std::optional<bool> BoolWord(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// [-+]?[0-9]+
bool IsDecimalInt(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
  }
  return true;
}

// [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool IsCoreFloat(const std::string& s) {
  size_t i = 0, n = s.size();
  if (i < n && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < n && IsDigit(s[i])) ++i, ++int_digits;
  if (i < n && s[i] == '.') {
    ++i;
    while (i < n && IsDigit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < n && IsDigit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == n;
}

bool IsNonFiniteWord(const std::string& s) {
  std::string t = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? s.substr(1) : s;
  if (t == ".inf" || t == ".Inf" || t == ".INF") return true;
  return s == ".nan" || s == ".NaN" || s == ".NAN";
}

// Parses the unsigned digits of `s` in `base`; false on overflow.
bool ParseUnsigned(const char* first, const char* last, int base, uint64_t* out) {
  auto r = std::from_chars(first, last, *out, base);
  return r.ec == std::errc() && r.ptr == last;
}

// Result of resolving a scalar: either a json value or an error message (non-finite / out-of-range numbers,
// which JSON cannot represent).
struct Resolved {
  json value;
  std::string error;
};

Resolved ParseFloatText(const std::string& s) {
  // from_chars does not accept a leading '+'.
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);
  double d = 0;
  auto r = std::from_chars(first, s.data() + s.size(), d);
  if (r.ec != std::errc() || !std::isfinite(d)) return {json(), "number out of range: " + s};
  return {json(d), ""};
}

// Integers follow nlohmann's conventions so YAML and JSON yield identical values: non-negative integers are
// unsigned, negative ones signed, and decimal integers that overflow 64 bits become doubles.
Resolved ParseIntText(const std::string& s) {
  bool negative = s[0] == '-';
  const char* first = s.data() + ((s[0] == '-' || s[0] == '+') ? 1 : 0);
  const char* last = s.data() + s.size();
  uint64_t u = 0;
  if (!ParseUnsigned(first, last, 10, &u)) return ParseFloatText(s);
  if (!negative) return {json(u), ""};
  constexpr uint64_t kMinMagnitude = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1;
  if (u > kMinMagnitude) return ParseFloatText(s);
  if (u == kMinMagnitude) return {json(std::numeric_limits<int64_t>::min()), ""};
  return {json(-static_cast<int64_t>(u)), ""};
}

// Resolves a plain (untagged, unquoted) scalar per the YAML 1.2 core schema. Returns nullopt for strings.
std::optional<Resolved> ResolvePlain(const std::string& s) {
  if (IsNullWord(s)) return Resolved{json(nullptr), ""};
  if (auto b = BoolWord(s)) return Resolved{json(*b), ""};
  if (s.empty()) return std::nullopt;
  if (IsDecimalInt(s)) return ParseIntText(s);
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    int base = s[1] == 'o' ? 8 : 16;
    bool digits_ok =
        std::all_of(s.begin() + 2, s.end(), [&](char c) { return base == 8 ? (c >= '0' && c <= '7') : IsHexDigit(c); });
    if (digits_ok) {
      uint64_t u = 0;
      if (ParseUnsigned(s.data() + 2, s.data() + s.size(), base, &u)) return Resolved{json(u), ""};
      return Resolved{json(), "number out of range: " + s};
    }
  }
  if (IsCoreFloat(s)) return ParseFloatText(s);
  if (IsNonFiniteWord(s)) return Resolved{json(), "non-finite number " + s + " cannot be represented in JSON"};
  return std::nullopt;
}

// Resolves a scalar given its yaml-cpp tag: "?" for plain scalars, "!" for quoted/block scalars, or an
// explicit (already expanded) tag such as tag:yaml.org,2002:int.
Resolved ResolveScalar(const std::string& tag, const std::string& value) {
  static const std::string kCore = "tag:yaml.org,2002:";
  if (tag == "?") {
    if (auto r = ResolvePlain(value)) return *r;
    return {json(value), ""};
  }
  if (tag.compare(0, kCore.size(), kCore) == 0) {
    std::string t = tag.substr(kCore.size());
    auto r = ResolvePlain(value);
    auto type_ok = [&](bool ok) -> Resolved {
      if (r && !r->error.empty()) return *r;
      if (!r || !ok) return {json(), "cannot interpret \"" + value + "\" as !!" + t};
      return *r;
    };
    if (t == "null") return type_ok(r && r->value.is_null());
    if (t == "bool") return type_ok(r && r->value.is_boolean());
    if (t == "int") return type_ok(r && r->value.is_number_integer());
    if (t == "float") {
      Resolved res = type_ok(r && r->value.is_number());
      if (res.error.empty()) res.value = json(res.value.get<double>());
      return res;
    }
  }
  // Quoted scalars, !!str and unknown tags: the text as is.
  return {json(value), ""};
}

// ---------------------------------------------------------------------------------------------------------
// Error helpers.
// ---------------------------------------------------------------------------------------------------------

// A problem found while converting events to json; carries the yaml-cpp mark.
struct ConvertError {
  YAML::Mark mark;
  std::string message;
};

std::string DepthMessage(int max_depth) { return "nesting depth exceeds the maximum of " + std::to_string(max_depth); }

Status YamlError(const YAML::Mark& mark, int document, const std::string& what) {
  std::string msg = "invalid YAML";
  if (!mark.is_null()) {
    msg += " at line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
  }
  if (document > 1) msg += " (document " + std::to_string(document) + ")";
  return BadRequest(SanitizeUtf8(msg + ": " + what));
}

// ---------------------------------------------------------------------------------------------------------
// Event handler building json values.
// ---------------------------------------------------------------------------------------------------------

class JsonBuilder : public YAML::EventHandler {
 public:
  explicit JsonBuilder(int max_depth) : max_depth_(max_depth) {}

  // The completed document root (valid after OnDocumentEnd).
  json TakeRoot() { return std::move(root_); }

  // Where the last document started (yaml-cpp reports the first token's mark).
  const YAML::Mark& document_start() const { return document_start_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    document_start_ = mark;
    stack_.clear();
    anchors_.clear();
    copied_nodes_ = 0;
    root_ = json();
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Add(mark, json(nullptr), 0, 1, "null", anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw ConvertError{mark, "alias refers to a node that encloses it (recursive alias)"};
    const Anchored& a = it->second;
    if (static_cast<int>(stack_.size()) + a.height > max_depth_) throw ConvertError{mark, DepthMessage(max_depth_)};
    CountCopies(mark, a.nodes);
    Add(mark, a.value, a.height, a.nodes, a.key_text, 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (!IsValidUtf8(value)) throw ConvertError{mark, "invalid UTF-8 in scalar"};
    Resolved r = ResolveScalar(tag, value);
    if (!r.error.empty()) throw ConvertError{mark, r.error};
    Add(mark, std::move(r.value), 0, 1, value, anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, json::array(), anchor);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, json::object(), anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  YAML::Mark document_start_ = YAML::Mark::null_mark();
  // An open container.
  struct Frame {
    json value;
    YAML::Mark mark;
    YAML::anchor_t anchor = 0;
    int child_height = 0;   // tallest child container height
    size_t nodes = 1;       // json nodes in this subtree so far
    bool have_key = false;  // maps: a key was read and awaits its value
    std::string key;
  };
  // A completed anchored node, kept for alias expansion.
  struct Anchored {
    json value;
    int height = 0;
    size_t nodes = 1;
    std::optional<std::string> key_text;  // set for scalars, so aliases can serve as map keys
  };

  void CountCopies(const YAML::Mark& mark, size_t nodes) {
    copied_nodes_ += nodes;
    if (copied_nodes_ > kMaxCopiedNodes) {
      throw ConvertError{mark, "anchors and aliases expand to more than " + std::to_string(kMaxCopiedNodes) + " nodes"};
    }
  }

  void Open(const YAML::Mark& mark, json value, YAML::anchor_t anchor) {
    if (static_cast<int>(stack_.size()) + 1 > max_depth_) throw ConvertError{mark, DepthMessage(max_depth_)};
    Frame f;
    f.value = std::move(value);
    f.mark = mark;
    f.anchor = anchor;
    stack_.push_back(std::move(f));
  }

  void Close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    Add(f.mark, std::move(f.value), f.child_height + 1, f.nodes, std::nullopt, f.anchor);
  }

  // Places a finished node into its parent (or makes it the root). `key_text` is the node's text when it is a
  // scalar, used when the node is a mapping key. A container used as a key is reported only once it is complete,
  // so that yaml-cpp's own (clearer) errors for truncated flow collections win.
  void Add(const YAML::Mark& mark, json value, int height, size_t nodes, std::optional<std::string> key_text,
           YAML::anchor_t anchor) {
    if (anchor != 0) {
      CountCopies(mark, nodes);
      anchors_[anchor] = Anchored{value, height, nodes, key_text};
    }
    if (stack_.empty()) {
      root_ = std::move(value);
      return;
    }
    Frame& parent = stack_.back();
    if (parent.value.is_object() && !parent.have_key) {
      if (!key_text) throw ConvertError{mark, "mapping keys must be scalars (complex keys are not supported)"};
      if (parent.value.contains(*key_text)) throw ConvertError{mark, "duplicate mapping key \"" + *key_text + "\""};
      parent.key = std::move(*key_text);
      parent.have_key = true;
      return;
    }
    parent.child_height = std::max(parent.child_height, height);
    parent.nodes += nodes;
    if (parent.value.is_object()) {
      parent.value.emplace(std::move(parent.key), std::move(value));
      parent.key.clear();
      parent.have_key = false;
    } else {
      parent.value.push_back(std::move(value));
    }
  }

  int max_depth_;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  size_t copied_nodes_ = 0;
  json root_;
};

// ---------------------------------------------------------------------------------------------------------
// JSON helpers.
// ---------------------------------------------------------------------------------------------------------

// 1-based line and column of byte offset `pos` in `text`.
std::pair<size_t, size_t> LineColumn(const std::string& text, size_t pos) {
  pos = std::min(pos, text.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') ++line, line_start = i + 1;
  }
  return {line, pos - line_start + 1};
}

// Offset of the bracket that takes JSON nesting past `max_depth`, or npos. Brackets inside strings are skipped;
// for well-formed JSON this is exactly the parser's notion of depth (`{}` and `[]` each add one level).
//
// Why a pre-scan rather than nlohmann's parser callback (whose `depth` argument would give the same answer):
// in nlohmann 3.11.2 the callback parser rescans the parent container every time a child object ends, which is
// quadratic (a 10 MB array of objects takes over a minute). The plain parser is iterative and linear, so a
// linear pre-scan plus the plain parser keeps both the stack and the CPU bounded.
size_t FindTooDeepOffset(const std::string& text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return i;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return std::string::npos;
}

Status JsonError(const std::string& text, size_t offset, const std::string& what) {
  auto [line, column] = LineColumn(text, offset);
  return BadRequest(SanitizeUtf8("invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) +
                                 ": " + what));
}

// Parses JSON; `too_deep` is set when the failure is the nesting limit (so callers do not retry as YAML).
// yaml-cpp reads and writes the noncharacters U+FFFE and U+FFFF as U+FFFD (YAML's printable set excludes them),
// so a value holding one would change on its way out as YAML. Parsed values (keys and strings, at any depth; the
// parsers already bound the depth) are rejected instead.
bool HasFffxNoncharacter(const std::string& s) {
  return s.find("\xEF\xBF\xBE") != std::string::npos || s.find("\xEF\xBF\xBF") != std::string::npos;
}

Status CheckNoNoncharacters(const json& v, const std::string& path) {
  if (v.is_string() && HasFffxNoncharacter(v.get_ref<const std::string&>())) {
    return BadRequest("the string at " + (path.empty() ? std::string("the top level") : path) +
                      " contains U+FFFE or U+FFFF, Unicode noncharacters the API does not accept");
  }
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string at = path.empty() ? it.key() : path + "." + it.key();
      if (HasFffxNoncharacter(it.key())) {
        return BadRequest("a key in " + (path.empty() ? std::string("the top level") : SanitizeUtf8(path)) +
                          " contains U+FFFE or U+FFFF, Unicode noncharacters the API does not accept");
      }
      Status st = CheckNoNoncharacters(it.value(), at);
      if (!st.ok()) return st;
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      Status st = CheckNoNoncharacters(v[i], path + "[" + std::to_string(i) + "]");
      if (!st.ok()) return st;
    }
  }
  return Status();
}

StatusOr<json> ParseJsonImpl(const std::string& text, int max_depth, bool* too_deep) {
  *too_deep = false;
  size_t deep_at = FindTooDeepOffset(text, max_depth);
  if (deep_at != std::string::npos) {
    *too_deep = true;
    return JsonError(text, deep_at, DepthMessage(max_depth));
  }
  try {
    json j = json::parse(text);
    Status st = CheckNoNoncharacters(j, "");
    if (!st.ok()) return st;
    return j;
  } catch (const json::parse_error& e) {
    // e.what(): "[json.exception.parse_error.101] parse error at line 1, column 5: <detail>".
    std::string what = e.what();
    size_t p = what.find("parse error");
    p = p == std::string::npos ? std::string::npos : what.find(": ", p);
    std::string detail = p == std::string::npos ? what : what.substr(p + 2);
    return JsonError(text, e.byte > 0 ? e.byte - 1 : 0, detail);
  } catch (const json::exception& e) {
    // e.g. out_of_range.406 for numbers such as 1e999.
    std::string what = e.what();
    size_t p = what.find("] ");
    return BadRequest(SanitizeUtf8("invalid JSON: " + (p == std::string::npos ? what : what.substr(p + 2))));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Emitting.
// ---------------------------------------------------------------------------------------------------------

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// True when a plain rendering of `s` could be read back as something other than this string, by our
// parser (core schema) or by YAML 1.1 readers (yes/no/on/off, 1_000, 12:30, ...).
bool LooksLikeNonString(const std::string& s) {
  if (s.empty() || ResolvePlain(s)) return true;
  if (StartsWith(s, "---") || StartsWith(s, "...")) return true;  // document markers at column 0
  static const char* const kYaml11Words[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no", "No",
                                             "NO", "on", "On",  "ON",  "off", "Off", "OFF", "<<", "="};
  for (const char* w : kYaml11Words) {
    if (s == w) return true;
  }
  // Number-like text: digits with separators, timestamps, sexagesimals, version strings, .5e3 ...
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i < s.size() && s[i] == '.') ++i;
  return i < s.size() && IsDigit(s[i]);
}

// True when every character of `s` is printable in a YAML literal block: valid UTF-8, no control characters
// other than tab and newline, no carriage return, and none of the Unicode line separators or BOM.
bool IsLiteralSafeText(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = Utf8SeqLen(s, i);
    if (len == 0) return false;
    if (len == 1 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)) return false;
    // C1 controls (incl. NEL U+0085), LINE/PARAGRAPH SEPARATOR, BOM.
    if (len == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) return false;
    if (len == 3 && (s.compare(i, 3, "\xE2\x80\xA8") == 0 || s.compare(i, 3, "\xE2\x80\xA9") == 0 ||
                     s.compare(i, 3, "\xEF\xBB\xBF") == 0)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Literal blocks are used for multi-line text that yaml-cpp can render faithfully: its emitter always uses
// "clip" chomping and no indentation indicator, so the text must end with exactly one newline and must not
// start with whitespace or an empty line.
bool UseLiteral(const std::string& s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n') return false;
  if (s[0] == ' ' || s[0] == '\t' || s[0] == '\n') return false;
  return IsLiteralSafeText(s);
}

void EmitString(YAML::Emitter& out, const std::string& s, bool is_key) {
  if (!is_key && s.find('\n') != std::string::npos && UseLiteral(s)) {
    out << YAML::Literal << s;
  } else if (s.empty() || LooksLikeNonString(s) || !IsLiteralSafeText(s)) {
    out << YAML::DoubleQuoted << s;
  } else {
    out << s;  // yaml-cpp picks plain style when safe, double quotes otherwise
  }
}

void EmitValue(YAML::Emitter& out, const json& v) {
  switch (v.type()) {
    case json::value_t::object:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      out << YAML::BeginMap;
      for (auto it = v.begin(); it != v.end(); ++it) {
        // Very long implicit keys are not valid YAML; use the explicit "? key" form.
        if (it.key().size() > 1000) out << YAML::LongKey;
        out << YAML::Key;
        EmitString(out, it.key(), true);
        out << YAML::Value;
        EmitValue(out, it.value());
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      out << YAML::BeginSeq;
      for (const json& item : v) EmitValue(out, item);
      out << YAML::EndSeq;
      break;
    case json::value_t::string:
      EmitString(out, v.get_ref<const std::string&>(), false);
      break;
    case json::value_t::boolean:
      out << v.get<bool>();
      break;
    case json::value_t::number_integer:
      out << v.get<int64_t>();
      break;
    case json::value_t::number_unsigned:
      out << v.get<uint64_t>();
      break;
    case json::value_t::number_float: {
      double d = v.get<double>();
      // nlohmann prints the shortest text that reads back to the same double (and always with '.' or 'e',
      // so it resolves as a float again).
      if (std::isnan(d)) {
        out << ".nan";
      } else if (std::isinf(d)) {
        out << (d > 0 ? ".inf" : "-.inf");
      } else {
        out << v.dump();
      }
      break;
    }
    default:  // null, discarded, binary
      out << YAML::Null;
      break;
  }
}

}  // namespace

StatusOr<json> ParseJson(const std::string& text, int max_depth) {
  bool too_deep = false;
  return ParseJsonImpl(text, max_depth, &too_deep);
}

// The first byte of `text` that is a NUL or not part of well-formed UTF-8, with a description; npos when none.
// yaml-cpp guesses UTF-16/32 from NUL bytes and decodes such text as another encoding, so non-UTF-8 input would
// otherwise turn into different (and not round-trippable) strings instead of an error.
std::pair<size_t, const char*> FirstNonUtf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '\0') return {i, "NUL byte (YAML text must be UTF-8)"};
    size_t len = Utf8SeqLen(text, i);
    if (len == 0) return {i, "invalid UTF-8 (YAML text must be UTF-8)"};
    i += len;
  }
  return {std::string::npos, nullptr};
}

StatusOr<std::vector<json>> ParseYamlDocuments(const std::string& text, int max_depth) {
  if (auto [at, what] = FirstNonUtf8(text); what) {
    size_t line_start = text.rfind('\n', at == 0 ? 0 : at - 1);
    line_start = (line_start == std::string::npos || at == 0) ? 0 : line_start + 1;
    size_t line = 1 + std::count(text.begin(), text.begin() + at, '\n');
    return BadRequest("invalid YAML at line " + std::to_string(line) + ", column " +
                      std::to_string(at - line_start + 1) + ": " + what);
  }
  std::vector<json> docs;
  std::istringstream in(text);
  JsonBuilder builder(max_depth);
  int document = 0;
  try {
    YAML::Parser parser(in);
    std::optional<int> last_start;
    while (true) {
      ++document;
      if (!parser.HandleNextDocument(builder)) break;
      // yaml-cpp (0.7) neither consumes nor rejects a token that cannot start a node (a stray ',' or ']' at the
      // top level): it reports a null document at the same place forever. A document that starts where the
      // previous one did made no progress; reject the token instead of looping.
      const YAML::Mark& at = builder.document_start();
      if (last_start && at.pos == *last_start) {
        std::string what = "unexpected token";
        if (at.pos >= 0 && static_cast<size_t>(at.pos) < text.size() && text[at.pos] > ' ' && text[at.pos] < 0x7f) {
          what += std::string(" '") + text[at.pos] + "'";
        }
        return YamlError(at, document - 1, what + " where a value should start");
      }
      last_start = at.pos;
      json doc = builder.TakeRoot();
      if (!doc.is_null()) docs.push_back(std::move(doc));
    }
  } catch (const ConvertError& e) {
    return YamlError(e.mark, document, e.message);
  } catch (const YAML::DeepRecursion& e) {
    return YamlError(e.mark, document,
                     "nesting depth exceeds what the YAML parser supports (" + std::to_string(e.depth()) + " levels)");
  } catch (const YAML::Exception& e) {
    return YamlError(e.mark, document, e.msg);
  }
  for (const json& doc : docs) {
    Status st = CheckNoNoncharacters(doc, "");
    if (!st.ok()) return st;
  }
  return docs;
}

StatusOr<json> ParseJsonOrYaml(const std::string& text, int max_depth) {
  size_t start = StartsWith(text, "\xEF\xBB\xBF") ? 3 : 0;
  start = text.find_first_not_of(" \t\r\n", start);
  if (start == std::string::npos) return BadRequest("empty body: expected a JSON or YAML document");

  std::optional<Status> json_error;
  if (text[start] == '{' || text[start] == '[') {
    bool too_deep = false;
    StatusOr<json> j = ParseJsonImpl(text, max_depth, &too_deep);
    if (j.ok() || too_deep) return j;
    json_error = j.status();  // maybe YAML flow syntax such as {a: 1}; try YAML below
  }
  StatusOr<std::vector<json>> docs = ParseYamlDocuments(text, max_depth);
  if (!docs.ok()) return json_error ? *json_error : docs.status();
  if (docs->empty()) return BadRequest("empty body: expected a JSON or YAML document");
  if (docs->size() > 1) {
    return BadRequest("expected a single YAML document, found " + std::to_string(docs->size()));
  }
  return std::move(docs->front());
}

std::string ToYaml(const json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetNullFormat(YAML::LowerNull);
  out.SetBoolFormat(YAML::TrueFalseBool);
  out.SetBoolFormat(YAML::LowerCase);
  EmitValue(out, value);
  std::string s = out.c_str();
  if (s.empty() || s.back() != '\n') s += '\n';
  return s;
}

}  // namespace stratus
