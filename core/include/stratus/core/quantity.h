// Kubernetes-style resource quantities for byte sizes (Volume spec.size, Instance spec.rootDisk.size).
#pragma once

#include <cstdint>
#include <string>

#include "stratus/core/status.h"

namespace stratus {

// Parses a byte quantity: an unsigned decimal number, optionally with a fraction, followed by an optional
// suffix, binary (Ki Mi Gi Ti Pi Ei = 1024^n) or decimal (k M G T P E = 1000^n): "10Gi", "512Mi", "1G",
// "1.5Gi", "100". The result must be a whole number of bytes that fits in 64 bits. Returns kInvalid with a
// readable message otherwise ("1K", "1GB", "-1", "", "0.5").
StatusOr<uint64_t> ParseQuantityBytes(const std::string& quantity);

// Formats bytes with the largest binary suffix that divides them exactly: 1073741824 -> "1Gi",
// 1536 -> "1536" (1.5Ki is not printed with a fraction), 0 -> "0".
std::string FormatQuantityBytes(uint64_t bytes);

}  // namespace stratus
