#include "stratus/apiserver/console.h"

#include <cpprest/http_client.h>

#include "stratus/core/resources.h"

namespace stratus {

StatusOr<std::string> AgentUrlOfInstance(Registry& registry, const std::string& ns, const std::string& name) {
  auto inst = registry.Get(*FindByKind("Instance"), ns, name);
  if (!inst.ok()) return inst.status();
  std::string node = (*inst)["spec"].value("nodeName", "");
  if (node.empty()) return BadRequest("instance \"" + name + "\" is not scheduled to a node yet; no console log");
  auto n = registry.Get(*FindByKind("Node"), "", node);
  if (!n.ok()) return NotFound("node \"" + node + "\" of instance \"" + name + "\" not found");
  if ((*n).contains("status") && (*n)["status"].contains("addresses") && (*n)["status"]["addresses"].is_array()) {
    for (const auto& a : (*n)["status"]["addresses"]) {
      if (a.value("type", "") == "AgentURL" && !a.value("address", "").empty()) return a.value("address", "");
    }
  }
  return Status(Code::kUnavailable, "node \"" + node + "\" reports no agent address");
}

StatusOr<std::string> ReadConsoleLog(Registry& registry, const std::string& ns, const std::string& name,
                                     size_t tail_bytes, int timeout_seconds) {
  auto agent = AgentUrlOfInstance(registry, ns, name);
  if (!agent.ok()) return agent.status();
  try {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(timeout_seconds));
    cfg.set_max_redirects(0);
    web::http::client::http_client client(*agent, cfg);
    web::uri_builder b;
    b.append_path("logs");
    b.append_path(ns, true);
    b.append_path(name, true);
    b.append_query("tailBytes", std::to_string(tail_bytes));
    auto resp = client.request(web::http::methods::GET, b.to_string()).get();
    auto body = resp.extract_vector().get();
    std::string text(body.begin(), body.end());
    if (resp.status_code() != 200) return Status::FromHttp(resp.status_code(), text);
    return text;
  } catch (const std::exception& e) {
    return Status(Code::kUnavailable, "cannot reach the agent at " + *agent + ": " + e.what());
  }
}

}  // namespace stratus
