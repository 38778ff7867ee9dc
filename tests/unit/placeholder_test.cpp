#include <gtest/gtest.h>

#include "stratus/core/object.h"
#include "stratus/core/resources.h"

namespace stratus {
namespace {

TEST(ObjectTest, Dns1123LabelRules) {
  EXPECT_TRUE(ValidateDns1123Label("web-1", "metadata.name").ok());
  EXPECT_FALSE(ValidateDns1123Label("Web", "metadata.name").ok());
  EXPECT_FALSE(ValidateDns1123Label("a/b", "metadata.name").ok());
  EXPECT_FALSE(ValidateDns1123Label("..", "metadata.name").ok());
  EXPECT_FALSE(ValidateDns1123Label("-a", "metadata.name").ok());
  EXPECT_FALSE(ValidateDns1123Label(std::string(64, 'a'), "metadata.name").ok());
  EXPECT_TRUE(ValidateDns1123Label(std::string(63, 'a'), "metadata.name").ok());
  Status s = ValidateDns1123Label("Bad_Name", "metadata.name");
  ASSERT_EQ(s.causes().size(), 1u);
  EXPECT_EQ(s.causes()[0].field, "metadata.name");
  EXPECT_EQ(s.http_code(), 422);
}

TEST(ObjectTest, SubdomainAllowsDots) {
  EXPECT_TRUE(ValidateDns1123Subdomain("m1.small", "metadata.name").ok());
  EXPECT_FALSE(ValidateDns1123Subdomain("m1..small", "metadata.name").ok());
}

TEST(ResourcesTest, FindByAnyName) {
  ASSERT_NE(FindByAnyName("inst"), nullptr);
  EXPECT_EQ(FindByAnyName("Instances")->kind, "Instance");
  EXPECT_EQ(FindByAnyName("flavor")->plural, "instancetypes");
  EXPECT_FALSE(FindByAnyName("node")->namespaced);
  EXPECT_EQ(FindByAnyName("nope"), nullptr);
}

TEST(StatusTest, RoundTripsThroughHttp) {
  Status s(Code::kInvalid, "bad", {{"spec.x", "must be >= 1"}});
  Status back = Status::FromHttp(422, s.ToJson().dump());
  EXPECT_EQ(back.code(), Code::kInvalid);
  ASSERT_EQ(back.causes().size(), 1u);
  EXPECT_EQ(back.causes()[0].field, "spec.x");
  EXPECT_EQ(Status::FromHttp(409, Status(Code::kAlreadyExists, "x").ToJson().dump()).code(), Code::kAlreadyExists);
}

}  // namespace
}  // namespace stratus
