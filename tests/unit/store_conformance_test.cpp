// The Store conformance suite: what every Store implementation must do, run against SqliteStore and against
// EtcdStore on a real etcd (Debian's etcd-server, started by the test on loopback with a data dir of its own).
// Watches are asynchronous on etcd, so deliveries are awaited (for the state needed, never for a time).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "stratus/apiserver/etcd_store.h"
#include "stratus/apiserver/sqlite_store.h"
#include "../etcd_process.h"
#include "wait_for.h"

namespace stratus {
namespace {

namespace fs = std::filesystem;

bool WaitUntil(const std::function<bool()>& pred) { return testing_env::WaitFor(pred, std::chrono::seconds(20)); }

class StoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stratus-conf-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (GetParam() == "sqlite") {
      SqliteStoreOptions o;
      o.path = (dir_ / "s.db").string();
      o.history_window = 10000;
      store_ = std::move(OpenSqliteStore(o)).value();
      return;
    }
    if (!fs::exists(testing::EtcdProcess::kBinary)) {
      GTEST_FAIL() << "etcd is missing: scripts/install-deps.sh installs etcd-server";
    }
    etcd_.Start(dir_ / "etcd", [&](const std::string& url) {
      EtcdStoreOptions o;
      o.endpoints = {url};
      o.prefix = "/conformance/";
      auto s = OpenEtcdStore(o);
      if (s.ok()) store_ = std::move(*s);
      return store_ != nullptr;
    });
    ASSERT_TRUE(store_) << "etcd did not start";
  }
  void TearDown() override {
    store_.reset();
    etcd_.Stop();
    fs::remove_all(dir_);
  }
  static json Obj(const std::string& name, int v, const std::string& ns = "default") {
    return {{"kind", "Volume"}, {"metadata", {{"name", name}, {"namespace", ns}}}, {"spec", {{"v", v}}}};
  }
  // Makes revisions up to `rv` unwatchable, as each store does (sqlite: its history window; etcd: compaction).
  void Compact(uint64_t rv) {
    if (GetParam() == "sqlite") {
      // SQLite keeps a window of the latest changes (--watch-history): reopened with one that ends at `rv`.
      uint64_t now = store_->CurrentRevision();
      store_.reset();
      SqliteStoreOptions o;
      o.path = (dir_ / "s.db").string();
      o.history_window = now - rv;
      store_ = std::move(OpenSqliteStore(o)).value();
    } else {
      pid_t p = testing::EtcdProcess::Spawn({"/usr/bin/etcdctl", "--endpoints", etcd_.url(), "compact",
                                             std::to_string(rv)}, (dir_ / "etcdctl.log").string());
      int st = 0;
      ::waitpid(p, &st, 0);
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
      // The store's own history is a cache of etcd's: a store opened now starts it at the current revision.
      store_.reset();
      EtcdStoreOptions o;
      o.endpoints = {etcd_.url()};
      o.prefix = "/conformance/";
      store_ = std::move(OpenEtcdStore(o)).value();
    }
  }

