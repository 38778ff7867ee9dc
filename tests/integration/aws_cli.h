// The real awscli (Debian's `awscli`, /usr/bin/aws) against a Stratus EC2 endpoint: explicit credentials and
// endpoint, nothing from the machine's AWS config, one attempt per call (a retry would hide an error).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace stratus::testing {

inline const char* kAwsCli = "/usr/bin/aws";

struct AwsCli {
  std::string endpoint;  // http(s)://host:port
  std::string ca_file;   // for https
  std::string home;      // HOME for awscli (its cache), created on first use
  std::string key_id, secret;
  std::string region = "us-east-1";

  // `aws ec2 ARGS... --output json`.
  RunResult operator()(std::vector<std::string> args, int timeout_seconds = 120) const {
    args.insert(args.begin(), {kAwsCli, "ec2"});
    std::vector<std::string> common = {"--endpoint-url", endpoint, "--region", region, "--output", "json",
                                       "--cli-connect-timeout", "10"};
    if (!ca_file.empty()) common.insert(common.end(), {"--ca-bundle", ca_file});
    args.insert(args.end(), common.begin(), common.end());
    std::filesystem::create_directories(home);
    return stratus::testing::Run(args, "",
                                 {"HOME=" + home, "AWS_ACCESS_KEY_ID=" + key_id, "AWS_SECRET_ACCESS_KEY=" + secret,
                                  "AWS_CONFIG_FILE=" + home + "/none", "AWS_SHARED_CREDENTIALS_FILE=" + home + "/none",
                                  "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1"},
                                 timeout_seconds);
  }
};

// An AccessKey for `user` in `ns`, made through the API as the admin; its secret is in status (shown once).
inline json CreateAccessKey(ServerProcess& server, const std::string& name, const std::string& user,
                            const std::string& ns) {
  auto r = server.Http("POST", "/apis/stratus.io/v1/accesskeys",
                       json{{"apiVersion", "stratus.io/v1"},
                            {"kind", "AccessKey"},
                            {"metadata", {{"name", name}}},
                            {"spec", {{"user", user}, {"namespace", ns}}}}
                           .dump());
  return r.code == 201 ? r.Json() : json();
}

}  // namespace stratus::testing
