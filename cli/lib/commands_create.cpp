// `stratusctl create accesskey NAME --user USER [-n NAMESPACE]`: makes an EC2 access key and prints its id and
// secret, which the server answers only this once (an `apply` of an AccessKey would lose the secret).
// `stratusctl create token NAME --user USER`: the same for a bearer token of the main API.
#include <iostream>

#include "commands.h"
#include "stratus/core/object.h"

namespace stratus::cli {

int RunCreateAccessKey(Env& env, const CreateAccessKeyOptions& opts) {
  Status v = ValidateDns1123Label(opts.name, "access key name");
  if (!v.ok()) {
    *env.err << "error: " << v.message() << "\n";
    return 1;
  }
  if (opts.user.empty()) {
    *env.err << "error: --user is required: the user the key acts for\n";
    return 1;
  }
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "AccessKey"},
              {"metadata", {{"name", opts.name}}},
              {"spec", {{"user", opts.user}, {"namespace", env.ns}}}};
  auto made = env.client->Create("accesskeys", "", obj);
  if (!made.ok()) {
    *env.err << "error: " << made.status().message() << "\n";
    return 1;
  }
  std::string id = made->value("spec", json::object()).value("accessKeyId", "");
  std::string secret = made->value("status", json::object()).value("secretAccessKey", "");
  if (id.empty() || secret.empty()) {
    *env.err << "error: the server did not answer the key's id and secret\n";
    return 1;
  }
  *env.out << "AWS_ACCESS_KEY_ID=" << id << "\nAWS_SECRET_ACCESS_KEY=" << secret << "\n";
  *env.err << "accesskey/" << opts.name << " created for user " << opts.user << " in namespace " << env.ns
           << "; the secret is shown only now\n";
  return 0;
}

int RunCreateToken(Env& env, const CreateTokenOptions& opts) {
  Status v = ValidateDns1123Label(opts.name, "token name");
  if (!v.ok()) {
    *env.err << "error: " << v.message() << "\n";
    return 1;
  }
  json spec = {{"user", opts.user}};
  if (!opts.expires_at.empty()) spec["expiresAt"] = opts.expires_at;
  if (!opts.description.empty()) spec["description"] = opts.description;
  json obj = {{"apiVersion", "stratus.io/v1"}, {"kind", "Token"}, {"metadata", {{"name", opts.name}}}, {"spec", spec}};
  auto made = env.client->Create("tokens", "", obj);
  if (!made.ok()) {
    *env.err << "error: " << made.status().message() << "\n";
    return 1;
  }
  std::string token = made->value("status", json::object()).value("token", "");
  if (token.empty()) {
    *env.err << "error: the server did not answer the token\n";
    return 1;
  }
  *env.out << token << "\n";
  *env.err << "token/" << opts.name << " created for user " << opts.user << "; it is shown only now\n";
  return 0;
}

}  // namespace stratus::cli
