#include "stratus/apiserver/bearer.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <stdexcept>

#include "stratus/core/object.h"
#include "stratus/core/sha256.h"

namespace stratus {
namespace {

bool IsBase64Url(const std::string& s) {
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string Unpadded64Url(const unsigned char* p, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

}  // namespace

std::optional<BearerParts> ParseBearer(const std::string& header) {
  static const std::string kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  size_t b = kScheme.size(), e = header.size();
  while (b < e && (header[b] == ' ' || header[b] == '\t')) ++b;
  while (e > b && (header[e - 1] == ' ' || header[e - 1] == '\t')) --e;
  std::string token = header.substr(b, e - b);
  auto dot = token.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 63) return std::nullopt;
  BearerParts p{token.substr(0, dot), token.substr(dot + 1)};
  if (p.secret.size() != 43 || !IsBase64Url(p.secret) || !ValidateDns1123Label(p.name, "token").ok()) {
    return std::nullopt;
  }
  return p;
}

TokenSecret NewTokenSecret() {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  TokenSecret t;
  t.secret = Unpadded64Url(b, sizeof b);
  t.hash = TokenHash(t.secret);
  return t;
}

std::string TokenHash(const std::string& secret) {
  Sha256 h;
  h.Update(secret.data(), secret.size());
  return h.Hex();
}

}  // namespace stratus
