// Informer: initial list, watch events, resume after the server ends a stream, relist on 410 Gone (deletions
// and changes delivered), resync re-delivery, prompt Stop; and a Controller fed by an informer.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "fake_clock.h"
#include "wait_for.h"
#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"
#include "stratus/runtime/informer_factory.h"

namespace stratus::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Delivery {
  std::string key;
  json obj;
  bool deleted;
};

// Records what an informer delivers.
class Recorder {
 public:
  Informer::Handler Handler() {
    return [this](const std::string& key, const json& obj, bool deleted) {
      std::lock_guard lock(mu_);
      log_.push_back({key, obj, deleted});
    };
  }
  std::vector<Delivery> Log() {
    std::lock_guard lock(mu_);
    return log_;
  }
  int Count(const std::string& key, bool deleted) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& d : log_) n += d.key == key && d.deleted == deleted;
    return n;
  }
  // True when some delivery for `key` satisfies `pred`.
  bool Saw(const std::string& key, const std::function<bool(const Delivery&)>& pred) {
    std::lock_guard lock(mu_);
    for (const auto& d : log_) {
      if (d.key == key && pred(d)) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<Delivery> log_;
};

json Obj(const std::string& name, uint64_t rv, const std::string& ns = "default") {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Volume"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"uid", "uid-" + name}, {"resourceVersion", std::to_string(rv)}}},
          {"spec", {{"size", "1Gi"}}}};
}

// An ApiClient whose List answers are scripted and whose Watch follows a script per call.
class FakeClient : public ApiClient {
 public:
  enum class WatchMode { kGone, kEvents, kBlock };
  struct WatchStep {
    WatchMode mode;
    std::vector<WatchEvent> events;  // for kEvents: delivered, then the stream ends (Ok)
  };

  std::mutex mu;
  std::vector<json> lists;  // the n-th List returns lists[min(n, size-1)]
  std::vector<WatchStep> steps;  // the n-th Watch follows steps[n] (kBlock after the script)
  int list_calls = 0;
  std::vector<ListOptions> watch_calls;

  StatusOr<json> List(const std::string&, const std::string&, const ListOptions&) override {
    std::lock_guard lock(mu);
    size_t i = std::min<size_t>(static_cast<size_t>(list_calls), lists.size() - 1);
    ++list_calls;
    return lists[i];
  }
  Status Watch(const std::string&, const std::string&, const ListOptions& opts,
               const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>* stop) override {
    WatchStep step{WatchMode::kBlock, {}};
    {
      std::lock_guard lock(mu);
      size_t n = watch_calls.size();
      watch_calls.push_back(opts);
      if (n < steps.size()) step = steps[n];
    }
    if (step.mode == WatchMode::kGone) return Status(Code::kGone, "too old resource version");
    if (step.mode == WatchMode::kEvents) {
      for (const auto& e : step.events) {
        if (!on_event(e)) return Status::Ok();
      }
      return Status::Ok();
    }
    while (!stop->load()) std::this_thread::sleep_for(5ms);
    return Status::Ok();
  }
  StatusOr<json> Get(const std::string&, const std::string&, const std::string&) override { return NotFound("fake"); }
  StatusOr<json> Create(const std::string&, const std::string&, const json&) override { return NotFound("fake"); }
  StatusOr<json> Update(const std::string&, const std::string&, const json&) override { return NotFound("fake"); }
  StatusOr<json> UpdateStatus(const std::string&, const std::string&, const json&) override { return NotFound("fake"); }
  StatusOr<json> Patch(const std::string&, const std::string&, const std::string&, const json&,
                       const std::string&) override {
    return NotFound("fake");
  }
  StatusOr<json> Delete(const std::string&, const std::string&, const std::string&, const std::string&) override {
    return NotFound("fake");
  }
  StatusOr<std::string> GetRaw(const std::string&) override { return NotFound("fake"); }

  static json ListOf(std::vector<json> items, uint64_t rv) {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "VolumeList"},
            {"metadata", {{"resourceVersion", std::to_string(rv)}}},
            {"items", items}};
  }
  size_t WatchCalls() {
    std::lock_guard lock(mu);
    return watch_calls.size();
  }
};

using testing_env::WaitFor;

TEST(RuntimeKeyTest, KeyForAndSplitKey) {
  EXPECT_EQ(KeyFor(Obj("web-1", 1, "prod")), "prod/web-1");
  json node = {{"kind", "Node"}, {"metadata", {{"name", "node-a"}}}};
  EXPECT_EQ(KeyFor(node), "node-a");
  EXPECT_EQ(SplitKey("prod/web-1"), std::make_pair(std::string("prod"), std::string("web-1")));
  EXPECT_EQ(SplitKey("node-a"), std::make_pair(std::string(""), std::string("node-a")));
}

TEST(RuntimeInformerTest, RelistOnGoneDeliversDeletionsAndChanges) {
  testing::FakeClock clock;
  FakeClient fake;
  fake.lists = {FakeClient::ListOf({Obj("a", 1), Obj("b", 2)}, 2),
                FakeClient::ListOf({Obj("a", 5), Obj("c", 6)}, 6)};
  fake.steps = {{FakeClient::WatchMode::kGone, {}}};
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  o.relist_backoff = 20ms;
  o.clock = &clock;
  Informer inf(&fake, o);
  Recorder rec;
  inf.AddHandler(rec.Handler());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  // The watch got 410 Gone: the informer waits its relist backoff before listing again.
  ASSERT_TRUE(clock.WaitForWaiterDueBy(clock.Now() + 20ms));
  EXPECT_EQ(clock.NextDeadline(), clock.Now() + 20ms);
  clock.Advance(19ms);
  EXPECT_EQ(inf.ListCount(), 1) << "relisted before the relist backoff";
  clock.Advance(1ms);
  ASSERT_TRUE(WaitFor([&] { return inf.ListCount() >= 2 && fake.WatchCalls() >= 2; }));
  inf.Stop();

  EXPECT_EQ(inf.ListCount(), 2);
  EXPECT_EQ(rec.Count("default/b", true), 1) << "b vanished in the relist: a deletion is delivered";
  EXPECT_TRUE(rec.Saw("default/a", [](const Delivery& d) { return ResourceVersionOf(d.obj) == 5; }));
  EXPECT_EQ(rec.Count("default/a", false), 2);
  EXPECT_EQ(rec.Count("default/c", false), 1);
  EXPECT_TRUE(inf.Get("default/b").is_null());
  EXPECT_EQ(ResourceVersionOf(inf.Get("default/a")), 5u);
  EXPECT_EQ(inf.List().size(), 2u);
  // The first watch started at the first list's version, the one after the relist at the second's.
  std::lock_guard lock(fake.mu);
  EXPECT_EQ(fake.watch_calls[0].resource_version, "2");
  EXPECT_EQ(fake.watch_calls[1].resource_version, "6");
  EXPECT_GT(fake.watch_calls[0].timeout_seconds, 0);
}

