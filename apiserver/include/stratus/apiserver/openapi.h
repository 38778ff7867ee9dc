// OpenAPI v3 documents for kubectl, generated once from the kinds' schemas (schemas/*.yaml): `/openapi/v3` (the
// discovery of group-version documents) and `/openapi/v3/apis/stratus.io/v1`. kubectl reads them to validate on the
// server (it looks for `fieldValidation` on each kind's PATCH) and for `kubectl explain`.
#pragma once

#include <string>

#include "stratus/core/schema.h"
#include "stratus/core/status.h"

namespace stratus {

struct OpenApiDocs {
  json discovery;         // /openapi/v3
  std::string group_doc;  // /openapi/v3/apis/stratus.io/v1, serialized
  std::string hash;       // of group_doc: the ?hash= kubectl caches by, and its ETag
};

// The documents for every kind in AllResources(), with the descriptions `stratusctl explain` shows.
OpenApiDocs BuildOpenApi(const SchemaRegistry& schemas);

// One kind's schema in OpenAPI 3.0 terms: Stratus' own keywords (x-stratus-*) dropped or mapped to Kubernetes'.
json ToOpenApiSchema(const json& schema);

}  // namespace stratus
