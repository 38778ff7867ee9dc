// HttpApiClient: the ApiClient interface over cpprestsdk's HTTP client.
//
// Every cpprestsdk exception is caught here and turned into a Status; nothing thrown by the library crosses
// this file's boundary. Non-2xx responses carry Kubernetes Status bodies and become Status::FromHttp values.

#include "stratus/core/api_client.h"
#include "stratus/core/stream_read.h"

#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include "stratus/core/tls.h"

namespace stratus {

namespace http = web::http;
namespace httpc = web::http::client;

std::string ResourcePath(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         const std::string& subresource) {
  std::string p = std::string("/apis/") + kGroup + "/" + kVersion;
  if (r.namespaced && !ns.empty()) p += "/namespaces/" + ns;
  p += "/" + r.plural;
  if (!name.empty()) {
    p += "/" + name;
    if (!subresource.empty()) p += "/" + subresource;
  }
  return p;
}

StatusOr<json> ApiClient::UploadFile(const std::string&, const std::string&, const std::string&, const std::string&,
                                     const std::function<void(uint64_t, uint64_t)>&) {
  return Status(Code::kUnavailable, "this client cannot upload files");
}

namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kMergePatch = "application/merge-patch+json";

// Percent-encodes one path segment or query value (everything but RFC 3986 unreserved characters).
std::string Encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Adds `key=value` to a query string being built (value encoded; empty values skipped).
void AddQuery(std::string& q, const std::string& key, const std::string& value) {
  if (value.empty()) return;
  q += q.empty() ? "?" : "&";
  q += key + "=" + Encode(value);
}

// cpprestsdk reports a failed connection as "Failed to connect to any resolved endpoint" with an error code
// that does not always match the real cause. This connects once more with plain sockets to find out why
// ("Connection refused", "Name or service not known", ...); returns "" when the connection succeeds.
std::string ProbeConnect(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return std::string("cannot resolve host \"") + host + "\": " + gai_strerror(rc);
  std::string why = "no address to connect to";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd pfd{fd, POLLOUT, 0};
        int n = poll(&pfd, 1, 2000);
        if (n == 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        }
      }
    }
    close(fd);
    if (err == 0) {
      freeaddrinfo(res);
      return "";
    }
    why = std::strerror(err);
  }
  freeaddrinfo(res);
  return why;
}

bool IsTimeout(const std::error_code& ec) {
  return ec == std::errc::timed_out || ec.value() == ETIMEDOUT;
}

class HttpApiClient : public ApiClient {
 public:
  HttpApiClient(const std::string& server, const HttpClientOptions& opts)
      : timeout_seconds_(opts.timeout_seconds > 0 ? opts.timeout_seconds : 30), opts_(opts) {
    server_ = server.empty() ? "http://127.0.0.1:8774" : server;
    if (server_.find("://") == std::string::npos) server_ = "http://" + server_;
    while (server_.size() > 1 && server_.back() == '/') server_.pop_back();
    try {
      web::uri base(utility::conversions::to_string_t(server_));
      if (base.scheme() != "http" && base.scheme() != "https") {
        init_error_ = BadRequest("invalid API server URL \"" + server_ + "\": scheme must be http or https");
        return;
      }
      host_ = utility::conversions::to_utf8string(base.host());
      port_ = base.port() > 0 ? base.port() : (base.scheme() == "https" ? 443 : 80);
      https_ = base.scheme() == "https";
      if (https_ && !opts_.ca_file.empty() && !opts_.insecure_skip_tls_verify) {
        Status ca = CheckCaFile(opts_.ca_file);
        if (!ca.ok()) {
          init_error_ = ca;
          return;
        }
      }
      client_ = MakeClient(std::chrono::seconds(timeout_seconds_));
    } catch (const std::exception& e) {
      init_error_ = BadRequest("invalid API server URL \"" + server_ + "\": " + e.what());
    }
  }

  StatusOr<json> Get(const std::string& plural, const std::string& ns, const std::string& name) override {
    auto path = Path(plural, ns, name);
    if (!path.ok()) return path.status();
    return DoJson(http::methods::GET, *path, nullptr, kJson);
  }

