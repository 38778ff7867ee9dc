// `stratusctl logs`, `restart`, `start`, `stop`: console output and power actions on Instances. Power actions
// are declarative: they change spec (powerState, restartRequestedAt) and the node agent converges.
#include <iostream>
#include <map>

#include "commands.h"
#include "stratus/core/object.h"
#include "targets.h"

namespace stratus::cli {

int RunLogs(Env& env, const LogsOptions& opts) {
  auto names = InstanceNames({opts.target});
  if (!names.ok()) {
    *env.err << "error: " << names.status().message() << "\n";
    return 1;
  }
  std::string path = ResourcePath(*FindByKind("Instance"), env.ns, (*names)[0], "log");
  if (opts.tail_bytes > 0) path += "?tailBytes=" + std::to_string(opts.tail_bytes);
  auto body = env.client->GetRaw(path);
  if (!body.ok()) {
    *env.err << "error: " << body.status().ToString() << "\n";
    return 1;
  }
  *env.out << *body;
  return 0;
}

int RunCordon(Env& env, const CordonOptions& opts) {
  int rc = 0;
  for (std::string name : opts.nodes) {
    if (name.rfind("node/", 0) == 0) name = name.substr(5);
    if (name.rfind("nodes/", 0) == 0) name = name.substr(6);
    auto r = env.client->Patch("nodes", "", name, {{"spec", {{"unschedulable", opts.cordon}}}});
    if (!r.ok()) {
      *env.err << "error: node/" << name << ": " << r.status().ToString() << "\n";
      rc = 1;
      continue;
    }
    *env.out << "node/" << name << (opts.cordon ? " cordoned" : " uncordoned") << "\n";
  }
  return rc;
}

int RunPower(Env& env, const PowerOptions& opts) {
  auto names = InstanceNames(opts.args);
  if (!names.ok()) {
    *env.err << "error: " << names.status().message() << "\n";
    return 1;
  }
  int rc = 0;
  for (const auto& name : *names) {
    json patch;
    std::string done;
    // The verbs that only set spec.powerState, and what they say when done.
    static const std::map<std::string, std::pair<std::string, std::string>> kPowerStates = {
        {"start", {"Running", "started"}},        {"stop", {"Stopped", "stop requested"}},
        {"pause", {"Paused", "pause requested"}}, {"suspend", {"Suspended", "suspend requested"}},
        {"resume", {"Running", "resume requested"}}};
    if (opts.action == "restart") {
      patch = {{"spec", {{"restartRequestedAt", NowRfc3339()}, {"powerState", "Running"}}}};
      done = "restart requested";
    } else if (opts.action == "resize") {
      patch = {{"spec", {{"instanceType", opts.instance_type}}}};
      done = "resized to " + opts.instance_type + " (applies at the next restart when it runs)";
    } else if (auto it = kPowerStates.find(opts.action); it != kPowerStates.end()) {
      patch = {{"spec", {{"powerState", it->second.first}}}};
      done = it->second.second;
    } else {
      *env.err << "error: unknown action " << opts.action << "\n";
      return 1;
    }
    auto r = env.client->Patch("instances", env.ns, name, patch);
    if (!r.ok()) {
      *env.err << "error: instance/" << name << ": " << r.status().ToString() << "\n";
      rc = 1;
      continue;
    }
    *env.out << "instance/" << name << " " << done << "\n";
  }
  return rc;
}

}  // namespace stratus::cli
