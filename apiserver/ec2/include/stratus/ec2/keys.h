// EC2 access keys kept as `AccessKey` objects. Neither the id nor the secret is stored as such: the id is derived
// from the object's uid, and the secret from the uid and the server's key-derivation key (DATA_DIR, 0600), so the
// store (and every backup of it) holds no usable secret, a deleted AccessKey is revoked for good (a new object has
// a new uid), and the secret can still be recomputed to verify SigV4 signatures.
#pragma once

#include <memory>
#include <string>

#include "stratus/core/api_client.h"
#include "stratus/core/status.h"
#include "stratus/ec2/api.h"

namespace stratus::ec2 {

// "AKIA" + 16 characters of [A-Z2-7], from the uid.
std::string AccessKeyIdFor(const std::string& uid);
// The 40-character secret access key of the AccessKey with this uid.
std::string SecretFor(const std::string& master_key, const std::string& uid);

// Reads the key-derivation key from `path`, creating it (32 random bytes, hex, mode 0600) when absent.
StatusOr<std::string> LoadOrCreateMasterKey(const std::string& path);

// Access keys looked up among the AccessKey objects through `client` (in-process).
std::unique_ptr<AccessKeys> NewObjectAccessKeys(ApiClient* client, std::string master_key);

}  // namespace stratus::ec2