  StatusOr<json> List(const std::string& plural, const std::string& ns, const ListOptions& opts) override {
    auto path = Path(plural, ns, "", "", /*all_namespaces=*/true);
    if (!path.ok()) return path.status();
    std::string q;
    AddQuery(q, "labelSelector", opts.label_selector);
    AddQuery(q, "fieldSelector", opts.field_selector);
    if (opts.limit > 0) AddQuery(q, "limit", std::to_string(opts.limit));
    AddQuery(q, "continue", opts.continue_token);
    AddQuery(q, "resourceVersion", opts.resource_version);
    return DoJson(http::methods::GET, *path + q, nullptr, kJson);
  }

  StatusOr<json> Create(const std::string& plural, const std::string& ns, const json& obj) override {
    auto path = Path(plural, NamespaceFor(ns, obj), "");
    if (!path.ok()) return path.status();
    return DoJson(http::methods::POST, *path, &obj, kJson);
  }

  StatusOr<json> Update(const std::string& plural, const std::string& ns, const json& obj) override {
    return Put(plural, ns, obj, "");
  }

  StatusOr<json> UpdateStatus(const std::string& plural, const std::string& ns, const json& obj) override {
    return Put(plural, ns, obj, "status");
  }

  StatusOr<json> Patch(const std::string& plural, const std::string& ns, const std::string& name, const json& patch,
                       const std::string& subresource) override {
    auto path = Path(plural, ns, name, subresource);
    if (!path.ok()) return path.status();
    return DoJson(http::methods::PATCH, *path, &patch, kMergePatch);
  }

  StatusOr<json> Apply(const std::string& plural, const std::string& ns, const json& config,
                       const std::string& field_manager, bool force) override {
    std::string name = MetaName(config);
    if (name.empty()) return BadRequest("metadata.name: Required value: an apply configuration needs a name");
    auto path = Path(plural, NamespaceFor(ns, config), name);
    if (!path.ok()) return path.status();
    std::string q;
    AddQuery(q, "fieldManager", field_manager.empty() ? opts_.field_manager : field_manager);
    if (force) AddQuery(q, "force", "true");
    // JSON is YAML: the body goes as JSON text under the apply media type.
    return DoJson(http::methods::PATCH, *path + q, &config, "application/apply-patch+yaml");
  }

