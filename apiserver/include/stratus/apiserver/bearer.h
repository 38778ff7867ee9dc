// The bearer token format, apart from the store (so that it can be fuzzed alone): "Bearer NAME.SECRET", NAME a
// Token object's name (a DNS label), SECRET 43 base64url characters (256 bits).
#pragma once

#include <optional>
#include <string>

namespace stratus {

struct BearerParts {
  std::string name;    // the Token object
  std::string secret;  // what the Token's spec.tokenHash is the SHA-256 of
};

// The parts of an Authorization header's bearer token; nullopt when it is not one (wrong scheme, no dot, a name
// that is not a DNS label, a secret of the wrong length or alphabet).
std::optional<BearerParts> ParseBearer(const std::string& authorization_header);

// A new token's secret (256 random bits, base64url without padding) and the hash the Token object keeps.
struct TokenSecret {
  std::string secret;
  std::string hash;  // lowercase hex SHA-256 of `secret`
};
TokenSecret NewTokenSecret();
std::string TokenHash(const std::string& secret);
// What a client sends after "Bearer ": the Token object's name, a dot, the secret.
inline std::string BearerToken(const std::string& token_name, const std::string& secret) {
  return token_name + "." + secret;
}

}  // namespace stratus
