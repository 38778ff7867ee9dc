// What the node's DHCP servers have leased. The instance reconciler asks this interface whether a guest has
// taken its address instead of reading the network reconciler's files; tests give it a fake.
#pragma once

#include <memory>
#include <string>

namespace stratus::network {

class Leases {
 public:
  virtual ~Leases() = default;
  // True when the DHCP server on `bridge` holds an unexpired lease of `ip` to `mac`.
  virtual bool Leased(const std::string& bridge, const std::string& mac, const std::string& ip) = 0;
};

// The leases of the node network reconciler's dnsmasq instances (its state dir, one <bridge>/ folder each).
std::unique_ptr<Leases> NewDnsmasqLeases(std::string state_dir);

}  // namespace stratus::network
