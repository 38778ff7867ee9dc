// SigV4 verification of the EC2 endpoint, on requests signed by botocore (awscli's and boto3's signer) and on
// AWS's own "get-vanilla" example; then every way a request may fail to verify.
#include <gtest/gtest.h>

#include "stratus/ec2/query.h"
#include "stratus/ec2/sigv4.h"
#include "stratus/ec2/xml.h"

namespace stratus::ec2 {
namespace {

const char* kKey = "AKIDEXAMPLE";
const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

std::chrono::system_clock::time_point At(std::time_t t) { return std::chrono::system_clock::from_time_t(t); }
// 2015-08-30T12:36:00Z, when the vectors below were signed.
const std::time_t kSignedAt = 1440938160;

std::optional<std::string> Secrets(const std::string& id) {
  if (id == kKey) return std::string(kSecret);
  return std::nullopt;
}

// awscli's form of an EC2 call: POST, form-encoded body, Authorization header (botocore 1.43 signed it).
SignedRequest BotocorePost() {
  SignedRequest r;
  r.method = "POST";
  r.raw_path = "/";
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"X-Amz-Date", "20150830T123600Z"},
               {"Host", "127.0.0.1:8773"},
               {"Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, "
                "Signature=d93ee16a9f8793c15fae7ea61f945d6f9cd866c3703052e2d9afc2060e4f6fd7"}};
  r.body = "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0";
  return r;
}

// A presigned GET (botocore's SigV4QueryAuth, 300 s), with a space in a filter value.
SignedRequest BotocorePresigned() {
  SignedRequest r;
  r.method = "GET";
  r.raw_path = "/";
  r.raw_query =
      "Action=DescribeRegions&Version=2016-11-15&Filter.1.Name=region-name&Filter.1.Value.1=us%20east&"
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fec2%2Faws4_request&"
      "X-Amz-Date=20150830T123600Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&"
      "X-Amz-Signature=82cad96ef8d6aa67ea0e08f9e1c04648064f1acd3848cf8b5b47bf24fcdda614";
  r.headers = {{"Host", "127.0.0.1:8773"}};
  return r;
}

Params P(const std::vector<std::pair<std::string, std::string>>& pairs) { return Params(pairs); }

VerifyOptions Opts(std::time_t now = kSignedAt) {
  VerifyOptions o;
  o.now = At(now);
  return o;
}

