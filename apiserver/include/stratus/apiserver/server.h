// The HTTP front of the API: Kubernetes-style paths, verbs, discovery, watch streams, health and metrics, over
// cpprestsdk's http_listener. All semantics live in Registry; this layer parses, routes and renders.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "stratus/apiserver/metrics.h"
#include "stratus/apiserver/registry.h"
#include "stratus/apiserver/store.h"

namespace stratus {

struct ApiServerOptions {
  std::string listen = "127.0.0.1:8774";     // host:port
  size_t max_body_bytes = 3 * 1024 * 1024;   // larger bodies get 413
  int default_watch_timeout_seconds = 1800;  // a watch without timeoutSeconds ends after this
  int max_watch_timeout_seconds = 3600;
  size_t max_watch_buffer_bytes = 64 * 1024 * 1024;  // a watcher that stops reading is dropped past this
  std::string upload_dir;                    // uploaded image data; empty: uploads are not served
  uint64_t max_upload_bytes = 64ull << 30;   // larger image uploads get 413
  std::string ec2_master_key;                // derives AccessKeys' secrets (shown in a create's response only)
  bool authenticate = true;                  // bearer tokens and RoleBindings on every path but the probes
  std::string audit_log;                     // JSON lines of writes and denials; empty: none
  uint64_t audit_max_bytes = 64ull << 20;    // the audit log rotates past this size
  int audit_max_files = 5;                   // rotated audit logs kept
  double user_qps = 0;                       // per-user request rate (token bucket); 0: unlimited
  double user_burst = 0;                     // the bucket's size (default 2 x user_qps)
  // PEM certificate chain (leaf first) and private key: serve https (TLS 1.2+) with them. Both empty: plain http.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class ApiServer {
 public:
  ApiServer(Registry* registry, ApiServerOptions opts);
  ~ApiServer();
  // Binds and starts serving. kUnavailable naming the address when it cannot bind; kInvalid when the TLS
  // certificate or key cannot be loaded.
  Status Start();
  // Graceful stop: new requests get 503 (Retry-After) from now on, every watch stream ends (clients see the end
  // of the stream and re-watch elsewhere or later), and in-flight requests get up to `grace` to finish. The
  // listener itself is never closed (cpprestsdk cannot close it safely under load; see server.cpp): the process
  // exits with it open. Returns false when requests were still running after `grace`.
  bool Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  std::string url() const;  // https://host:port with TLS, http://host:port without
  Metrics& metrics();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratus
