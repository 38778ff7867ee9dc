// The EC2 endpoint's HTTP side (cpprestsdk's listener, like the main API): each request is read whole, handed to
// ec2::Api as it arrived (raw path and query, headers, body) and answered with its XML.
#pragma once

#include <memory>
#include <string>

#include "stratus/core/status.h"
#include "stratus/ec2/api.h"

namespace stratus::ec2 {

class Listener {
 public:
  // `listen` is host:port. Bodies over `max_body_bytes` get 413 (EC2 requests are small). With a certificate
  // and key (PEM files; the main API's), it serves https, TLS 1.2 and newer.
  Listener(Api* api, std::string listen, size_t max_body_bytes = 1 << 20, std::string tls_cert_file = "",
           std::string tls_key_file = "");
  ~Listener();
  // Binds and serves; kUnavailable naming the address when it cannot bind.
  Status Start();
  // New requests get 503 from now on (the listener stays open until the process ends, as the main API's does).
  void Stop();
  std::string url() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratus::ec2
