// AWS Signature Version 4, as the EC2 API's callers (awscli, boto3, every SDK) sign requests: the Authorization
// header form and the presigned query form (X-Amz-Signature in the query). Pure functions over the request as it
// arrived (raw path and query, headers, body), so they are tested on their own and fuzzed.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stratus/ec2/errors.h"

namespace stratus::ec2 {

// The parts of an HTTP request a signature covers, as received (nothing decoded yet).
struct SignedRequest {
  std::string method;     // GET, POST
  std::string raw_path;   // "/" (still percent-encoded as sent)
  std::string raw_query;  // without the '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names in any case; repeated names allowed
  std::string body;
};

// The credential scope and signature a request carries.
struct Credential {
  std::string access_key_id;
  std::string date;     // YYYYMMDD of the scope
  std::string region;
  std::string service;  // "ec2"
  std::string amz_date; // YYYYMMDD'T'HHMMSS'Z' of the request
  std::vector<std::string> signed_headers;  // lowercase, as listed
  std::string signature;                    // lowercase hex
  bool presigned = false;
  long long expires_seconds = 0;            // X-Amz-Expires of a presigned request
};

// RFC 3986 encoding as SigV4 wants it: unreserved characters (A-Z a-z 0-9 - _ . ~) kept, every other byte %XX
// (uppercase); '/' kept when `keep_slash`.
std::string UriEncode(const std::string& s, bool keep_slash);

// Reads the credential from the Authorization header or the presigned query. IncompleteSignature /
// AuthFailure-style errors name what is missing or malformed. Returns false when the request is not signed at all
// (no Authorization header and no X-Amz-Signature): `err` then says so (AuthFailure).
bool ParseCredential(const SignedRequest& req, Credential* out, Error* err);

// The canonical request of `req` over `signed_headers` (SigV4 step 1). `payload_hash` is the hex SHA-256 of the
// body, or what the request says it is (x-amz-content-sha256).
std::string CanonicalRequest(const SignedRequest& req, const std::vector<std::string>& signed_headers,
                             bool presigned, const std::string& payload_hash);
// "AWS4-HMAC-SHA256\n<amz_date>\n<date>/<region>/<service>/aws4_request\n<hex sha256 of canonical request>".
std::string StringToSign(const Credential& c, const std::string& canonical_request);
// Lowercase hex HMAC-SHA256 signature of `string_to_sign` with the key derived from `secret` and c's scope.
std::string Signature(const std::string& secret, const Credential& c, const std::string& string_to_sign);

struct VerifyOptions {
  std::string region = "us-east-1";  // the only region served; a request scoped to another is refused
  std::string service = "ec2";
  std::chrono::seconds max_skew{15 * 60};
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

// Verifies `req`'s signature against the secret of its access key, looked up with `secret_of` (nullopt: no such
// key -> AuthFailure). On success fills `out` (the access key id and scope). Errors: AuthFailure (unsigned, unknown
// key, wrong scope), IncompleteSignature (malformed), RequestExpired (clock skew or an expired presigned URL),
// SignatureDoesNotMatch (constant-time compare). Never logs or returns the secret.
bool Verify(const SignedRequest& req, const std::function<std::optional<std::string>(const std::string&)>& secret_of,
            const VerifyOptions& opts, Credential* out, Error* err);

}  // namespace stratus::ec2
