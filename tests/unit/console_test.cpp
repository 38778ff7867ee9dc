// Interactive consoles: the agent's hub over a fake console stream (one stream per domain whatever the number
// of sessions, output to every session, input from one writer, the end of the console reaching every session, a
// session that does not read dropped, the stream closed after the last session) and the CLI's escape and
// keepalive handling.
#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "lib/commands.h"
#include "stratus/agent/console_hub.h"

namespace stratus::agent {
namespace {

using namespace std::chrono_literals;

// Consoles that record what is written and let the test play the guest's output.
class FakeConsoles : public host::Consoles {
 public:
  struct State {
    std::mutex mu;
    int opened = 0, closed = 0;
    std::string written;
    std::function<void(const std::string&)> on_data;
    std::function<void(const Status&)> on_end;
    std::map<std::string, Status> refuse;  // domain -> why Open fails
  };
  explicit FakeConsoles(std::shared_ptr<State> st) : st_(std::move(st)) {}
  class Stream : public host::ConsoleStream {
   public:
    explicit Stream(std::shared_ptr<State> st) : st_(std::move(st)) {}
    Status Write(const std::string& bytes) override {
      std::lock_guard l(st_->mu);
      st_->written += bytes;
      return Status::Ok();
    }
    void Close() override {
      if (closed_) return;
      closed_ = true;
      std::lock_guard l(st_->mu);
      ++st_->closed;
    }
    ~Stream() override { Close(); }

   private:
    std::shared_ptr<State> st_;
    bool closed_ = false;
  };
  StatusOr<std::unique_ptr<host::ConsoleStream>> Open(const std::string& domain,
                                                      std::function<void(const std::string&)> on_data,
                                                      std::function<void(const Status&)> on_end) override {
    std::lock_guard l(st_->mu);
    if (st_->refuse.count(domain)) return st_->refuse[domain];
    ++st_->opened;
    st_->on_data = std::move(on_data);
    st_->on_end = std::move(on_end);
    return std::unique_ptr<host::ConsoleStream>(std::make_unique<Stream>(st_));
  }

 private:
  std::shared_ptr<State> st_;
};

struct Hub {
  std::shared_ptr<FakeConsoles::State> st = std::make_shared<FakeConsoles::State>();
  ConsoleHub hub{std::make_unique<FakeConsoles>(st), 64};
  void Guest(const std::string& out) { st->on_data(out); }
};

std::string Drain(ConsoleSession& s) {
  std::string all;
  for (;;) {
    auto n = s.Next(0ms);
    if (!n || n->empty()) return all;
    all += *n;
  }
}

TEST(ConsoleHubTest, OneStreamManyReadersOneWriter) {
  Hub h;
  auto a = h.hub.Attach("dom", "session-a", true);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = h.hub.Attach("dom", "session-b", true);  // asks to write too: a is the writer
  ASSERT_TRUE(b.ok());
  auto c = h.hub.Attach("dom", "session-c", false);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(h.st->opened, 1) << "libvirt allows one console stream: the sessions share it";
  EXPECT_TRUE((*a)->writer());
  EXPECT_FALSE((*b)->writer());
  EXPECT_FALSE((*c)->writer());
  EXPECT_EQ(h.hub.Sessions("dom"), 3u);

  h.Guest("login: ");
  EXPECT_EQ(Drain(**a), "login: ");
  EXPECT_EQ(Drain(**b), "login: ");
  EXPECT_EQ(Drain(**c), "login: ");

  EXPECT_TRUE(h.hub.Input("dom", "session-a", "root\r").ok());
  Status refused = h.hub.Input("dom", "session-b", "x");
  EXPECT_EQ(refused.code(), Code::kConflict);
  EXPECT_NE(refused.message().find("another console session is writing"), std::string::npos) << refused.message();
  EXPECT_EQ(h.hub.Input("dom", "nobody-here", "x").code(), Code::kNotFound);
  EXPECT_EQ(h.st->written, "root\r");

  // The writer leaves: the next session asking to write gets it; the stream stays while anyone is attached.
  h.hub.Detach("dom", "session-a");
  EXPECT_FALSE((*a)->Next(0ms).has_value()) << "a detached session ends";
  auto d = h.hub.Attach("dom", "session-d", true);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)->writer());
  EXPECT_EQ(h.hub.Attach("dom", "session-d", true).status().code(), Code::kAlreadyExists);
  for (const char* id : {"session-b", "session-c", "session-d"}) h.hub.Detach("dom", id);
  EXPECT_EQ(h.st->closed, 1) << "closed after the last session left";
  EXPECT_EQ(h.hub.Sessions("dom"), 0u);
  h.hub.Detach("dom", "session-b");  // idempotent
}

