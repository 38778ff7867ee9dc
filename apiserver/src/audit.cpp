#include "stratus/apiserver/audit.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "stratus/core/object.h"

namespace stratus {

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path, uint64_t max_bytes, int max_files) {
  try {
    auto sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(path, max_bytes,
                                                                        static_cast<size_t>(std::max(1, max_files)));
    auto log = std::make_shared<spdlog::logger>("audit", sink);
    log->set_pattern("%v");
    log->set_level(spdlog::level::info);
    log->flush_on(spdlog::level::info);  // each line reaches the file as it is written
    return std::unique_ptr<AuditLog>(new AuditLog(std::move(log)));
  } catch (const std::exception& e) {
    return Status(Code::kInternal, "cannot open the audit log " + path + ": " + e.what());
  }
}

AuditLog::AuditLog(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}
AuditLog::~AuditLog() = default;

void AuditLog::Write(const AuditEvent& e) {
  nlohmann::json j = {{"time", NowRfc3339()}, {"user", e.user},          {"sourceIP", e.source},
                      {"verb", e.verb},       {"resource", e.resource},  {"namespace", e.ns},
                      {"name", e.name},       {"code", e.code}};
  if (!e.subresource.empty()) j["subresource"] = e.subresource;
  log_->info(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace stratus
