// Runs external programs (qemu-img, ip, nft, ...) from an argument vector: no shell, so user strings can never
// be interpreted as shell syntax.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

struct ExecResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout/stderr on `out_fd`/`err_fd`, an empty
// signal mask and default signal dispositions (the caller's blocked SIGTERM/SIGINT must not leak into daemons
// such as dnsmasq, or they could never be stopped gracefully). Returns the child's pid; the caller reaps it.
// kInternal when it cannot be started.
StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd);

// Runs argv[0] (searched in PATH) with the arguments, waits at most `timeout_seconds` (then kills it), and
// returns its exit code and output (each capped at 4 MiB). kInternal when it cannot be started.
StatusOr<ExecResult> Exec(const std::vector<std::string>& argv, int timeout_seconds = 60);

// True when `name` is an executable file in one of PATH's directories (what Spawn and Exec would find).
bool ProgramInPath(const std::string& name);

// Like Exec, but a non-zero exit becomes kInternal naming the command and its stderr.
StatusOr<std::string> ExecChecked(const std::vector<std::string>& argv, int timeout_seconds = 60);

}  // namespace stratus
