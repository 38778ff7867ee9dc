// EC2 Query API parameters: the form-encoded body of a POST or the query string of a GET, decoded, with EC2's
// numbered-list conventions (`InstanceId.1`, `Filter.1.Name`, `Filter.1.Value.1`, ...).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stratus/ec2/errors.h"

namespace stratus::ec2 {

// Splits "a=1&b=x%20y+z" into decoded pairs, in order ('+' is a space, as in HTML forms). False with `err` set
// (InvalidParameterValue naming the parameter) on a malformed percent-escape.
bool DecodeForm(const std::string& raw, std::vector<std::pair<std::string, std::string>>* out, Error* err);

struct Filter {
  std::string name;
  std::vector<std::string> values;
};

class Params {
 public:
  Params() = default;
  // Later duplicates of a name replace earlier ones (what EC2 does with a repeated parameter).
  explicit Params(const std::vector<std::pair<std::string, std::string>>& pairs);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  // The members `NAME.1`, `NAME.2`, ... in index order (gaps allowed, as awscli never makes them but SDKs may).
  // InvalidParameterValue for an index that is not a positive decimal number.
  bool List(const std::string& name, std::vector<std::string>* out, Error* err) const;
  // `Filter.N.Name` with its `Filter.N.Value.M`; MissingParameter-like errors name the incomplete filter.
  bool Filters(std::vector<Filter>* out, Error* err) const;
  // `true`/`false` (EC2's booleans); InvalidParameterValue otherwise. Absent: `dflt`.
  bool Bool(const std::string& name, bool dflt, bool* out, Error* err) const;
  // A decimal integer in [lo, hi]; InvalidParameterValue naming the parameter otherwise. Absent: `dflt`.
  bool Int(const std::string& name, long long dflt, long long lo, long long hi, long long* out, Error* err) const;
  const std::map<std::string, std::string>& all() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace stratus::ec2
