// meta.k8s.io/v1 Table answers: which Accept headers get one, and what kubectl needs in it.
#include <gtest/gtest.h>

#include "stratus/apiserver/table.h"
#include "stratus/core/columns.h"
#include "stratus/core/resources.h"

namespace stratus {
namespace {

TEST(TableTest, WantsTableOnlyForMetaV1Tables) {
  // What kubectl v1.32 sends for `get`.
  EXPECT_TRUE(WantsTable("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
  EXPECT_TRUE(WantsTable("application/json; g=meta.k8s.io; v=v1; as=Table"));
  EXPECT_FALSE(WantsTable("application/json"));
  EXPECT_FALSE(WantsTable(""));
  EXPECT_FALSE(WantsTable("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
  EXPECT_FALSE(WantsTable("application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"));
  EXPECT_FALSE(WantsTable("application/yaml;as=Table;v=v1;g=meta.k8s.io"));
}

TEST(TableTest, IncludeObjectDefaultsToMetadataAndRejectsOthers) {
  EXPECT_EQ(*ParseIncludeObject(""), IncludeObject::kMetadata);
  EXPECT_EQ(*ParseIncludeObject("None"), IncludeObject::kNone);
  EXPECT_EQ(*ParseIncludeObject("Object"), IncludeObject::kObject);
  auto bad = ParseIncludeObject("object");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("includeObject"), std::string::npos);
}

TEST(TableTest, ColumnsMatchStratusctlAndWideOnesHavePriorityOne) {
  const ResourceInfo* r = FindByKind("Instance");
  ASSERT_NE(r, nullptr);
  json o = {{"apiVersion", "stratus.io/v1"},
            {"kind", "Instance"},
            {"metadata", {{"name", "web-1"}, {"namespace", "default"}, {"labels", {{"app", "web"}}}}},
            {"spec", {{"instanceType", "m1.small"}, {"image", "debian"}}},
            {"status", {{"phase", "Running"}, {"nodeName", "n1"}, {"addresses", {{{"ip", "10.0.0.5"}}}}}}};
  json t = TableOf(*r, {&o}, {{"resourceVersion", "7"}}, IncludeObject::kMetadata, 0);
  EXPECT_EQ(t["kind"], "Table");
  EXPECT_EQ(t["apiVersion"], "meta.k8s.io/v1");
  EXPECT_EQ(t["metadata"]["resourceVersion"], "7");
  TableOptions wide;
  wide.wide = true;
  std::vector<std::string> headers = TableHeader(*r, wide), narrow = TableHeader(*r, TableOptions());
  ASSERT_EQ(t["columnDefinitions"].size(), headers.size());
  size_t shown = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    const json& c = t["columnDefinitions"][i];
    std::string upper;
    for (char ch : c["name"].get<std::string>()) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_EQ(upper, headers[i]);
    if (c["priority"] == 0) ++shown;
  }
  EXPECT_EQ(shown, narrow.size());
  EXPECT_EQ(t["columnDefinitions"][0]["format"], "name");
  ASSERT_EQ(t["rows"].size(), 1u);
  EXPECT_EQ(t["rows"][0]["cells"], json(TableRow(*r, o, wide, 0)));
  EXPECT_EQ(t["rows"][0]["cells"][0], "web-1");
  // Metadata only (kubectl's --show-labels and -A read it), not the spec.
  EXPECT_EQ(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
  EXPECT_EQ(t["rows"][0]["object"]["metadata"]["labels"]["app"], "web");
  EXPECT_FALSE(t["rows"][0]["object"].contains("spec"));
  EXPECT_EQ(TableOf(*r, {&o}, json::object(), IncludeObject::kObject, 0)["rows"][0]["object"], o);
  EXPECT_FALSE(TableOf(*r, {&o}, json::object(), IncludeObject::kNone, 0)["rows"][0].contains("object"));
}

}  // namespace
}  // namespace stratus
