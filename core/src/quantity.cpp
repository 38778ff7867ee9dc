#include "stratus/core/quantity.h"

namespace stratus {

namespace {

using u128 = unsigned __int128;

Status QuantityError(const std::string& q, const std::string& why) {
  std::string shown = q.size() > 64 ? q.substr(0, 64) + "..." : q;
  return InvalidError("invalid quantity \"" + shown + "\": " + why);
}

constexpr const char* kHint = "expected a number with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E "
                              "(e.g. 10Gi, 512Mi, 1G)";

}  // namespace

StatusOr<uint64_t> ParseQuantityBytes(const std::string& q) {
  if (q.empty()) return QuantityError(q, "must not be empty; " + std::string(kHint));
  size_t i = 0;
  u128 mantissa = 0;
  int int_digits = 0, frac_digits = 0;
  while (i < q.size() && q[i] >= '0' && q[i] <= '9') {
    if (++int_digits > 20) return QuantityError(q, "too large");
    mantissa = mantissa * 10 + static_cast<unsigned>(q[i] - '0');
    ++i;
  }
  if (i < q.size() && q[i] == '.') {
    ++i;
    while (i < q.size() && q[i] >= '0' && q[i] <= '9') {
      if (++frac_digits > 18) return QuantityError(q, "too many fractional digits");
      mantissa = mantissa * 10 + static_cast<unsigned>(q[i] - '0');
      ++i;
    }
    if (frac_digits == 0) return QuantityError(q, kHint);
  }
  if (int_digits == 0) return QuantityError(q, kHint);

  const std::string suffix = q.substr(i);
  u128 mult = 1;
  struct Suffix {
    const char* s;
    unsigned base;
    int power;
  };
  static const Suffix kSuffixes[] = {{"", 1, 0},     {"Ki", 1024, 1}, {"Mi", 1024, 2}, {"Gi", 1024, 3},
                                     {"Ti", 1024, 4}, {"Pi", 1024, 5}, {"Ei", 1024, 6}, {"k", 1000, 1},
                                     {"M", 1000, 2},  {"G", 1000, 3},  {"T", 1000, 4},  {"P", 1000, 5},
                                     {"E", 1000, 6}};
  bool found = false;
  for (const auto& s : kSuffixes) {
    if (suffix == s.s) {
      for (int p = 0; p < s.power; ++p) mult *= s.base;
      found = true;
      break;
    }
  }
  if (!found) return QuantityError(q, "unknown suffix \"" + suffix + "\"; " + kHint);

  u128 divisor = 1;
  for (int p = 0; p < frac_digits; ++p) divisor *= 10;
  // mantissa < 10^38 would overflow with mult up to 2^60; bound it first.
  const u128 kMax = static_cast<u128>(UINT64_MAX);
  if (mantissa / divisor > kMax) return QuantityError(q, "too large (more than 2^64-1 bytes)");
  u128 whole = mantissa / divisor;  // integral part
  u128 frac = mantissa % divisor;   // fractional part, scaled by divisor
  if (whole != 0 && mult > kMax / whole) return QuantityError(q, "too large (more than 2^64-1 bytes)");
  u128 bytes = whole * mult;
  // frac * mult / divisor must be a whole number of bytes; frac < 10^18 and mult <= 2^60 fits in 128 bits.
  u128 frac_bytes_scaled = frac * mult;
  if (frac_bytes_scaled % divisor != 0) return QuantityError(q, "must be a whole number of bytes");
  bytes += frac_bytes_scaled / divisor;
  if (bytes > kMax) return QuantityError(q, "too large (more than 2^64-1 bytes)");
  return static_cast<uint64_t>(bytes);
}

std::string FormatQuantityBytes(uint64_t bytes) {
  if (bytes == 0) return "0";
  static const char* kSuffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  int p = 0;
  while (p < 6 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++p;
  }
  return std::to_string(bytes) + kSuffix[p];
}

}  // namespace stratus
