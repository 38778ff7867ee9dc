// The EC2 Query API as a stateless translation onto Stratus objects: a request is verified (SigV4, against the
// caller's access key), its Action dispatched, and the answer read from (later: written to) the same objects the
// YAML path uses. Nothing EC2-specific is stored apart from them: EC2 ids are derived from the objects' uids.
// Transport-free: the HTTP listener hands a SignedRequest in and sends the Reply out.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "stratus/core/api_client.h"
#include "stratus/ec2/errors.h"
#include "stratus/ec2/ids.h"
#include "stratus/ec2/sigv4.h"

namespace stratus::ec2 {

// An EC2 access key and who it acts for: the user, and the namespace that is its EC2 "account".
struct AccessKey {
  std::string id;
  std::string secret;
  std::string user;
  std::string ns;
};

// Where access keys come from (the identity store of the tenancy work; a map in tests).
class AccessKeys {
 public:
  virtual ~AccessKeys() = default;
  virtual std::optional<AccessKey> Find(const std::string& id) = 0;
};

struct ApiOptions {
  std::string region = "us-east-1";
  // Whether the key's user may `verb` (get list watch create update patch delete) `plural` in the key's
  // namespace: the main API's authorization. kUnauthorized (the user is gone or disabled) answers AuthFailure,
  // kForbidden UnauthorizedOperation. Unset: every verified key may do everything in its namespace.
  std::function<Status(const AccessKey& key, const std::string& verb, const std::string& plural)> authorize;
  // The tail of an instance's serial console log (GetConsoleOutput), read from its node's agent. kNotFound when
  // there is none yet. Unset: GetConsoleOutput answers an empty output.
  std::function<StatusOr<std::string>(const std::string& ns, const std::string& instance)> console_output;
};

struct Reply {
  int http = 200;
  std::string body;  // text/xml
};

class Api {
 public:
  // `client` reads and writes the objects (in-process); `keys` verifies callers.
  Api(ApiClient* client, AccessKeys* keys, ApiOptions opts);
  Reply Handle(const SignedRequest& req, std::chrono::system_clock::time_point now);

 private:
  ApiClient* client_;
  AccessKeys* keys_;
  ApiOptions opts_;
};

}  // namespace stratus::ec2