  fs::path dir_;
  testing::EtcdProcess etcd_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformanceTest, WritesAreVersionedAndConditional) {
  Store& s = *store_;
  auto a = s.Create({"volumes", "default", "a"}, Obj("a", 1));
  auto b = s.Create({"volumes", "default", "b"}, Obj("b", 1));
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString() << b.status().ToString();
  EXPECT_LT(ResourceVersionOf(*a), ResourceVersionOf(*b));
  EXPECT_EQ(s.CurrentRevision(), ResourceVersionOf(*b));
  EXPECT_EQ(s.Create({"volumes", "default", "a"}, Obj("a", 2)).status().code(), Code::kAlreadyExists);
  uint64_t rv1 = ResourceVersionOf(*a);
  auto u = s.Update({"volumes", "default", "a"}, Obj("a", 2), rv1);
  ASSERT_TRUE(u.ok());
  EXPECT_GT(ResourceVersionOf(*u), ResourceVersionOf(*b));
  EXPECT_EQ(s.Update({"volumes", "default", "a"}, Obj("a", 3), rv1).status().code(), Code::kConflict);
  EXPECT_EQ(s.Update({"volumes", "default", "zz"}, Obj("zz", 1), 0).status().code(), Code::kNotFound);
  EXPECT_EQ(s.Delete({"volumes", "default", "a"}, rv1).status().code(), Code::kConflict);
  auto got = s.Get({"volumes", "default", "a"});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((**got)["spec"]["v"], 2);
  EXPECT_EQ(ResourceVersionOf(**got), ResourceVersionOf(*u));
  auto d = s.Delete({"volumes", "default", "a"}, ResourceVersionOf(*u));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["spec"]["v"], 2);  // the last state
  EXPECT_GT(ResourceVersionOf(*d), ResourceVersionOf(*u));  // carrying the deletion's version
  EXPECT_EQ(s.Get({"volumes", "default", "a"}).status().code(), Code::kNotFound);
  EXPECT_EQ(s.Delete({"volumes", "default", "a"}, 0).status().code(), Code::kNotFound);
  // Cluster-scoped objects (no namespace) live beside them.
  ASSERT_TRUE(s.Create({"nodes", "", "host1"}, {{"kind", "Node"}, {"metadata", {{"name", "host1"}}}}).ok());
  EXPECT_TRUE(s.Get({"nodes", "", "host1"}).ok());
}

TEST_P(StoreConformanceTest, ConcurrentConditionalUpdatesHaveOneWinner) {
  Store& s = *store_;
  auto a = s.Create({"volumes", "default", "a"}, Obj("a", 0));
  ASSERT_TRUE(a.ok());
  uint64_t rv = ResourceVersionOf(*a);
  std::atomic<int> won{0}, conflicts{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      auto r = s.Update({"volumes", "default", "a"}, Obj("a", i + 1), rv);
      if (r.ok()) ++won;
      if (!r.ok() && r.status().code() == Code::kConflict) ++conflicts;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(conflicts.load(), 7);
}

TEST_P(StoreConformanceTest, ListIsOrderedFilteredPagedAndConsistent) {
  Store& s = *store_;
  for (const char* n : {"c", "a", "b"}) ASSERT_TRUE(s.Create({"volumes", "default", n}, Obj(n, 1)).ok());
  ASSERT_TRUE(s.Create({"volumes", "other", "a"}, Obj("a", 7, "other")).ok());
  ASSERT_TRUE(s.Create({"images", "default", "x"}, Obj("x", 1)).ok());
  StoreListOptions o;
  o.plural = "volumes";
  o.ns = "default";
  auto r = s.List(o);
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ((*r.items[0])["metadata"]["name"], "a");
  EXPECT_EQ((*r.items[2])["metadata"]["name"], "c");
  EXPECT_EQ(*r.encoded[0], r.items[0]->dump());
  EXPECT_EQ(r.rv, s.CurrentRevision());
  o.ns = "";
  EXPECT_EQ(s.List(o).items.size(), 4u);
  o.filter = [](const json& obj) { return obj["spec"].value("v", 0) == 7; };
  auto f = s.List(o);
  ASSERT_EQ(f.items.size(), 1u);
  EXPECT_EQ((*f.items[0])["metadata"]["namespace"], "other");
  o.filter = nullptr;
  o.limit = 2;
  auto p1 = s.List(o);
  ASSERT_EQ(p1.items.size(), 2u);
  ASSERT_FALSE(p1.last_name.empty());
  o.after_name = p1.last_name;
  auto p2 = s.List(o);
  ASSERT_EQ(p2.items.size(), 2u);
  EXPECT_TRUE(p2.last_name.empty());
  EXPECT_EQ((*p2.items[1])["metadata"]["namespace"], "other");
}

TEST_P(StoreConformanceTest, WatchSeesEveryConcurrentChangeOnceInOrder) {
  Store& s = *store_;
  std::mutex mu;
  std::vector<uint64_t> seen;
  auto w = s.Watch("volumes", "", s.CurrentRevision(), [&](const StoreEvent& e) {
    std::lock_guard lock(mu);
    seen.push_back(e.rv);
  });
  ASSERT_TRUE(w.ok());
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string n = "w" + std::to_string(t) + "x" + std::to_string(i);
        EXPECT_TRUE(s.Create({"volumes", "default", n}, Obj(n, i)).ok());
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard lock(mu);
    return seen.size() >= 100;
  }));
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 100u);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_EQ(seen[i], seen[i - 1] + 1);
}

