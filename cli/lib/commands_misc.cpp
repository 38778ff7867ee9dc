// stratusctl explain, version and api-resources.
#include "lib/commands.h"
#include "lib/common.h"
#include "lib/table.h"
#include "lib/targets.h"
#include "lib/util.h"
#include "stratus/core/schema.h"
#include "stratus/core/yaml.h"

#ifndef STRATUS_VERSION
#define STRATUS_VERSION "0.0.0-dev"
#endif

namespace stratus::cli {

const char* ClientVersion() { return STRATUS_VERSION; }

int RunExplain(Env& env, const ExplainOptions& opts) {
  std::string target = Trim(opts.target);
  if (target.empty()) {
    *env.err << "error: you must specify the type of resource to explain, e.g. `stratusctl explain instance` or "
                "`stratusctl explain instance.spec.networks`\n";
    return 1;
  }
  auto dot = target.find('.');
  std::string kind_text = target.substr(0, dot);
  std::string path = dot == std::string::npos ? "" : target.substr(dot + 1);
  auto r = ResolveKind(kind_text);
  if (!r.ok()) {
    PrintError(env, r.status());
    return 1;
  }
  auto text = SchemaRegistry::Builtin().Explain((*r)->kind, path);
  if (!text.ok()) {
    PrintError(env, text.status());
    return 1;
  }
  *env.out << *text;
  if (!text->empty() && text->back() != '\n') *env.out << "\n";
  return 0;
}

int RunVersion(Env& env, const VersionOptions& opts) {
  json info = {{"clientVersion", {{"version", ClientVersion()}, {"apiVersion", "stratus.io/v1"}}}};
  std::string server_line;
  Status server_error;
  if (!opts.client_only && env.client != nullptr) {
    auto raw = env.client->GetRaw("/version");
    if (raw.ok()) {
      json v = json::parse(*raw, nullptr, false);
      if (!v.is_discarded() && v.is_object()) {
        info["serverVersion"] = v;
        for (const char* k : {"gitVersion", "version", "serverVersion"}) {
          if (v.contains(k) && v[k].is_string()) {
            server_line = v[k].get<std::string>();
            break;
          }
        }
        if (server_line.empty()) server_line = v.dump();
      } else {
        server_line = Trim(*raw);
        info["serverVersion"] = server_line;
      }
    } else {
      server_error = raw.status();
    }
  }
  if (opts.output == "json" || opts.output == "yaml") {
    *env.out << RenderObject(info, opts.output);
  } else {
    *env.out << "Client Version: " << ClientVersion() << "\n";
    if (!server_line.empty()) *env.out << "Server Version: " << server_line << "\n";
  }
  if (!server_error.ok()) {
    *env.err << "warning: server version unavailable: " << server_error.ToString() << "\n";
  }
  return 0;
}

int RunApiResources(Env& env, const ApiResourcesOptions& opts) {
  auto raw = env.client->GetRaw(std::string("/apis/") + kApiVersion);
  if (!raw.ok()) {
    PrintError(env, raw.status());
    return 1;
  }
  json list = json::parse(*raw, nullptr, false);
  if (list.is_discarded() || !list.is_object() || !list.contains("resources") || !list["resources"].is_array()) {
    *env.err << "error: the server's discovery document (/apis/" << kApiVersion << ") is not an APIResourceList\n";
    return 1;
  }
  std::string gv = list.contains("groupVersion") && list["groupVersion"].is_string()
                       ? list["groupVersion"].get<std::string>()
                       : kApiVersion;
  bool wide = opts.output == "wide";
  std::vector<std::string> header = {"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"};
  if (wide) {
    header.push_back("VERBS");
    header.push_back("CATEGORIES");
  }
  Table t(header);
  auto join_array = [](const json& o, const char* key, const std::string& sep) {
    std::vector<std::string> parts;
    if (o.contains(key) && o[key].is_array()) {
      for (const auto& x : o[key]) parts.push_back(ScalarText(x));
    }
    return Join(parts, sep);
  };
  for (const auto& res : list["resources"]) {
    if (!res.is_object()) continue;
    std::string name = JsonText(res, "name");
    if (name.empty() || name.find('/') != std::string::npos) continue;  // subresources
    if (opts.output == "name") {
      *env.out << name << "." << kGroup << "\n";
      continue;
    }
    std::vector<std::string> row = {name, join_array(res, "shortNames", ","), gv,
                                    JsonText(res, "namespaced").empty() ? "false" : JsonText(res, "namespaced"),
                                    JsonText(res, "kind")};
    if (wide) {
      row.push_back("[" + join_array(res, "verbs", " ") + "]");
      row.push_back(join_array(res, "categories", ","));
    }
    t.AddRow(row);
  }
  if (opts.output != "name") t.Render(*env.out);
  return 0;
}

}  // namespace stratus::cli
