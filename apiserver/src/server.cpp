#include "stratus/apiserver/server.h"

#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <cpprest/http_listener.h>
#include <cpprest/producerconsumerstream.h>
#include <cpprest/uri.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "stratus/apiserver/audit.h"
#include "stratus/apiserver/console.h"
#include "stratus/apiserver/auth.h"
#include "stratus/apiserver/image_blobs.h"
#include "stratus/apiserver/openapi.h"
#include "stratus/apiserver/rate_limit.h"
#include "stratus/apiserver/table.h"
#include "stratus/apiserver/query.h"
#include "stratus/apiserver/watch_filter.h"
#include "stratus/core/object.h"
#include "stratus/core/stream_read.h"
#include "stratus/core/sshkey.h"
#include "stratus/core/selector.h"
#include "stratus/core/tls.h"
#include "stratus/core/yaml.h"
#include "stratus/ec2/keys.h"

namespace stratus {

using web::http::http_request;
using web::http::http_response;
using web::http::methods;

namespace {

using Clock = std::chrono::steady_clock;

// One open watch: events are written as newline-delimited JSON into a buffer the listener streams as a
// chunked body.
struct WatchStream {
  concurrency::streams::producer_consumer_buffer<uint8_t> buf;
  std::mutex mu;
  bool closed = false;
  Clock::time_point deadline;
  size_t max_buffer = 0;
  std::unique_ptr<StoreWatch> sub;

  // Non-blocking; drops the stream when the reader has fallen too far behind.
  void Send(const std::string& line) {
    std::lock_guard lock(mu);
    if (closed) return;
    if (buf.in_avail() > max_buffer) {
      spdlog::warn("watch dropped: reader too slow (buffered={} bytes)", buf.in_avail());
      CloseLocked();
      return;
    }
    // The producer/consumer buffer copies the bytes and marks them readable synchronously; the returned tasks
    // only carry a continuation scheduled on cpprestsdk's pool. Never wait for them: Send runs on pool threads
    // (a watch's first objects) and on the store's publishing thread, and with every pool thread waiting here
    // nothing would run those continuations (the server hung with 50 watches open).
    buf.putn_nocopy(reinterpret_cast<const uint8_t*>(line.data()), line.size());
    buf.sync();
  }
  void Close() {
    std::lock_guard lock(mu);
    CloseLocked();
  }
  bool IsClosed() {
    std::lock_guard lock(mu);
    return closed;
  }

 private:
  void CloseLocked() {
    if (closed) return;
    closed = true;
    buf.close(std::ios_base::out);  // synchronous too; not waited for, as in Send
  }
};

// One attached console: the agent's chunked output copied into a buffer the listener streams to the client.
struct ConsoleStream {
  concurrency::streams::producer_consumer_buffer<uint8_t> buf;
  pplx::cancellation_token_source cts;  // ends the agent's request
  std::mutex mu;
  bool closed = false;
  bool Put(const uint8_t* data, size_t n, size_t max_buffer) {
    std::lock_guard lock(mu);
    if (closed) return false;
    if (buf.in_avail() > max_buffer) return false;  // the client stopped reading
    buf.putn_nocopy(data, n);  // copied synchronously; not waited for (see WatchStream::Send)
    buf.sync();
    return true;
  }
  void Close() {
    std::lock_guard lock(mu);
    if (closed) return;
    closed = true;
    cts.cancel();
    buf.close(std::ios_base::out);
  }
};

std::string ContentTypeBase(const http_request& req) {
  auto ct = req.headers().content_type();
  auto semi = ct.find(';');
  std::string base = semi == std::string::npos ? ct : ct.substr(0, semi);
  while (!base.empty() && base.back() == ' ') base.pop_back();
  std::transform(base.begin(), base.end(), base.begin(), [](unsigned char c) { return std::tolower(c); });
  return base;
}

// One watch event as a line of JSON, with the object's stored encoding spliced in.
std::string WatchLine(const std::string& type, const std::string& encoded_object) {
  std::string line;
  line.reserve(encoded_object.size() + type.size() + 24);
  line += "{\"type\":\"";
  line += type;  // ADDED, MODIFIED or DELETED: nothing to escape
  line += "\",\"object\":";
  line += encoded_object;
  line += "}\n";
  return line;
}

// What one request is, as far as it has been understood: who sent it (once authenticated), what it asks for
// (filled in by Route), and when it arrived. Metrics, the debug log and the audit log record it at the end.
struct Call {
  Clock::time_point start = Clock::now();
  UserInfo user;
  std::string source;
  std::string metric_verb;  // GET LIST WATCH CREATE ... (the metrics' label)
  RequestAttributes attrs;  // the authorization verb, resource, namespace, name
  std::string resource;     // the metrics' resource label (a plural, or "")
  bool audited = false;     // its audit line is written (once, before the answer where it can be)
  std::vector<std::string> warnings;  // sent as Warning headers with a successful answer (fieldValidation=Warn)
};

// Kubernetes' form of a warning: `299 - "text"` (kubectl prints "Warning: text").
void AddWarnings(web::http::http_response& resp, const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) resp.headers().add("Warning", "299 - " + json(w).dump());
}

bool IsMutating(const std::string& method) {
  return method == methods::POST || method == methods::PUT || method == methods::PATCH || method == methods::DEL;
}

// Probes that must answer before anyone has a token (Kubernetes' system:public-info-viewer).
bool IsPublicPath(const std::string& path) {
  return path == "/healthz" || path == "/livez" || path == "/readyz" || path == "/version";
}

bool IsYamlType(const std::string& ct) {
  return ct == "application/yaml" || ct == "application/x-yaml" || ct == "text/yaml" || ct == "text/x-yaml";
}

}  // namespace

struct ApiServer::Impl {
  Registry* registry;
  ApiServerOptions opts;
  Metrics metrics;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;

  std::unique_ptr<ImageBlobs> blobs;  // null when uploads are not served
  std::unique_ptr<Authenticator> authn;
  std::unique_ptr<Authorizer> authz;
  std::unique_ptr<AuditLog> audit;  // null: no audit log
  std::unique_ptr<UserRateLimiter> limiter;

  std::mutex watches_mu;
  std::list<std::shared_ptr<WatchStream>> watches;
  std::list<std::shared_ptr<ConsoleStream>> console_streams;  // guarded by watches_mu; ended by Stop()
  bool draining = false;  // guarded by watches_mu: Stop() has begun; no new watch may stay open
  std::atomic<bool> refusing{false};  // new requests get 503 while the server stops
  std::thread janitor;
  std::mutex jan_mu;
  std::condition_variable jan_cv;
  bool stopping = false;
  bool sweep_soon = false;  // guarded by jan_mu

  // --- helpers -------------------------------------------------------------------------------------------------

  // Responses still being sent (a watch until its stream ended): Stop() lets them finish before it closes the
  // connections, so a client sees a complete response or a cleanly ended stream, never a cut one.
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  int inflight = 0;

  // Counts a request from its arrival until its handler returns, or for a write until its completion has replied
  // (the reply is tracked by Send from then on).
  struct Activity {
    Impl* m;
    explicit Activity(Impl* impl) : m(impl) {
      std::lock_guard lock(m->inflight_mu);
      ++m->inflight;
    }
    ~Activity() {
      std::lock_guard lock(m->inflight_mu);
      if (--m->inflight == 0) m->inflight_cv.notify_all();
    }
  };

  // Sends `resp` and tracks it until cpprestsdk has written all of it.
  void Send(http_request& req, http_response& resp) {
    {
      std::lock_guard lock(inflight_mu);
      ++inflight;
    }
    req.reply(resp).then([this](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
      std::lock_guard lock(inflight_mu);
      if (--inflight == 0) inflight_cv.notify_all();
    });
  }
  // Waits until every tracked response is sent, or until `deadline`; true when none is left.
  bool WaitForReplies(Clock::time_point deadline) {
    std::unique_lock lock(inflight_mu);
    return inflight_cv.wait_until(lock, deadline, [&] { return inflight == 0; });
  }

