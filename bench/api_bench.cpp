// api_bench: load generator for the Stratus API server, with the same client load against etcd's HTTP/JSON
// gateway for comparison.
//
// Every client is one thread with one persistent HTTP/1.1 keep-alive connection, spoken over a plain blocking
// socket (TCP_NODELAY): the client costs a few microseconds of CPU per request, so on a small machine the numbers
// describe the server. Phases, for each concurrency level (default 1, 8 and 32 clients) and each target:
//
//   create  durable creates for --duration seconds (stratus: POST a KeyPair -> 201; etcd: /v3/kv/put of a value the
//           size of the object stratus stored). Both servers acknowledge only after fsync.
//   get     GETs of random objects made by the create phase (stratus: GET .../keypairs/NAME; etcd: /v3/kv/range).
//   list    listing exactly --list-n objects (stratus: GET .../volumes with --list-n Volumes preloaded; etcd: range
//           over a prefix holding --list-n keys).
//   watch   one watch open (stratus: ?watch=1&resourceVersion=N; etcd: /v3/watch), one client creating
//           --watch-events objects one after another (2 ms apart). Reported: the time the event is read from the
//           watch stream minus the time the create's response (201 / put reply) was read -- negative when the server
//           published the event before the response reached the client, as both servers do -- and the time from
//           sending the create request to reading its event.
//
// Usage: api_bench [--stratus URL] [--etcd URL] [--duration S] [--clients 1,8,32] [--list-n 1000]
//                  [--watch-events 200] [--json FILE]
// Prints a markdown table to stdout; --json also writes every number as JSON.

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/bench_common.h"

using json = nlohmann::json;
using namespace bench;  // Clock, MsSince, Response, ResponseParser, /proc readings, Fmt

namespace {

// ------------------------------------------------------------------------------------------------------------------
// base64 (etcd's gateway carries keys and values as base64 strings)

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string B64Encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string B64Decode(const std::string& in) {
  int map[256];
  std::fill(std::begin(map), std::end(map), -1);
  for (int i = 0; i < 64; ++i) map[uint8_t(kB64[i])] = i;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = map[uint8_t(c)];
    if (v < 0) continue;  // '=' and anything else
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

// The key one past every key with this prefix (etcd's range_end for a prefix).
std::string PrefixEnd(std::string p) {
  while (!p.empty()) {
    if (uint8_t(p.back()) < 0xff) {
      p.back() = char(uint8_t(p.back()) + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');
}

// ------------------------------------------------------------------------------------------------------------------
// A minimal blocking HTTP/1.1 client: one keep-alive connection, Content-Length and chunked bodies.

struct Url {
  std::string host;
  int port = 80;
  std::string base;  // path prefix, normally empty
  std::string auth;  // an "Authorization: ...\r\n" header line sent with every request, or empty
};

Url ParseUrl(const std::string& u) {
  std::string s = u;
  const std::string scheme = "http://";
  if (s.compare(0, scheme.size(), scheme) == 0) s = s.substr(scheme.size());
  Url out;
  auto slash = s.find('/');
  std::string hostport = s.substr(0, slash);
  if (slash != std::string::npos) out.base = s.substr(slash);
  while (!out.base.empty() && out.base.back() == '/') out.base.pop_back();
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    out.host = hostport;
  } else {
    out.host = hostport.substr(0, colon);
    out.port = std::stoi(hostport.substr(colon + 1));
  }
  return out;
}

// A request that got no answer within the connection's timeout: the server is stuck, not merely slow.
struct TimeoutError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Req {
  std::string method, path, body;
};

std::string FormatRequest(const Url& url, const std::string& method, const std::string& path, const std::string& body,
                          const std::string& content_type = "application/json") {
  std::string req;
  req.reserve(256 + body.size());
  req += method;
  req += ' ';
  req += url.base;
  req += path;
  req += " HTTP/1.1\r\nHost: ";
  req += url.host;
  req += ':';
  req += std::to_string(url.port);
  req += "\r\nAccept: application/json\r\nConnection: keep-alive\r\n";
  req += url.auth;
  if (!body.empty() || method == "POST" || method == "PUT") {
    req += "Content-Type: ";
    req += content_type;
    req += "\r\nContent-Length: ";
    req += std::to_string(body.size());
    req += "\r\n";
  }
  req += "\r\n";
  req += body;
  return req;
}

class Conn {
 public:
  explicit Conn(Url url, int timeout_ms = 30000) : url_(std::move(url)), timeout_ms_(timeout_ms) {}
  ~Conn() { Close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    rbuf_.clear();
    rpos_ = 0;
  }

  // Hands the connected socket over to the caller (the event-loop driver).
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

  void Connect() {
    Close();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(url_.host.c_str(), std::to_string(url_.port).c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("resolve " + url_.host + ": " + gai_strerror(rc));
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
      ::close(fd);
      fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) throw std::runtime_error("connect " + url_.host + ":" + std::to_string(url_.port) + ": " + strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fd_ = fd;
  }

  // One request/response on the kept-alive connection; reconnects once if the server had closed it.
  Response Do(const std::string& method, const std::string& path, const std::string& body,
              const std::string& content_type = "application/json") {
    for (int attempt = 0;; ++attempt) {
      try {
        if (fd_ < 0) Connect();
        SendRequest(method, path, body, content_type);
        Response r;
        bool chunked = false;
        long long len = -1;
        bool close_after = false;
        ReadHead(&r.code, &chunked, &len, &close_after);
        if (chunked) {
          std::string chunk;
          while (ReadChunk(&chunk, -1)) r.body += chunk;
        } else if (len >= 0) {
          r.body = ReadExact(size_t(len));
        } else {
          // No length: body runs to the end of the connection.
          r.body = ReadToEof();
          close_after = true;
        }
        if (close_after) Close();
        return r;
      } catch (const TimeoutError&) {
        Close();
        throw;  // not retried: the server had the request and did not answer
      } catch (const std::exception&) {
        Close();
        if (attempt >= 1) throw;
      }
    }
  }

  // Starts a streaming request: sends it and reads the response head. The body is then read with NextLine.
  int OpenStream(const std::string& method, const std::string& path, const std::string& body) {
    Connect();
    SendRequest(method, path, body, "application/json");
    int code = 0;
    long long len = -1;
    bool close_after = false;
    ReadHead(&code, &stream_chunked_, &len, &close_after);
    stream_left_ = len;
    line_buf_.clear();
    return code;
  }

  // Next newline-terminated line of a streaming body. Returns false on timeout (wait_ms) or end of stream.
  bool NextLine(std::string* line, int wait_ms, bool* eof) {
    *eof = false;
    auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
    while (true) {
      auto nl = line_buf_.find('\n');
      if (nl != std::string::npos) {
        *line = line_buf_.substr(0, nl);
        line_buf_.erase(0, nl + 1);
        return true;
      }
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return false;
      if (stream_chunked_) {
        std::string chunk;
        if (!Buffered() && !WaitReadable(left)) return false;
        if (!ReadChunk(&chunk, left)) {
          *eof = true;
          return false;
        }
        line_buf_ += chunk;
      } else {
        if (!Buffered() && !WaitReadable(left)) return false;
        if (!Fill(false)) {
          *eof = true;
          return false;
        }
        line_buf_.append(rbuf_, rpos_, std::string::npos);
        rbuf_.clear();
        rpos_ = 0;
      }
    }
  }

 private:
  void SendRequest(const std::string& method, const std::string& path, const std::string& body,
                   const std::string& content_type) {
    std::string req = FormatRequest(url_, method, path, body, content_type);
    size_t off = 0;
    while (off < req.size()) {
      ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) throw TimeoutError("send timed out after " + std::to_string(timeout_ms_) + " ms");
        throw std::runtime_error(std::string("send: ") + strerror(errno));
      }
      off += size_t(n);
    }
  }

  size_t Buffered() const { return rbuf_.size() - rpos_; }

  bool WaitReadable(int ms) {
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, ms);
    return rc > 0;
  }

  // Reads more bytes into rbuf_. Returns false at end of stream (throws on errors when must is true).
  bool Fill(bool must) {
    if (rpos_ > 0 && rpos_ == rbuf_.size()) {
      rbuf_.clear();
      rpos_ = 0;
    } else if (rpos_ > 65536) {
      rbuf_.erase(0, rpos_);
      rpos_ = 0;
    }
    char tmp[65536];
    while (true) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n > 0) {
        rbuf_.append(tmp, size_t(n));
        return true;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        throw TimeoutError("no response within " + std::to_string(timeout_ms_) + " ms");
      }
      if (must) throw std::runtime_error(n == 0 ? "connection closed by server" : std::string("recv: ") + strerror(errno));
      return false;
    }
  }

