// Kubernetes label and field selectors, and label map validation.
#include "stratus/core/selector.h"

#include <cctype>

namespace stratus {
namespace {

constexpr size_t kMaxLabelNameLength = 63;
constexpr size_t kMaxLabelValueLength = 63;
constexpr size_t kMaxPrefixLength = 253;

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// `s` with non-printable and non-ASCII bytes shown as \xNN: selectors are ASCII by grammar, and error messages
// quoting them must stay valid UTF-8 so the Status can be serialized as JSON.
std::string Printable(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

// Compact JSON text of a non-string value; never throws (invalid UTF-8 is replaced).
std::string DumpNoThrow(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the shape shared by label names and non-empty label values.
bool IsQualifiedToken(const std::string& s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// DNS-1123 subdomain: lowercase labels of [a-z0-9-] (alphanumeric at both ends) joined by '.'.
bool IsDnsSubdomain(const std::string& s) {
  if (s.empty() || s.size() > kMaxPrefixLength) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    size_t end = dot == std::string::npos ? s.size() : dot;
    if (end == start || end - start > 63) return false;
    if (!IsLowerAlnum(s[start]) || !IsLowerAlnum(s[end - 1])) return false;
    for (size_t i = start; i < end; ++i) {
      if (!IsLowerAlnum(s[i]) && s[i] != '-') return false;
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

// Returns "" when `key` is a valid label key, otherwise why it is not.
std::string LabelKeyError(const std::string& key) {
  std::string name = key;
  size_t slash = key.find('/');
  if (slash != std::string::npos) {
    std::string prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) return "prefix part must be non-empty";
    if (prefix.size() > kMaxPrefixLength) {
      return "prefix part must be no more than " + std::to_string(kMaxPrefixLength) + " characters";
    }
    if (!IsDnsSubdomain(prefix)) {
      return "prefix part must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', "
             "starting and ending with an alphanumeric character (e.g. 'example.com')";
    }
  }
  if (name.empty()) return "name part must be non-empty";
  if (name.size() > kMaxLabelNameLength) {
    return "name part must be no more than " + std::to_string(kMaxLabelNameLength) + " characters";
  }
  if (!IsQualifiedToken(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
           "alphanumeric character (e.g. 'MyName', 'my.name', or '123-abc')";
  }
  return "";
}

// Returns "" when `value` is a valid label value (possibly empty), otherwise why it is not.
std::string LabelValueError(const std::string& value) {
  if (value.empty()) return "";
  if (value.size() > kMaxLabelValueLength) {
    return "must be no more than " + std::to_string(kMaxLabelValueLength) + " characters";
  }
  if (!IsQualifiedToken(value)) {
    return "a valid label value must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
           "and must start and end with an alphanumeric character (e.g. 'MyValue', 'my_value', or '12345')";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// Label selector lexer: identifiers are maximal runs of characters other than whitespace and ",()=!".
// ---------------------------------------------------------------------------------------------------------

enum class Tok { kEnd, kIdent, kComma, kOpen, kClose, kEq, kDoubleEq, kNotEq, kBang };

struct Token {
  Tok type;
  std::string text;
};

std::string Describe(const Token& t) { return t.type == Tok::kEnd ? "end of string" : "'" + t.text + "'"; }

class Lexer {
 public:
  explicit Lexer(const std::string& s) : s_(s) {}

  Token Next() {
    while (pos_ < s_.size() && IsSpace(s_[pos_])) ++pos_;
    if (pos_ >= s_.size()) return {Tok::kEnd, ""};
    char c = s_[pos_];
    auto two = [&](const char* t) { return s_.compare(pos_, 2, t) == 0; };
    if (c == ',') return Single(Tok::kComma);
    if (c == '(') return Single(Tok::kOpen);
    if (c == ')') return Single(Tok::kClose);
    if (two("==")) return Double(Tok::kDoubleEq);
    if (two("!=")) return Double(Tok::kNotEq);
    if (c == '=') return Single(Tok::kEq);
    if (c == '!') return Single(Tok::kBang);
    size_t start = pos_;
    while (pos_ < s_.size() && !IsSpace(s_[pos_]) && std::string(",()=!").find(s_[pos_]) == std::string::npos) {
      ++pos_;
    }
    return {Tok::kIdent, s_.substr(start, pos_ - start)};
  }

  Token Peek() {
    size_t saved = pos_;
    Token t = Next();
    pos_ = saved;
    return t;
  }

 private:
  Token Single(Tok t) { return {t, std::string(1, s_[pos_++])}; }
  Token Double(Tok t) {
    pos_ += 2;
    return {t, s_.substr(pos_ - 2, 2)};
  }

  const std::string& s_;
  size_t pos_ = 0;
};

// Thrown inside the parser; turned into a Status naming the whole selector.
struct SelectorError {
  std::string why;
};

std::string ParseKey(const Token& t) {
  if (t.type != Tok::kIdent) throw SelectorError{"expected a label key, found " + Describe(t)};
  std::string err = LabelKeyError(t.text);
  if (!err.empty()) throw SelectorError{"invalid label key \"" + t.text + "\": " + err};
  return t.text;
}

std::string ParseValue(const Token& t, const std::string& after) {
  if (t.type != Tok::kIdent) throw SelectorError{"expected a value after " + after + ", found " + Describe(t)};
  std::string err = LabelValueError(t.text);
  if (!err.empty()) throw SelectorError{"invalid label value \"" + t.text + "\": " + err};
  return t.text;
}

LabelSelector::Requirement ParseRequirement(Lexer& lex) {
  LabelSelector::Requirement req;
  Token t = lex.Next();
  if (t.type == Tok::kBang) {
    req.key = ParseKey(lex.Next());
    req.op = LabelSelector::Op::kDoesNotExist;
    return req;
  }
  req.key = ParseKey(t);
  Token op = lex.Peek();
  if (op.type == Tok::kEnd || op.type == Tok::kComma) {
    req.op = LabelSelector::Op::kExists;
    return req;
  }
  lex.Next();
  if (op.type == Tok::kEq || op.type == Tok::kDoubleEq || op.type == Tok::kNotEq) {
    req.op = op.type == Tok::kNotEq ? LabelSelector::Op::kNotEquals : LabelSelector::Op::kEquals;
    req.values.insert(ParseValue(lex.Next(), "'" + op.text + "'"));
    return req;
  }
  if (op.type == Tok::kIdent && (op.text == "in" || op.text == "notin")) {
    req.op = op.text == "in" ? LabelSelector::Op::kIn : LabelSelector::Op::kNotIn;
    if (lex.Next().type != Tok::kOpen) throw SelectorError{"expected '(' after '" + op.text + "'"};
    if (lex.Peek().type == Tok::kClose) throw SelectorError{"values set for '" + op.text + "' must not be empty"};
    while (true) {
      req.values.insert(ParseValue(lex.Next(), "'(' or ','"));
      Token sep = lex.Next();
      if (sep.type == Tok::kClose) break;
      if (sep.type != Tok::kComma) throw SelectorError{"expected ',' or ')' in value list, found " + Describe(sep)};
    }
    return req;
  }
  throw SelectorError{"expected an operator ('=', '==', '!=', 'in', 'notin') or ',' after key '" + req.key +
                      "', found " + Describe(op)};
}

// A string field value from `obj` at dotted `path`; "" when absent.
std::string FieldValue(const json& obj, const std::string& path) {
  const json* cur = &obj;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) return "";
    auto it = cur->find(part);
    if (it == cur->end()) return "";
    cur = &*it;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null()) return "";
  return DumpNoThrow(*cur);
}

bool IsSupportedField(const std::string& f) {
  static const char* const kFields[] = {"metadata.name",       "metadata.namespace",       "involvedObject.kind",
                                        "involvedObject.name", "involvedObject.namespace", "involvedObject.uid",
                                        "spec.nodeName"};
  for (const char* k : kFields) {
    if (f == k) return true;
  }
  return false;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && IsSpace(s[b])) ++b;
  while (e > b && IsSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace

StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  Lexer lex(text);
  try {
    if (lex.Peek().type == Tok::kEnd) return sel;  // empty (or blank) selector: matches everything
    while (true) {
      sel.reqs_.push_back(ParseRequirement(lex));
      Token t = lex.Next();
      if (t.type == Tok::kEnd) break;
      if (t.type != Tok::kComma) throw SelectorError{"expected ',' or end of string, found " + Describe(t)};
    }
  } catch (const SelectorError& e) {
    return BadRequest(Printable("invalid label selector \"" + text + "\": " + e.why));
  }
  return sel;
}

bool LabelSelector::Matches(const json& labels) const {
  for (const Requirement& r : reqs_) {
    const std::string* value = nullptr;
    std::string scratch;
    if (labels.is_object()) {
      auto it = labels.find(r.key);
      if (it != labels.end()) {
        if (it->is_string()) {
          value = &it->get_ref<const std::string&>();
        } else {
          scratch = DumpNoThrow(*it);
          value = &scratch;
        }
      }
    }
    bool ok = false;
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        ok = value && r.values.count(*value) > 0;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        ok = !value || r.values.count(*value) == 0;
        break;
      case Op::kExists:
        ok = value != nullptr;
        break;
      case Op::kDoesNotExist:
        ok = value == nullptr;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

StatusOr<FieldSelector> FieldSelector::Parse(const std::string& text) {
  FieldSelector sel;
  if (Trim(text).empty()) return sel;
  auto bad = [&](const std::string& why) {
    return BadRequest(Printable("invalid field selector \"" + text + "\": " + why));
  };

  // Split on unescaped commas; a backslash escapes the next character (\, \= \! \\) inside values.
  std::vector<std::string> parts;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      cur += text.substr(i, 2);
      ++i;
    } else if (text[i] == ',') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += text[i];
    }
  }
  parts.push_back(cur);

  for (const std::string& part : parts) {
    // The first unescaped operator splits field from value.
    size_t op = std::string::npos, op_len = 0;
    bool negate = false;
    for (size_t i = 0; i < part.size(); ++i) {
      if (part[i] == '\\') {
        ++i;
      } else if (part.compare(i, 2, "!=") == 0) {
        op = i, op_len = 2, negate = true;
      } else if (part.compare(i, 2, "==") == 0) {
        op = i, op_len = 2;
      } else if (part[i] == '=') {
        op = i, op_len = 1;
      }
      if (op != std::string::npos) break;
    }
    if (op == std::string::npos) {
      if (Trim(part).empty()) return bad("empty requirement");
      return bad("expected '=', '==' or '!=' in \"" + Trim(part) + "\"");
    }
    std::string field = Trim(part.substr(0, op));
    std::string raw = Trim(part.substr(op + op_len));
    if (field.empty()) return bad("missing field name before '" + part.substr(op, op_len) + "'");
    if (!IsSupportedField(field)) return BadRequest(Printable("field label not supported: " + field));
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) {
        value += raw[++i];
      } else if (raw[i] == '=' || raw[i] == '!') {
        return bad("unescaped '" + std::string(1, raw[i]) + "' in value of " + field);
      } else {
        value += raw[i];
      }
    }
    sel.reqs_.push_back({field, negate, value});
  }
  return sel;
}

bool FieldSelector::Matches(const json& obj) const {
  for (const Requirement& r : reqs_) {
    if ((FieldValue(obj, r.field) == r.value) == r.negate) return false;
  }
  return true;
}

std::string FieldSelector::ExactName() const {
  std::string name;
  for (const Requirement& r : reqs_) {
    if (r.field != "metadata.name" || r.negate) continue;
    if (!name.empty() && name != r.value) return "";  // contradictory: let the caller filter (matches nothing)
    name = r.value;
  }
  return name;
}

Status ValidateLabels(const json& labels, const std::string& field_prefix) {
  if (labels.is_null()) return Status::Ok();
  if (!labels.is_object()) {
    return InvalidError(field_prefix + ": Invalid value: must be a map of string keys to string values",
                        {{field_prefix, "must be a map of string keys to string values"}});
  }
  std::vector<FieldCause> causes;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    std::string field = Printable(field_prefix + "." + it.key());
    std::string err = LabelKeyError(it.key());
    if (!err.empty()) {
      causes.push_back({field, "Invalid value: \"" + Printable(it.key()) + "\": " + err});
      continue;
    }
    if (!it->is_string()) {
      causes.push_back(
          {field, "Invalid value: " + Printable(DumpNoThrow(*it)) + ": must be a string", "FieldValueTypeInvalid"});
      continue;
    }
    const std::string& value = it->get_ref<const std::string&>();
    err = LabelValueError(value);
    if (!err.empty()) causes.push_back({field, "Invalid value: \"" + Printable(value) + "\": " + err});
  }
  if (causes.empty()) return Status::Ok();
  std::string message;
  for (const FieldCause& c : causes) {
    if (!message.empty()) message += "; ";
    message += c.field + ": " + c.message;
  }
  return InvalidError(message, std::move(causes));
}

}  // namespace stratus
