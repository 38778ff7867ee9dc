// Fuzzes the EC2 endpoint's request parsing: the Query parameters (form decoding, numbered lists, filters,
// scalars) and SigV4 (the Authorization header or presigned query, canonicalization and verification).
// Input: "AUTHORIZATION\nQUERY\nBODY" (missing parts empty).
#include <chrono>
#include <string>

#include "stratus/ec2/query.h"
#include "stratus/ec2/sigv4.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stratus::ec2;
  std::string in(reinterpret_cast<const char*>(data), size);
  auto nl1 = in.find('\n');
  auto nl2 = nl1 == std::string::npos ? std::string::npos : in.find('\n', nl1 + 1);
  SignedRequest r;
  r.method = "POST";
  r.raw_path = "/";
  std::string auth = in.substr(0, nl1);
  r.raw_query = nl1 == std::string::npos ? "" : in.substr(nl1 + 1, nl2 == std::string::npos ? std::string::npos : nl2 - nl1 - 1);
  r.body = nl2 == std::string::npos ? "" : in.substr(nl2 + 1);
  r.headers = {{"Host", "127.0.0.1:8773"}, {"X-Amz-Date", "20150830T123600Z"}, {"Authorization", auth}};
  if (auth.empty()) r.headers.pop_back();

  std::vector<std::pair<std::string, std::string>> pairs;
  Error e;
  if (DecodeForm(r.body, &pairs, &e)) {
    Params p(pairs);
    std::vector<std::string> ids;
    std::vector<Filter> filters;
    bool b;
    long long n;
    (void)p.List("InstanceId", &ids, &e);
    (void)p.Filters(&filters, &e);
    (void)p.Bool("DryRun", false, &b, &e);
    (void)p.Int("MaxCount", 1, 1, 20, &n, &e);
  }
  VerifyOptions o;
  o.now = std::chrono::system_clock::from_time_t(1440938160);
  Credential c;
  (void)Verify(r, [](const std::string&) { return std::optional<std::string>("secret"); }, o, &c, &e);
  return 0;
}
