// IPv4 addresses and prefixes as host-order integers: the one parser behind schema formats ("ipv4", "cidr"),
// IPAM, dnsmasq and nftables rendering, so every layer agrees on what an address is.
#pragma once

#include <cstdint>
#include <string>

#include "stratus/core/status.h"

namespace stratus {

// Parses dotted-quad IPv4 ("10.44.0.12"): exactly four decimal octets 0..255, no leading zeros (so "010.1.1.1"
// cannot be read as octal by another tool), nothing else. Host byte order.
StatusOr<uint32_t> ParseIpv4(const std::string& s);
std::string FormatIpv4(uint32_t ip);

// An IPv4 prefix such as 10.44.0.0/24.
struct Ipv4Net {
  uint32_t base = 0;  // network address (host bits zero)
  int prefix = 0;     // 0..32
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t broadcast() const { return base | ~mask(); }
  bool Contains(uint32_t ip) const { return (ip & mask()) == base; }
  std::string ToString() const { return FormatIpv4(base) + "/" + std::to_string(prefix); }
};
// Parses "a.b.c.d/p". kInvalid when malformed or when host bits are set ("10.44.0.1/24").
StatusOr<Ipv4Net> ParseCidr(const std::string& s);

}  // namespace stratus
