// TLS for the API: the serving certificate the server makes for itself at first start (a private CA and a
// certificate it signs), the server's loaded key pair, and the client's trust in one CA. OpenSSL 3 underneath;
// callers hand over the SSL_CTX of their HTTP library (cpprestsdk: boost::asio::ssl::context::native_handle()).
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

// Where EnsureServingCertificate keeps its files (all PEM), and what it did this time.
struct TlsFiles {
  std::string ca_cert;      // DIR/ca.crt: what clients verify the server against
  std::string ca_key;       // DIR/ca.key (0600)
  std::string cert;         // DIR/server.crt (0600): the serving certificate, signed by the CA
  std::string key;          // DIR/server.key (0600)
  bool ca_created = false;  // a new CA was made (clients must be given the new ca.crt)
  bool cert_issued = false; // server.crt was (re-)issued
};

// Makes sure DIR (created 0700) holds a CA and a serving certificate it signed for DNS:localhost, IP:127.0.0.1,
// IP:::1 and `extra_sans` (each an IP address or a DNS name; "DNS:"/"IP:" prefixes accepted). The CA (EC P-256,
// 10 years) is made once and reused; the serving certificate (EC P-256, 2 years, serverAuth) is re-issued from
// it when it is missing, lacks a requested name, does not match its key or the CA, or expires within 30 days.
// Files are written atomically. kInvalid naming --tls-san for a name that is neither; kUnavailable when files
// cannot be read or written, or when ca.crt exists without ca.key.
StatusOr<TlsFiles> EnsureServingCertificate(const std::string& dir, const std::vector<std::string>& extra_sans);

// "IP:<canonical address>" or "DNS:<lowercased name>" for a --tls-san value; kInvalid naming it otherwise.
StatusOr<std::string> NormalizeSan(const std::string& san);

// A server's certificate chain and private key, read and checked once, then put into every connection's SSL_CTX.
class TlsServerCredentials {
 public:
  // Reads the PEM chain (leaf first) and key; kInvalid when they cannot be read or parsed, or do not match.
  static StatusOr<std::shared_ptr<const TlsServerCredentials>> Load(const std::string& cert_file,
                                                                    const std::string& key_file);
  ~TlsServerCredentials();
  TlsServerCredentials(const TlsServerCredentials&) = delete;
  TlsServerCredentials& operator=(const TlsServerCredentials&) = delete;
  // Installs the chain and key into `ctx` and allows TLS 1.2 and newer only. Never throws.
  Status Apply(SSL_CTX* ctx) const;

 private:
  TlsServerCredentials() = default;
  X509* leaf_ = nullptr;
  std::vector<X509*> chain_;
  EVP_PKEY* key_ = nullptr;
};

// kInvalid unless `ca_file` is a readable PEM file holding at least one certificate.
Status CheckCaFile(const std::string& ca_file);

// Makes `ctx` trust the certificates in `ca_file` and nothing else, and allows TLS 1.2 and newer only.
// Never throws; on failure `ctx` trusts nothing.
Status TrustOnlyCaFile(SSL_CTX* ctx, const std::string& ca_file);

// Diagnoses a failed TLS connection: does one handshake with host:port itself, verifying the server's certificate
// against `ca_file` ("" = the system's CAs) and `host`, and returns why it failed ("" when it succeeds), e.g.
// "the server's certificate is not trusted (self-signed certificate in certificate chain)".
std::string ProbeTls(const std::string& host, int port, const std::string& ca_file, int timeout_ms = 3000);

}  // namespace stratus
