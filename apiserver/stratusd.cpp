// stratusd: `stratusd server` runs the API server on its SQLite store (the embedded default).
#include <CLI/CLI.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <iostream>

#include "stratus/apiserver/registry.h"
#include "stratus/apiserver/server.h"
#include "stratus/apiserver/sqlite_store.h"
#include "stratus/core/schema.h"

namespace {

int RunServer(const std::string& listen, const std::string& data_dir, size_t max_body, size_t history,
              bool sync_full) {
  using namespace stratus;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    spdlog::critical("cannot create data dir: path={} error={}", data_dir, ec.message());
    std::cerr << "error: cannot create --data-dir " << data_dir << ": " << ec.message() << "\n";
    return 1;
  }
  // Block termination signals in every thread; the main thread waits for them below.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SqliteStoreOptions so;
  so.path = (std::filesystem::path(data_dir) / "stratus.db").string();
  so.history_window = history;
  so.synchronous_full = sync_full;
  auto store = OpenSqliteStore(so);
  if (!store.ok()) {
    std::cerr << "error: " << store.status().message() << "\n";
    return 1;
  }
  Registry registry(store->get(), &SchemaRegistry::Builtin());
  Status b = registry.Bootstrap();
  if (!b.ok()) {
    std::cerr << "error: bootstrap: " << b.ToString() << "\n";
    return 1;
  }
  registry.StartBackground();
  ApiServerOptions ao;
  ao.listen = listen;
  ao.max_body_bytes = max_body;
  ApiServer server(&registry, ao);
  Status s = server.Start();
  if (!s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  std::cerr << "stratusd: serving on " << server.url() << " (data dir " << data_dir << ")" << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::warn("shutting down: signal={}", sig);
  server.Stop();
  registry.StopBackground();
  store->reset();
  std::cerr << "stratusd: stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stratusd: the Stratus API server and node agent"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  auto* server = app.add_subcommand("server", "run the API server with its store (and, later, an embedded agent)");
  std::string listen = "127.0.0.1:8774";
  std::string data_dir = "/var/lib/stratus";
  size_t max_body = 3 * 1024 * 1024;
  size_t history = 10000;
  bool agent = true;
  bool sync_full = true;
  server->add_option("--listen", listen, "host:port to serve the API on")->capture_default_str();
  server->add_option("--data-dir", data_dir, "directory for the SQLite store")->capture_default_str();
  server->add_option("--max-body-bytes", max_body, "largest accepted request body")->capture_default_str();
  server->add_option("--watch-history", history, "changes kept for watch resume; older versions get 410")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10000000}));
  server->add_option("--agent", agent, "run an embedded node agent")->capture_default_str();
  server->add_option("--fsync", sync_full, "fsync every commit (synchronous=FULL)")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto level = spdlog::level::from_str(log_level);
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (*server) {
    try {
      return RunServer(listen, data_dir, max_body, history, sync_full);
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  return 0;
}
