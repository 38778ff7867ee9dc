// What the benchmarks share: an incremental HTTP/1.1 response parser for their event-loop drivers, and /proc
// readings of the server they load (CPU, RSS). Header-only; each benchmark is one translation unit.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double MsSince(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Incremental HTTP/1.1 response parser (status, headers, Content-Length or chunked body).
struct Response {
  int code = 0;
  std::string body;
};

class ResponseParser {
 public:
  void Reset() {
    buf_.clear();
    pos_ = 0;
    state_ = kHead;
    resp_ = Response();
    chunked_ = false;
    len_ = -1;
    close_ = false;
  }
  bool Feed(const char* p, size_t n) {
    buf_.append(p, n);
    while (true) {
      switch (state_) {
        case kHead: {
          auto e = buf_.find("\r\n\r\n", pos_);
          if (e == std::string::npos) return false;
          ParseHead(buf_.substr(pos_, e - pos_));
          pos_ = e + 4;
          if (chunked_) {
            state_ = kChunkSize;
          } else if (len_ >= 0) {
            state_ = kBody;
          } else {
            throw std::runtime_error("response without Content-Length or chunked encoding");
          }
          break;
        }
        case kBody:
          if (buf_.size() - pos_ < size_t(len_)) return false;
          resp_.body = buf_.substr(pos_, size_t(len_));
          pos_ += size_t(len_);
          state_ = kDone;
          return true;
        case kChunkSize: {
          auto e = buf_.find("\r\n", pos_);
          if (e == std::string::npos) return false;
          size_t sz = std::strtoul(buf_.c_str() + pos_, nullptr, 16);
          pos_ = e + 2;
          if (sz == 0) {
            state_ = kTrailer;
          } else {
            len_ = (long long)sz;
            state_ = kChunkData;
          }
          break;
        }
        case kChunkData:
          if (buf_.size() - pos_ < size_t(len_) + 2) return false;
          resp_.body.append(buf_, pos_, size_t(len_));
          pos_ += size_t(len_) + 2;
          state_ = kChunkSize;
          break;
        case kTrailer: {
          auto e = buf_.find("\r\n", pos_);
          if (e == std::string::npos) return false;
          bool empty = e == pos_;
          pos_ = e + 2;
          if (empty) {
            state_ = kDone;
            return true;
          }
          break;
        }
        case kDone:
          return true;
      }
    }
  }
  bool started() const { return !buf_.empty(); }
  bool close_after() const { return close_; }
  Response& response() { return resp_; }
  const Response& response() const { return resp_; }

 private:
  void ParseHead(const std::string& head) {
    std::istringstream in(head);
    std::string line;
    std::getline(in, line);
    auto sp = line.find(' ');
    if (line.compare(0, 5, "HTTP/") != 0 || sp == std::string::npos) throw std::runtime_error("bad status line: " + line);
    resp_.code = std::atoi(line.c_str() + sp + 1);
    if (line.compare(0, 8, "HTTP/1.0") == 0) close_ = true;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon), value = line.substr(colon + 1);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
      if (name == "content-length") len_ = std::atoll(value.c_str());
      if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked_ = true;
      if (name == "connection" && value.find("close") != std::string::npos) close_ = true;
      if (name == "connection" && value.find("keep-alive") != std::string::npos) close_ = false;
    }
    if (resp_.code == 204 || resp_.code == 304) len_ = 0;
  }

  enum State { kHead, kBody, kChunkSize, kChunkData, kTrailer, kDone } state_ = kHead;
  std::string buf_;
  size_t pos_ = 0;
  Response resp_;
  bool chunked_ = false;
  long long len_ = -1;
  bool close_ = false;
};

// CPU seconds (user + system) used so far by a process (from /proc), or -1.
inline double ProcCpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(f, text)) return -1;
  // Fields after the command name (which is in parentheses and may hold spaces): state is field 3, utime 14, stime 15.
  auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(text.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

inline double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

inline double RssMiB(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

inline std::string Fmt(double v, int prec = 1) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

}  // namespace bench
