// The EC2 translation over a real registry: signed requests in, EC2's XML out, read from the same objects the
// YAML path makes. Requests are signed here with the SigV4 functions that ec2_sigv4_test checks against botocore.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "registry_env.h"
#include "stratus/apiserver/local_client.h"
#include "stratus/core/sha256.h"
#include "stratus/ec2/api.h"

namespace stratus::ec2 {
namespace {

class MapKeys : public AccessKeys {
 public:
  std::optional<AccessKey> Find(const std::string& id) override {
    auto it = keys.find(id);
    if (it == keys.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, AccessKey> keys;
};

std::string AmzDate(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// A POST as awscli sends it, signed with `secret`.
SignedRequest Signed(const std::string& body, const std::string& key_id, const std::string& secret,
                     std::chrono::system_clock::time_point at) {
  SignedRequest r;
  r.method = "POST";
  r.raw_path = "/";
  r.body = body;
  Credential c;
  c.access_key_id = key_id;
  c.amz_date = AmzDate(at);
  c.date = c.amz_date.substr(0, 8);
  c.region = "us-east-1";
  c.service = "ec2";
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"Host", "127.0.0.1:8773"},
               {"X-Amz-Date", c.amz_date}};
  std::vector<std::string> signed_headers = {"content-type", "host", "x-amz-date"};
  Sha256 h;
  h.Update(body.data(), body.size());
  std::string sig = Signature(secret, c, StringToSign(c, CanonicalRequest(r, signed_headers, false, h.Hex())));
  r.headers.push_back({"Authorization", "AWS4-HMAC-SHA256 Credential=" + key_id + "/" + c.date +
                                            "/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                                            "Signature=" + sig});
  return r;
}

class Ec2ApiTest : public RegistryEnv {
 protected:
  void SetUp() override {
    RegistryEnv::SetUp();
    client_ = NewLocalApiClient(reg_.get());
    keys_.keys["AKIAALICE0000000000A"] = {"AKIAALICE0000000000A", "alice-secret", "alice", "default"};
    keys_.keys["AKIABOB00000000000B0"] = {"AKIABOB00000000000B0", "bob-secret", "bob", "team-b"};
    api_ = std::make_unique<Api>(client_.get(), &keys_, ApiOptions{});
    ASSERT_TRUE(reg_->Create(R("Namespace"), "", {{"apiVersion", "stratus.io/v1"}, {"kind", "Namespace"},
                                                 {"metadata", {{"name", "team-b"}}}})
                    .ok());
  }
  Reply Call(const std::string& body, const std::string& who = "alice") {
    auto now = std::chrono::system_clock::now();
    if (who == "alice") return api_->Handle(Signed(body, "AKIAALICE0000000000A", "alice-secret", now), now);
    return api_->Handle(Signed(body, "AKIABOB00000000000B0", "bob-secret", now), now);
  }
  json Instance(const std::string& name, const std::string& ns) {
    json o = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Instance"},
              {"metadata", {{"name", name}, {"namespace", ns}}},
              {"spec", {{"instanceType", "m1.small"}, {"image", "debian"}}}};
    auto r = reg_->Create(R("Instance"), ns, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : json();
  }

  // A disk Image in default; returns its EC2 id.
  std::string MakeImage(const std::string& name) {
    json img = reg_->Create(R("Image"), "default",
                            {{"apiVersion", "stratus.io/v1"},
                             {"kind", "Image"},
                             {"metadata", {{"name", name}, {"namespace", "default"}}},
                             {"spec", {{"source", {{"url", "file:///nowhere.qcow2"}}}}}})
                   .value();
    return Ec2Id("ami", img["metadata"]["uid"]);
  }

  std::unique_ptr<ApiClient> client_;
  MapKeys keys_;
  std::unique_ptr<Api> api_;
};

TEST_F(Ec2ApiTest, DescribeInstancesShowsOnlyTheCallersNamespaceWithStableIds) {
  json web = Instance("web-1", "default");
  Instance("db-1", "team-b");
  Reply r = Call("Action=DescribeInstances&Version=2016-11-15");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string id = Ec2Id("i", web["metadata"]["uid"]);
  EXPECT_EQ(id.size(), 19u);
  EXPECT_NE(r.body.find("<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"),
            std::string::npos);
  EXPECT_NE(r.body.find("<instanceId>" + id + "</instanceId>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<name>pending</name>"), std::string::npos);
  EXPECT_EQ(r.body.find("db-1"), std::string::npos) << "another namespace leaked: " << r.body;

  Reply one = Call("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + id);
  EXPECT_EQ(one.http, 200);
  EXPECT_NE(one.body.find(id), std::string::npos);
  Reply filtered = Call("Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=running");
  EXPECT_EQ(filtered.http, 200);
  EXPECT_EQ(filtered.body.find(id), std::string::npos) << "a pending instance matched state running";
}

TEST_F(Ec2ApiTest, UnknownAndMalformedIdsGetEc2sCodes) {
  Instance("web-1", "default");
  Reply missing = Call("Action=DescribeInstances&InstanceId.1=i-0123456789abcdef0");
  EXPECT_EQ(missing.http, 400);
  EXPECT_NE(missing.body.find("<Code>InvalidInstanceID.NotFound</Code>"), std::string::npos) << missing.body;
  Reply malformed = Call("Action=DescribeInstances&InstanceId.1=web-1");
  EXPECT_NE(malformed.body.find("<Code>InvalidInstanceID.Malformed</Code>"), std::string::npos) << malformed.body;
  // bob's instance id, asked for by alice, does not exist for her.
  json db = Instance("db-1", "team-b");
  Reply other = Call("Action=DescribeInstances&InstanceId.1=" + Ec2Id("i", db["metadata"]["uid"]));
  EXPECT_NE(other.body.find("InvalidInstanceID.NotFound"), std::string::npos);
  EXPECT_EQ(Call("Action=DescribeInstances&Filter.1.Name=nope&Filter.1.Value.1=x").http, 400);
}

TEST_F(Ec2ApiTest, ActionsDryRunAndSignaturesAreChecked) {
  Reply bad = Call("Action=LaunchRockets");
  EXPECT_EQ(bad.http, 400);
  EXPECT_NE(bad.body.find("<Code>InvalidAction</Code>"), std::string::npos);
  EXPECT_NE(Call("Version=2016-11-15").body.find("<Code>MissingParameter</Code>"), std::string::npos);
  Reply dry = Call("Action=DescribeRegions&DryRun=true");
  EXPECT_EQ(dry.http, 412);
  EXPECT_NE(dry.body.find("DryRunOperation"), std::string::npos);
  Reply regions = Call("Action=DescribeRegions");
  EXPECT_EQ(regions.http, 200);
  EXPECT_NE(regions.body.find("<regionName>us-east-1</regionName>"), std::string::npos);

  auto now = std::chrono::system_clock::now();
  Reply forged = api_->Handle(Signed("Action=DescribeInstances", "AKIAALICE0000000000A", "guess", now), now);
  EXPECT_EQ(forged.http, 403);
  EXPECT_NE(forged.body.find("SignatureDoesNotMatch"), std::string::npos);
  Reply unknown = api_->Handle(Signed("Action=DescribeInstances", "AKIANOBODY0000000000", "x", now), now);
  EXPECT_EQ(unknown.http, 401);
  EXPECT_NE(unknown.body.find("AuthFailure"), std::string::npos);
  Reply stale = api_->Handle(Signed("Action=DescribeInstances", "AKIAALICE0000000000A", "alice-secret",
                                    now - std::chrono::minutes(20)),
                             now);
  EXPECT_NE(stale.body.find("RequestExpired"), std::string::npos);
}

TEST_F(Ec2ApiTest, KeyPairsAndImagesAreListed) {
  ASSERT_TRUE(reg_->Create(R("KeyPair"), "default",
                           {{"apiVersion", "stratus.io/v1"},
                            {"kind", "KeyPair"},
                            {"metadata", {{"name", "laptop"}, {"namespace", "default"}}},
                            {"spec", {{"publicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host"}}}})
                  .ok());
  Reply kp = Call("Action=DescribeKeyPairs");
  EXPECT_EQ(kp.http, 200) << kp.body;
  EXPECT_NE(kp.body.find("<keyName>laptop</keyName>"), std::string::npos) << kp.body;
  EXPECT_NE(kp.body.find("<keyType>ed25519</keyType>"), std::string::npos);
  EXPECT_NE(Call("Action=DescribeKeyPairs&KeyName.1=desk").body.find("InvalidKeyPair.NotFound"), std::string::npos);
  EXPECT_NE(Call("Action=DescribeImages&ImageId.1=ami-0123456789abcdef0").body.find("InvalidAMIID.NotFound"),
            std::string::npos);
  EXPECT_NE(Call("Action=DescribeImages&ImageId.1=debian").body.find("InvalidAMIID.Malformed"), std::string::npos);
}

TEST_F(Ec2ApiTest, RunInstancesMakesInstancesTheYamlPathSeesAndTheVerbsDriveThem) {
  std::string ami = MakeImage("debian");
  // 'hello' in base64; a Name tag names the instance.
  Reply run = Call("Action=RunInstances&ImageId=" + ami + "&MinCount=1&MaxCount=1&InstanceType=m1.small&UserData=aGVsbG8%3D"
                   "&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name&"
                   "TagSpecification.1.Tag.1.Value=web-7");
  ASSERT_EQ(run.http, 200) << run.body;
  auto inst = reg_->Get(R("Instance"), "default", "web-7");
  ASSERT_TRUE(inst.ok());
  EXPECT_EQ((*inst)["spec"]["image"], "debian");
  EXPECT_EQ((*inst)["spec"]["userData"], "hello");
  std::string id = Ec2Id("i", (*inst)["metadata"]["uid"]);
  EXPECT_NE(run.body.find("<instanceId>" + id + "</instanceId>"), std::string::npos) << run.body;

  Reply three = Call("Action=RunInstances&ImageId=" + ami + "&MinCount=1&MaxCount=3");
  ASSERT_EQ(three.http, 200) << three.body;
  EXPECT_EQ(reg_->List(R("Instance"), "default", {}).value()["items"].size(), 4u);

  Reply stop = Call("Action=StopInstances&InstanceId.1=" + id);
  ASSERT_EQ(stop.http, 200) << stop.body;
  EXPECT_EQ(reg_->Get(R("Instance"), "default", "web-7").value()["spec"]["powerState"], "Stopped");
  EXPECT_EQ(Call("Action=StartInstances&InstanceId.1=" + id).http, 200);
  EXPECT_EQ(reg_->Get(R("Instance"), "default", "web-7").value()["spec"]["powerState"], "Running");
  Reply reboot = Call("Action=RebootInstances&InstanceId.1=" + id);
  EXPECT_NE(reboot.body.find("<return>true</return>"), std::string::npos) << reboot.body;
  EXPECT_TRUE(reg_->Get(R("Instance"), "default", "web-7").value()["spec"].contains("restartRequestedAt"));

  Reply term = Call("Action=TerminateInstances&InstanceId.1=" + id);
  ASSERT_EQ(term.http, 200) << term.body;
  EXPECT_NE(term.body.find("<name>shutting-down</name>"), std::string::npos);
  auto gone = reg_->Get(R("Instance"), "default", "web-7");
  EXPECT_TRUE(!gone.ok() || gone->at("metadata").contains("deletionTimestamp"));
}

TEST_F(Ec2ApiTest, RunInstancesRefusesBadInputAndMakesNothing) {
  std::string ami = MakeImage("debian");
  struct Case {
    std::string query, code;
  };
  std::vector<Case> cases = {
      {"MinCount=1&MaxCount=1", "MissingParameter"},
      {"ImageId=" + ami + "&MaxCount=1", "MissingParameter"},
      {"ImageId=debian&MinCount=1&MaxCount=1", "InvalidAMIID.Malformed"},
      {"ImageId=ami-0123456789abcdef0&MinCount=1&MaxCount=1", "InvalidAMIID.NotFound"},
      {"ImageId=" + ami + "&MinCount=3&MaxCount=2", "InvalidParameterCombination"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=21", "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&UserData=%21%21%21", "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&KeyName=nope", "InvalidKeyPair.NotFound"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&SecurityGroupId.1=sg-0123456789abcdef0", "InvalidGroup.NotFound"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&InstanceType=m1.small&TagSpecification.1.ResourceType=instance&"
       "TagSpecification.1.Tag.1.Key=aws:reserved&TagSpecification.1.Tag.1.Value=x",
       "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&TagSpecification.1.ResourceType=volume&"
       "TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
       "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&TagSpecification.1.ResourceType=instance&"
       "TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=" + std::string(257, 'v'),
       "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&KernelId=ami-0123456789abcdef0", "InvalidAMIID.Malformed"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&KernelId=aki-0123456789abcdef0", "InvalidAMIID.NotFound"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&Placement.AvailabilityZone=mars-1a", "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&SubnetId=subnet-0123456789abcdef0", "InvalidSubnetID.NotFound"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=2&PrivateIpAddress=10.0.0.5", "InvalidParameterCombination"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&BlockDeviceMapping.1.DeviceName=/dev/sdf&"
       "BlockDeviceMapping.1.Ebs.VolumeSize=1", "InvalidParameterValue"},
      {"ImageId=" + ami + "&MinCount=1&MaxCount=1&BlockDeviceMapping.1.DeviceName=/dev/sda1&"
       "BlockDeviceMapping.1.Ebs.VolumeSize=0", "InvalidParameterValue"},
  };
  for (const auto& tc : cases) {
    Reply r = Call("Action=RunInstances&" + tc.query);
    EXPECT_EQ(r.http, 400) << tc.query << " -> " << r.body;
    EXPECT_NE(r.body.find("<Code>" + tc.code + "</Code>"), std::string::npos) << tc.query << " -> " << r.body;
  }
  EXPECT_EQ(reg_->List(R("Instance"), "default", {}).value()["items"].size(), 0u);
  EXPECT_NE(Call("Action=TerminateInstances").body.find("MissingParameter"), std::string::npos);
  EXPECT_NE(Call("Action=StopInstances&InstanceId.1=i-0123456789abcdef0").body.find("InvalidInstanceID.NotFound"),
            std::string::npos);
}

}  // namespace
}  // namespace stratus::ec2


namespace stratus::ec2 {
namespace {

// Bad input on every action: missing, malformed, oversized and wrong-typed parameters and another project's ids.
// Every answer is an EC2 error (a <Code>) with a 4xx status, never a 5xx, and the server keeps serving.
TEST_F(Ec2ApiTest, BadInputToEveryActionIsA4xxWithAnEc2Code) {
  json other = Instance("theirs", "team-b");
  std::string their_instance = Ec2Id("i", other["metadata"]["uid"]);
  MakeImage("disk");
  const std::vector<std::string> actions = {
      "DescribeRegions", "DescribeAvailabilityZones", "DescribeInstances", "DescribeImages", "DescribeKeyPairs",
      "DescribeInstanceTypes", "RunInstances", "TerminateInstances", "StartInstances", "StopInstances",
      "RebootInstances", "CreateKeyPair", "ImportKeyPair", "DeleteKeyPair", "CreateVolume", "DescribeVolumes",
      "DeleteVolume", "AttachVolume", "DetachVolume", "CreateSecurityGroup", "DescribeSecurityGroups",
      "DeleteSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
      "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress", "CreateTags", "DeleteTags", "DescribeTags",
      "GetConsoleOutput", "DescribeInstanceAttribute", "ModifyInstanceAttribute", "RegisterImage", "DeregisterImage",
      "DescribeImageAttribute", "CreateSubnet", "DeleteSubnet", "ModifyVolume", "DescribeVolumeStatus",
      "DescribeVolumesModifications", "DescribeSecurityGroupRules", "DescribeVpcs", "DescribeSubnets",
      "DescribeInstanceStatus"};
  const std::string big(70000, 'x');
  const std::vector<std::string> bad = {
      "",
      "&InstanceId.1=i-zzzz&VolumeId=vol-!!&GroupId=sg-%00&ImageId=ami-x",
      "&InstanceId.1=" + their_instance + "&VolumeId=vol-0123456789abcdef0&GroupId=sg-0123456789abcdef0",
      "&MinCount=99999999999999999999999&MaxCount=-1&Size=abc&FromPort=x",
      "&KeyName=" + big + "&GroupName=" + big + "&GroupDescription=" + big + "&PublicKeyMaterial=" + big,
      "&KeyName=UPPER&GroupName=Bad_Name&GroupDescription=d&KeyType=dsa&Device=/dev/hda&InstanceId=i-0123456789abcdef0",
      "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=70000&GroupName=nosuch",
      "&IpPermissions.1.IpProtocol=udp&IpPermissions.1.FromPort=5&IpPermissions.1.ToPort=1&GroupName=nosuch",
      "&Filter.1.Name=bogus&Filter.1.Value.1=x&InstanceType.1=m9.none&RegionName.1=mars-1",
      "&UserData=%%%%&ImageId=ami-0123456789abcdef0&MinCount=1&MaxCount=1",
      "&DryRun=maybe",
      "&ResourceId.1=i-zzz&Tag.1.Key=aws:x&Attribute=nope&Name=x&ImageLocation=file:///etc/shadow&CidrBlock=10.0.0.0/8"
      "&VpcId=vpc-0&SubnetId=subnet-zz&Size=-5&NextToken=%ff%fe",
      "&ResourceId.1=" + their_instance + "&Tag.1.Key=" + big + "&Tag.99999.Value=v&InstanceId=" + their_instance +
      "&Attribute=instanceType&InstanceType.Value=m1.small&UserData.Value=" + big,
  };
  // Every action with every bad set: never a 5xx; an error is always an EC2 error (parameters an action does not
  // take are ignored, so some combinations are fine requests).
  for (const auto& action : actions) {
    for (const auto& extra : bad) {
      Reply r = Call("Action=" + action + "&Version=2016-11-15" + extra);
      SCOPED_TRACE(action + " " + extra.substr(0, 120));
      EXPECT_LT(r.http, 500) << r.body.substr(0, 400);
      if (r.http != 200) EXPECT_NE(r.body.find("<Code>"), std::string::npos) << r.body.substr(0, 400);
    }
  }
  // And what each action must refuse, with the code EC2 uses.
  const std::vector<std::tuple<std::string, std::string, std::string>> refused = {
      {"RunInstances", "", "MissingParameter"},
      {"RunInstances", "&ImageId=ami-x&MinCount=1&MaxCount=1", "InvalidAMIID.Malformed"},
      {"RunInstances", "&ImageId=ami-0123456789abcdef0&MinCount=99999999999999999999999&MaxCount=1", "InvalidParameterValue"},
      {"RunInstances", "&ImageId=ami-0123456789abcdef0&MinCount=2&MaxCount=1", "InvalidParameterCombination"},
      {"TerminateInstances", "&InstanceId.1=" + their_instance, "InvalidInstanceID.NotFound"},
      {"StopInstances", "&InstanceId.1=i-zzzz", "InvalidInstanceID.Malformed"},
      {"CreateKeyPair", "", "MissingParameter"},
      {"CreateKeyPair", "&KeyName=UPPER", "InvalidParameterValue"},
      {"CreateKeyPair", "&KeyName=k&KeyType=dsa", "InvalidParameterValue"},
      {"ImportKeyPair", "&KeyName=k&PublicKeyMaterial=" + big, "InvalidParameterValue"},
      {"ImportKeyPair", "&KeyName=k&PublicKeyMaterial=c3NoLXJzYSBub3Rhc2V5", "InvalidKey.Format"},
      {"DeleteKeyPair", "&KeyPairId=key-zz", "InvalidKeyPair.Malformed"},
      {"CreateVolume", "", "MissingParameter"},
      {"CreateVolume", "&Size=abc", "InvalidParameterValue"},
      {"CreateVolume", "&Size=99999999", "InvalidParameterValue"},
      {"DescribeVolumes", "&VolumeId.1=vol-!!", "InvalidVolumeID.Malformed"},
      {"DeleteVolume", "&VolumeId=vol-0123456789abcdef0", "InvalidVolume.NotFound"},
      {"AttachVolume", "&VolumeId=vol-0123456789abcdef0&InstanceId=i-0123456789abcdef0&Device=/dev/sdf",
       "InvalidVolume.NotFound"},
      {"DetachVolume", "", "MissingParameter"},
      {"CreateSecurityGroup", "&GroupName=Bad_Name&GroupDescription=d", "InvalidParameterValue"},
      {"CreateSecurityGroup", "&GroupName=ok", "MissingParameter"},
      {"DescribeSecurityGroups", "&GroupId.1=sg-%00", "InvalidGroupId.Malformed"},
      {"DeleteSecurityGroup", "&GroupId=sg-0123456789abcdef0", "InvalidGroup.NotFound"},
      {"AuthorizeSecurityGroupIngress", "&GroupName=nosuch&IpPermissions.1.IpProtocol=tcp", "InvalidGroup.NotFound"},
      {"DescribeInstanceTypes", "&InstanceType.1=m9.none", "InvalidInstanceType"},
      {"DescribeRegions", "&RegionName.1=mars-1", "InvalidParameterValue"},
      {"DescribeInstances", "&Filter.1.Name=bogus&Filter.1.Value.1=x", "InvalidParameterValue"},
      {"DescribeInstances", "&DryRun=maybe", "InvalidParameterValue"},
      {"NoSuchAction", "", "InvalidAction"},
      {"CreateTags", "", "MissingParameter"},
      {"CreateTags", "&ResourceId.1=i-0123456789abcdef0&Tag.1.Key=k&Tag.1.Value=v", "InvalidInstanceID.NotFound"},
      {"CreateTags", "&ResourceId.1=" + their_instance + "&Tag.1.Key=k", "InvalidInstanceID.NotFound"},
      {"CreateTags", "&ResourceId.1=foo-0123456789abcdef0&Tag.1.Key=k", "InvalidID"},
      {"CreateTags", "&ResourceId.1=i-0123456789abcdef0&Tag.1.Key=aws:k", "InvalidParameterValue"},
      {"DeleteTags", "&ResourceId.1=vol-0123456789abcdef0", "InvalidVolume.NotFound"},
      {"DescribeTags", "&Filter.1.Name=bogus&Filter.1.Value.1=x", "InvalidParameterValue"},
      {"DescribeTags", "&NextToken=!!", "InvalidParameterValue"},
      {"GetConsoleOutput", "", "MissingParameter"},
      {"GetConsoleOutput", "&InstanceId=" + their_instance, "InvalidInstanceID.NotFound"},
      {"DescribeInstanceAttribute", "&InstanceId=i-0123456789abcdef0", "MissingParameter"},
      {"DescribeInstanceAttribute", "&InstanceId=i-0123456789abcdef0&Attribute=nope", "InvalidParameterValue"},
      {"ModifyInstanceAttribute", "&InstanceId=" + their_instance + "&InstanceType.Value=m1.small",
       "InvalidInstanceID.NotFound"},
      {"RegisterImage", "", "MissingParameter"},
      {"RegisterImage", "&Name=abc&ImageLocation=file:///etc/shadow", "InvalidParameterValue"},
      {"RegisterImage", "&Name=abc&ImageLocation=http://x/y&KernelId=aki-0123456789abcdef0", "InvalidAMIID.NotFound"},
      {"DeregisterImage", "&ImageId=ami-x", "InvalidAMIID.Malformed"},
      {"DescribeImageAttribute", "&ImageId=ami-0123456789abcdef0&Attribute=bogus", "InvalidParameterValue"},
      {"CreateSubnet", "&VpcId=vpc-0123456789abcdef0&CidrBlock=10.9.0.0/24", "InvalidVpcID.NotFound"},
      {"CreateSubnet", "&VpcId=" + Ec2Id("vpc", "namespace/default") + "&CidrBlock=10.9.0.0/8", "InvalidSubnet.Range"},
      {"CreateSubnet", "&VpcId=" + Ec2Id("vpc", "namespace/default") + "&CidrBlock=10.9.0/24", "InvalidParameterValue"},
      {"DeleteSubnet", "&SubnetId=subnet-zz", "InvalidSubnetID.Malformed"},
      {"ModifyVolume", "&VolumeId=vol-0123456789abcdef0&Size=5", "InvalidVolume.NotFound"},
      {"DescribeSecurityGroupRules", "&SecurityGroupRuleId.1=sgr-zz", "InvalidSecurityGroupRuleId.Malformed"},
  };
  for (const auto& [action, extra, code] : refused) {
    Reply r = Call("Action=" + action + "&Version=2016-11-15" + extra);
    SCOPED_TRACE(action + " " + extra.substr(0, 120));
    EXPECT_GE(r.http, 400);
    EXPECT_LT(r.http, 500);
    EXPECT_NE(r.body.find("<Code>" + code + "</Code>"), std::string::npos) << r.body.substr(0, 400);
  }
  // A security group rule with bad ports, on a group that exists.
  ASSERT_EQ(Call("Action=CreateSecurityGroup&Version=2016-11-15&GroupName=web&GroupDescription=w").http, 200);
  for (const std::string& perm : {"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=70000",
                                  "&IpPermissions.1.IpProtocol=udp&IpPermissions.1.FromPort=5&IpPermissions.1.ToPort=1",
                                  "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22",
                                  "&IpPermissions.1.IpProtocol=47&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0"}) {
    Reply r = Call("Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=web" + perm);
    EXPECT_EQ(r.http, 400) << perm << " " << r.body.substr(0, 400);
  }
  Reply cidr = Call("Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=web&IpPermissions.1.IpProtocol=tcp"
                    "&IpPermissions.1.FromPort=22&IpPermissions.1.IpRanges.1.CidrIp=999.1.1.1/99");
  EXPECT_EQ(cidr.http, 400) << cidr.body.substr(0, 400);
  EXPECT_TRUE(reg_->Get(R("SecurityGroup"), "default", "web")->at("spec").value("ingress", json::array()).empty());
  ASSERT_EQ(reg_->Delete(R("SecurityGroup"), "default", "web", "").ok(), true);
  // Nothing was made by any of that, and another project's instance is untouched.
  EXPECT_EQ(reg_->List(R("Instance"), "default", {})->at("items").size(), 0u);
  EXPECT_EQ(reg_->List(R("KeyPair"), "default", {})->at("items").size(), 0u);
  EXPECT_EQ(reg_->List(R("Volume"), "default", {})->at("items").size(), 0u);
  EXPECT_EQ(reg_->List(R("SecurityGroup"), "default", {})->at("items").size(), 0u);
  EXPECT_TRUE(reg_->Get(R("Instance"), "team-b", "theirs").ok());
  EXPECT_EQ(Call("Action=DescribeRegions&Version=2016-11-15").http, 200);
}


TEST_F(Ec2ApiTest, InstanceStatusIsOkOnceRunningAndReady) {
  json web = Instance("web", "default");
  json db = Instance("db", "default");
  std::string web_id = Ec2Id("i", web["metadata"]["uid"]), db_id = Ec2Id("i", db["metadata"]["uid"]);
  auto set_status = [&](const std::string& name, const std::string& phase, const std::string& ready) {
    json cur = reg_->Get(R("Instance"), "default", name).value();
    cur["status"] = {{"phase", phase},
                     {"conditions", {{{"type", "Ready"}, {"status", ready}, {"reason", "x"}, {"message", "x"},
                                      {"lastTransitionTime", "2026-01-01T00:00:00Z"}}}}};
    ASSERT_TRUE(reg_->Update(R("Instance"), "default", name, cur, true).ok());
  };
  set_status("web", "Running", "True");
  set_status("db", "Running", "False");
  Reply r = Call("Action=DescribeInstanceStatus&Version=2016-11-15");
  ASSERT_EQ(r.http, 200) << r.body;
  auto web_at = r.body.find(web_id), db_at = r.body.find(db_id);
  ASSERT_NE(web_at, std::string::npos) << r.body;
  ASSERT_NE(db_at, std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<status>ok</status>", web_at), std::string::npos);
  EXPECT_NE(r.body.find("<status>initializing</status>", db_at), std::string::npos);
  // Stopped: listed only with IncludeAllInstances.
  set_status("db", "Stopped", "False");
  EXPECT_EQ(Call("Action=DescribeInstanceStatus&Version=2016-11-15").body.find(db_id), std::string::npos);
  Reply all = Call("Action=DescribeInstanceStatus&Version=2016-11-15&IncludeAllInstances=true");
  EXPECT_NE(all.body.find(db_id), std::string::npos);
  EXPECT_NE(all.body.find("<name>stopped</name>"), std::string::npos) << all.body;
  EXPECT_EQ(Call("Action=DescribeInstanceStatus&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0").http, 400);
}


TEST_F(Ec2ApiTest, DescribeInstancesFiltersWithWildcardsAndPages) {
  for (int i = 0; i < 12; ++i) Instance("web-" + std::to_string(i), "default");
  Instance("db-1", "default");
  auto count = [&](const std::string& query) {
    Reply r = Call("Action=DescribeInstances&Version=2016-11-15" + query);
    EXPECT_EQ(r.http, 200) << r.body;
    size_t n = 0;
    for (size_t p = r.body.find("<instanceId>"); p != std::string::npos; p = r.body.find("<instanceId>", p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(""), 13u);
  EXPECT_EQ(count("&Filter.1.Name=tag:Name&Filter.1.Value.1=web-*"), 12u);
  EXPECT_EQ(count("&Filter.1.Name=tag:Name&Filter.1.Value.1=web-?"), 10u);
  EXPECT_EQ(count("&Filter.1.Name=tag:Name&Filter.1.Value.1=db-1&Filter.1.Value.2=web-1"), 2u);  // OR within
  EXPECT_EQ(count("&Filter.1.Name=tag:Name&Filter.1.Value.1=web-*&Filter.2.Name=instance-state-name"
                  "&Filter.2.Value.1=running"),
            0u);  // AND across: none is running yet
  EXPECT_EQ(count("&Filter.1.Name=instance-type&Filter.1.Value.1=m1.*"), 13u);
  // Pages of 5 in id order: 5 + 5 + 3, every instance once, and the last page has no NextToken.
  std::set<std::string> all;
  std::string token;
  int pages = 0;
  do {
    Reply r = Call("Action=DescribeInstances&Version=2016-11-15&MaxResults=5" +
                   (token.empty() ? std::string() : "&NextToken=" + token));
    ASSERT_EQ(r.http, 200) << r.body;
    for (size_t p = r.body.find("<instanceId>"); p != std::string::npos; p = r.body.find("<instanceId>", p + 1)) {
      all.insert(r.body.substr(p + 12, 19));
    }
    auto t = r.body.find("<nextToken>");
    token = t == std::string::npos ? "" : r.body.substr(t + 11, r.body.find("</nextToken>") - t - 11);
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(all.size(), 13u);
  EXPECT_EQ(Call("Action=DescribeInstances&Version=2016-11-15&MaxResults=4").http, 400);
  EXPECT_EQ(Call("Action=DescribeInstances&Version=2016-11-15&MaxResults=5&InstanceId.1=i-0123456789abcdef0").http, 400);
  EXPECT_EQ(Call("Action=DescribeInstances&Version=2016-11-15&NextToken=garbage").http, 400);
}


TEST_F(Ec2ApiTest, RunInstancesWithAClientTokenIsIdempotentAndQuotaIsInstanceLimitExceeded) {
  std::string ami = MakeImage("debian");
  std::string req = "Action=RunInstances&ImageId=" + ami + "&MinCount=2&MaxCount=2&ClientToken=retry-me-42";
  Reply first = Call(req);
  ASSERT_EQ(first.http, 200) << first.body;
  Reply again = Call(req);  // the same request retried (a lost answer): the same two instances
  ASSERT_EQ(again.http, 200) << again.body;
  EXPECT_EQ(reg_->List(R("Instance"), "default", {})->at("items").size(), 2u);
  auto ids = [](const std::string& body) {
    std::set<std::string> out;
    for (size_t p = body.find("<instanceId>"); p != std::string::npos; p = body.find("<instanceId>", p + 1)) {
      out.insert(body.substr(p + 12, 19));
    }
    return out;
  };
  EXPECT_EQ(ids(first.body), ids(again.body));
  EXPECT_EQ(ids(first.body).size(), 2u);
  // Another token makes more; a token over 64 characters is refused.
  ASSERT_EQ(Call("Action=RunInstances&ImageId=" + ami + "&MinCount=1&MaxCount=1&ClientToken=other").http, 200);
  EXPECT_EQ(reg_->List(R("Instance"), "default", {})->at("items").size(), 3u);
  EXPECT_EQ(Call("Action=RunInstances&ImageId=" + ami + "&MinCount=1&MaxCount=1&ClientToken=" + std::string(65, 'x')).http,
            400);
  // Past the namespace's quota: EC2's InstanceLimitExceeded, and nothing made.
  ASSERT_TRUE(reg_->Create(R("Quota"), "default",
                           {{"apiVersion", "stratus.io/v1"}, {"kind", "Quota"}, {"metadata", {{"name", "default"}}},
                            {"spec", {{"hard", {{"instances", 4}}}}}})
                  .ok());
  Reply over = Call("Action=RunInstances&ImageId=" + ami + "&MinCount=2&MaxCount=2");
  EXPECT_EQ(over.http, 400) << over.body;
  EXPECT_NE(over.body.find("<Code>InstanceLimitExceeded</Code>"), std::string::npos) << over.body;
  EXPECT_EQ(reg_->List(R("Instance"), "default", {})->at("items").size(), 3u);
}

TEST_F(Ec2ApiTest, TheNamespaceIsADefaultVpcAndItsNetworksItsSubnets) {
  for (const auto& [name, cidr] : std::vector<std::pair<std::string, std::string>>{{"default", "10.50.0.0/24"},
                                                                                   {"backend", "10.51.0.0/28"}}) {
    ASSERT_TRUE(reg_->Create(R("Network"), "default",
                             {{"apiVersion", "stratus.io/v1"}, {"kind", "Network"}, {"metadata", {{"name", name}}},
                              {"spec", {{"cidr", cidr}}}})
                    .ok());
  }
  ASSERT_TRUE(reg_->Create(R("Network"), "team-b",
                           {{"apiVersion", "stratus.io/v1"}, {"kind", "Network"}, {"metadata", {{"name", "theirs"}}},
                            {"spec", {{"cidr", "10.60.0.0/24"}}}})
                  .ok());
  Reply vpcs = Call("Action=DescribeVpcs&Version=2016-11-15");
  ASSERT_EQ(vpcs.http, 200) << vpcs.body;
  auto at = vpcs.body.find("<vpcId>");
  ASSERT_NE(at, std::string::npos);
  std::string vpc = vpcs.body.substr(at + 7, vpcs.body.find("</vpcId>") - at - 7);
  EXPECT_EQ(vpc.rfind("vpc-", 0), 0u);
  EXPECT_EQ(Call("Action=DescribeVpcs&Version=2016-11-15", "bob").body.find("<vpcId>" + vpc), std::string::npos);
  Reply subnets = Call("Action=DescribeSubnets&Version=2016-11-15");
  ASSERT_EQ(subnets.http, 200) << subnets.body;
  EXPECT_NE(subnets.body.find("<cidrBlock>10.50.0.0/24</cidrBlock>"), std::string::npos) << subnets.body;
  EXPECT_NE(subnets.body.find("<cidrBlock>10.51.0.0/28</cidrBlock>"), std::string::npos);
  EXPECT_EQ(subnets.body.find("10.60.0.0"), std::string::npos) << "another project's network";
  EXPECT_NE(subnets.body.find("<availableIpAddressCount>253</availableIpAddressCount>"), std::string::npos);
  EXPECT_NE(subnets.body.find("<vpcId>" + vpc + "</vpcId>"), std::string::npos);
  Reply one = Call("Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=tag:Name&Filter.1.Value.1=back*");
  EXPECT_EQ(one.body.find("10.50.0.0"), std::string::npos) << one.body;
  EXPECT_NE(one.body.find("10.51.0.0"), std::string::npos) << one.body;
  EXPECT_EQ(Call("Action=DescribeSubnets&Version=2016-11-15&SubnetId.1=subnet-0123456789abcdef0").http, 400);
  EXPECT_EQ(Call("Action=DescribeVpcs&Version=2016-11-15&VpcId.1=vpc-0123456789abcdef0").http, 400);
}

}  // namespace
}  // namespace stratus::ec2

namespace stratus::ec2 {
namespace {

std::string Between(const std::string& body, const std::string& open, const std::string& close) {
  auto a = body.find(open);
  if (a == std::string::npos) return "";
  a += open.size();
  auto b = body.find(close, a);
  return b == std::string::npos ? "" : body.substr(a, b - a);
}

// Tags live on the objects: CreateTags writes them, every Describe shows and filters on them, DescribeTags lists
// them, DeleteTags removes them; the EC2 id is recorded on the object as a label.
TEST_F(Ec2ApiTest, TagsAreKeptOnTheObjectsAndFilterDescribes) {
  json web = Instance("web", "default");
  json db = Instance("db", "default");
  std::string web_id = Ec2Id("i", web["metadata"]["uid"]), db_id = Ec2Id("i", db["metadata"]["uid"]);
  EXPECT_EQ(web["metadata"]["labels"].value("ec2.stratus.io/id", ""), web_id);
  Reply r = Call("Action=CreateTags&ResourceId.1=" + web_id + "&ResourceId.2=" + db_id +
                 "&Tag.1.Key=team&Tag.1.Value=blue&Tag.2.Key=Role%20Name&Tag.2.Value=front%20end");
  ASSERT_EQ(r.http, 200) << r.body;
  auto stored = reg_->Get(R("Instance"), "default", "web").value();
  EXPECT_NE(stored["metadata"]["annotations"].value("ec2.stratus.io/tags", "").find("\"team\":\"blue\""), std::string::npos);
  r = Call("Action=DescribeInstances&Filter.1.Name=tag:team&Filter.1.Value.1=bl*");
  EXPECT_NE(r.body.find(web_id), std::string::npos);
  EXPECT_NE(r.body.find(db_id), std::string::npos);
  EXPECT_NE(r.body.find("<key>Role Name</key><value>front end</value>"), std::string::npos) << r.body;
  // DeleteTags with a value deletes only that value; then the filter no longer matches db.
  r = Call("Action=DeleteTags&ResourceId.1=" + db_id + "&Tag.1.Key=team&Tag.1.Value=red");
  ASSERT_EQ(r.http, 200) << r.body;
  r = Call("Action=DeleteTags&ResourceId.1=" + db_id + "&Tag.1.Key=team");
  ASSERT_EQ(r.http, 200) << r.body;
  r = Call("Action=DescribeInstances&Filter.1.Name=tag:team&Filter.1.Value.1=blue");
  EXPECT_NE(r.body.find(web_id), std::string::npos);
  EXPECT_EQ(r.body.find(db_id), std::string::npos);
  r = Call("Action=DescribeInstances&Filter.1.Name=tag-key&Filter.1.Value.1=Role*&Filter.2.Name=instance-id&Filter.2.Value.1=" + db_id);
  EXPECT_NE(r.body.find(db_id), std::string::npos) << "filters AND across names";
  // DescribeTags: every tag of the caller's resources, filtered and paged.
  r = Call("Action=DescribeTags&Filter.1.Name=key&Filter.1.Value.1=team");
  EXPECT_NE(r.body.find("<resourceId>" + web_id + "</resourceId><resourceType>instance</resourceType><key>team</key>"),
            std::string::npos) << r.body;
  std::set<std::string> seen;
  std::string token;
  for (int page = 0; page < 10; ++page) {
    r = Call("Action=DescribeTags&MaxResults=5" + (token.empty() ? "" : "&NextToken=" + token));
    ASSERT_EQ(r.http, 200) << r.body;
    for (size_t at = 0; (at = r.body.find("<item>", at)) != std::string::npos; ++at) {
      std::string item = Between(r.body.substr(at), "<item>", "</item>");
      EXPECT_TRUE(seen.insert(item).second) << "twice: " << item;
    }
    token = Between(r.body, "<nextToken>", "</nextToken>");
    if (token.empty()) break;
  }
  EXPECT_EQ(seen.size(), 5u);  // web: Name, team, Role Name; db: Name, Role Name
  // Bob cannot tag alice's instance: it does not exist for him.
  r = Call("Action=CreateTags&ResourceId.1=" + web_id + "&Tag.1.Key=x", "bob");
  EXPECT_NE(r.body.find("InvalidInstanceID.NotFound"), std::string::npos);
  // DryRun on a self-authorizing action answers DryRunOperation and writes nothing.
  r = Call("Action=CreateTags&DryRun=true&ResourceId.1=" + web_id + "&Tag.1.Key=dry&Tag.1.Value=x");
  EXPECT_NE(r.body.find("DryRunOperation"), std::string::npos);
  EXPECT_EQ(reg_->Get(R("Instance"), "default", "web").value()["metadata"]["annotations"].value("ec2.stratus.io/tags", "").find("dry"),
            std::string::npos);
}

// A deleted instance stays visible as terminated (code 48) through its tombstone Event: what
// `aws ec2 wait instance-terminated` polls for.
TEST_F(Ec2ApiTest, TerminatedInstancesStayVisibleAsTerminated) {
  json web = Instance("web", "default");
  std::string id = Ec2Id("i", web["metadata"]["uid"]);
  ASSERT_TRUE(reg_->Delete(R("Instance"), "default", "web", "").ok());
  // The tombstone is written before the Instance leaves the store: no moment where a waiter polling for
  // `terminated` finds neither (it would stop on InvalidInstanceID.NotFound).
  Reply r = Call("Action=DescribeInstances&InstanceId.1=" + id);
  ASSERT_EQ(r.http, 200) << r.body;
  EXPECT_NE(r.body.find("<code>48</code><name>terminated</name>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<instanceType>m1.small</instanceType>"), std::string::npos);
  r = Call("Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=terminated");
  EXPECT_NE(r.body.find(id), std::string::npos);
  r = Call("Action=TerminateInstances&InstanceId.1=" + id);
  EXPECT_NE(r.body.find("<currentState><code>48</code>"), std::string::npos) << r.body;
  r = Call("Action=StartInstances&InstanceId.1=" + id);
  EXPECT_NE(r.body.find("IncorrectInstanceState"), std::string::npos) << r.body;
  // Another namespace never sees it.
  r = Call("Action=DescribeInstances&InstanceId.1=" + id, "bob");
  EXPECT_NE(r.body.find("InvalidInstanceID.NotFound"), std::string::npos);
}

TEST_F(Ec2ApiTest, SubnetsImagesAttributesAndVolumeGrowth) {
  std::string vpc = Ec2Id("vpc", "namespace/default");
  Reply r = Call("Action=CreateSubnet&VpcId=" + vpc + "&CidrBlock=10.91.0.0/24&TagSpecification.1.ResourceType=subnet"
                 "&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=backend");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string subnet = Between(r.body, "<subnetId>", "</subnetId>");
  auto net = reg_->Get(R("Network"), "default", "backend");
  ASSERT_TRUE(net.ok()) << "the Name tag names the Network";
  EXPECT_EQ((*net)["spec"].value("cidr", ""), "10.91.0.0/24");
  r = Call("Action=CreateSubnet&VpcId=" + vpc + "&CidrBlock=10.91.0.0/24");
  EXPECT_NE(r.body.find("InvalidSubnet.Conflict"), std::string::npos) << r.body;
  // An instance in that subnet with a fixed address; the subnet cannot go while it is used.
  std::string ami = MakeImage("disk");
  r = Call("Action=RunInstances&ImageId=" + ami + "&MinCount=1&MaxCount=1&SubnetId=" + subnet +
           "&PrivateIpAddress=10.91.0.20&BlockDeviceMapping.1.DeviceName=/dev/sda1&BlockDeviceMapping.1.Ebs.VolumeSize=3"
           "&BlockDeviceMapping.1.Ebs.DeleteOnTermination=false");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string inst_id = Between(r.body, "<instanceId>", "</instanceId>");
  EXPECT_NE(r.body.find("<subnetId>" + subnet + "</subnetId>"), std::string::npos) << r.body;
  auto insts = reg_->List(R("Instance"), "default", {}).value()["items"];
  ASSERT_EQ(insts.size(), 1u);
  EXPECT_EQ(insts[0]["spec"]["networks"][0].value("network", ""), "backend");
  EXPECT_EQ(insts[0]["spec"]["networks"][0].value("ip", ""), "10.91.0.20");
  EXPECT_EQ(insts[0]["spec"]["rootDisk"].value("size", ""), "3Gi");
  EXPECT_EQ(insts[0]["spec"]["rootDisk"].value("deleteOnTermination", true), false);
  r = Call("Action=DeleteSubnet&SubnetId=" + subnet);
  EXPECT_NE(r.body.find("DependencyViolation"), std::string::npos) << r.body;
  // Instance attributes: the type changes only while stopped.
  r = Call("Action=DescribeInstanceAttribute&InstanceId=" + inst_id + "&Attribute=instanceType");
  EXPECT_NE(r.body.find("<instanceType><value>m1.small</value></instanceType>"), std::string::npos) << r.body;
  r = Call("Action=ModifyInstanceAttribute&InstanceId=" + inst_id + "&InstanceType.Value=m1.medium");
  EXPECT_NE(r.body.find("IncorrectInstanceState"), std::string::npos) << r.body;
  // Images: register from a URL with a kernel; its instances boot that kernel by default.
  json kernel = reg_->Create(R("Image"), "default", {{"apiVersion", "stratus.io/v1"}, {"kind", "Image"},
                                                     {"metadata", {{"name", "vmlinuz"}}},
                                                     {"spec", {{"type", "kernel"}, {"source", {{"url", "http://example.invalid/k"}}}}}})
                    .value();
  std::string aki = Ec2Id("aki", kernel["metadata"]["uid"]);
  r = Call("Action=RegisterImage&Name=Debian%20Demo%20(test)&ImageLocation=http://example.invalid/d.qcow2&KernelId=" + aki +
           "&Description=demo");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string new_ami = Between(r.body, "<imageId>", "</imageId>");
  r = Call("Action=DescribeImages&Filter.1.Name=name&Filter.1.Value.1=Debian*");
  EXPECT_NE(r.body.find(new_ami), std::string::npos);
  EXPECT_NE(r.body.find("<kernelId>" + aki + "</kernelId>"), std::string::npos) << r.body;
  r = Call("Action=DescribeImageAttribute&ImageId=" + new_ami + "&Attribute=description");
  EXPECT_NE(r.body.find("<description><value>demo</value></description>"), std::string::npos) << r.body;
  r = Call("Action=RegisterImage&Name=Debian%20Demo%20(test)&ImageLocation=http://example.invalid/d.qcow2");
  EXPECT_NE(r.body.find("InvalidAMIName.Duplicate"), std::string::npos);
  r = Call("Action=RunInstances&ImageId=" + new_ami + "&MinCount=1&MaxCount=1");
  ASSERT_EQ(r.http, 200) << r.body;
  EXPECT_NE(r.body.find("<kernelId>" + aki + "</kernelId>"), std::string::npos) << r.body;
  r = Call("Action=DeregisterImage&ImageId=" + new_ami);
  EXPECT_EQ(r.http, 200) << r.body;
  // Volumes grow, never shrink.
  r = Call("Action=CreateVolume&Size=1&AvailabilityZone=default");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string vol = Between(r.body, "<volumeId>", "</volumeId>");
  r = Call("Action=ModifyVolume&VolumeId=" + vol + "&Size=2");
  ASSERT_EQ(r.http, 200) << r.body;
  EXPECT_NE(r.body.find("<targetSize>2</targetSize>"), std::string::npos) << r.body;
  r = Call("Action=ModifyVolume&VolumeId=" + vol + "&Size=1");
  EXPECT_NE(r.body.find("InvalidParameterValue"), std::string::npos) << r.body;
  r = Call("Action=DescribeVolumesModifications&VolumeId.1=" + vol);
  EXPECT_NE(r.body.find("<volumeId>" + vol + "</volumeId>"), std::string::npos) << r.body;
  r = Call("Action=DescribeVolumeStatus&VolumeId.1=" + vol);
  EXPECT_NE(r.body.find("<volumeId>" + vol + "</volumeId>"), std::string::npos) << r.body;
}

TEST_F(Ec2ApiTest, SnapshotsOfVolumesAndVolumesFromSnapshots) {
  Reply r = Call("Action=CreateVolume&Size=2&AvailabilityZone=default");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string vol = Between(r.body, "<volumeId>", "</volumeId>");
  r = Call("Action=CreateSnapshot&VolumeId=" + vol + "&Description=before%20upgrade"
           "&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=nightly");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string snap = Between(r.body, "<snapshotId>", "</snapshotId>");
  EXPECT_EQ(snap.rfind("snap-", 0), 0u) << r.body;
  EXPECT_NE(r.body.find("<status>pending</status>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<volumeSize>2</volumeSize>"), std::string::npos) << r.body;
  auto obj = reg_->Get(R("VolumeSnapshot"), "default", "nightly");
  ASSERT_TRUE(obj.ok()) << "the Name tag names the VolumeSnapshot";
  // Not taken yet: no volume from it.
  r = Call("Action=CreateVolume&SnapshotId=" + snap + "&AvailabilityZone=default");
  EXPECT_NE(r.body.find("IncorrectState"), std::string::npos) << r.body;
  // Taken (what the node's reconciler reports): completed, and volumes come from it.
  json taken = *obj;
  taken["status"] = {{"phase", "Ready"}, {"size", "2Gi"}, {"node", "n1"}, {"path", "/p/snap"}};
  ASSERT_TRUE(client_->UpdateStatus("volumesnapshots", "default", taken).ok());
  r = Call("Action=DescribeSnapshots&Owner.1=self&Filter.1.Name=volume-id&Filter.1.Value.1=" + vol);
  ASSERT_EQ(r.http, 200) << r.body;
  EXPECT_NE(r.body.find("<snapshotId>" + snap + "</snapshotId>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<status>completed</status>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<description>before upgrade</description>"), std::string::npos) << r.body;
  r = Call("Action=CreateVolume&SnapshotId=" + snap + "&Size=1&AvailabilityZone=default");
  EXPECT_NE(r.body.find("minimum is 2GiB"), std::string::npos) << r.body;
  r = Call("Action=CreateVolume&SnapshotId=" + snap + "&AvailabilityZone=default");
  ASSERT_EQ(r.http, 200) << r.body;
  std::string restored = Between(r.body, "<volumeId>", "</volumeId>");
  EXPECT_NE(r.body.find("<size>2</size>"), std::string::npos) << "the snapshot's size by default: " << r.body;
  r = Call("Action=DescribeVolumes&VolumeId.1=" + restored);
  EXPECT_NE(r.body.find("<snapshotId>" + snap + "</snapshotId>"), std::string::npos) << r.body;
  auto vols = reg_->List(R("Volume"), "default", {}).value()["items"];
  bool from = false;
  for (const auto& v : vols) from |= v["spec"].value("source", json::object()).value("snapshot", "") == "nightly";
  EXPECT_TRUE(from);
  // The volume being made from it keeps it.
  r = Call("Action=DeleteSnapshot&SnapshotId=" + snap);
  EXPECT_NE(r.body.find("InvalidSnapshot.InUse"), std::string::npos) << r.body;
  // Another account sees nothing of it; ids are checked.
  r = Call("Action=DescribeSnapshots&SnapshotId.1=" + snap, "bob");
  EXPECT_NE(r.body.find("InvalidSnapshot.NotFound"), std::string::npos) << r.body;
  r = Call("Action=DeleteSnapshot&SnapshotId=snap-nothex");
  EXPECT_NE(r.body.find("InvalidSnapshotID.Malformed"), std::string::npos) << r.body;
  r = Call("Action=CreateSnapshot&VolumeId=vol-0123456789abcdef0");
  EXPECT_NE(r.body.find("InvalidVolume.NotFound"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace stratus::ec2
