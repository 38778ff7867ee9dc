#include "stratus/core/selector.h"

#include <gtest/gtest.h>

#include <string>

namespace stratus {
namespace {

LabelSelector MustParse(const std::string& text) {
  auto s = LabelSelector::Parse(text);
  EXPECT_TRUE(s.ok()) << text << ": " << s.status().message();
  return s.ok() ? *s : LabelSelector();
}

bool Match(const std::string& selector, const json& labels) { return MustParse(selector).Matches(labels); }

std::string ParseError(const std::string& text) {
  auto s = LabelSelector::Parse(text);
  EXPECT_FALSE(s.ok()) << "expected \"" << text << "\" to be rejected";
  if (s.ok()) return "";
  EXPECT_EQ(s.status().code(), Code::kBadRequest);
  return s.status().message();
}

const json kWeb = {{"app", "web"}, {"tier", "frontend"}, {"stratus.io/zone", "z1"}};

// ---------------------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------------------

TEST(SelectorLabelTest, EmptySelectorMatchesEverything) {
  for (const char* text : {"", "   ", "\t"}) {
    LabelSelector s = MustParse(text);
    EXPECT_TRUE(s.empty());
    EXPECT_TRUE(s.Matches(kWeb));
    EXPECT_TRUE(s.Matches(json()));
    EXPECT_TRUE(s.Matches(json::object()));
  }
}

TEST(SelectorLabelTest, Equals) {
  EXPECT_TRUE(Match("app=web", kWeb));
  EXPECT_TRUE(Match("app==web", kWeb));
  EXPECT_FALSE(Match("app=db", kWeb));
  EXPECT_FALSE(Match("app==db", kWeb));
  EXPECT_FALSE(Match("missing=web", kWeb));
  EXPECT_FALSE(Match("app=web", json()));
  EXPECT_TRUE(Match("stratus.io/zone=z1", kWeb));
  LabelSelector s = MustParse("app=web");
  ASSERT_EQ(s.requirements().size(), 1u);
  EXPECT_EQ(s.requirements()[0].key, "app");
  EXPECT_EQ(s.requirements()[0].op, LabelSelector::Op::kEquals);
  EXPECT_EQ(s.requirements()[0].values, std::set<std::string>{"web"});
}

TEST(SelectorLabelTest, NotEqualsMatchesMissingKeys) {
  EXPECT_TRUE(Match("app!=db", kWeb));
  EXPECT_FALSE(Match("app!=web", kWeb));
  EXPECT_TRUE(Match("missing!=x", kWeb));
  EXPECT_TRUE(Match("app!=web", json()));
  EXPECT_EQ(MustParse("a!=b").requirements()[0].op, LabelSelector::Op::kNotEquals);
}

TEST(SelectorLabelTest, In) {
  EXPECT_TRUE(Match("app in (web,db)", kWeb));
  EXPECT_TRUE(Match("app in (web)", kWeb));
  EXPECT_FALSE(Match("app in (db,cache)", kWeb));
  EXPECT_FALSE(Match("missing in (web)", kWeb));
  LabelSelector s = MustParse("app in (web, db, web)");
  EXPECT_EQ(s.requirements()[0].op, LabelSelector::Op::kIn);
  EXPECT_EQ(s.requirements()[0].values, (std::set<std::string>{"db", "web"}));
}

TEST(SelectorLabelTest, NotIn) {
  EXPECT_TRUE(Match("app notin (db,cache)", kWeb));
  EXPECT_FALSE(Match("app notin (web,db)", kWeb));
  EXPECT_TRUE(Match("missing notin (web)", kWeb));
  EXPECT_EQ(MustParse("a notin (b)").requirements()[0].op, LabelSelector::Op::kNotIn);
}

TEST(SelectorLabelTest, ExistsAndDoesNotExist) {
  EXPECT_TRUE(Match("app", kWeb));
  EXPECT_FALSE(Match("missing", kWeb));
  EXPECT_TRUE(Match("!missing", kWeb));
  EXPECT_FALSE(Match("!app", kWeb));
  EXPECT_TRUE(Match("!app", json()));
  EXPECT_FALSE(Match("app", json()));
  EXPECT_TRUE(Match("stratus.io/zone", kWeb));
  EXPECT_EQ(MustParse("a").requirements()[0].op, LabelSelector::Op::kExists);
  EXPECT_EQ(MustParse("!a").requirements()[0].op, LabelSelector::Op::kDoesNotExist);
}

TEST(SelectorLabelTest, AllRequirementsMustHold) {
  EXPECT_TRUE(Match("app=web,tier in (frontend),!legacy,stratus.io/zone", kWeb));
  EXPECT_FALSE(Match("app=web,tier=backend", kWeb));
  EXPECT_EQ(MustParse("a=b,c!=d,e in (f),g notin (h),i,!j").requirements().size(), 6u);
}

TEST(SelectorLabelTest, WhitespaceTolerant) {
  LabelSelector s = MustParse("  app = web ,  tier  in(frontend ,backend ) , ! legacy ,x notin(a),  y  ");
  ASSERT_EQ(s.requirements().size(), 5u);
  EXPECT_TRUE(s.Matches({{"app", "web"}, {"tier", "backend"}, {"y", ""}}));
  EXPECT_TRUE(Match("app\t==\tweb", kWeb));
}

TEST(SelectorLabelTest, KeywordsAreContextual) {
  // A label may be called "in"; only the token after a key is an operator.
  EXPECT_TRUE(Match("in in (x)", {{"in", "x"}}));
  EXPECT_TRUE(Match("notin", {{"notin", "1"}}));
}

TEST(SelectorLabelTest, InvalidSelectorsAreRejectedWithReasons) {
  EXPECT_EQ(ParseError("a in b"), "invalid label selector \"a in b\": expected '(' after 'in'");
  EXPECT_NE(ParseError("=x").find("expected a label key, found '='"), std::string::npos);
  EXPECT_NE(ParseError("a==").find("expected a value after '==', found end of string"), std::string::npos);
  EXPECT_NE(ParseError("a=").find("expected a value after '='"), std::string::npos);
  EXPECT_NE(ParseError("a!=").find("expected a value"), std::string::npos);
  EXPECT_NE(ParseError("a in (b").find("expected ',' or ')'"), std::string::npos);
  EXPECT_NE(ParseError("bad key!").find("after key 'bad', found 'key'"), std::string::npos);
  EXPECT_NE(ParseError("a in ()").find("must not be empty"), std::string::npos);
  EXPECT_NE(ParseError("a notin b").find("expected '(' after 'notin'"), std::string::npos);
  EXPECT_NE(ParseError("a in (b,)").find("expected a value"), std::string::npos);
  EXPECT_NE(ParseError("a=b c").find("expected ',' or end of string, found 'c'"), std::string::npos);
  EXPECT_NE(ParseError("a=b,").find("expected a label key, found end of string"), std::string::npos);
  EXPECT_NE(ParseError(",a").find("expected a label key"), std::string::npos);
  EXPECT_NE(ParseError("a,,b").find("expected a label key"), std::string::npos);
  EXPECT_NE(ParseError("!").find("expected a label key"), std::string::npos);
  EXPECT_NE(ParseError("!a=b").find("found '='"), std::string::npos);
  EXPECT_NE(ParseError("a=b=c").find("found '='"), std::string::npos);
  EXPECT_NE(ParseError("a in (b))").find("found ')'"), std::string::npos);
  ParseError("a exists");
  ParseError("(a)");
}

TEST(SelectorLabelTest, InvalidKeysAndValuesAreRejected) {
  EXPECT_NE(ParseError("bad$key=x").find("invalid label key \"bad$key\""), std::string::npos);
  EXPECT_NE(ParseError("-a=x").find("name part must consist of"), std::string::npos);
  EXPECT_NE(ParseError(std::string(64, 'k') + "=x").find("no more than 63"), std::string::npos);
  EXPECT_NE(ParseError("Upper.Case/a=x").find("prefix part"), std::string::npos);
  EXPECT_NE(ParseError("/a=x").find("prefix part must be non-empty"), std::string::npos);
  EXPECT_NE(ParseError("a/=x").find("name part must be non-empty"), std::string::npos);
  EXPECT_NE(ParseError("a/b/c=x").find("invalid label key"), std::string::npos);
  EXPECT_NE(ParseError(std::string(254, 'p') + "/a=x").find("prefix part must be no more than 253"), std::string::npos);
  EXPECT_NE(ParseError("a=" + std::string(64, 'v')).find("invalid label value"), std::string::npos);
  EXPECT_NE(ParseError("a=bad$").find("invalid label value \"bad$\""), std::string::npos);
  EXPECT_NE(ParseError("a in (ok, -bad)").find("invalid label value \"-bad\""), std::string::npos);

  EXPECT_TRUE(LabelSelector::Parse(std::string(63, 'k') + "=" + std::string(63, 'v')).ok());
  EXPECT_FALSE(LabelSelector::Parse("a_b/c=d").ok());                 // prefix is a DNS subdomain: no '_'
  EXPECT_FALSE(LabelSelector::Parse("A.b/c=d").ok());                 // ... and lowercase only
  EXPECT_TRUE(LabelSelector::Parse("a.b-c.d/E.f-G_9=V.a-l_1").ok());  // name and value may mix case
  EXPECT_TRUE(LabelSelector::Parse("x=1").ok());
}

TEST(SelectorLabelTest, ErrorsQuotingBinaryInputStaySerializable) {
  for (const std::string& text : {std::string("a=\xff"), std::string("\xc3\x28"), std::string("a in (\x01)")}) {
    auto s = LabelSelector::Parse(text);
    ASSERT_FALSE(s.ok());
    EXPECT_NO_THROW(s.status().ToJson().dump()) << s.status().message();
  }
  auto f = FieldSelector::Parse("spec.\xff=x");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "field label not supported: spec.\\xFF");
  EXPECT_NO_THROW(f.status().ToJson().dump());
  Status v = ValidateLabels({{"a", std::string("\xff")}}, "metadata.labels");
  ASSERT_FALSE(v.ok());
  EXPECT_NO_THROW(v.ToJson().dump());
}

TEST(SelectorLabelTest, NonStringLabelValuesCompareByText) {
  EXPECT_TRUE(Match("n=1", {{"n", 1}}));
  EXPECT_TRUE(Match("n", {{"n", nullptr}}));
}

// ---------------------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------------------

const json kPod = {{"metadata", {{"name", "web-1"}, {"namespace", "prod"}}}, {"spec", {{"nodeName", "node-a"}}}};
const json kEvent = {
    {"metadata", {{"name", "ev1"}, {"namespace", "prod"}}},
    {"involvedObject", {{"kind", "Instance"}, {"name", "web-1"}, {"namespace", "prod"}, {"uid", "1234-abcd"}}}};

bool FieldMatch(const std::string& selector, const json& obj) {
  auto s = FieldSelector::Parse(selector);
  EXPECT_TRUE(s.ok()) << selector << ": " << s.status().message();
  return s.ok() && s->Matches(obj);
}

TEST(FieldSelectorTest, EveryFieldAndOperator) {
  EXPECT_TRUE(FieldMatch("metadata.name=web-1", kPod));
  EXPECT_TRUE(FieldMatch("metadata.name==web-1", kPod));
  EXPECT_FALSE(FieldMatch("metadata.name=web-2", kPod));
  EXPECT_TRUE(FieldMatch("metadata.name!=web-2", kPod));
  EXPECT_FALSE(FieldMatch("metadata.name!=web-1", kPod));
  EXPECT_TRUE(FieldMatch("metadata.namespace=prod", kPod));
  EXPECT_FALSE(FieldMatch("metadata.namespace=dev", kPod));
  EXPECT_TRUE(FieldMatch("spec.nodeName=node-a", kPod));
  EXPECT_FALSE(FieldMatch("spec.nodeName=node-b", kPod));
  EXPECT_TRUE(FieldMatch("involvedObject.kind=Instance", kEvent));
  EXPECT_TRUE(FieldMatch("involvedObject.name=web-1", kEvent));
  EXPECT_TRUE(FieldMatch("involvedObject.namespace=prod", kEvent));
  EXPECT_TRUE(FieldMatch("involvedObject.uid=1234-abcd", kEvent));
  EXPECT_FALSE(FieldMatch("involvedObject.uid!=1234-abcd", kEvent));
  EXPECT_TRUE(FieldMatch("involvedObject.kind=Instance,involvedObject.name=web-1", kEvent));
  EXPECT_FALSE(FieldMatch("involvedObject.kind=Instance,involvedObject.name=web-2", kEvent));
}

TEST(FieldSelectorTest, AbsentFieldsReadAsEmpty) {
  json unscheduled = {{"metadata", {{"name", "x"}}}, {"spec", json::object()}};
  EXPECT_TRUE(FieldMatch("spec.nodeName=", unscheduled));
  EXPECT_FALSE(FieldMatch("spec.nodeName!=", unscheduled));
  EXPECT_FALSE(FieldMatch("spec.nodeName=", kPod));
  EXPECT_TRUE(FieldMatch("metadata.namespace=", unscheduled));  // cluster-scoped objects
}

TEST(FieldSelectorTest, EmptyAndWhitespace) {
  auto e = FieldSelector::Parse("");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->empty());
  EXPECT_TRUE(e->Matches(kPod));
  EXPECT_TRUE(FieldMatch(" metadata.name = web-1 , metadata.namespace != dev ", kPod));
}

