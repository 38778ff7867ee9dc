// DHCP leases the test hands out by hand (network::Leases).
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "stratus/network/leases.h"

namespace stratus::fakes {

class FakeLeases : public network::Leases {
 public:
  void Lease(const std::string& bridge, const std::string& mac, const std::string& ip) {
    std::lock_guard l(mu_);
    leased_.insert(bridge + " " + mac + " " + ip);
  }
  bool Leased(const std::string& bridge, const std::string& mac, const std::string& ip) override {
    std::lock_guard l(mu_);
    return leased_.count(bridge + " " + mac + " " + ip) > 0;
  }

 private:
  std::mutex mu_;
  std::set<std::string> leased_;
};

}  // namespace stratus::fakes
