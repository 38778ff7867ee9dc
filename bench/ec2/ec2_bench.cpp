// ec2_bench: the same EC2 Query API load against Stratus' EC2 endpoint and moto_server, side by side.
//
// Every request is a POST of a form-encoded Query API call (Version=2016-11-15), SigV4-signed with the project's
// own signer (stratus::ec2::CanonicalRequest / StringToSign / Signature) over content-type, host and x-amz-date, as
// botocore signs; moto ignores the signature but gets the same bytes. Phases, per target:
//
//   run        RunInstances of --run instances (calls of --batch, EC2's MinCount=MaxCount, one after another on one
//              connection), then DescribeInstances every 100 ms until every instance made shows state code 16
//              (running). Wall time from the first RunInstances written to the first DescribeInstances answer
//              that shows them all running.
//   preload    more RunInstances until the target holds --instances instances; waits until all are running.
//   describe   for each --clients level, stratus then moto: N keep-alive connections, each with one
//              `Action=DescribeInstances&Version=2016-11-15` outstanding (closed loop), for --duration seconds and
//              at least --min-requests answers; every answer must be 200, and the first of each phase must list
//              exactly --instances instances.
//
// The client is one thread multiplexing the connections with epoll over plain sockets (a small hand-written
// HTTP/1.1 client, as api_bench's), so on two cores it takes little CPU from the servers. Server CPU per request is
// read from /proc when the pids are given.
//
// Usage: ec2_bench --stratus URL --stratus-key-id ID --stratus-secret SECRET [--moto URL] [--stratus-pid PID]
//                  [--moto-pid PID] [--clients 1,8,32] [--duration 10] [--min-requests 10] [--instances 1000]
//                  [--run 200] [--batch 20] [--instance-type m1.small] [--run-timeout 300] [--phases run,describe]
//                  [--json FILE]
// Prints markdown to stdout; --json writes every number. Exit 3 when a target stopped answering.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "stratus/core/sha256.h"
#include "stratus/ec2/sigv4.h"

#include "common/bench_common.h"

using json = nlohmann::json;
using namespace bench;  // Clock, MsSince, Response, ResponseParser, /proc readings, Fmt

