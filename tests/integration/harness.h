// Test harness for integration tests: starts the real `stratusd server` on an ephemeral loopback port with a
// temporary data dir, runs the real `stratusctl`, and speaks raw HTTP to the server. Every process it starts
// it stops by pid.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "../spawn.h"
#include <vector>

#include <cpprest/http_client.h>

#include "stratus/core/status.h"

namespace stratus::testing {

// Bounds on how long something may take, scaled for slow builds: STRATUS_TEST_TIME_SCALE (scripts/test.sh sets it
// for the sanitizer lanes, which run several times slower) multiplies them; 1 otherwise.
inline std::chrono::milliseconds Scaled(std::chrono::milliseconds d) {
  const char* s = std::getenv("STRATUS_TEST_TIME_SCALE");
  double k = s ? std::atof(s) : 1.0;
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(d.count()) * (k >= 1.0 ? k : 1.0)));
}

// The binaries under test and the source tree. The build compiles in their paths relative to the test binary
// (not absolute ones), so the test objects are the same in every checkout and ccache reuses them across clones.
inline std::string NextToTestBinary(const char* relative) {
  static const std::filesystem::path dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  return (dir / relative).lexically_normal().string();
}
inline const std::string& StratusdBin() {
  static const std::string path = NextToTestBinary(STRATUSD_RELPATH);
  return path;
}
inline const std::string& StratusctlBin() {
  static const std::string path = NextToTestBinary(STRATUSCTL_RELPATH);
  return path;
}
inline const std::string& SourceDir() {
  static const std::string path = NextToTestBinary(STRATUS_SOURCE_RELPATH);
  return path;
}

// Polls `pred` every `interval_ms` for up to `seconds`; the last answer decides.
template <typename F>
bool Eventually(F pred, int seconds = 30, int interval_ms = 100) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  return pred();
}

// A TCP port on 127.0.0.1 held for a server a test starts, for as long as this object lives. The kernel picks it
// (bind to port 0) and it stays bound, with SO_REUSEADDR and never listening: no other process's bind or outgoing
// connection can take it, while the server we start (cpprestsdk's listener also sets SO_REUSEADDR) can bind and
// listen on it, and bind it again after a restart. A port that was merely free when picked could be taken under
// `ctest -j` before the server bound it.
class ReservedPort {
 public:
  ReservedPort() = default;
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;
  ReservedPort(ReservedPort&& o) noexcept : fd_(o.fd_), port_(o.port_), error_(std::move(o.error_)) {
    o.fd_ = -1;
    o.port_ = 0;
  }
  ReservedPort& operator=(ReservedPort&& o) noexcept {
    if (this != &o) {
      Release();
      fd_ = o.fd_;
      port_ = o.port_;
      error_ = std::move(o.error_);
      o.fd_ = -1;
      o.port_ = 0;
    }
    return *this;
  }
  ~ReservedPort() { Release(); }

  // Reserves a port; on failure port() is 0 and error() says why.
  static ReservedPort Make() {
    ReservedPort r;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // not inherited by the servers we spawn
    if (fd < 0) {
      r.error_ = std::string("socket: ") + std::strerror(errno);
      return r;
    }
    int one = 1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      r.error_ = std::string("reserving a loopback port: ") + std::strerror(errno);
      ::close(fd);
      return r;
    }
    r.fd_ = fd;
    r.port_ = ntohs(a.sin_port);
    return r;
  }

  int port() const { return port_; }
  const std::string& error() const { return error_; }
  // "127.0.0.1:PORT", for --listen style flags.
  std::string hostport() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void Release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
  int port_ = 0;
  std::string error_;
};