  std::string ReadLineCRLF() {
    while (true) {
      auto p = rbuf_.find("\r\n", rpos_);
      if (p != std::string::npos) {
        std::string line = rbuf_.substr(rpos_, p - rpos_);
        rpos_ = p + 2;
        return line;
      }
      Fill(true);
    }
  }

  std::string ReadExact(size_t n) {
    while (Buffered() < n) Fill(true);
    std::string out = rbuf_.substr(rpos_, n);
    rpos_ += n;
    return out;
  }

  std::string ReadToEof() {
    while (Fill(false)) {
    }
    std::string out = rbuf_.substr(rpos_);
    rpos_ = rbuf_.size();
    return out;
  }

  void ReadHead(int* code, bool* chunked, long long* len, bool* close_after) {
    std::string status = ReadLineCRLF();
    // "HTTP/1.1 201 Created"
    auto sp = status.find(' ');
    if (status.compare(0, 5, "HTTP/") != 0 || sp == std::string::npos) throw std::runtime_error("bad status line: " + status);
    *code = std::atoi(status.c_str() + sp + 1);
    *chunked = false;
    *len = -1;
    *close_after = false;
    while (true) {
      std::string h = ReadLineCRLF();
      if (h.empty()) break;
      auto colon = h.find(':');
      if (colon == std::string::npos) continue;
      std::string name = h.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      std::string lv = value;
      std::transform(lv.begin(), lv.end(), lv.begin(), [](unsigned char c) { return std::tolower(c); });
      if (name == "content-length") *len = std::atoll(value.c_str());
      if (name == "transfer-encoding" && lv.find("chunked") != std::string::npos) *chunked = true;
      if (name == "connection" && lv.find("close") != std::string::npos) *close_after = true;
    }
    if (*code == 204 || *code == 304) *len = 0;
  }

  // Reads one chunk of a chunked body into *out. Returns false on the terminating zero chunk.
  bool ReadChunk(std::string* out, int /*wait_ms*/) {
    std::string size_line = ReadLineCRLF();
    size_t n = std::strtoul(size_line.c_str(), nullptr, 16);
    if (n == 0) {
      // Trailers, then the empty line.
      while (!ReadLineCRLF().empty()) {
      }
      return false;
    }
    *out = ReadExact(n);
    ReadLineCRLF();
    return true;
  }

  Url url_;
  int timeout_ms_;
  int fd_ = -1;
  std::string rbuf_;
  size_t rpos_ = 0;
  // streaming state
  bool stream_chunked_ = false;
  long long stream_left_ = -1;
  std::string line_buf_;
};

// ------------------------------------------------------------------------------------------------------------------
// Statistics

struct Stats {
  uint64_t ok = 0, errors = 0, timeouts = 0;
  double seconds = 0;
  std::vector<double> lat_ms;
  std::vector<double> start_ms;  // when each request of lat_ms was sent, from the phase start (for --trace)
  std::string first_error;
  double server_cpu_s = -1;  // CPU time the server process used during the phase (-1: unknown)
  double client_cpu_s = -1;  // and this load generator
  double server_ctx_switches = -1;  // context switches of the server's threads during the phase

  double ServerUsPerOp() const { return ok && server_cpu_s >= 0 ? server_cpu_s * 1e6 / double(ok) : 0; }
  double ServerSwitchesPerOp() const { return ok && server_ctx_switches >= 0 ? server_ctx_switches / double(ok) : 0; }
  double ClientUsPerOp() const { return ok && client_cpu_s >= 0 ? client_cpu_s * 1e6 / double(ok) : 0; }

  double Rate() const { return seconds > 0 ? double(ok) / seconds : 0; }
  double Pct(double p) const {
    if (lat_ms.empty()) return 0;
    std::vector<double> v = lat_ms;
    size_t idx = std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(idx), v.end());
    return v[idx];
  }
  json ToJson() const {
    return {{"ok", ok}, {"errors", errors}, {"seconds", seconds}, {"per_second", Rate()},
            {"server_cpu_us_per_op", ServerUsPerOp()}, {"client_cpu_us_per_op", ClientUsPerOp()},
            {"server_context_switches_per_op", ServerSwitchesPerOp()},
            {"p50_ms", Pct(50)}, {"p99_ms", Pct(99)}, {"max_ms", lat_ms.empty() ? 0.0 : *std::max_element(lat_ms.begin(), lat_ms.end())}};
  }
};

// Runs `clients` threads, each with its own connection, calling op(conn, thread, i) until the deadline (or until
// `count` operations in all when count > 0). op returns "" on success or an error text.
template <typename Op>
Stats RunClients(const Url& url, int clients, double duration_s, uint64_t count, Op op) {
  std::vector<Stats> per(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable cv;
  int ready = 0;
  bool go = false;
  std::atomic<uint64_t> issued{0};
  Clock::time_point start, deadline;
  std::vector<Clock::time_point> ends(static_cast<size_t>(clients));
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(url);
      Stats& st = per[size_t(t)];
      try {
        conn.Connect();
      } catch (const std::exception& e) {
        st.errors++;
        st.first_error = e.what();
      }
      {
        std::unique_lock lock(mu);
        ++ready;
        cv.notify_all();
        cv.wait(lock, [&] { return go; });
      }
      uint64_t i = 0;
      while (true) {
        if (count > 0) {
          if (issued.fetch_add(1) >= count) break;
        } else if (Clock::now() >= deadline) {
          break;
        }
        auto t0 = Clock::now();
        std::string err;
        try {
          err = op(conn, t, i);
        } catch (const TimeoutError& e) {
          // The server stopped answering: this client gives up, the phase reports it.
          if (st.first_error.empty()) st.first_error = e.what();
          st.errors++;
          st.timeouts++;
          break;
        } catch (const std::exception& e) {
          err = e.what();
        }
        auto t1 = Clock::now();
        if (err.empty()) {
          st.ok++;
          st.lat_ms.push_back(MsSince(t0, t1));
          st.start_ms.push_back(MsSince(start, t0));
        } else {
          if (st.first_error.empty()) st.first_error = err;
          st.errors++;
        }
        ++i;
      }
      ends[size_t(t)] = Clock::now();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return ready == clients; });
    start = Clock::now();
    deadline = start + std::chrono::microseconds(int64_t(duration_s * 1e6));
    go = true;
  }
  cv.notify_all();
  for (auto& th : threads) th.join();
  Stats all;
  Clock::time_point last = start;
  for (int t = 0; t < clients; ++t) {
    const Stats& s = per[size_t(t)];
    all.ok += s.ok;
    all.errors += s.errors;
    all.timeouts += s.timeouts;
    all.lat_ms.insert(all.lat_ms.end(), s.lat_ms.begin(), s.lat_ms.end());
    all.start_ms.insert(all.start_ms.end(), s.start_ms.begin(), s.start_ms.end());
    if (all.first_error.empty()) all.first_error = s.first_error;
    last = std::max(last, ends[size_t(t)]);
  }
  all.seconds = std::chrono::duration<double>(last - start).count();
  return all;
}

