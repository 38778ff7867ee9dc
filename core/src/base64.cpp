#include "stratus/core/base64.h"

#include <openssl/evp.h>

#include <cctype>
#include <vector>

namespace stratus {

std::string Base64Encode(std::string_view data) {
  std::string out;
  if (data.empty()) return out;
  // EVP_EncodeBlock writes 4 characters per 3 bytes (rounded up) and a terminating NUL.
  std::vector<unsigned char> buf((data.size() + 2) / 3 * 4 + 1);
  int n = EVP_EncodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.assign(reinterpret_cast<const char*>(buf.data()), static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  std::string s;
  s.reserve(text.size());
  for (char ch : text) {
    if (ch != '\n' && ch != '\r') s += ch;
  }
  if (s.empty()) return std::string();
  if (s.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  if (s.back() == '=') pad = s[s.size() - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < s.size() - pad; ++i) {
    unsigned char ch = static_cast<unsigned char>(s[i]);
    if (!(std::isalnum(ch) || ch == '+' || ch == '/')) return std::nullopt;
  }
  // EVP_DecodeBlock decodes whole 4-character groups and counts padding as zero bytes: drop them after.
  std::vector<unsigned char> buf(s.size() / 4 * 3 + 1);
  int n = EVP_DecodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(buf.data()), static_cast<size_t>(n) - pad);
}

}  // namespace stratus
