#include "stratus/core/ipv4.h"

#include <cctype>
#include <cstdio>

namespace stratus {

StatusOr<uint32_t> ParseIpv4(const std::string& s) {
  auto bad = [&] { return InvalidError("'" + s + "' is not an IPv4 address"); };
  uint32_t ip = 0;
  size_t i = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (i >= s.size() || s[i] != '.') return bad();
      ++i;
    }
    size_t start = i;
    uint32_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - start < 3) {
      v = v * 10 + static_cast<uint32_t>(s[i] - '0');
      ++i;
    }
    size_t len = i - start;
    if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return bad();
    ip = (ip << 8) | v;
  }
  if (i != s.size()) return bad();
  return ip;
}

std::string FormatIpv4(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  return buf;
}

StatusOr<Ipv4Net> ParseCidr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return InvalidError("'" + s + "' is not a CIDR (a.b.c.d/prefix)");
  auto ip = ParseIpv4(s.substr(0, slash));
  if (!ip.ok()) return InvalidError("'" + s + "' is not a CIDR (a.b.c.d/prefix)");
  std::string p = s.substr(slash + 1);
  if (p.empty() || p.size() > 2 || !std::isdigit(static_cast<unsigned char>(p[0])) ||
      (p.size() == 2 && !std::isdigit(static_cast<unsigned char>(p[1]))) || (p.size() == 2 && p[0] == '0')) {
    return InvalidError("'" + s + "' has a bad prefix length");
  }
  int prefix = std::stoi(p);
  if (prefix > 32) return InvalidError("'" + s + "' has a bad prefix length");
  Ipv4Net n;
  n.prefix = prefix;
  n.base = *ip & n.mask();
  if (n.base != *ip) return InvalidError("'" + s + "' has host bits set (did you mean " + n.ToString() + "?)");
  return n;
}

}  // namespace stratus