TEST(Ec2SigV4Test, AwsGetVanillaExample) {
  SignedRequest r;
  r.method = "GET";
  r.raw_path = "/";
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  Credential c;
  c.date = "20150830";
  c.region = "us-east-1";
  c.service = "service";
  c.amz_date = "20150830T123600Z";
  std::string canonical = CanonicalRequest(r, {"host", "x-amz-date"}, false,
                                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Signature(kSecret, c, StringToSign(c, canonical)),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(Ec2SigV4Test, BotocoreSignedPostVerifies) {
  Credential c;
  Error e;
  ASSERT_TRUE(Verify(BotocorePost(), Secrets, Opts(), &c, &e)) << e.code << ": " << e.message;
  EXPECT_EQ(c.access_key_id, kKey);
  EXPECT_EQ(c.region, "us-east-1");
  EXPECT_FALSE(c.presigned);
}

TEST(Ec2SigV4Test, BotocorePresignedGetVerifiesUntilItExpires) {
  Credential c;
  Error e;
  ASSERT_TRUE(Verify(BotocorePresigned(), Secrets, Opts(kSignedAt + 299), &c, &e)) << e.code << ": " << e.message;
  EXPECT_TRUE(c.presigned);
  EXPECT_EQ(c.expires_seconds, 300);
  EXPECT_FALSE(Verify(BotocorePresigned(), Secrets, Opts(kSignedAt + 301), &c, &e));
  EXPECT_EQ(e.code, "RequestExpired");
}

TEST(Ec2SigV4Test, ATamperedBodyDoesNotMatch) {
  SignedRequest r = BotocorePost();
  r.body = "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0";
  Credential c;
  Error e;
  EXPECT_FALSE(Verify(r, Secrets, Opts(), &c, &e));
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
  EXPECT_EQ(e.http, 403);
}

TEST(Ec2SigV4Test, ATamperedPresignedQueryDoesNotMatch) {
  SignedRequest r = BotocorePresigned();
  r.raw_query.replace(r.raw_query.find("DescribeRegions"), 15, "DescribeVolumes");
  Credential c;
  Error e;
  EXPECT_FALSE(Verify(r, Secrets, Opts(), &c, &e));
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
}

TEST(Ec2SigV4Test, AnotherHostOrPortDoesNotMatch) {
  SignedRequest r = BotocorePost();
  r.headers[2].second = "127.0.0.1:8774";
  Credential c;
  Error e;
  EXPECT_FALSE(Verify(r, Secrets, Opts(), &c, &e));
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
}

TEST(Ec2SigV4Test, WrongSecretDoesNotMatch) {
  Credential c;
  Error e;
  auto wrong = [](const std::string&) -> std::optional<std::string> { return std::string("not-the-secret"); };
  EXPECT_FALSE(Verify(BotocorePost(), wrong, Opts(), &c, &e));
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
  EXPECT_EQ(e.message.find("not-the-secret"), std::string::npos);
}

TEST(Ec2SigV4Test, UnknownKeyIsAuthFailure) {
  Credential c;
  Error e;
  auto none = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  EXPECT_FALSE(Verify(BotocorePost(), none, Opts(), &c, &e));
  EXPECT_EQ(e.code, "AuthFailure");
  EXPECT_EQ(e.http, 401);
}

TEST(Ec2SigV4Test, ClockSkewOverFifteenMinutesIsRequestExpired) {
  Credential c;
  Error e;
  EXPECT_TRUE(Verify(BotocorePost(), Secrets, Opts(kSignedAt + 14 * 60), &c, &e)) << e.message;
  EXPECT_TRUE(Verify(BotocorePost(), Secrets, Opts(kSignedAt - 14 * 60), &c, &e)) << e.message;
  EXPECT_FALSE(Verify(BotocorePost(), Secrets, Opts(kSignedAt + 16 * 60), &c, &e));
  EXPECT_EQ(e.code, "RequestExpired");
  EXPECT_FALSE(Verify(BotocorePost(), Secrets, Opts(kSignedAt - 16 * 60), &c, &e));
  EXPECT_EQ(e.code, "RequestExpired");
}

TEST(Ec2SigV4Test, OtherRegionOrServiceIsRefused) {
  Credential c;
  Error e;
  VerifyOptions o = Opts();
  o.region = "eu-west-1";
  EXPECT_FALSE(Verify(BotocorePost(), Secrets, o, &c, &e));
  EXPECT_EQ(e.code, "AuthFailure");
  EXPECT_NE(e.message.find("us-east-1"), std::string::npos);
  o = Opts();
  o.service = "s3";
  EXPECT_FALSE(Verify(BotocorePost(), Secrets, o, &c, &e));
  EXPECT_EQ(e.code, "AuthFailure");
}

TEST(Ec2SigV4Test, UnsignedAndMalformedRequestsSayWhy) {
  Credential c;
  Error e;
  SignedRequest unsigned_req;
  unsigned_req.method = "POST";
  unsigned_req.raw_path = "/";
  unsigned_req.body = "Action=DescribeInstances";
  EXPECT_FALSE(Verify(unsigned_req, Secrets, Opts(), &c, &e));
  EXPECT_EQ(e.code, "AuthFailure");

  struct Case {
    std::string authorization;
    std::string want;  // part of the message
  };
  std::vector<Case> cases = {
      {"AWS AKIDEXAMPLE:abc", "AWS4-HMAC-SHA256"},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request", "SignedHeaders"},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/ec2/aws4_request, SignedHeaders=host, Signature=" +
           std::string(64, 'a'),
       "Credential must have the form"},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders=x-amz-date, "
       "Signature=" + std::string(64, 'a'),
       "must include host"},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders=host, "
       "Signature=XYZ",
       "64 lowercase hexadecimal"},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/ec2/aws4_request, SignedHeaders=host, "
       "Signature=" + std::string(64, 'a'),
       "date does not match"},
  };
  for (const auto& tc : cases) {
    SignedRequest r = BotocorePost();
    r.headers[3].second = tc.authorization;
    EXPECT_FALSE(Verify(r, Secrets, Opts(), &c, &e)) << tc.authorization;
    EXPECT_NE(e.message.find(tc.want), std::string::npos) << tc.authorization << " -> " << e.message;
  }
  SignedRequest no_date = BotocorePost();
  no_date.headers.erase(no_date.headers.begin() + 1);
  EXPECT_FALSE(Verify(no_date, Secrets, Opts(), &c, &e));
  EXPECT_NE(e.message.find("X-Amz-Date"), std::string::npos);
}

TEST(Ec2SigV4Test, CanonicalQueryIsSortedAndReencoded) {
  SignedRequest r;
  r.method = "GET";
  r.raw_path = "/a b/%2F";
  r.raw_query = "b=2&a=x%20y&a=%7e&c";
  r.headers = {{"Host", "h"}, {"X-Multi", " one  two "}, {"x-multi", "three"}};
  std::string got = CanonicalRequest(r, {"host", "x-multi"}, false, "HASH");
  EXPECT_EQ(got, "GET\n/a%20b/%252F\na=x%20y&a=~&b=2&c=\nhost:h\nx-multi:one two,three\n\nhost;x-multi\nHASH");
}

