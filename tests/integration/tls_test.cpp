// HTTPS by default: the real stratusd makes a CA and a serving certificate in DATA_DIR/tls at first start and
// serves https only; curl and stratusctl succeed with that CA and fail without it; plain http gets nowhere; a
// remote agent registers over TLS; --tls-cert/--tls-key serve a given pair; bad TLS flags are clear errors.
#include <gtest/gtest.h>

#include "harness.h"
#include "stratus/core/tls.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;

const std::string& Curl() {
  static const std::string path = [] {
    for (const char* p : {"/usr/bin/curl", "/bin/curl", "/usr/local/bin/curl"}) {
      if (::access(p, X_OK) == 0) return std::string(p);
    }
    return std::string();
  }();
  return path;
}

// curl URL with `args`; returns the result with the HTTP status (or 000) on stdout.
RunResult CurlGet(const std::string& url, std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {Curl(), "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  return stratus::testing::Run(argv);
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Curl().empty()) GTEST_SKIP() << "curl is not installed";
  }
  TempDir dir_;
};

TEST_F(TlsTest, ServesHttpsByDefaultAndOnlyClientsWithTheCaGetIn) {
  ServerProcess server(dir_.path() / "data", {"--secure"});
  ASSERT_TRUE(server.Start()) << server.log();
  const std::string https = server.url();
  ASSERT_EQ(https.rfind("https://127.0.0.1:", 0), 0u) << https;
  const std::string ca = server.ca_file();
  ASSERT_TRUE(fs::exists(ca)) << server.log();
  EXPECT_NE(server.log().find(ca), std::string::npos) << server.log();

  // curl: the CA is required, and with it the server answers (also by its name localhost).
  RunResult no_ca = CurlGet(https + "/healthz");
  EXPECT_NE(no_ca.exit_code, 0) << no_ca.out << no_ca.err;
  EXPECT_NE(no_ca.err.find("certificate"), std::string::npos) << no_ca.err;
  RunResult with_ca = CurlGet(https + "/healthz", {"--cacert", ca});
  EXPECT_EQ(with_ca.exit_code, 0) << with_ca.err;
  EXPECT_EQ(with_ca.out, "200");
  RunResult by_name = CurlGet("https://localhost:" + std::to_string(server.port()) + "/healthz", {"--cacert", ca});
  EXPECT_EQ(by_name.out, "200") << by_name.err;
  // TLS 1.2 and newer only.
  RunResult old = CurlGet(https + "/healthz", {"--cacert", ca, "--tlsv1", "--tls-max", "1.1"});
  EXPECT_NE(old.out, "200") << old.err;

  // Plain http to the https port gets no answer.
  RunResult plain = CurlGet("http://127.0.0.1:" + std::to_string(server.port()) + "/healthz");
  EXPECT_NE(plain.out, "200") << plain.out << plain.err;
  RunResult plain_ctl =
      stratus::testing::Run({StratusctlBin(), "--server", "http://127.0.0.1:" + std::to_string(server.port()), "get", "instances"});
  EXPECT_NE(plain_ctl.exit_code, 0) << plain_ctl.out;

  // stratusctl: with the CA (flag or STRATUS_CA_FILE) it works; without, or with another CA, it says why.
  RunResult ok = server.Ctl({"get", "instances"});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  RunResult env = stratus::testing::Run({StratusctlBin(), "--server", https, "get", "instances"}, "",
                                        {"STRATUS_CA_FILE=" + ca, "STRATUS_TOKEN=" + server.token()});
  EXPECT_EQ(env.exit_code, 0) << env.out << env.err;
  RunResult without = stratus::testing::Run({StratusctlBin(), "--server", https, "get", "instances"});
  EXPECT_NE(without.exit_code, 0);
  EXPECT_NE(without.err.find("certificate"), std::string::npos) << without.err;
  EXPECT_NE(without.err.find("--certificate-authority"), std::string::npos) << without.err;
  auto other = EnsureServingCertificate((dir_.path() / "other-ca").string(), {});
  ASSERT_TRUE(other.ok()) << other.status().message();
  RunResult wrong =
      stratus::testing::Run({StratusctlBin(), "--server", https, "--certificate-authority", other->ca_cert, "get", "instances"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("certificate"), std::string::npos) << wrong.err;
  std::string absent = (dir_.path() / "absent.crt").string();
  RunResult missing = stratus::testing::Run({StratusctlBin(), "--server", https, "--certificate-authority", absent, "get", "instances"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find(absent), std::string::npos) << missing.err;
  RunResult skip = stratus::testing::Run(
      {StratusctlBin(), "--server", https, "--insecure-skip-tls-verify", "--token", server.token(), "get", "instances"});
  EXPECT_EQ(skip.exit_code, 0) << skip.err;

  // After all those failed handshakes the server still serves.
  EXPECT_EQ(server.Http("GET", "/healthz").code, 200);
}

TEST_F(TlsTest, AnAgentRegistersItsNodeOverTls) {
  ServerProcess server(dir_.path() / "data", {"--secure"});
  ASSERT_TRUE(server.Start()) << server.log();
  AgentProcess agent(server, "node-tls", dir_.path(), /*heartbeat_seconds=*/1,
                     {"--certificate-authority", server.ca_file()});
  ASSERT_TRUE(Eventually([&] { json c = NodeCondition(server, "node-tls");
                           return c.is_object() && c.value("status", "") == "True"; },
                         static_cast<int>(Scaled(std::chrono::seconds(60)).count() / 1000)))
      << agent.log() << server.log();

  // Without the CA it cannot, and says why.
  AgentProcess blind(server, "node-blind", dir_.path());
  ASSERT_TRUE(Eventually([&] { return blind.log().find("certificate") != std::string::npos; },
                         static_cast<int>(Scaled(std::chrono::seconds(60)).count() / 1000)))
      << blind.log();
  EXPECT_EQ(server.Http("GET", "/apis/stratus.io/v1/nodes/node-blind").code, 404);
}

TEST_F(TlsTest, KeepsItsCaAcrossRestartsAndAddsNames) {
  fs::path data = dir_.path() / "data";
  std::string ca_pem, cert_pem;
  {
    ServerProcess first(data, {"--secure"});
    ASSERT_TRUE(first.Start()) << first.log();
    ca_pem = ReadFile(first.ca_file());
    cert_pem = ReadFile(data / "tls" / "server.crt");
  }
  ServerProcess second(data, {"--tls-san", "stratus.test", "--tls-san", "127.0.0.2"});
  ASSERT_TRUE(second.Start()) << second.log();
  EXPECT_EQ(ReadFile(second.ca_file()), ca_pem);
  EXPECT_NE(ReadFile(data / "tls" / "server.crt"), cert_pem);
  // The new name is in the certificate: curl may reach the server by it.
  std::string port = std::to_string(second.port());
  RunResult by_name = CurlGet("https://stratus.test:" + port + "/healthz",
                              {"--cacert", second.ca_file(), "--resolve", "stratus.test:" + port + ":127.0.0.1"});
  EXPECT_EQ(by_name.out, "200") << by_name.err;
  RunResult other_name = CurlGet("https://elsewhere.test:" + port + "/healthz",
                                 {"--cacert", second.ca_file(), "--resolve", "elsewhere.test:" + port + ":127.0.0.1"});
  EXPECT_NE(other_name.out, "200");
}

TEST_F(TlsTest, ServesAGivenCertificateAndKey) {
  // A pair made elsewhere, under names of its own next to the CA the harness's client trusts (DATA_DIR/tls/ca.crt).
  fs::path data = dir_.path() / "data";
  auto own = EnsureServingCertificate((data / "tls").string(), {});
  ASSERT_TRUE(own.ok()) << own.status().message();
  std::string cert = (data / "tls" / "given.crt").string(), key = (data / "tls" / "given.key").string();
  fs::rename(own->cert, cert);
  fs::rename(own->key, key);
  ServerProcess server(data, {"--tls-cert", cert, "--tls-key", key});
  ASSERT_TRUE(server.Start()) << server.log();
  EXPECT_EQ(server.url().rfind("https://", 0), 0u);
  EXPECT_FALSE(fs::exists(own->cert)) << "made a certificate although one was given";
  RunResult ok = CurlGet(server.url() + "/healthz", {"--cacert", own->ca_cert});
  EXPECT_EQ(ok.out, "200") << ok.err;
  RunResult ctl = server.Ctl({"get", "instances"});
  EXPECT_EQ(ctl.exit_code, 0) << ctl.err;
}

TEST_F(TlsTest, BadTlsFlagsAreClearErrors) {
  auto own = EnsureServingCertificate((dir_.path() / "own").string(), {});
  ASSERT_TRUE(own.ok());
  auto stratusd = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {StratusdBin(), "server", "--data-dir", (dir_.path() / "d").string(), "--listen",
                                  "127.0.0.1:1", "--agent=false", "--ec2-listen=off"};
    a.insert(a.end(), extra.begin(), extra.end());
    return stratus::testing::Run(a);
  };
  RunResult san = stratusd({"--tls-san", "not_a_name"});
  EXPECT_NE(san.exit_code, 0);
  EXPECT_NE(san.err.find("--tls-san \"not_a_name\""), std::string::npos) << san.err;
  RunResult half = stratusd({"--tls-cert", own->cert});
  EXPECT_NE(half.exit_code, 0);
  EXPECT_NE(half.err.find("--tls-key"), std::string::npos) << half.err;
  RunResult swapped = stratusd({"--tls-cert", own->key, "--tls-key", own->cert});
  EXPECT_NE(swapped.exit_code, 0);
  EXPECT_NE(swapped.err.find(own->key), std::string::npos) << swapped.err;
  RunResult wrong_key = stratusd({"--tls-cert", own->cert, "--tls-key", own->ca_key});
  EXPECT_NE(wrong_key.exit_code, 0);
  EXPECT_NE(wrong_key.err.find("does not belong"), std::string::npos) << wrong_key.err;
  RunResult both = stratusd({"--insecure-http", "--tls-san", "x.test"});
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("--insecure-http"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace stratus::testing
