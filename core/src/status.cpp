#include "stratus/core/status.h"

namespace stratus {

int Status::http_code() const {
  switch (code_) {
    case Code::kOk: return 200;
    case Code::kBadRequest: return 400;
    case Code::kUnauthorized: return 401;
    case Code::kForbidden: return 403;
    case Code::kNotFound: return 404;
    case Code::kMethodNotAllowed: return 405;
    case Code::kNotAcceptable: return 406;
    case Code::kAlreadyExists: return 409;
    case Code::kConflict: return 409;
    case Code::kGone: return 410;
    case Code::kRequestEntityTooLarge: return 413;
    case Code::kUnsupportedMediaType: return 415;
    case Code::kInvalid: return 422;
    case Code::kTooManyRequests: return 429;
    case Code::kInternal: return 500;
    case Code::kUnavailable: return 503;
    case Code::kTimeout: return 504;
  }
  return 500;
}

std::string Status::reason() const {
  if (!reason_.empty() && code_ != Code::kOk) return reason_;
  switch (code_) {
    case Code::kOk: return "";
    case Code::kBadRequest: return "BadRequest";
    case Code::kUnauthorized: return "Unauthorized";
    case Code::kForbidden: return "Forbidden";
    case Code::kNotFound: return "NotFound";
    case Code::kMethodNotAllowed: return "MethodNotAllowed";
    case Code::kNotAcceptable: return "NotAcceptable";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kConflict: return "Conflict";
    case Code::kGone: return "Expired";
    case Code::kRequestEntityTooLarge: return "RequestEntityTooLarge";
    case Code::kUnsupportedMediaType: return "UnsupportedMediaType";
    case Code::kInvalid: return "Invalid";
    case Code::kTooManyRequests: return "TooManyRequests";
    case Code::kInternal: return "InternalError";
    case Code::kUnavailable: return "ServiceUnavailable";
    case Code::kTimeout: return "Timeout";
  }
  return "Unknown";
}

Code Status::CodeFromHttp(int http, const std::string& reason) {
  if (http < 400) return Code::kOk;
  switch (http) {
    case 400: return Code::kBadRequest;
    case 401: return Code::kUnauthorized;
    case 403: return Code::kForbidden;
    case 404: return Code::kNotFound;
    case 405: return Code::kMethodNotAllowed;
    case 406: return Code::kNotAcceptable;
    case 409: return reason == "AlreadyExists" ? Code::kAlreadyExists : Code::kConflict;
    case 410: return Code::kGone;
    case 413: return Code::kRequestEntityTooLarge;
    case 415: return Code::kUnsupportedMediaType;
    case 422: return Code::kInvalid;
    case 429: return Code::kTooManyRequests;
    case 503: return Code::kUnavailable;
    case 504: return Code::kTimeout;
    default: return Code::kInternal;
  }
}

json Status::ToJson() const {
  json j = {{"apiVersion", "v1"},
            {"kind", "Status"},
            {"metadata", json::object()},
            {"status", ok() ? "Success" : "Failure"},
            {"message", message_},
            {"reason", reason()},
            {"code", http_code()}};
  if (!causes_.empty()) {
    json causes = json::array();
    for (const auto& c : causes_) {
      causes.push_back({{"field", c.field}, {"message", c.message}, {"reason", c.reason}});
    }
    j["details"] = {{"causes", causes}};
  }
  return j;
}

Status Status::FromHttp(int http, const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("kind", "") == "Status") {
    std::vector<FieldCause> causes;
    if (j.contains("details") && j["details"].is_object() && j["details"].contains("causes") &&
        j["details"]["causes"].is_array()) {
      for (const auto& c : j["details"]["causes"]) {
        if (!c.is_object()) continue;
        causes.push_back({c.value("field", ""), c.value("message", ""), c.value("reason", "")});
      }
    }
    std::string reason = j.value("reason", "");
    Status s(CodeFromHttp(http, reason), j.value("message", ""), std::move(causes));
    if (!reason.empty() && reason != s.reason()) s.set_reason(reason);
    return s;
  }
  std::string text = body.size() > 500 ? body.substr(0, 500) + "..." : body;
  return Status(CodeFromHttp(http, ""), "HTTP " + std::to_string(http) + ": " + text);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = reason() + ": " + message_;
  for (const auto& c : causes_) {
    // Messages already naming the field are printed once.
    if (message_.find(c.field + ": " + c.message) == std::string::npos) s += "\n  " + c.field + ": " + c.message;
  }
  return s;
}

}  // namespace stratus