  StatusOr<json> Delete(const std::string& plural, const std::string& ns, const std::string& name,
                        const std::string& precondition_uid) override {
    auto path = Path(plural, ns, name);
    if (!path.ok()) return path.status();
    if (precondition_uid.empty()) return DoJson(http::methods::DEL, *path, nullptr, kJson);
    json opts = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"preconditions", {{"uid", precondition_uid}}}};
    return DoJson(http::methods::DEL, *path, &opts, kJson);
  }

  Status Watch(const std::string& plural, const std::string& ns, const ListOptions& opts,
               const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) override;

  StatusOr<json> UploadFile(const std::string& plural, const std::string& ns, const std::string& name,
                            const std::string& file, const std::function<void(uint64_t, uint64_t)>& progress) override {
    if (!init_error_.ok()) return init_error_;
    auto path = Path(plural, ns, name, "upload");
    if (!path.ok()) return path.status();
    int code = 0;
    std::string text;
    try {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(file, ec)) return BadRequest(file + ": not a readable regular file");
      uint64_t size = std::filesystem::file_size(file, ec);
      if (ec) return BadRequest("cannot read " + file + ": " + ec.message());
      auto in = concurrency::streams::fstream::open_istream(file, std::ios::in | std::ios::binary).get();
      http::http_request req(http::methods::PUT);
      req.set_request_uri(utility::conversions::to_string_t(*path));
      req.headers().add("Accept", kJson);
      req.set_body(in, size, "application/octet-stream");
      if (progress) {
        req.set_progress_handler([&progress, size](http::message_direction::direction d, utility::size64_t n) {
          if (d == http::message_direction::upload) progress(n, size);
        });
      }
      // The upload may take long; the timeout applies to stalls, not to the whole transfer.
      auto c = MakeClient(std::chrono::seconds(std::max(timeout_seconds_, 300)));
      http::http_response resp = c->request(req).get();
      code = resp.status_code();
      text = resp.extract_utf8string(true).get();
      in.close().wait();
    } catch (const http::http_exception& e) {
      return FromHttpException(e);
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (what.find("open") != std::string::npos || what.find("No such file") != std::string::npos) {
        return BadRequest("cannot read " + file + ": " + what);
      }
      return Unreachable(what);
    }
    if (code < 200 || code >= 300) return Status::FromHttp(code, text);
    json out = json::parse(text, nullptr, false);
    if (out.is_discarded()) return Internal("the API server answered the upload with something that is not JSON");
    return out;
  }

  StatusOr<std::string> GetRaw(const std::string& path) override { return SendRaw(http::methods::GET, path, ""); }

  StatusOr<json> PostRaw(const std::string& path, const json& body) override {
    return DoJson(http::methods::POST, path.empty() || path[0] != '/' ? "/" + path : path, &body, kJson);
  }

  StatusOr<std::string> SendRaw(const std::string& method, const std::string& path, const std::string& body) override {
    if (!init_error_.ok()) return init_error_;
    try {
      http::http_request req(utility::conversions::to_string_t(method));
      req.set_request_uri(utility::conversions::to_string_t(path.empty() || path[0] != '/' ? "/" + path : path));
      if (!body.empty()) req.set_body(body, "application/octet-stream");
      http::http_response resp = client_->request(req).get();
      std::string text = resp.extract_utf8string(true).get();
      if (resp.status_code() >= 200 && resp.status_code() < 300) return text;
      return Status::FromHttp(resp.status_code(), text);
    } catch (const http::http_exception& e) {
      return FromHttpException(e);
    } catch (const std::exception& e) {
      return Unreachable(e.what());
    }
  }

  Status StreamRaw(const std::string& path, int idle_seconds,
                   const std::function<void(const std::map<std::string, std::string>&)>& on_open,
                   const std::function<void(const std::string&)>& on_data, const std::atomic<bool>* stop) override;

 private:
  httpc::http_client_config Config(std::chrono::seconds timeout) const {
    httpc::http_client_config cfg;
    cfg.set_timeout(timeout);
    // https: the server's certificate chain is verified (cpprestsdk's default), and so is its name
    // (cpprestsdk checks the URL's host against the certificate's DNS and IP names). With a CA file that CA is
    // the only one trusted; TLS 1.2 or newer either way. The callback never throws: a CA that cannot be loaded
    // (checked in the constructor) leaves nothing trusted.
    if (opts_.insecure_skip_tls_verify) {
      cfg.set_validate_certificates(false);
    } else if (!opts_.ca_file.empty()) {
      std::string ca = opts_.ca_file;
      cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) {
        Status s = TrustOnlyCaFile(ctx.native_handle(), ca);
        if (!s.ok()) spdlog::warn("api client: {}", s.message());
      });
    }
    // The API never redirects. And cpprestsdk's redirect follower copies a request's headers on the calling
    // thread after handing the request to its I/O thread, which may add Content-Type to those same headers
    // (a data race TSan reports; a torn std::map otherwise).
    cfg.set_max_redirects(0);
    return cfg;
  }

  // Every request of this client goes through one of these: same TLS settings, same credentials.
  std::unique_ptr<httpc::http_client> MakeClient(std::chrono::seconds timeout) const {
    auto c = std::make_unique<httpc::http_client>(web::uri(utility::conversions::to_string_t(server_)),
                                                  Config(timeout));
    if (!opts_.field_manager.empty()) {
      std::string agent = opts_.field_manager + "/v1";
      c->add_handler([agent](http::http_request req, std::shared_ptr<http::http_pipeline_stage> next) {
        req.headers()["User-Agent"] = agent;
        return next->propagate(req);
      });
    }
    if (!opts_.bearer_token.empty()) {
      std::string header = "Bearer " + opts_.bearer_token;
      c->add_handler([header](http::http_request req, std::shared_ptr<http::http_pipeline_stage> next) {
        req.headers()["Authorization"] = header;
        return next->propagate(req);
      });
    }
    return c;
  }

  static std::string NamespaceFor(const std::string& ns, const json& obj) {
    if (!ns.empty()) return ns;
    return MetaNamespace(obj);
  }

  static std::string MetaNamespace(const json& obj) {
    if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()) {
      const json& m = obj["metadata"];
      if (m.contains("namespace") && m["namespace"].is_string()) return m["namespace"].get<std::string>();
    }
    return "";
  }

  static std::string MetaName(const json& obj) {
    if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()) {
      const json& m = obj["metadata"];
      if (m.contains("name") && m["name"].is_string()) return m["name"].get<std::string>();
    }
    return "";
  }

  StatusOr<json> Put(const std::string& plural, const std::string& ns, const json& obj, const std::string& sub) {
    std::string name = MetaName(obj);
    if (name.empty()) return BadRequest("metadata.name: Required value: an update needs the object's name");
    auto path = Path(plural, NamespaceFor(ns, obj), name, sub);
    if (!path.ok()) return path.status();
    return DoJson(http::methods::PUT, *path, &obj, kJson);
  }

  // Builds the encoded request path for a resource.
  // An empty namespace addresses every namespace, which only LIST and WATCH (`all_namespaces`) may do.
  StatusOr<std::string> Path(const std::string& plural, const std::string& ns, const std::string& name,
                             const std::string& sub = "", bool all_namespaces = false) const {
    const ResourceInfo* r = FindByPlural(plural);
    if (r == nullptr) return NotFound("the server doesn't have a resource type \"" + plural + "\"");
    if (r->namespaced && ns.empty() && !all_namespaces) {
      return BadRequest("a namespace is required for " + plural + (name.empty() ? "" : " \"" + name + "\""));
    }
    return ResourcePath(*r, r->namespaced ? Encode(ns) : "", Encode(name), sub);
  }

  Status Unreachable(const std::string& why) const {
    return Status(Code::kUnavailable, "cannot reach Stratus API server at " + server_ + ": " + why);
  }

  Status FromHttpException(const http::http_exception& e) const {
    const std::error_code& ec = e.error_code();
    if (IsTimeout(ec)) {
      return Status(Code::kTimeout, "request to Stratus API server at " + server_ + " timed out after " +
                                        std::to_string(timeout_seconds_) + "s");
    }
    std::string what = e.what();
    if (what.find("connect") != std::string::npos || what.find("resolv") != std::string::npos) {
      std::string probe = ProbeConnect(host_, port_);
      if (!probe.empty()) return Unreachable(probe);
    }
    // An https server answers plain http by closing the connection.
    if (!https_ && what.find("status line") != std::string::npos) {
      return Unreachable(what + " (does the server serve https? try https://" + host_ + ":" + std::to_string(port_) +
                         ")");
    }
    // cpprestsdk says only "Error in SSL handshake"; a handshake of our own finds out why (most often a
    // certificate that is not trusted: no or the wrong --certificate-authority).
    if (https_ && !opts_.insecure_skip_tls_verify &&
        (what.find("SSL") != std::string::npos || what.find("handshake") != std::string::npos)) {
      std::string probe = ProbeTls(host_, port_, opts_.ca_file);
      if (!probe.empty()) {
        if (probe.find("certificate") != std::string::npos) {
          probe += opts_.ca_file.empty() ? "; pass the server's CA with --certificate-authority (STRATUS_CA_FILE)"
                                         : "; is " + opts_.ca_file + " the CA that signed the server's certificate?";
        }
        return Unreachable(probe);
      }
    }
    return Unreachable(what.empty() ? ec.message() : what);
  }

  // Sends one request with an optional JSON body and returns the parsed JSON response (or the Status of a
  // non-2xx response).
  StatusOr<json> DoJson(const http::method& method, const std::string& path_and_query, const json* body,
                        const char* content_type) {
    if (!init_error_.ok()) return init_error_;
    int code = 0;
    std::string text;
    try {
      http::http_request req(method);
      req.set_request_uri(utility::conversions::to_string_t(path_and_query));
      req.headers().add("Accept", kJson);
      if (body != nullptr) req.set_body(body->dump(), content_type);
      http::http_response resp = client_->request(req).get();
      code = resp.status_code();
      text = resp.extract_utf8string(true).get();
    } catch (const http::http_exception& e) {
      return FromHttpException(e);
    } catch (const std::exception& e) {
      return Unreachable(e.what());
    }
    if (code < 200 || code >= 300) return Status::FromHttp(code, text);
    json out = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded()) {
      std::string head = text.size() > 200 ? text.substr(0, 200) + "..." : text;
      return Internal("the API server at " + server_ + " returned a response that is not JSON: " + head);
    }
    return out;
  }

  std::string server_;
  std::string host_;
  int port_ = 0;
  bool https_ = false;
  int timeout_seconds_;
  Status init_error_;
  HttpClientOptions opts_;
  std::unique_ptr<httpc::http_client> client_;
};