TEST(RuntimeInformerTest, ResumesFromLastSeenVersionWhenTheStreamEnds) {
  testing::FakeClock clock;
  FakeClient fake;
  fake.lists = {FakeClient::ListOf({Obj("a", 3)}, 3)};
  fake.steps = {{FakeClient::WatchMode::kEvents, {{"MODIFIED", Obj("a", 7)}, {"ADDED", Obj("b", 8)}}},
                {FakeClient::WatchMode::kEvents, {{"DELETED", Obj("a", 9)}}}};
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  o.clock = &clock;
  Informer inf(&fake, o);
  Recorder rec;
  inf.AddHandler(rec.Handler());
  inf.Start();
  // Each stream ends at once (no fake time passes): the informer pauses 100 ms before watching again rather than
  // spinning on a server that closes streams immediately.
  for (size_t calls = 1; calls <= 2; ++calls) {
    ASSERT_TRUE(WaitFor([&] { return fake.WatchCalls() == calls; }));
    ASSERT_TRUE(clock.WaitForWaiterDueBy(clock.Now() + 100ms)) << "watch " << calls;
    EXPECT_EQ(clock.NextDeadline(), clock.Now() + 100ms) << "watch " << calls;
    clock.Advance(99ms);
    EXPECT_EQ(fake.WatchCalls(), calls) << "watched again without pausing after watch " << calls;
    clock.Advance(1ms);
  }
  ASSERT_TRUE(WaitFor([&] { return fake.WatchCalls() >= 3; }));
  inf.Stop();
  EXPECT_EQ(inf.ListCount(), 1) << "a normal end of stream is resumed, not relisted";
  {
    std::lock_guard lock(fake.mu);
    EXPECT_EQ(fake.watch_calls[0].resource_version, "3");
    EXPECT_EQ(fake.watch_calls[1].resource_version, "8");
    EXPECT_EQ(fake.watch_calls[2].resource_version, "9");
  }
  EXPECT_EQ(rec.Count("default/a", true), 1);
  EXPECT_EQ(rec.Count("default/b", false), 1);
  EXPECT_TRUE(inf.Get("default/a").is_null());
  EXPECT_EQ(ResourceVersionOf(inf.Get("default/b")), 8u);
}

TEST(RuntimeInformerTest, ResyncRedeliversCachedObjects) {
  testing::FakeClock clock;
  FakeClient fake;
  fake.lists = {FakeClient::ListOf({Obj("a", 1), Obj("b", 2)}, 2)};
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 1s;
  o.clock = &clock;
  Informer inf(&fake, o);
  Recorder rec;
  const auto added = clock.Now();
  inf.AddHandler(rec.Handler());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  ASSERT_TRUE(clock.WaitForWaiterDueBy(added + 1s));
  EXPECT_EQ(clock.NextDeadline(), added + 1s) << "the resync timer waits for the handler's period";
  clock.Advance(999ms);
  EXPECT_EQ(rec.Count("default/a", false), 1) << "resynced before the period";
  clock.Advance(1ms);
  EXPECT_TRUE(WaitFor([&] { return rec.Count("default/a", false) == 2 && rec.Count("default/b", false) == 2; }));
  // And again one period later, not before.
  ASSERT_TRUE(clock.WaitForWaiterDueBy(added + 2s));
  EXPECT_EQ(clock.NextDeadline(), added + 2s) << "the next resync is one period after the last";
  clock.Advance(999ms);
  EXPECT_EQ(rec.Count("default/a", false), 2);
  clock.Advance(1ms);
  EXPECT_TRUE(WaitFor([&] { return rec.Count("default/a", false) == 3 && rec.Count("default/b", false) == 3; }));
  auto start = Clock::now();
  inf.Stop();
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(inf.ListCount(), 1);
}

class RuntimeInformerLocalTest : public testing_env::LocalApiTest {};

