// `stratusctl migrate` and `stratusctl drain`: Migration objects (the server and the nodes' agents move the
// instance), followed until they end, with libvirt's progress.
#include <chrono>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "commands.h"
#include "stratus/core/object.h"
#include "targets.h"

namespace stratus::cli {

namespace {

std::string Suffix() {
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::random_device rd;
  std::mt19937 gen(rd());
  std::uniform_int_distribution<int> pick(0, sizeof(kAlphabet) - 2);
  std::string s;
  for (int i = 0; i < 5; ++i) s += kAlphabet[pick(gen)];
  return s;
}

// Creates a Migration of `ns/instance` (to `to`, "" = the scheduler's choice); returns its name.
StatusOr<std::string> CreateMigration(Env& env, const std::string& ns, const std::string& instance, const std::string& to) {
  std::string base = instance.substr(0, 56);
  while (!base.empty() && base.back() == '-') base.pop_back();
  json spec = {{"instance", instance}};
  if (!to.empty()) spec["targetNode"] = to;
  json m = {{"apiVersion", "stratus.io/v1"},
            {"kind", "Migration"},
            {"metadata", {{"name", base + "-" + Suffix()}, {"namespace", ns}}},
            {"spec", spec}};
  auto c = env.client->Create("migrations", ns, m);
  if (!c.ok()) return c.status();
  return MetaString(*c, "name");
}

std::string Mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// One line for a migration's state: "Running 45% (120 MiB of 256 MiB left)".
std::string Describe(const json& m) {
  const json st = m.value("status", json::object());
  std::string phase = st.value("phase", "Pending");
  std::string line = phase;
  const json p = st.value("progress", json::object());
  if (phase == "Running" && p.is_object() && p.contains("percent")) {
    line += " " + std::to_string(p.value("percent", 0)) + "%";
    if (p.value("dataTotalBytes", uint64_t{0}) > 0) {
      line += " (" + Mib(p.value("dataRemainingBytes", uint64_t{0})) + " of " + Mib(p.value("dataTotalBytes", uint64_t{0})) +
              " left)";
    }
  } else if (!st.value("message", "").empty()) {
    line += ": " + st.value("message", "");
  }
  return line;
}

// Follows `names` (ns -> migration names) until each ends or `timeout` passes; prints each change. 0 when all
// succeeded.
int Follow(Env& env, const std::vector<std::pair<std::string, std::string>>& names, std::chrono::milliseconds timeout,
           bool quiet) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::string, std::string> last;
  std::map<std::string, bool> ended;
  int failed = 0;
  while (ended.size() < names.size()) {
    for (const auto& [ns, name] : names) {
      if (ended.count(ns + "/" + name)) continue;
      auto m = env.client->Get("migrations", ns, name);
      if (!m.ok()) {
        *env.err << "error: migration/" << name << ": " << m.status().ToString() << "\n";
        ended[ns + "/" + name] = true;
        ++failed;
        continue;
      }
      std::string line = Describe(*m);
      std::string phase = m->value("status", json::object()).value("phase", "");
      if (line != last[ns + "/" + name] && (!quiet || phase == "Succeeded" || phase == "Failed")) {
        *env.out << "migration/" << name << " (instance/" << (*m)["spec"].value("instance", "") << "): " << line << "\n";
        env.out->flush();
      }
      last[ns + "/" + name] = line;
      if (phase == "Succeeded" || phase == "Failed") {
        ended[ns + "/" + name] = true;
        failed += phase == "Failed";
      }
    }
    if (ended.size() == names.size()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      *env.err << "error: timed out waiting for " << (names.size() - ended.size()) << " migration(s)\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return failed ? 1 : 0;
}

}  // namespace

int RunMigrate(Env& env, const MigrateOptions& opts) {
  auto names = InstanceNames({opts.target});
  if (!names.ok()) {
    *env.err << "error: " << names.status().message() << "\n";
    return 1;
  }
  const std::string inst = (*names)[0];
  auto name = CreateMigration(env, env.ns, inst, opts.to);
  if (!name.ok()) {
    *env.err << "error: instance/" << inst << ": " << name.status().ToString() << "\n";
    return 1;
  }
  *env.out << "migration/" << *name << " created: instance/" << inst
           << (opts.to.empty() ? " to the scheduler's choice" : " to node " + opts.to) << "\n";
  if (!opts.wait) return 0;
  return Follow(env, {{env.ns, *name}}, opts.timeout, opts.quiet);
}

int RunDrain(Env& env, const DrainOptions& opts) {
  std::string node = opts.node;
  if (node.rfind("node/", 0) == 0) node = node.substr(5);
  auto c = env.client->Patch("nodes", "", node, {{"spec", {{"unschedulable", true}}}});
  if (!c.ok()) {
    *env.err << "error: node/" << node << ": " << c.status().ToString() << "\n";
    return 1;
  }
  *env.out << "node/" << node << " cordoned\n";
  ListOptions lo;
  lo.field_selector = "spec.nodeName=" + node;
  auto list = env.client->List("instances", "", lo);
  if (!list.ok()) {
    *env.err << "error: listing the instances on node/" << node << ": " << list.status().ToString() << "\n";
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> migrations;
  int rc = 0;
  for (const auto& i : list->value("items", json::array())) {
    std::string ns = MetaString(i, "namespace"), inst = MetaString(i, "name");
    if (!MetaString(i, "deletionTimestamp").empty()) continue;
    auto name = CreateMigration(env, ns, inst, "");
    if (!name.ok()) {
      *env.err << "error: instance/" << inst << " (namespace " << ns << "): " << name.status().ToString() << "\n";
      rc = 1;
      continue;
    }
    *env.out << "migration/" << *name << " created: instance/" << inst << " (namespace " << ns << ")\n";
    migrations.emplace_back(ns, *name);
  }
  if (migrations.empty()) {
    *env.out << "node/" << node << " has no instances\n";
    return rc;
  }
  int f = Follow(env, migrations, opts.timeout, opts.quiet);
  if (f == 0 && rc == 0) *env.out << "node/" << node << " drained\n";
  return f ? f : rc;
}

}  // namespace stratus::cli
