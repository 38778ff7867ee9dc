// Exec and Spawn: programs run from an argument vector, with their output captured, a time limit, and a clean
// signal state (a daemon started from a thread that blocks SIGTERM must still stop on SIGTERM).
#include <gtest/gtest.h>
#include <signal.h>

#include "stratus/core/exec.h"

namespace stratus {
namespace {

TEST(ExecTest, CapturesOutputAndExitCodeWithoutAShell) {
  auto r = Exec({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  // An argument is one argument, whatever it contains.
  auto e = Exec({"/bin/echo", "a; rm -rf /tmp/x", "$(id)"});
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->out, "a; rm -rf /tmp/x $(id)\n");
  EXPECT_FALSE(Exec({"/nonexistent/program"}).ok());
  EXPECT_FALSE(Exec({}).ok());
}

TEST(ExecTest, ChildrenStartWithAnEmptySignalMaskAndDefaultHandlers) {
  // stratusd blocks SIGINT/SIGTERM in its threads (a signal thread waits for them); children must not inherit
  // that, nor an ignored SIGTERM, or a daemon such as dnsmasq could never be stopped gracefully.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  auto prev = signal(SIGTERM, SIG_IGN);
  auto r = Exec({"/bin/grep", "-E", "^(SigBlk|SigIgn):", "/proc/self/status"});
  signal(SIGTERM, prev);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(r->out.find("SigBlk:\t0000000000000000"), std::string::npos) << r->out;
  auto at = r->out.find("SigIgn:\t");
  ASSERT_NE(at, std::string::npos) << r->out;
  unsigned long long ignored = std::stoull(r->out.substr(at + 8, 16), nullptr, 16);
  EXPECT_EQ(ignored & (1ull << (SIGTERM - 1)), 0u) << "SIGTERM is not ignored in the child: " << r->out;
}

}  // namespace
}  // namespace stratus