TEST_F(RuntimeInformerLocalTest, InitialListThenWatchEvents) {
  MustCreate(Volume("v1"));
  MustCreate(Volume("v2"));
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  Informer inf(client_.get(), o);
  Recorder rec;
  inf.AddHandler(rec.Handler());
  EXPECT_FALSE(inf.HasSynced());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  EXPECT_TRUE(inf.HasSynced());
  EXPECT_EQ(rec.Count("default/v1", false), 1);
  EXPECT_EQ(rec.Count("default/v2", false), 1);
  EXPECT_EQ(inf.List().size(), 2u);

  MustCreate(Volume("v3"));
  auto p = client_->Patch("volumes", "default", "v1", {{"metadata", {{"labels", {{"tier", "gold"}}}}}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE(client_->Delete("volumes", "default", "v2").ok());
  ASSERT_TRUE(WaitFor([&] { return rec.Count("default/v2", true) == 1; }));
  EXPECT_TRUE(WaitFor([&] { return rec.Count("default/v3", false) == 1; }));
  EXPECT_TRUE(rec.Saw("default/v1", [](const Delivery& d) {
    return d.obj["metadata"].contains("labels") && d.obj["metadata"]["labels"].value("tier", "") == "gold";
  }));
  EXPECT_EQ(inf.Get("default/v1")["metadata"]["labels"]["tier"], "gold");
  EXPECT_TRUE(inf.Get("default/v2").is_null());
  EXPECT_EQ(inf.List().size(), 2u);
  EXPECT_EQ(inf.ListCount(), 1);

  auto start = Clock::now();
  inf.Stop();
  EXPECT_LT(Clock::now() - start, 2s) << "Stop ends a blocked watch promptly";
}

TEST_F(RuntimeInformerLocalTest, LabelSelectorLimitsTheCache) {
  json a = Volume("a");
  a["metadata"]["labels"] = {{"app", "db"}};
  MustCreate(a);
  MustCreate(Volume("b"));
  InformerOptions o;
  o.plural = "volumes";
  o.label_selector = "app=db";
  o.resync = 0s;
  Informer inf(client_.get(), o);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  MustCreate(Volume("d"));
  json c = Volume("c");
  c["metadata"]["labels"] = {{"app", "db"}};
  MustCreate(c);
  // Events arrive in revision order: once c (created after d) is here, d would be too if the selector let it in.
  EXPECT_TRUE(WaitFor([&] { return !inf.Get("default/c").is_null(); }));
  EXPECT_TRUE(inf.Get("default/b").is_null());
  EXPECT_TRUE(inf.Get("default/d").is_null());
  EXPECT_EQ(inf.List().size(), 2u);
  inf.Stop();
}

// A controller fed by an informer reconciles every object and each later change.
class CountingReconciler : public Reconciler {
 public:
  std::vector<WatchSpec> Watches() override { return {}; }  // wired by hand in these tests
  std::string Name() const override { return "counting"; }
  std::vector<const Informer*> Reads() const override { return reads; }
  std::vector<const Informer*> reads;
  StatusOr<Result> Reconcile(const std::string& key) override {
    std::lock_guard lock(mu);
    ++calls[key];
    return Result::Done();
  }
  int Calls(const std::string& key) {
    std::lock_guard lock(mu);
    return calls[key];
  }
  std::mutex mu;
  std::map<std::string, int> calls;
};

TEST_F(RuntimeInformerLocalTest, ControllerReconcilesInformerKeysAndMappedKeys) {
  MustCreate(Volume("v1"));
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  Informer inf(client_.get(), o);
  CountingReconciler rec;
  auto ctl = std::make_unique<Controller>(&rec, 2);
  ctl->Watch(&inf);
  ctl->Watch(&inf, [](const std::string& key, const json&) {
    return std::vector<std::string>{"mapped/" + SplitKey(key).second};
  });
  inf.Start();
  ctl->Start();
  EXPECT_TRUE(WaitFor([&] { return rec.Calls("default/v1") >= 1 && rec.Calls("mapped/v1") >= 1; }));
  MustCreate(Volume("v2"));
  EXPECT_TRUE(WaitFor([&] { return rec.Calls("default/v2") >= 1 && rec.Calls("mapped/v2") >= 1; }));
  // The informer may outlive its controller: later events are simply not enqueued.
  ctl.reset();
  MustCreate(Volume("v3"));
  EXPECT_TRUE(WaitFor([&] { return !inf.Get("default/v3").is_null(); }));
  inf.Stop();
  EXPECT_EQ(rec.Calls("default/v3"), 0);
}

}  // namespace
}  // namespace stratus::runtime

