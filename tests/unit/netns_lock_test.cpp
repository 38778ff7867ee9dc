// One node network reconciler per network namespace: the second taker of the lock is refused with the holder's
// pid, and the namespace is free again once the holder lets go.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "stratus/host/netdev.h"

namespace stratus::host {
namespace {

TEST(NetnsLockTest, SecondAgentInOneNamespaceIsRefusedUntilTheFirstLetsGo) {
  char tmpl[] = "/tmp/stratus-lock-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  auto first = LockNetworkNamespace("", dir);
  ASSERT_TRUE(first.ok()) << first.status().message();
  auto second = LockNetworkNamespace("", dir);  // a new open file description: flock conflicts even in-process
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kAlreadyExists);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
  ::close(*first);
  auto third = LockNetworkNamespace("", dir);
  ASSERT_TRUE(third.ok()) << third.status().message();
  ::close(*third);
  EXPECT_EQ(LockNetworkNamespace("../etc", dir).status().code(), Code::kInvalid) << "names, never paths";
  EXPECT_EQ(LockNetworkNamespace("no-such-ns-" + std::to_string(::getpid()), dir).status().code(), Code::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stratus::host
