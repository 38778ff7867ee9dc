// A real single-member etcd (Debian's etcd-server) for a test: on free loopback ports (picked again when one was
// taken before etcd bound it), its data under `dir`, SIGKILLed and reaped at scope exit. Shared by the Store
// conformance suite (unit) and the several-servers test (integration).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "spawn.h"

namespace stratus::testing {

class EtcdProcess {
 public:
  static constexpr const char* kBinary = "/usr/bin/etcd";

  // Starts etcd and calls `ready(url)` until it answers true (or 20 s pass); tries up to five port pairs.
  bool Start(const std::filesystem::path& dir, const std::function<bool(const std::string&)>& ready) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      int client = FreePort(), peer = FreePort();
      url_ = "http://127.0.0.1:" + std::to_string(client);
      std::string purl = "http://127.0.0.1:" + std::to_string(peer);
      std::filesystem::create_directories(dir);
      pid_ = Spawn({kBinary, "--name", "s", "--data-dir", (dir / ("member" + std::to_string(attempt))).string(),
                    "--listen-client-urls", url_, "--advertise-client-urls", url_, "--listen-peer-urls", purl,
                    "--initial-advertise-peer-urls", purl, "--initial-cluster", "s=" + purl, "--log-level", "error"},
                   (dir / "etcd.log").string());
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (std::chrono::steady_clock::now() < end) {
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) break;  // exited: its port was taken
        if (ready(url_)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      Stop();
    }
    return false;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = 0;
  }
  ~EtcdProcess() { Stop(); }
  const std::string& url() const { return url_; }

  static pid_t Spawn(std::vector<std::string> argv, const std::string& log) {
    return SpawnLogged(std::move(argv), log);
  }

 private:
  static int FreePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
  }
  std::string url_;
  pid_t pid_ = 0;
};

}  // namespace stratus::testing
