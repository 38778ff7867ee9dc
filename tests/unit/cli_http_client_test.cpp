// The HTTP ApiClient stratusctl uses, against a scripted loopback peer: error mapping, and watch streams
// delivered event by event and stopped on request.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
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
    shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
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

void Send(int fd, const std::string& s) { ASSERT_EQ(write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size())); }

std::string Chunk(const std::string& data) {
  char head[32];
  snprintf(head, sizeof(head), "%zx\r\n", data.size());
  return head + data + "\r\n";
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nothing listens there now
  return ntohs(addr.sin_port);
}

TEST(CliHttpClient, ConnectionRefusedNamesTheServer) {
  std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
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
  std::atomic<int> delivered{0};
  std::atomic<bool> second_sent{false};
  std::string seen;
  ScriptedPeer peer([&](int fd, const std::string& req) {
    seen = req;
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    Send(fd, Chunk(R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})" "\n"));
    // The client must see the first event before the second one exists.
    for (int i = 0; i < 100 && delivered.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    second_sent = true;
    Send(fd, Chunk(R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}})" "\n"));
    // Then stay quiet with the stream open until the client goes away.
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
  });
  auto client = NewHttpApiClient(peer.url(), 5);
  std::atomic<bool> stop{false};
  std::vector<std::string> types;
  bool first_before_second = false;
  ListOptions opts;
  opts.resource_version = "4";
  auto t0 = std::chrono::steady_clock::now();
  std::thread stopper;
  Status s = client->Watch(
      "instances", "default", opts,
      [&](const WatchEvent& ev) {
        if (types.empty()) first_before_second = !second_sent.load();
        types.push_back(ev.type);
        ++delivered;
        if (types.size() == 2) {
          stopper = std::thread([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            stop = true;
          });
        }
        return true;
      },
      &stop);
  auto took = std::chrono::steady_clock::now() - t0;
  if (stopper.joinable()) stopper.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED"}));
  EXPECT_TRUE(first_before_second);
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_EQ(seen.rfind("GET /apis/stratus.io/v1/namespaces/default/instances?watch=1&resourceVersion=4 HTTP/1.1", 0),
            0u)
      << seen;
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
