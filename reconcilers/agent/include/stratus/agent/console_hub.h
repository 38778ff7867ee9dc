// Interactive consoles of this node's domains: one libvirt console stream per domain (libvirt allows one),
// shared by every attached session. Output goes to every session; input comes from one writer at a time, the
// first session that asked to write and is still attached (the others are read-only, as with a shared screen).
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "stratus/host/console.h"

namespace stratus::agent {

// One attached client: its share of the console's output.
class ConsoleSession {
 public:
  // Output since the last call, waiting up to `wait` for some. nullopt once the console ended (ended() says
  // why) or the session was cancelled; "" when nothing came in time.
  std::optional<std::string> Next(std::chrono::milliseconds wait);
  const std::string& id() const { return id_; }
  bool writer() const { return writer_; }
  Status ended() const;
  // The client went away: Next returns nullopt from now on.
  void Cancel();

  // For the hub.
  ConsoleSession(std::string id, bool writer, size_t max_buffered) : id_(std::move(id)), writer_(writer), max_(max_buffered) {}
  void Push(const std::string& bytes);
  void End(const Status& why);

 private:
  const std::string id_;
  const bool writer_;
  const size_t max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool done_ = false;
  Status why_;
};

class ConsoleHub {
 public:
  // `max_buffered`: output kept for a session that does not read; beyond it the session is ended (slow reader).
  explicit ConsoleHub(std::unique_ptr<host::Consoles> consoles, size_t max_buffered = 1 << 20);
  ~ConsoleHub();
  // Ends every session and closes every stream (the agent stops). Attach refuses from then on.
  void Shutdown();

  // Attaches session `id` (a client-chosen token, 8-64 of [A-Za-z0-9_-]) to `domain`'s console, opening the
  // stream on the first attach. With `want_write` it becomes the writer unless another session is. kConflict when
  // the domain is not running or its console is held outside Stratus; kAlreadyExists when `id` is attached.
  StatusOr<std::shared_ptr<ConsoleSession>> Attach(const std::string& domain, const std::string& id, bool want_write);
  // Sends `bytes` from session `id`: kConflict when it is not the writer (naming who is), kNotFound when it is not
  // attached.
  Status Input(const std::string& domain, const std::string& id, const std::string& bytes);
  // Detaches session `id`; the stream closes after the last session leaves. Idempotent.
  void Detach(const std::string& domain, const std::string& id);
  // Sessions attached to `domain` (for tests and the endpoint's answers).
  size_t Sessions(const std::string& domain) const;

 private:
  struct Console {
    std::unique_ptr<host::ConsoleStream> stream;
    std::map<std::string, std::shared_ptr<ConsoleSession>> sessions;
    std::string writer;
    uint64_t serial = 0;  // which opening of the domain's console this is
  };
  void Ended(const std::string& domain, uint64_t serial, const Status& why);

  std::unique_ptr<host::Consoles> consoles_;
  size_t max_buffered_;
  bool shut_ = false;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Console>> consoles_by_domain_;
  uint64_t next_serial_ = 1;
};

// kInvalid unless `id` is a usable session token.
Status ValidateSessionId(const std::string& id);

}  // namespace stratus::agent
