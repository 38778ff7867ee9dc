#include "stratus/apiserver/table.h"

#include <set>

#include "stratus/core/columns.h"
#include "stratus/core/json_text.h"

namespace stratus {

bool WantsTable(const std::string& accept) {
  // Media ranges are comma-separated; parameters in any order after ';'.
  size_t start = 0;
  while (start <= accept.size()) {
    size_t end = accept.find(',', start);
    if (end == std::string::npos) end = accept.size();
    std::string range = accept.substr(start, end - start);
    std::set<std::string> params;
    size_t p = 0;
    while (p <= range.size()) {
      size_t q = range.find(';', p);
      if (q == std::string::npos) q = range.size();
      std::string item = range.substr(p, q - p);
      std::string trimmed;
      for (char c : item) {
        if (c != ' ' && c != '\t') trimmed += c;
      }
      params.insert(trimmed);
      p = q + 1;
    }
    if (params.count("as=Table") && params.count("g=meta.k8s.io") && params.count("v=v1") &&
        (params.count("application/json") || params.count("*/*"))) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

StatusOr<IncludeObject> ParseIncludeObject(const std::string& value) {
  if (value.empty() || value == "Metadata") return IncludeObject::kMetadata;
  if (value == "None") return IncludeObject::kNone;
  if (value == "Object") return IncludeObject::kObject;
  return Status(Code::kBadRequest, "includeObject: \"" + value + "\" is not one of None, Metadata, Object");
}

json TableOf(const ResourceInfo& r, const std::vector<const json*>& items, const json& list_meta, IncludeObject inc,
             int64_t now) {
  TableOptions wide;
  wide.wide = true;
  std::vector<std::string> all = TableHeader(r, wide);
  std::vector<std::string> narrow = TableHeader(r, TableOptions());
  std::set<std::string> always(narrow.begin(), narrow.end());
  json cols = json::array();
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& h = all[i];
    // kubectl prints headers upper-cased; Kubernetes names columns "Name", "Age".
    std::string name;
    bool up = true;
    for (char c : h) {
      name += up ? c : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      up = c == ' ';
    }
    bool is_name = h == "NAME" && (i == 0 || r.kind == "Event");
    json col = {{"name", name},
                {"type", "string"},
                {"format", is_name ? "name" : ""},
                {"description", is_name ? "Name must be unique within a namespace." : h + " as `stratusctl get` shows it"},
                {"priority", always.count(h) ? 0 : 1}};
    cols.push_back(std::move(col));
  }
  json rows = json::array();
  for (const json* o : items) {
    json row = {{"cells", TableRow(r, *o, wide, now)}};
    if (inc == IncludeObject::kObject) {
      row["object"] = *o;
    } else if (inc == IncludeObject::kMetadata) {
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", o->contains("metadata") ? (*o)["metadata"] : json::object()}};
    }
    rows.push_back(std::move(row));
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", list_meta.is_object() ? list_meta : json::object()},
          {"columnDefinitions", std::move(cols)},
          {"rows", std::move(rows)}};
}

}  // namespace stratus