  void Reply(http_request& req, int code, const json& body) {
    http_response resp(static_cast<web::http::status_code>(code));
    resp.set_body(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    Send(req, resp);
  }
  void ReplyText(http_request& req, int code, const std::string& body, const std::string& type) {
    http_response resp(static_cast<web::http::status_code>(code));
    resp.set_body(body, type);
    Send(req, resp);
  }
  int ReplyStatus(http_request& req, const Status& s) {
    Reply(req, s.http_code(), s.ToJson());
    return s.http_code();
  }
  int ReplyResult(http_request& req, const StatusOr<json>& r, int ok_code = 200,
                  const std::vector<std::string>& warnings = {}) {
    if (!r.ok()) return ReplyStatus(req, r.status());
    ReplyJsonText(req, ok_code, r->dump(-1, ' ', false, json::error_handler_t::replace), warnings);
    return ok_code;
  }
  // Replies with JSON text as it is (an object's stored encoding, a list spliced from them).
  void ReplyJsonText(http_request& req, int code, std::string text, const std::vector<std::string>& warnings = {}) {
    http_response resp(static_cast<web::http::status_code>(code));
    resp.set_body(std::move(text), "application/json");
    AddWarnings(resp, warnings);
    Send(req, resp);
  }

  // Route's result when the reply is sent later, by a write's completion (which also records the request).
  static constexpr int kPending = 0;

  // The completion of an asynchronous write: replies with the stored object (or the error) from whichever thread
  // completes the write (usually the store's writer thread, right after the commit is durable and the watch event
  // published), records the request, and releases `activity` (Stop waits for it). `after` runs first on success.
  Registry::Done ReplyWhenDone(const http_request& req, std::shared_ptr<Activity> activity, const Call& call,
                               int ok_code, std::function<void()> after = {}) {
    return [this, req, activity = std::move(activity), call, ok_code,
            after = std::move(after)](StatusOr<StoredObject> res) {
      http_request r = req;
      int code = res.ok() ? ok_code : res.status().http_code();
      // Audited before the client hears of it: an acknowledged write is always in the audit log.
      Audit(r, call, code);
      try {
        if (res.ok()) {
          if (after) after();
          ReplyJsonText(r, ok_code, *res->encoded, call.warnings);
        } else {
          ReplyStatus(r, res.status());
        }
      } catch (const std::exception& e) {
        spdlog::error("reply failed: method={} path={} error={}", r.method(), r.relative_uri().path(), e.what());
        code = 500;
      }
      Record(r, call, code, /*audited=*/true);
    };
  }

  // Metrics, the debug line and (for writes and denials) the audit log of a finished request.
  void Record(const http_request& req, const Call& call, int code, bool audited = false) {
    double secs = std::chrono::duration<double>(Clock::now() - call.start).count();
    metrics.Observe(call.metric_verb, call.resource, code, secs);
    spdlog::debug("request: verb={} path={} user={} code={} ms={:.2f}", call.metric_verb, req.relative_uri().path(),
                  call.user.name, code, secs * 1000);
    if (!audited) Audit(req, call, code);
  }

  // One audit line for a write or a denial.
  void Audit(const http_request& req, const Call& call, int code) {
    if (call.audited || !audit || !(IsMutating(req.method()) || code == 401 || code == 403)) return;
    AuditEvent e;
    e.user = call.user.name;
    e.source = call.source;
    e.verb = call.attrs.verb.empty() ? req.method() : call.attrs.verb;
    e.resource = call.attrs.resource ? call.attrs.resource->plural : req.relative_uri().path();
    e.subresource = call.attrs.subresource;
    e.ns = call.attrs.ns;
    e.name = call.attrs.name;
    e.code = code;
    audit->Write(e);
  }

  // A new Token's secret: made here, only its hash stored; the create's response carries the token, this once.
  Registry::Done RevealTokenOnce(json* body, Registry::Done done) {
    TokenSecret t = NewTokenSecret();
    if (body->is_object()) {
      if (!body->contains("spec") || !(*body)["spec"].is_object()) (*body)["spec"] = json::object();
      (*body)["spec"]["tokenHash"] = t.hash;
    }
    return [secret = t.secret, done = std::move(done)](StatusOr<StoredObject> res) {
      if (res.ok() && res->object) {
        json o = *res->object;
        o["status"] = {{"token", BearerToken(MetaString(o, "name"), secret)}};
        res->encoded = std::make_shared<const std::string>(o.dump());
      }
      done(std::move(res));
    };
  }

  // A KeyPair created without a public key: the server makes the pair, stores the public half and answers the
  // private key in status.privateKey, this once (Nova's and EC2's create-key-pair).
  StatusOr<Registry::Done> RevealPrivateKeyOnce(json* body, Registry::Done done) {
    if (!body->is_object()) return done;
    if (!body->contains("spec") || !(*body)["spec"].is_object()) (*body)["spec"] = json::object();
    json& spec = (*body)["spec"];
    if (spec.contains("publicKey") && !(spec["publicKey"].is_string() && spec["publicKey"].get<std::string>().empty())) {
      return done;
    }
    std::string type = spec.value("keyType", "ed25519");
    auto key = GenerateSshKey(type, MetaString(*body, "name"));
    if (!key.ok()) {
      return InvalidError("spec.keyType: " + key.status().message(), {{"spec.keyType", key.status().message()}});
    }
    spec["publicKey"] = key->public_openssh;
    return Registry::Done([private_key = key->private_key, done = std::move(done)](StatusOr<StoredObject> res) {
      if (res.ok() && res->object) {
        json o = *res->object;
        o["status"] = {{"privateKey", private_key}};
        res->encoded = std::make_shared<const std::string>(o.dump());
      }
      done(std::move(res));
    });
  }

  // A created AccessKey's response carries its secret access key, this once (it is derived, never stored).
  Registry::Done RevealSecretOnce(Registry::Done done) {
    return [this, done = std::move(done)](StatusOr<StoredObject> res) {
      if (res.ok() && res->object) {
        json o = *res->object;
        o["status"] = {{"secretAccessKey", ec2::SecretFor(opts.ec2_master_key, MetaString(o, "uid"))}};
        res->encoded = std::make_shared<const std::string>(o.dump());
      }
      done(std::move(res));
    };
  }

  // Parses the request body (already read by Handle) after checking its Content-Type and size.
  StatusOr<json> ReadBody(http_request& req, const std::vector<unsigned char>& bytes, bool patch, bool* json_patch,
                          bool* apply = nullptr) {
    std::string ct = ContentTypeBase(req);
    if (patch) {
      if (ct == "application/json-patch+json") {
        *json_patch = true;
      } else if (ct == "application/apply-patch+yaml" && apply != nullptr) {
        *apply = true;
      } else if (ct != "application/merge-patch+json") {
        return Status(Code::kUnsupportedMediaType,
                      "the body of a PATCH must have Content-Type application/merge-patch+json, "
                      "application/json-patch+json or application/apply-patch+yaml (got \"" + ct + "\")");
      }
    } else if (!ct.empty() && ct != "application/json" && !IsYamlType(ct)) {
      return Status(Code::kUnsupportedMediaType,
                    "unsupported Content-Type \"" + ct + "\": send application/json or application/yaml");
    }
    auto declared = req.headers().content_length();
    if (declared > opts.max_body_bytes) {
      return Status(Code::kRequestEntityTooLarge, "request body of " + std::to_string(declared) +
                                                      " bytes is larger than the limit of " +
                                                      std::to_string(opts.max_body_bytes) + " bytes");
    }
    if (bytes.size() > opts.max_body_bytes) {
      return Status(Code::kRequestEntityTooLarge, "request body of " + std::to_string(bytes.size()) +
                                                      " bytes is larger than the limit of " +
                                                      std::to_string(opts.max_body_bytes) + " bytes");
    }
    std::string text(bytes.begin(), bytes.end());
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) return BadRequest("the request body is empty");
    if (IsYamlType(ct) || (apply != nullptr && *apply)) return ParseJsonOrYaml(text);
    return ParseJson(text);
  }

