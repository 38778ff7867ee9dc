// Regression tests for inputs the libFuzzer targets in tests/fuzz found (one test per finding; the name says what
// the input did before the fix). They run in the ordinary unit test binary, so CI checks them on gcc too.
#include <gtest/gtest.h>

#include <string>

#include "stratus/core/yaml.h"

namespace stratus {
namespace {

// fuzz_json/fuzz_schema: a body starting with ',' made yaml-cpp 0.7 report a null document at the same token
// forever, and ParseYamlDocuments looped (memory growing) instead of answering. Found through ParseJsonOrYaml,
// which falls back to YAML when the JSON parse fails.
TEST(FuzzFoundTest, StrayTopLevelCommaIsAnErrorNotAnEndlessLoop) {
  const std::string found("\x2c\x22\x6b\x69\x7b\x22\x3a\x61\x2a\x22\x4d\x22\x61\x70\x69\x56\x69\x6f\xff\xff\xff\xff"
                          "\xff\xff\xff\xff\x6e\x5d\x5d", 29);
  auto a = ParseJsonOrYaml(found);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kBadRequest);

  for (const std::string& text : {std::string(","), std::string(", a: 1\n"), std::string("a: 1\n--- \n,\n")}) {
    auto docs = ParseYamlDocuments(text);
    ASSERT_FALSE(docs.ok()) << text;
    EXPECT_EQ(docs.status().code(), Code::kBadRequest);
    EXPECT_NE(docs.status().message().find("unexpected token ','"), std::string::npos) << docs.status().message();
  }
  auto second = ParseYamlDocuments("a: 1\n---\n,\n");
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("line 3"), std::string::npos) << second.status().message();
  // Documents that really are empty or null still parse.
  auto empties = ParseYamlDocuments("---\n---\n~\n---\na: 1\n");
  ASSERT_TRUE(empties.ok()) << empties.status().message();
  EXPECT_EQ(empties->size(), 1u);
}

// fuzz_yaml: a NUL byte made yaml-cpp decode the text as UTF-16, so "4\0..." became other characters (and U+FFFF
// came back as U+FFFD after ToYaml and a reparse). YAML text must be UTF-8: a NUL or invalid byte is an error
// with its position.
TEST(FuzzFoundTest, NulByteIsRejectedInsteadOfDecodingTheTextAsUtf16) {
  static const char kFound[] = "4\0ind{k\x9cstance,[tags: [a, \xa2" "b\",, \xff\xff\xff\xff" "6c}}\n";
  const std::string found(kFound, sizeof(kFound) - 1);
  auto docs = ParseYamlDocuments(found);
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), Code::kBadRequest);
  EXPECT_NE(docs.status().message().find("line 1, column 2: NUL byte"), std::string::npos) << docs.status().message();

  auto utf16 = ParseYamlDocuments(std::string("a\0:\0 \0""1\0", 8));
  ASSERT_FALSE(utf16.ok());
  auto bom16 = ParseYamlDocuments("\xff\xfe" "a\0", 4);
  ASSERT_FALSE(bom16.ok());
  EXPECT_NE(bom16.status().message().find("line 1, column 1: invalid UTF-8"), std::string::npos)
      << bom16.status().message();
  auto later = ParseYamlDocuments("a: 1\nb: x\xc3\n");
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.status().message().find("line 2, column 5"), std::string::npos) << later.status().message();
  // Escaped NULs inside quoted scalars are still fine: only raw bytes are rejected.
  auto escaped = ParseYamlDocuments("a: \"x\\0y\"\n");
  ASSERT_TRUE(escaped.ok()) << escaped.status().message();
  EXPECT_EQ((*escaped)[0]["a"], std::string("x\0y", 3));
}

// fuzz_yaml: the escape "\uffff" parsed to U+FFFF, but yaml-cpp reads and writes a U+FFFF or U+FFFE as U+FFFD,
// so ToYaml (`get -o yaml`) showed another string than the one stored (also reachable through a JSON body). Both
// parsers now reject these two noncharacters, naming where the string is; other characters are unaffected.
TEST(FuzzFoundTest, NoncharactersFffeFfffAreRejectedNotChangedByToYaml) {
  auto found = ParseYamlDocuments("\"0xc\\uffffff00e9= \"\n");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), Code::kBadRequest);
  EXPECT_NE(found.status().message().find("U+FFFF"), std::string::npos) << found.status().message();

  auto in_json = ParseJson(R"({"spec": {"tags": ["ok", "x\ufffe"]}})");
  ASSERT_FALSE(in_json.ok());
  EXPECT_NE(in_json.status().message().find("spec.tags[1]"), std::string::npos) << in_json.status().message();
  auto key = ParseJsonOrYaml("metadata:\n  labels:\n    \"k\\uFFFF\": v\n");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("metadata.labels"), std::string::npos) << key.status().message();

  json fine = {{"a", "caf\xC3\xA9 \xEF\xBF\xBD \xF0\x9F\x98\x80"}, {"b", "x\xEF\xBF\xBCy"}};
  auto back = ParseYamlDocuments(ToYaml(fine));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0], fine);
  EXPECT_EQ(ParseJson(fine.dump()).value(), fine);
}

}  // namespace
}  // namespace stratus
