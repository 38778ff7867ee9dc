#include <cstdlib>
#include <mutex>

#include "libvirt_connection_impl.h"

namespace stratus::host {
namespace {

// libvirt prints every error to stderr unless a handler is set; errors reach callers as Status values instead.
void IgnoreLibvirtError(void* /*user_data*/, virErrorPtr /*error*/) {}

void InitLibvirtOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();  // required before libvirt is used from several threads
    virSetErrorFunc(nullptr, IgnoreLibvirtError);
  });
}

}  // namespace

std::string TakeString(char* s) {
  if (!s) return "";
  std::string out(s);
  free(s);  // NOLINT: malloc'd by libvirt
  return out;
}

LibvirtError TakeLastError() {
  LibvirtError out;
  virErrorPtr e = virGetLastError();
  if (e) {
    out.code = e->code;
    out.domain = e->domain;
    if (e->message) out.message = e->message;
  }
  if (out.message.empty()) out.message = "unknown libvirt error";
  virResetLastError();
  return out;
}

Code CodeForLibvirt(int c) {
  switch (c) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_STORAGE_POOL:
    case VIR_ERR_NO_STORAGE_VOL:
    case VIR_ERR_NO_DOMAIN_METADATA:
    case VIR_ERR_NO_NETWORK:
    case VIR_ERR_DEVICE_MISSING:
      return Code::kNotFound;
    case VIR_ERR_DOM_EXIST:
    case VIR_ERR_STORAGE_VOL_EXIST:
    case VIR_ERR_NETWORK_EXIST:
      return Code::kAlreadyExists;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_XML_INVALID_SCHEMA:
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_INVALID_MAC:
    case VIR_ERR_CONFIG_UNSUPPORTED:
    case VIR_ERR_OS_TYPE:
      return Code::kInvalid;
    case VIR_ERR_OPERATION_INVALID:  // wrong state for the call, e.g. "domain is not running"
    case VIR_ERR_RESOURCE_BUSY:
      return Code::kConflict;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_OPERATION_UNSUPPORTED:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_RPC:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_AGENT_UNSYNCED:
      return Code::kUnavailable;
    case VIR_ERR_OPERATION_TIMEOUT:
    case VIR_ERR_AGENT_UNRESPONSIVE:
      return Code::kTimeout;
    case VIR_ERR_OPERATION_DENIED:
    case VIR_ERR_ACCESS_DENIED:
    case VIR_ERR_AUTH_FAILED:
      return Code::kForbidden;
    default:
      return Code::kInternal;
  }
}

Status ToStatus(const std::string& context, const LibvirtError& err) {
  return Status(CodeForLibvirt(err.code), context + ": " + err.message);
}

Status LastErrorStatus(const std::string& context) { return ToStatus(context, TakeLastError()); }

LibvirtConnection::LibvirtConnection(std::string uri)
    : uri_(std::move(uri)), is_test_(uri_.rfind("test:", 0) == 0 || uri_.rfind("test+", 0) == 0) {}

LibvirtConnection::~LibvirtConnection() {
  std::lock_guard lock(mu_);
  if (conn_) virConnectClose(conn_);
}

StatusOr<std::shared_ptr<LibvirtConnection>> LibvirtConnection::Open(const std::string& uri) {
  InitLibvirtOnce();
  std::shared_ptr<LibvirtConnection> c(new LibvirtConnection(uri));
  {
    std::lock_guard lock(c->mu_);
    Status s = c->ConnectLocked();
    if (!s.ok()) return s;
  }
  return c;
}

Status LibvirtConnection::ConnectLocked() {
  virConnectPtr c = virConnectOpen(uri_.c_str());
  if (!c) {
    LibvirtError e = TakeLastError();
    return Status(Code::kUnavailable, "cannot connect to libvirt at " + uri_ + ": " + e.message);
  }
  conn_ = c;
  return Status::Ok();
}

StatusOr<ConnRef> LibvirtConnection::Get() {
  std::lock_guard lock(mu_);
  if (conn_ && virConnectIsAlive(conn_) != 1) {
    virConnectClose(conn_);  // the daemon went away (or restarted): drop our reference and open a new one
    conn_ = nullptr;
  }
  if (!conn_) {
    Status s = ConnectLocked();
    if (!s.ok()) return s;
  }
  virConnectRef(conn_);
  return ConnRef(conn_);
}

void LibvirtConnection::Invalidate(virConnectPtr dead) {
  std::lock_guard lock(mu_);
  if (conn_ == dead) {
    virConnectClose(conn_);
    conn_ = nullptr;
  }
}

StatusOr<std::shared_ptr<LibvirtConnection>> ConnectLibvirt(const std::string& uri) {
  return LibvirtConnection::Open(uri);
}

}  // namespace stratus::host