// Context switches (voluntary + involuntary) of all threads of a process so far, or -1.
double ProcContextSwitches(int pid) {
  if (pid <= 0) return -1;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  double total = 0;
  bool any = false;
  // Threads come and go; count those alive now (exited ones are few in these servers).
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name + "/status");
      std::string line;
      while (std::getline(f, line)) {
        if (line.find("ctxt_switches:") != std::string::npos) {
          total += std::stod(line.substr(line.find(':') + 1));
          any = true;
        }
      }
    }
    closedir(d);
  }
  return any ? total : -1;
}

// Runs a phase and records the CPU the server (pid) and this process spent on it.
template <typename F>
Stats WithCpu(int pid, F run) {
  double x0 = ProcContextSwitches(pid);
  double s0 = ProcCpuSeconds(pid), c0 = SelfCpuSeconds();
  Stats st = run();
  double s1 = ProcCpuSeconds(pid), c1 = SelfCpuSeconds();
  double x1 = ProcContextSwitches(pid);
  if (s0 >= 0 && s1 >= 0) st.server_cpu_s = s1 - s0;
  if (x0 >= 0 && x1 >= 0) st.server_ctx_switches = x1 - x0;
  st.client_cpu_s = c1 - c0;
  return st;
}

// The same closed-loop load from one thread: `clients` connections, each with one request outstanding at a time,
// multiplexed with epoll. The server sees exactly what RunClients makes it see (N connections, each sending its next
// request as soon as the previous answer arrived), but the client side is one thread instead of N, so on a small
// machine the latencies carry less of the load generator's own scheduling delay.
using MakeFn = std::function<Req(int conn, uint64_t i)>;
using CheckFn = std::function<std::string(int conn, uint64_t i, const Response&)>;

