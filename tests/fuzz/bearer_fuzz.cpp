// Fuzzes bearer token parsing (the Authorization header of every API request): an accepted header must name a
// DNS-label Token and a 43-character base64url secret, and re-formatting the parts must parse back to them.
#include <cstdlib>
#include <string>

#include "stratus/apiserver/bearer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string header(reinterpret_cast<const char*>(data), size);
  auto p = stratus::ParseBearer(header);
  if (!p) return 0;
  if (p->name.empty() || p->name.size() > 63 || p->secret.size() != 43) abort();
  if (p->name.find('.') != std::string::npos) abort();
  auto again = stratus::ParseBearer("Bearer " + stratus::BearerToken(p->name, p->secret));
  if (!again || again->name != p->name || again->secret != p->secret) abort();
  return 0;
}
