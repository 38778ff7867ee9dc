// SqliteStore semantics: optimistic concurrency, durability across reopen, watch ordering and resume,
// history compaction (410 Gone).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include <sqlite3.h>
#include <unistd.h>

#include <future>

#include "stratus/apiserver/sqlite_store.h"

namespace stratus {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("stratus-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> Open(size_t window = 100) {
    SqliteStoreOptions o;
    o.path = (dir_ / "s.db").string();
    o.history_window = window;
    auto s = OpenSqliteStore(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
  static json Obj(const std::string& name, int v) {
    return {{"kind", "Volume"}, {"metadata", {{"name", name}, {"namespace", "default"}}}, {"spec", {{"v", v}}}};
  }
  std::filesystem::path dir_;
};

TEST_F(StoreTest, CreateAssignsIncreasingVersionsAndRejectsDuplicates) {
  auto s = Open();
  auto a = s->Create({"volumes", "default", "a"}, Obj("a", 1));
  auto b = s->Create({"volumes", "default", "b"}, Obj("b", 1));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(ResourceVersionOf(*a), ResourceVersionOf(*b));
  auto dup = s->Create({"volumes", "default", "a"}, Obj("a", 2));
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(s->CurrentRevision(), ResourceVersionOf(*b));
}

TEST_F(StoreTest, StaleUpdateConflicts) {
  auto s = Open();
  auto a = s->Create({"volumes", "default", "a"}, Obj("a", 1));
  uint64_t rv1 = ResourceVersionOf(*a);
  auto u = s->Update({"volumes", "default", "a"}, Obj("a", 2), rv1);
  ASSERT_TRUE(u.ok());
  auto stale = s->Update({"volumes", "default", "a"}, Obj("a", 3), rv1);
  EXPECT_EQ(stale.status().code(), Code::kConflict);
  EXPECT_EQ((**s->Get({"volumes", "default", "a"}))["spec"]["v"], 2);
  EXPECT_EQ(s->Update({"volumes", "default", "zz"}, Obj("zz", 1), 0).status().code(), Code::kNotFound);
  auto del_stale = s->Delete({"volumes", "default", "a"}, rv1);
  EXPECT_EQ(del_stale.status().code(), Code::kConflict);
}

TEST_F(StoreTest, SurvivesReopen) {
  {
    auto s = Open();
    ASSERT_TRUE(s->Create({"volumes", "default", "a"}, Obj("a", 1)).ok());
    ASSERT_TRUE(s->Create({"volumes", "default", "b"}, Obj("b", 1)).ok());
    ASSERT_TRUE(s->Delete({"volumes", "default", "b"}, 0).ok());
  }
  auto s = Open();
  EXPECT_TRUE(s->Get({"volumes", "default", "a"}).ok());
  EXPECT_FALSE(s->Get({"volumes", "default", "b"}).ok());
  EXPECT_EQ(s->CurrentRevision(), 3u);
  // The history survives too: a watch from revision 1 sees the later two changes.
  std::vector<std::string> seen;
  auto w = s->Watch("volumes", "", 1, [&](const StoreEvent& e) { seen.push_back(e.type + ":" + e.key.name); });
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED:b", "DELETED:b"}));
}

TEST_F(StoreTest, ListIsOrderedFilteredAndPaged) {
  auto s = Open();
  for (const char* n : {"c", "a", "b"}) ASSERT_TRUE(s->Create({"volumes", "default", n}, Obj(n, 1)).ok());
  json other = Obj("a", 1);
  other["metadata"]["namespace"] = "other";
  ASSERT_TRUE(s->Create({"volumes", "other", "a"}, other).ok());
  ASSERT_TRUE(s->Create({"images", "default", "x"}, Obj("x", 1)).ok());
  StoreListOptions o;
  o.plural = "volumes";
  o.ns = "default";
  auto r = s->List(o);
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ((*r.items[0])["metadata"]["name"], "a");
  EXPECT_EQ((*r.items[2])["metadata"]["name"], "c");
  o.ns = "";
  EXPECT_EQ(s->List(o).items.size(), 4u);
  o.limit = 2;
  auto p1 = s->List(o);
  ASSERT_EQ(p1.items.size(), 2u);
  ASSERT_FALSE(p1.last_name.empty());
  o.after_name = p1.last_name;
  auto p2 = s->List(o);
  ASSERT_EQ(p2.items.size(), 2u);
  EXPECT_TRUE(p2.last_name.empty());
  EXPECT_EQ((*p2.items[1])["metadata"]["namespace"], "other");
}

TEST_F(StoreTest, WatchSeesEveryConcurrentChangeExactlyOnceInOrder) {
  auto s = Open(100000);
  std::mutex mu;
  std::vector<uint64_t> seen;
  auto w = s->Watch("volumes", "", s->CurrentRevision(), [&](const StoreEvent& e) {
    std::lock_guard lock(mu);
    seen.push_back(e.rv);
  });
  ASSERT_TRUE(w.ok());
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string n = "w" + std::to_string(t) + "-" + std::to_string(i);
        ASSERT_TRUE(s->Create({"volumes", "default", n}, Obj(n, i)).ok());
      }
    });
  }
  for (auto& t : writers) t.join();
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 400u);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_EQ(seen[i], seen[i - 1] + 1);
}

