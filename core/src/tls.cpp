#include "stratus/core/tls.h"

#include "stratus/core/files.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>

namespace stratus {

namespace fs = std::filesystem;

namespace {

constexpr long kDay = 24 * 60 * 60;
constexpr long kCaLifetime = 3652 * kDay;      // ~10 years
constexpr long kCertLifetime = 730 * kDay;     // ~2 years
constexpr long kRenewBefore = 30 * kDay;
constexpr long kBackdate = 60 * 60;            // tolerate clocks an hour behind ours

struct X509Deleter { void operator()(X509* p) const { X509_free(p); } };
struct PkeyDeleter { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct BioDeleter { void operator()(BIO* p) const { BIO_free_all(p); } };
struct NamesDeleter { void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); } };
struct ExtDeleter { void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); } };
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// OpenSSL's error queue as text (and emptied), for messages.
std::string SslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status Unavailable(const std::string& m) { return Status(Code::kUnavailable, m); }

template <typename F>
StatusOr<std::string> ToPem(F write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return Internal("cannot encode PEM: " + SslErrors());
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

// A key (0600) and its certificate (`cert_mode`) as PEM files. Key first: a crash in between leaves a key that
// does not match the old certificate, which the next start notices and replaces.
Status WriteKeyAndCert(EVP_PKEY* key, X509* cert, const std::string& key_path, const std::string& cert_path,
                       mode_t cert_mode) {
  auto key_pem = ToPem([&](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  if (!key_pem.ok()) return key_pem.status();
  auto cert_pem = ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert); });
  if (!cert_pem.ok()) return cert_pem.status();
  Status s = WriteFileAtomic(key_path, *key_pem, 0600);
  if (s.ok()) s = WriteFileAtomic(cert_path, *cert_pem, cert_mode);
  return s;
}

StatusOr<X509Ptr> ReadCert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return Unavailable("cannot read " + path + ": " + SslErrors());
  X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x) return InvalidError(path + ": not a PEM certificate: " + SslErrors());
  return x;
}

StatusOr<PkeyPtr> ReadKey(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return Unavailable("cannot read " + path + ": " + SslErrors());
  PkeyPtr k(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!k) return InvalidError(path + ": not a PEM private key: " + SslErrors());
  return k;
}

StatusOr<PkeyPtr> NewKey() {
  PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) return Internal("cannot generate an EC P-256 key: " + SslErrors());
  return k;
}

// A random positive 128-bit serial number (RFC 5280: at most 20 octets, positive).
bool SetRandomSerial(X509* x) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return false;
  b[0] &= 0x7f;
  b[0] |= 0x40;  // never shorter than 16 octets, never negative
  BIGNUM* bn = BN_bin2bn(b, sizeof b, nullptr);
  bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
  BN_free(bn);
  return ok;
}

bool AddExt(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  std::unique_ptr<X509_EXTENSION, ExtDeleter> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  return ext && X509_add_ext(x, ext.get(), -1) == 1;
}

