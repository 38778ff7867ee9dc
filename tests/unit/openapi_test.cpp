// The OpenAPI v3 document kubectl reads: every kind with its group-version-kind, the schemas' descriptions, only
// OpenAPI keywords, every $ref resolvable, and fieldValidation on each kind's PATCH (how kubectl decides to let
// the server validate instead of downloading /openapi/v2).
#include <gtest/gtest.h>

#include <functional>

#include "stratus/apiserver/openapi.h"
#include "stratus/core/resources.h"

namespace stratus {
namespace {

TEST(OpenApiTest, EveryKindIsDescribedWithItsGvkAndNothingStratusOnly) {
  OpenApiDocs docs = BuildOpenApi(SchemaRegistry::Builtin());
  json doc = json::parse(docs.group_doc);
  EXPECT_EQ(doc["openapi"], "3.0.0");
  const json& schemas = doc["components"]["schemas"];
  for (const ResourceInfo& r : AllResources()) {
    const std::string name = "io.stratus.v1." + r.kind;
    ASSERT_TRUE(schemas.contains(name)) << r.kind;
    const json& gvk = schemas[name]["x-kubernetes-group-version-kind"][0];
    EXPECT_EQ(gvk["group"], "stratus.io");
    EXPECT_EQ(gvk["version"], "v1");
    EXPECT_EQ(gvk["kind"], r.kind);
    EXPECT_FALSE(schemas[name].value("description", "").empty()) << r.kind;
    // kubectl finds "does the server validate fields" on the PATCH of the kind's item path.
    std::string item = "/apis/stratus.io/v1/" + std::string(r.namespaced ? "namespaces/{namespace}/" : "") + r.plural +
                       "/{name}";
    ASSERT_TRUE(doc["paths"].contains(item)) << item;
    const json& patch = doc["paths"][item]["patch"];
    EXPECT_EQ(patch["x-kubernetes-group-version-kind"]["kind"], r.kind);
    bool has = false;
    for (const auto& p : patch["parameters"]) has |= p["name"] == "fieldValidation" && p["in"] == "query";
    EXPECT_TRUE(has) << item;
    // No strategic merge patch: kubectl must send merge patches.
    EXPECT_FALSE(patch["requestBody"]["content"].contains("application/strategic-merge-patch+json"));
  }
  // The instance's field docs are the schema's (what stratusctl explain shows).
  EXPECT_EQ(schemas["io.stratus.v1.Instance"]["properties"]["spec"]["properties"]["kernelImage"].value("description", ""),
            "Name of a kernel Image (AKI) for direct kernel boot.");
  std::function<void(const json&, const std::string&)> walk = [&](const json& j, const std::string& at) {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        EXPECT_NE(it.key().rfind("x-stratus-", 0), 0u) << at << "." << it.key();
        EXPECT_NE(it.key(), "propertyNames") << at;
        if (it.key() == "$ref") {
          std::string ref = it.value();
          ASSERT_EQ(ref.rfind("#/components/schemas/", 0), 0u) << ref;
          EXPECT_TRUE(schemas.contains(ref.substr(21))) << ref;
        }
        walk(it.value(), at + "." + it.key());
      }
    } else if (j.is_array()) {
      for (const auto& x : j) walk(x, at);
    }
  };
  walk(doc, "");
  // Discovery names the document by its hash; the same input gives the same hash.
  EXPECT_EQ(docs.discovery["paths"]["apis/stratus.io/v1"]["serverRelativeURL"],
            "/openapi/v3/apis/stratus.io/v1?hash=" + docs.hash);
  EXPECT_EQ(BuildOpenApi(SchemaRegistry::Builtin()).hash, docs.hash);
}

TEST(OpenApiTest, StratusKeywordsMapToKubernetesOnes) {
  json s = {{"type", "object"},
            {"x-stratus-preserve-unknown-fields", true},
            {"x-stratus-exactly-one-of", json::array({json::array({"a", "b"})})},
            {"properties", {{"a", {{"type", "string"}, {"x-stratus-max-bytes", 4}, {"description", ""}}}}}};
  json o = ToOpenApiSchema(s);
  EXPECT_EQ(o["x-kubernetes-preserve-unknown-fields"], true);
  EXPECT_FALSE(o.contains("x-stratus-exactly-one-of"));
  EXPECT_EQ(o["properties"]["a"], json({{"type", "string"}}));
}

}  // namespace
}  // namespace stratus
