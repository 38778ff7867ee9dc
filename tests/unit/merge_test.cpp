#include "stratus/core/merge.h"

#include <gtest/gtest.h>

namespace stratus {
namespace {

json J(const char* text) { return json::parse(text); }

// RFC 7386 Appendix A, row by row: original, patch, result.
TEST(MergePatchTest, Rfc7386AppendixA) {
  const char* const cases[][3] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", R"(null)", R"(null)"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c[0]) + " + " + c[1]);
    EXPECT_EQ(ApplyMergePatch(J(c[0]), J(c[1])), J(c[2]));
  }
}

TEST(MergePatchTest, ApplyDoesNotModifyInputs) {
  json target = {{"a", 1}};
  json patch = {{"a", nullptr}};
  json out = ApplyMergePatch(target, patch);
  EXPECT_EQ(out, json::object());
  EXPECT_EQ(target, json({{"a", 1}}));
}

TEST(MergePatchTest, CreateMergePatch) {
  EXPECT_EQ(CreateMergePatch(J(R"({"a":1,"b":{"c":2}})"), J(R"({"a":1,"b":{"c":2}})")), json::object());
  EXPECT_EQ(CreateMergePatch(J(R"({"a":1,"b":2})"), J(R"({"a":3})")), J(R"({"a":3,"b":null})"));
  EXPECT_EQ(CreateMergePatch(J(R"({"s":{"x":1,"y":2}})"), J(R"({"s":{"x":1,"z":3}})")), J(R"({"s":{"y":null,"z":3}})"));
  EXPECT_EQ(CreateMergePatch(J(R"({"l":[1,2,3]})"), J(R"({"l":[1,2]})")), J(R"({"l":[1,2]})"));
  EXPECT_EQ(CreateMergePatch(J(R"({"o":{"a":1}})"), J(R"({"o":"flat"})")), J(R"({"o":"flat"})"));
  EXPECT_EQ(CreateMergePatch(J(R"({"o":"flat"})"), J(R"({"o":{"a":1}})")), J(R"({"o":{"a":1}})"));
  EXPECT_EQ(CreateMergePatch(J(R"({"n":1})"), J(R"({"n":1.5})")), J(R"({"n":1.5})"));
  EXPECT_EQ(CreateMergePatch(J(R"([1])"), J(R"([2])")), J(R"([2])"));
  EXPECT_EQ(CreateMergePatch(J(R"([1])"), J(R"([1])")), json::object());
}

TEST(MergePatchTest, CreateThenApplyRoundTrips) {
  const char* const pairs[][2] = {
      {R"({"a":1,"b":{"c":{"d":[1,2]},"e":"x"},"f":true})", R"({"a":2,"b":{"c":{"d":[3]}},"g":null})"},
      {R"({})", R"({"a":{"b":{"c":1}}})"},
      {R"({"a":{"b":{"c":1}}})", R"({})"},
      {R"({"a":{}})", R"({"a":{"b":1}})"},
      {R"({"a":{"b":1}})", R"({"a":{}})"},
  };
  for (const auto& p : pairs) {
    SCOPED_TRACE(std::string(p[0]) + " -> " + p[1]);
    json from = J(p[0]);
    json to = J(p[1]);
    // Merge patches cannot store nulls, so compare against `to` without them.
    json expected = ApplyMergePatch(json::object(), to);
    EXPECT_EQ(ApplyMergePatch(from, CreateMergePatch(from, to)), expected);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Three-way (kubectl client-side apply)
// ---------------------------------------------------------------------------------------------------------

TEST(MergeThreeWayTest, UnchangedGivesEmptyPatch) {
  json applied = J(R"({"spec":{"cpu":2,"image":"ubuntu"},"metadata":{"labels":{"app":"web"}}})");
  json current = J(R"({"spec":{"cpu":2,"image":"ubuntu","nodeName":"n1"},
                       "metadata":{"labels":{"app":"web"},"uid":"u1","resourceVersion":"7"},
                       "status":{"phase":"Running"}})");
  EXPECT_EQ(ThreeWayMergePatch(applied, applied, current), json::object());
}

TEST(MergeThreeWayTest, RemovedFieldIsDeleted) {
  json last = J(R"({"spec":{"cpu":2,"memoryMiB":512}})");
  json modified = J(R"({"spec":{"cpu":2}})");
  json current = J(R"({"spec":{"cpu":2,"memoryMiB":512}})");
  json patch = ThreeWayMergePatch(last, modified, current);
  EXPECT_EQ(patch, J(R"({"spec":{"memoryMiB":null}})"));
  EXPECT_EQ(ApplyMergePatch(current, patch), modified);
}

TEST(MergeThreeWayTest, RemovedFieldIsDeletedEvenIfServerChangedIt) {
  json last = J(R"({"a":1,"b":2})");
  json modified = J(R"({"a":1})");
  json current = J(R"({"a":1,"b":99})");
  EXPECT_EQ(ThreeWayMergePatch(last, modified, current), J(R"({"b":null})"));
}

TEST(MergeThreeWayTest, ServerSetFieldsAreKept) {
  json last = J(R"({"spec":{"cpu":2}})");
  json modified = J(R"({"spec":{"cpu":4}})");
  json current = J(R"({"spec":{"cpu":2,"nodeName":"n1"},"status":{"phase":"Running"}})");
  json patch = ThreeWayMergePatch(last, modified, current);
  EXPECT_EQ(patch, J(R"({"spec":{"cpu":4}})"));
  EXPECT_EQ(ApplyMergePatch(current, patch), J(R"({"spec":{"cpu":4,"nodeName":"n1"},"status":{"phase":"Running"}})"));
}

TEST(MergeThreeWayTest, NestedRemoval) {
  json last = J(
      R"({"metadata":{"labels":{"app":"web","tier":"fe"},"annotations":{"a":"1"}},"spec":{"x":{"y":{"z":1,"w":2}}}})");
  json modified = J(R"({"metadata":{"labels":{"app":"web"}},"spec":{"x":{"y":{"z":1}}}})");
  json current = J(R"({"metadata":{"labels":{"app":"web","tier":"fe","added-by":"ops"},"annotations":{"a":"1","b":"2"}},
                       "spec":{"x":{"y":{"z":1,"w":2,"v":3}}}})");
  json patch = ThreeWayMergePatch(last, modified, current);
  EXPECT_EQ(patch, J(R"({"metadata":{"labels":{"tier":null},"annotations":null},"spec":{"x":{"y":{"w":null}}}})"));
  EXPECT_EQ(ApplyMergePatch(current, patch),
            J(R"({"metadata":{"labels":{"app":"web","added-by":"ops"}},"spec":{"x":{"y":{"z":1,"v":3}}}})"));
}

TEST(MergeThreeWayTest, DriftedFieldsAreRestoredAndArraysReplacedWhole) {
  json last = J(R"({"spec":{"ports":[80,443],"cpu":2}})");
  json modified = J(R"({"spec":{"ports":[80,443],"cpu":2}})");
  json current = J(R"({"spec":{"ports":[80],"cpu":8}})");  // someone edited the live object
  EXPECT_EQ(ThreeWayMergePatch(last, modified, current), J(R"({"spec":{"ports":[80,443],"cpu":2}})"));
}

TEST(MergeThreeWayTest, FirstApplyWithoutLastApplied) {
  json modified = J(R"({"spec":{"cpu":2,"empty":{}}})");
  json current = J(R"({"spec":{"cpu":1,"nodeName":"n1"},"status":{"phase":"Pending"}})");
  json patch = ThreeWayMergePatch(json(), modified, current);
  EXPECT_EQ(patch, J(R"({"spec":{"cpu":2,"empty":{}}})"));  // nothing deleted; explicit {} is a value
  EXPECT_EQ(ThreeWayMergePatch(json(), modified, ApplyMergePatch(current, patch)), json::object());
}

TEST(MergeThreeWayTest, AddedFieldAndReAddedField) {
  json last = J(R"({"a":1})");
  json modified = J(R"({"a":1,"b":{"c":2}})");
  json current = J(R"({"a":1})");
  EXPECT_EQ(ThreeWayMergePatch(last, modified, current), J(R"({"b":{"c":2}})"));
  // Deleted from `modified` and also already gone from current: still sent as null (harmless).
  EXPECT_EQ(ThreeWayMergePatch(J(R"({"a":1,"b":2})"), J(R"({"a":1})"), J(R"({"a":1})")), J(R"({"b":null})"));
}

}  // namespace
}  // namespace stratus