// A certificate for `key` named CN=`cn`, issued by `issuer` (null: self-signed) and signed with `issuer_key`.
StatusOr<X509Ptr> MakeCert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                           long lifetime, bool ca, GENERAL_NAMES* sans) {
  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1 || !SetRandomSerial(x.get())) {
    return Internal("cannot create a certificate: " + SslErrors());
  }
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Stratus"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -kBackdate);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), lifetime);
  X509_set_pubkey(x.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
  bool ok;
  if (ca) {
    ok = AddExt(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE") &&
         AddExt(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash");
  } else {
    ok = AddExt(x.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
         AddExt(x.get(), &ctx, NID_key_usage, "critical,digitalSignature") &&
         AddExt(x.get(), &ctx, NID_ext_key_usage, "serverAuth") &&
         AddExt(x.get(), &ctx, NID_subject_key_identifier, "hash") &&
         AddExt(x.get(), &ctx, NID_authority_key_identifier, "keyid:always") &&
         X509_add1_ext_i2d(x.get(), NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) == 1;
  }
  if (!ok) return Internal("cannot add certificate extensions: " + SslErrors());
  if (X509_sign(x.get(), issuer_key, EVP_sha256()) <= 0) return Internal("cannot sign a certificate: " + SslErrors());
  return x;
}

bool ValidDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string label = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

// The SubjectAltName of a certificate as the same "IP:x"/"DNS:y" strings NormalizeSan makes.
std::set<std::string> CertSans(X509* x) {
  std::set<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
      for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.insert("DNS:" + v);
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = g->d.iPAddress;
      char buf[INET6_ADDRSTRLEN];
      int len = ASN1_STRING_length(s);
      int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (af != 0 && inet_ntop(af, ASN1_STRING_get0_data(s), buf, sizeof buf) != nullptr) {
        out.insert(std::string("IP:") + buf);
      }
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

StatusOr<GENERAL_NAMES*> BuildSans(const std::vector<std::string>& sans) {
  std::unique_ptr<GENERAL_NAMES, NamesDeleter> names(sk_GENERAL_NAME_new_null());
  for (const auto& s : sans) {
    GENERAL_NAME* g = nullptr;
    if (s.rfind("IP:", 0) == 0) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(s.c_str() + 3);
      if (ip == nullptr) return InvalidError("--tls-san: invalid IP address \"" + s.substr(3) + "\"");
      g = GENERAL_NAME_new();
      GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      ASN1_STRING_set(dns, s.c_str() + 4, static_cast<int>(s.size() - 4));
      g = GENERAL_NAME_new();
      GENERAL_NAME_set0_value(g, GEN_DNS, dns);
    }
    sk_GENERAL_NAME_push(names.get(), g);
  }
  return names.release();
}

// Why the serving certificate must be (re-)issued, or "" when it is good for `want`.
std::string ReissueReason(const TlsFiles& f, X509* ca, const std::set<std::string>& want) {
  std::error_code ec;
  if (!fs::exists(f.cert, ec) || !fs::exists(f.key, ec)) return "missing";
  auto cert = ReadCert(f.cert);
  if (!cert.ok()) return "unreadable";
  auto key = ReadKey(f.key);
  if (!key.ok() || X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return "key does not match";
  }
  EVP_PKEY* ca_pub = X509_get0_pubkey(ca);
  if (ca_pub == nullptr || X509_verify(cert->get(), ca_pub) != 1) {
    ERR_clear_error();
    return "not signed by the CA";
  }
  time_t soon = time(nullptr) + kRenewBefore;
  if (X509_cmp_time(X509_get0_notAfter(cert->get()), &soon) <= 0) return "expires within 30 days";
  auto have = CertSans(cert->get());
  for (const auto& s : want) {
    if (!have.count(s)) return "lacks " + s;
  }
  return "";
}

}  // namespace

StatusOr<std::string> NormalizeSan(const std::string& raw) {
  std::string v = raw;
  bool want_ip = false, want_dns = false;
  if (v.rfind("IP:", 0) == 0) {
    want_ip = true;
    v = v.substr(3);
  } else if (v.rfind("DNS:", 0) == 0) {
    want_dns = true;
    v = v.substr(4);
  }
  auto bad = [&raw](const std::string& why) {
    return InvalidError("--tls-san \"" + raw + "\": " + why);
  };
  if (!want_dns) {
    unsigned char buf[16];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, v.c_str(), buf) == 1 && inet_ntop(AF_INET, buf, text, sizeof text) != nullptr) {
      return std::string("IP:") + text;
    }
    if (inet_pton(AF_INET6, v.c_str(), buf) == 1 && inet_ntop(AF_INET6, buf, text, sizeof text) != nullptr) {
      return std::string("IP:") + text;
    }
    if (want_ip) return bad("not an IPv4 or IPv6 address");
  }
  std::string lower = v;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!ValidDnsName(lower)) {
    return bad("neither an IP address nor a DNS name (labels of letters, digits and '-', at most 63 characters "
               "each, separated by dots)");
  }
  return "DNS:" + lower;
}

