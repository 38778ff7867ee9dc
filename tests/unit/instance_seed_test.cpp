// The NoCloud seed's three files: meta-data names the instance, user-data carries the key pair (and the user's
// data, merged as cloud-init merges a multipart message), network-config v2 the IPAM addresses.
#include "stratus/instance/seed.h"

#include <gtest/gtest.h>

#include "stratus/core/yaml.h"

namespace stratus::instance {
namespace {

SeedInput Input() {
  SeedInput in;
  in.instance_id = "0b7c6a2e-uid";
  in.hostname = "web-1";
  in.nics = {{"52:54:00:aa:bb:01", "10.0.0.5/24", "10.0.0.1", {"10.0.0.1"}}, {"52:54:00:aa:bb:02", "", "", {}}};
  return in;
}

TEST(InstanceSeedTest, MetaDataAndNetworkConfigFromTheInstance) {
  auto s = MakeSeed(Input());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  json meta = ParseJsonOrYaml(s->meta_data).value();
  EXPECT_EQ(meta["instance-id"], "0b7c6a2e-uid");
  EXPECT_EQ(meta["local-hostname"], "web-1");
  json net = ParseJsonOrYaml(s->network_config).value();
  EXPECT_EQ(net["version"], 2);
  const json& eth0 = net["ethernets"]["eth0"];
  EXPECT_EQ(eth0["match"]["macaddress"], "52:54:00:aa:bb:01");
  EXPECT_EQ(eth0["addresses"], json::array({"10.0.0.5/24"}));
  EXPECT_EQ(eth0["gateway4"], "10.0.0.1");
  EXPECT_EQ(eth0["nameservers"]["addresses"], json::array({"10.0.0.1"}));
  EXPECT_EQ(net["ethernets"]["eth1"]["dhcp4"], true);  // no IPAM address: DHCP
}

TEST(InstanceSeedTest, UserDataCarriesKeysUserDataOrBothMerged) {
  SeedInput in = Input();
  auto none = MakeSeed(in);
  EXPECT_EQ(none->user_data.rfind("#cloud-config", 0), 0u);

  in.ssh_keys = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK me@host"};
  auto keys = MakeSeed(in);
  ASSERT_EQ(keys->user_data.rfind("#cloud-config\n", 0), 0u);
  json cc = ParseJsonOrYaml(keys->user_data.substr(14)).value();
  EXPECT_EQ(cc["ssh_authorized_keys"], json::array({"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK me@host"}));

  SeedInput only = Input();
  only.user_data = "#!/bin/sh\necho MARKER\n";
  EXPECT_EQ(MakeSeed(only)->user_data, "#!/bin/sh\necho MARKER\n");  // as given

  in.user_data = "#!/bin/sh\necho MARKER\n";
  auto both = MakeSeed(in);
  const std::string& u = both->user_data;
  ASSERT_EQ(u.rfind("Content-Type: multipart/mixed; boundary=\"", 0), 0u) << u;
  EXPECT_NE(u.find("Content-Type: text/cloud-config"), std::string::npos) << u;
  EXPECT_NE(u.find("Content-Type: text/x-shellscript"), std::string::npos) << u;
  EXPECT_NE(u.find("echo MARKER"), std::string::npos);
  EXPECT_NE(u.find("ssh_authorized_keys"), std::string::npos);
  EXPECT_EQ(MakeSeed(in)->user_data, u);  // the same inputs, the same bytes (no rebuild)
}

TEST(InstanceSeedTest, UserDataMustBeBoundedText) {
  SeedInput in = Input();
  in.user_data = std::string("\xff\xfe binary", 9);
  auto bad = MakeSeed(in);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_NE(bad.status().message().find("spec.userData"), std::string::npos);
  in.user_data = std::string(16385, 'x');
  EXPECT_NE(MakeSeed(in).status().message().find("16 KiB"), std::string::npos);
  in.user_data = "h\xc3\xa9llo";  // UTF-8 text is fine
  EXPECT_TRUE(MakeSeed(in).ok());
}

}  // namespace
}  // namespace stratus::instance
