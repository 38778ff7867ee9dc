// The in-process ApiClient: CRUD with the HTTP API's semantics, and watch semantics (resourceVersion, replay of
// current objects, selectors, 410 Gone, timeout, stop).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "runtime_test_env.h"
#include "stratus/core/object.h"

namespace stratus {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class LocalClientTest : public testing_env::LocalApiTest {
 protected:
  // Runs a watch on a thread, collecting events until `stop_`.
  struct Collector {
    std::mutex mu;
    std::vector<WatchEvent> events;
    std::atomic<bool> stop{false};
    Status result;
    std::thread thread;
    std::vector<WatchEvent> Events() {
      std::lock_guard lock(mu);
      return events;
    }
    size_t Size() {
      std::lock_guard lock(mu);
      return events.size();
    }
    void Join() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  };
  std::unique_ptr<Collector> StartWatch(const ListOptions& opts, const std::string& ns = "default") {
    auto c = std::make_unique<Collector>();
    Collector* cp = c.get();
    ApiClient* client = client_.get();
    c->thread = std::thread([cp, client, opts, ns] {
      cp->result = client->Watch(
          "volumes", ns, opts,
          [cp](const WatchEvent& e) {
            std::lock_guard lock(cp->mu);
            cp->events.push_back(e);
            return true;
          },
          &cp->stop);
    });
    return c;
  }
};

TEST_F(LocalClientTest, CrudMatchesTheHttpApi) {
  json v = MustCreate(Volume("data-1"));
  EXPECT_EQ(MetaString(v, "namespace"), "default");
  EXPECT_FALSE(MetaString(v, "uid").empty());
  EXPECT_EQ(client_->Create("volumes", "default", Volume("data-1")).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(client_->Create("bogus", "default", Volume("x")).status().code(), Code::kNotFound);
  EXPECT_EQ(client_->Get("volumes", "", "data-1").status().code(), Code::kBadRequest);
  EXPECT_EQ(client_->Get("volumes", "default", "missing").status().code(), Code::kNotFound);

  auto g = client_->Get("volumes", "default", "data-1");
  ASSERT_TRUE(g.ok());
  json upd = *g;
  upd["spec"]["size"] = "2Gi";
  auto u = client_->Update("volumes", "default", upd);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ((*u)["metadata"]["generation"], 2);
  EXPECT_EQ(client_->Update("volumes", "default", upd).status().code(), Code::kConflict) << "stale resourceVersion";

  json st = *u;
  st["status"] = {{"phase", "Available"}};
  auto s = client_->UpdateStatus("volumes", "", st);  // namespace taken from the object
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)["status"]["phase"], "Available");
  EXPECT_EQ((*s)["metadata"]["generation"], 2);

  auto p = client_->Patch("volumes", "default", "data-1", {{"status", {{"phase", "InUse"}}}}, "status");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)["status"]["phase"], "InUse");
  EXPECT_EQ(client_->Patch("volumes", "default", "data-1", json::object(), "scale").status().code(), Code::kNotFound);

  ListOptions lo;
  auto all = client_->List("volumes", "", lo);  // all namespaces
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)["kind"], "VolumeList");
  EXPECT_EQ((*all)["items"].size(), 1u);
  EXPECT_EQ(ResourceVersionOf((*all)["items"][0]), ResourceVersionOf(*p));
  lo.label_selector = "bad selector ((";
  EXPECT_EQ(client_->List("volumes", "", lo).status().code(), Code::kBadRequest);

  EXPECT_EQ(client_->Delete("volumes", "default", "data-1", "wrong-uid").status().code(), Code::kConflict);
  ASSERT_TRUE(client_->Delete("volumes", "default", "data-1").ok());
  EXPECT_EQ(client_->Get("volumes", "default", "data-1").status().code(), Code::kNotFound);

  auto h = client_->GetRaw("/healthz");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, "ok");
  EXPECT_EQ(client_->GetRaw("/no/such/path").status().code(), Code::kNotFound);
  auto raw = client_->GetRaw("/apis/stratus.io/v1/namespaces/default/volumes");
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  EXPECT_EQ(json::parse(*raw)["kind"], "VolumeList");
}

TEST_F(LocalClientTest, WatchFromAVersionSeesExactlyLaterChanges) {
  MustCreate(Volume("before-1"));
  json b2 = MustCreate(Volume("before-2"));
  std::string from = MetaString(b2, "resourceVersion");
  MustCreate(Volume("after-1"));  // after `from`, before the watch starts: replayed from history

  ListOptions o;
  o.resource_version = from;
  o.timeout_seconds = 60;
  auto w = StartWatch(o);
  json a2 = MustCreate(Volume("after-2"));
  ASSERT_TRUE(client_->Patch("volumes", "default", "before-1", {{"metadata", {{"labels", {{"x", "y"}}}}}}).ok());
  ASSERT_TRUE(client_->Delete("volumes", "default", "after-2").ok());
  // A last change marks the end: events come in revision order, so anything else would arrive before it.
  MustCreate(Volume("end"));
  ASSERT_TRUE(WaitFor([&] { return w->Size() >= 5; }));
  w->Join();
  EXPECT_TRUE(w->result.ok()) << w->result.ToString();
  auto ev = w->Events();
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(MetaString(ev[4].object, "name"), "end");
  EXPECT_EQ(ev[0].type, "ADDED");
  EXPECT_EQ(MetaString(ev[0].object, "name"), "after-1");
  EXPECT_EQ(ev[1].type, "ADDED");
  EXPECT_EQ(MetaString(ev[1].object, "name"), "after-2");
  EXPECT_EQ(ev[2].type, "MODIFIED");
  EXPECT_EQ(MetaString(ev[2].object, "name"), "before-1");
  EXPECT_EQ(ev[3].type, "DELETED");
  EXPECT_EQ(MetaString(ev[3].object, "name"), "after-2");
  uint64_t last = ResourceVersionOf(b2);
  for (const auto& e : ev) {
    EXPECT_GT(ResourceVersionOf(e.object), last) << "events arrive in revision order, all after the start version";
    last = ResourceVersionOf(e.object);
  }
}

