// The API as its clients see it: stratusctl, the node agent and every reconciler use this interface, served
// over HTTP (HttpApiClient) or in-process later. Objects are JSON; errors are Status values.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus {

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;          // 0 = no limit
  std::string continue_token;
  std::string resource_version;  // for watch: start after this version
  int timeout_seconds = 0;       // for watch: server closes the stream after this long (0 = server default)
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, ERROR, BOOKMARK
  json object;
};

class ApiClient {
 public:
  virtual ~ApiClient() = default;
  // `ns` is ignored for cluster-scoped kinds. `plural` is a ResourceInfo::plural.
  virtual StatusOr<json> Get(const std::string& plural, const std::string& ns, const std::string& name) = 0;
  // Returns a `{Kind}List` object: {apiVersion, kind, metadata:{resourceVersion, continue}, items:[...]}.
  virtual StatusOr<json> List(const std::string& plural, const std::string& ns, const ListOptions& opts) = 0;
  virtual StatusOr<json> Create(const std::string& plural, const std::string& ns, const json& obj) = 0;
  virtual StatusOr<json> Update(const std::string& plural, const std::string& ns, const json& obj) = 0;
  virtual StatusOr<json> UpdateStatus(const std::string& plural, const std::string& ns, const json& obj) = 0;
  // merge-patch+json; `subresource` is "" or "status".
  virtual StatusOr<json> Patch(const std::string& plural, const std::string& ns, const std::string& name,
                               const json& patch, const std::string& subresource = "") = 0;
  // Server-side apply (PATCH application/apply-patch+yaml) of `config`, a partial object with apiVersion, kind and
  // metadata.name, as `field_manager` ("" = this client's own name); `force` takes over fields other managers
  // own. Creates the object when it does not exist. Default: kMethodNotAllowed.
  virtual StatusOr<json> Apply(const std::string& plural, const std::string& ns, const json& config,
                               const std::string& field_manager, bool force) {
    (void)plural, (void)ns, (void)config, (void)field_manager, (void)force;
    return Status(Code::kMethodNotAllowed, "this client does not do server-side apply");
  }
  // Returns the object as it is after the call (with deletionTimestamp when finalizers hold it) or a Status.
  virtual StatusOr<json> Delete(const std::string& plural, const std::string& ns, const std::string& name,
                                const std::string& precondition_uid = "") = 0;
  // Streams events to `on_event` until it returns false, `stop` becomes true, the server closes the stream,
  // or an error occurs. Returns Ok when the stream ended normally; kGone when the version is too old.
  virtual Status Watch(const std::string& plural, const std::string& ns, const ListOptions& opts,
                       const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) = 0;
  // Raw GET of a path (discovery, /healthz, logs proxy); returns the body.
  virtual StatusOr<std::string> GetRaw(const std::string& path) = 0;
  // POSTs `body` to a path outside the resources (an access review). Clients that have no such paths refuse.
  virtual StatusOr<json> PostRaw(const std::string& path, const json& body) {
    (void)path;
    (void)body;
    return Status(Code::kMethodNotAllowed, "this client does not send requests outside the resources");
  }
  // A raw request with a byte body (an instance console's input and detach); returns the answer's body.
  // Default: kMethodNotAllowed.
  virtual StatusOr<std::string> SendRaw(const std::string& method, const std::string& path, const std::string& body) {
    (void)method, (void)path, (void)body;
    return Status(Code::kMethodNotAllowed, "this client does not send raw requests");
  }
  // Streams the body of `GET path` (an instance's console) to `on_data` as it comes, after `on_open` got the
  // answer's headers (names in lower case), until the server ends it, `stop` becomes true (Ok) or the stream breaks. `idle_seconds`:
  // how long the stream may be silent. Default: kMethodNotAllowed.
  virtual Status StreamRaw(const std::string& path, int idle_seconds,
                           const std::function<void(const std::map<std::string, std::string>&)>& on_open,
                           const std::function<void(const std::string&)>& on_data, const std::atomic<bool>* stop) {
    (void)path, (void)idle_seconds, (void)on_open, (void)on_data, (void)stop;
    return Status(Code::kMethodNotAllowed, "this client does not stream raw requests");
  }
  // Streams the local file `file` as the body of `PUT {object path}/upload` (image data); `progress(sent, total)`
  // is called as bytes leave. Returns the object as the server stored it. Default: kUnavailable.
  virtual StatusOr<json> UploadFile(const std::string& plural, const std::string& ns, const std::string& name,
                                    const std::string& file, const std::function<void(uint64_t, uint64_t)>& progress);
};

// How an HTTP client reaches and proves itself to the API server.
struct HttpClientOptions {
  int timeout_seconds = 30;   // per request (a watch's is the stream's own timeout plus a margin)
  std::string bearer_token;   // sent as `Authorization: Bearer TOKEN` on every request when not empty
  std::string ca_file;        // PEM file of the CA that https servers are verified against ("" = system CAs)
  bool insecure_skip_tls_verify = false;  // https without verifying the server's certificate (tests, debugging)
  // Sent as the User-Agent ("NAME/v1"): the server names this client's writes after it in managedFields.
  std::string field_manager = "stratus-client";
};

// HTTP implementation over cpprestsdk. `server` is a base URL such as https://127.0.0.1:8774, or several separated
// by commas (API servers of one cluster): a server that cannot be reached is failed over to the next.
std::unique_ptr<ApiClient> NewHttpApiClient(const std::string& server, const HttpClientOptions& opts);
inline std::unique_ptr<ApiClient> NewHttpApiClient(const std::string& server, int timeout_seconds = 30) {
  HttpClientOptions o;
  o.timeout_seconds = timeout_seconds;
  return NewHttpApiClient(server, o);
}

// Path helpers shared by client and server: /apis/stratus.io/v1[/namespaces/{ns}]/{plural}[/{name}[/{sub}]].
std::string ResourcePath(const ResourceInfo& r, const std::string& ns, const std::string& name = "",
                         const std::string& subresource = "");

}  // namespace stratus
