// The HTTP ApiClient stratusctl uses, against a scripted loopback peer: error mapping, and watch streams
// delivered event by event and stopped on request.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "stratus/core/api_client.h"

namespace stratus {
namespace {

// A one-connection HTTP peer: accepts, reads the request head, then runs `script` with the socket.
class ScriptedPeer {
 public:
  explicit ScriptedPeer(std::function<void(int fd, const std::string& request)> script) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(listen(listen_fd_, 4), 0);
    thread_ = std::thread([this, script] {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      std::string req;
      char buf[4096];
      auto complete = [&req] {
        size_t end = req.find("\r\n\r\n");
        if (end == std::string::npos) return false;
        size_t cl = req.find("Content-Length:");
        if (cl == std::string::npos || cl > end) return true;
        return req.size() >= end + 4 + std::stoul(req.substr(cl + 15));  // stoul skips the optional space
      };
      while (!complete()) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      script(fd, req);
      close(fd);
    });
  }
  ~ScriptedPeer() {
    Join();
    close(listen_fd_);
  }
  // Waits until the script has run (or no connection came).
  void Join() {
    shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// cpprestsdk writes "Name:value" without the optional space.
bool HasHeader(const std::string& req, const std::string& name, const std::string& value) {
  return req.find(name + ": " + value + "\r\n") != std::string::npos ||
         req.find(name + ":" + value + "\r\n") != std::string::npos;
}

// Waits (bounded) for the other end to close the connection, discarding what it sends; false if it stays open.
bool ClosedByOtherEnd(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[256];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    if (read(fd, buf, sizeof(buf)) <= 0) return true;
  }
}

void Send(int fd, const std::string& s) { ASSERT_EQ(write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size())); }

std::string Chunk(const std::string& data) {
  char head[32];
  snprintf(head, sizeof(head), "%zx\r\n", data.size());
  return head + data + "\r\n";
}

// A loopback port bound but never listening, for as long as this object lives: connections to it are refused, and
// no other process can start listening there meanwhile (as one could on a port merely free when picked).
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RefusingPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(CliHttpClient, ConnectionRefusedNamesTheServer) {
  RefusingPort refusing;
  std::string url = "http://127.0.0.1:" + std::to_string(refusing.port());
  auto client = NewHttpApiClient(url, 5);
  auto res = client->Get("instances", "default", "web-1");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kUnavailable);
  EXPECT_NE(res.status().message().find("cannot reach Stratus API server at " + url), std::string::npos)
      << res.status().message();
  EXPECT_NE(res.status().message().find("Connection refused"), std::string::npos) << res.status().message();
}

TEST(CliHttpClient, StatusBodiesBecomeStatusValues) {
  std::string seen;
  ScriptedPeer peer([&](int fd, const std::string& req) {
    seen = req;
    std::string body =
        R"({"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,)"
        R"("message":"instances \"web-1\" not found"})";
    Send(fd, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  });
  auto client = NewHttpApiClient(peer.url(), 5);
  auto res = client->Get("instances", "team-a", "web-1");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kNotFound);
  EXPECT_EQ(res.status().message(), "instances \"web-1\" not found");
  EXPECT_EQ(seen.rfind("GET /apis/stratus.io/v1/namespaces/team-a/instances/web-1 HTTP/1.1", 0), 0u) << seen;
}

TEST(CliHttpClient, ListEncodesSelectors) {
  std::string seen;
  ScriptedPeer peer([&](int fd, const std::string& req) {
    seen = req;
    std::string body = R"({"kind":"NodeList","metadata":{"resourceVersion":"9"},"items":[]})";
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body);
  });
  auto client = NewHttpApiClient(peer.url(), 5);
  ListOptions opts;
  opts.label_selector = "zone in (a,b),!gpu";
  auto res = client->List("nodes", "ignored-for-cluster-kinds", opts);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ((*res)["metadata"]["resourceVersion"], "9");
  EXPECT_EQ(seen.rfind("GET /apis/stratus.io/v1/nodes?labelSelector=zone%20in%20%28a%2Cb%29%2C%21gpu HTTP/1.1", 0),
            0u)
      << seen;
}

TEST(CliHttpClient, PatchSendsMergePatchJson) {
  std::string seen;
  ScriptedPeer peer([&](int fd, const std::string& req) {
    seen = req;
    std::string body = R"({"kind":"Instance","metadata":{"name":"web-1","resourceVersion":"3"}})";
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body);
  });
  auto client = NewHttpApiClient(peer.url(), 5);
  auto res = client->Patch("instances", "default", "web-1", json{{"spec", {{"powerState", "Stopped"}}}}, "status");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(seen.rfind("PATCH /apis/stratus.io/v1/namespaces/default/instances/web-1/status HTTP/1.1", 0), 0u) << seen;
  EXPECT_TRUE(HasHeader(seen, "Content-Type", "application/merge-patch+json")) << seen;
  EXPECT_NE(seen.find(R"({"spec":{"powerState":"Stopped"}})"), std::string::npos) << seen;
}

