#include "stratus/ec2/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "stratus/core/sha256.h"
#include "stratus/ec2/query.h"

namespace stratus::ec2 {
namespace {

constexpr const char* kAlgorithm = "AWS4-HMAC-SHA256";

Error Incomplete(std::string m) { return {"IncompleteSignature", std::move(m), 400}; }

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Header value as SigV4 canonicalizes it: trimmed, inner runs of spaces collapsed to one.
std::string CanonicalValue(const std::string& v) {
  std::string t = Trim(v), out;
  out.reserve(t.size());
  bool space = false;
  for (char c : t) {
    if (c == ' ' || c == '\t') {
      if (!space) out += ' ';
      space = true;
    } else {
      out += c;
      space = false;
    }
  }
  return out;
}


std::string Sha256Hex(const std::string& s) {
  Sha256 h;
  h.Update(s.data(), s.size());
  return h.Hex();
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

const std::string* HeaderValue(const SignedRequest& req, const std::string& lower_name) {
  for (const auto& [k, v] : req.headers) {
    if (Lower(k) == lower_name) return &v;
  }
  return nullptr;
}

bool AllDigits(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// YYYYMMDD'T'HHMMSS'Z' -> seconds since the epoch; false when malformed.
bool ParseAmzDate(const std::string& s, std::time_t* out) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !AllDigits(s.substr(0, 8)) || !AllDigits(s.substr(9, 6))) {
    return false;
  }
  std::tm tm{};
  tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(s.substr(4, 2)) - 1;
  tm.tm_mday = std::stoi(s.substr(6, 2));
  tm.tm_hour = std::stoi(s.substr(9, 2));
  tm.tm_min = std::stoi(s.substr(11, 2));
  tm.tm_sec = std::stoi(s.substr(13, 2));
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return false;
  }
  *out = timegm(&tm);
  return true;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

// "AKID/20150830/us-east-1/ec2/aws4_request" into `c`.
bool ParseScope(const std::string& cred, Credential* c, Error* err) {
  auto parts = Split(cred, '/');
  if (parts.size() != 5 || parts[0].empty() || parts[4] != "aws4_request" || parts[1].size() != 8 ||
      !AllDigits(parts[1]) || parts[2].empty() || parts[3].empty()) {
    *err = Incomplete("Credential must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request");
    return false;
  }
  c->access_key_id = parts[0];
  c->date = parts[1];
  c->region = parts[2];
  c->service = parts[3];
  return true;
}

bool ParseSignedHeaders(const std::string& s, Credential* c, Error* err) {
  c->signed_headers.clear();
  for (const auto& h : Split(s, ';')) {
    if (h.empty() || Lower(h) != h) {
      *err = Incomplete("SignedHeaders must be lowercase header names separated by ';'");
      return false;
    }
    c->signed_headers.push_back(h);
  }
  if (std::find(c->signed_headers.begin(), c->signed_headers.end(), "host") == c->signed_headers.end()) {
    *err = Incomplete("SignedHeaders must include host");
    return false;
  }
  return true;
}

bool ValidSignature(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](unsigned char ch) {
           return std::isdigit(ch) || (ch >= 'a' && ch <= 'f');
         });
}

}  // namespace

std::string UriEncode(const std::string& s, bool keep_slash) {
  static const char* k = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += k[c >> 4];
      out += k[c & 15];
    }
  }
  return out;
}

bool ParseCredential(const SignedRequest& req, Credential* out, Error* err) {
  *out = Credential{};
  if (const std::string* auth = HeaderValue(req, "authorization")) {
    std::string a = Trim(*auth);
    std::string prefix = std::string(kAlgorithm) + " ";
    if (a.compare(0, prefix.size(), prefix) != 0) {
      *err = Incomplete("Authorization header: only AWS4-HMAC-SHA256 signatures are accepted");
      return false;
    }
    std::string credential, signed_headers, signature;
    for (const auto& part : Split(a.substr(prefix.size()), ',')) {
      std::string p = Trim(part);
      auto eq = p.find('=');
      if (eq == std::string::npos) {
        *err = Incomplete("Authorization header: component without '=' in " + p.substr(0, 40));
        return false;
      }
      std::string key = p.substr(0, eq), value = p.substr(eq + 1);
      if (key == "Credential") {
        credential = value;
      } else if (key == "SignedHeaders") {
        signed_headers = value;
      } else if (key == "Signature") {
        signature = value;
      }
    }
    if (credential.empty() || signed_headers.empty() || signature.empty()) {
      *err = Incomplete("Authorization header must contain Credential, SignedHeaders and Signature");
      return false;
    }
    if (!ParseScope(credential, out, err) || !ParseSignedHeaders(signed_headers, out, err)) return false;
    out->signature = signature;
    const std::string* date = HeaderValue(req, "x-amz-date");
    if (date == nullptr) {
      *err = Incomplete("a signed request needs an X-Amz-Date header");
      return false;
    }
    out->amz_date = Trim(*date);
  } else {
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!DecodeForm(req.raw_query, &pairs, err)) return false;
    Params q(pairs);
    auto sig = q.Get("X-Amz-Signature");
    if (!sig) {
      *err = AuthFailure("the request is not signed: send an AWS Signature Version 4 Authorization header or a "
                         "presigned query");
      return false;
    }
    auto alg = q.Get("X-Amz-Algorithm");
    auto cred = q.Get("X-Amz-Credential");
    auto date = q.Get("X-Amz-Date");
    auto expires = q.Get("X-Amz-Expires");
    auto headers = q.Get("X-Amz-SignedHeaders");
    if (!alg || *alg != kAlgorithm) {
      *err = Incomplete("X-Amz-Algorithm must be AWS4-HMAC-SHA256");
      return false;
    }
    if (!cred || !date || !expires || !headers) {
      *err = Incomplete("a presigned request needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires and "
                        "X-Amz-SignedHeaders");
      return false;
    }
    if (!ParseScope(*cred, out, err) || !ParseSignedHeaders(*headers, out, err)) return false;
    if (expires->empty() || expires->size() > 6 || !AllDigits(*expires)) {
      *err = Incomplete("X-Amz-Expires must be a number of seconds from 1 to 604800");
      return false;
    }
    out->expires_seconds = std::stoll(*expires);
    if (out->expires_seconds < 1 || out->expires_seconds > 604800) {
      *err = Incomplete("X-Amz-Expires must be a number of seconds from 1 to 604800");
      return false;
    }
    out->amz_date = *date;
    out->signature = *sig;
    out->presigned = true;
  }
  std::time_t t;
  if (!ParseAmzDate(out->amz_date, &t)) {
    *err = Incomplete("X-Amz-Date must have the form YYYYMMDDTHHMMSSZ");
    return false;
  }
  if (out->amz_date.compare(0, 8, out->date) != 0) {
    *err = {"SignatureDoesNotMatch", "the credential scope's date does not match X-Amz-Date", 403};
    return false;
  }
  if (!ValidSignature(out->signature)) {
    *err = Incomplete("the signature must be 64 lowercase hexadecimal digits");
    return false;
  }
  return true;
}