TEST_F(LocalClientTest, WatchWithoutVersionStartsWithCurrentObjects) {
  MustCreate(Volume("a"));
  MustCreate(Volume("b"));
  ListOptions o;
  auto w = StartWatch(o);
  ASSERT_TRUE(WaitFor([&] { return w->Size() >= 2; }));
  MustCreate(Volume("c"));
  ASSERT_TRUE(WaitFor([&] { return w->Size() >= 3; }));
  w->Join();
  auto ev = w->Events();
  ASSERT_EQ(ev.size(), 3u);
  for (const auto& e : ev) EXPECT_EQ(e.type, "ADDED");
  EXPECT_EQ(MetaString(ev[2].object, "name"), "c");
}

TEST_F(LocalClientTest, WatchHonoursSelectorsAndNamespace) {
  json ns = {{"apiVersion", "stratus.io/v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "prod"}}}};
  MustCreate(ns, "namespaces", "");
  ListOptions o;
  o.resource_version = std::to_string(store_->CurrentRevision());
  o.label_selector = "app=db";
  auto w = StartWatch(o);
  ListOptions fo;
  fo.resource_version = o.resource_version;
  fo.field_selector = "metadata.name=pick";
  auto wf = StartWatch(fo, "");  // all namespaces
  json a = Volume("a");
  a["metadata"]["labels"] = {{"app", "db"}};
  MustCreate(a);
  MustCreate(Volume("b"));
  json p = Volume("pick");
  p["metadata"]["namespace"] = "prod";
  p["metadata"]["labels"] = {{"app", "db"}};
  MustCreate(p, "volumes", "prod");
  // The last change matches both watches and marks the end: events come in revision order, so anything either
  // watch should not have seen would arrive before it.
  json end = Volume("pick");
  end["metadata"]["labels"] = {{"app", "db"}};
  MustCreate(end);
  ASSERT_TRUE(WaitFor([&] { return w->Size() >= 2 && wf->Size() >= 2; }));
  w->Join();
  wf->Join();
  auto ev = w->Events();
  ASSERT_EQ(ev.size(), 2u) << "only labelled objects in namespace default";
  EXPECT_EQ(MetaString(ev[0].object, "name"), "a");
  EXPECT_EQ(MetaString(ev[1].object, "name"), "pick");
  EXPECT_EQ(MetaString(ev[1].object, "namespace"), "default");
  auto evf = wf->Events();
  ASSERT_EQ(evf.size(), 2u);
  EXPECT_EQ(MetaString(evf[0].object, "name"), "pick");
  EXPECT_EQ(MetaString(evf[0].object, "namespace"), "prod");
  EXPECT_EQ(MetaString(evf[1].object, "namespace"), "default");
}

TEST_F(LocalClientTest, WatchTooOldVersionIsGone) {
  Close();
  Open(5);
  json first = MustCreate(Volume("v0"));
  for (int i = 1; i < 12; ++i) MustCreate(Volume("v" + std::to_string(i)));
  ListOptions o;
  o.resource_version = "1";
  std::atomic<bool> stop{false};
  Status s = client_->Watch("volumes", "default", o, [](const WatchEvent&) { return true; }, &stop);
  EXPECT_EQ(s.code(), Code::kGone) << s.ToString();
  o.resource_version = "abc";
  EXPECT_EQ(client_->Watch("volumes", "default", o, [](const WatchEvent&) { return true; }, &stop).code(),
            Code::kBadRequest);
  o.resource_version = "";
  o.label_selector = "((";
  EXPECT_EQ(client_->Watch("volumes", "default", o, [](const WatchEvent&) { return true; }, &stop).code(),
            Code::kBadRequest);
}

TEST_F(LocalClientTest, WatchEndsOnTimeoutStopAndHandlerFalse) {
  ListOptions o;
  o.resource_version = std::to_string(store_->CurrentRevision());
  o.timeout_seconds = 1;
  std::atomic<bool> stop{false};
  auto start = Clock::now();
  Status s = client_->Watch("volumes", "default", o, [](const WatchEvent&) { return true; }, &stop);
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto took = Clock::now() - start;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 5s);

  o.timeout_seconds = 300;
  auto w = StartWatch(o);
  MustCreate(Volume("x"));
  ASSERT_TRUE(WaitFor([&] { return w->Size() >= 1; })) << "the watch is running";
  start = Clock::now();
  w->Join();
  EXPECT_LT(Clock::now() - start, 2s) << "the stop flag ends the watch promptly";
  EXPECT_TRUE(w->result.ok()) << w->result.ToString();

  MustCreate(Volume("y"));
  int seen = 0;
  s = client_->Watch("volumes", "default", ListOptions{}, [&](const WatchEvent&) { return ++seen < 1; }, &stop);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(seen, 1) << "returning false from the handler ends the watch";
}

}  // namespace
}  // namespace stratus
