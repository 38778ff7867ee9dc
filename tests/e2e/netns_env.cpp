// When STRATUS_NETNS names a network namespace (scripts/test.sh sets it, and scripts/libvirt-up.sh starts
// libvirtd inside it), the whole e2e binary moves into that namespace before any test runs, so the servers and
// agents it starts, the bridges, dnsmasq and taps they make and the guests' private addresses all live there;
// API traffic uses that namespace's loopback. Without STRATUS_NETNS nothing changes, and the tests that need
// their own namespace (tests/e2e/network_e2e_test.cpp) fail saying so.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "e2e.h"

namespace stratus::testing {
namespace {

class NetnsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    std::string ns = NetnsName();
    if (ns.empty()) return;
    // Runs on the main thread before any test has started a thread: every thread and child made later inherits
    // the namespace.
    std::string path = "/run/netns/" + ns;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error_ = "STRATUS_NETNS=" + ns + ": cannot open " + path + ": " + std::strerror(errno) +
               " (scripts/libvirt-up.sh creates it)";
      return;
    }
    if (::setns(fd, CLONE_NEWNET) != 0) {
      error_ = "setns(" + path + "): " + std::strerror(errno);
    }
    ::close(fd);
    if (error_.empty()) {
      auto up = Run({"/bin/ip", "link", "set", "lo", "up"});
      if (up.exit_code != 0) error_ = "ip link set lo up in " + ns + ": " + up.err;
    }
    if (!error_.empty()) std::cerr << "[ netns ] " << error_ << "\n";
  }
  static std::string error_;
};
std::string NetnsEnvironment::error_;

[[maybe_unused]] auto* const kEnv = ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

}  // namespace

std::string NetnsError() { return NetnsEnvironment::error_; }

}  // namespace stratus::testing
