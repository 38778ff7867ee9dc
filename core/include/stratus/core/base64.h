// Standard base64 (RFC 4648, with padding) over OpenSSL's EVP block functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stratus {

// Encodes `data` as one line of padded base64.
std::string Base64Encode(std::string_view data);

// Decodes padded base64, ignoring line breaks (\r, \n) as Go's and OpenSSL's decoders do. nullopt when the
// text is not base64 (a bad character, a length that is not a multiple of 4, misplaced padding).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace stratus
