// Interactive serial consoles of domains, through libvirt's console stream (virDomainOpenConsole, as `virsh
// console`). libvirt lets one stream per console at a time; the agent's console hub fans its output out to
// several readers and takes input from one writer.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "stratus/core/status.h"

namespace stratus::host {

// An open console: output arrives through the callbacks given to Consoles::Open.
class ConsoleStream {
 public:
  virtual ~ConsoleStream() = default;
  // Sends `bytes` to the guest's serial port.
  virtual Status Write(const std::string& bytes) = 0;
  // Ends the stream; no callback runs once this returns. Idempotent.
  virtual void Close() = 0;
};

class Consoles {
 public:
  virtual ~Consoles() = default;
  // Opens domain `domain`'s serial console. `on_data` gets its output as it comes and `on_end` once, when the
  // stream ends by itself (the domain stopped, the connection broke), both from another thread. kConflict when
  // the domain is not running or someone else (a `virsh console`) holds its console; kNotFound without such a
  // domain.
  virtual StatusOr<std::unique_ptr<ConsoleStream>> Open(const std::string& domain,
                                                        std::function<void(const std::string&)> on_data,
                                                        std::function<void(const Status&)> on_end) = 0;
};

// Consoles over a connection of their own to `uri` (libvirt streams need an event loop, which this starts once
// per process).
std::unique_ptr<Consoles> NewLibvirtConsoles(const std::string& uri);

}  // namespace stratus::host
