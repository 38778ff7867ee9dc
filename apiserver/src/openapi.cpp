#include "stratus/apiserver/openapi.h"

#include "stratus/core/resources.h"
#include "stratus/core/sha256.h"

namespace stratus {

namespace {

constexpr const char* kGroupName = "stratus.io";
constexpr const char* kVersionName = "v1";

std::string SchemaName(const std::string& kind) { return std::string("io.stratus.") + kVersionName + "." + kind; }

json Gvk(const std::string& kind) {
  return json::array({{{"group", kGroupName}, {"version", kVersionName}, {"kind", kind}}});
}

json Ref(const std::string& kind) { return {{"$ref", "#/components/schemas/" + SchemaName(kind)}}; }

json Param(const std::string& name, const std::string& in, const std::string& description, bool required = false) {
  json p = {{"name", name}, {"in", in}, {"description", description}, {"schema", {{"type", "string"}}}};
  if (required) p["required"] = true;
  return p;
}

// The query parameters of writes, as Kubernetes documents them.
json WriteParams(bool patch) {
  json p = json::array(
      {Param("dryRun", "query", "When present (All), the change is validated and admitted but not stored."),
       Param("fieldManager", "query", "Name of the actor making the change."),
       Param("fieldValidation", "query",
             "How unknown or duplicate fields are treated: Strict fails the request naming the field (what this "
             "server does for every request: its schemas reject unknown fields), Warn and Ignore are accepted.")});
  if (patch) p.push_back(Param("force", "query", "Server-side apply only: take over conflicting fields."));
  return p;
}

json Responses(const json& schema) {
  return {{"200", {{"description", "OK"}, {"content", {{"application/json", {{"schema", schema}}}}}}}};
}

json Operation(const ResourceInfo& r, const std::string& id, const std::string& action, const json& response_schema,
               json params = json::array()) {
  return {{"operationId", id + r.kind},
          {"x-kubernetes-group-version-kind", Gvk(r.kind)[0]},
          {"x-kubernetes-action", action},
          {"parameters", std::move(params)},
          {"responses", Responses(response_schema)}};
}

json Body(const std::vector<std::string>& types, const json& schema) {
  json content = json::object();
  for (const auto& t : types) content[t] = {{"schema", schema}};
  return {{"required", true}, {"content", std::move(content)}};
}

}  // namespace

json ToOpenApiSchema(const json& s) {
  if (s.is_array()) {
    json out = json::array();
    for (const auto& x : s) out.push_back(ToOpenApiSchema(x));
    return out;
  }
  if (!s.is_object()) return s;
  json out = json::object();
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    if (k == "x-stratus-preserve-unknown-fields") {
      out["x-kubernetes-preserve-unknown-fields"] = it.value();
    } else if (k.rfind("x-stratus-", 0) == 0 || k == "propertyNames") {
      continue;  // rules kubectl cannot use (and OpenAPI 3.0 has no propertyNames); the server still checks them
    } else if (k == "properties") {
      json props = json::object();
      for (auto p = it.value().begin(); p != it.value().end(); ++p) props[p.key()] = ToOpenApiSchema(p.value());
      out[k] = std::move(props);
    } else if (k == "items" || k == "additionalProperties") {
      out[k] = ToOpenApiSchema(it.value());
    } else if (k == "description" && it.value() == "") {
      continue;
    } else {
      out[k] = it.value();
    }
  }
  return out;
}

OpenApiDocs BuildOpenApi(const SchemaRegistry& schemas) {
  json components = json::object();
  json paths = json::object();
  const std::string base = std::string("/apis/") + kGroupName + "/" + kVersionName;
  for (const ResourceInfo& r : AllResources()) {
    json s = schemas.SchemaOf(r.kind);
    if (s.is_null()) continue;
    json k = ToOpenApiSchema(s);
    k["x-kubernetes-group-version-kind"] = Gvk(r.kind);
    components[SchemaName(r.kind)] = std::move(k);
    components[SchemaName(r.kind + "List")] = {
        {"type", "object"},
        {"description", "A list of " + r.kind + " objects."},
        {"required", {"items"}},
        {"properties",
         {{"apiVersion", {{"type", "string"}}},
          {"kind", {{"type", "string"}}},
          {"metadata", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}},
          {"items", {{"type", "array"}, {"items", Ref(r.kind)}}}}},
        {"x-kubernetes-group-version-kind", Gvk(r.kind + "List")}};

    std::string coll = r.namespaced ? base + "/namespaces/{namespace}/" + r.plural : base + "/" + r.plural;
    json scope = json::array();
    if (r.namespaced) scope.push_back(Param("namespace", "path", "Object name and auth scope.", true));
    json item_params = scope;
    item_params.push_back(Param("name", "path", "Name of the " + r.kind + ".", true));

    json list_params = json::array({Param("labelSelector", "query", "Selects objects by their labels."),
                                    Param("fieldSelector", "query", "Selects objects by their fields."),
                                    Param("limit", "query", "At most this many objects per page."),
                                    Param("continue", "query", "The page after the one that returned this token."),
                                    Param("resourceVersion", "query", "Where a watch starts."),
                                    Param("watch", "query", "Stream changes instead of listing.")});
    json collection = {{"parameters", scope},
                       {"get", Operation(r, "list", "list", Ref(r.kind + "List"), list_params)},
                       {"post", Operation(r, "create", "post", Ref(r.kind), WriteParams(false))}};
    collection["post"]["requestBody"] = Body({"application/json", "application/yaml"}, Ref(r.kind));
    paths[coll] = std::move(collection);

    json patch = Operation(r, "patch", "patch", Ref(r.kind), WriteParams(true));
    // No application/strategic-merge-patch+json: kubectl then sends a JSON merge patch, which this server applies.
    patch["requestBody"] = Body({"application/merge-patch+json", "application/json-patch+json",
                                 "application/apply-patch+yaml"},
                                {{"type", "object"}});
    json put = Operation(r, "replace", "put", Ref(r.kind), WriteParams(false));
    put["requestBody"] = Body({"application/json", "application/yaml"}, Ref(r.kind));
    paths[coll + "/{name}"] = {{"parameters", item_params},
                               {"get", Operation(r, "read", "get", Ref(r.kind))},
                               {"put", std::move(put)},
                               {"patch", std::move(patch)},
                               {"delete", Operation(r, "delete", "delete", {{"type", "object"}},
                                                    json::array({Param("dryRun", "query", "Validate only.")}))}};
    if (r.namespaced) {
      paths[base + "/" + r.plural] = {{"get", Operation(r, "listAllNamespaces", "list", Ref(r.kind + "List"), list_params)}};
    }
  }
  json doc = {{"openapi", "3.0.0"},
              {"info", {{"title", "Stratus"}, {"version", kVersionName}}},
              {"paths", std::move(paths)},
              {"components", {{"schemas", std::move(components)}}}};
  OpenApiDocs out;
  out.group_doc = doc.dump();
  Sha256 h;
  h.Update(out.group_doc.data(), out.group_doc.size());
  out.hash = h.Hex().substr(0, 32);
  out.discovery = {{"paths",
                    {{std::string("apis/") + kGroupName + "/" + kVersionName,
                      {{"serverRelativeURL",
                        std::string("/openapi/v3/apis/") + kGroupName + "/" + kVersionName + "?hash=" + out.hash}}}}}};
  return out;
}

}  // namespace stratus