  // --- routing -------------------------------------------------------------------------------------------------

  // Entry point on cpprestsdk's pool. Handlers must never block on a task that needs another pool thread (with
  // every pool thread waiting, nothing would run it): bodies are read asynchronously and the request is served
  // in the continuation.
  void Handle(http_request req) {
    auto activity = std::make_shared<Activity>(this);
    if (refusing.load()) {
      http_response resp(web::http::status_codes::ServiceUnavailable);
      resp.headers().add("Retry-After", "1");
      resp.headers().add("Connection", "close");
      resp.set_body(Status(Code::kUnavailable, "the server is shutting down").ToJson().dump(), "application/json");
      Send(req, resp);
      return;
    }
    const std::string& m = req.method();
    Call call;
    call.metric_verb = m;
    call.source = req.remote_address();
    if (!Admit(req, call)) return;
    if (m == methods::PUT && IsUploadPath(req)) {
      HandleUpload(req, activity, call);
      return;
    }
    if (m != methods::POST && m != methods::PUT && m != methods::PATCH && m != methods::DEL) {
      Serve(req, {}, activity, call);
      return;
    }
    if (req.headers().content_length() > opts.max_body_bytes) {
      Serve(req, {}, activity, call, /*too_large=*/true);
      return;
    }
    req.extract_vector().then([this, req, activity, call](pplx::task<std::vector<unsigned char>> t) mutable {
      // Ends with this call: the task chain may keep the lambda (and its captures) alive long after it ran.
      auto held = std::move(activity);
      std::vector<unsigned char> body;
      try {
        body = t.get();
      } catch (const std::exception& e) {
        spdlog::debug("request body not read: error={}", e.what());
        ReplyStatus(req, BadRequest(std::string("cannot read the request body: ") + e.what()));
        return;
      }
      Serve(req, body, held, call);
    });
  }

  // Authenticates the caller (every path but the public probes) and applies its rate limit; false when the
  // request has been answered (401, 429).
  bool Admit(http_request& req, Call& call) {
    if (!authn || IsPublicPath(req.relative_uri().path())) return true;
    std::string header;
    auto it = req.headers().find(web::http::header_names::authorization);
    if (it != req.headers().end()) header = it->second;
    auto user = authn->Authenticate(header);
    if (!user.ok()) {
      http_response resp(web::http::status_codes::Unauthorized);
      resp.headers().add("WWW-Authenticate", "Bearer realm=\"stratus\"");
      resp.set_body(user.status().ToJson().dump(), "application/json");
      Audit(req, call, 401);
      call.audited = true;
      Send(req, resp);
      Record(req, call, 401);
      return false;
    }
    call.user = *user;
    int retry = 1;
    if (limiter && limiter->enabled() && !call.user.IsNode() && !authz->IsClusterAdmin(call.user.name) &&
        !limiter->Allow(call.user.name, &retry)) {
      http_response resp(web::http::status_codes::TooManyRequests);
      resp.headers().add("Retry-After", std::to_string(retry));
      Status s(Code::kTooManyRequests, "too many requests from user \"" + call.user.name + "\": retry after " +
                                           std::to_string(retry) + "s");
      resp.set_body(s.ToJson().dump(), "application/json");
      Send(req, resp);
      Record(req, call, 429);
      return false;
    }
    return true;
  }

  // Authorization of a request that Route has understood; answers 403 itself. `body`: a create's or update's
  // object, when there is one.
  bool Allowed(http_request& req, Call& call, const json* body = nullptr) {
    if (!authz) return true;
    Status s = authz->Authorize(call.user, call.attrs, body);
    if (s.ok()) return true;
    Audit(req, call, 403);  // before the answer, as a write's
    call.audited = true;
    ReplyStatus(req, s);
    return false;
  }

  void Serve(http_request& req, const std::vector<unsigned char>& body, const std::shared_ptr<Activity>& activity,
             Call& call, bool too_large = false) {
    int code = 500;
    try {
      if (too_large) {
        code = ReplyStatus(req, Status(Code::kRequestEntityTooLarge,
                                       "request body of " + std::to_string(req.headers().content_length()) +
                                           " bytes is larger than the limit of " +
                                           std::to_string(opts.max_body_bytes) + " bytes"));
      } else {
        code = Route(req, body, activity, call);
      }
    } catch (const std::exception& e) {
      spdlog::error("request failed: method={} path={} error={}", req.method(), req.relative_uri().path(), e.what());
      code = ReplyStatus(req, Internal(std::string("internal error: ") + e.what()));
    }
    if (code == kPending) return;  // recorded by the write's completion
    Record(req, call, code);
  }