Stats RunClientsEpoll(const Url& url, int clients, double duration_s, uint64_t count, const MakeFn& make,
                      const CheckFn& check, int timeout_ms = 30000) {
  struct AC {
    int fd = -1;
    ResponseParser parser;
    std::string out;
    size_t off = 0;
    Clock::time_point t0;
    uint64_t i = 0;
    bool busy = false;
    bool retried = false;
    bool want_out = false;
  };
  std::vector<AC> conns(static_cast<size_t>(clients));
  Stats st;
  int ep = epoll_create1(0);
  if (ep < 0) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
  auto set_events = [&](int idx, bool add, bool out) {
    epoll_event ev{};
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
    ev.data.u32 = uint32_t(idx);
    epoll_ctl(ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, conns[size_t(idx)].fd, &ev);
    conns[size_t(idx)].want_out = out;
  };
  auto connect = [&](int idx) {
    AC& a = conns[size_t(idx)];
    if (a.fd >= 0) {
      epoll_ctl(ep, EPOLL_CTL_DEL, a.fd, nullptr);
      ::close(a.fd);
    }
    Conn c(url, timeout_ms);
    c.Connect();
    a.fd = c.Release();
    fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) | O_NONBLOCK);
    set_events(idx, true, false);
  };
  auto note_error = [&](const std::string& e) {
    if (st.first_error.empty()) st.first_error = e;
    st.errors++;
  };
  // Writes what is left of the request; asks for EPOLLOUT when the socket is full.
  auto flush = [&](int idx) {
    AC& a = conns[size_t(idx)];
    while (a.off < a.out.size()) {
      ssize_t n = ::send(a.fd, a.out.data() + a.off, a.out.size() - a.off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (!a.want_out) set_events(idx, false, true);
          return true;
        }
        return false;
      }
      a.off += size_t(n);
    }
    if (a.want_out) set_events(idx, false, false);
    return true;
  };
  uint64_t issued = 0;
  Clock::time_point start, deadline, last_done;
  std::function<void(int)> issue;
  issue = [&](int idx) {
    AC& a = conns[size_t(idx)];
    a.busy = false;
    if (count > 0 ? issued >= count : Clock::now() >= deadline) return;
    ++issued;
    Req q = make(idx, a.i);
    a.out = FormatRequest(url, q.method, q.path, q.body);
    a.off = 0;
    a.parser.Reset();
    a.retried = false;
    a.busy = true;
    a.t0 = Clock::now();
    if (!flush(idx)) {
      // The server had closed the kept-alive connection: reconnect and send again.
      connect(idx);
      a.t0 = Clock::now();
      if (!flush(idx)) {
        note_error(std::string("send: ") + strerror(errno));
        a.busy = false;
      }
    }
  };
  for (int c = 0; c < clients; ++c) {
    try {
      connect(c);
    } catch (const std::exception& e) {
      note_error(e.what());
    }
  }
  start = last_done = Clock::now();
  deadline = start + std::chrono::microseconds(int64_t(duration_s * 1e6));
  for (int c = 0; c < clients; ++c) {
    if (conns[size_t(c)].fd >= 0) issue(c);
  }
  std::vector<epoll_event> evs(static_cast<size_t>(clients));
  char tmp[65536];
  while (true) {
    bool any = false;
    for (auto& a : conns) any |= a.busy;
    if (!any) break;
    int n = epoll_wait(ep, evs.data(), clients, 100);
    if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("epoll_wait: ") + strerror(errno));
    for (int k = 0; k < n; ++k) {
      int idx = int(evs[size_t(k)].data.u32);
      AC& a = conns[size_t(idx)];
      if (!a.busy) continue;
      if (evs[size_t(k)].events & EPOLLOUT) {
        if (!flush(idx)) {
          note_error(std::string("send: ") + strerror(errno));
          connect(idx);
          a.i++;
          issue(idx);
          continue;
        }
      }
      if (!(evs[size_t(k)].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      bool done = false, closed = false;
      std::string err;
      while (!done) {
        ssize_t r = ::recv(a.fd, tmp, sizeof tmp, 0);
        if (r > 0) {
          try {
            done = a.parser.Feed(tmp, size_t(r));
          } catch (const std::exception& e) {
            err = e.what();
            closed = true;
            break;
          }
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        closed = true;  // 0 (server closed) or an error
        break;
      }
      if (done) {
        auto t1 = Clock::now();
        std::string e;
        try {
          e = check(idx, a.i, a.parser.response());
        } catch (const std::exception& ex) {
          e = ex.what();
        }
        if (e.empty()) {
          st.ok++;
          st.lat_ms.push_back(MsSince(a.t0, t1));
          st.start_ms.push_back(MsSince(start, a.t0));
        } else {
          note_error(e);
        }
        last_done = t1;
        if (a.parser.close_after()) connect(idx);
        a.i++;
        issue(idx);
      } else if (closed) {
        if (!a.parser.started() && !a.retried && err.empty()) {
          // Closed before answering (an idle keep-alive the server dropped): resend once on a new connection.
          connect(idx);
          a.retried = true;
          a.off = 0;
          a.t0 = Clock::now();
          if (flush(idx)) continue;
        }
        note_error(err.empty() ? "connection closed by server" : err);
        connect(idx);
        a.i++;
        issue(idx);
      }
    }
    auto now = Clock::now();
    for (auto& a : conns) {
      if (a.busy && now - a.t0 > std::chrono::milliseconds(timeout_ms)) {
        note_error("no response within " + std::to_string(timeout_ms) + " ms");
        st.timeouts++;
        a.busy = false;  // this connection gives up; the phase reports the server as stuck
      }
    }
  }
  for (auto& a : conns) {
    if (a.fd >= 0) ::close(a.fd);
  }
  ::close(ep);
  st.seconds = std::chrono::duration<double>(last_done - start).count();
  return st;
}

// Runs one phase with the chosen driver.
Stats RunPhase(bool epoll_driver, const Url& url, int clients, double duration_s, uint64_t count, const MakeFn& make,
               const CheckFn& check) {
  if (epoll_driver) return RunClientsEpoll(url, clients, duration_s, count, make, check);
  return RunClients(url, clients, duration_s, count, [&](Conn& conn, int th, uint64_t i) {
    Req q = make(th, i);
    return check(th, i, conn.Do(q.method, q.path, q.body));
  });
}

// ------------------------------------------------------------------------------------------------------------------
// Targets

struct WatchResult {
  Stats after_ack;      // event read minus create response read (negative when the event came first)
  Stats from_send;      // event read minus create request sent
  uint64_t before_ack = 0;
  uint64_t missing = 0;
};

class Target {
 public:
  virtual ~Target() = default;
  virtual std::string Name() const = 0;
  Url url;
  int pid = 0;  // server process, for CPU accounting (0: unknown)
  // Each measured operation is a request and a check of its response ("" when it succeeded), so that both the
  // blocking and the event-loop driver can run it.
  // Create one object named `name` of the create kind.
  virtual Req CreateReq(const std::string& name) = 0;
  virtual std::string CheckCreate(const std::string& name, const Response& r) = 0;
  // Read one object made by CreateReq.
  virtual Req GetReq(const std::string& name) = 0;
  virtual std::string CheckGet(const std::string& name, const Response& r) = 0;
  // List the list kind; sets *n to the number of items when count is set.
  virtual Req ListReq() = 0;
  virtual std::string CheckList(const Response& r, bool count, size_t* n) = 0;
  // Puts one object of the list kind.
  virtual std::string PreloadListObject(Conn& c, const std::string& name) = 0;
  virtual WatchResult Watch(int events, const std::string& prefix) = 0;

  std::string Create(Conn& c, const std::string& name) {
    Req q = CreateReq(name);
    return CheckCreate(name, c.Do(q.method, q.path, q.body));
  }
  std::string Get(Conn& c, const std::string& name) {
    Req q = GetReq(name);
    return CheckGet(name, c.Do(q.method, q.path, q.body));
  }
  std::string List(Conn& c, bool count, size_t* n) {
    Req q = ListReq();
    return CheckList(c.Do(q.method, q.path, q.body), count, n);
  }
  std::string hung;             // phase in which the server stopped answering; later phases skip this target
  size_t value_bytes = 0;       // size of one stored object of the create kind
  size_t list_value_bytes = 0;  // and of the list kind
};

struct WatchBook {
  std::mutex mu;
  std::map<std::string, Clock::time_point> seen;
};

// Drives a watch measurement: reader() runs in its own thread and reports names with book->seen; create(name)
// makes one object. Returns latency stats.
template <typename Create>
WatchResult MeasureWatch(int events, const std::string& prefix, WatchBook* book, std::atomic<bool>* stop,
                         std::thread& reader, Create create) {
  WatchResult wr;
  std::vector<std::string> names;
  std::vector<Clock::time_point> sent, acked;
  for (int i = 0; i < events; ++i) {
    std::string name = prefix + std::to_string(i);
    auto t0 = Clock::now();
    std::string err;
    try {
      err = create(name);
    } catch (...) {
      stop->store(true);
      reader.join();
      throw;
    }
    auto t1 = Clock::now();
    if (!err.empty()) {
      wr.after_ack.errors++;
      if (wr.after_ack.first_error.empty()) wr.after_ack.first_error = err;
      continue;
    }
    names.push_back(name);
    sent.push_back(t0);
    acked.push_back(t1);
    // A short pause, so each event is measured on its own rather than in a burst.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Wait for the stragglers.
  auto wait_until = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < wait_until) {
    {
      std::lock_guard lock(book->mu);
      size_t got = 0;
      for (auto& n : names) got += book->seen.count(n);
      if (got == names.size()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop->store(true);
  reader.join();
  std::lock_guard lock(book->mu);
  for (size_t i = 0; i < names.size(); ++i) {
    auto it = book->seen.find(names[i]);
    if (it == book->seen.end()) {
      wr.missing++;
      continue;
    }
    double a = MsSince(acked[i], it->second);  // negative: the event was read before the create's response
    if (a < 0) wr.before_ack++;
    wr.after_ack.ok++;
    wr.after_ack.lat_ms.push_back(a);
    wr.from_send.ok++;
    wr.from_send.lat_ms.push_back(MsSince(sent[i], it->second));
  }
  wr.after_ack.errors += wr.missing;
  return wr;
}

// --- Stratus -------------------------------------------------------------------------------------------------------

class StratusTarget : public Target {
 public:
  std::string Name() const override { return "stratus"; }
  const std::string kPath = "/apis/stratus.io/v1/namespaces/default/";

  static std::string KeyPairBody(const std::string& name) {
    return R"({"apiVersion":"stratus.io/v1","kind":"KeyPair","metadata":{"name":")" + name +
           R"("},"spec":{"publicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBench0 bench@stratus"}})";
  }
  static std::string VolumeBody(const std::string& name) {
    return R"({"apiVersion":"stratus.io/v1","kind":"Volume","metadata":{"name":")" + name +
           R"(","labels":{"app":"bench"}},"spec":{"size":"1Gi"}})";
  }

  Req CreateReq(const std::string& name) override { return {"POST", kPath + "keypairs", KeyPairBody(name)}; }
  std::string CheckCreate(const std::string& name, const Response& r) override {
    if (r.code != 201) return "create " + name + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    return "";
  }
  Req GetReq(const std::string& name) override { return {"GET", kPath + "keypairs/" + name, ""}; }
  std::string CheckGet(const std::string& name, const Response& r) override {
    if (r.code != 200) return "get " + name + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    return "";
  }
  std::string PreloadListObject(Conn& c, const std::string& name) override {
    Response r = c.Do("POST", kPath + "volumes", VolumeBody(name));
    if (r.code != 201 && r.code != 409) return "create volume " + name + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    if (list_value_bytes == 0 && r.code == 201) list_value_bytes = r.body.size();
    return "";
  }
  Req ListReq() override { return {"GET", kPath + "volumes", ""}; }
  std::string CheckList(const Response& r, bool count, size_t* n) override {
    if (r.code != 200) return "list: HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    if (count) *n = json::parse(r.body)["items"].size();
    return "";
  }

  // The object stratus stores for a create, to size etcd's values alike.
  std::string SampleStored(bool volume) {
    Conn c(url);
    std::string name = volume ? "size-probe-volume" : "size-probe-keypair";
    Response r = c.Do("POST", kPath + (volume ? "volumes" : "keypairs"), volume ? VolumeBody(name) : KeyPairBody(name));
    if (r.code == 409) r = c.Do("GET", kPath + (volume ? "volumes/" : "keypairs/") + name, "");
    if (r.code != 200 && r.code != 201) throw std::runtime_error("stratus size probe: HTTP " + std::to_string(r.code) + ": " + r.body);
    // Remove the probe again, so the list phase lists exactly --list-n objects.
    c.Do("DELETE", kPath + (volume ? "volumes/" : "keypairs/") + name, "");
    (volume ? list_value_bytes : value_bytes) = r.body.size();
    return r.body;
  }

  WatchResult Watch(int events, const std::string& prefix) override {
    Conn c(url);
    // The store's current revision, from a list (list metadata carries it).
    Response l = c.Do("GET", kPath + "keypairs?limit=1", "");
    if (l.code != 200) throw std::runtime_error("stratus list for watch: HTTP " + std::to_string(l.code));
    std::string rv = json::parse(l.body)["metadata"].value("resourceVersion", "0");
    auto wconn = std::make_shared<Conn>(url);
    int code = wconn->OpenStream("GET", kPath + "keypairs?watch=1&resourceVersion=" + rv, "");
    if (code != 200) throw std::runtime_error("stratus watch: HTTP " + std::to_string(code));
    WatchBook book;
    std::atomic<bool> stop{false};
    std::thread reader([&, wconn] {
      std::string line;
      bool eof = false;
      while (!stop.load()) {
        if (!wconn->NextLine(&line, 50, &eof)) {
          if (eof) break;
          continue;
        }
        auto now = Clock::now();
        if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
        try {
          json ev = json::parse(line);
          std::string name = ev["object"]["metadata"].value("name", "");
          std::lock_guard lock(book.mu);
          book.seen.emplace(name, now);
        } catch (...) {
        }
      }
    });
    return MeasureWatch(events, prefix, &book, &stop, reader, [&](const std::string& name) { return Create(c, name); });
  }
};

