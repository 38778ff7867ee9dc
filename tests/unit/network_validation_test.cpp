// Networks and SecurityGroups that pass their schemas but not the reconcilers' own rules are refused by the
// registry once the validators are plugged in (as stratusd does), naming the field; status writes are not
// re-judged, so a reconciler can still report on an object stored before a rule existed.
#include <gtest/gtest.h>

#include "registry_env.h"
#include "stratus/network/validation.h"

namespace stratus {
namespace {

class NetworkValidationTest : public RegistryEnv {
 protected:
  void SetUp() override {
    RegistryEnv::SetUp();
    reg_->AddValidator("Network", network::ValidateNetwork);
    reg_->AddValidator("SecurityGroup", network::ValidateSecurityGroup);
  }
  static json Net(const json& spec, const std::string& name = "n1") {
    return {{"apiVersion", "stratus.io/v1"}, {"kind", "Network"}, {"metadata", {{"name", name}}}, {"spec", spec}};
  }
  static json Group(const json& ingress) {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "SecurityGroup"},
            {"metadata", {{"name", "g1"}}},
            {"spec", {{"ingress", ingress}}}};
  }
  // The field of the first cause of a refused create ("" when it was accepted).
  std::string RefusedField(const char* kind, const json& obj, std::string* msg = nullptr) {
    auto c = reg_->Create(R(kind), "default", obj);
    if (c.ok()) return "";
    EXPECT_EQ(c.status().code(), Code::kInvalid) << c.status().message();
    if (msg) *msg = c.status().message();
    return c.status().causes().empty() ? "<no cause>" : c.status().causes()[0].field;
  }
};

TEST_F(NetworkValidationTest, NetworksThatCannotWorkAreRefusedWithTheField) {
  std::string msg;
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}, {"gateway", "10.1.0.1"}}), &msg), "spec.gateway");
  EXPECT_NE(msg.find("Network.stratus.io \"n1\" is invalid: spec.gateway: 10.1.0.1 is outside 10.0.0.0/24"),
            std::string::npos)
      << msg;
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}, {"gateway", "10.0.0.255"}})), "spec.gateway");
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/31"}})), "spec.cidr");
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}, {"mode", "bridged"}})), "spec.hostInterface");
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}, {"vlan", 5}})), "spec.vlan");
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}, {"hostInterface", "eth0"}})), "spec.hostInterface");
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}, {"mode", "bridged"}, {"hostInterface", "eth0"},
                                         {"vlan", 5}}, "n2")),
            "")
      << "vlan on a bridged network passes";
  EXPECT_EQ(RefusedField("Network", Net({{"cidr", "10.0.0.0/24"}})), "") << "a good one passes";
}

TEST_F(NetworkValidationTest, RulesThatCannotMatchAreRefusedAndSpecEditsAreJudgedToo) {
  std::string msg;
  EXPECT_EQ(RefusedField("SecurityGroup",
                         Group({{{"protocol", "tcp"}, {"fromPort", 90}, {"toPort", 80}, {"cidr", "0.0.0.0/0"}}}), &msg),
            "spec.ingress[0].toPort");
  EXPECT_NE(msg.find("must not be below fromPort 90"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("securitygroup g1:"), std::string::npos) << "no reconciler log prefix: " << msg;
  EXPECT_EQ(RefusedField("SecurityGroup", Group({{{"protocol", "tcp"}, {"toPort", 80}, {"cidr", "0.0.0.0/0"}}})),
            "spec.ingress[0].fromPort");
  auto ok = reg_->Create(R("SecurityGroup"), "default",
                         Group({{{"protocol", "tcp"}, {"fromPort", 80}, {"cidr", "0.0.0.0/0"}}}));
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  // An edit that breaks it is refused as well; the stored object is unchanged.
  json bad = *ok;
  bad["spec"]["ingress"][0]["toPort"] = 10;
  auto u = reg_->Update(R("SecurityGroup"), "default", "g1", bad, false);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().causes().at(0).field, "spec.ingress[0].toPort");
  EXPECT_FALSE((*reg_->Get(R("SecurityGroup"), "default", "g1"))["spec"]["ingress"][0].contains("toPort"));
}

TEST_F(NetworkValidationTest, StatusWritesAreNotRejudged) {
  // Stored before the validators existed (a registry without them), then reported on.
  Registry plain(store_.get(), &SchemaRegistry::Builtin());
  auto c = plain.Create(R("Network"), "default", Net({{"cidr", "10.0.0.0/24"}, {"gateway", "10.1.0.1"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  json st = *c;
  st["status"] = {{"phase", "Failed"}};
  auto u = reg_->Update(R("Network"), "default", "n1", st, true);
  EXPECT_TRUE(u.ok()) << u.status().message();
  // Metadata-only edits (labels, finalizers) are not refused either: the spec did not change.
  json lab = *u;
  lab["metadata"]["labels"] = {{"team", "a"}};
  auto l = reg_->Update(R("Network"), "default", "n1", lab, false);
  EXPECT_TRUE(l.ok()) << l.status().message();
}

}  // namespace
}  // namespace stratus
