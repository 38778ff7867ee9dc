#include "stratus/ec2/listener.h"

#include "stratus/core/tls.h"

#include <cpprest/http_listener.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "stratus/ec2/xml.h"

namespace stratus::ec2 {

using web::http::http_request;
using web::http::http_response;

struct Listener::Impl {
  Api* api;
  std::string listen;
  size_t max_body;
  std::string tls_cert, tls_key;
  std::atomic<bool> refusing{false};
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;

  // Requests are served on threads of their own, never on cpprestsdk's shared pool (a few threads): an action may
  // wait for another server (GetConsoleOutput reads the agent with the HTTP client, whose I/O needs that pool).
  static constexpr size_t kWorkers = 4;
  static constexpr size_t kMaxQueued = 256;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> queue;
  bool stopping = false;
  std::vector<std::thread> workers;

  void StartWorkers() {
    for (size_t i = 0; i < kWorkers; ++i) {
      workers.emplace_back([this] {
        for (;;) {
          std::function<void()> job;
          {
            std::unique_lock lock(mu);
            cv.wait(lock, [this] { return stopping || !queue.empty(); });
            if (queue.empty()) return;
            job = std::move(queue.front());
            queue.pop_front();
          }
          job();
        }
      });
    }
  }
  // False when too many requests wait already (the caller answers 503, which awscli retries).
  bool Enqueue(std::function<void()> job) {
    {
      std::lock_guard lock(mu);
      if (stopping || queue.size() >= kMaxQueued) return false;
      queue.push_back(std::move(job));
    }
    cv.notify_one();
    return true;
  }
  void StopWorkers() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    for (auto& t : workers) {
      if (t.joinable()) t.join();
    }
    workers.clear();
  }

  static void Send(http_request req, int code, const std::string& body) {
    http_response resp(static_cast<web::http::status_code>(code));
    resp.set_body(body, "text/xml;charset=UTF-8");
    req.reply(resp).then([](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
    });
  }

  void Handle(http_request req) {
    if (refusing.load()) {
      Send(req, 503, ErrorXml({"Unavailable", "the server is shutting down", 503}, NewRequestId()));
      return;
    }
    if (req.headers().content_length() > max_body) {
      Send(req, 413, ErrorXml({"RequestEntityTooLarge", "the request body is larger than " +
                                                             std::to_string(max_body) + " bytes", 413},
                              NewRequestId()));
      return;
    }
    // Read the body without blocking a pool thread, then serve in the continuation.
    req.extract_vector().then([this, req](pplx::task<std::vector<unsigned char>> t) {
      http_request r = req;
      try {
        auto bytes = t.get();
        if (bytes.size() > max_body) {
          Send(r, 413, ErrorXml({"RequestEntityTooLarge", "the request body is too large", 413}, NewRequestId()));
          return;
        }
        SignedRequest sr;
        sr.method = r.method();
        sr.raw_path = r.relative_uri().path();
        sr.raw_query = r.relative_uri().query();
        for (const auto& [k, v] : r.headers()) sr.headers.emplace_back(k, v);
        sr.body.assign(bytes.begin(), bytes.end());
        bool queued = Enqueue([this, r, sr = std::move(sr)] {
          try {
            Reply reply = api->Handle(sr, std::chrono::system_clock::now());
            Send(r, reply.http, reply.body);
          } catch (const std::exception& e) {
            spdlog::error("ec2 request failed: error={}", e.what());
            Send(r, 500, ErrorXml({"InternalError", "internal error", 500}, NewRequestId()));
          }
        });
        if (!queued) Send(r, 503, ErrorXml({"Unavailable", "the server is busy; retry", 503}, NewRequestId()));
      } catch (const std::exception& e) {
        spdlog::error("ec2 request failed: error={}", e.what());
        Send(r, 500, ErrorXml({"InternalError", "internal error", 500}, NewRequestId()));
      }
    });
  }
};

Listener::Listener(Api* api, std::string listen, size_t max_body_bytes, std::string tls_cert_file,
                   std::string tls_key_file)
    : impl_(std::make_unique<Impl>()) {
  impl_->api = api;
  impl_->listen = std::move(listen);
  impl_->max_body = max_body_bytes;
  impl_->tls_cert = std::move(tls_cert_file);
  impl_->tls_key = std::move(tls_key_file);
}

Listener::~Listener() {
  impl_->refusing = true;
  impl_->StopWorkers();
}

Status Listener::Start() {
  std::shared_ptr<const TlsServerCredentials> creds;
  if (!impl_->tls_cert.empty()) {
    auto loaded = TlsServerCredentials::Load(impl_->tls_cert, impl_->tls_key);
    if (!loaded.ok()) return loaded.status();
    creds = *loaded;
  }
  try {
    web::http::experimental::listener::http_listener_config cfg;
    if (creds) {
      cfg.set_ssl_context_callback([creds](boost::asio::ssl::context& ctx) {
        Status s = creds->Apply(ctx.native_handle());
        if (!s.ok()) spdlog::error("ec2 listener: {}", s.message());
      });
    }
    impl_->listener = std::make_unique<web::http::experimental::listener::http_listener>(
        web::uri(utility::conversions::to_string_t(url())), cfg);
    if (impl_->workers.empty()) impl_->StartWorkers();
    impl_->listener->support([this](http_request req) { impl_->Handle(std::move(req)); });
    impl_->listener->open().wait();
  } catch (const std::exception& e) {
    return Status(Code::kUnavailable, "cannot serve the EC2 API on " + impl_->listen + ": " + e.what());
  }
  return Status::Ok();
}

void Listener::Stop() { impl_->refusing = true; }

std::string Listener::url() const { return (impl_->tls_cert.empty() ? "http://" : "https://") + impl_->listen; }

}  // namespace stratus::ec2
