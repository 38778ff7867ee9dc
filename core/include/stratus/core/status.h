// Explicit error values used at every module boundary, shaped after Kubernetes' metav1.Status so that an
// error can travel over HTTP and back without losing its reason, code or field causes.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace stratus {

using json = nlohmann::json;

enum class Code {
  kOk,
  kBadRequest,            // 400 malformed input (bad YAML/JSON, bad selector)
  kUnauthorized,          // 401
  kForbidden,             // 403
  kNotFound,              // 404
  kMethodNotAllowed,      // 405
  kNotAcceptable,         // 406
  kAlreadyExists,         // 409 reason AlreadyExists
  kConflict,              // 409 reason Conflict (stale resourceVersion)
  kGone,                  // 410 resourceVersion too old
  kRequestEntityTooLarge, // 413
  kUnsupportedMediaType,  // 415
  kInvalid,               // 422 schema/semantic validation failed
  kTooManyRequests,       // 429
  kInternal,              // 500
  kUnavailable,           // 503
  kTimeout,               // 504
};

// One field-level problem: `field` is a dotted path such as `spec.resources.memoryMiB`.
struct FieldCause {
  std::string field;
  std::string message;
  std::string reason = "FieldValueInvalid";
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message, std::vector<FieldCause> causes = {})
      : code_(code), message_(std::move(message)), causes_(std::move(causes)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::vector<FieldCause>& causes() const { return causes_; }

  // HTTP status code for this error (200 when ok).
  int http_code() const;
  // Kubernetes `reason` string (NotFound, AlreadyExists, Conflict, Invalid, Expired, ...), or the one set.
  std::string reason() const;
  // A more specific reason than the code's (e.g. QuotaExceeded for a 403).
  void set_reason(std::string reason) { reason_ = std::move(reason); }
  // A `kind: Status` object as the API server returns it.
  json ToJson() const;
  // Parses a `kind: Status` body (or falls back to `http_code` + raw text when it is not one).
  static Status FromHttp(int http_code, const std::string& body);
  static Code CodeFromHttp(int http_code, const std::string& reason);

  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::vector<FieldCause> causes_;
  std::string reason_;
};

// Either a value or an error Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {}      // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

inline Status InvalidError(std::string message, std::vector<FieldCause> causes = {}) {
  return Status(Code::kInvalid, std::move(message), std::move(causes));
}
inline Status BadRequest(std::string message) { return Status(Code::kBadRequest, std::move(message)); }
inline Status NotFound(std::string message) { return Status(Code::kNotFound, std::move(message)); }
inline Status Internal(std::string message) { return Status(Code::kInternal, std::move(message)); }

}  // namespace stratus