  int Route(http_request& req, const std::vector<unsigned char>& body_bytes, const std::shared_ptr<Activity>& activity,
            Call& call) {
    std::string* verb = &call.metric_verb;
    std::string* resource = &call.resource;
    RequestAttributes& at = call.attrs;
    // A path outside the resources: every one but the public probes is authorized by its path.
    auto allowed_path = [&](const std::string& path) {
      at.verb = "get";
      at.path = path;
      return IsPublicPath(path) || Allowed(req, call);
    };
    // Split first, then decode each segment: an encoded '/' stays inside its segment (and fails name checks).
    std::vector<std::string> seg;
    for (const auto& s : web::uri::split_path(req.relative_uri().path())) {
      try {
        seg.push_back(web::uri::decode(s));
      } catch (const std::exception&) {
        return ReplyStatus(req, BadRequest("path: invalid percent-encoding"));
      }
    }
    auto decoded = DecodeQuery(req.relative_uri().query());
    if (!decoded.ok()) return ReplyStatus(req, decoded.status());
    std::map<std::string, std::string>& query = *decoded;
    const std::string& m = req.method();

    if (seg.empty()) {
      if (!allowed_path("/")) return 403;
      return ReplyPaths(req);
    }
    if (seg.size() == 1 && (seg[0] == "healthz" || seg[0] == "livez" || seg[0] == "readyz")) {
      *verb = "HEALTH";
      ReplyText(req, 200, "ok", "text/plain");
      return 200;
    }
    if (seg.size() == 1 && seg[0] == "metrics") {
      *verb = "METRICS";
      if (!allowed_path("/metrics")) return 403;
      std::string extra = "# HELP stratus_store_revision Current resourceVersion of the store.\n"
                          "# TYPE stratus_store_revision gauge\nstratus_store_revision " +
                          std::to_string(registry->store()->CurrentRevision()) + "\n";
      ReplyText(req, 200, metrics.Render(extra), "text/plain; version=0.0.4");
      return 200;
    }
    if (seg.size() == 1 && seg[0] == "version") {
      Reply(req, 200, {{"major", "0"}, {"minor", "1"}, {"gitVersion", "v0.1.0"}, {"platform", "linux/amd64"}});
      return 200;
    }
    if (seg[0] == "openapi") {
      *verb = "OPENAPI";
      if (!allowed_path("/openapi")) return 403;
      static const OpenApiDocs docs = BuildOpenApi(SchemaRegistry::Builtin());
      if (seg.size() == 2 && seg[1] == "v3") {
        Reply(req, 200, docs.discovery);
        return 200;
      }
      if (seg.size() == 5 && seg[1] == "v3" && seg[2] == "apis" && seg[3] == kGroup && seg[4] == kVersion) {
        http_response resp(web::http::status_codes::OK);
        resp.headers().add("ETag", "\"" + docs.hash + "\"");
        auto inm = req.headers().find("If-None-Match");
        if (inm != req.headers().end() && inm->second == "\"" + docs.hash + "\"") {
          http_response nm(web::http::status_codes::NotModified);
          nm.headers().add("ETag", "\"" + docs.hash + "\"");
          Send(req, nm);
          return 304;
        }
        resp.headers().add("Cache-Control", query.count("hash") ? "public, immutable" : "no-cache, private");
        resp.set_body(docs.group_doc, "application/json");
        Send(req, resp);
        return 200;
      }
      // No /openapi/v2: kubectl 1.32 uses v3 for explain and for finding server-side field validation.
      return ReplyStatus(req, NotFound("the server could not find the requested resource"));
    }
    if (seg.size() == 1 && seg[0] == "api") {
      if (!allowed_path("/api")) return 403;
      Reply(req, 200, {{"kind", "APIVersions"}, {"versions", json::array()}, {"serverAddressByClientCIDRs", json::array()}});
      return 200;
    }
    if (seg[0] != "apis") return ReplyStatus(req, NotFound("the server could not find the requested resource"));
    if (seg.size() == 1) return allowed_path("/apis") ? ReplyGroups(req) : 403;
    if (seg.size() == 4 && seg[1] == "authorization.k8s.io" && seg[2] == "v1" && seg[3] == "selfsubjectaccessreviews") {
      *verb = "ACCESSREVIEW";
      if (m != methods::POST) return ReplyStatus(req, Status(Code::kMethodNotAllowed, "POST an access review"));
      bool jp = false;
      auto body = ReadBody(req, body_bytes, false, &jp);
      if (!body.ok()) return ReplyStatus(req, body.status());
      return ReviewAccess(req, call, std::move(*body));
    }
    if (seg[1] != kGroup) return ReplyStatus(req, NotFound("API group \"" + seg[1] + "\" is not served here"));
    if (seg.size() == 2) {
      if (!allowed_path("/apis/stratus.io")) return 403;
      Reply(req, 200, GroupJson());
      return 200;
    }
    if (seg[2] != kVersion) return ReplyStatus(req, NotFound("version \"" + seg[2] + "\" of stratus.io is not served"));
    if (seg.size() == 3) return allowed_path("/apis/stratus.io/v1") ? ReplyResources(req) : 403;

    // /apis/stratus.io/v1/...
    std::vector<std::string> rest(seg.begin() + 3, seg.end());
    std::string ns, plural, name, sub;
    if (rest[0] == "namespaces" && rest.size() >= 3 && rest[2] != "status") {
      ns = rest[1];
      plural = rest[2];
      if (rest.size() >= 4) name = rest[3];
      if (rest.size() >= 5) sub = rest[4];
      if (rest.size() > 5) return ReplyStatus(req, NotFound("the server could not find the requested resource"));
    } else {
      plural = rest[0];
      if (rest.size() >= 2) name = rest[1];
      if (rest.size() >= 3) sub = rest[2];
      if (rest.size() > 3) return ReplyStatus(req, NotFound("the server could not find the requested resource"));
    }
    const ResourceInfo* r = FindByPlural(plural);
    if (!r) return ReplyStatus(req, NotFound("the server does not serve resource \"" + plural + "\""));
    *resource = r->plural;
    if (!ns.empty() && !r->namespaced) {
      return ReplyStatus(req, NotFound(r->plural + " are cluster-scoped; use /apis/stratus.io/v1/" + r->plural));
    }
    if (!ns.empty()) {
      Status s = ValidateDns1123Label(ns, "metadata.namespace");
      if (!s.ok()) return ReplyStatus(req, BadRequest("invalid namespace in path: " + s.message()));
    }
    if (!name.empty()) {
      Status s = r->kind == "InstanceType" || r->kind == "Node" || r->kind == "Event" ? ValidateDns1123Subdomain(name, "metadata.name")
                                                                 : ValidateDns1123Label(name, "metadata.name");
      if (!s.ok()) return ReplyStatus(req, BadRequest("invalid name in path: " + s.message()));
    }
    at.resource = r;
    at.ns = ns;
    at.name = name;
    at.subresource = sub;
    if (sub == "upload" && r->kind == "Image" && m == methods::GET) {
      *verb = "DOWNLOAD";
      at.verb = "get";
      if (!Allowed(req, call)) return 403;
      return ServeUpload(req, ns, name);
    }
    if (sub == "upload" && r->kind == "Image") {
      return ReplyStatus(req, Status(Code::kMethodNotAllowed, "image data is uploaded with PUT and read with GET"));
    }
    if (sub == "log" && r->kind == "Instance" && m == methods::GET) {
      *verb = "LOG";
      at.verb = "get";
      if (!Allowed(req, call)) return 403;
      return ProxyLog(req, ns, name, query);
    }
    if (sub == "console" && r->kind == "Instance") {
      *verb = "CONSOLE";
      // Watching a console is reading the instance; typing into it (the writer) is creating on instances/console.
      at.verb = m == methods::POST ? "create" : "get";
      if (m != methods::GET && m != methods::POST && m != methods::DEL) {
        return ReplyStatus(req, Status(Code::kMethodNotAllowed, "console: GET attaches, POST sends input, DELETE detaches"));
      }
      if (!Allowed(req, call)) return 403;
      bool write = false;
      if (m == methods::GET && query["readOnly"] != "true") {
        RequestAttributes w = at;
        w.verb = "create";
        write = !authz || authz->Authorize(call.user, w, nullptr).ok();
      }
      return ProxyConsole(req, ns, name, query, body_bytes, write);
    }
    if (!sub.empty() && sub != "status") {
      return ReplyStatus(req, NotFound("subresource \"" + sub + "\" of " + r->plural + " is not served"));
    }
    if (sub == "status" && !r->has_status) {
      return ReplyStatus(req, NotFound(r->plural + " have no status subresource"));
    }
    bool status_only = sub == "status";
    if (r->namespaced && ns.empty() && !(m == methods::GET && name.empty())) {
      // Writes and single-object reads of namespaced kinds need a namespace.
      return ReplyStatus(req, NotFound(r->plural + " are namespaced; use /apis/stratus.io/v1/namespaces/{namespace}/" +
                                       r->plural));
    }

    if (m == methods::GET) {
      // kubectl get asks for a meta.k8s.io Table: the columns stratusctl get prints.
      std::optional<IncludeObject> table;
      auto accept = req.headers().find("Accept");
      if (accept != req.headers().end() && WantsTable(accept->second)) {
        auto inc = ParseIncludeObject(query.count("includeObject") ? query.at("includeObject") : "");
        if (!inc.ok()) return ReplyStatus(req, inc.status());
        table = *inc;
      }
      if (!name.empty()) {
        *verb = "GET";
        at.verb = "get";
        if (!Allowed(req, call)) return 403;
        auto enc = registry->GetEncoded(*r, ns, name);
        if (!enc.ok()) return ReplyStatus(req, enc.status());
        if (table) {
          json o = json::parse(**enc);
          json meta = {{"resourceVersion", MetaString(o, "resourceVersion")}};
          Reply(req, 200, TableOf(*r, {&o}, meta, *table, std::time(nullptr)));
          return 200;
        }
        ReplyJsonText(req, 200, **enc);
        return 200;
      }
      auto params = ParseListParams(query);
      if (!params.ok()) return ReplyStatus(req, params.status());
      at.verb = params->watch ? "watch" : "list";
      if (!Allowed(req, call)) return 403;
      if (params->watch) {
        *verb = "WATCH";
        return StartWatch(req, *r, ns, *params, table);
      }
      *verb = "LIST";
      ListRequest lr;
      lr.label_selector = params->label_selector;
      lr.field_selector = params->field_selector;
      lr.continue_token = params->continue_token;
      lr.limit = params->limit;
      auto list = registry->ListEncoded(*r, ns, lr);
      if (!list.ok()) return ReplyStatus(req, list.status());
      if (table) {
        json l = json::parse(*list);
        std::vector<const json*> items;
        for (const auto& o : l["items"]) items.push_back(&o);
        Reply(req, 200, TableOf(*r, items, l["metadata"], *table, std::time(nullptr)));
        return 200;
      }
      ReplyJsonText(req, 200, std::move(*list));
      return 200;
    }
    // Server-side dry run (kubectl --dry-run=server, kubectl diff): validated and admitted, never stored.
    bool dry_run = query.count("dryRun") > 0;
    if (dry_run && query.at("dryRun") != "All") {
      return ReplyStatus(req, BadRequest("dryRun: Unsupported value: \"" + query.at("dryRun") +
                                         "\": supported values: \"All\""));
    }
    // fieldValidation: Strict (the default here) refuses unknown fields naming them; Warn drops them and says so
    // in Warning headers; Ignore drops them silently.
    std::string field_validation = "Strict";
    if (query.count("fieldValidation")) {
      field_validation = query.at("fieldValidation");
      if (field_validation != "Strict" && field_validation != "Warn" && field_validation != "Ignore") {
        return ReplyStatus(req, BadRequest("fieldValidation: Unsupported value: \"" + field_validation +
                                           "\": supported values: \"Ignore\", \"Strict\", \"Warn\""));
      }
    }
    auto soften = [&](json* body) {
      if (field_validation == "Strict" || !body->is_object()) return;
      for (const auto& f : registry->schemas()->DropUnknownFields(r->kind, *body)) {
        if (field_validation == "Warn") call.warnings.push_back("unknown field \"" + f + "\"");
      }
    };
    // Who makes this change, for managedFields: the fieldManager parameter, else the User-Agent's product name.
    std::string manager;
    if (query.count("fieldManager")) {
      manager = query.at("fieldManager");
      if (manager.empty() || manager.size() > 128 ||
          manager.find_first_of(std::string("\0\r\n\t", 4)) != std::string::npos) {
        return ReplyStatus(req, BadRequest("fieldManager: Invalid value: must be 1 to 128 printable characters"));
      }
    } else {
      auto ua = req.headers().find("User-Agent");
      if (ua != req.headers().end()) manager = ua->second.substr(0, std::min(ua->second.find('/'), size_t{128}));
    }
    bool force = false;
    if (query.count("force")) {
      const std::string& f = query.at("force");
      if (f != "true" && f != "false") {
        return ReplyStatus(req, BadRequest("force: Invalid value: \"" + f + "\": must be true or false"));
      }
      force = f == "true";
    }
    if (m == methods::POST) {
      *verb = "CREATE";
      if (!name.empty()) return ReplyStatus(req, Status(Code::kMethodNotAllowed, "POST to a named object is not allowed; POST to the collection"));
      bool jp = false;
      auto body = ReadBody(req, body_bytes, false, &jp);
      if (!body.ok()) return ReplyStatus(req, body.status());
      at.verb = "create";
      at.name = body->is_object() ? MetaString(*body, "name") : "";
      soften(&*body);
      if (!Allowed(req, call, &*body)) return 403;
      if (dry_run) {
        return ReplyResult(req, registry->DryRunCreate(*r, ns, std::move(*body), manager), 201, call.warnings);
      }
      Registry::Done done = ReplyWhenDone(req, activity, call, 201);
      if (r->kind == "AccessKey" && !opts.ec2_master_key.empty()) done = RevealSecretOnce(std::move(done));
      if (r->kind == "Token") done = RevealTokenOnce(&*body, std::move(done));
      if (r->kind == "KeyPair") {
        auto with_key = RevealPrivateKeyOnce(&*body, std::move(done));
        if (!with_key.ok()) return ReplyStatus(req, with_key.status());
        done = std::move(*with_key);
      }
      registry->CreateAsync(*r, ns, std::move(*body), std::move(done), manager);
      return kPending;
    }
    if (name.empty()) {
      return ReplyStatus(req, Status(Code::kMethodNotAllowed, m + " needs an object name in the path"));
    }
    if (m == methods::PUT) {
      *verb = "UPDATE";
      bool jp = false;
      auto body = ReadBody(req, body_bytes, false, &jp);
      if (!body.ok()) return ReplyStatus(req, body.status());
      at.verb = "update";
      soften(&*body);
      if (!Allowed(req, call, &*body)) return 403;
      if (dry_run) {
        return ReplyResult(req, registry->DryRunUpdate(*r, ns, name, &*body, nullptr, false, status_only, manager),
                           200, call.warnings);
      }
      registry->UpdateAsync(*r, ns, name, std::move(*body), status_only, ReplyWhenDone(req, activity, call, 200),
                            manager);
      return kPending;
    }
    if (m == methods::PATCH) {
      *verb = "PATCH";
      bool jp = false, apply = false;
      auto body = ReadBody(req, body_bytes, true, &jp, &apply);
      if (!body.ok()) return ReplyStatus(req, body.status());
      at.verb = "patch";
      if (!jp) soften(&*body);  // a merge patch or apply configuration reads like a partial object
      if (apply) {
        // Server-side apply creates what is missing: the caller must also be allowed to create.
        if (status_only) {
          return ReplyStatus(req, BadRequest("server-side apply to the status subresource is not supported; status "
                                             "is written by the object's reconciler"));
        }
        if (!query.count("fieldManager")) {
          return ReplyStatus(req, BadRequest("fieldManager: Required value: is required for apply patch"));
        }
        if (!Allowed(req, call, &*body)) return 403;
        if (!registry->Get(*r, ns, name).ok()) {
          at.verb = "create";
          if (!Allowed(req, call, &*body)) return 403;
        }
        if (dry_run) return ReplyResult(req, registry->DryRunApply(*r, ns, name, *body, manager, force), 200, call.warnings);
        registry->ApplyAsync(*r, ns, name, std::move(*body), manager, force, ReplyWhenDone(req, activity, call, 200));
        return kPending;
      }
      if (force) {
        return ReplyStatus(req, BadRequest("force: Forbidden: may not be specified for non-apply patch"));
      }
      if (!Allowed(req, call, &*body)) return 403;
      if (dry_run) {
        return ReplyResult(req, registry->DryRunUpdate(*r, ns, name, nullptr, &*body, jp, status_only, manager), 200,
                           call.warnings);
      }
      registry->PatchAsync(*r, ns, name, std::move(*body), status_only, jp, ReplyWhenDone(req, activity, call, 200),
                           manager);
      return kPending;
    }
    if (m == methods::DEL) {
      *verb = "DELETE";
      at.verb = "delete";
      if (!Allowed(req, call)) return 403;
      std::string uid;
      if (body_bytes.size() > opts.max_body_bytes) {
        return ReplyStatus(req, Status(Code::kRequestEntityTooLarge, "request body too large"));
      }
      std::string text(body_bytes.begin(), body_bytes.end());
      if (text.find_first_not_of(" \t\r\n") != std::string::npos) {
        auto opts_json = ParseJson(text);
        if (!opts_json.ok()) return ReplyStatus(req, opts_json.status());
        if (opts_json->is_object() && opts_json->contains("preconditions") && (*opts_json)["preconditions"].is_object()) {
          uid = (*opts_json)["preconditions"].value("uid", "");
        }
        // DeleteOptions carry kubectl's dry run in the body: ["All"].
        if (opts_json->is_object() && opts_json->contains("dryRun")) {
          const json& d = (*opts_json)["dryRun"];
          if (d != json::array({"All"}) && d != json::array()) {
            return ReplyStatus(req, BadRequest("dryRun: Unsupported value: " + d.dump() + ": supported values: \"All\""));
          }
          if (!d.empty()) dry_run = true;
        }
      }
      if (dry_run) return ReplyResult(req, registry->DryRunUpdate(*r, ns, name, nullptr, nullptr, false, false));
      std::function<void()> after;
      if (r->kind == "Image" && blobs) {
        after = [this] {
          std::lock_guard lock(jan_mu);
          sweep_soon = true;  // drop the deleted image's uploaded data now rather than within a minute
          jan_cv.notify_all();
        };
      }
      registry->DeleteAsync(*r, ns, name, uid, ReplyWhenDone(req, activity, call, 200, after));
      return kPending;
    }
    return ReplyStatus(req, Status(Code::kMethodNotAllowed, "method " + m + " is not allowed"));
  }

