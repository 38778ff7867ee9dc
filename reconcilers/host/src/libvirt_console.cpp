// Serial consoles through libvirt streams. A non-blocking stream delivers data only through libvirt's event
// loop, so the first use registers libvirt's default event implementation and runs it on a thread of its own;
// the connection is opened after that (a connection uses the event loop only if it existed when it opened), and
// is separate from the reconcilers' connection, which keeps working as before.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "libvirt_connection_impl.h"
#include "stratus/host/console.h"

namespace stratus::host {
namespace {

void StartEventLoopOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (virEventRegisterDefaultImpl() < 0) {
      spdlog::error("libvirt event loop not registered: {}", TakeLastError().message);
      return;
    }
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) {
          spdlog::warn("libvirt event loop: {}", TakeLastError().message);
          std::this_thread::sleep_for(std::chrono::milliseconds(100));  // never spin on a broken loop
        }
      }
    }).detach();  // process-wide, like libvirt's own state
  });
}

// What the event callback reaches; owned by the stream's callback registration and by the LibvirtConsole.
struct Sink {
  std::mutex mu;
  bool closed = false;  // Close() ran: no more callbacks
  bool ended = false;   // on_end was called
  std::function<void(const std::string&)> on_data;
  std::function<void(const Status&)> on_end;
};

class LibvirtConsole : public ConsoleStream {
 public:
  LibvirtConsole(ConnRef conn, virStreamPtr st, std::shared_ptr<Sink> sink)
      : conn_(std::move(conn)), st_(st), sink_(std::move(sink)) {}
  ~LibvirtConsole() override { Close(); }

  Status Write(const std::string& bytes) override {
    std::lock_guard l(write_mu_);
    size_t off = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (off < bytes.size()) {
      if (closed_.load()) return Status(Code::kConflict, "the console is closed");
      int n = virStreamSend(st_, bytes.data() + off, bytes.size() - off);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n == -2) {  // the stream's buffer is full: the guest reads slowly
        if (std::chrono::steady_clock::now() > deadline) return Status(Code::kTimeout, "the guest is not reading its console");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      } else {
        return LastErrorStatus("writing to the console");
      }
    }
    return Status::Ok();
  }

  void Close() override {
    if (closed_.exchange(true)) return;
    {
      std::lock_guard l(sink_->mu);
      sink_->closed = true;
    }
    virStreamEventRemoveCallback(st_);
    if (virStreamAbort(st_) < 0) TakeLastError();  // ends libvirt's side of the console
    virStreamFree(st_);
  }

 private:
  ConnRef conn_;  // keeps the connection open while the stream lives
  virStreamPtr st_;
  std::shared_ptr<Sink> sink_;
  std::mutex write_mu_;
  std::atomic<bool> closed_{false};
};

