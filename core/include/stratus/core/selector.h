// Kubernetes label and field selectors.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

// A label selector: comma-separated requirements, all of which must match:
//   key=value, key==value, key!=value, key in (a,b), key notin (a,b), key, !key
// Keys may carry a DNS-subdomain prefix (`stratus.io/zone`). Values are label values (<=63 chars,
// alphanumerics, '-', '_', '.'). An empty selector matches everything.
class LabelSelector {
 public:
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  struct Requirement {
    std::string key;
    Op op;
    std::set<std::string> values;
  };

  // Parses `text`; kBadRequest naming the offending requirement when malformed.
  static StatusOr<LabelSelector> Parse(const std::string& text);
  // True when every requirement holds for `labels` (a JSON object of string->string, or null/absent).
  bool Matches(const json& labels) const;
  bool empty() const { return reqs_.empty(); }
  const std::vector<Requirement>& requirements() const { return reqs_; }

 private:
  std::vector<Requirement> reqs_;
};

// A field selector. Supported fields: metadata.name, metadata.namespace (and for Events:
// involvedObject.kind, involvedObject.name, involvedObject.namespace, involvedObject.uid; for Instances:
// spec.nodeName). Operators =, ==, !=.
class FieldSelector {
 public:
  struct Requirement {
    std::string field;
    bool negate;
    std::string value;
  };
  static StatusOr<FieldSelector> Parse(const std::string& text);
  // True when every requirement holds for the whole object `obj`.
  bool Matches(const json& obj) const;
  bool empty() const { return reqs_.empty(); }
  // When the selector pins metadata.name to one value, returns it (lets stores look up directly).
  std::string ExactName() const;
  const std::vector<Requirement>& requirements() const { return reqs_; }

 private:
  std::vector<Requirement> reqs_;
};

// Validates a label map (metadata.labels): keys `[prefix/]name`, values label values. Causes name
// `field_prefix.key`.
Status ValidateLabels(const json& labels, const std::string& field_prefix);

}  // namespace stratus