  // Kubernetes' SelfSubjectAccessReview (what `stratusctl auth can-i` and `kubectl auth can-i` ask): may the
  // caller do spec.resourceAttributes? Any authenticated caller may ask about itself.
  int ReviewAccess(http_request& req, const Call& call, json review) {
    if (!review.is_object()) return ReplyStatus(req, BadRequest("the access review must be an object"));
    json attrs = review.contains("spec") && review["spec"].is_object() ? review["spec"].value("resourceAttributes", json())
                                                                         : json();
    json nonres = review.contains("spec") && review["spec"].is_object()
                      ? review["spec"].value("nonResourceAttributes", json())
                      : json();
    RequestAttributes a;
    if (attrs.is_object()) {
      a.verb = attrs.value("verb", "");
      std::string group = attrs.value("group", "");
      std::string plural = attrs.value("resource", "");
      a.resource = group.empty() || group == kGroup ? FindByPlural(plural) : nullptr;
      if (!a.resource) {
        return ReplyStatus(req, InvalidError("spec.resourceAttributes.resource: the server does not serve \"" + plural +
                                                 "\" in API group \"" + group + "\"",
                                             {{"spec.resourceAttributes.resource", "not served", "FieldValueNotSupported"}}));
      }
      a.ns = a.resource->namespaced ? attrs.value("namespace", "") : "";
      a.name = attrs.value("name", "");
      a.subresource = attrs.value("subresource", "");
    } else if (nonres.is_object()) {
      a.verb = nonres.value("verb", "");
      a.path = nonres.value("path", "");
    } else {
      return ReplyStatus(req, InvalidError("spec.resourceAttributes: required",
                                           {{"spec.resourceAttributes", "required", "FieldValueRequired"}}));
    }
    static const std::set<std::string> kVerbs = {"get", "list", "watch", "create", "update", "patch", "delete"};
    if (!kVerbs.count(a.verb)) {
      return ReplyStatus(req, InvalidError("spec.resourceAttributes.verb: must be one of get, list, watch, create, "
                                           "update, patch, delete",
                                           {{"spec.resourceAttributes.verb", "unsupported verb", "FieldValueNotSupported"}}));
    }
    Status s = authz ? authz->Authorize(call.user, a) : Status();
    review["apiVersion"] = "authorization.k8s.io/v1";
    review["kind"] = "SelfSubjectAccessReview";
    review["status"] = {{"allowed", s.ok()}};
    if (!s.ok()) review["status"]["reason"] = s.message();
    Reply(req, 201, review);
    return 201;
  }