// --- etcd (v3 HTTP/JSON gateway) -------------------------------------------------------------------------------------

class EtcdTarget : public Target {
 public:
  std::string Name() const override { return "etcd"; }
  // Values are JSON documents of the same size as what stratus stores (set from a stratus sample when one ran).
  std::string keypair_template;  // with NAME_PLACEHOLDER where the name goes
  std::string volume_template;
  const std::string kKeyPrefix = "/registry/keypairs/default/";
  const std::string kListPrefix = "/registry/volumes/default/";

  static std::string Fill(const std::string& tmpl, const std::string& name) {
    std::string out = tmpl;
    const std::string ph = "NAME_PLACEHOLDER";
    for (size_t p = out.find(ph); p != std::string::npos; p = out.find(ph, p + name.size())) out.replace(p, ph.size(), name);
    return out;
  }
  std::string Put(Conn& c, const std::string& key, const std::string& value) {
    Response r = c.Do("POST", "/v3/kv/put", PutBody(key, value));
    if (r.code != 200) return "put " + key + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    return "";
  }
  static std::string PutBody(const std::string& key, const std::string& value) {
    return R"({"key":")" + B64Encode(key) + R"(","value":")" + B64Encode(value) + R"("})";
  }
  Req CreateReq(const std::string& name) override {
    return {"POST", "/v3/kv/put", PutBody(kKeyPrefix + name, Fill(keypair_template, name))};
  }
  std::string CheckCreate(const std::string& name, const Response& r) override {
    if (r.code != 200) return "put " + name + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    return "";
  }
  Req GetReq(const std::string& name) override {
    return {"POST", "/v3/kv/range", R"({"key":")" + B64Encode(kKeyPrefix + name) + R"("})"};
  }
  std::string CheckGet(const std::string& name, const Response& r) override {
    if (r.code != 200) return "range " + name + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    if (r.body.find("\"kvs\"") == std::string::npos) return "range " + name + ": not found";
    return "";
  }
  std::string PreloadListObject(Conn& c, const std::string& name) override {
    return Put(c, kListPrefix + name, Fill(volume_template, name));
  }
  Req ListReq() override {
    return {"POST", "/v3/kv/range",
            R"({"key":")" + B64Encode(kListPrefix) + R"(","range_end":")" + B64Encode(PrefixEnd(kListPrefix)) + R"("})"};
  }
  std::string CheckList(const Response& r, bool count, size_t* n) override {
    if (r.code != 200) return "range list: HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 200);
    if (count) {
      json j = json::parse(r.body);
      *n = j.contains("kvs") ? j["kvs"].size() : 0;
    }
    return "";
  }
  WatchResult Watch(int events, const std::string& prefix) override {
    Conn c(url);
    auto wconn = std::make_shared<Conn>(url);
    std::string req = R"({"create_request":{"key":")" + B64Encode(kKeyPrefix) + R"(","range_end":")" +
                      B64Encode(PrefixEnd(kKeyPrefix)) + R"("}})";
    int code = wconn->OpenStream("POST", "/v3/watch", req);
    if (code != 200) throw std::runtime_error("etcd watch: HTTP " + std::to_string(code));
    // Wait for the "created" message before writing, so no event predates the watch.
    std::string line;
    bool eof = false;
    auto until = Clock::now() + std::chrono::seconds(5);
    bool created = false;
    while (!created && Clock::now() < until) {
      if (wconn->NextLine(&line, 100, &eof)) {
        created = line.find("\"created\":true") != std::string::npos;
      } else if (eof) {
        break;
      }
    }
    if (!created) throw std::runtime_error("etcd watch: no created message");
    WatchBook book;
    std::atomic<bool> stop{false};
    std::thread reader([&, wconn] {
      std::string l;
      bool e = false;
      while (!stop.load()) {
        if (!wconn->NextLine(&l, 50, &e)) {
          if (e) break;
          continue;
        }
        auto now = Clock::now();
        try {
          json msg = json::parse(l);
          const json& res = msg.contains("result") ? msg["result"] : msg;
          if (!res.contains("events")) continue;
          std::lock_guard lock(book.mu);
          for (const auto& ev : res["events"]) {
            std::string key = B64Decode(ev["kv"].value("key", ""));
            book.seen.emplace(key.substr(key.rfind('/') + 1), now);
          }
        } catch (...) {
        }
      }
    });
    return MeasureWatch(events, prefix, &book, &stop, reader, [&](const std::string& name) { return Create(c, name); });
  }
};

