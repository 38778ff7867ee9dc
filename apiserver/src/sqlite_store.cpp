#include "stratus/apiserver/sqlite_store.h"

#include "object_index.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

namespace stratus {
namespace {

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db) + ": " + sql);
    }
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() { return s_; }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void Bind(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }

 private:
  sqlite3_stmt* s_ = nullptr;
};

struct Op {
  enum Kind { kCreate, kUpdate, kDelete } kind;
  ObjectKey key;
  json obj;
  uint64_t expected_rv = 0;
  WriteDone done;
};

// Calls a write's completion; a throwing callback must not take the writer thread down.
void Complete(Op& op, StatusOr<StoredObject> r) {
  try {
    op.done(std::move(r));
  } catch (const std::exception& e) {
    spdlog::error("store write callback failed: key={} error={}", op.key.ToString(), e.what());
  } catch (...) {
    spdlog::error("store write callback failed: key={}", op.key.ToString());
  }
}

EncodedPtr Encode(const json& obj) { return std::make_shared<const std::string>(obj.dump()); }


class SqliteWatch;

class SqliteStore : public Store {
 public:
  explicit SqliteStore(SqliteStoreOptions opts) : opts_(std::move(opts)) {}
  ~SqliteStore() override;

  Status Open();

  void CreateAsync(const ObjectKey& key, json obj, WriteDone done) override {
    Submit(Op::kCreate, key, std::move(obj), 0, std::move(done));
  }
  void UpdateAsync(const ObjectKey& key, json obj, uint64_t expected_rv, WriteDone done) override {
    Submit(Op::kUpdate, key, std::move(obj), expected_rv, std::move(done));
  }
  void DeleteAsync(const ObjectKey& key, uint64_t expected_rv, WriteDone done) override {
    Submit(Op::kDelete, key, json(), expected_rv, std::move(done));
  }

  StatusOr<StoredObject> GetStored(const ObjectKey& key) const override {
    std::shared_lock lock(data_mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return NotFound(key.plural + " \"" + key.name + "\" not found");
    return it->second;
  }

  StoreListResult List(const StoreListOptions& opts) const override;

  uint64_t CurrentRevision() const override {
    std::shared_lock lock(data_mu_);
    return rv_;
  }
  uint64_t OldestWatchableRevision() const override {
    std::lock_guard lock(watch_mu_);
    return history_.empty() ? rv_snapshot_for_history_ : history_.front().rv - 1;
  }

  StatusOr<std::unique_ptr<StoreWatch>> Watch(const std::string& plural, const std::string& ns, uint64_t after_rv,
                                              std::function<void(const StoreEvent&)> sink) override;
  size_t WatchCount() const override {
    std::lock_guard lock(watch_mu_);
    return watchers_.size();
  }

  void Unsubscribe(uint64_t id) {
    std::lock_guard lock(watch_mu_);
    watchers_.erase(id);
  }

 private:
  struct Watcher {
    std::string plural, ns;
    std::function<void(const StoreEvent&)> sink;
  };

  void Submit(Op::Kind kind, const ObjectKey& key, json obj, uint64_t expected_rv, WriteDone done);
  void WriterLoop();
  void RunBatch(std::vector<std::unique_ptr<Op>>& batch);
  bool Exec(const char* sql);

  SqliteStoreOptions opts_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<Stmt> upsert_, delete_, insert_event_, compact_;

  // In-memory view of what is committed. Guarded by data_mu_.
  mutable std::shared_mutex data_mu_;
  std::map<ObjectKey, StoredObject> objects_;
  uint64_t rv_ = 0;

  // History ring and watchers. Guarded by watch_mu_. Events are appended and published under it, so a
  // subscriber that replays history and then registers sees every event exactly once.
  mutable std::mutex watch_mu_;
  std::deque<StoreEvent> history_;
  uint64_t rv_snapshot_for_history_ = 0;  // revision before the first retained event
  std::map<uint64_t, Watcher> watchers_;
  uint64_t next_watch_id_ = 1;

  // Write queue.
  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<std::unique_ptr<Op>> queue_;
  bool stopping_ = false;
  std::thread writer_;
  uint64_t commits_since_compact_ = 0;

  // WAL checkpoints run on a thread of their own, on their own connection, so that copying pages into the database
  // file and fsyncing it never delays a commit (SQLite's automatic checkpoint runs inside the committing call).
  // The writer's WAL hook wakes it once the log holds kCheckpointPages.
  static constexpr int kCheckpointPages = 1000;
  static int OnWalCommit(void* self, sqlite3*, const char*, int pages);
  void CheckpointLoop();
  sqlite3* ckpt_db_ = nullptr;
  std::thread checkpointer_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
};

class SqliteWatch : public StoreWatch {
 public:
  SqliteWatch(SqliteStore* store, uint64_t id) : store_(store), id_(id) {}
  ~SqliteWatch() override { store_->Unsubscribe(id_); }

