// Private to the host adapters: the libvirt connection, RAII holders for libvirt objects, and the translation of
// libvirt errors into Status values.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "stratus/core/status.h"
#include "stratus/host/hypervisor.h"

namespace stratus::host {

// A referenced virConnectPtr: stays valid even if the shared connection is replaced by a reconnect meanwhile.
class ConnRef {
 public:
  ConnRef() = default;
  explicit ConnRef(virConnectPtr c) : c_(c) {}
  ConnRef(const ConnRef&) = delete;
  ConnRef& operator=(const ConnRef&) = delete;
  ConnRef(ConnRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  ConnRef& operator=(ConnRef&& o) noexcept {
    if (this != &o) {
      reset();
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  ~ConnRef() { reset(); }
  virConnectPtr get() const { return c_; }

 private:
  void reset() {
    if (c_) virConnectClose(c_);
    c_ = nullptr;
  }
  virConnectPtr c_ = nullptr;
};

struct DomainFree {
  void operator()(virDomainPtr p) const { virDomainFree(p); }
};
struct PoolFree {
  void operator()(virStoragePoolPtr p) const { virStoragePoolFree(p); }
};
struct VolFree {
  void operator()(virStorageVolPtr p) const { virStorageVolFree(p); }
};
struct StreamFree {
  void operator()(virStreamPtr p) const { virStreamFree(p); }
};
struct CFree {
  void operator()(char* p) const { free(p); }  // NOLINT: libvirt returns malloc'd strings
};
using DomainPtr = std::unique_ptr<virDomain, DomainFree>;
using PoolPtr = std::unique_ptr<virStoragePool, PoolFree>;
using VolPtr = std::unique_ptr<virStorageVol, VolFree>;
using StreamPtr = std::unique_ptr<virStream, StreamFree>;
using CString = std::unique_ptr<char, CFree>;

// The libvirt error of the failed call on this thread (libvirt keeps it thread-local).
struct LibvirtError {
  int code = VIR_ERR_OK;
  int domain = 0;
  std::string message;
};
// Reads (and clears) this thread's last libvirt error.
LibvirtError TakeLastError();
// Maps a libvirt error code onto a Stratus code (NO_DOMAIN -> kNotFound, XML errors -> kInvalid, ...).
Code CodeForLibvirt(int libvirt_code);
// "<context>: <libvirt message>" with the mapped code.
Status ToStatus(const std::string& context, const LibvirtError& err);
// Same, for this thread's last error.
Status LastErrorStatus(const std::string& context);
// Copies and frees a malloc'd string from libvirt ("" for null).
std::string TakeString(char* s);

class LibvirtConnection {
 public:
  static StatusOr<std::shared_ptr<LibvirtConnection>> Open(const std::string& uri);
  ~LibvirtConnection();
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  const std::string& uri() const { return uri_; }
  // libvirt's in-process fake (test:///...): keeps no data and lacks some calls; the adapters emulate those.
  bool is_test() const { return is_test_; }

  // A live connection, reconnecting first when the current one has died; kUnavailable naming the URI otherwise.
  StatusOr<ConnRef> Get();

  // Runs `fn(virConnectPtr)` (returning Status or StatusOr<T>); when it fails because the connection died
  // (daemon restarted), reconnects and runs it once more. Only for calls that are safe to repeat.
  template <typename Fn>
  auto Call(Fn&& fn) -> decltype(fn(static_cast<virConnectPtr>(nullptr))) {
    for (int attempt = 0;; ++attempt) {
      auto c = Get();
      if (!c.ok()) return c.status();
      auto r = fn(c->get());
      if (r.ok() || attempt > 0 || virConnectIsAlive(c->get()) != 0) return r;
      Invalidate(c->get());
    }
  }

 private:
  explicit LibvirtConnection(std::string uri);
  Status ConnectLocked();
  // Forgets `dead` if it is still the current connection, so the next Get() reconnects.
  void Invalidate(virConnectPtr dead);

  const std::string uri_;
  const bool is_test_;
  std::mutex mu_;
  virConnectPtr conn_ = nullptr;  // guarded by mu_; one reference owned by this object
};

// Resizes a volume on a driver without virStorageVolResize (the test driver, which holds no data): deletes and
// recreates it with the same name and format and the new capacity.
Status EmulateVolumeResize(virConnectPtr c, virStorageVolPtr vol, uint64_t bytes);

}  // namespace stratus::host