std::string CanonicalRequest(const SignedRequest& req, const std::vector<std::string>& signed_headers,
                             bool presigned, const std::string& payload_hash) {
  std::string out = req.method + "\n";
  out += req.raw_path.empty() ? "/" : UriEncode(req.raw_path, /*keep_slash=*/true);
  out += "\n";
  // Query: each name and value decoded, then encoded the one canonical way, sorted by name then value.
  std::vector<std::pair<std::string, std::string>> q;
  if (!req.raw_query.empty()) {
    for (const auto& part : Split(req.raw_query, '&')) {
      if (part.empty()) continue;
      auto eq = part.find('=');
      std::string k = part.substr(0, eq), v = eq == std::string::npos ? "" : part.substr(eq + 1);
      auto decode = [](const std::string& s) {
        std::string d;
        for (size_t i = 0; i < s.size(); ++i) {
          if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
              std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            d += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
          } else {
            d += s[i];
          }
        }
        return d;
      };
      std::string dk = decode(k);
      if (presigned && dk == "X-Amz-Signature") continue;
      q.emplace_back(UriEncode(dk, false), UriEncode(decode(v), false));
    }
  }
  std::sort(q.begin(), q.end());
  for (size_t i = 0; i < q.size(); ++i) {
    if (i) out += "&";
    out += q[i].first + "=" + q[i].second;
  }
  out += "\n";
  for (const auto& name : signed_headers) {
    std::string joined;
    bool first = true;
    for (const auto& [k, v] : req.headers) {
      if (Lower(k) != name) continue;
      if (!first) joined += ",";
      joined += CanonicalValue(v);
      first = false;
    }
    out += name + ":" + joined + "\n";
  }
  out += "\n";
  for (size_t i = 0; i < signed_headers.size(); ++i) {
    if (i) out += ";";
    out += signed_headers[i];
  }
  out += "\n" + payload_hash;
  return out;
}

std::string StringToSign(const Credential& c, const std::string& canonical_request) {
  return std::string(kAlgorithm) + "\n" + c.amz_date + "\n" + c.date + "/" + c.region + "/" + c.service +
         "/aws4_request\n" + Sha256Hex(canonical_request);
}

std::string Signature(const std::string& secret, const Credential& c, const std::string& string_to_sign) {
  std::string k = Hmac("AWS4" + secret, c.date);
  k = Hmac(k, c.region);
  k = Hmac(k, c.service);
  k = Hmac(k, "aws4_request");
  std::string sig = Hmac(k, string_to_sign);
  return HexLower(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

bool Verify(const SignedRequest& req, const std::function<std::optional<std::string>(const std::string&)>& secret_of,
            const VerifyOptions& opts, Credential* out, Error* err) {
  if (!ParseCredential(req, out, err)) return false;
  if (out->service != opts.service) {
    *err = AuthFailure("the credential is scoped to service " + out->service + ", not " + opts.service);
    return false;
  }
  if (out->region != opts.region) {
    *err = AuthFailure("the credential is scoped to region " + out->region + "; this endpoint serves " + opts.region);
    return false;
  }
  std::time_t t = 0;
  ParseAmzDate(out->amz_date, &t);  // checked by ParseCredential
  auto signed_at = std::chrono::system_clock::from_time_t(t);
  if (out->presigned) {
    if (signed_at > opts.now + opts.max_skew || opts.now > signed_at + std::chrono::seconds(out->expires_seconds)) {
      *err = {"RequestExpired", "the presigned request has expired or is not valid yet", 400};
      return false;
    }
  } else if (signed_at > opts.now + opts.max_skew || signed_at < opts.now - opts.max_skew) {
    *err = {"RequestExpired", "the request's X-Amz-Date " + out->amz_date +
                                  " is more than 15 minutes away from the server's time",
            400};
    return false;
  }
  auto secret = secret_of(out->access_key_id);
  if (!secret) {
    *err = AuthFailure("AWS was not able to validate the provided access credentials");
    return false;
  }
  std::string canonical = CanonicalRequest(req, out->signed_headers, out->presigned, Sha256Hex(req.body));
  std::string expected = Signature(*secret, *out, StringToSign(*out, canonical));
  if (expected.size() != out->signature.size() ||
      CRYPTO_memcmp(expected.data(), out->signature.data(), expected.size()) != 0) {
    *err = {"SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method.",
            403};
    return false;
  }
  return true;
}

}  // namespace stratus::ec2