TEST_F(StoreTest, WatchResumesFromVersionAndFiltersNamespace) {
  auto s = Open();
  ASSERT_TRUE(s->Create({"volumes", "default", "a"}, Obj("a", 1)).ok());
  uint64_t mark = s->CurrentRevision();
  ASSERT_TRUE(s->Create({"volumes", "other", "b"}, Obj("b", 1)).ok());
  ASSERT_TRUE(s->Update({"volumes", "default", "a"}, Obj("a", 2), 0).ok());
  std::vector<std::string> seen;
  auto w = s->Watch("volumes", "default", mark, [&](const StoreEvent& e) { seen.push_back(e.type + ":" + e.key.name); });
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(s->Delete({"volumes", "default", "a"}, 0).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"MODIFIED:a", "DELETED:a"}));
  w->reset();
  ASSERT_TRUE(s->Create({"volumes", "default", "c"}, Obj("c", 1)).ok());
  EXPECT_EQ(seen.size(), 2u) << "no delivery after the watch is dropped";
}

TEST_F(StoreTest, CompactedHistoryIsGone) {
  auto s = Open(/*window=*/10);
  for (int i = 0; i < 30; ++i) {
    std::string n = "v" + std::to_string(i);
    ASSERT_TRUE(s->Create({"volumes", "default", n}, Obj(n, i)).ok());
  }
  auto old = s->Watch("volumes", "", 5, [](const StoreEvent&) {});
  EXPECT_EQ(old.status().code(), Code::kGone);
  EXPECT_EQ(s->OldestWatchableRevision(), 20u);
  int n = 0;
  auto ok = s->Watch("volumes", "", 20, [&](const StoreEvent&) { ++n; });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(n, 10);
  auto future = s->Watch("volumes", "", 999, [](const StoreEvent&) {});
  EXPECT_FALSE(future.ok());
}

