#include "stratus/core/yaml.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace stratus {
namespace {

// Parses a YAML stream that must hold exactly one document.
json Y(const std::string& text) {
  auto docs = ParseYamlDocuments(text);
  EXPECT_TRUE(docs.ok()) << docs.status().message() << "\ninput:\n" << text;
  if (!docs.ok() || docs->size() != 1) {
    ADD_FAILURE() << "expected one document in:\n" << text;
    return json();
  }
  return docs->front();
}

std::string YErr(const std::string& text, int max_depth = kMaxNestingDepth) {
  auto docs = ParseYamlDocuments(text, max_depth);
  EXPECT_FALSE(docs.ok()) << "expected an error for:\n" << text;
  if (docs.ok()) return "";
  EXPECT_EQ(docs.status().code(), Code::kBadRequest);
  return docs.status().message();
}

std::string NestedFlowSeqs(int n) { return std::string(n, '[') + std::string(n, ']'); }
std::string NestedJsonObjects(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "{\"a\":";
  s += "1";
  for (int i = 0; i < n; ++i) s += "}";
  return s;
}
std::string NestedBlockMaps(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += std::string(i * 2, ' ') + "a:\n";
  s += std::string(n * 2, ' ') + "leaf\n";
  return s;
}
std::string NestedBlockSeqs(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "- ";
  return s + "x\n";
}

// ---------------------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------------------

TEST(YamlJsonTest, ParsesValuesWithNlohmannTypes) {
  auto j = ParseJson(R"({"a": 1, "b": -2, "c": 1.5, "d": "x", "e": [true, null], "f": 18446744073709551615})");
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_TRUE((*j)["a"].is_number_unsigned());
  EXPECT_TRUE((*j)["b"].is_number_integer());
  EXPECT_DOUBLE_EQ((*j)["c"].get<double>(), 1.5);
  EXPECT_EQ((*j)["d"], "x");
  EXPECT_EQ((*j)["e"], json::array({true, nullptr}));
  EXPECT_EQ((*j)["f"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
}

TEST(YamlJsonTest, SyntaxErrorNamesLineAndColumn) {
  auto j = ParseJson("{\n  \"a\": 1,\n  \"b\": tru\n}");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kBadRequest);
  EXPECT_NE(j.status().message().find("invalid JSON at line 3"), std::string::npos) << j.status().message();
  EXPECT_EQ(j.status().message().find("[json.exception"), std::string::npos) << j.status().message();

  EXPECT_FALSE(ParseJson("").ok());
  EXPECT_FALSE(ParseJson("{\"a\": 1} trailing").ok());
  EXPECT_FALSE(ParseJson("[1e999]").ok());
}

TEST(YamlJsonTest, DepthLimitAtBoundary) {
  EXPECT_TRUE(ParseJson(NestedFlowSeqs(kMaxNestingDepth)).ok());
  EXPECT_TRUE(ParseJson(NestedJsonObjects(kMaxNestingDepth)).ok());
  auto j = ParseJson(NestedFlowSeqs(kMaxNestingDepth + 1));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kBadRequest);
  EXPECT_NE(j.status().message().find("nesting depth exceeds the maximum of 64"), std::string::npos)
      << j.status().message();
  EXPECT_NE(j.status().message().find("column 65"), std::string::npos) << j.status().message();
  EXPECT_FALSE(ParseJson(NestedJsonObjects(kMaxNestingDepth + 1)).ok());
  // Custom limit; brackets inside strings do not count.
  EXPECT_TRUE(ParseJson(R"([["[[[[[["]])", 2).ok());
  EXPECT_FALSE(ParseJson("[[[1]]]", 2).ok());
}

TEST(YamlJsonTest, TenThousandDeepIsRejectedWithoutCrashing) {
  for (const std::string& text :
       {NestedFlowSeqs(10000), NestedJsonObjects(10000), std::string(10000, '['), NestedFlowSeqs(200000)}) {
    auto j = ParseJson(text);
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.status().code(), Code::kBadRequest);
    EXPECT_NE(j.status().message().find("nesting depth"), std::string::npos) << j.status().message();
  }
}

TEST(YamlJsonTest, TenMegabyteInput) {
  std::string text = "{\"items\": [";
  while (text.size() < 10u * 1024 * 1024) text += "{\"name\": \"instance-0001\", \"cpu\": 4, \"ok\": true},";
  text += "{}]}";
  auto j = ParseJson(text);
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_GT((*j)["items"].size(), 100000u);

  std::string big_string = "{\"data\": \"" + std::string(10u * 1024 * 1024, 'x') + "\"}";
  auto s = ParseJson(big_string);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)["data"].get_ref<const std::string&>().size(), 10u * 1024 * 1024);
}

// ---------------------------------------------------------------------------------------------------------
// YAML parsing
// ---------------------------------------------------------------------------------------------------------

TEST(YamlParseTest, MultiDocumentStreamSkipsEmptyDocuments) {
  auto docs = ParseYamlDocuments(
      "---\n"
      "kind: Instance\n"
      "metadata: {name: a}\n"
      "---\n"
      "---\n"
      "# only a comment\n"
      "---\n"
      "kind: Volume\n"
      "...\n"
      "---\n"
      "- 1\n"
      "- 2\n");
  ASSERT_TRUE(docs.ok()) << docs.status().message();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[0], json({{"kind", "Instance"}, {"metadata", {{"name", "a"}}}}));
  EXPECT_EQ((*docs)[1], json({{"kind", "Volume"}}));
  EXPECT_EQ((*docs)[2], json::array({1, 2}));

  auto none = ParseYamlDocuments("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto comments = ParseYamlDocuments("# nothing\n---\n");
  ASSERT_TRUE(comments.ok());
  EXPECT_TRUE(comments->empty());
}

TEST(YamlParseTest, CoreSchemaTypingOfPlainScalars) {
  json j =
      Y("int: 123\n"
        "neg: -42\n"
        "plus: +7\n"
        "oct: 0o17\n"
        "hex: 0x1F\n"
        "float: 1.5\n"
        "exp: 1e3\n"
        "dot: .5\n"
        "big: 18446744073709551615\n"
        "huge: 123456789012345678901234567890\n"
        "minint: -9223372036854775808\n"
        "t: true\n"
        "f: False\n"
        "n1: null\n"
        "n2: ~\n"
        "n3:\n"
        "yes_is_string: yes\n"
        "on_is_string: on\n"
        "underscore: 1_000\n"
        "time: 12:30\n"
        "date: 2024-01-02\n"
        "word: hello world\n"
        "version: 1.2.3\n");
  EXPECT_TRUE(j["int"].is_number_unsigned());
  EXPECT_EQ(j["int"], 123);
  EXPECT_TRUE(j["neg"].is_number_integer());
  EXPECT_EQ(j["neg"], -42);
  EXPECT_EQ(j["plus"], 7);
  EXPECT_EQ(j["oct"], 15);
  EXPECT_EQ(j["hex"], 31);
  EXPECT_TRUE(j["float"].is_number_float());
  EXPECT_DOUBLE_EQ(j["float"].get<double>(), 1.5);
  EXPECT_TRUE(j["exp"].is_number_float());
  EXPECT_DOUBLE_EQ(j["exp"].get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(j["dot"].get<double>(), 0.5);
  EXPECT_EQ(j["big"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(j["huge"].is_number_float());
  EXPECT_EQ(j["minint"].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(j["t"], true);
  EXPECT_EQ(j["f"], false);
  EXPECT_TRUE(j["n1"].is_null());
  EXPECT_TRUE(j["n2"].is_null());
  EXPECT_TRUE(j.contains("n3"));
  EXPECT_TRUE(j["n3"].is_null());
  EXPECT_EQ(j["yes_is_string"], "yes");
  EXPECT_EQ(j["on_is_string"], "on");
  EXPECT_EQ(j["underscore"], "1_000");
  EXPECT_EQ(j["time"], "12:30");
  EXPECT_EQ(j["date"], "2024-01-02");
  EXPECT_EQ(j["word"], "hello world");
  EXPECT_EQ(j["version"], "1.2.3");
}

TEST(YamlParseTest, YamlAndJsonAgreeOnNumberTypes) {
  json from_yaml = Y("[1, -1, 1.0, 0, 18446744073709551615]");
  auto from_json = ParseJson("[1, -1, 1.0, 0, 18446744073709551615]");
  ASSERT_TRUE(from_json.ok());
  ASSERT_EQ(from_yaml.size(), from_json->size());
  for (size_t i = 0; i < from_yaml.size(); ++i) {
    EXPECT_EQ(from_yaml[i].type(), (*from_json)[i].type()) << i;
    EXPECT_EQ(from_yaml[i], (*from_json)[i]) << i;
  }
}

TEST(YamlParseTest, QuotedAndBlockScalarsStayStrings) {
  json j =
      Y("a: \"123\"\n"
        "b: 'true'\n"
        "c: \"\"\n"
        "d: 'null'\n"
        "e: |\n"
        "  42\n"
        "f: >-\n"
        "  folded\n"
        "  text\n"
        "g: !!str 1.5\n"
        "h: !!int \"12\"\n"
        "i: !!float 3\n");
  EXPECT_EQ(j["a"], "123");
  EXPECT_EQ(j["b"], "true");
  EXPECT_EQ(j["c"], "");
  EXPECT_EQ(j["d"], "null");
  EXPECT_EQ(j["e"], "42\n");
  EXPECT_EQ(j["f"], "folded text");
  EXPECT_EQ(j["g"], "1.5");
  EXPECT_EQ(j["h"], 12);
  EXPECT_TRUE(j["i"].is_number_float());
  EXPECT_DOUBLE_EQ(j["i"].get<double>(), 3.0);
}

TEST(YamlParseTest, NonStringKeysBecomeTheirText) {
  json j = Y("1: one\ntrue: yes\n1.50: x\n");
  EXPECT_EQ(j, json({{"1", "one"}, {"true", "yes"}, {"1.50", "x"}}));
}

TEST(YamlParseTest, AnchorsAndAliasesAreExpanded) {
  json j =
      Y("base: &b\n"
        "  cpu: 2\n"
        "  tags: [x, y]\n"
        "copy: *b\n"
        "name: &n web\n"
        "again: *n\n"
        "*n : aliased-key\n");
  EXPECT_EQ(j["copy"], j["base"]);
  EXPECT_EQ(j["copy"]["tags"], json::array({"x", "y"}));
  EXPECT_EQ(j["again"], "web");
  EXPECT_EQ(j["web"], "aliased-key");
}

TEST(YamlParseTest, AliasBombIsRejected) {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 0; k < 9; ++k) text += ", " + prev;
    text += "]\n";
  }
  std::string msg = YErr(text);
  EXPECT_NE(msg.find("anchors and aliases expand to more than"), std::string::npos) << msg;
}

TEST(YamlParseTest, AliasesCountTowardsDepth) {
  // Each level is 30 deep; the alias puts a copy 40 levels down, giving 70 > 64.
  std::string inner = std::string(30, '[') + std::string(30, ']');
  std::string text = "a: &x " + inner + "\nb: " + std::string(39, '[') + "*x" + std::string(39, ']') + "\n";
  std::string msg = YErr(text);
  EXPECT_NE(msg.find("nesting depth exceeds"), std::string::npos) << msg;
}

TEST(YamlParseTest, ErrorsNameLineColumnAndDocument) {
  std::string msg = YErr("a: 1\nb: [1, 2\nc: 3\n");
  EXPECT_NE(msg.find("invalid YAML at line"), std::string::npos) << msg;

  msg = YErr("a: 1\n  b: 2\n");
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;

  msg = YErr("kind: A\n---\nkind: B\n---\nkind: C\n  bad: indent\n");
  EXPECT_NE(msg.find("line 6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(document 3)"), std::string::npos) << msg;

  msg = YErr("a: 1\na: 2\n");
  EXPECT_NE(msg.find("duplicate mapping key \"a\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 2, column 1"), std::string::npos) << msg;

  msg = YErr("x: .inf\n");
  EXPECT_NE(msg.find("non-finite"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 1, column 4"), std::string::npos) << msg;

  msg = YErr("? [a, b]\n: c\n");
  EXPECT_NE(msg.find("mapping keys must be scalars"), std::string::npos) << msg;

  msg = YErr("x: !!int abc\n");
  EXPECT_NE(msg.find("as !!int"), std::string::npos) << msg;

  msg = YErr("x: *nope\n");
  EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;
}

TEST(YamlParseTest, InvalidUtf8IsRejectedAndErrorsStaySerializable) {
  for (const std::string& text : {std::string("a: \xff\xfe\n"), std::string("\xc3: v\n"),
                                  std::string("a: \xed\xa0\x80\n"), std::string("a: \"\\ud800\"\n")}) {
    auto docs = ParseYamlDocuments(text);
    ASSERT_FALSE(docs.ok()) << text;
    EXPECT_EQ(docs.status().code(), Code::kBadRequest);
    EXPECT_NO_THROW(docs.status().ToJson().dump()) << docs.status().message();
  }
  EXPECT_NE(YErr("a: \xff\n").find("invalid UTF-8"), std::string::npos);
  auto j = ParseJson("[\"a\xff\"]");
  ASSERT_FALSE(j.ok());
  EXPECT_NO_THROW(j.status().ToJson().dump()) << j.status().message();
  EXPECT_NE(j.status().message().find("\\xFF"), std::string::npos) << j.status().message();
  // Escapes are fine: \xff in a double-quoted scalar is the code point U+00FF.
  EXPECT_EQ(Y("a: \"\\xff\"\n")["a"], "\xC3\xBF");
}

TEST(YamlParseTest, DepthLimitAtBoundary) {
  EXPECT_TRUE(ParseYamlDocuments(NestedFlowSeqs(kMaxNestingDepth)).ok());
  EXPECT_TRUE(ParseYamlDocuments(NestedBlockMaps(kMaxNestingDepth)).ok());
  EXPECT_TRUE(ParseYamlDocuments(NestedBlockSeqs(kMaxNestingDepth)).ok());

  std::string msg = YErr(NestedFlowSeqs(kMaxNestingDepth + 1));
  EXPECT_NE(msg.find("nesting depth exceeds the maximum of 64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 1, column 65"), std::string::npos) << msg;
  msg = YErr(NestedBlockMaps(kMaxNestingDepth + 1));
  EXPECT_NE(msg.find("nesting depth exceeds the maximum of 64"), std::string::npos) << msg;
  msg = YErr(NestedBlockSeqs(kMaxNestingDepth + 1));
  EXPECT_NE(msg.find("nesting depth exceeds the maximum of 64"), std::string::npos) << msg;
}

TEST(YamlParseTest, TenThousandDeepIsRejectedWithoutCrashing) {
  std::string flow_maps;
  for (int i = 0; i < 10000; ++i) flow_maps += "{a: ";
  flow_maps += "1" + std::string(10000, '}');
  for (const std::string& text : {NestedFlowSeqs(10000), std::string(10000, '['), flow_maps, NestedBlockMaps(10000),
                                  NestedBlockSeqs(10000), NestedFlowSeqs(100000)}) {
    std::string msg = YErr(text);
    EXPECT_NE(msg.find("nesting depth"), std::string::npos) << msg.substr(0, 200);
    msg = YErr(text, 1000000);  // even when the caller allows it, yaml-cpp must not blow the stack
    EXPECT_NE(msg.find("nesting depth"), std::string::npos) << msg.substr(0, 200);
  }
}

TEST(YamlParseTest, TenMegabyteInput) {
  std::string text;
  text.reserve(11u * 1024 * 1024);
  text += "items:\n";
  int n = 0;
  while (text.size() < 10u * 1024 * 1024) {
    text += "- name: instance-" + std::to_string(n++) + "\n  cpu: 4\n  labels: {app: web, tier: \"1\"}\n";
  }
  auto docs = ParseYamlDocuments(text);
  ASSERT_TRUE(docs.ok()) << docs.status().message();
  ASSERT_EQ(docs->size(), 1u);
  const json& items = (*docs)[0]["items"];
  ASSERT_EQ(items.size(), static_cast<size_t>(n));
  EXPECT_EQ(items.back()["name"], "instance-" + std::to_string(n - 1));
  EXPECT_EQ(items.back()["labels"]["tier"], "1");

  std::string big = "data: " + std::string(10u * 1024 * 1024, 'y') + "\n";
  auto b = ParseYamlDocuments(big);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[0]["data"].get_ref<const std::string&>().size(), 10u * 1024 * 1024);
}

// ---------------------------------------------------------------------------------------------------------
// ParseJsonOrYaml
// ---------------------------------------------------------------------------------------------------------

TEST(YamlJsonOrYamlTest, AcceptsEitherFormat) {
  auto a = ParseJsonOrYaml(R"({"kind": "Instance", "spec": {"cpu": 2}})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)["spec"]["cpu"], 2);
  auto b = ParseJsonOrYaml("kind: Instance\nspec:\n  cpu: 2\n");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  auto c = ParseJsonOrYaml("{kind: Instance, spec: {cpu: 2}}");  // YAML flow mapping
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*a, *c);
  auto d = ParseJsonOrYaml("\xEF\xBB\xBF  [1, 2]");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, json::array({1, 2}));
}

TEST(YamlJsonOrYamlTest, Errors) {
  EXPECT_EQ(ParseJsonOrYaml("").status().code(), Code::kBadRequest);
  EXPECT_EQ(ParseJsonOrYaml("  \n# just a comment\n").status().code(), Code::kBadRequest);
  auto two = ParseJsonOrYaml("a: 1\n---\nb: 2\n");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("single YAML document, found 2"), std::string::npos);
  auto bad_json = ParseJsonOrYaml("{\"a\": [1, 2}");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.status().message().find("invalid JSON at line 1"), std::string::npos)
      << bad_json.status().message();
  auto deep = ParseJsonOrYaml(NestedFlowSeqs(10000));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nesting depth"), std::string::npos);
  auto deep_yaml = ParseJsonOrYaml(NestedBlockMaps(10000));
  ASSERT_FALSE(deep_yaml.ok());
  EXPECT_NE(deep_yaml.status().message().find("nesting depth"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------
// ToYaml
// ---------------------------------------------------------------------------------------------------------

void ExpectRoundTrip(const json& value) {
  std::string text = ToYaml(value);
  auto docs = ParseYamlDocuments(text);
  ASSERT_TRUE(docs.ok()) << docs.status().message() << "\nYAML:\n" << text;
  if (value.is_null()) {
    EXPECT_TRUE(docs->empty()) << text;  // a null document is skipped like an empty one
    return;
  }
  ASSERT_EQ(docs->size(), 1u) << text;
  EXPECT_EQ((*docs)[0], value) << "YAML:\n" << text;
  // Same JSON types, not merely equal values (1 vs 1.0, unsigned vs signed).
  EXPECT_EQ((*docs)[0].dump(), value.dump()) << "YAML:\n" << text;
}

const char* const kTrickyStrings[] = {
    "",
    " ",
    "true",
    "True",
    "FALSE",
    "false",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "null",
    "Null",
    "~",
    "123",
    "-1",
    "+1",
    "0",
    "007",
    "1.5",
    "1.",
    ".5",
    "1e3",
    "1E-3",
    "0x1F",
    "0o17",
    "1_000",
    "12:30:00",
    "2024-01-02",
    ".inf",
    "-.inf",
    ".NaN",
    "a: b",
    "a:",
    ":a",
    "key: value",
    "- x",
    "-",
    "--",
    "---",
    "...",
    "? x",
    "?",
    "! x",
    "!tag",
    "&anchor",
    "*alias",
    "|",
    ">",
    "@at",
    "`tick",
    "%pct",
    "'single'",
    "\"double\"",
    "[x]",
    "{x}",
    "x, y",
    "a #b",
    "#comment",
    "a#b",
    ",",
    "<<",
    "=",
    " leading",
    "trailing ",
    "tab\there",
    "\ttab",
    "caf\xC3\xA9",
    "emoji \xF0\x9F\x98\x80",
    "nbsp\xC2\xA0x",
    "nel\xC2\x85x",
    "ls\xE2\x80\xA8x",
    "ctrl\x01x",
    "del\x7fx",
    "cr\rx",
    "\\backslash",
    "quote\"inside",
    "single'inside",
    "1.2.3",
    "v1",
    "http://example.com/a?b=c#d",
    "a\nb",
    "a\nb\n",
    "a\nb\n\n",
    "\n",
    "\nx\n",
    "  indented\nx\n",
    "line\r\nbreak\n",
    "trailing space \nx\n",
    "#!/bin/sh\necho hi\n",
    "- item\n- item\n",
    "key: v\n",
};

TEST(YamlEmitTest, TrickyStringsRoundTripAsValuesKeysItemsAndDocuments) {
  for (const char* s : kTrickyStrings) {
    SCOPED_TRACE(json(s).dump());
    ExpectRoundTrip(json(s));
    ExpectRoundTrip(json({{"k", s}, {"z", 1}}));
    ExpectRoundTrip(json::array({s, s, 1}));
    ExpectRoundTrip(json({{s, "v"}, {"zz", {{s, json::array({s})}}}}));
  }
}

TEST(YamlEmitTest, ControlCharactersRoundTrip) {
  ExpectRoundTrip(json({{"nul", std::string("a\0b", 3)}, {std::string("k\0", 2), "v"}, {"esc", "\x1b[0m"}}));
  // Invalid UTF-8 cannot come from the parsers; emitting it must still not throw.
  EXPECT_NO_THROW(ToYaml(json({{"k", std::string("a\xff")}})));
}

TEST(YamlEmitTest, NumbersKeepTheirTypes) {
  ExpectRoundTrip(json({{"u", std::numeric_limits<uint64_t>::max()},
                        {"i", std::numeric_limits<int64_t>::min()},
                        {"neg", -5},
                        {"d", 0.1},
                        {"whole", 3.0},
                        {"tiny", 1.5e-300},
                        {"big", 1e300},
                        {"negd", -2.5},
                        {"zero", 0.0}}));
  std::string text = ToYaml(json({{"d", 0.1}, {"whole", 3.0}, {"b", true}, {"x", nullptr}, {"num", 7}}));
  EXPECT_NE(text.find("d: 0.1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("whole: 3.0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("num: 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("b: true\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x: null\n"), std::string::npos) << text;
}

TEST(YamlEmitTest, ReadableBlockOutput) {
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Instance"},
              {"metadata", {{"name", "web-1"}, {"labels", {{"app", "web"}}}}},
              {"spec", {{"ports", json::array({80, 443})}, {"empty", json::object()}, {"none", json::array()}}}};
  std::string text = ToYaml(obj);
  EXPECT_EQ(text,
            "apiVersion: stratus.io/v1\n"
            "kind: Instance\n"
            "metadata:\n"
            "  labels:\n"
            "    app: web\n"
            "  name: web-1\n"
            "spec:\n"
            "  empty: {}\n"
            "  none: []\n"
            "  ports:\n"
            "    - 80\n"
            "    - 443\n");
  ExpectRoundTrip(obj);
}

TEST(YamlEmitTest, QuotesStringsThatWouldChangeType) {
  std::string text = ToYaml(
      json({{"a", "true"}, {"b", "123"}, {"c", ""}, {"d", "null"}, {"e", "1e3"}, {"f", "0x1F"}, {"g", "plain"}}));
  EXPECT_NE(text.find("a: \"true\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("b: \"123\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("c: \"\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d: \"null\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("e: \"1e3\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("f: \"0x1F\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g: plain\n"), std::string::npos) << text;
}

TEST(YamlEmitTest, MultiLineStringsUseLiteralBlocks) {
  json obj = {{"script", "#!/bin/sh\necho hello\nexit 0\n"}, {"items", json::array({"a\nb\n"})}};
  std::string text = ToYaml(obj);
  EXPECT_NE(text.find("script: |\n  #!/bin/sh\n  echo hello\n  exit 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("- |\n"), std::string::npos) << text;
  ExpectRoundTrip(obj);
}

TEST(YamlEmitTest, LargeAndDeepValuesRoundTrip) {
  json deep = 1;
  for (int i = 0; i < kMaxNestingDepth; ++i) deep = (i % 2) ? json({{"k", deep}}) : json::array({deep});
  ExpectRoundTrip(deep);

  json big = json::object();
  big["blob"] = std::string(2u * 1024 * 1024, 'z');
  big["long key " + std::string(2000, 'k')] = "v";
  for (int i = 0; i < 5000; ++i) big["items"].push_back({{"i", i}, {"s", "s" + std::to_string(i)}});
  ExpectRoundTrip(big);
}

}  // namespace
}  // namespace stratus
