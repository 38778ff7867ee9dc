// Fuzzes the API server's query string handling: percent-decoding (DecodeQuery) and the LIST/WATCH parameters
// (watch, labelSelector, fieldSelector, limit, continue, resourceVersion, timeoutSeconds).
#include <string>

#include "stratus/apiserver/query.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto q = stratus::DecodeQuery(std::string(reinterpret_cast<const char*>(data), size));
  if (!q.ok()) return 0;
  (void)stratus::ParseListParams(*q);
  return 0;
}
