// `stratusctl console instance/NAME`: the instance's serial console, both ways, through the API server (which
// proxies the node agent's libvirt console stream). The terminal is put in raw mode; Ctrl-] leaves.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include "commands.h"
#include "stratus/core/resources.h"
#include "targets.h"

namespace stratus::cli {

EscapeScan ScanForEscape(const std::string& typed, char escape) {
  EscapeScan s;
  auto at = typed.find(escape);
  s.escaped = at != std::string::npos;
  s.send = s.escaped ? typed.substr(0, at) : typed;
  return s;
}

std::string StripKeepalives(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (char c : bytes) {
    if (c != '\0') out += c;
  }
  return out;
}

namespace {

std::string NewSessionId() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 16; ++i) id += hex[rd() % 16];
  return id;
}

// Raw mode on a terminal for as long as it lives (restored on every way out).
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (!isatty(fd_) || tcgetattr(fd_, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    active_ = tcsetattr(fd_, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(fd_, TCSANOW, &saved_);
  }

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

}  // namespace

int RunConsole(Env& env, const ConsoleOptions& opts) {
  auto names = InstanceNames({opts.target});
  if (!names.ok()) {
    *env.err << "error: " << names.status().message() << "\n";
    return 1;
  }
  const std::string name = (*names)[0];
  const std::string session = NewSessionId();
  const std::string base = ResourcePath(*FindByKind("Instance"), env.ns, name, "console") + "?session=" + session;
  std::atomic<bool> stop{false}, opened{false}, writer{false};
  int wake[2];
  if (pipe(wake) != 0) {
    *env.err << "error: pipe: " << std::strerror(errno) << "\n";
    return 1;
  }
  Status ended;
  std::thread reader([&] {
    ended = env.client->StreamRaw(
        base + (opts.read_only ? "&readOnly=true" : ""), 60,
        [&](const std::map<std::string, std::string>& headers) {
          auto w = headers.find("x-stratus-console-writer");
          writer = w != headers.end() && w->second == "true";
          opened = true;
          *env.err << "Connected to instance/" << name << "'s console" << (writer ? "" : " (read-only)")
                   << "; escape character is ^]\r\n";
          env.err->flush();
        },
        [&](const std::string& bytes) {
          std::string text = StripKeepalives(bytes);
          if (text.empty()) return;
          env.out->write(text.data(), static_cast<std::streamsize>(text.size()));
          env.out->flush();
        },
        &stop);
    char b = 1;
    (void)!write(wake[1], &b, 1);
  });

  bool escaped = false;
  {
    RawTerminal raw(STDIN_FILENO);
    bool warned = false;
    bool input_open = true;  // at the end of its input (< /dev/null, a pipe), the session only watches
    while (!escaped) {
      pollfd fds[2] = {{input_open ? STDIN_FILENO : -1, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents) break;  // the stream ended (or could not start)
      if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) {
        input_open = false;
        continue;
      }
      EscapeScan scan = ScanForEscape(std::string(buf, static_cast<size_t>(n)));
      escaped = scan.escaped;
      if (scan.send.empty() || !opened) continue;
      if (!writer) {
        if (!warned) {
          *env.err << "\r\n[stratus: this session is read-only (" << (opts.read_only ? "--read-only" : "another session is typing")
                   << "); input is not sent]\r\n";
        }
        warned = true;
        continue;
      }
      auto sent = env.client->SendRaw("POST", base, scan.send);
      if (!sent.ok() && !warned) {
        *env.err << "\r\n[stratus: input not sent: " << sent.status().message() << "]\r\n";
        warned = true;
      }
    }
    stop = true;
    if (opened) (void)env.client->SendRaw("DELETE", base, "");  // the agent lets go of the session now
    reader.join();
  }
  close(wake[0]);
  close(wake[1]);
  if (!opened && !ended.ok()) {
    *env.err << "error: " << ended.ToString() << "\n";
    return 1;
  }
  *env.err << "\nDisconnected from instance/" << name << "'s console" << (ended.ok() ? "" : ": " + ended.message())
           << ".\n";
  return 0;
}

}  // namespace stratus::cli