 private:
  SqliteStore* store_;
  uint64_t id_;
};

bool SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    spdlog::error("sqlite exec failed: sql={} error={}", sql, err ? err : "?");
    sqlite3_free(err);
    return false;
  }
  return true;
}

Status SqliteStore::Open() {
  if (sqlite3_open_v2(opts_.path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return Internal("cannot open store " + opts_.path + ": " + (db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3_busy_timeout(db_, 5000);
  if (!Exec("PRAGMA journal_mode=WAL") ||
      !Exec(opts_.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") ||
      !Exec("CREATE TABLE IF NOT EXISTS objects (plural TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, "
            "rv INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (plural, ns, name)) WITHOUT ROWID") ||
      !Exec("CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, type TEXT NOT NULL, plural TEXT NOT NULL, "
            "ns TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL)")) {
    return Internal("cannot initialise store " + opts_.path + ": " + sqlite3_errmsg(db_));
  }
  try {
    // Load objects.
    {
      Stmt s(db_, "SELECT plural, ns, name, rv, data FROM objects");
      while (sqlite3_step(s.get()) == SQLITE_ROW) {
        ObjectKey k{reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)),
                    reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 1)),
                    reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 2))};
        uint64_t rv = static_cast<uint64_t>(sqlite3_column_int64(s.get(), 3));
        json obj = json::parse(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 4)));
        rv_ = std::max(rv_, rv);
        EncodedPtr enc = Encode(obj);
        objects_.emplace(std::move(k), StoredObject{std::make_shared<const json>(std::move(obj)), std::move(enc)});
      }
    }
    // Load the retained history (newest window).
    {
      Stmt s(db_, "SELECT rv, type, plural, ns, name, data FROM events ORDER BY rv DESC LIMIT ?");
      s.Bind(1, static_cast<int64_t>(opts_.history_window));
      std::deque<StoreEvent> rev;
      while (sqlite3_step(s.get()) == SQLITE_ROW) {
        StoreEvent e;
        e.rv = static_cast<uint64_t>(sqlite3_column_int64(s.get(), 0));
        e.type = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 1));
        e.key = {reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 2)),
                 reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 3)),
                 reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 4))};
        e.object = std::make_shared<const json>(json::parse(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 5))));
        e.encoded = Encode(*e.object);
        rv_ = std::max(rv_, e.rv);
        rev.push_front(std::move(e));
      }
      history_ = std::move(rev);
    }
    rv_snapshot_for_history_ = rv_;
    upsert_ = std::make_unique<Stmt>(db_, "INSERT INTO objects (plural, ns, name, rv, data) VALUES (?, ?, ?, ?, ?) "
                                          "ON CONFLICT (plural, ns, name) DO UPDATE SET rv=excluded.rv, data=excluded.data");
    delete_ = std::make_unique<Stmt>(db_, "DELETE FROM objects WHERE plural=? AND ns=? AND name=?");
    insert_event_ = std::make_unique<Stmt>(db_, "INSERT INTO events (rv, type, plural, ns, name, data) VALUES (?, ?, ?, ?, ?, ?)");
    compact_ = std::make_unique<Stmt>(db_, "DELETE FROM events WHERE rv <= ?");
  } catch (const std::exception& e) {
    return Internal("cannot load store " + opts_.path + ": " + e.what());
  }
  spdlog::debug("store opened: path={} objects={} revision={} history={}", opts_.path, objects_.size(), rv_,
               history_.size());
  // Checkpoints: off the commit path (see CheckpointLoop). Without the second connection SQLite's own stays on.
  if (sqlite3_open_v2(opts_.path.c_str(), &ckpt_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) == SQLITE_OK) {
    sqlite3_wal_hook(db_, &SqliteStore::OnWalCommit, this);  // replaces the automatic checkpoint
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
  } else {
    spdlog::warn("store: no checkpoint connection, checkpoints stay on the commit path: path={} error={}", opts_.path,
                 ckpt_db_ ? sqlite3_errmsg(ckpt_db_) : "out of memory");
    sqlite3_close(ckpt_db_);
    ckpt_db_ = nullptr;
  }
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