TEST(Ec2QueryTest, DecodesFormsAndNumberedLists) {
  std::vector<std::pair<std::string, std::string>> pairs;
  Error e;
  ASSERT_TRUE(DecodeForm("Action=RunInstances&InstanceId.2=i-b&InstanceId.1=i-a&UserData=a+b%2Bc&Empty=&Flag",
                         &pairs, &e));
  Params p(pairs);
  EXPECT_EQ(*p.Get("UserData"), "a b+c");
  EXPECT_EQ(*p.Get("Empty"), "");
  EXPECT_TRUE(p.Has("Flag"));
  std::vector<std::string> ids;
  ASSERT_TRUE(p.List("InstanceId", &ids, &e));
  EXPECT_EQ(ids, (std::vector<std::string>{"i-a", "i-b"}));
  EXPECT_FALSE(DecodeForm("A=%zz", &pairs, &e));
  EXPECT_EQ(e.code, "InvalidParameterValue");
  EXPECT_NE(e.message.find("A"), std::string::npos);
  EXPECT_FALSE(DecodeForm("A=%4", &pairs, &e));
}

TEST(Ec2QueryTest, RejectsBadIndexesFiltersAndScalars) {
  Error e;
  std::vector<std::string> ids;
  EXPECT_FALSE(P({{"InstanceId.x", "i"}}).List("InstanceId", &ids, &e));
  EXPECT_NE(e.message.find("InstanceId.x"), std::string::npos);
  EXPECT_FALSE(P({{"InstanceId.01", "i"}}).List("InstanceId", &ids, &e));

  std::vector<Filter> filters;
  ASSERT_TRUE(P({{"Filter.1.Name", "instance-state-name"}, {"Filter.1.Value.1", "running"},
                      {"Filter.1.Value.2", "stopped"}, {"Filter.2.Name", "tag:env"}, {"Filter.2.Value.1", "prod"}})
                  .Filters(&filters, &e));
  ASSERT_EQ(filters.size(), 2u);
  EXPECT_EQ(filters[0].name, "instance-state-name");
  EXPECT_EQ(filters[0].values, (std::vector<std::string>{"running", "stopped"}));
  EXPECT_FALSE(P({{"Filter.1.Value.1", "running"}}).Filters(&filters, &e));
  EXPECT_EQ(e.code, "MissingParameter");
  EXPECT_FALSE(P({{"Filter.1.Nme", "x"}}).Filters(&filters, &e));
  EXPECT_EQ(e.code, "InvalidParameterValue");

  bool b;
  EXPECT_TRUE(P({{"DryRun", "True"}}).Bool("DryRun", false, &b, &e) && b);
  EXPECT_FALSE(P({{"DryRun", "yes"}}).Bool("DryRun", false, &b, &e));
  EXPECT_NE(e.message.find("DryRun"), std::string::npos);
  long long n;
  EXPECT_TRUE(P({{"MaxCount", "3"}}).Int("MaxCount", 1, 1, 100, &n, &e) && n == 3);
  EXPECT_FALSE(P({{"MaxCount", "0"}}).Int("MaxCount", 1, 1, 100, &n, &e));
  EXPECT_FALSE(P({{"MaxCount", "1e3"}}).Int("MaxCount", 1, 1, 100, &n, &e));
  EXPECT_FALSE(P({{"MaxCount", "-"}}).Int("MaxCount", 1, -5, 100, &n, &e));
}

TEST(Ec2XmlTest, ResponsesAndErrorsHaveEc2sShapeAndEscape) {
  Response r("DescribeRegions", "req-1");
  auto set = AddSet(r.root(), "regionInfo");
  auto item = AddItem(set);
  AddText(item, "regionName", "us-east-1 <&>");
  std::string xml = r.Str();
  EXPECT_NE(xml.find("<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
                     "<requestId>req-1</requestId><regionInfo><item><regionName>us-east-1 &lt;&amp;&gt;</regionName>"),
            std::string::npos)
      << xml;
  std::string err = ErrorXml({"InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist", 400}, "req-2");
  EXPECT_NE(err.find("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID "
                     "'i-1' does not exist</Message></Error></Errors><RequestID>req-2</RequestID></Response>"),
            std::string::npos)
      << err;
  EXPECT_EQ(NewRequestId().size(), 36u);
  EXPECT_NE(NewRequestId(), NewRequestId());
}

}  // namespace
}  // namespace stratus::ec2