// The Status an answer other than 200 stands for (its body, when it can be read, says why).
Status ErrorOf(http::http_response& resp) {
  std::string body;
  try {
    body = resp.extract_utf8string(true).get();
  } catch (const std::exception&) {
  }
  return Status::FromHttp(resp.status_code(), body);
}

// Cancels a request when `stop` becomes true (checked every 200ms) or when Finish() is called.
class StopWatcher {
 public:
  StopWatcher(const std::atomic<bool>* stop, pplx::cancellation_token_source cts) : stop_(stop), cts_(cts) {
    if (stop_ == nullptr) return;
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!finished_) {
        if (stop_->load()) {
          cts_.cancel();
          return;
        }
        cv_.wait_for(lock, std::chrono::milliseconds(200));
      }
    });
  }
  ~StopWatcher() { Finish(); }
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool stopped() const { return stop_ != nullptr && stop_->load(); }

 private:
  const std::atomic<bool>* stop_;
  pplx::cancellation_token_source cts_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::thread thread_;
};

Status HttpApiClient::Watch(const std::string& plural, const std::string& ns, const ListOptions& opts,
                            const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) {
  if (!init_error_.ok()) return init_error_;
  auto path = Path(plural, ns, "", "", /*all_namespaces=*/true);
  if (!path.ok()) return path.status();
  std::string q = "?watch=1";
  if (!opts.resource_version.empty()) q += "&resourceVersion=" + Encode(opts.resource_version);
  if (opts.timeout_seconds > 0) q += "&timeoutSeconds=" + std::to_string(opts.timeout_seconds);
  AddQuery(q, "labelSelector", opts.label_selector);
  AddQuery(q, "fieldSelector", opts.field_selector);

  // The stream may be quiet for a long time: the inactivity timeout of this request is the server-side
  // timeout plus a margin, or an hour when the server picks it.
  std::chrono::seconds idle(opts.timeout_seconds > 0 ? opts.timeout_seconds + 30 : 3600);
  pplx::cancellation_token_source cts;
  StopWatcher watcher(stop, cts);
  bool cancelled_by_us = false;
  try {
    auto client_ptr = MakeClient(idle);
    httpc::http_client& client = *client_ptr;
    http::http_request req(http::methods::GET);
    req.set_request_uri(utility::conversions::to_string_t(*path + q));
    req.headers().add("Accept", kJson);
    http::http_response resp;
    try {
      resp = client.request(req, cts.get_token()).get();
    } catch (const pplx::task_canceled&) {
      return Status::Ok();
    }
    if (resp.status_code() != 200) return ErrorOf(resp);
    concurrency::streams::istream in = resp.body();
    while (true) {
      if (watcher.stopped()) {
        // Close the stream now rather than leave the connection open until the server's timeout.
        cancelled_by_us = true;
        cts.cancel();
        return Status::Ok();
      }
      concurrency::streams::container_buffer<std::string> line_buf;
      try {
        in.read_line(line_buf).get();
      } catch (const pplx::task_canceled&) {
        return Status::Ok();
      } catch (const std::exception& e) {
        if (watcher.stopped() || cancelled_by_us) return Status::Ok();
        if (const auto* he = dynamic_cast<const http::http_exception*>(&e); he != nullptr && IsTimeout(he->error_code())) {
          return Status::Ok();  // a quiet stream timed out: the caller re-watches from its last version
        }
        return Status(Code::kUnavailable, "watch stream from " + server_ + " interrupted: " + e.what());
      }
      std::string line = std::move(line_buf.collection());
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) {
        json ev = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (ev.is_discarded() || !ev.is_object() || !ev.contains("type") || !ev["type"].is_string()) {
          std::string head = line.size() > 200 ? line.substr(0, 200) + "..." : line;
          cts.cancel();
          return Internal("malformed watch event from " + server_ + ": " + head);
        }
        WatchEvent we;
        we.type = ev["type"].get<std::string>();
        we.object = ev.contains("object") ? ev["object"] : json();
        if (we.type == "ERROR") {
          // An ERROR event carries a Status (410 Expired when the version was compacted away).
          int code = we.object.is_object() && we.object.contains("code") && we.object["code"].is_number_integer()
                         ? we.object["code"].get<int>()
                         : 500;
          cts.cancel();
          cancelled_by_us = true;
          return Status::FromHttp(code, we.object.dump());
        }
        if (!on_event(we)) {
          cancelled_by_us = true;
          cts.cancel();
          return Status::Ok();
        }
      }
      if (in.is_eof()) return Status::Ok();
    }
  } catch (const pplx::task_canceled&) {
    return Status::Ok();
  } catch (const http::http_exception& e) {
    if (watcher.stopped() || cancelled_by_us) return Status::Ok();
    return FromHttpException(e);
  } catch (const std::exception& e) {
    if (watcher.stopped() || cancelled_by_us) return Status::Ok();
    return Unreachable(e.what());
  }
}