  // --- image data: PUT streams the body to a file (never held in memory), GET streams it back --------------

  // /apis/stratus.io/v1/namespaces/{ns}/images/{name}/upload
  static bool ParseUploadPath(const http_request& req, std::string* ns, std::string* name) {
    std::vector<std::string> seg;
    for (const auto& s : web::uri::split_path(req.relative_uri().path())) seg.push_back(web::uri::decode(s));
    if (seg.size() != 8 || seg[0] != "apis" || seg[1] != kGroup || seg[2] != kVersion || seg[3] != "namespaces" ||
        seg[5] != "images" || seg[7] != "upload") {
      return false;
    }
    *ns = seg[4];
    *name = seg[6];
    return true;
  }
  static bool IsUploadPath(const http_request& req) {
    std::string ns, name;
    return ParseUploadPath(req, &ns, &name);
  }

  // `activity` is held until the upload is answered (Stop waits for it).
  void HandleUpload(http_request req, std::shared_ptr<Activity> activity, Call call) {
    call.metric_verb = "UPLOAD";
    call.resource = "images";
    std::string ns, name;
    ParseUploadPath(req, &ns, &name);
    call.attrs.verb = "update";
    call.attrs.resource = FindByKind("Image");
    call.attrs.ns = ns;
    call.attrs.name = name;
    call.attrs.subresource = "upload";
    auto finish = [this, call, req](int code) { Record(req, call, code); };
    Status v = ValidateDns1123Label(ns, "metadata.namespace");
    if (v.ok()) v = ValidateDns1123Label(name, "metadata.name");
    if (!v.ok()) return finish(ReplyStatus(req, BadRequest("invalid path: " + v.message())));
    if (!Allowed(req, call)) return Record(req, call, 403);  // audited by Allowed
    if (!blobs) return finish(ReplyStatus(req, Status(Code::kUnavailable, "this server does not store uploads")));
    int64_t length = req.headers().has(web::http::header_names::content_length)
                         ? static_cast<int64_t>(req.headers().content_length())
                         : -1;
    auto up = blobs->Begin(ns, name, length);
    if (!up.ok()) return finish(ReplyStatus(req, up.status()));
    ImageBlobs::Upload u = *up;
    auto body = req.body();
    concurrency::streams::fstream::open_ostream(u.tmp_path, std::ios::out | std::ios::binary | std::ios::trunc)
        .then([body](concurrency::streams::ostream out) {
          return body.read_to_end(out.streambuf()).then([out](pplx::task<size_t> t) {
            size_t n = 0;
            std::exception_ptr err;
            try {
              n = t.get();
            } catch (...) {
              err = std::current_exception();
            }
            auto o = out;
            return o.close().then([n, err] {
              if (err) std::rethrow_exception(err);
              return n;
            });
          });
        })
        .then([this, req, ns, name, u, length, finish, activity](pplx::task<size_t> t) mutable {
          auto held = std::move(activity);  // released when this call ends (see Handle)
          http_request r = req;
          try {
            t.get();
          } catch (const std::exception& e) {
            blobs->Abort(u);
            return finish(ReplyStatus(r, BadRequest(std::string("upload failed while receiving: ") + e.what())));
          }
          // Hashing and fsync are local work (no waiting on other pool tasks).
          finish(ReplyResult(r, blobs->Commit(ns, name, u, static_cast<uint64_t>(length))));
        });
  }

  int ServeUpload(http_request& req, const std::string& ns, const std::string& name) {
    if (!blobs) return ReplyStatus(req, Status(Code::kUnavailable, "this server does not store uploads"));
    auto path = blobs->DataPath(ns, name);
    if (!path.ok()) return ReplyStatus(req, path.status());
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(*path, ec);
    if (ec) return ReplyStatus(req, Internal("cannot read the image data: " + ec.message()));
    concurrency::streams::fstream::open_istream(*path, std::ios::in | std::ios::binary)
        .then([this, req, size](pplx::task<concurrency::streams::istream> t) {
          http_request r = req;
          try {
            auto in = t.get();
            http_response resp(web::http::status_codes::OK);
            resp.set_body(in, size, "application/octet-stream");
            return r.reply(resp).then([in](pplx::task<void> done) {
              try {
                done.get();
              } catch (...) {
              }
              auto i = in;
              i.close();
            });
          } catch (const std::exception& e) {
            ReplyStatus(r, Internal(std::string("cannot open the image data: ") + e.what()));
            return pplx::task_from_result();
          }
        });
    return 200;
  }

  // --- console logs: proxied from the agent of the instance's node ------------------------------------------

  int ProxyLog(http_request& req, const std::string& ns, const std::string& name,
               std::map<std::string, std::string>& query) {
    auto agent_url = AgentUrlOfInstance(*registry, ns, name);
    if (!agent_url.ok()) return ReplyStatus(req, agent_url.status());
    std::string tail = query["tailBytes"];
    if (!tail.empty() && tail.find_first_not_of("0123456789") != std::string::npos) {
      return ReplyStatus(req, BadRequest("tailBytes: must be a non-negative integer"));
    }
    web::uri_builder b;
    b.append_path("logs");
    b.append_path(ns, true);
    b.append_path(name, true);
    if (!tail.empty()) b.append_query("tailBytes", tail);
    return ForwardToAgent(req, methods::GET, *agent_url, b.to_string(), {}, "text/plain; charset=utf-8");
  }

