// The audit log: one JSON line per mutating request and per denial (who, from where, what, the result), in
// DATA_DIR/audit.log, rotated by size. Never holds a token, a secret or a request body.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "stratus/core/status.h"

namespace spdlog {
class logger;
}

namespace stratus {

struct AuditEvent {
  std::string user;       // "" when the caller was not authenticated
  std::string source;     // the client's address
  std::string verb;       // get list watch create update patch delete
  std::string resource;   // plural, or a path for non-resource requests
  std::string subresource;
  std::string ns;
  std::string name;
  int code = 0;           // the HTTP status answered
};

class AuditLog {
 public:
  // Opens (appends to) `path`; when it passes `max_bytes` it becomes path.1 (path.1 becomes path.2, and so on up
  // to `max_files` old files).
  static StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path, uint64_t max_bytes, int max_files);
  ~AuditLog();
  void Write(const AuditEvent& e);

 private:
  explicit AuditLog(std::shared_ptr<spdlog::logger> log);
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace stratus