// A stored-object lookalike for etcd when no stratus sample is at hand: the shape stratus stores.
std::string FallbackTemplate(bool volume) {
  json o = {{"apiVersion", "stratus.io/v1"},
            {"kind", volume ? "Volume" : "KeyPair"},
            {"metadata",
             {{"name", "NAME_PLACEHOLDER"},
              {"namespace", "default"},
              {"uid", "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"},
              {"resourceVersion", "123456"},
              {"generation", 1},
              {"creationTimestamp", "2026-01-01T00:00:00Z"}}}};
  if (volume) {
    o["metadata"]["labels"] = {{"app", "bench"}};
    o["spec"] = {{"size", "1Gi"}, {"format", "qcow2"}};
  } else {
    o["spec"] = {{"publicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBench0 bench@stratus"}};
  }
  return o.dump();
}

// Turns a stored stratus object into an etcd value template of the same size (name swapped for a placeholder of
// similar length is fine: names differ per object anyway).
std::string TemplateFrom(const std::string& stored) {
  json o = json::parse(stored);
  o["metadata"]["name"] = "NAME_PLACEHOLDER";
  return o.dump();
}

// ------------------------------------------------------------------------------------------------------------------

struct Options {
  std::string stratus_url, etcd_url, json_out;
  double duration = 3;
  double list_duration = 3;
  std::vector<int> clients = {1, 8, 32};
  int list_n = 1000;
  int watch_events = 200;
  std::string run_id;
  int stratus_pid = 0, etcd_pid = 0;
  std::string trace_out;  // --trace FILE: every request's phase, start offset and latency
  bool epoll = true;  // --driver epoll (one thread, N connections) or threads (one thread per connection)
  int big_list = 0;       // --big-list N: only measure N-object lists (time, server RSS), nothing else
  int big_list_reps = 3;  // --big-list-reps R: lists in a row
};

struct Results {
  // [target][phase][clients]
  std::map<std::string, std::map<std::string, std::map<int, Stats>>> phases;
  std::map<std::string, WatchResult> watch;
  std::map<std::string, size_t> value_bytes, list_value_bytes;
};

void Log(const std::string& s) { std::cerr << "[api_bench] " << s << std::endl; }

void CheckErrors(const std::string& what, const Stats& s) {
  if (s.errors) Log(what + ": " + std::to_string(s.errors) + " errors, first: " + s.first_error);
}

// Marks a target that stopped answering during a phase, so the rest of the run skips it instead of hanging.
void CheckHung(Target* t, const std::string& phase, const Stats& s) {
  if (s.timeouts && t->hung.empty()) {
    t->hung = phase;
    Log(t->Name() + ": STOPPED ANSWERING during " + phase + " (" + std::to_string(s.timeouts) +
        " requests without a response); skipping its remaining phases");
  }
}

}  // namespace