  // Sends `method uri` with `body` to the agent at `agent` and answers `req` with what it answers: its Status when
  // it fails, else its code and body as `type`. Asynchronous all the way: this runs on cpprestsdk's pool, and
  // the client's I/O needs that same pool, so waiting here (.get()) could leave every pool thread waiting for
  // work only the pool can do.
  int ForwardToAgent(http_request& req, const web::http::method& method, const std::string& agent,
                     const std::string& uri, const std::vector<unsigned char>& body, const std::string& type) {
    auto unreachable = [agent](const std::string& why) {
      return Status(Code::kUnavailable, "cannot reach the agent at " + agent + ": " + why);
    };
    try {
      auto client = std::make_shared<web::http::client::http_client>(agent, AgentClientConfig(10));
      web::http::http_request out(method);
      out.set_request_uri(uri);
      if (!body.empty()) out.set_body(body);
      client->request(out)
          .then([client](web::http::http_response resp) {
            return resp.extract_vector().then([resp](std::vector<unsigned char> bytes) {
              return std::make_pair(resp.status_code(), std::string(bytes.begin(), bytes.end()));
            });
          })
          .then([this, req, unreachable, type, hold = std::make_shared<Activity>(this)](
                    pplx::task<std::pair<web::http::status_code, std::string>> t) mutable {
            auto held = std::move(hold);  // Stop() waits for this reply
            try {
              auto [code, text] = t.get();
              if (code < 200 || code > 299) {
                ReplyStatus(req, Status::FromHttp(code, text));
              } else {
                ReplyText(req, code, text, type);
              }
            } catch (const std::exception& e) {
              ReplyStatus(req, unreachable(e.what()));
            }
          });
      return 200;
    } catch (const std::exception& e) {
      return ReplyStatus(req, unreachable(e.what()));
    }
  }
  static web::http::client::http_client_config AgentClientConfig(int timeout_seconds) {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(timeout_seconds));
    cfg.set_max_redirects(0);  // agents never redirect (and see core/src/api_client.cpp: Config)
    return cfg;
  }

  // --- interactive consoles: proxied to the agent of the instance's node ----------------------------------------
  // GET streams the output (the agent's chunked body copied through; X-Stratus-Console-Writer says whether this
  // session may type), POST sends the body as input, DELETE detaches. `session` is the client's token.
  int ProxyConsole(http_request& req, const std::string& ns, const std::string& name,
                   std::map<std::string, std::string>& query, const std::vector<unsigned char>& body, bool write) {
    auto agent_url = AgentUrlOfInstance(*registry, ns, name);
    if (!agent_url.ok()) return ReplyStatus(req, agent_url.status());
    web::uri_builder b;
    b.append_path("console");
    b.append_path(ns, true);
    b.append_path(name, true);
    if (req.method() == methods::POST) b.append_path("input");
    b.append_query("session", query["session"]);
    if (req.method() != methods::GET) {
      return ForwardToAgent(req, req.method(), *agent_url, b.to_string(), body, "text/plain");
    }
    if (write) b.append_query("write", "true");
    auto stream = std::make_shared<ConsoleStream>();
    {
      std::lock_guard lock(watches_mu);
      if (draining) return ReplyStatus(req, Status(Code::kUnavailable, "the API server is stopping"));
      console_streams.push_back(stream);
    }
    // A thread of its own: it waits for the agent's output.
    std::thread([this, req, stream, agent = *agent_url, uri = b.to_string(),
                 hold = std::make_shared<Activity>(this)]() mutable {
      auto held = std::move(hold);  // Stop() waits for the stream to end
      auto forget = [&] {
        stream->Close();
        std::lock_guard lock(watches_mu);
        console_streams.remove(stream);
      };
      web::http::http_response aresp;
      bool answered = false;  // the client has its answer (an error, or the stream's headers)
      try {
        // The agent sends a NUL byte every 10 s on a quiet console: a minute of silence means it is gone.
        web::http::client::http_client client(agent, AgentClientConfig(60));
        aresp = client.request(methods::GET, uri, stream->cts.get_token()).get();
        if (aresp.status_code() != 200) {
          std::string text = aresp.extract_utf8string(true).get();
          answered = true;
          ReplyStatus(req, Status::FromHttp(aresp.status_code(), text));
          forget();
          return;
        }
        http_response resp(web::http::status_codes::OK);
        std::string writer = aresp.headers().has("X-Stratus-Console-Writer") ? aresp.headers()["X-Stratus-Console-Writer"] : "false";
        resp.headers().add("X-Stratus-Console-Writer", writer);
        resp.headers().add("Cache-Control", "no-cache");
        resp.set_body(stream->buf.create_istream(), "application/octet-stream");
        {
          std::lock_guard lock(inflight_mu);
          ++inflight;
        }
        answered = true;
        req.reply(resp).then([this, stream](pplx::task<void> t) {
          try {
            t.get();
          } catch (...) {
          }
          stream->Close();  // the client went away (or the stream ended): end the agent's side too
          std::lock_guard lock(inflight_mu);
          if (--inflight == 0) inflight_cv.notify_all();
        });
        auto in = aresp.body().streambuf();
        std::vector<uint8_t> chunk(8192);
        for (;;) {
          size_t n = ReadSome(in, chunk.data(), chunk.size());  // what is there, at least a byte; 0 at the end
          if (n == 0 || !stream->Put(chunk.data(), n, size_t{1} << 20)) break;
        }
      } catch (const std::exception& e) {
        // Unanswered yet: the agent could not be reached, or Stop() ended the request before it answered.
        if (!answered) {
          bool stopping_now = false;
          {
            std::lock_guard lock(stream->mu);
            stopping_now = stream->closed;
          }
          ReplyStatus(req, stopping_now ? Status(Code::kUnavailable, "the API server is stopping")
                                        : Status(Code::kUnavailable, "cannot reach the agent at " + agent + ": " +
                                                                         e.what()));
        }
      }
      forget();
    }).detach();
    return 200;
  }

  // --- watch ---------------------------------------------------------------------------------------------------

  // With `table`, every event's object is a one-row Table (kubectl get -w), else the object itself.
  int StartWatch(http_request& req, const ResourceInfo& r, const std::string& ns, const ListParams& params,
                 std::optional<IncludeObject> table) {
    auto line = [r, table](const std::string& type, const json& o, const std::string& encoded) {
      if (!table) return WatchLine(type, encoded);
      json meta = {{"resourceVersion", MetaString(o, "resourceVersion")}};
      return WatchLine(type, TableOf(r, {&o}, meta, *table, std::time(nullptr)).dump(-1, ' ', false, json::error_handler_t::replace));
    };
    auto ls = LabelSelector::Parse(params.label_selector);
    if (!ls.ok()) return ReplyStatus(req, ls.status());
    auto fs = FieldSelector::Parse(params.field_selector);
    if (!fs.ok()) return ReplyStatus(req, fs.status());
    int timeout = opts.default_watch_timeout_seconds;
    if (params.timeout_seconds > 0) timeout = std::min(params.timeout_seconds, opts.max_watch_timeout_seconds);
    // Without a version (or "0"): the current objects as ADDED, then every later change.
    bool replay_current = !params.has_resource_version || params.resource_version == 0;
    uint64_t after = replay_current ? 0 : params.resource_version;
    auto stream = std::make_shared<WatchStream>();
    stream->deadline = Clock::now() + std::chrono::seconds(timeout);
    stream->max_buffer = opts.max_watch_buffer_bytes;
    auto filter = std::make_shared<WatchFilter>(*ls, *fs, /*resumed=*/!replay_current);
    std::string wns = r.namespaced ? ns : "";
    if (replay_current) {
      // Without a version: the current objects as ADDED, then every later change.
      StoreListOptions lo;
      lo.plural = r.plural;
      lo.ns = wns;
      StoreListResult cur = registry->store()->List(lo);
      for (size_t i = 0; i < cur.items.size(); ++i) {
        const json& o = *cur.items[i];
        if (!filter->Matches(o)) continue;
        filter->Seed(o);
        stream->Send(line("ADDED", o, *cur.encoded[i]));
      }
      after = cur.rv;
    }
    std::weak_ptr<WatchStream> weak = stream;
    // The sink runs on the store's publishing thread only, so the filter needs no lock.
    auto sub = registry->store()->Watch(r.plural, wns, after, [weak, filter, line](const StoreEvent& e) {
      auto s = weak.lock();
      if (!s) return;
      std::string type = filter->Translate(e.type, *e.object);
      if (type.empty()) return;
      s->Send(line(type, *e.object, *e.encoded));
    });
    if (!sub.ok()) return ReplyStatus(req, sub.status());
    stream->sub = std::move(*sub);
    bool stopping_now;
    {
      std::lock_guard lock(watches_mu);
      stopping_now = draining;
      if (!stopping_now) watches.push_back(stream);
    }
    if (stopping_now) {
      // Stop() already ended the open watches: this one ends at once too (the client re-watches).
      stream->sub.reset();
      stream->Close();
    } else {
      metrics.WatchOpened();
    }
    http_response resp(web::http::status_codes::OK);
    resp.headers().set_content_type("application/json");
    resp.headers().add("Cache-Control", "no-cache");
    resp.set_body(stream->buf.create_istream());
    Send(req, resp);
    return 200;
  }

  void JanitorLoop() {
    Clock::time_point next_sweep{};
    std::unique_lock lock(jan_mu);
    while (!stopping) {
      jan_cv.wait_for(lock, std::chrono::seconds(1));
      if (blobs && (sweep_soon || Clock::now() >= next_sweep)) {
        sweep_soon = false;
        next_sweep = Clock::now() + std::chrono::seconds(60);
        lock.unlock();
        blobs->Sweep();
        lock.lock();
      }
      std::vector<std::shared_ptr<WatchStream>> done;
      {
        std::lock_guard wl(watches_mu);
        auto now = Clock::now();
        for (auto it = watches.begin(); it != watches.end();) {
          if (stopping || now >= (*it)->deadline || (*it)->IsClosed()) {
            done.push_back(*it);
            it = watches.erase(it);
          } else {
            ++it;
          }
        }
      }
      lock.unlock();
      for (auto& w : done) {
        w->Close();
        w->sub.reset();
        metrics.WatchClosed();
      }
      lock.lock();
    }
  }

  // --- discovery -----------------------------------------------------------------------------------------------

  int ReplyPaths(http_request& req) {
    json paths = json::array({"/apis", std::string("/apis/") + kGroup, std::string("/apis/") + kApiVersion,
                              "/healthz", "/readyz", "/livez", "/metrics", "/version"});
    Reply(req, 200, {{"paths", paths}});
    return 200;
  }
  static json GroupJson() {
    json gv = {{"groupVersion", kApiVersion}, {"version", kVersion}};
    return {{"kind", "APIGroup"},
            {"apiVersion", "v1"},
            {"name", kGroup},
            {"versions", json::array({gv})},
            {"preferredVersion", gv}};
  }
  int ReplyGroups(http_request& req) {
    json g = GroupJson();
    g.erase("kind");
    g.erase("apiVersion");
    Reply(req, 200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", json::array({g})}});
    return 200;
  }
  int ReplyResources(http_request& req) {
    json list = json::array();
    for (const auto& r : AllResources()) {
      json verbs = {"create", "delete", "get", "list", "patch", "update", "watch"};
      list.push_back({{"name", r.plural},
                      {"singularName", r.singular},
                      {"namespaced", r.namespaced},
                      {"kind", r.kind},
                      {"verbs", verbs},
                      {"shortNames", r.short_names},
                      {"categories", r.categories}});
      if (r.has_status) {
        list.push_back({{"name", r.plural + "/status"},
                        {"singularName", ""},
                        {"namespaced", r.namespaced},
                        {"kind", r.kind},
                        {"verbs", {"get", "patch", "update"}}});
      }
    }
    Reply(req, 200, {{"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", kApiVersion}, {"resources", list}});
    return 200;
  }
};