// Every encoding the store hands out is the dump of the object it goes with: from Get, from List and in watch
// events, after updates and deletes, and after a reopen (where they are made from the file).
TEST_F(StoreTest, EncodingsAreTheObjectsAfterUpdatesDeletesAndReopen) {
  std::vector<StoreEvent> events;
  {
    auto s = Open();
    auto w = s->Watch("volumes", "", s->CurrentRevision(), [&](const StoreEvent& e) { events.push_back(e); });
    ASSERT_TRUE(w.ok());
    for (const char* n : {"a", "b", "c", "d"}) ASSERT_TRUE(s->Create({"volumes", "default", n}, Obj(n, 1)).ok());
    ASSERT_TRUE(s->Update({"volumes", "default", "b"}, Obj("b", 2), 0).ok());
    ASSERT_TRUE(s->Delete({"volumes", "default", "c"}, 0).ok());
    json unicode = Obj("d", 3);
    unicode["spec"]["note"] = "caf\u00e9 \"quoted\" \\ </script>";
    ASSERT_TRUE(s->Update({"volumes", "default", "d"}, unicode, 0).ok());
    ASSERT_EQ(events.size(), 7u);
    for (const auto& e : events) {
      ASSERT_TRUE(e.encoded);
      EXPECT_EQ(*e.encoded, e.object->dump()) << e.type << " " << e.key.name;
    }
    EXPECT_EQ(events[5].type, "DELETED");
    EXPECT_EQ(json::parse(*events[5].encoded)["metadata"]["resourceVersion"], std::to_string(events[5].rv));
  }
  auto s = Open();
  StoreListOptions o;
  o.plural = "volumes";
  auto l = s->List(o);
  ASSERT_EQ(l.items.size(), 3u);
  ASSERT_EQ(l.encoded.size(), 3u);
  for (size_t i = 0; i < l.items.size(); ++i) EXPECT_EQ(*l.encoded[i], l.items[i]->dump());
  EXPECT_EQ(json::parse(*l.encoded[1])["spec"]["v"], 2);
  EXPECT_EQ(json::parse(*l.encoded[2])["spec"]["note"], "caf\u00e9 \"quoted\" \\ </script>");
  auto g = s->GetStored({"volumes", "default", "b"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g->encoded, g->object->dump());
  EXPECT_EQ(s->GetStored({"volumes", "default", "c"}).status().code(), Code::kNotFound);
  // The retained history loaded from the file carries encodings too.
  int n = 0;
  auto w = s->Watch("volumes", "", 0, [&](const StoreEvent& e) {
    ++n;
    EXPECT_EQ(*e.encoded, e.object->dump());
  });
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(n, 7);
}

// A write's completion runs only once its transaction is committed to the file (another connection reads it),
// its watch event is out, and it is visible to readers: the HTTP reply is sent from there.
TEST_F(StoreTest, WriteCompletesOnlyAfterCommitAndPublish) {
  auto s = Open();
  std::atomic<uint64_t> published{0};
  auto w = s->Watch("volumes", "", s->CurrentRevision(), [&](const StoreEvent& e) { published = e.rv; });
  ASSERT_TRUE(w.ok());
  std::string db = (dir_ / "s.db").string();
  constexpr int kWrites = 50;
  std::vector<std::promise<std::string>> checks(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    std::string n = "v" + std::to_string(i);
    // Queued without waiting, so they share group commits.
    s->CreateAsync({"volumes", "default", n}, Obj(n, i), [&, i, n](StatusOr<StoredObject> r) {
      std::string problem;
      if (!r.ok()) {
        problem = r.status().ToString();
      } else {
        uint64_t rv = ResourceVersionOf(*r->object);
        if (published.load() < rv) problem += "event not published before the completion; ";
        if (!s->Get({"volumes", "default", n}).ok()) problem += "not visible to Get; ";
        if (*r->encoded != r->object->dump()) problem += "encoding differs; ";
        sqlite3* other = nullptr;
        sqlite3_open_v2(db.c_str(), &other, SQLITE_OPEN_READONLY, nullptr);
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(other, "SELECT rv FROM objects WHERE plural='volumes' AND ns='default' AND name=?", -1,
                           &st, nullptr);
        sqlite3_bind_text(st, 1, n.c_str(), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW || static_cast<uint64_t>(sqlite3_column_int64(st, 0)) != rv) {
          problem += "not committed to the file; ";
        }
        sqlite3_finalize(st);
        sqlite3_close(other);
      }
      checks[size_t(i)].set_value(problem);
    });
  }
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(checks[size_t(i)].get_future().get(), "") << "write " << i;
  // A refused write completes too, with its error.
  std::promise<Code> dup;
  s->CreateAsync({"volumes", "default", "v0"}, Obj("v0", 9), [&](StatusOr<StoredObject> r) { dup.set_value(r.status().code()); });
  EXPECT_EQ(dup.get_future().get(), Code::kAlreadyExists);
}

// Checkpoints run off the commit path, yet the write-ahead log stays bounded under a steady stream of commits
// (without checkpoints it would hold every page written: 6,000 commits of 3 or more 4 KiB pages, 70 MB or more).
TEST_F(StoreTest, WriteAheadLogStaysBoundedUnderSustainedWrites) {
  SqliteStoreOptions o;
  o.path = (dir_ / "s.db").string();
  o.synchronous_full = false;  // the log's size is the subject here, not fsync
  auto s = std::move(OpenSqliteStore(o)).value();
  for (int i = 0; i < 6000; ++i) {
    std::string n = "v" + std::to_string(i);
    ASSERT_TRUE(s->Create({"volumes", "default", n}, Obj(n, i)).ok());
  }
  EXPECT_LT(std::filesystem::file_size(dir_ / "s.db-wal"), 40u << 20);
  s.reset();
  EXPECT_EQ(Open()->List(StoreListOptions{"volumes"}).items.size(), 6000u);
}

}  // namespace
}  // namespace stratus