TEST(FieldSelectorTest, EscapedValues) {
  json odd = {{"metadata", {{"name", "a,b=c"}}}};
  EXPECT_TRUE(FieldMatch("metadata.name=a\\,b\\=c", odd));
  auto s = FieldSelector::Parse("metadata.name=a\\,b");
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->requirements().size(), 1u);
  EXPECT_EQ(s->requirements()[0].value, "a,b");
}

TEST(FieldSelectorTest, Errors) {
  auto unknown = FieldSelector::Parse("spec.foo=bar");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kBadRequest);
  EXPECT_EQ(unknown.status().message(), "field label not supported: spec.foo");
  EXPECT_EQ(FieldSelector::Parse("metadata.name=a,status.phase=Running").status().message(),
            "field label not supported: status.phase");

  for (const char* bad : {"metadata.name", "=x", "metadata.name=a,", "metadata.name===a", "metadata.name=a!b"}) {
    auto s = FieldSelector::Parse(bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), Code::kBadRequest) << bad;
    EXPECT_NE(s.status().message().find("invalid field selector"), std::string::npos) << s.status().message();
  }
}

TEST(FieldSelectorTest, ExactName) {
  EXPECT_EQ(FieldSelector::Parse("metadata.name=web-1")->ExactName(), "web-1");
  EXPECT_EQ(FieldSelector::Parse("metadata.namespace=p,metadata.name==web-1")->ExactName(), "web-1");
  EXPECT_EQ(FieldSelector::Parse("metadata.name!=web-1")->ExactName(), "");
  EXPECT_EQ(FieldSelector::Parse("metadata.namespace=p")->ExactName(), "");
  EXPECT_EQ(FieldSelector::Parse("metadata.name=a,metadata.name=b")->ExactName(), "");
  EXPECT_EQ(FieldSelector::Parse("metadata.name=a,metadata.name=a")->ExactName(), "a");
}