namespace {

double SecondsSince(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

void Log(const std::string& s) { std::cerr << "[ec2_bench] " << s << std::endl; }

// ------------------------------------------------------------------------------------------------------------------
// Targets and signing

struct Target {
  std::string name;  // "stratus", "moto"
  std::string host;
  int port = 80;
  std::string key_id = "AKIAIOSFODNN7EXAMPLE", secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  int pid = 0;
  bool hung = false;
  std::string image;  // the ami- id RunInstances uses
  std::vector<std::string> ids;  // the instances this run made
};

Target ParseTarget(const std::string& name, const std::string& u) {
  Target t;
  t.name = name;
  std::string s = u;
  if (s.rfind("https://", 0) == 0) throw std::runtime_error(name + ": plain http only (" + u + ")");
  if (s.rfind("http://", 0) == 0) s = s.substr(7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  auto colon = s.rfind(':');
  if (colon == std::string::npos) {
    t.host = s;
  } else {
    t.host = s.substr(0, colon);
    t.port = std::stoi(s.substr(colon + 1));
  }
  return t;
}

std::string Sha256Hex(const std::string& s) {
  stratus::Sha256 h;
  h.Update(s.data(), s.size());
  return h.Hex();
}

// The whole HTTP/1.1 request for a form body, signed now (SigV4, region us-east-1, service ec2).
std::string SignedPost(const Target& t, const std::string& body) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char amz[32], day[16];
  std::strftime(amz, sizeof amz, "%Y%m%dT%H%M%SZ", &tm);
  std::strftime(day, sizeof day, "%Y%m%d", &tm);
  const std::string host = t.host + ":" + std::to_string(t.port);
  const std::string ctype = "application/x-www-form-urlencoded; charset=utf-8";
  stratus::ec2::SignedRequest sr;
  sr.method = "POST";
  sr.raw_path = "/";
  sr.headers = {{"Content-Type", ctype}, {"Host", host}, {"X-Amz-Date", amz}};
  sr.body = body;
  stratus::ec2::Credential c;
  c.access_key_id = t.key_id;
  c.date = day;
  c.region = "us-east-1";
  c.service = "ec2";
  c.amz_date = amz;
  c.signed_headers = {"content-type", "host", "x-amz-date"};
  std::string canonical = stratus::ec2::CanonicalRequest(sr, c.signed_headers, false, Sha256Hex(body));
  std::string sig = stratus::ec2::Signature(t.secret, c, stratus::ec2::StringToSign(c, canonical));
  std::string req;
  req.reserve(512 + body.size());
  req += "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + ctype + "\r\nX-Amz-Date: " + amz +
         "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" + t.key_id + "/" + day +
         "/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + sig +
         "\r\nUser-Agent: stratus-ec2-bench\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
  return req;
}

const char* kDescribe = "Action=DescribeInstances&Version=2016-11-15";

// ------------------------------------------------------------------------------------------------------------------
// HTTP/1.1: incremental response parser (Content-Length or chunked) and an epoll closed-loop driver.

int ConnectTo(const Target& t) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("resolve " + t.host + ": " + gai_strerror(rc));
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) throw std::runtime_error("connect " + t.host + ":" + std::to_string(t.port) + ": " + strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

struct Stats {
  uint64_t ok = 0, errors = 0, timeouts = 0, reconnects = 0;
  double seconds = 0;
  std::vector<double> lat_ms;
  std::string first_error;
  size_t body_bytes = 0;  // of the last good answer
  double server_cpu_s = -1, client_cpu_s = -1;

  double Rate() const { return seconds > 0 ? double(ok) / seconds : 0; }
  double Pct(double p) const {  // nearest rank
    if (lat_ms.empty()) return 0;
    std::vector<double> v = lat_ms;
    std::sort(v.begin(), v.end());
    size_t k = size_t(std::max(1.0, std::ceil(p / 100.0 * double(v.size()))));
    return v[std::min(v.size(), k) - 1];
  }
  double ServerUsPerOp() const { return ok && server_cpu_s >= 0 ? server_cpu_s * 1e6 / double(ok) : 0; }
  double ClientUsPerOp() const { return ok && client_cpu_s >= 0 ? client_cpu_s * 1e6 / double(ok) : 0; }
  json ToJson() const {
    return {{"ok", ok},
            {"errors", errors},
            {"timeouts", timeouts},
            {"reconnects", reconnects},
            {"seconds", seconds},
            {"per_second", Rate()},
            {"p50_ms", Pct(50)},
            {"p99_ms", Pct(99)},
            {"max_ms", lat_ms.empty() ? 0.0 : *std::max_element(lat_ms.begin(), lat_ms.end())},
            {"response_bytes", body_bytes},
            {"server_cpu_ms_per_request", ServerUsPerOp() / 1000},
            {"client_cpu_us_per_request", ClientUsPerOp()},
            {"first_error", first_error}};
  }
};

using MakeFn = std::function<std::string(int conn, uint64_t i)>;                            // the raw request
using CheckFn = std::function<std::string(int conn, uint64_t i, const Response&)>;  // "" when good

// `clients` connections, each with one request outstanding (closed loop), from this one thread. New requests are
// issued until `duration_s` has passed and at least `min_count` were issued (or exactly `count` when count > 0);
// the phase ends when the last one is answered.
Stats RunLoad(const Target& t, int clients, double duration_s, uint64_t min_count, uint64_t count, const MakeFn& make,
              const CheckFn& check, int timeout_ms) {
  struct AC {
    int fd = -1;
    ResponseParser parser;
    std::string out;
    size_t off = 0;
    Clock::time_point t0;
    uint64_t i = 0;
    bool busy = false, retried = false, want_out = false;
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
      st.reconnects++;
    }
    a.fd = ConnectTo(t);
    set_events(idx, true, false);
  };
  auto note_error = [&](const std::string& e) {
    if (st.first_error.empty()) st.first_error = e;
    st.errors++;
  };
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
  auto issue = [&](int idx) {
    AC& a = conns[size_t(idx)];
    a.busy = false;
    if (count > 0 ? issued >= count : (Clock::now() >= deadline && issued >= min_count)) return;
    ++issued;
    a.out = make(idx, a.i);
    a.off = 0;
    a.parser.Reset();
    a.retried = false;
    a.busy = true;
    a.t0 = Clock::now();
    if (!flush(idx)) {  // the server had closed the kept-alive connection: reconnect and send again
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
  st.reconnects = 0;
  start = last_done = Clock::now();
  deadline = start + std::chrono::microseconds(int64_t(duration_s * 1e6));
  for (int c = 0; c < clients; ++c) {
    if (conns[size_t(c)].fd >= 0) issue(c);
  }
  std::vector<epoll_event> evs(static_cast<size_t>(clients));
  std::vector<char> tmp(1 << 18);
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
        ssize_t r = ::recv(a.fd, tmp.data(), tmp.size(), 0);
        if (r > 0) {
          try {
            done = a.parser.Feed(tmp.data(), size_t(r));
          } catch (const std::exception& e) {
            err = e.what();
            closed = true;
            break;
          }
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        closed = true;
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
          st.body_bytes = a.parser.response().body.size();
        } else {
          note_error(e);
        }
        last_done = t1;
        if (a.parser.close_after()) connect(idx);
        a.i++;
        issue(idx);
      } else if (closed) {
        if (!a.parser.started() && !a.retried && err.empty()) {
          // Closed before answering (a kept-alive connection the server dropped): resend once on a new one.
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
        note_error("no response within " + std::to_string(timeout_ms / 1000) + " s");
        st.timeouts++;
        a.busy = false;
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

// One signed call on a fresh connection; throws on no answer.
Response Call(const Target& t, const std::string& body, int timeout_ms) {
  Response out;
  Stats st = RunLoad(
      t, 1, 0, 0, 1, [&](int, uint64_t) { return SignedPost(t, body); },
      [&](int, uint64_t, const Response& r) {
        out = r;
        return std::string();
      },
      timeout_ms);
  if (st.ok != 1) throw std::runtime_error(t.name + ": " + body.substr(0, 60) + ": " + st.first_error);
  return out;
}

// ------------------------------------------------------------------------------------------------------------------
// The few things read from EC2's XML (no full parse: a 1,000-instance answer is ~1 MB and this runs next to the
// servers on the same cores).

// instance id -> state code, in the order the ids appear. Every <instanceState> belongs to the <instanceId> before it.
std::map<std::string, int> InstanceStates(const std::string& xml) {
  std::map<std::string, int> out;
  size_t pos = 0;
  std::string id;
  while (true) {
    size_t a = xml.find("<instanceId>", pos), s = xml.find("<instanceState>", pos);
    if (a == std::string::npos && s == std::string::npos) break;
    if (a != std::string::npos && (s == std::string::npos || a < s)) {
      size_t b = a + 12, e = xml.find('<', b);
      if (e == std::string::npos) break;
      id = xml.substr(b, e - b);
      id.erase(0, id.find_first_not_of(" \n\t"));
      id.erase(id.find_last_not_of(" \n\t") + 1);
      if (!out.count(id)) out[id] = -1;
      pos = e;
    } else {
      size_t c = xml.find("<code>", s);
      if (c == std::string::npos) break;
      if (!id.empty()) out[id] = std::atoi(xml.c_str() + c + 6);
      pos = c + 6;
    }
  }
  return out;
}

std::vector<std::string> InstanceIds(const std::string& xml) {
  std::vector<std::string> ids;
  for (const auto& [id, code] : InstanceStates(xml)) ids.push_back(id);
  return ids;
}

std::string FirstText(const std::string& xml, const std::string& tag, const std::string& prefix, size_t from = 0) {
  std::string open = "<" + tag + ">";
  for (size_t p = xml.find(open, from); p != std::string::npos; p = xml.find(open, p + 1)) {
    size_t b = p + open.size(), e = xml.find('<', b);
    std::string v = xml.substr(b, e - b);
    v.erase(0, v.find_first_not_of(" \n\t"));
    v.erase(v.find_last_not_of(" \n\t") + 1);
    if (v.rfind(prefix, 0) == 0) return v;
  }
  return "";
}

std::string ErrorOf(const Response& r) {
  std::string code = FirstText(r.body, "Code", "");
  std::string msg = FirstText(r.body, "Message", "");
  return "HTTP " + std::to_string(r.code) + (code.empty() ? "" : " " + code) + (msg.empty() ? "" : ": " + msg);
}

// ------------------------------------------------------------------------------------------------------------------

struct Options {
  std::vector<int> clients = {1, 8, 32};
  double duration = 10;
  uint64_t min_requests = 10;
  int instances = 1000;
  int run = 200;
  int batch = 20;
  std::string instance_type = "m1.small";
  int run_timeout_s = 300;
  int request_timeout_ms = 300000;
  std::string json_file;
  bool phase_run = true, phase_describe = true;
};

// RunInstances of `n` instances in calls of at most `batch`; appends the ids made to t->ids.
void RunInstances(Target* t, const Options& o, int n) {
  for (int done = 0; done < n;) {
    int k = std::min(o.batch, n - done);
    std::string body = "Action=RunInstances&Version=2016-11-15&ImageId=" + t->image + "&InstanceType=" +
                       o.instance_type + "&MinCount=" + std::to_string(k) + "&MaxCount=" + std::to_string(k);
    Response r = Call(*t, body, o.request_timeout_ms);
    if (r.code != 200) throw std::runtime_error(t->name + ": RunInstances: " + ErrorOf(r));
    auto ids = InstanceIds(r.body);
    if (int(ids.size()) != k) {
      throw std::runtime_error(t->name + ": RunInstances of " + std::to_string(k) + " answered " +
                               std::to_string(ids.size()) + " instances");
    }
    t->ids.insert(t->ids.end(), ids.begin(), ids.end());
    done += k;
  }
}

// Polls DescribeInstances every 100 ms until every id in t.ids is running (16) -- or, with no ids, until it lists
// exactly `total` instances, all running. Returns the number of polls; throws after --run-timeout.
int WaitRunning(const Target& t, const Options& o, Clock::time_point since, int total, int* running_out) {
  int polls = 0;
  while (true) {
    Response r = Call(t, kDescribe, o.request_timeout_ms);
    ++polls;
    if (r.code != 200) throw std::runtime_error(t.name + ": DescribeInstances: " + ErrorOf(r));
    auto states = InstanceStates(r.body);
    int running = 0;
    bool done;
    if (!t.ids.empty()) {
      for (const auto& id : t.ids) running += states.count(id) && states[id] == 16;
      done = running == int(t.ids.size());
    } else {
      for (const auto& [id, code] : states) running += code == 16;
      done = running == total && int(states.size()) == total;
    }
    *running_out = running;
    if (done) return polls;
    if (SecondsSince(since) > o.run_timeout_s) {
      throw std::runtime_error(t.name + ": only " + std::to_string(running) + " of " +
                               std::to_string(t.ids.empty() ? total : int(t.ids.size())) + " instances running after " +
                               std::to_string(o.run_timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The image RunInstances uses: the first ami- DescribeImages shows.
void FindImage(Target* t, const Options& o) {
  if (!t->image.empty()) return;
  Response r = Call(*t, "Action=DescribeImages&Version=2016-11-15", o.request_timeout_ms);
  if (r.code != 200) throw std::runtime_error(t->name + ": DescribeImages: " + ErrorOf(r));
  t->image = FirstText(r.body, "imageId", "ami-");
  if (t->image.empty()) throw std::runtime_error(t->name + ": DescribeImages shows no ami- image");
  Log(t->name + ": image " + t->image);
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string p;
  while (std::getline(in, p, ',')) out.push_back(std::stoi(p));
  return out;
}

void PrintRun(const Options& o, const std::vector<Target>& targets, std::map<std::string, json>& run_res) {
  if (!o.phase_run || o.run <= 0) return;
  std::cout << "\n### RunInstances of " << o.run << " instances (" << (o.run + o.batch - 1) / o.batch << " calls of "
            << o.batch << ") until all are running\n\n";
  std::cout << "| target | calls returned | **all running** | DescribeInstances polls | server CPU s |\n"
               "|---|---:|---:|---:|---:|\n";
  for (const auto& t : targets) {
    const json& r = run_res[t.name];
    std::cout << "| " << t.name << " | " << Fmt(r["calls_returned_s"].get<double>(), 2) << " s | **"
              << Fmt(r["all_running_s"].get<double>(), 2) << " s** | " << r["describe_polls"].get<int>() << " | "
              << Fmt(r["server_cpu_s"].get<double>(), 2) << " |\n";
  }
  std::cout << std::flush;
}

int Main(int argc, char** argv) {
  Options o;
  std::vector<Target> targets;
  std::string stratus_url, moto_url, key_id, secret;
  int stratus_pid = 0, moto_pid = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--stratus") stratus_url = next();
    else if (a == "--moto") moto_url = next();
    else if (a == "--stratus-key-id") key_id = next();
    else if (a == "--stratus-secret") secret = next();
    else if (a == "--stratus-pid") stratus_pid = std::stoi(next());
    else if (a == "--moto-pid") moto_pid = std::stoi(next());
    else if (a == "--clients") o.clients = ParseList(next());
    else if (a == "--duration") o.duration = std::stod(next());
    else if (a == "--min-requests") o.min_requests = std::stoull(next());
    else if (a == "--instances") o.instances = std::stoi(next());
    else if (a == "--run") o.run = std::stoi(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--instance-type") o.instance_type = next();
    else if (a == "--run-timeout") o.run_timeout_s = std::stoi(next());
    else if (a == "--request-timeout") o.request_timeout_ms = std::stoi(next()) * 1000;
    else if (a == "--json") o.json_file = next();
    else if (a == "--phases") {
      std::string p = next();
      o.phase_run = p.find("run") != std::string::npos;
      o.phase_describe = p.find("describe") != std::string::npos;
    }
    else if (a == "-h" || a == "--help") {
      std::cout << "usage: ec2_bench --stratus URL --stratus-key-id ID --stratus-secret SECRET [--moto URL]\n"
                   "  [--stratus-pid PID] [--moto-pid PID] [--clients 1,8,32] [--duration 10] [--min-requests 10]\n"
                   "  [--instances 1000] [--run 200] [--batch 20] [--instance-type m1.small] [--run-timeout 300]\n"
                   "  [--request-timeout 300] [--phases run,describe] [--json FILE]\n";
      return 0;
    } else {
      throw std::runtime_error("unknown argument " + a);
    }
  }
  if (o.run > o.instances || o.run < 0 || o.batch < 1 || o.instances < 1 || o.instances > 5000) {
    throw std::runtime_error("need 0 <= --run <= --instances <= 5000 and --batch >= 1");
  }
  if (!stratus_url.empty()) {
    if (key_id.empty() || secret.empty()) throw std::runtime_error("--stratus needs --stratus-key-id and --stratus-secret");
    Target t = ParseTarget("stratus", stratus_url);
    t.key_id = key_id;
    t.secret = secret;
    t.pid = stratus_pid;
    targets.push_back(t);
  }
  if (!moto_url.empty()) {
    Target t = ParseTarget("moto", moto_url);
    t.pid = moto_pid;
    targets.push_back(t);
  }
  if (targets.empty()) throw std::runtime_error("no target: --stratus and/or --moto");

  json out = {{"options",
               {{"clients", o.clients}, {"duration_s", o.duration}, {"min_requests", o.min_requests},
                {"instances", o.instances}, {"run", o.run}, {"batch", o.batch}, {"instance_type", o.instance_type}}}};
  // 1. RunInstances of --run instances until all are running.
  std::map<std::string, json> run_res;
  if (o.phase_run && o.run > 0) {
    for (auto& t : targets) {
      FindImage(&t, o);
      Response d = Call(t, kDescribe, o.request_timeout_ms);
      if (d.code != 200) throw std::runtime_error(t.name + ": DescribeInstances: " + ErrorOf(d));
      if (!InstanceStates(d.body).empty()) throw std::runtime_error(t.name + ": has instances already; start it fresh");
    }
    for (auto& t : targets) {
      Log(t.name + ": RunInstances of " + std::to_string(o.run) + " in calls of " + std::to_string(o.batch));
      double cpu0 = ProcCpuSeconds(t.pid);
      auto t0 = Clock::now();
      RunInstances(&t, o, o.run);
      double returned = SecondsSince(t0);
      int running = 0;
      int polls = WaitRunning(t, o, t0, 0, &running);
      double total = SecondsSince(t0);
      double cpu1 = ProcCpuSeconds(t.pid);
      run_res[t.name] = {{"instances", o.run},      {"calls", (o.run + o.batch - 1) / o.batch},
                         {"calls_returned_s", returned}, {"all_running_s", total},
                         {"describe_polls", polls},  {"server_cpu_s", cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1}};
      Log(t.name + ": " + std::to_string(running) + " running after " + Fmt(total, 2) + " s (calls returned after " +
          Fmt(returned, 2) + " s)");
    }
  }
  out["run"] = run_res;

  if (!o.phase_describe) {
    PrintRun(o, targets, run_res);
    if (!o.json_file.empty()) std::ofstream(o.json_file) << out.dump(1) << "\n";
    return 0;
  }
  // 2. Preload: RunInstances until the target lists --instances instances (what it holds already counts: run.sh may
  // have applied Instances through the main API), then wait until all are running.
  for (auto& t : targets) {
    t.ids.clear();
    Response d = Call(t, kDescribe, o.request_timeout_ms);
    if (d.code != 200) throw std::runtime_error(t.name + ": DescribeInstances: " + ErrorOf(d));
    int have = int(InstanceStates(d.body).size());
    int more = o.instances - have;
    auto t0 = Clock::now();
    if (more < 0) throw std::runtime_error(t.name + " holds " + std::to_string(have) + " instances, more than --instances");
    if (more > 0) {
      Log(t.name + ": has " + std::to_string(have) + " instances; RunInstances of " + std::to_string(more) + " more");
      FindImage(&t, o);
      RunInstances(&t, o, more);
      t.ids.clear();
    }
    int running = 0;
    WaitRunning(t, o, t0, o.instances, &running);
    Log(t.name + ": " + std::to_string(running) + " instances running (preload " + Fmt(SecondsSince(t0), 1) + " s)");
    out["preload"][t.name] = {{"had", have},
                              {"ran", std::max(more, 0)},
                              {"instances", running},
                              {"seconds", SecondsSince(t0)},
                              {"server_rss_mib", RssMiB(t.pid)}};
  }
  // 3. DescribeInstances of all of them at each concurrency level; stratus then moto per level.
  std::map<std::string, std::map<int, Stats>> res;
  for (int c : o.clients) {
    for (auto& t : targets) {
      if (t.hung) continue;
      Log(t.name + ": DescribeInstances, " + std::to_string(c) + " connections");
      double s0 = ProcCpuSeconds(t.pid), c0 = SelfCpuSeconds();
      Stats st = RunLoad(
          t, c, o.duration, std::max<uint64_t>(o.min_requests, uint64_t(c)), 0,
          [&](int, uint64_t) { return SignedPost(t, kDescribe); },
          [&](int, uint64_t i, const Response& r) -> std::string {
            if (r.code != 200) return ErrorOf(r);
            if (i == 0) {  // every connection's first answer is checked in full
              size_t n = InstanceStates(r.body).size();
              if (n != size_t(o.instances)) {
                return "DescribeInstances listed " + std::to_string(n) + " instances, not " + std::to_string(o.instances);
              }
            }
            return "";
          },
          o.request_timeout_ms);
      double s1 = ProcCpuSeconds(t.pid), c1 = SelfCpuSeconds();
      if (s0 >= 0 && s1 >= 0) st.server_cpu_s = s1 - s0;
      st.client_cpu_s = c1 - c0;
      Log(t.name + ": " + Fmt(st.Rate(), 2) + " req/s, p50 " + Fmt(st.Pct(50), 1) + " ms, p99 " + Fmt(st.Pct(99), 1) +
          " ms, " + std::to_string(st.ok) + " ok, " + std::to_string(st.errors) + " errors" +
          (st.first_error.empty() ? "" : " (" + st.first_error + ")"));
      if (st.timeouts > 0) t.hung = true;
      res[t.name][c] = st;
      out["describe"][t.name][std::to_string(c)] = st.ToJson();
    }
  }
  for (auto& t : targets) out["server_rss_mib_after"][t.name] = RssMiB(t.pid);

  // Markdown.
  bool both = targets.size() == 2;
  const std::string a = targets[0].name, b = both ? targets[1].name : "";
  std::cout << "### DescribeInstances of " << o.instances << " instances (closed loop, " << Fmt(o.duration, 0)
            << " s and at least " << o.min_requests << " requests per phase)\n\n";
  std::cout << "| connections | metric | " << a << (both ? " | " + b + " | " + a + "/" + b : "") << " |\n";
  std::cout << "|---|---|---:|" << (both ? "---:|---:|" : "") << "\n";
  auto row = [&](int c, const std::string& metric, const std::function<double(const Stats&)>& f, int prec,
                 int ratio) {  // 1: a/b, -1: b/a, 0: none
    double va = f(res[a][c]);
    std::cout << "| " << c << " | " << metric << " | " << Fmt(va, prec);
    if (both) {
      double vb = f(res[b][c]);
      std::cout << " | " << Fmt(vb, prec) << " | ";
      if (ratio != 0 && vb > 0 && va > 0) std::cout << Fmt(ratio > 0 ? va / vb : vb / va, 1) << "x";
      else std::cout << "-";
    }
    std::cout << " |\n";
  };
  for (int c : o.clients) {
    row(c, "**req/s**", [](const Stats& s) { return s.Rate(); }, 2, 1);
    row(c, "p50 ms", [](const Stats& s) { return s.Pct(50); }, 1, -1);
    row(c, "p99 ms", [](const Stats& s) { return s.Pct(99); }, 1, -1);
    row(c, "requests answered", [](const Stats& s) { return double(s.ok); }, 0, 0);
    row(c, "server CPU ms/request", [](const Stats& s) { return s.ServerUsPerOp() / 1000; }, 1, -1);
    row(c, "load generator CPU us/request", [](const Stats& s) { return s.ClientUsPerOp(); }, 0, 0);
  }
  std::cout << "\n(ratio columns: how many times better " << a << " is: req/s " << a << "/" << b
            << ", latency and CPU " << b << "/" << a << ")\n\n";
  for (const auto& t : targets) {
    std::cout << "- " << t.name << ": response " << res[t.name][o.clients.front()].body_bytes << " bytes, errors "
              << [&] {
                   uint64_t e = 0;
                   for (auto& [c, s] : res[t.name]) e += s.errors;
                   return e;
                 }()
              << ", reconnects " << [&] {
                   uint64_t e = 0;
                   for (auto& [c, s] : res[t.name]) e += s.reconnects;
                   return e;
                 }()
              << " (a server that answers `Connection: close` costs a new connection per request)"
              << ", RSS after " << Fmt(RssMiB(t.pid), 0) << " MiB\n";
    for (auto& [c, s] : res[t.name]) {
      if (!s.first_error.empty()) std::cout << "  - " << c << " connections, first error: " << s.first_error << "\n";
    }
  }
  PrintRun(o, targets, run_res);
  std::cout << std::flush;
  if (!o.json_file.empty()) std::ofstream(o.json_file) << out.dump(1) << "\n";
  for (const auto& t : targets) {
    if (t.hung) {
      Log(t.name + " stopped answering");
      return 3;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    Log(std::string("error: ") + e.what());
    return 1;
  }
}
