// The seed's EC2 workflow driven by boto3 (Debian's python3-boto3, run by /usr/bin/python3) over https, as a tenant
// with an access key, on a server whose embedded agent uses libvirt's test:///default driver: zones and images, key
// pairs generated and imported, a security group with rules, six instances run (ClientToken idempotent, DryRun),
// waited for with boto3's waiters and described with its paginators, a volume created/attached/detached, tags,
// stop/start/reboot, terminate and wait terminated, everything deleted. At each step the script checks the same
// objects through the main API with the tenant's bearer token (tests/integration/boto3_workflow.py).
#include <gtest/gtest.h>

#include <fstream>

#include "aws_cli.h"
#include "harness.h"

namespace stratus::testing {
namespace {

const char* kPython = "/usr/bin/python3";

TEST(Boto3Test, TheWholeWorkflowWithPaginatorsAndWaiters) {
  if (stratus::testing::Run({kPython, "-c", "import boto3"}).exit_code != 0) {
    GTEST_FAIL() << "boto3 is missing for " << kPython << ": scripts/install-deps.sh installs python3-boto3";
  }
  TempDir dir;
  ReservedPort agent_port = ReservePort();
  ReservedPort ec2_port = ReservePort();
  ASSERT_NE(ec2_port.port(), 0);
  ServerProcess server(dir.path() / "data",
                       {"--agent=true", "--libvirt-uri", "test:///default", "--node", "node-a", "--agent-listen",
                        agent_port.hostport(), "--reserved-memory-mib", "0", "--heartbeat-seconds", "2",
                        "--ec2-listen", ec2_port.hostport(), "--secure"});
  ASSERT_TRUE(server.Start()) << server.log();

  // The operator's part: a kernel and a disk image, a flavor, the default subnet.
  std::ofstream(dir.path() / "vmlinuz") << std::string(4096, 'k');
  std::string qcow = (dir.path() / "disk.qcow2").string();
  ASSERT_EQ(stratus::testing::Run({"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M"}).exit_code, 0);
  auto ap = server.Ctl({"apply", "-f", "-"},
                       "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: k}\nspec: {type: kernel, source: {url: file://" +
                           (dir.path() / "vmlinuz").string() + "}}\n---\n"
                           "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: disk}\nspec: {type: disk, source: {url: file://" +
                           qcow + "}}\n---\n"
                           "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\n"
                           "spec: {vcpus: 1, memoryMiB: 256}\n---\n"
                           "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: default}\n"
                           "spec: {cidr: 10.80.0.0/24, mode: nat}\n");
  ASSERT_EQ(ap.exit_code, 0) << ap.out << ap.err;
  // The tenant: alice, a member of `default`, with an access key and a bearer token.
  std::string token = server.MakeUser("alice", "default", "member");
  ASSERT_FALSE(token.empty());
  json key = CreateAccessKey(server, "alice-boto3", "alice", "default");
  ASSERT_TRUE(key.contains("status")) << key.dump();

  std::string home = (dir.path() / "home").string();
  std::filesystem::create_directories(home);
  RunResult r = stratus::testing::Run({kPython, "-u", SourceDir() + "/tests/integration/boto3_workflow.py"}, "",
                    {"HOME=" + home, "AWS_CONFIG_FILE=" + home + "/none", "AWS_SHARED_CREDENTIALS_FILE=" + home + "/none",
                     "AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=" + key["spec"].value("accessKeyId", ""),
                     "AWS_SECRET_ACCESS_KEY=" + key["status"].value("secretAccessKey", ""),
                     "STRATUS_EC2_ENDPOINT=https://" + ec2_port.hostport(), "STRATUS_CA_FILE=" + server.ca_file(),
                     "STRATUS_API=" + server.url(), "STRATUS_TOKEN=" + token, "STRATUS_SUBNET=10.80.0.0/24",
                     "STRATUS_WORKDIR=" + dir.path().string()},
                    static_cast<int>(Scaled(std::chrono::seconds(240)).count() / 1000));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\n--- instances:\n"
                            << server.Http("GET", "/apis/stratus.io/v1/namespaces/default/instances").body
                            << "\n--- server:\n" << server.log();
  EXPECT_NE(r.out.find("STEP done"), std::string::npos) << r.out;
  // Nothing the workflow made is left behind; the terminated instances are remembered as tombstones.
  for (const char* plural : {"instances", "volumes", "keypairs", "securitygroups"}) {
    json items = server.Http("GET", std::string("/apis/stratus.io/v1/namespaces/default/") + plural).Json();
    EXPECT_EQ(items.value("items", json::array()).size(), 0u) << plural << ": " << items.dump();
  }
}

}  // namespace
}  // namespace stratus::testing
