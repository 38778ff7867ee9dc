// Fuzzes byte-quantity parsing; an accepted quantity must format and parse back to the same number.
#include <cstdlib>
#include <string>

#include "stratus/core/quantity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto q = stratus::ParseQuantityBytes(std::string(reinterpret_cast<const char*>(data), size));
  if (!q.ok()) return 0;
  auto back = stratus::ParseQuantityBytes(stratus::FormatQuantityBytes(*q));
  if (!back.ok() || *back != *q) abort();
  return 0;
}