void OnStreamEvent(virStreamPtr st, int events, void* opaque) {
  auto* sink = static_cast<std::shared_ptr<Sink>*>(opaque);
  Status end;
  bool ending = false;
  if (events & (VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_HANGUP | VIR_STREAM_EVENT_ERROR)) {
    char buf[4096];
    for (;;) {
      int n = virStreamRecv(st, buf, sizeof buf);
      if (n > 0) {
        std::lock_guard l((*sink)->mu);
        if (!(*sink)->closed && (*sink)->on_data) (*sink)->on_data(std::string(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n == -2) break;  // nothing more for now
      ending = true;
      end = n == 0 ? Status(Code::kConflict, "the console closed (the domain stopped)")
                   : LastErrorStatus("reading the console");
      break;
    }
  }
  if (!ending && (events & (VIR_STREAM_EVENT_HANGUP | VIR_STREAM_EVENT_ERROR))) {
    ending = true;
    end = Status(Code::kUnavailable, "the console stream broke");
  }
  if (!ending) return;
  virStreamEventRemoveCallback(st);
  std::function<void(const Status&)> on_end;
  {
    std::lock_guard l((*sink)->mu);
    if (!(*sink)->closed && !(*sink)->ended) {
      (*sink)->ended = true;
      on_end = (*sink)->on_end;
    }
  }
  // Outside the lock: the receiver may close (and free) the stream from here.
  if (on_end) on_end(end);
}

void FreeSink(void* opaque) { delete static_cast<std::shared_ptr<Sink>*>(opaque); }

class LibvirtConsoles : public Consoles {
 public:
  explicit LibvirtConsoles(std::string uri) : uri_(std::move(uri)) {}
  ~LibvirtConsoles() override {
    std::lock_guard l(mu_);
    conn_ = ConnRef();
  }

  StatusOr<std::unique_ptr<ConsoleStream>> Open(const std::string& domain,
                                                std::function<void(const std::string&)> on_data,
                                                std::function<void(const Status&)> on_end) override {
    auto conn = Connection();
    if (!conn.ok()) return conn.status();
    virConnectPtr c = conn->get();
    DomainPtr dom(virDomainLookupByName(c, domain.c_str()));
    if (!dom) {
      LibvirtError e = TakeLastError();
      if (e.code == VIR_ERR_NO_DOMAIN) return NotFound("domain " + domain + " not found");
      Reconnect();
      return ToStatus("looking up domain " + domain, e);
    }
    int active = virDomainIsActive(dom.get());
    if (active == 0) return Status(Code::kConflict, "domain " + domain + " is not running");
    virStreamPtr st = virStreamNew(c, VIR_STREAM_NONBLOCK);
    if (!st) return LastErrorStatus("opening a stream");
    // SAFE: refuse (rather than take over) a console someone else holds.
    if (virDomainOpenConsole(dom.get(), nullptr, st, VIR_DOMAIN_CONSOLE_SAFE) < 0) {
      LibvirtError e = TakeLastError();
      virStreamFree(st);
      Status s = ToStatus("opening the console of " + domain, e);
      if (e.code == VIR_ERR_OPERATION_FAILED || e.code == VIR_ERR_OPERATION_INVALID) {
        return Status(Code::kConflict, s.message());  // an active session elsewhere, or not running
      }
      return s;
    }
    auto sink = std::make_shared<Sink>();
    sink->on_data = std::move(on_data);
    sink->on_end = std::move(on_end);
    auto* opaque = new std::shared_ptr<Sink>(sink);
    if (virStreamEventAddCallback(st, VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP,
                                  OnStreamEvent, opaque, FreeSink) < 0) {
      delete opaque;
      Status s = LastErrorStatus("watching the console stream");
      virStreamAbort(st);
      virStreamFree(st);
      return s;
    }
    virConnectRef(c);
    return std::unique_ptr<ConsoleStream>(std::make_unique<LibvirtConsole>(ConnRef(c), st, sink));
  }

 private:
  // A referenced connection, opened (after the event loop) on first use and again after it broke.
  StatusOr<ConnRef> Connection() {
    StartEventLoopOnce();
    std::lock_guard l(mu_);
    if (conn_.get() != nullptr && virConnectIsAlive(conn_.get()) == 1) {
      virConnectRef(conn_.get());
      return ConnRef(conn_.get());
    }
    virConnectPtr c = virConnectOpen(uri_.c_str());
    if (!c) return Status(Code::kUnavailable, "cannot connect to " + uri_ + ": " + TakeLastError().message);
    conn_ = ConnRef(c);
    virConnectRef(c);
    return ConnRef(c);
  }
  void Reconnect() {
    std::lock_guard l(mu_);
    if (conn_.get() != nullptr && virConnectIsAlive(conn_.get()) != 1) conn_ = ConnRef();
  }

  std::string uri_;
  std::mutex mu_;
  ConnRef conn_;
};

}  // namespace

std::unique_ptr<Consoles> NewLibvirtConsoles(const std::string& uri) { return std::make_unique<LibvirtConsoles>(uri); }

}  // namespace stratus::host