Status HttpApiClient::StreamRaw(const std::string& path, int idle_seconds,
                                const std::function<void(const std::map<std::string, std::string>&)>& on_open,
                                const std::function<void(const std::string&)>& on_data, const std::atomic<bool>* stop) {
  if (!init_error_.ok()) return init_error_;
  pplx::cancellation_token_source cts;
  StopWatcher watcher(stop, cts);
  try {
    auto client = MakeClient(std::chrono::seconds(idle_seconds));
    http::http_request req(http::methods::GET);
    req.set_request_uri(utility::conversions::to_string_t(path.empty() || path[0] != '/' ? "/" + path : path));
    http::http_response resp = client->request(req, cts.get_token()).get();
    if (resp.status_code() != 200) return ErrorOf(resp);
    std::map<std::string, std::string> headers;
    for (const auto& [k, v] : resp.headers()) {
      std::string lower = k;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      headers[lower] = v;
    }
    on_open(headers);
    auto in = resp.body().streambuf();
    std::vector<uint8_t> chunk(8192);
    for (;;) {
      size_t n = ReadSome(in, chunk.data(), chunk.size());  // what is there (at least a byte); 0 at the end
      if (n == 0) return Status::Ok();
      on_data(std::string(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n)));
    }
  } catch (const pplx::task_canceled&) {
    return Status::Ok();
  } catch (const http::http_exception& e) {
    if (watcher.stopped()) return Status::Ok();
    return FromHttpException(e);
  } catch (const std::exception& e) {
    if (watcher.stopped()) return Status::Ok();
    return Unreachable(e.what());
  }
}

