// Starting a helper process for a test, by argument vector (no shell), its output appended to a log file. Shared by
// the integration harness and the etcd helper of the unit tests.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace stratus::testing {

// Starts argv[0] with its output appended to `log`; returns the child's pid.
inline pid_t SpawnLogged(std::vector<std::string> argv, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace stratus::testing