// ---------------------------------------------------------------------------------------------------------
// Label map validation
// ---------------------------------------------------------------------------------------------------------

TEST(LabelValidationTest, AcceptsValidMaps) {
  EXPECT_TRUE(ValidateLabels(json(), "metadata.labels").ok());
  EXPECT_TRUE(ValidateLabels(json::object(), "metadata.labels").ok());
  EXPECT_TRUE(ValidateLabels({{"app", "web"},
                              {"stratus.io/zone", "z1"},
                              {"empty", ""},
                              {"A_b.c-9", "X_y.z-0"},
                              {std::string(63, 'k'), std::string(63, 'v')}},
                             "metadata.labels")
                  .ok());
}

TEST(LabelValidationTest, OneCausePerBadEntry) {
  Status s = ValidateLabels({{"app", "web"},
                             {"bad key", "x"},
                             {"tier", "-front"},
                             {"n", 5},
                             {"Stratus.IO/zone", "z"},
                             {"long", std::string(64, 'v')}},
                            "metadata.labels");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_EQ(s.http_code(), 422);
  ASSERT_EQ(s.causes().size(), 5u);
  std::set<std::string> fields;
  for (const FieldCause& c : s.causes()) fields.insert(c.field);
  EXPECT_EQ(fields, (std::set<std::string>{"metadata.labels.bad key", "metadata.labels.tier", "metadata.labels.n",
                                           "metadata.labels.Stratus.IO/zone", "metadata.labels.long"}));
  EXPECT_NE(s.message().find("metadata.labels.tier: Invalid value: \"-front\""), std::string::npos) << s.message();
}

TEST(LabelValidationTest, FieldNamesUseThePrefix) {
  Status s = ValidateLabels({{"app", "bad value"}}, "spec.template.metadata.labels");
  ASSERT_EQ(s.causes().size(), 1u);
  EXPECT_EQ(s.causes()[0].field, "spec.template.metadata.labels.app");
  EXPECT_EQ(s.causes()[0].reason, "FieldValueInvalid");
  Status not_map = ValidateLabels(json::array({"a"}), "metadata.labels");
  ASSERT_FALSE(not_map.ok());
  EXPECT_EQ(not_map.causes()[0].field, "metadata.labels");
}

}  // namespace
}  // namespace stratus
