// The NoCloud seed an instance's guest reads at boot (cloud-init's "cidata" data source): the three files, made
// from the Instance, its KeyPair and its IPAM addresses. Pure: the agent writes them into an ISO 9660 volume labelled
// cidata and attaches it as a cdrom (next step of issue 15); the same inputs always make the same bytes, so the seed
// is rebuilt only when they change.
#pragma once

#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::instance {

struct SeedNic {
  std::string mac;      // 52:54:00:...
  std::string address;  // CIDR form, 10.0.0.5/24 ("" = DHCP)
  std::string gateway;  // "" = none
  std::vector<std::string> dns;
};

struct SeedInput {
  std::string instance_id;                // the Instance's uid
  std::string hostname;                   // the Instance's name
  std::vector<std::string> ssh_keys;      // authorized_keys lines (the KeyPair's public key)
  std::string user_data;                  // spec.userData, as given
  std::vector<SeedNic> nics;
};

struct SeedFiles {
  std::string meta_data;
  std::string user_data;
  std::string network_config;
};

// kInvalid naming spec.userData when it is not UTF-8 text (or is larger than 16 KiB).
StatusOr<SeedFiles> MakeSeed(const SeedInput& in);

}  // namespace stratus::instance