ApiServer::ApiServer(Registry* registry, ApiServerOptions opts) : impl_(std::make_unique<Impl>()) {
  impl_->registry = registry;
  impl_->opts = std::move(opts);
  if (!impl_->opts.upload_dir.empty()) {
    impl_->blobs = std::make_unique<ImageBlobs>(registry, impl_->opts.upload_dir, impl_->opts.max_upload_bytes);
  }
  if (impl_->opts.authenticate) {
    impl_->authn = std::make_unique<Authenticator>(registry);
    impl_->authz = std::make_unique<Authorizer>(registry);
  }
  double burst = impl_->opts.user_burst > 0 ? impl_->opts.user_burst : 2 * impl_->opts.user_qps;
  impl_->limiter = std::make_unique<UserRateLimiter>(impl_->opts.user_qps, burst);
}

ApiServer::~ApiServer() {
  if (impl_ && impl_->listener) {
    Stop();
    // Still serving 503s through Impl (see Stop): leave both to the process exit rather than free them under
    // cpprestsdk's threads.
    (void)impl_.release();
  }
}

Status ApiServer::Start() {
  if (!impl_->opts.audit_log.empty() && !impl_->audit) {
    auto a = AuditLog::Open(impl_->opts.audit_log, impl_->opts.audit_max_bytes, impl_->opts.audit_max_files);
    if (!a.ok()) return a.status();
    impl_->audit = std::move(*a);
  }
  std::string url = this->url();
  bool tls = !impl_->opts.tls_cert_file.empty() || !impl_->opts.tls_key_file.empty();
  std::shared_ptr<const TlsServerCredentials> creds;
  if (tls) {
    // Read and checked once here (a bad file is an error now, not a failed handshake later); every connection's
    // TLS context gets the same parsed chain and key.
    auto loaded = TlsServerCredentials::Load(impl_->opts.tls_cert_file, impl_->opts.tls_key_file);
    if (!loaded.ok()) return loaded.status();
    creds = *loaded;
  }
  try {
    web::http::experimental::listener::http_listener_config cfg;
    cfg.set_timeout(std::chrono::seconds(120));
    if (creds) {
      cfg.set_ssl_context_callback([creds](boost::asio::ssl::context& ctx) {
        Status s = creds->Apply(ctx.native_handle());
        if (!s.ok()) spdlog::error("api server: {}", s.message());
      });
    }
    impl_->listener = std::make_unique<web::http::experimental::listener::http_listener>(url, cfg);
    Impl* impl = impl_.get();
    impl_->listener->support([impl](http_request req) { impl->Handle(std::move(req)); });
    impl_->listener->open().wait();
  } catch (const std::exception& e) {
    impl_->listener.reset();
    return Status(Code::kUnavailable, "cannot listen on " + impl_->opts.listen + ": " + e.what());
  }
  impl_->janitor = std::thread([this] { impl_->JanitorLoop(); });
  spdlog::info("api server listening: url={}", url);
  return Status::Ok();
}

bool ApiServer::Stop(std::chrono::milliseconds grace) {
  if (!impl_ || !impl_->listener) return true;
  Impl& m = *impl_;
  m.refusing.store(true);
  {
    std::lock_guard lock(m.jan_mu);
    m.stopping = true;
  }
  m.jan_cv.notify_all();
  if (m.janitor.joinable()) m.janitor.join();
  {
    std::lock_guard lock(m.watches_mu);
    m.draining = true;
    for (auto& w : m.watches) {
      w->sub.reset();  // no more events from the store
      w->Close();      // the chunked body ends: the client sees the stream end
      m.metrics.WatchClosed();
    }
    m.watches.clear();
    for (auto& c : m.console_streams) c->Close();  // their threads end and leave the list
  }
  // Let the ended watch streams and in-flight responses reach their clients (bounded by `grace`).
  auto deadline = Clock::now() + grace;
  if (!m.WaitForReplies(deadline)) {
    std::lock_guard lock(m.inflight_mu);
    spdlog::warn("api server: requests still in flight after the grace period: count={}", m.inflight);
    return false;
  }
  // The listener is deliberately not closed: cpprestsdk's asio listener frees connection state on close() while
  // handlers of those connections may still be queued, and one then ran on freed memory (SIGSEGV during
  // shutdown, about 1 run in 20 under load). It stays open answering 503 until the process exits.
  return true;
}

std::string ApiServer::url() const {
  bool tls = !impl_->opts.tls_cert_file.empty() || !impl_->opts.tls_key_file.empty();
  return (tls ? "https://" : "http://") + impl_->opts.listen;
}

Metrics& ApiServer::metrics() { return impl_->metrics; }

}  // namespace stratus
