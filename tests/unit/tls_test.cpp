// The API server's own CA and serving certificate (EnsureServingCertificate), its loaded key pair and the client's
// CA file checks.
#include "stratus/core/tls.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace stratus {
namespace {
namespace fs = std::filesystem;

std::string Slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Mode(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Cert = std::unique_ptr<X509, X509Free>;

Cert Load(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  Cert c(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return c;
}

// X509_verify_cert of `cert` against `ca` as a TLS server certificate; the error string, or "" when it verifies.
std::string Verify(X509* cert, X509* ca) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  std::string why = X509_verify_cert(ctx) == 1 ? "" : X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return why;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stratus-tls-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    dir_ = (root_ / "tls").string();
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::string dir_;
};

TEST_F(TlsTest, MakesACaAndAServingCertificateItSigns) {
  auto files = EnsureServingCertificate(dir_, {"stratus.example.com", "10.1.2.3", "IP:fd00::7"});
  ASSERT_TRUE(files.ok()) << files.status().message();
  EXPECT_TRUE(files->ca_created);
  EXPECT_TRUE(files->cert_issued);
  EXPECT_EQ(files->ca_cert, dir_ + "/ca.crt");
  EXPECT_EQ(Mode(dir_), 0700);
  EXPECT_EQ(Mode(files->ca_key), 0600);
  EXPECT_EQ(Mode(files->key), 0600);
  EXPECT_EQ(Mode(files->cert), 0600);
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << "left behind: " << e.path();
  }

  Cert ca = Load(files->ca_cert), cert = Load(files->cert);
  ASSERT_TRUE(ca && cert);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_NE(X509_get_key_usage(ca.get()) & KU_KEY_CERT_SIGN, 0u);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_NE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER, 0u);
  EXPECT_EQ(Verify(cert.get(), ca.get()), "");
  // A CA of another data dir does not vouch for it.
  auto other = EnsureServingCertificate((root_ / "other").string(), {});
  ASSERT_TRUE(other.ok());
  Cert other_ca = Load(other->ca_cert);
  EXPECT_NE(Verify(cert.get(), other_ca.get()), "");

  // The names: localhost, the loopback addresses and the extra ones; nothing else.
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "stratus.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "example.com", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "fd00::7", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.1.2.4", 0), 0);

  // The key goes with the certificate.
  auto creds = TlsServerCredentials::Load(files->cert, files->key);
  EXPECT_TRUE(creds.ok()) << creds.status().message();
}

TEST_F(TlsTest, KeepsTheCaAndReissuesOnlyWhenANameIsAdded) {
  auto first = EnsureServingCertificate(dir_, {"a.example"});
  ASSERT_TRUE(first.ok()) << first.status().message();
  std::string ca_pem = Slurp(first->ca_cert), ca_key = Slurp(first->ca_key), cert_pem = Slurp(first->cert);

  auto same = EnsureServingCertificate(dir_, {"A.example"});  // DNS names compare case-insensitively
  ASSERT_TRUE(same.ok()) << same.status().message();
  EXPECT_FALSE(same->ca_created);
  EXPECT_FALSE(same->cert_issued);
  EXPECT_EQ(Slurp(first->cert), cert_pem);

  auto more = EnsureServingCertificate(dir_, {"a.example", "192.0.2.9"});
  ASSERT_TRUE(more.ok()) << more.status().message();
  EXPECT_FALSE(more->ca_created);
  EXPECT_TRUE(more->cert_issued);
  EXPECT_EQ(Slurp(first->ca_cert), ca_pem);
  EXPECT_EQ(Slurp(first->ca_key), ca_key);
  EXPECT_NE(Slurp(first->cert), cert_pem);
  Cert ca = Load(more->ca_cert), cert = Load(more->cert);
  ASSERT_TRUE(ca && cert);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "192.0.2.9", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "a.example", 0, 0, nullptr), 1);
  EXPECT_EQ(Verify(cert.get(), ca.get()), "");
  EXPECT_EQ(Mode(more->cert), 0600);

  // Fewer names than the certificate has: still good, not re-issued.
  auto fewer = EnsureServingCertificate(dir_, {});
  ASSERT_TRUE(fewer.ok());
  EXPECT_FALSE(fewer->cert_issued);
}

TEST_F(TlsTest, ReissuesWhenTheKeyDoesNotMatchOrTheCertificateIsGone) {
  auto first = EnsureServingCertificate(dir_, {});
  ASSERT_TRUE(first.ok());
  auto other = EnsureServingCertificate((root_ / "other").string(), {});
  ASSERT_TRUE(other.ok());
  fs::copy_file(other->key, first->key, fs::copy_options::overwrite_existing);
  auto again = EnsureServingCertificate(dir_, {});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->cert_issued);
  EXPECT_TRUE(TlsServerCredentials::Load(again->cert, again->key).ok());

  fs::remove(first->cert);
  auto gone = EnsureServingCertificate(dir_, {});
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->cert_issued);
  EXPECT_FALSE(gone->ca_created);
}

TEST_F(TlsTest, RejectsInvalidNamesBeforeWritingAnything) {
  for (std::string bad : std::vector<std::string>{"bad_name", "a..b", "-a.example", "a-.example", "x y", "a,b", "IP:999.1.1.1",
                          "IP:example.com", "", "*.example.com", "a.example/", std::string(64, 'a') + ".example"}) {
    auto r = EnsureServingCertificate(dir_, {"ok.example", bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalid) << bad;
    EXPECT_NE(r.status().message().find("--tls-san"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("\"" + bad + "\""), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_EQ(*NormalizeSan("Host-1.Example.COM"), "DNS:host-1.example.com");
  EXPECT_EQ(*NormalizeSan("DNS:node7"), "DNS:node7");
  EXPECT_EQ(*NormalizeSan("0:0::1"), "IP:::1");
  EXPECT_EQ(*NormalizeSan("10.0.0.1"), "IP:10.0.0.1");
}

TEST_F(TlsTest, ACaCertificateWithoutItsKeyIsAnErrorNotANewCa) {
  auto first = EnsureServingCertificate(dir_, {});
  ASSERT_TRUE(first.ok());
  std::string ca_pem = Slurp(first->ca_cert);
  fs::remove(first->ca_key);
  auto r = EnsureServingCertificate(dir_, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ca.key"), std::string::npos) << r.status().message();
  EXPECT_EQ(Slurp(first->ca_cert), ca_pem);
}

TEST_F(TlsTest, BadServerFilesAndCaFilesAreClearErrors) {
  auto files = EnsureServingCertificate(dir_, {});
  ASSERT_TRUE(files.ok());
  auto missing = TlsServerCredentials::Load(dir_ + "/nope.crt", files->key);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.crt"), std::string::npos) << missing.status().message();
  auto not_a_key = TlsServerCredentials::Load(files->cert, files->cert);
  ASSERT_FALSE(not_a_key.ok());
  EXPECT_NE(not_a_key.status().message().find("key"), std::string::npos) << not_a_key.status().message();
  auto wrong_key = TlsServerCredentials::Load(files->cert, files->ca_key);
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_NE(wrong_key.status().message().find("does not belong"), std::string::npos);

  EXPECT_TRUE(CheckCaFile(files->ca_cert).ok());
  Status none = CheckCaFile(dir_ + "/absent.crt");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.message().find("absent.crt"), std::string::npos) << none.message();
  Status key = CheckCaFile(files->key);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.message().find("no PEM certificate"), std::string::npos) << key.message();
}

}  // namespace
}  // namespace stratus