inline ReservedPort ReservePort() { return ReservedPort::Make(); }

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs argv[0] with arguments (no shell), optional stdin text, with a time limit; returns exit code and output.
inline RunResult Run(const std::vector<std::string>& argv, const std::string& stdin_text = "",
                     const std::vector<std::string>& env = {}, int timeout_s = 60) {
  static int counter = 0;
  auto base = std::filesystem::temp_directory_path() /
              ("stratus-run-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::string in = base.string() + ".in", out = base.string() + ".out", err = base.string() + ".err";
  { std::ofstream(in) << stdin_text; }
  pid_t pid = ::fork();
  if (pid == 0) {
    int fi = ::open(in.c_str(), O_RDONLY);
    int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fi, 0);
    ::dup2(fo, 1);
    ::dup2(fe, 2);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  RunResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int st = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &st, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      r.err = "TIMEOUT\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  r.out = ReadFile(out);
  r.err += ReadFile(err);
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// Client settings for the tests' own HTTP calls: no redirects (our servers never send them, and cpprestsdk's
// redirect follower races with its I/O thread over the request's headers; see core/src/api_client.cpp: Config).
inline web::http::client::http_client_config TestHttpConfig(int timeout_s = 30) {
  web::http::client::http_client_config cfg;
  cfg.set_timeout(std::chrono::seconds(timeout_s));
  cfg.set_max_redirects(0);
  return cfg;
}

struct HttpResult {
  int code = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  stratus::json Json() const { return stratus::json::parse(body, nullptr, false); }
};

// One running `stratusd server`.
class ServerProcess {
 public:
  explicit ServerProcess(std::filesystem::path data_dir, std::vector<std::string> extra = {})
      : data_dir_(std::move(data_dir)), extra_(std::move(extra)) {}
  ~ServerProcess() { Kill(SIGKILL); }

  // Starts the server and waits until /healthz answers (or fails the calling test after 20 s).
  bool Start() {
    if (port_.port() == 0) port_ = ReservePort();
    if (port_.port() == 0) {
      std::cerr << "harness: " << port_.error() << std::endl;
      return false;
    }
    std::filesystem::create_directories(data_dir_);
    log_ = (data_dir_ / "stratusd.log").string();
    // STRATUS_TEST_STRATUSD runs another build of the server under the same tests (e.g. to show a test fails
    // on an older one).
    const char* bin = std::getenv("STRATUS_TEST_STRATUSD");
    std::vector<std::string> a = {bin && *bin ? std::string(bin) : StratusdBin(), "server", "--listen", port_.hostport(),
                                  "--data-dir", data_dir_.string()};
    bool agent = false;
    for (const auto& e : extra_) agent |= e == "--agent=true";
    if (!agent) a.push_back("--agent=false");
    // The EC2 endpoint's default port would be shared by every server of a parallel run: off unless asked for.
    bool ec2 = false;
    for (const auto& e : extra_) ec2 |= e.rfind("--ec2-listen", 0) == 0;
    if (!ec2) a.push_back("--ec2-listen=off");
    // Plain http unless the test is about TLS: a --tls-* flag, or "--secure" (the default https, CA made in
    // DATA_DIR/tls; a marker for this harness, not passed on).
    if (!secure()) a.push_back("--insecure-http");
    for (const auto& e : extra_) {
      if (e != "--agent=true" && e != "--secure") a.push_back(e);
    }
    pid_ = SpawnLogged(a, log_);
    auto deadline = std::chrono::steady_clock::now() + Scaled(std::chrono::seconds(20));
    while (std::chrono::steady_clock::now() < deadline) {
      if (Http("GET", "/healthz").code == 200) {
        // The first administrator's token, made at the server's first start (tests act as that admin).
        std::ifstream t(data_dir_ / "admin.token");
        std::getline(t, token_);
        return true;
      }
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = 0;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Sends `sig` to the server (by pid) and reaps it. Returns the exit status word.
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int st = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (::waitpid(pid_, &st, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = 0;
    return st;
  }

  pid_t pid() const { return pid_; }
  // The caller reaped the process itself.
  void Forget() { pid_ = 0; }
  // The server's port: reserved at the first Start and kept across restarts while this object lives.
  std::string url() const { return (secure() ? "https://" : "http://") + port_.hostport(); }
  // Whether the server serves https (see Start); the CA it made for itself then.
  bool secure() const {
    for (const auto& e : extra_) {
      if (e == "--secure" || e.rfind("--tls-", 0) == 0) return true;
    }
    return false;
  }
  std::string ca_file() const { return (data_dir_ / "tls" / "ca.crt").string(); }
  int port() const { return port_.port(); }
  std::string log() const { return ReadFile(log_); }

  // A raw HTTP request as the admin. `content_type` empty sends no Content-Type header.
  HttpResult Http(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& content_type = "application/json", int timeout_s = 30) const {
    return HttpAs(token_, method, path, body, content_type, timeout_s);
  }
  // The same with another bearer token ("" sends none).
  HttpResult HttpAs(const std::string& token, const std::string& method, const std::string& path,
                    const std::string& body = "", const std::string& content_type = "application/json",
                    int timeout_s = 30) const {
    HttpResult r;
    try {
      auto cfg = TestHttpConfig(timeout_s);
      if (secure()) {
        std::string ca = ca_file();
        cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) {
          boost::system::error_code ec;
          ctx.load_verify_file(ca, ec);  // not there yet: the handshake fails and Start() tries again
        });
      }
      web::http::client::http_client c(url(), cfg);
      web::http::http_request req(method);
      req.set_request_uri(path);
      if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
      if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        if (content_type.empty()) {
          req.set_body(std::vector<unsigned char>(body.begin(), body.end()));
          req.headers().remove("Content-Type");
        } else {
          req.set_body(body, content_type);
        }
      }
      auto resp = c.request(req).get();
      r.code = resp.status_code();
      for (const auto& [k, v] : resp.headers()) r.headers[k] = v;
      auto v = resp.extract_vector().get();
      r.body.assign(v.begin(), v.end());
    } catch (const std::exception& e) {
      r.code = 0;
      r.body = e.what();
    }
    return r;
  }

  // Runs stratusctl against this server as the admin.
  RunResult Ctl(std::vector<std::string> args, const std::string& stdin_text = "", int timeout_s = 60) const {
    return CtlAs(token_, std::move(args), stdin_text, timeout_s);
  }
  RunResult CtlAs(const std::string& token, std::vector<std::string> args, const std::string& stdin_text = "",
                  int timeout_s = 60) const {
    args.insert(args.begin(), {StratusctlBin(), "--server", url()});
    if (secure()) args.insert(args.begin() + 3, {"--certificate-authority", ca_file()});
    // HOME without a ~/.stratus/config: a developer's (or root's) client config must not reach the tests.
    return Run(args, stdin_text, {"STRATUS_TOKEN=" + token, "HOME=" + (data_dir_ / "home").string(), "STRATUS_CONFIG="},
               timeout_s);
  }
  // The admin's bearer token, and the files the server keeps its tokens in.
  const std::string& token() const { return token_; }
  std::string admin_token_file() const { return (data_dir_ / "admin.token").string(); }
  std::string bootstrap_token_file() const { return (data_dir_ / "bootstrap.token").string(); }
  // Makes a user with a role in a namespace (and the namespace) and returns a bearer token of that user.
  std::string MakeUser(const std::string& user, const std::string& ns = "", const std::string& role = "") const {
    Http("POST", "/apis/stratus.io/v1/users", stratus::json{{"metadata", {{"name", user}}}}.dump());
    if (!ns.empty()) {
      Http("POST", "/apis/stratus.io/v1/namespaces", stratus::json{{"metadata", {{"name", ns}}}}.dump());
      Http("POST", "/apis/stratus.io/v1/namespaces/" + ns + "/rolebindings",
           stratus::json{{"metadata", {{"name", user + "-" + role}}}, {"spec", {{"user", user}, {"role", role}}}}.dump());
    }
    auto t = Http("POST", "/apis/stratus.io/v1/tokens",
                  stratus::json{{"metadata", {{"generateName", user + "-"}}}, {"spec", {{"user", user}}}}.dump());
    auto j = t.Json();
    if (!j.is_object() || !j.contains("status")) return "";
    return j["status"].value("token", "");
  }

 private:
  std::filesystem::path data_dir_;
  std::vector<std::string> extra_;
  std::string log_;
  pid_t pid_ = 0;
  ReservedPort port_;
  std::string token_;
};

// One running `stratusd agent` on libvirt's test:///default driver, registered as `node` with `server`; its data
// dir is DIR/NODE and its log DIR/NODE.log. SIGKILLed and reaped at scope exit unless the caller reaped it.
class AgentProcess {
 public:
  // Joins `server` with its bootstrap token (the agent keeps the node credential it gets in its data dir);
  // `extra` flags follow (e.g. --certificate-authority for a server on https).
  AgentProcess(const ServerProcess& server, const std::string& node, const std::filesystem::path& dir,
               int heartbeat_seconds = 1, const std::vector<std::string>& extra = {})
      : port_(ReservePort()), log_((dir / (node + ".log")).string()) {
    std::vector<std::string> a = {StratusdBin(), "agent", "--server", server.url(), "--node", node, "--libvirt-uri",
                                  "test:///default", "--agent-listen", port_.hostport(), "--data-dir",
                                  (dir / node).string(), "--reserved-memory-mib", "0", "--heartbeat-seconds",
                                  std::to_string(heartbeat_seconds), "--bootstrap-token-file",
                                  server.bootstrap_token_file()};
    a.insert(a.end(), extra.begin(), extra.end());
    pid_ = SpawnLogged(a, log_);
  }
  ~AgentProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  int port() const { return port_.port(); }
  void Reaped() { pid_ = 0; }
  std::string log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = 0;
  ReservedPort port_;
  std::string log_;
};

// A unique temporary directory removed at scope exit.
// Node `node`'s condition `type` as the server reports it; null when it has none yet.
inline json NodeCondition(const ServerProcess& server, const std::string& node, const std::string& type = "Ready") {
  json n = server.Http("GET", "/apis/stratus.io/v1/nodes/" + node).Json();
  if (!n.contains("status") || !n["status"].is_object() || !n["status"].contains("conditions")) return json();
  for (const auto& c : n["status"]["conditions"]) {
    if (c.value("type", "") == type) return c;
  }
  return json();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/stratus-it-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace stratus::testing