TEST(ConsoleHubTest, TheConsoleEndingEndsEverySessionSayingWhy) {
  Hub h;
  auto a = h.hub.Attach("dom", "session-a", true);
  auto b = h.hub.Attach("dom", "session-b", false);
  ASSERT_TRUE(a.ok() && b.ok());
  h.Guest("bye\r\n");
  h.st->on_end(Status(Code::kConflict, "the console closed (the domain stopped)"));
  EXPECT_EQ(*(*a)->Next(0ms), "bye\r\n") << "what came before the end is still read";
  EXPECT_FALSE((*a)->Next(0ms).has_value());
  EXPECT_EQ(*(*b)->Next(0ms), "bye\r\n");
  EXPECT_FALSE((*b)->Next(0ms).has_value());
  EXPECT_NE((*b)->ended().message().find("domain stopped"), std::string::npos);
  // A new attach opens a new stream.
  ASSERT_TRUE(h.hub.Attach("dom", "session-c", true).ok());
  EXPECT_EQ(h.st->opened, 2);
}

TEST(ConsoleHubTest, ASessionThatDoesNotReadIsDroppedNotTheOthers) {
  Hub h;  // 64 bytes per session
  auto slow = h.hub.Attach("dom", "session-slow", false);
  auto fast = h.hub.Attach("dom", "session-fast", false);
  ASSERT_TRUE(slow.ok() && fast.ok());
  for (int i = 0; i < 10; ++i) {
    h.Guest(std::string(10, 'x'));
    Drain(**fast);
  }
  EXPECT_FALSE((*slow)->Next(0ms).has_value());
  EXPECT_NE((*slow)->ended().message().find("too slowly"), std::string::npos);
  h.Guest("still here");
  EXPECT_EQ(Drain(**fast), "still here");
}

TEST(ConsoleHubTest, RefusalsAndBadSessionIds) {
  Hub h;
  h.st->refuse["busy"] = Status(Code::kConflict, "Active console session exists for this domain");
  auto r = h.hub.Attach("busy", "session-a", true);
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(h.hub.Attach("dom", "short", true).status().code(), Code::kInvalid);
  EXPECT_EQ(h.hub.Attach("dom", "bad id with spaces", true).status().code(), Code::kInvalid);
  h.hub.Shutdown();
  EXPECT_EQ(h.hub.Attach("dom", "session-a", true).status().code(), Code::kUnavailable);
}

TEST(ConsoleCliTest, EscapeAndKeepalives) {
  auto s = cli::ScanForEscape("ls\r");
  EXPECT_EQ(s.send, "ls\r");
  EXPECT_FALSE(s.escaped);
  s = cli::ScanForEscape(std::string("ab\x1d" "cd"));
  EXPECT_EQ(s.send, "ab");
  EXPECT_TRUE(s.escaped);
  EXPECT_EQ(cli::StripKeepalives(std::string("a\0b\0", 4)), "ab");
  EXPECT_EQ(cli::StripKeepalives(std::string(1, '\0')), "");
}

}  // namespace
}  // namespace stratus::agent