TEST_P(StoreConformanceTest, WatchResumesFromAVersionFiltersTheNamespaceAndStops) {
  Store& s = *store_;
  ASSERT_TRUE(s.Create({"volumes", "default", "a"}, Obj("a", 1)).ok());
  uint64_t mark = s.CurrentRevision();
  ASSERT_TRUE(s.Create({"volumes", "other", "b"}, Obj("b", 1, "other")).ok());
  ASSERT_TRUE(s.Update({"volumes", "default", "a"}, Obj("a", 2), 0).ok());
  std::mutex mu;
  std::vector<std::string> seen;
  std::vector<json> objects;
  auto w = s.Watch("volumes", "default", mark, [&](const StoreEvent& e) {
    std::lock_guard lock(mu);
    seen.push_back(e.type + ":" + e.key.name);
    objects.push_back(*e.object);
    EXPECT_EQ(*e.encoded, e.object->dump());
    EXPECT_EQ(ResourceVersionOf(*e.object), e.rv);
  });
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(s.Delete({"volumes", "default", "a"}, 0).ok());
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard lock(mu);
    return seen.size() >= 2;
  }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen, (std::vector<std::string>{"MODIFIED:a", "DELETED:a"}));
    EXPECT_EQ(objects[1]["spec"]["v"], 2);  // a deletion shows the last state
  }
  w->reset();
  ASSERT_TRUE(s.Create({"volumes", "default", "c"}, Obj("c", 1)).ok());
  // A later write on another watch proves the dropped one had its chance to (wrongly) deliver.
  std::atomic<bool> later{false};
  auto probe = s.Watch("volumes", "default", s.CurrentRevision() - 1, [&](const StoreEvent&) { later = true; });
  ASSERT_TRUE(probe.ok());
  ASSERT_TRUE(WaitUntil([&] { return later.load(); }));
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.size(), 2u) << "no delivery after the watch is dropped";
}

TEST_P(StoreConformanceTest, WatchFromBeforeTheRetainedHistoryIsGone) {
  for (int i = 0; i < 30; ++i) {
    std::string n = "v" + std::to_string(i);
    ASSERT_TRUE(store_->Create({"volumes", "default", n}, Obj(n, i)).ok());
  }
  Compact(20);
  Store& s = *store_;
  auto old = s.Watch("volumes", "", 5, [](const StoreEvent&) {});
  EXPECT_EQ(old.status().code(), Code::kGone) << old.status().ToString();
  uint64_t from = s.OldestWatchableRevision();
  EXPECT_GE(from, 20u);
  EXPECT_LE(from, s.CurrentRevision());
  // From the oldest watchable revision: what is kept, then what comes.
  std::atomic<uint64_t> n{0};
  auto ok = s.Watch("volumes", "", from, [&](const StoreEvent&) { ++n; });
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  for (int i = 30; i < 35; ++i) {
    std::string name = "v" + std::to_string(i);
    ASSERT_TRUE(s.Create({"volumes", "default", name}, Obj(name, i)).ok());
  }
  uint64_t want = s.CurrentRevision() - from;
  ASSERT_TRUE(WaitUntil([&] { return n.load() >= want; }));
  EXPECT_EQ(n.load(), want);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest, ::testing::Values("sqlite", "etcd"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace stratus