int SqliteStore::OnWalCommit(void* self, sqlite3* db, const char*, int pages) {
  auto* s = static_cast<SqliteStore*>(self);
  if (pages >= 8 * kCheckpointPages) {
    // The background checkpoints cannot catch up while commits keep coming: checkpoint here, as SQLite's own
    // automatic checkpoint would, so the log stays bounded.
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (pages >= kCheckpointPages) {
    {
      std::lock_guard lock(s->ckpt_mu_);
      s->ckpt_wanted_ = true;
    }
    s->ckpt_cv_.notify_one();
  }
  return SQLITE_OK;
}

void SqliteStore::CheckpointLoop() {
  std::unique_lock lock(ckpt_mu_);
  while (true) {
    ckpt_cv_.wait(lock, [&] { return ckpt_stop_ || ckpt_wanted_; });
    if (ckpt_stop_) return;
    ckpt_wanted_ = false;
    lock.unlock();
    // PASSIVE: copies what it can without blocking the writer; the next commit after a complete one restarts
    // the log from its beginning, so the WAL stays bounded.
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("store checkpoint failed: path={} error={}", opts_.path, sqlite3_errmsg(ckpt_db_));
    }
    lock.lock();
  }
}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(q_mu_);
    stopping_ = true;
  }
  q_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(ckpt_mu_);
    ckpt_stop_ = true;
  }
  ckpt_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
  if (ckpt_db_) sqlite3_close(ckpt_db_);
  upsert_.reset();
  delete_.reset();
  insert_event_.reset();
  compact_.reset();
  if (db_) sqlite3_close(db_);
}

void SqliteStore::Submit(Op::Kind kind, const ObjectKey& key, json obj, uint64_t expected_rv, WriteDone done) {
  auto op = std::make_unique<Op>();
  op->kind = kind;
  op->key = key;
  op->obj = std::move(obj);
  op->expected_rv = expected_rv;
  op->done = std::move(done);
  {
    std::lock_guard lock(q_mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      op = nullptr;
    }
  }
  if (op) {
    Complete(*op, Status(Code::kUnavailable, "store is shutting down"));
    return;
  }
  q_cv_.notify_one();
}