namespace stratus::runtime {
namespace {

// Synced before acting: a key is queued from a synced informer, yet nothing is reconciled while a cache the
// reconciler reads has not listed (after a restart, an empty instance cache would free every address).
TEST_F(RuntimeInformerLocalTest, ControllerWaitsForEveryCacheItReadsToSync) {
  MustCreate(Volume("v1"));
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  Informer watched(client_.get(), o);
  Informer read_only(client_.get(), o);  // read by the reconciler, not watched; started late
  CountingReconciler rec;
  rec.reads = {&read_only};
  Controller ctl(&rec, 1);
  ctl.Watch(&watched);
  watched.Start();
  ctl.Start();
  ASSERT_TRUE(WaitFor([&] { return ctl.queue().Len() >= 1; })) << "the key waits in the queue";
  EXPECT_FALSE(ctl.Running());
  EXPECT_EQ(rec.Calls("default/v1"), 0) << "reconciled before every cache had synced";
  read_only.Start();
  EXPECT_TRUE(WaitFor([&] { return rec.Calls("default/v1") >= 1; }));
  EXPECT_TRUE(ctl.Running());
  ctl.Stop();
  watched.Stop();
  read_only.Stop();
}

// Stop returns even when a cache never syncs (its workers are still waiting).
TEST_F(RuntimeInformerLocalTest, ControllerStopsWhileWaitingForSync) {
  InformerOptions o;
  o.plural = "volumes";
  Informer never(client_.get(), o);
  CountingReconciler rec;
  rec.reads = {&never};
  Controller ctl(&rec, 2);
  ctl.Start();
  ctl.Stop();
  EXPECT_FALSE(ctl.Running());
}

// A handler added after the first list gets every cached object first, then later events (shared informers).
TEST_F(RuntimeInformerLocalTest, LateHandlerGetsTheCacheThenEvents) {
  MustCreate(Volume("a"));
  MustCreate(Volume("b"));
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  Informer inf(client_.get(), o);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(10s));
  Recorder rec;
  inf.AddHandler(rec.Handler());
  EXPECT_EQ(rec.Count("default/a", false), 1);
  EXPECT_EQ(rec.Count("default/b", false), 1);
  MustCreate(Volume("c"));
  EXPECT_TRUE(WaitFor([&] { return rec.Count("default/c", false) == 1; }));
  inf.Stop();
}

// A handler's own resync period: one handler gets the cache again, the other (period 0) never does.
TEST_F(RuntimeInformerLocalTest, EachHandlerHasItsOwnResyncPeriod) {
  MustCreate(Volume("a"));
  testing::FakeClock clock;
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 0s;
  o.clock = &clock;
  Informer inf(client_.get(), o);
  Recorder fast, never;
  const auto added = clock.Now();
  inf.AddHandler(fast.Handler(), 20ms);
  inf.AddHandler(never.Handler());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(10s));
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(clock.WaitForWaiterDueBy(added + i * 20ms)) << "resync " << i;
    EXPECT_EQ(clock.NextDeadline(), added + i * 20ms) << "resync " << i;
    clock.Advance(20ms);
    ASSERT_TRUE(WaitFor([&] { return fast.Count("default/a", false) == 1 + i; })) << "resync " << i;
  }
  inf.Stop();
  EXPECT_EQ(never.Count("default/a", false), 1);
}

// One informer per collection and selectors; the factory starts late comers and reports sync of all.
TEST_F(RuntimeInformerLocalTest, FactorySharesOneInformerPerCollection) {
  MustCreate(Volume("a"));
  InformerFactory f(client_.get());
  Informer* v1 = f.For("volumes");
  InformerOptions o;
  o.plural = "volumes";
  o.resync = 10s;  // resync is not part of the identity
  EXPECT_EQ(f.For(o), v1);
  o.field_selector = "metadata.name=a";
  Informer* selected = f.For(o);
  EXPECT_NE(selected, v1);
  EXPECT_EQ(f.size(), 2u);
  f.Start();
  Informer* late = f.For("securitygroups");
  EXPECT_TRUE(WaitFor([&] { return f.HasSynced(); }));
  EXPECT_TRUE(late->HasSynced());
  EXPECT_FALSE(v1->Get("default/a").is_null());
  f.Stop();
}

}  // namespace
}  // namespace stratus::runtime
