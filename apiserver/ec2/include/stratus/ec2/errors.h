// An EC2 API error: EC2's error code (what awscli and boto3 branch on), a message, and the HTTP status that carries
// it (4xx for the caller's mistakes: awscli retries 5xx).
#pragma once

#include <string>

namespace stratus::ec2 {

struct Error {
  std::string code;     // e.g. AuthFailure, SignatureDoesNotMatch, InvalidParameterValue
  std::string message;  // says which parameter and what is wrong with it
  int http = 400;
};

inline Error AuthFailure(std::string m) { return {"AuthFailure", std::move(m), 401}; }
inline Error MissingParameter(const std::string& name) {
  return {"MissingParameter", "The request must contain the parameter " + name, 400};
}
inline Error InvalidParameterValue(std::string m) { return {"InvalidParameterValue", std::move(m), 400}; }

}  // namespace stratus::ec2
