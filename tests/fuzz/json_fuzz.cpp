// Fuzzes JSON decoding as the API server does it (ParseJson for application/json bodies, ParseJsonOrYaml for
// YAML bodies) and checks that a parsed value survives dump() and reparse.
#include <cstdlib>
#include <string>

#include "stratus/core/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto j = stratus::ParseJson(text);
  (void)stratus::ParseJsonOrYaml(text);
  if (!j.ok()) return 0;
  auto back = stratus::ParseJson(j->dump());
  if (!back.ok() || *back != *j) abort();
  return 0;
}