// Several API servers of one cluster (on one etcd): requests go to the current one; when it cannot be reached
// (kUnavailable: refused, unreachable, shutting down), the same request goes to the next, which becomes current.
// Timeouts are not failed over (a write that timed out may have been applied).
class FailoverApiClient : public ApiClient {
 public:
  explicit FailoverApiClient(std::vector<std::unique_ptr<ApiClient>> clients) : clients_(std::move(clients)) {}

  static Status StatusOf(const Status& s) { return s; }
  template <typename T>
  static Status StatusOf(const StatusOr<T>& s) {
    return s.status();
  }
  template <typename F>
  auto Try(F f) -> decltype(f(std::declval<ApiClient&>())) {
    size_t start = current_.load();
    decltype(f(std::declval<ApiClient&>())) last = Status(Code::kUnavailable, "no API server");
    for (size_t i = 0; i < clients_.size(); ++i) {
      size_t at = (start + i) % clients_.size();
      last = f(*clients_[at]);
      if (StatusOf(last).code() != Code::kUnavailable) {
        current_ = at;
        return last;
      }
    }
    return last;
  }

  StatusOr<json> Get(const std::string& p, const std::string& ns, const std::string& n) override {
    return Try([&](ApiClient& c) { return c.Get(p, ns, n); });
  }
  StatusOr<json> List(const std::string& p, const std::string& ns, const ListOptions& o) override {
    return Try([&](ApiClient& c) { return c.List(p, ns, o); });
  }
  StatusOr<json> Create(const std::string& p, const std::string& ns, const json& obj) override {
    return Try([&](ApiClient& c) { return c.Create(p, ns, obj); });
  }
  StatusOr<json> Update(const std::string& p, const std::string& ns, const json& obj) override {
    return Try([&](ApiClient& c) { return c.Update(p, ns, obj); });
  }
  StatusOr<json> UpdateStatus(const std::string& p, const std::string& ns, const json& obj) override {
    return Try([&](ApiClient& c) { return c.UpdateStatus(p, ns, obj); });
  }
  StatusOr<json> Patch(const std::string& p, const std::string& ns, const std::string& n, const json& patch,
                       const std::string& sub) override {
    return Try([&](ApiClient& c) { return c.Patch(p, ns, n, patch, sub); });
  }
  StatusOr<json> Apply(const std::string& p, const std::string& ns, const json& config, const std::string& manager,
                       bool force) override {
    return Try([&](ApiClient& c) { return c.Apply(p, ns, config, manager, force); });
  }
  StatusOr<json> Delete(const std::string& p, const std::string& ns, const std::string& n,
                        const std::string& uid) override {
    return Try([&](ApiClient& c) { return c.Delete(p, ns, n, uid); });
  }
  Status Watch(const std::string& p, const std::string& ns, const ListOptions& o,
               const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) override {
    return Try([&](ApiClient& c) { return c.Watch(p, ns, o, on_event, stop); });
  }
  StatusOr<std::string> GetRaw(const std::string& path) override {
    return Try([&](ApiClient& c) { return c.GetRaw(path); });
  }
  StatusOr<std::string> SendRaw(const std::string& method, const std::string& path, const std::string& body) override {
    return Try([&](ApiClient& c) { return c.SendRaw(method, path, body); });
  }
  Status StreamRaw(const std::string& path, int idle_seconds,
                   const std::function<void(const std::map<std::string, std::string>&)>& on_open,
                   const std::function<void(const std::string&)>& on_data, const std::atomic<bool>* stop) override {
    return Try([&](ApiClient& c) { return c.StreamRaw(path, idle_seconds, on_open, on_data, stop); });
  }
  StatusOr<json> PostRaw(const std::string& path, const json& body) override {
    return Try([&](ApiClient& c) { return c.PostRaw(path, body); });
  }
  StatusOr<json> UploadFile(const std::string& p, const std::string& ns, const std::string& n, const std::string& file,
                            const std::function<void(uint64_t, uint64_t)>& progress) override {
    return Try([&](ApiClient& c) { return c.UploadFile(p, ns, n, file, progress); });
  }

 private:
  std::vector<std::unique_ptr<ApiClient>> clients_;
  std::atomic<size_t> current_{0};
};

}  // namespace

std::unique_ptr<ApiClient> NewHttpApiClient(const std::string& server, const HttpClientOptions& opts) {
  if (server.find(',') == std::string::npos) return std::make_unique<HttpApiClient>(server, opts);
  std::vector<std::unique_ptr<ApiClient>> clients;
  std::stringstream in(server);
  for (std::string one; std::getline(in, one, ',');) {
    if (!one.empty()) clients.push_back(std::make_unique<HttpApiClient>(one, opts));
  }
  if (clients.size() == 1) return std::move(clients.front());
  return std::make_unique<FailoverApiClient>(std::move(clients));
}


}  // namespace stratus
