#include "stratus/agent/console_hub.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace stratus::agent {

Status ValidateSessionId(const std::string& id) {
  if (id.size() < 8 || id.size() > 64) return InvalidError("session: 8 to 64 characters", {{"session", "length"}});
  for (unsigned char c : id) {
    if (!std::isalnum(c) && c != '-' && c != '_') {
      return InvalidError("session: only letters, digits, '-' and '_'", {{"session", "invalid character"}});
    }
  }
  return Status::Ok();
}

// --- ConsoleSession ------------------------------------------------------------------------------------------

std::optional<std::string> ConsoleSession::Next(std::chrono::milliseconds wait) {
  std::unique_lock l(mu_);
  cv_.wait_for(l, wait, [&] { return done_ || !pending_.empty(); });
  if (!pending_.empty()) return std::exchange(pending_, std::string());  // what came before the end first
  if (done_) return std::nullopt;
  return std::string();
}

Status ConsoleSession::ended() const {
  std::lock_guard l(mu_);
  return why_;
}

void ConsoleSession::Cancel() { End(Status(Code::kUnavailable, "the client went away")); }

void ConsoleSession::Push(const std::string& bytes) {
  {
    std::lock_guard l(mu_);
    if (done_) return;
    if (pending_.size() + bytes.size() > max_) {
      done_ = true;
      why_ = Status(Code::kUnavailable, "this session read too slowly and was dropped");
      pending_.clear();
    } else {
      pending_ += bytes;
    }
  }
  cv_.notify_all();
}

void ConsoleSession::End(const Status& why) {
  {
    std::lock_guard l(mu_);
    if (done_) return;
    done_ = true;
    why_ = why;
  }
  cv_.notify_all();
}

// --- ConsoleHub ----------------------------------------------------------------------------------------------

ConsoleHub::ConsoleHub(std::unique_ptr<host::Consoles> consoles, size_t max_buffered)
    : consoles_(std::move(consoles)), max_buffered_(max_buffered) {}

ConsoleHub::~ConsoleHub() { Shutdown(); }

void ConsoleHub::Shutdown() {
  std::map<std::string, std::shared_ptr<Console>> all;
  {
    std::lock_guard l(mu_);
    shut_ = true;
    all.swap(consoles_by_domain_);
  }
  for (auto& [d, c] : all) {
    for (auto& [id, s] : c->sessions) s->End(Status(Code::kUnavailable, "the agent is stopping"));
    if (c->stream) c->stream->Close();  // outside mu_: a callback may be waiting for it
  }
}

StatusOr<std::shared_ptr<ConsoleSession>> ConsoleHub::Attach(const std::string& domain, const std::string& id,
                                                             bool want_write) {
  if (Status v = ValidateSessionId(id); !v.ok()) return v;
  std::lock_guard l(mu_);
  if (shut_) return Status(Code::kUnavailable, "the node agent is stopping");
  auto it = consoles_by_domain_.find(domain);
  if (it != consoles_by_domain_.end() && it->second->sessions.count(id)) {
    return Status(Code::kAlreadyExists, "console session " + id + " is attached already");
  }
  if (it == consoles_by_domain_.end()) {
    auto console = std::make_shared<Console>();
    std::weak_ptr<Console> weak = console;
    auto on_data = [this, weak](const std::string& bytes) {
      std::vector<std::shared_ptr<ConsoleSession>> to;
      {
        std::lock_guard cl(mu_);
        if (auto c = weak.lock()) {
          for (auto& [sid, s] : c->sessions) to.push_back(s);
        }
      }
      for (auto& s : to) s->Push(bytes);
    };
    console->serial = next_serial_++;
    auto on_end = [this, domain, serial = console->serial](const Status& why) { Ended(domain, serial, why); };
    auto stream = consoles_->Open(domain, on_data, on_end);
    if (!stream.ok()) return stream.status();
    console->stream = std::move(*stream);
    it = consoles_by_domain_.emplace(domain, console).first;
    spdlog::info("console opened: domain={}", domain);
  }
  Console& c = *it->second;
  bool writer = want_write && c.writer.empty();
  if (writer) c.writer = id;
  auto session = std::make_shared<ConsoleSession>(id, writer, max_buffered_);
  c.sessions[id] = session;
  return session;
}

Status ConsoleHub::Input(const std::string& domain, const std::string& id, const std::string& bytes) {
  std::shared_ptr<Console> c;
  {
    std::lock_guard l(mu_);
    auto it = consoles_by_domain_.find(domain);
    if (it == consoles_by_domain_.end() || !it->second->sessions.count(id)) {
      return NotFound("console session " + id + " is not attached to " + domain);
    }
    if (it->second->writer != id) {
      return Status(Code::kConflict, it->second->writer.empty()
                                         ? "this console session is read-only (attach again to write)"
                                         : "another console session is writing; this one is read-only until it "
                                           "leaves and it attaches again");
    }
    c = it->second;
  }
  return c->stream->Write(bytes);  // the console stays open while `c` is held
}

void ConsoleHub::Detach(const std::string& domain, const std::string& id) {
  std::shared_ptr<Console> closing;
  {
    std::lock_guard l(mu_);
    auto it = consoles_by_domain_.find(domain);
    if (it == consoles_by_domain_.end()) return;
    auto s = it->second->sessions.find(id);
    if (s == it->second->sessions.end()) return;
    s->second->End(Status(Code::kOk, "detached"));
    it->second->sessions.erase(s);
    if (it->second->writer == id) it->second->writer.clear();
    if (it->second->sessions.empty()) {
      closing = it->second;
      consoles_by_domain_.erase(it);
    }
  }
  if (closing) {
    closing->stream->Close();  // outside mu_: a callback may be waiting for it
    spdlog::info("console closed: domain={} (last session left)", domain);
  }
}

void ConsoleHub::Ended(const std::string& domain, uint64_t serial, const Status& why) {
  std::shared_ptr<Console> ended;
  {
    std::lock_guard l(mu_);
    auto it = consoles_by_domain_.find(domain);
    if (it == consoles_by_domain_.end() || it->second->serial != serial) return;  // an older stream's end
    ended = it->second;
    consoles_by_domain_.erase(it);
  }
  for (auto& [id, s] : ended->sessions) s->End(why);
  spdlog::info("console ended: domain={} reason={}", domain, why.message());
  // The stream is closed when `ended` goes (the end callback runs outside the stream's own lock).
}

size_t ConsoleHub::Sessions(const std::string& domain) const {
  std::lock_guard l(mu_);
  auto it = consoles_by_domain_.find(domain);
  return it == consoles_by_domain_.end() ? 0 : it->second->sessions.size();
}

}  // namespace stratus::agent