TEST(CliHttpClient, WatchDeliversEventsAsTheyArriveAndStops) {
  std::mutex mu;
  std::condition_variable cv;
  int delivered = 0;  // guarded by mu
  std::atomic<bool> second_sent{false};
  std::atomic<bool> client_closed{false};
  std::string seen;
  ScriptedPeer peer([&](int fd, const std::string& req) {
    seen = req;
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    Send(fd, Chunk(R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})" "\n"));
    // The client must see the first event before the second one exists (bounded: a client that buffers fails
    // below on first_before_second instead of hanging).
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::seconds(2), [&] { return delivered > 0; });
    }
    second_sent = true;
    Send(fd, Chunk(R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}})" "\n"));
    // Then stay quiet with the stream open: a client that stops must close it, not leave it to the server.
    client_closed = ClosedByOtherEnd(fd);
  });
  auto client = NewHttpApiClient(peer.url(), 5);
  std::atomic<bool> stop{false};
  std::vector<std::string> types;
  bool first_before_second = false;
  ListOptions opts;
  opts.resource_version = "4";
  auto t0 = std::chrono::steady_clock::now();
  Status s = client->Watch(
      "instances", "default", opts,
      [&](const WatchEvent& ev) {
        if (types.empty()) first_before_second = !second_sent.load();
        types.push_back(ev.type);
        {
          std::lock_guard lock(mu);
          ++delivered;
        }
        cv.notify_all();
        // Ask to stop while the stream stays open and quiet: only the stop flag can end this watch now.
        if (types.size() == 2) stop = true;
        return true;
      },
      &stop);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED"}));
  EXPECT_TRUE(first_before_second);
  EXPECT_LT(took, std::chrono::seconds(3));
  peer.Join();
  EXPECT_TRUE(client_closed) << "the stopped watch left its connection open";
  EXPECT_EQ(seen.rfind("GET /apis/stratus.io/v1/namespaces/default/instances?watch=1&resourceVersion=4 HTTP/1.1", 0),
            0u)
      << seen;
}

// A stop asked for while the client waits on a quiet stream ends the watch and closes the connection.
TEST(CliHttpClient, WatchStopsOnAQuietStream) {
  std::mutex mu;
  std::condition_variable cv;
  bool headers_sent = false;  // guarded by mu
  std::atomic<bool> client_closed{false};
  ScriptedPeer peer([&](int fd, const std::string&) {
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    {
      std::lock_guard lock(mu);
      headers_sent = true;
    }
    cv.notify_all();
    client_closed = ClosedByOtherEnd(fd);
  });
  auto client = NewHttpApiClient(peer.url(), 5);
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return headers_sent; });
    stop = true;
  });
  int events = 0;
  auto t0 = std::chrono::steady_clock::now();
  Status s = client->Watch("volumes", "default", {}, [&](const WatchEvent&) { return ++events, true; }, &stop);
  auto took = std::chrono::steady_clock::now() - t0;
  stopper.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(events, 0);
  EXPECT_LT(took, std::chrono::seconds(3));
  peer.Join();
  EXPECT_TRUE(client_closed) << "the stopped watch left its connection open";
}

TEST(CliHttpClient, WatchGoneAndErrorEvents) {
  {
    ScriptedPeer peer([&](int fd, const std::string&) {
      std::string body = R"({"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"})";
      Send(fd, "HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    });
    auto client = NewHttpApiClient(peer.url(), 5);
    Status s = client->Watch("volumes", "default", {}, [](const WatchEvent&) { return true; }, nullptr);
    EXPECT_EQ(s.code(), Code::kGone) << s.ToString();
  }
  {
    ScriptedPeer peer([&](int fd, const std::string&) {
      Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      Send(fd, Chunk(R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"gone"}})"
                     "\n"));
      Send(fd, "0\r\n\r\n");
    });
    auto client = NewHttpApiClient(peer.url(), 5);
    int events = 0;
    Status s = client->Watch("volumes", "default", {}, [&](const WatchEvent&) { return ++events, true; }, nullptr);
    EXPECT_EQ(s.code(), Code::kGone) << s.ToString();
    EXPECT_EQ(events, 0);
  }
  {
    // A stream the server ends normally: Ok, after every event.
    ScriptedPeer peer([&](int fd, const std::string&) {
      Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      Send(fd, Chunk(R"({"type":"DELETED","object":{"metadata":{"name":"x"}}})" "\n"
                     R"({"type":"ADDED","object":{"metadata":{"name":"y"}}})"));
      Send(fd, "0\r\n\r\n");
    });
    auto client = NewHttpApiClient(peer.url(), 5);
    std::vector<std::string> names;
    Status s = client->Watch("volumes", "default", {}, [&](const WatchEvent& ev) {
      names.push_back(ev.object["metadata"]["name"]);
      return true;
    }, nullptr);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(names, (std::vector<std::string>{"x", "y"}));
  }
}

}  // namespace
}  // namespace stratus