StatusOr<TlsFiles> EnsureServingCertificate(const std::string& dir, const std::vector<std::string>& extra_sans) {
  // The names first: a bad --tls-san is refused before anything is written.
  std::vector<std::string> sans = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"};
  for (const auto& s : extra_sans) {
    auto n = NormalizeSan(s);
    if (!n.ok()) return n.status();
    if (std::find(sans.begin(), sans.end(), *n) == sans.end()) sans.push_back(*n);
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return Unavailable("cannot chmod " + dir + ": " + std::strerror(errno));

  TlsFiles f;
  f.ca_cert = (fs::path(dir) / "ca.crt").string();
  f.ca_key = (fs::path(dir) / "ca.key").string();
  f.cert = (fs::path(dir) / "server.crt").string();
  f.key = (fs::path(dir) / "server.key").string();

  X509Ptr ca;
  PkeyPtr ca_key;
  if (fs::exists(f.ca_cert, ec)) {
    // Clients already trust this CA: never replace it behind their backs.
    if (!fs::exists(f.ca_key, ec)) {
      return Unavailable(f.ca_cert + " exists but its key " + f.ca_key +
                         " does not; restore it, or remove " + f.ca_cert + " to make a new CA");
    }
    auto c = ReadCert(f.ca_cert);
    if (!c.ok()) return c.status();
    auto k = ReadKey(f.ca_key);
    if (!k.ok()) return k.status();
    if (X509_check_private_key(c->get(), k->get()) != 1) {
      ERR_clear_error();
      return InvalidError(f.ca_key + " is not the key of " + f.ca_cert);
    }
    ca = std::move(*c);
    ca_key = std::move(*k);
  } else {
    // No ca.crt: nobody can trust this CA yet, so a key left without one is replaced too.
    auto k = NewKey();
    if (!k.ok()) return k.status();
    auto c = MakeCert(k->get(), "stratus-ca", nullptr, k->get(), kCaLifetime, /*ca=*/true, nullptr);
    if (!c.ok()) return c.status();
    Status s = WriteKeyAndCert(k->get(), c->get(), f.ca_key, f.ca_cert, 0644);
    if (!s.ok()) return s;
    ca = std::move(*c);
    ca_key = std::move(*k);
    f.ca_created = true;
  }

  std::set<std::string> want(sans.begin(), sans.end());
  if (ReissueReason(f, ca.get(), want).empty()) return f;

  auto names = BuildSans(sans);
  if (!names.ok()) return names.status();
  std::unique_ptr<GENERAL_NAMES, NamesDeleter> names_owner(*names);
  auto k = NewKey();
  if (!k.ok()) return k.status();
  auto c = MakeCert(k->get(), "stratus-apiserver", ca.get(), ca_key.get(), kCertLifetime, /*ca=*/false, *names);
  if (!c.ok()) return c.status();
  Status s = WriteKeyAndCert(k->get(), c->get(), f.key, f.cert, 0600);
  if (!s.ok()) return s;
  f.cert_issued = true;
  return f;
}

// ---- server credentials ----

StatusOr<std::shared_ptr<const TlsServerCredentials>> TlsServerCredentials::Load(const std::string& cert_file,
                                                                                const std::string& key_file) {
  std::shared_ptr<TlsServerCredentials> c(new TlsServerCredentials());
  BioPtr bio(BIO_new_file(cert_file.c_str(), "r"));
  if (!bio) return InvalidError("cannot read TLS certificate " + cert_file + ": " + SslErrors());
  c->leaf_ = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (c->leaf_ == nullptr) return InvalidError("TLS certificate " + cert_file + ": no PEM certificate in it");
  while (X509* more = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) c->chain_.push_back(more);
  ERR_clear_error();  // the loop ends at "no start line"
  auto key = ReadKey(key_file);
  if (!key.ok()) return InvalidError("TLS key " + key.status().message());
  c->key_ = key->release();
  if (X509_check_private_key(c->leaf_, c->key_) != 1) {
    ERR_clear_error();
    return InvalidError("TLS key " + key_file + " does not belong to the certificate " + cert_file);
  }
  return std::shared_ptr<const TlsServerCredentials>(std::move(c));
}

TlsServerCredentials::~TlsServerCredentials() {
  X509_free(leaf_);
  for (X509* x : chain_) X509_free(x);
  EVP_PKEY_free(key_);
}

namespace {
void ModernOnly(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
}
}  // namespace

Status TlsServerCredentials::Apply(SSL_CTX* ctx) const {
  ModernOnly(ctx);
  bool ok = SSL_CTX_use_certificate(ctx, leaf_) == 1 && SSL_CTX_use_PrivateKey(ctx, key_) == 1;
  for (X509* x : chain_) ok = ok && SSL_CTX_add1_chain_cert(ctx, x) == 1;
  if (!ok) return Internal("cannot set up the TLS context: " + SslErrors());
  return Status::Ok();
}

// ---- client trust ----

Status CheckCaFile(const std::string& ca_file) {
  BioPtr bio(BIO_new_file(ca_file.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return InvalidError("cannot read the certificate authority file " + ca_file + ": " + std::strerror(errno));
  }
  X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!x) return InvalidError("the certificate authority file " + ca_file + " holds no PEM certificate");
  return Status::Ok();
}

Status TrustOnlyCaFile(SSL_CTX* ctx, const std::string& ca_file) {
  ModernOnly(ctx);
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) return Internal("cannot allocate a certificate store");
  SSL_CTX_set_cert_store(ctx, store);  // replaces (and frees) the system CAs
  if (X509_STORE_load_file(store, ca_file.c_str()) != 1) {
    return InvalidError("cannot load the certificate authority file " + ca_file + ": " + SslErrors());
  }
  return Status::Ok();
}

std::string ProbeTls(const std::string& host, int port, const std::string& ca_file, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr) {
    return "cannot resolve host \"" + host + "\"";
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return std::string("cannot connect: ") + std::strerror(errno);
  std::string why;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  if (ctx == nullptr) {
    why = "cannot set up TLS: " + SslErrors();
  } else {
    if (ca_file.empty()) {
      ModernOnly(ctx);
      SSL_CTX_set_default_verify_paths(ctx);
    } else {
      Status s = TrustOnlyCaFile(ctx, ca_file);
      if (!s.ok()) why = s.message();
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    ssl = SSL_new(ctx);
  }
  if (why.empty() && ssl != nullptr) {
    SSL_set_fd(ssl, fd);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, host.c_str());
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    }
    if (SSL_connect(ssl) != 1) {
      long v = SSL_get_verify_result(ssl);
      if (v != X509_V_OK) {
        why = std::string("the server's certificate is not trusted (") + X509_verify_cert_error_string(v) + ")";
      } else {
        why = "TLS handshake failed (is the server serving https on this port?): " + SslErrors();
      }
    } else {
      SSL_shutdown(ssl);
    }
  }
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return why;
}

}  // namespace stratus
