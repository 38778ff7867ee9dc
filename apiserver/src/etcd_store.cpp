#include "stratus/apiserver/etcd_store.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "object_index.h"
#include "stratus/core/base64.h"

namespace stratus {
namespace {

std::string B64(const std::string& s) { return Base64Encode(s); }
std::string Unb64(const json& v) {
  if (!v.is_string()) return "";
  auto d = Base64Decode(v.get<std::string>());
  return d ? *d : "";
}
uint64_t Int(const json& v) {
  if (v.is_string()) return std::strtoull(v.get<std::string>().c_str(), nullptr, 10);
  if (v.is_number_unsigned() || v.is_number_integer()) return v.get<uint64_t>();
  return 0;
}
// The key just after every key with this prefix (etcd's range_end for a prefix).
std::string PrefixEnd(std::string p) {
  while (!p.empty()) {
    unsigned char c = static_cast<unsigned char>(p.back());
    if (c < 0xff) {
      p.back() = static_cast<char>(c + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');
}

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct CurlInit {
  CurlInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

class EtcdStore;

// A local subscription to the store's event feed; destroying it stops delivery.
class EtcdWatch : public StoreWatch {
 public:
  EtcdWatch(EtcdStore* store, uint64_t id) : store_(store), id_(id) {}
  ~EtcdWatch() override;

 private:
  EtcdStore* store_;
  uint64_t id_;
};

class EtcdStore : public Store {
 public:
  explicit EtcdStore(EtcdStoreOptions o) : o_(std::move(o)) {
    static CurlInit init;
    for (int i = 0; i < std::max(1, o_.writers); ++i) writers_.emplace_back([this] { WriterLoop(); });
  }
  ~EtcdStore() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : writers_) t.join();
    feed_stop_ = true;
    if (feed_.joinable()) feed_.join();
  }

  // The cache: every object under the prefix, listed at one revision, then kept current by one etcd watch from the
  // next revision (the feed). Reads are served from it; a write completes once the feed has applied it.
  Status Load() {
    std::map<ObjectKey, StoredObject> objects;
    uint64_t at = 0;
    std::string from = o_.prefix, end = PrefixEnd(o_.prefix);
    while (true) {
      json body = {{"key", B64(from)}, {"range_end", B64(end)}, {"limit", "1000"}};
      if (at) body["revision"] = std::to_string(at);
      auto r = Call("/v3/kv/range", body, o_.timeout_seconds);
      if (!r.ok()) return r.status();
      if (!at) at = Int((*r)["header"]["revision"]);
      const json kvs = r->value("kvs", json::array());
      for (const auto& kv : kvs) {
        std::string key = Unb64(kv["key"]);
        from = key + std::string(1, '\0');
        ObjectKey k;
        if (!ParseKey(key, &k)) continue;
        objects[k] = Decode(Unb64(kv["value"]), Int(kv["mod_revision"]));
      }
      if (!r->value("more", false) || kvs.empty()) break;
    }
    {
      std::unique_lock lock(data_mu_);
      objects_ = std::move(objects);
    }
    {
      std::lock_guard lock(watch_mu_);
      history_.clear();
      floor_ = at;
    }
    SetRevision(at);
    return Status::Ok();
  }
  void StartFeed() {
    feed_ = std::thread([this] { Feed(); });
  }

  bool ParseKey(const std::string& key, ObjectKey* k) const {
    if (key.compare(0, o_.prefix.size(), o_.prefix) != 0) return false;
    std::string rest = key.substr(o_.prefix.size());  // plural/ns/name
    size_t a = rest.find('/'), b = rest.find('/', a + 1);
    if (a == std::string::npos || b == std::string::npos) return false;
    *k = {rest.substr(0, a), rest.substr(a + 1, b - a - 1), rest.substr(b + 1)};
    return true;
  }
  void SetRevision(uint64_t rv) {
    {
      std::lock_guard lock(rv_mu_);
      rv_ = std::max(rv_, rv);
    }
    SetPublished(rv);
  }
  // Revision whose event every subscriber has been given (what a completing write waits for).
  void SetPublished(uint64_t rv) {
    {
      std::lock_guard lock(rv_mu_);
      published_ = std::max(published_, rv);
    }
    rv_cv_.notify_all();
  }
  // Waits until the feed has applied revision `rv` (this server's own write), so that a read after the write's
  // completion sees it and its watch event has been published, as the Store contract says.
  void AwaitRevision(uint64_t rv) {
    std::unique_lock lock(rv_mu_);
    if (!rv_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return published_ >= rv || feed_stop_.load(); })) {
      spdlog::warn("etcd store: revision {} not seen on the watch within 30 s (cache at {})", rv, published_);
    }
  }

  // POST `path` with `body` to the first endpoint that answers; the parsed answer, or the error.
  StatusOr<json> Call(const std::string& path, const json& body, int timeout_seconds) const {
    std::string payload = body.dump();
    Status last = Status(Code::kUnavailable, "no etcd endpoint configured");
    for (const auto& ep : o_.endpoints) {
      CURL* c = Handle();
      std::string out;
      std::string url = ep + path;
      curl_easy_reset(c);
      curl_easy_setopt(c, CURLOPT_URL, url.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
      curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(timeout_seconds));
      CURLcode rc = Perform(c);
      if (rc != CURLE_OK) {
        last = Status(Code::kUnavailable, "etcd at " + ep + ": " + curl_easy_strerror(rc));
        continue;  // the next endpoint
      }
      long code = 0;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
      json j = json::parse(out, nullptr, false);
      if (code != 200) {
        std::string msg = j.is_object() ? j.value("message", j.value("error", out)) : out;
        int grpc = j.is_object() ? j.value("code", 0) : 0;
        if (grpc == 11 || msg.find("compacted") != std::string::npos) return Status(Code::kGone, "etcd: " + msg);
        if (code >= 500 && grpc == 14) {  // Unavailable: no leader; another member may have one
          last = Status(Code::kUnavailable, "etcd at " + ep + ": " + msg);
          continue;
        }
        return Status(code >= 500 ? Code::kUnavailable : Code::kInternal, "etcd at " + ep + ": " + msg);
      }
      if (j.is_discarded()) return Internal("etcd at " + ep + " answered something that is not JSON");
      return j;
    }
    return last;
  }

  // What every request to etcd sets (a JSON POST, TLS settings, a connect timeout) before it runs it.
  CURLcode Perform(CURL* c) const {
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    Tls(c);
    struct curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    return rc;
  }

  void Tls(CURL* c) const {
    if (!o_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o_.ca_file.c_str());
    if (!o_.cert_file.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, o_.cert_file.c_str());
    if (!o_.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, o_.key_file.c_str());
  }

  std::string KeyOf(const ObjectKey& k) const { return o_.prefix + k.plural + "/" + k.ns + "/" + k.name; }

  // An object as stored (value) at `rv`: resourceVersion set, encoded once.
  static StoredObject Decode(const std::string& value, uint64_t rv) {
    json obj = json::parse(value, nullptr, false);
    if (obj.is_discarded() || !obj.is_object()) obj = json::object();
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    obj["metadata"]["resourceVersion"] = std::to_string(rv);
    auto enc = std::make_shared<const std::string>(obj.dump());
    return {std::make_shared<const json>(std::move(obj)), enc};
  }
  static std::string Value(json obj) {
    if (obj.contains("metadata") && obj["metadata"].is_object()) obj["metadata"].erase("resourceVersion");
    return obj.dump();
  }

  // --- writes ----------------------------------------------------------------------------------------------------

  void Enqueue(std::function<void()> f) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(f));
    }
    cv_.notify_one();
  }
  void WriterLoop() {
    while (true) {
      std::function<void()> f;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
    }
  }

  // A transaction: `compare`, then put `value` (or delete, when `value` is null) on success; on failure, reads the
  // key to say why. Returns the etcd answer.
  StatusOr<json> Txn(const std::string& key, const json& compare, const std::string* value) const {
    json success = value != nullptr ? json::array({{{"request_put", {{"key", B64(key)}, {"value", B64(*value)}}}}})
                                    : json::array({{{"request_delete_range", {{"key", B64(key)}, {"prev_kv", true}}}}});
    json body = {{"compare", json::array({compare})},
                 {"success", success},
                 {"failure", json::array({{{"request_range", {{"key", B64(key)}}}}})}};
    return Call("/v3/kv/txn", body, o_.timeout_seconds);
  }
  static const json* FailedKv(const json& txn) {
    const json& r = txn["responses"];
    if (!r.is_array() || r.empty()) return nullptr;
    const json& rr = r[0].value("response_range", json::object());
    if (!rr.contains("kvs") || !rr["kvs"].is_array() || rr["kvs"].empty()) return nullptr;
    return &rr["kvs"][0];
  }

  void CreateAsync(const ObjectKey& key, json obj, WriteDone done) override {
    Enqueue([this, key, obj = std::move(obj), done = std::move(done)]() mutable {
      std::string k = KeyOf(key);
      std::string value = Value(obj);
      json cmp = {{"key", B64(k)}, {"result", "EQUAL"}, {"target", "CREATE"}, {"create_revision", "0"}};
      auto r = Txn(k, cmp, &value);
      if (!r.ok()) return done(r.status());
      if (!(*r).value("succeeded", false)) {
        return done(Status(Code::kAlreadyExists, key.plural + " \"" + key.name + "\" already exists"));
      }
      uint64_t rev = Int((*r)["header"]["revision"]);
      AwaitRevision(rev);
      done(Decode(value, rev));
    });
  }

  void UpdateAsync(const ObjectKey& key, json obj, uint64_t expected_rv, WriteDone done) override {
    Enqueue([this, key, obj = std::move(obj), expected_rv, done = std::move(done)]() mutable {
      std::string k = KeyOf(key);
      std::string value = Value(obj);
      json cmp = expected_rv ? json{{"key", B64(k)}, {"result", "EQUAL"}, {"target", "MOD"},
                                    {"mod_revision", std::to_string(expected_rv)}}
                             : json{{"key", B64(k)}, {"result", "GREATER"}, {"target", "CREATE"},
                                    {"create_revision", "0"}};
      auto r = Txn(k, cmp, &value);
      if (!r.ok()) return done(r.status());
      if (!(*r).value("succeeded", false)) return done(Refused(key, *r));
      uint64_t rev = Int((*r)["header"]["revision"]);
      AwaitRevision(rev);
      done(Decode(value, rev));
    });
  }

  void DeleteAsync(const ObjectKey& key, uint64_t expected_rv, WriteDone done) override {
    Enqueue([this, key, expected_rv, done = std::move(done)]() mutable {
      std::string k = KeyOf(key);
      json cmp = expected_rv ? json{{"key", B64(k)}, {"result", "EQUAL"}, {"target", "MOD"},
                                    {"mod_revision", std::to_string(expected_rv)}}
                             : json{{"key", B64(k)}, {"result", "GREATER"}, {"target", "CREATE"},
                                    {"create_revision", "0"}};
      auto r = Txn(k, cmp, nullptr);
      if (!r.ok()) return done(r.status());
      if (!(*r).value("succeeded", false)) return done(Refused(key, *r));
      const json& resp = (*r)["responses"][0].value("response_delete_range", json::object());
      if (!resp.contains("prev_kvs") || resp["prev_kvs"].empty()) {
        return done(NotFound(key.plural + " \"" + key.name + "\" not found"));
      }
      // The last state, carrying the deletion's revision (as the deletion's watch event shows it).
      uint64_t rev = Int((*r)["header"]["revision"]);
      AwaitRevision(rev);
      done(Decode(Unb64(resp["prev_kvs"][0]["value"]), rev));
    });
  }

  Status Refused(const ObjectKey& key, const json& txn) const {
    if (FailedKv(txn) == nullptr) return NotFound(key.plural + " \"" + key.name + "\" not found");
    return Status(Code::kConflict, "the object has been modified (stale resourceVersion)");
  }

  // --- reads -----------------------------------------------------------------------------------------------------

  StatusOr<StoredObject> GetStored(const ObjectKey& key) const override {
    std::shared_lock lock(data_mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return NotFound(key.plural + " \"" + key.name + "\" not found");
    return it->second;
  }

  StoreListResult List(const StoreListOptions& opts) const override {
    std::shared_lock lock(data_mu_);
    return ListObjects(objects_, opts, CurrentRevision());
  }

  uint64_t CurrentRevision() const override {
    std::lock_guard lock(rv_mu_);
    return rv_;
  }
  uint64_t OldestWatchableRevision() const override {
    std::lock_guard lock(watch_mu_);
    return history_.empty() ? floor_ : history_.front().rv - 1;
  }

  // --- watch: local subscribers of the feed, replayed from the kept history ---------------------------------------

  StatusOr<std::unique_ptr<StoreWatch>> Watch(const std::string& plural, const std::string& ns, uint64_t after_rv,
                                              std::function<void(const StoreEvent&)> sink) override {
    std::lock_guard lock(watch_mu_);
    uint64_t oldest = history_.empty() ? floor_ : history_.front().rv - 1;
    Status start = CheckWatchStart(after_rv, oldest, CurrentRevision());
    if (!start.ok()) return start;
    ReplayHistory(history_, plural, ns, after_rv, sink);
    uint64_t id = next_watch_++;
    watchers_[id] = Watcher{plural, ns, std::move(sink)};
    return std::unique_ptr<StoreWatch>(new EtcdWatch(this, id));
  }
  void Unwatch(uint64_t id) {
    std::lock_guard lock(watch_mu_);
    watchers_.erase(id);
  }

  struct StreamState {
    EtcdStore* store;
    std::string buf;
    bool gone = false;
  };

  static size_t OnStream(char* data, size_t size, size_t n, void* p) {
    auto* st = static_cast<StreamState*>(p);
    st->buf.append(data, size * n);
    size_t nl;
    while ((nl = st->buf.find('\n')) != std::string::npos) {
      std::string line = st->buf.substr(0, nl);
      st->buf.erase(0, nl + 1);
      st->store->OnLine(st, line);
    }
    return st->store->feed_stop_ ? 0 : size * n;  // 0 aborts the transfer
  }
  static int OnProgress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<StreamState*>(p)->store->feed_stop_ ? 1 : 0;
  }

  // One line of the feed: apply each event to the cache, publish it to the subscribers, then advance the revision.
  void OnLine(StreamState* st, const std::string& line) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("result")) return;
    const json& res = j["result"];
    if (Int(res.value("compact_revision", json("0"))) > 0) {
      st->gone = true;
      return;
    }
    for (const auto& ev : res.value("events", json::array())) {
      const json& kv = ev["kv"];
      StoreEvent e;
      if (!ParseKey(Unb64(kv["key"]), &e.key)) continue;
      e.rv = Int(kv["mod_revision"]);
      if (e.rv <= CurrentRevision()) continue;  // replayed after a resume
      bool deleted = ev.value("type", "PUT") == "DELETE";
      StoredObject s = deleted ? Decode(Unb64(ev.value("prev_kv", json::object()).value("value", json(""))), e.rv)
                               : Decode(Unb64(kv["value"]), e.rv);
      e.type = deleted ? "DELETED" : (Int(kv["create_revision"]) == e.rv ? "ADDED" : "MODIFIED");
      e.object = s.object;
      e.encoded = s.encoded;
      {
        // The object and the cache's revision change together: a list is consistent at the revision it reports.
        std::unique_lock lock(data_mu_);
        if (deleted) {
          objects_.erase(e.key);
        } else {
          objects_[e.key] = s;
        }
        std::lock_guard rl(rv_mu_);
        rv_ = std::max(rv_, e.rv);
      }
      {
        std::lock_guard lock(watch_mu_);
        for (auto& [id, w] : watchers_) {
          if (!w.plural.empty() && w.plural != e.key.plural) continue;
          if (!w.ns.empty() && w.ns != e.key.ns) continue;
          w.sink(e);
        }
        history_.push_back(e);
        while (history_.size() > kHistory) history_.pop_front();
      }
      SetPublished(e.rv);
    }
  }

  void Feed() {
    size_t ep = 0;
    while (!feed_stop_) {
      StreamState st{this, "", false};
      json body = {{"create_request",
                    {{"key", B64(o_.prefix)},
                     {"range_end", B64(PrefixEnd(o_.prefix))},
                     {"start_revision", std::to_string(CurrentRevision() + 1)},
                     {"prev_kv", true}}}};
      std::string payload = body.dump();
      CURL* c = curl_easy_init();
      std::string url = o_.endpoints[ep % o_.endpoints.size()] + "/v3/watch";
      curl_easy_setopt(c, CURLOPT_URL, url.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnStream);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, &st);
      CURLcode rc = Perform(c);
      curl_easy_cleanup(c);
      if (feed_stop_) break;
      if (st.gone) {
        // The revision to resume from was compacted away: list everything again (subscribers may have missed
        // changes: they are told by the history floor, and resume with 410).
        spdlog::warn("etcd store: watch compacted at revision {}; reloading", CurrentRevision());
        Status l = Load();
        if (!l.ok()) spdlog::warn("etcd store: reload failed: {}", l.message());
        continue;
      }
      spdlog::debug("etcd store: watch ended: endpoint={} error={}; resuming after {}", url, curl_easy_strerror(rc),
                    CurrentRevision());
      ++ep;  // another member, if there is one
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  size_t WatchCount() const override {
    std::lock_guard lock(watch_mu_);
    return watchers_.size();
  }

 private:
  static CURL* Handle() {
    struct Holder {
      CURL* c = curl_easy_init();
      ~Holder() { curl_easy_cleanup(c); }
    };
    thread_local Holder h;
    return h.c;
  }

  EtcdStoreOptions o_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> writers_;

  static constexpr size_t kHistory = 10000;  // changes kept for watches to resume from (as --watch-history)
  struct Watcher {
    std::string plural, ns;
    std::function<void(const StoreEvent&)> sink;
  };
  mutable std::shared_mutex data_mu_;
  std::map<ObjectKey, StoredObject> objects_;
  mutable std::mutex rv_mu_;
  std::condition_variable rv_cv_;
  uint64_t rv_ = 0;
  uint64_t published_ = 0;
  mutable std::mutex watch_mu_;
  std::deque<StoreEvent> history_;
  uint64_t floor_ = 0;
  std::map<uint64_t, Watcher> watchers_;
  uint64_t next_watch_ = 1;
  std::atomic<bool> feed_stop_{false};
  std::thread feed_;
};

EtcdWatch::~EtcdWatch() { store_->Unwatch(id_); }

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenEtcdStore(const EtcdStoreOptions& opts) {
  if (opts.endpoints.empty()) return BadRequest("--etcd-endpoints: at least one URL is needed");
  for (const auto& e : opts.endpoints) {
    if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0) {
      return BadRequest("--etcd-endpoints: \"" + e + "\" must start with http:// or https://");
    }
  }
  auto s = std::make_unique<EtcdStore>(opts);
  Status l = s->Load();
  if (!l.ok()) return l;
  s->StartFeed();
  return std::unique_ptr<Store>(std::move(s));
}

}  // namespace stratus
