// SSH keys made with OpenSSL: ssh-keygen (OpenSSH itself) reads the private keys and derives the same public key;
// public keys parse and get EC2's fingerprints; malformed keys are refused with the reason.
#include "stratus/core/sshkey.h"

#include "stratus/core/exec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace stratus {
namespace {

// `ssh-keygen -y -f FILE`: the public key OpenSSH derives from a private key file.
std::string DerivedPublicKey(const std::string& private_key) {
  auto path = std::filesystem::temp_directory_path() / ("stratus-sshkey-" + std::to_string(::getpid()));
  {
    std::ofstream(path) << private_key;
  }
  ::chmod(path.c_str(), 0600);
  auto r = Exec({"/usr/bin/ssh-keygen", "-y", "-f", path.string()});
  std::string out = r.ok() ? r->out + r->err : r.status().message();
  std::filesystem::remove(path);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string WithoutComment(const std::string& line) { return line.substr(0, line.find(' ', line.find(' ') + 1)); }

TEST(SshKeyTest, GeneratedKeysAreOnesOpenSshReads) {
  if (!std::filesystem::exists("/usr/bin/ssh-keygen")) GTEST_SKIP() << "ssh-keygen (openssh-client) is missing";
  for (const std::string type : {"ed25519", "rsa"}) {
    auto k = GenerateSshKey(type, "web-key");
    ASSERT_TRUE(k.ok()) << k.status().message();
    EXPECT_EQ(k->type, type);
    EXPECT_NE(k->private_key.find(type == "rsa" ? "BEGIN RSA PRIVATE KEY" : "BEGIN OPENSSH PRIVATE KEY"),
              std::string::npos);
    EXPECT_EQ(k->public_openssh.rfind(type == "rsa" ? "ssh-rsa AAAA" : "ssh-ed25519 AAAA", 0), 0u);
    EXPECT_NE(k->public_openssh.find(" web-key"), std::string::npos);
    EXPECT_EQ(WithoutComment(DerivedPublicKey(k->private_key)), WithoutComment(k->public_openssh)) << type;
    auto parsed = ParseSshPublicKey(k->public_openssh);
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_EQ(parsed->type, type);
  }
  EXPECT_NE(GenerateSshKey("ed25519", "a")->public_openssh, GenerateSshKey("ed25519", "a")->public_openssh);
  EXPECT_EQ(GenerateSshKey("dsa", "x").status().code(), Code::kInvalid);
}

TEST(SshKeyTest, FingerprintsAsEc2ShowsThem) {
  // Ed25519: base64 SHA-256 of the blob, as `ssh-keygen -l -E sha256` prints it (after "SHA256:", with padding).
  const std::string ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";
  auto k = ParseSshPublicKey(ed);
  ASSERT_TRUE(k.ok()) << k.status().message();
  std::string fp = SshFingerprint(*k);
  EXPECT_EQ(fp.size(), 44u);
  EXPECT_EQ(fp.back(), '=');
  // RSA: colon-separated MD5 of the blob (RFC 4716).
  auto rsa = GenerateSshKey("rsa", "");
  ASSERT_TRUE(rsa.ok());
  auto pr = ParseSshPublicKey(rsa->public_openssh);
  ASSERT_TRUE(pr.ok());
  std::string md5 = SshFingerprint(*pr);
  EXPECT_EQ(md5.size(), 47u);
  EXPECT_EQ(md5[2], ':');
}

TEST(SshKeyTest, MalformedPublicKeysAreRefused) {
  for (const std::string bad : {"", "ssh-ed25519", "ssh-ed25519 !!!notbase64", "ssh-dss AAAAB3NzaC1kc3MAAACBAP8=",
                                "ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQAB",  // the blob names another type
                                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQA="}) {  // a 1-byte Ed25519 key
    EXPECT_FALSE(ParseSshPublicKey(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace stratus