void SqliteStore::WriterLoop() {
  while (true) {
    std::vector<std::unique_ptr<Op>> batch;
    {
      std::unique_lock lock(q_mu_);
      q_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      while (!queue_.empty() && batch.size() < opts_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    RunBatch(batch);
  }
}

void SqliteStore::RunBatch(std::vector<std::unique_ptr<Op>>& batch) {
  // Overlay of this batch's changes on top of the committed map: later ops in the batch see earlier ones.
  std::map<ObjectKey, StoredObject> overlay;  // null object = deleted in this batch
  std::vector<StoreEvent> events;
  std::vector<StatusOr<StoredObject>> results;
  results.reserve(batch.size());
  uint64_t rv;
  {
    std::shared_lock lock(data_mu_);
    rv = rv_;
  }
  auto lookup = [&](const ObjectKey& k) -> ObjectPtr {
    auto o = overlay.find(k);
    if (o != overlay.end()) return o->second.object;
    std::shared_lock lock(data_mu_);
    auto it = objects_.find(k);
    return it == objects_.end() ? nullptr : it->second.object;
  };

  bool sql_ok = Exec("BEGIN IMMEDIATE");
  for (auto& op : batch) {
    if (!sql_ok) break;
    ObjectPtr cur = lookup(op->key);
    std::string what = op->key.plural + " \"" + op->key.name + "\"";
    if (op->kind == Op::kCreate && cur) {
      results.emplace_back(Status(Code::kAlreadyExists, what + " already exists"));
      continue;
    }
    if (op->kind != Op::kCreate) {
      if (!cur) {
        results.emplace_back(NotFound(what + " not found"));
        continue;
      }
      if (op->expected_rv != 0 && ResourceVersionOf(*cur) != op->expected_rv) {
        results.emplace_back(Status(Code::kConflict, "Operation cannot be fulfilled on " + what +
                                                         ": the object has been modified; please apply your changes "
                                                         "to the latest version and try again"));
        continue;
      }
    }
    uint64_t new_rv = rv + 1;
    json obj = op->kind == Op::kDelete ? *cur : std::move(op->obj);
    obj["metadata"]["resourceVersion"] = std::to_string(new_rv);
    std::string data;
    try {
      data = obj.dump();
    } catch (const json::exception& e) {  // e.g. a string that is not UTF-8 (YAML bodies can carry one)
      results.emplace_back(BadRequest(std::string("the object cannot be stored as JSON: ") + e.what()));
      continue;
    }
    std::string type = op->kind == Op::kCreate ? "ADDED" : op->kind == Op::kUpdate ? "MODIFIED" : "DELETED";
    Stmt& s = op->kind == Op::kDelete ? *delete_ : *upsert_;
    s.Reset();
    s.Bind(1, op->key.plural);
    s.Bind(2, op->key.ns);
    s.Bind(3, op->key.name);
    if (op->kind != Op::kDelete) {
      s.Bind(4, static_cast<int64_t>(new_rv));
      s.Bind(5, data);
    }
    int rc = sqlite3_step(s.get());
    insert_event_->Reset();
    insert_event_->Bind(1, static_cast<int64_t>(new_rv));
    insert_event_->Bind(2, type);
    insert_event_->Bind(3, op->key.plural);
    insert_event_->Bind(4, op->key.ns);
    insert_event_->Bind(5, op->key.name);
    insert_event_->Bind(6, data);
    int rc2 = sqlite3_step(insert_event_->get());
    if (rc != SQLITE_DONE || rc2 != SQLITE_DONE) {
      spdlog::error("store write failed: key={} error={}", op->key.ToString(), sqlite3_errmsg(db_));
      sql_ok = false;
      break;
    }
    rv = new_rv;
    StoredObject stored{std::make_shared<const json>(std::move(obj)), std::make_shared<const std::string>(std::move(data))};
    overlay[op->key] = op->kind == Op::kDelete ? StoredObject{} : stored;
    events.push_back({new_rv, type, op->key, stored.object, stored.encoded});
    results.emplace_back(std::move(stored));
  }
  // Compact the persisted history now and then, inside the same transaction.
  if (sql_ok && ++commits_since_compact_ >= 64 && rv > opts_.history_window) {
    commits_since_compact_ = 0;
    compact_->Reset();
    compact_->Bind(1, static_cast<int64_t>(rv - opts_.history_window));
    sql_ok = sqlite3_step(compact_->get()) == SQLITE_DONE;
  }
  if (sql_ok) sql_ok = Exec("COMMIT");
  if (!sql_ok) {
    Exec("ROLLBACK");
    std::string err = std::string("store write failed: ") + sqlite3_errmsg(db_);
    for (auto& op : batch) Complete(*op, Internal(err));
    return;
  }
  // Durable: make it visible, publish, acknowledge.
  {
    std::unique_lock lock(data_mu_);
    for (auto& [k, v] : overlay) {
      if (v.object) {
        objects_[k] = v;
      } else {
        objects_.erase(k);
      }
    }
    rv_ = rv;
  }
  {
    std::lock_guard lock(watch_mu_);
    for (auto& e : events) {
      for (auto& [id, w] : watchers_) {
        if (!w.plural.empty() && w.plural != e.key.plural) continue;
        if (!w.ns.empty() && w.ns != e.key.ns) continue;
        w.sink(e);
      }
      history_.push_back(std::move(e));
    }
    while (history_.size() > opts_.history_window) history_.pop_front();
  }
  // Acknowledge: each callback typically sends an HTTP reply (from this thread, so no pool thread waits for
  // the commit and the number of writes per group commit is not bounded by the pool size).
  for (size_t i = 0; i < batch.size(); ++i) Complete(*batch[i], std::move(results[i]));
}

StoreListResult SqliteStore::List(const StoreListOptions& opts) const {
  std::shared_lock lock(data_mu_);
  return ListObjects(objects_, opts, rv_);
}

StatusOr<std::unique_ptr<StoreWatch>> SqliteStore::Watch(const std::string& plural, const std::string& ns,
                                                         uint64_t after_rv,
                                                         std::function<void(const StoreEvent&)> sink) {
  std::lock_guard lock(watch_mu_);
  uint64_t oldest = history_.empty() ? rv_snapshot_for_history_ : history_.front().rv - 1;
  uint64_t current;
  {
    std::shared_lock dl(data_mu_);
    current = rv_;
  }
  Status start = CheckWatchStart(after_rv, oldest, current);
  if (!start.ok()) return start;
  ReplayHistory(history_, plural, ns, after_rv, sink);
  uint64_t id = next_watch_id_++;
  watchers_[id] = Watcher{plural, ns, std::move(sink)};
  return std::unique_ptr<StoreWatch>(new SqliteWatch(this, id));
}

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& opts) {
  auto s = std::make_unique<SqliteStore>(opts);
  Status st = s->Open();
  if (!st.ok()) return st;
  return std::unique_ptr<Store>(std::move(s));
}

}  // namespace stratus