// --big-list: preloads N list objects into each (fresh) server, then lists them all R times in a row from one
// client, reporting each list's time and the server's RSS: idle, after the preload, after each list, and 2 s after
// the last. Bounded: N objects, R requests, each under the 30 s request timeout.
int BigList(const Options& o, std::vector<std::unique_ptr<Target>>& targets) {
  if (o.big_list > 100000 || o.big_list_reps < 1 || o.big_list_reps > 20) {
    std::cerr << "--big-list: at most 100000 objects; --big-list-reps: 1..20\n";
    return 2;
  }
  struct Row {
    std::string metric;
    std::map<std::string, std::string> v;
  };
  std::vector<Row> rows;
  auto put = [&](size_t i, const std::string& metric, const std::string& target, const std::string& val) {
    if (rows.size() <= i) rows.resize(i + 1);
    rows[i].metric = metric;
    rows[i].v[target] = val;
  };
  try {
    for (auto& t : targets) {
      size_t r = 0;
      std::string n = t->Name();
      put(r++, "server RSS MiB, idle (before the preload)", n, Fmt(RssMiB(t->pid)));
      Log(n + ": preload " + std::to_string(o.big_list) + " objects to list");
      std::atomic<int> next{0};
      Stats s = RunClients(t->url, 8, 1e9, uint64_t(o.big_list), [&](Conn& conn, int, uint64_t) {
        char name[32];
        std::snprintf(name, sizeof name, "b-%06d", next.fetch_add(1));
        return t->PreloadListObject(conn, name);
      });
      CheckErrors(n + " preload", s);
      if (s.errors || s.timeouts) throw std::runtime_error(n + ": preload failed");
      put(r++, "server RSS MiB, after the preload", n, Fmt(RssMiB(t->pid)));
      Conn conn(t->url);
      for (int i = 1; i <= o.big_list_reps; ++i) {
        Req q = t->ListReq();
        auto t0 = Clock::now();
        Response resp = conn.Do(q.method, q.path, q.body);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        size_t items = 0;
        std::string err = t->CheckList(resp, true, &items);
        if (!err.empty()) throw std::runtime_error(n + ": " + err);
        if (i == 1) {
          put(r++, "objects listed", n, std::to_string(items));
          put(r++, "response MB", n, Fmt(resp.body.size() / 1e6, 2));
        }
        put(r++, "list " + std::to_string(i) + " ms", n, Fmt(ms));
        put(r++, "server RSS MiB, after list " + std::to_string(i), n, Fmt(RssMiB(t->pid)));
      }
      std::this_thread::sleep_for(std::chrono::seconds(2));  // a fixed pause to read RSS after, not a wait for state
      put(r++, "server RSS MiB, 2 s after the last list", n, Fmt(RssMiB(t->pid)));
    }
  } catch (const std::exception& e) {
    std::cerr << "api_bench: " << e.what() << "\n";
    return 1;
  }
  std::cout << "| " << o.big_list << "-object list |";
  for (auto& t : targets) std::cout << " " << t->Name() << " |";
  std::cout << "\n|---|";
  for (size_t i = 0; i < targets.size(); ++i) std::cout << "---|";
  std::cout << "\n";
  for (auto& row : rows) {
    std::cout << "| " << row.metric << " |";
    for (auto& t : targets) std::cout << " " << (row.v.count(t->Name()) ? row.v[t->Name()] : "-") << " |";
    std::cout << "\n";
  }
  std::cout << "\n- one client, " << o.big_list_reps << " lists in a row; RSS from /proc/PID/status (VmRSS)\n";
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--stratus") o.stratus_url = next();
    else if (a == "--etcd") o.etcd_url = next();
    else if (a == "--stratus-pid") o.stratus_pid = std::stoi(next());
    else if (a == "--etcd-pid") o.etcd_pid = std::stoi(next());
    else if (a == "--json") o.json_out = next();
    else if (a == "--duration") o.duration = std::stod(next());
    else if (a == "--list-duration") o.list_duration = std::stod(next());
    else if (a == "--list-n") o.list_n = std::stoi(next());
    else if (a == "--watch-events") o.watch_events = std::stoi(next());
    else if (a == "--run-id") o.run_id = next();
    else if (a == "--trace") o.trace_out = next();
    else if (a == "--big-list") o.big_list = std::stoi(next());
    else if (a == "--big-list-reps") o.big_list_reps = std::stoi(next());
    else if (a == "--driver") {
      std::string d = next();
      if (d != "epoll" && d != "threads") {
        std::cerr << "--driver: epoll or threads\n";
        return 2;
      }
      o.epoll = d == "epoll";
    }
    else if (a == "--clients") {
      o.clients.clear();
      std::stringstream ss(next());
      std::string x;
      while (std::getline(ss, x, ',')) o.clients.push_back(std::stoi(x));
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: api_bench [--stratus URL] [--etcd URL] [--duration S] [--list-duration S] [--clients 1,8,32]\n"
                   "                 [--list-n 1000] [--watch-events 200] [--json FILE] [--run-id ID]\n"
                   "                 [--stratus-pid PID] [--etcd-pid PID]   (server CPU per operation)\n"
                   "                 [--driver epoll|threads]   (default epoll: one thread multiplexing the N connections)\n"
                   "                 [--trace FILE]   (every request: target phase clients start_ms latency_ms)\n"
                   "                 [--big-list N [--big-list-reps 3]]   (only: time and server RSS of N-object lists)\n";
      return 0;
    } else {
      std::cerr << "unknown argument: " << a << "\n";
      return 2;
    }
  }
  if (o.stratus_url.empty() && o.etcd_url.empty()) {
    std::cerr << "give --stratus URL and/or --etcd URL\n";
    return 2;
  }
  if (o.run_id.empty()) o.run_id = std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000);

  std::vector<std::unique_ptr<Target>> targets;
  StratusTarget* stratus = nullptr;
  if (!o.stratus_url.empty()) {
    auto t = std::make_unique<StratusTarget>();
    t->url = ParseUrl(o.stratus_url);
    // The server's admin token (bench/run.sh exports it from the data dir): cluster-admins are not rate limited.
    if (const char* tok = std::getenv("STRATUS_TOKEN"); tok != nullptr && *tok) {
      t->url.auth = std::string("Authorization: Bearer ") + tok + "\r\n";
    }
    t->pid = o.stratus_pid;
    stratus = t.get();
    targets.push_back(std::move(t));
  }
  if (!o.etcd_url.empty()) {
    auto t = std::make_unique<EtcdTarget>();
    t->url = ParseUrl(o.etcd_url);
    t->pid = o.etcd_pid;
    t->keypair_template = FallbackTemplate(false);
    t->volume_template = FallbackTemplate(true);
    if (stratus) {
      try {
        t->keypair_template = TemplateFrom(stratus->SampleStored(false));
        t->volume_template = TemplateFrom(stratus->SampleStored(true));
      } catch (const std::exception& e) {
        Log(std::string("no stratus sample, etcd values use a built-in lookalike: ") + e.what());
      }
    }
    t->value_bytes = EtcdTarget::Fill(t->keypair_template, "c1-0-0-" + o.run_id).size();
    t->list_value_bytes = EtcdTarget::Fill(t->volume_template, "l-0000").size();
    targets.push_back(std::move(t));
  }

  if (o.big_list > 0) return BigList(o, targets);

  Results res;
  std::map<std::string, std::vector<std::string>> created;  // per target, names that exist (for gets)

  try {
    // Creates, interleaving targets per concurrency level so a change in background load hits both alike.
    for (int c : o.clients) {
      for (auto& t : targets) {
        if (!t->hung.empty()) continue;
        std::string prefix = "c" + std::to_string(c) + "-" + o.run_id + "-";
        std::vector<std::vector<std::string>> names(static_cast<size_t>(c));
        Log(t->Name() + ": create, " + std::to_string(c) + " clients");
        Stats s = WithCpu(t->pid, [&] {
          auto name_of = [&](int th, uint64_t i) { return prefix + std::to_string(th) + "-" + std::to_string(i); };
          return RunPhase(
              o.epoll, t->url, c, o.duration, 0, [&](int th, uint64_t i) { return t->CreateReq(name_of(th, i)); },
              [&](int th, uint64_t i, const Response& r) {
                std::string name = name_of(th, i);
                std::string err = t->CheckCreate(name, r);
                if (err.empty()) names[size_t(th)].push_back(name);
                return err;
              });
        });
        CheckErrors(t->Name() + " create", s);
        CheckHung(t.get(), "create, " + std::to_string(c) + " clients", s);
        for (auto& v : names) created[t->Name()].insert(created[t->Name()].end(), v.begin(), v.end());
        res.phases[t->Name()]["create"][c] = std::move(s);
      }
    }
    // Gets of random existing objects.
    for (int c : o.clients) {
      for (auto& t : targets) {
        const auto& names = created[t->Name()];
        if (names.empty() || !t->hung.empty()) continue;
        Log(t->Name() + ": get, " + std::to_string(c) + " clients");
        std::vector<std::mt19937_64> rng;
        for (int i = 0; i < c; ++i) rng.emplace_back(uint64_t(i) * 7919 + 17);
        Stats s = WithCpu(t->pid, [&] {
          std::vector<std::string> current(static_cast<size_t>(c));
          return RunPhase(
              o.epoll, t->url, c, o.duration, 0,
              [&](int th, uint64_t) {
                current[size_t(th)] = names[rng[size_t(th)]() % names.size()];
                return t->GetReq(current[size_t(th)]);
              },
              [&](int th, uint64_t, const Response& r) { return t->CheckGet(current[size_t(th)], r); });
        });
        CheckErrors(t->Name() + " get", s);
        CheckHung(t.get(), "get, " + std::to_string(c) + " clients", s);
        res.phases[t->Name()]["get"][c] = std::move(s);
      }
    }
    // Lists of exactly list_n objects.
    for (auto& t : targets) {
      if (!t->hung.empty()) continue;
      Log(t->Name() + ": preload " + std::to_string(o.list_n) + " objects to list");
      // RunClients hands out a shared count; the names come from a counter of their own.
      std::atomic<int> next{0};
      Stats s = RunClients(t->url, 8, 1e9, uint64_t(o.list_n), [&](Conn& conn, int, uint64_t) {
        char name[32];
        std::snprintf(name, sizeof name, "l-%05d", next.fetch_add(1));
        return t->PreloadListObject(conn, name);
      });
      CheckErrors(t->Name() + " preload", s);
      CheckHung(t.get(), "list preload", s);
      if (!t->hung.empty()) continue;
      Conn conn(t->url);
      size_t n = 0;
      std::string err;
      try {
        err = t->List(conn, true, &n);
      } catch (const TimeoutError& e) {
        t->hung = "list check";
        Log(t->Name() + ": STOPPED ANSWERING during the list check: " + e.what());
        continue;
      }
      if (!err.empty()) throw std::runtime_error(t->Name() + ": " + err);
      if (n != size_t(o.list_n)) Log(t->Name() + ": list returns " + std::to_string(n) + " items, expected " + std::to_string(o.list_n));
    }
    for (int c : o.clients) {
      for (auto& t : targets) {
        if (!t->hung.empty()) continue;
        Log(t->Name() + ": list, " + std::to_string(c) + " clients");
        Stats s = WithCpu(t->pid, [&] {
          return RunPhase(
              o.epoll, t->url, c, o.list_duration, 0, [&](int, uint64_t) { return t->ListReq(); },
              [&](int, uint64_t, const Response& r) {
                size_t n = 0;
                return t->CheckList(r, false, &n);
              });
        });
        CheckErrors(t->Name() + " list", s);
        CheckHung(t.get(), "list, " + std::to_string(c) + " clients", s);
        res.phases[t->Name()]["list"][c] = std::move(s);
      }
    }
    // Watch delivery.
    for (auto& t : targets) {
      if (!t->hung.empty()) continue;
      Log(t->Name() + ": watch, " + std::to_string(o.watch_events) + " events");
      WatchResult w;
      try {
        w = t->Watch(o.watch_events, "w-" + o.run_id + "-");
      } catch (const TimeoutError& e) {
        t->hung = "watch";
        Log(t->Name() + ": STOPPED ANSWERING during watch: " + e.what());
        continue;
      }
      CheckErrors(t->Name() + " watch", w.after_ack);
      res.watch[t->Name()] = std::move(w);
    }
  } catch (const std::exception& e) {
    std::cerr << "api_bench: " << e.what() << "\n";
    return 1;
  }
  for (auto& t : targets) {
    res.value_bytes[t->Name()] = t->value_bytes;
    res.list_value_bytes[t->Name()] = t->list_value_bytes;
  }

  // ---- report ----
  bool both = targets.size() == 2;
  std::ostringstream md;
  md << "| metric | clients |";
  for (auto& t : targets) md << " " << t->Name() << " |";
  if (both) md << " stratus/etcd |";
  md << "\n|---|---|";
  for (size_t i = 0; i < targets.size(); ++i) md << "---|";
  if (both) md << "---|";
  md << "\n";
  auto row = [&](const std::string& metric, const std::string& clients, const std::vector<double>& vals, int prec) {
    md << "| " << metric << " | " << clients << " |";
    for (double v : vals) md << " " << Fmt(v, prec) << " |";
    if (both) md << " " << (vals[1] > 0 && vals[0] >= 0 ? Fmt(vals[0] / vals[1], 2) : std::string("-")) << " |";
    md << "\n";
  };
  auto collect = [&](const std::string& phase, int c, auto f) {
    std::vector<double> v;
    for (auto& t : targets) v.push_back(f(res.phases[t->Name()][phase][c]));
    return v;
  };
  struct Line {
    std::string phase, metric;
    int kind;  // 0 rate, 1 p50, 2 p99, 3 server CPU us/op, 4 client CPU us/op, 5 server context switches/op
  };
  std::vector<Line> lines = {{"create", "durable creates/s", 0}, {"create", "create p50 ms", 1}, {"create", "create p99 ms", 2},
                             {"get", "gets/s", 0},               {"get", "get p50 ms", 1},       {"get", "get p99 ms", 2},
                             {"list", "lists/s (" + std::to_string(o.list_n) + " objects)", 0},
                             {"list", "list p50 ms", 1},         {"list", "list p99 ms", 2}};
  if (o.stratus_pid || o.etcd_pid) {
    lines.push_back({"create", "server CPU us/create", 3});
    lines.push_back({"get", "server CPU us/get", 3});
    lines.push_back({"list", "server CPU us/list", 3});
    lines.push_back({"create", "server context switches/create", 5});
    lines.push_back({"get", "server context switches/get", 5});
  }
  lines.push_back({"create", "load generator CPU us/create", 4});
  lines.push_back({"get", "load generator CPU us/get", 4});
  for (const auto& l : lines) {
    for (int c : o.clients) {
      row(l.metric, std::to_string(c), collect(l.phase, c, [&](const Stats& s) {
            switch (l.kind) {
              case 0: return s.Rate();
              case 1: return s.Pct(50);
              case 2: return s.Pct(99);
              case 3: return s.ServerUsPerOp();
              case 5: return s.ServerSwitchesPerOp();
              default: return s.ClientUsPerOp();
            }
          }),
          l.kind == 0 || l.kind == 3 || l.kind == 4 ? 0 : l.kind == 5 ? 1 : 2);
    }
  }
  {
    std::vector<double> p50, p99, s50, s99;
    for (auto& t : targets) {
      const WatchResult& w = res.watch[t->Name()];
      p50.push_back(w.after_ack.Pct(50));
      p99.push_back(w.after_ack.Pct(99));
      s50.push_back(w.from_send.Pct(50));
      s99.push_back(w.from_send.Pct(99));
    }
    row("watch: event read minus create response read, p50 ms (< 0: event first)", "1", p50, 3);
    row("watch: event read minus create response read, p99 ms (< 0: event first)", "1", p99, 3);
    row("watch: create request sent to event read, p50 ms", "1", s50, 3);
    row("watch: create request sent to event read, p99 ms", "1", s99, 3);
  }
  std::cout << md.str();
  std::cout << "\n- load generator: " << (o.epoll ? "one thread multiplexing" : "one thread per") << " connection"
            << (o.epoll ? "s with epoll" : "") << " (--driver " << (o.epoll ? "epoll" : "threads") << "), "
            << o.duration << " s per create/get phase, " << o.list_duration << " s per list phase\n";
  for (auto& t : targets) {
    const WatchResult& w = res.watch[t->Name()];
    uint64_t errs = 0;
    for (auto& [ph, m] : res.phases[t->Name()]) {
      for (auto& [c, s] : m) errs += s.errors;
    }
    std::cout << "- " << t->Name() << ": stored object " << res.value_bytes[t->Name()] << " B (list objects "
              << res.list_value_bytes[t->Name()] << " B); watch events " << w.after_ack.ok << "/" << o.watch_events
              << " delivered, " << w.before_ack << " arrived before the create response, " << w.missing
              << " missing; request errors " << errs << "\n";
    if (!t->hung.empty()) {
      std::cout << "- **" << t->Name() << " stopped answering during " << t->hung
                << "**: requests got no response within 30 s; its later phases were skipped (0 in the table)\n";
    }
  }

  if (!o.trace_out.empty()) {
    std::ofstream f(o.trace_out);
    f << "target phase clients start_ms latency_ms\n";
    for (auto& [target, phases] : res.phases) {
      for (auto& [phase, m] : phases) {
        for (auto& [c, st] : m) {
          for (size_t i = 0; i < st.lat_ms.size() && i < st.start_ms.size(); ++i) {
            f << target << ' ' << phase << ' ' << c << ' ' << Fmt(st.start_ms[i], 3) << ' ' << Fmt(st.lat_ms[i], 3) << '\n';
          }
        }
      }
    }
  }
  if (!o.json_out.empty()) {
    json j;
    j["options"] = {{"driver", o.epoll ? "epoll" : "threads"}, {"duration_s", o.duration}, {"list_duration_s", o.list_duration}, {"clients", o.clients},
                    {"list_n", o.list_n}, {"watch_events", o.watch_events}};
    for (auto& t : targets) {
      json tj;
      for (auto& [phase, m] : res.phases[t->Name()]) {
        for (auto& [c, s] : m) tj[phase][std::to_string(c)] = s.ToJson();
      }
      const WatchResult& w = res.watch[t->Name()];
      tj["watch"] = {{"after_ack", w.after_ack.ToJson()}, {"from_send", w.from_send.ToJson()},
                     {"before_ack", w.before_ack}, {"missing", w.missing}};
      tj["value_bytes"] = res.value_bytes[t->Name()];
      tj["hung_in"] = t->hung;
      tj["list_value_bytes"] = res.list_value_bytes[t->Name()];
      j["targets"][t->Name()] = tj;
    }
    std::ofstream f(o.json_out);
    f << j.dump(2) << "\n";
  }
  for (auto& t : targets) {
    if (!t->hung.empty()) return 3;
  }
  return 0;
}
