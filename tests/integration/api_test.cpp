// The API server over real HTTP: CRUD and status codes, discovery, watch from a resourceVersion, crash
// safety under concurrent writers, and a corpus of bad input that must get clear 4xx answers.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <map>
#include <set>
#include <sstream>

#include "harness.h"

namespace stratus::testing {
namespace {

const char* kNs = "/apis/stratus.io/v1/namespaces/default";

std::string VolumeJson(const std::string& name, const std::string& size = "1Gi") {
  return json{{"apiVersion", "stratus.io/v1"},
              {"kind", "Volume"},
              {"metadata", {{"name", name}, {"labels", {{"app", "db"}}}}},
              {"spec", {{"size", size}}}}
      .dump();
}

std::string GroupJson(const std::string& name) {
  return json{{"apiVersion", "stratus.io/v1"},
              {"kind", "SecurityGroup"},
              {"metadata", {{"name", name}}},
              {"spec", {{"description", "group " + name}}}}
      .dump();
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data");
    ASSERT_TRUE(server_->Start()) << server_->log();
  }
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ApiTest, CrudRoundTripWithKubernetesStatusCodes) {
  auto c = server_->Http("POST", std::string(kNs) + "/volumes", VolumeJson("data-1"));
  ASSERT_EQ(c.code, 201) << c.body;
  json created = c.Json();
  EXPECT_EQ(created["metadata"]["generation"], 1);

  auto dup = server_->Http("POST", std::string(kNs) + "/volumes", VolumeJson("data-1"));
  EXPECT_EQ(dup.code, 409);
  EXPECT_EQ(dup.Json()["reason"], "AlreadyExists");

  auto g = server_->Http("GET", std::string(kNs) + "/volumes/data-1");
  ASSERT_EQ(g.code, 200);
  EXPECT_EQ(g.Json()["metadata"]["uid"], created["metadata"]["uid"]);

  auto p = server_->Http("PATCH", std::string(kNs) + "/volumes/data-1", R"({"spec":{"size":"2Gi"}})",
                         "application/merge-patch+json");
  ASSERT_EQ(p.code, 200) << p.body;
  EXPECT_EQ(p.Json()["metadata"]["generation"], 2);

  // PUT with the stale version from creation is a conflict.
  json stale = created;
  stale["spec"]["size"] = "5Gi";
  auto put = server_->Http("PUT", std::string(kNs) + "/volumes/data-1", stale.dump());
  EXPECT_EQ(put.code, 409) << put.body;
  EXPECT_EQ(put.Json()["reason"], "Conflict");

  auto st = server_->Http("PUT", std::string(kNs) + "/volumes/data-1/status",
                          json{{"status", {{"phase", "Available"}}}}.dump());
  ASSERT_EQ(st.code, 200) << st.body;
  EXPECT_EQ(st.Json()["status"]["phase"], "Available");
  EXPECT_EQ(st.Json()["spec"]["size"], "2Gi");

  auto l = server_->Http("GET", std::string(kNs) + "/volumes?labelSelector=app%3Ddb");
  ASSERT_EQ(l.code, 200);
  EXPECT_EQ(l.Json()["kind"], "VolumeList");
  EXPECT_EQ(l.Json()["items"].size(), 1u);
  auto lf = server_->Http("GET", std::string(kNs) + "/volumes?fieldSelector=metadata.name%3Dother");
  EXPECT_EQ(lf.Json()["items"].size(), 0u);
  auto all = server_->Http("GET", "/apis/stratus.io/v1/volumes");
  EXPECT_EQ(all.Json()["items"].size(), 1u);

  auto d = server_->Http("DELETE", std::string(kNs) + "/volumes/data-1");
  EXPECT_EQ(d.code, 200);
  EXPECT_EQ(server_->Http("GET", std::string(kNs) + "/volumes/data-1").code, 404);
  EXPECT_EQ(server_->Http("DELETE", std::string(kNs) + "/volumes/data-1").code, 404);
}

TEST_F(ApiTest, YamlBodiesAndClusterScopedKinds) {
  std::string yaml = "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata:\n  name: m1.test\nspec:\n  vcpus: 2\n"
                     "  memoryMiB: 512\n";
  auto c = server_->Http("POST", "/apis/stratus.io/v1/instancetypes", yaml, "application/yaml");
  ASSERT_EQ(c.code, 201) << c.body;
  EXPECT_FALSE(c.Json()["metadata"].contains("namespace"));
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/instancetypes/m1.test").code, 200);
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/namespaces/default").code, 200);
}

TEST_F(ApiTest, DiscoveryHealthAndMetrics) {
  auto groups = server_->Http("GET", "/apis");
  ASSERT_EQ(groups.code, 200);
  EXPECT_EQ(groups.Json()["kind"], "APIGroupList");
  EXPECT_EQ(groups.Json()["groups"][0]["name"], "stratus.io");
  auto res = server_->Http("GET", "/apis/stratus.io/v1");
  ASSERT_EQ(res.code, 200);
  std::set<std::string> names;
  json resources = res.Json()["resources"];
  for (const auto& r : resources) names.insert(r["name"].get<std::string>());
  for (const char* n : {"instances", "volumes", "networks", "images", "keypairs", "securitygroups", "events", "nodes",
                        "instancetypes", "namespaces", "instances/status"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  EXPECT_EQ(server_->Http("GET", "/readyz").code, 200);
  server_->Http("GET", std::string(kNs) + "/volumes/missing");
  // A request is counted once its reply is on its way, so the count may trail the reply by a moment.
  HttpResult m;
  EXPECT_TRUE(Eventually([&] {
    m = server_->Http("GET", "/metrics");
    return m.body.find("stratus_apiserver_requests_total{verb=\"GET\",resource=\"volumes\",code=\"404\"} 1") !=
           std::string::npos;
  }, 10)) << m.body;
  ASSERT_EQ(m.code, 200);
  EXPECT_NE(m.body.find("stratus_apiserver_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("stratus_apiserver_watches"), std::string::npos);
}

// Parses a finished watch body into "TYPE:name" strings.
std::vector<std::string> WatchLines(const std::string& body) {
  std::vector<std::string> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json e = json::parse(line);
    out.push_back(e["type"].get<std::string>() + ":" + e["object"]["metadata"]["name"].get<std::string>());
  }
  return out;
}

// Security groups: no cluster reconciler writes their status, so the watch holds exactly the API writes below.
TEST_F(ApiTest, WatchFromVersionSeesExactlyTheLaterChanges) {
  ASSERT_EQ(server_->Http("POST", std::string(kNs) + "/securitygroups", GroupJson("before")).code, 201);
  std::string rv = server_->Http("GET", std::string(kNs) + "/securitygroups").Json()["metadata"]["resourceVersion"];
  ASSERT_EQ(server_->Http("POST", std::string(kNs) + "/securitygroups", GroupJson("after")).code, 201);
  ASSERT_EQ(server_->Http("PATCH", std::string(kNs) + "/securitygroups/before", R"({"spec":{"description":"changed"}})",
                          "application/merge-patch+json")
                .code,
            200);
  // Concurrently with the open watch: more writes from several threads.
  std::thread writers([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < 5; ++i) {
          server_->Http("POST", std::string(kNs) + "/securitygroups", GroupJson("c" + std::to_string(t) + "-" + std::to_string(i)));
        }
      });
    }
    for (auto& t : ts) t.join();
    server_->Http("DELETE", std::string(kNs) + "/securitygroups/after");
  });
  auto w = server_->Http("GET", std::string(kNs) + "/securitygroups?watch=1&timeoutSeconds=3&resourceVersion=" + rv, "", "");
  writers.join();
  ASSERT_EQ(w.code, 200) << w.body;
  auto lines = WatchLines(w.body);
  ASSERT_EQ(lines.size(), 23u) << w.body;
  EXPECT_EQ(lines[0], "ADDED:after");
  EXPECT_EQ(lines[1], "MODIFIED:before");
  EXPECT_EQ(lines.back(), "DELETED:after");
  std::set<std::string> unique(lines.begin(), lines.end());
  EXPECT_EQ(unique.size(), lines.size()) << "no duplicated event";
  // The versions in the stream strictly increase.
  std::istringstream in(w.body);
  std::string line;
  uint64_t last = 0;
  while (std::getline(in, line)) {
    uint64_t v = std::stoull(json::parse(line)["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(v, last);
    last = v;
  }
}

TEST_F(ApiTest, WatchWithoutVersionStartsWithCurrentObjectsAndTooOldIsGone) {
  // Security groups: no reconciler in the server writes them, so nothing but this test changes them (a volume
  // gets a MODIFIED from volume placement within the watch window when the machine is busy).
  ASSERT_EQ(server_->Http("POST", std::string(kNs) + "/securitygroups", GroupJson("a")).code, 201);
  auto w = server_->Http("GET", std::string(kNs) + "/securitygroups?watch=true&timeoutSeconds=1", "", "");
  ASSERT_EQ(w.code, 200);
  EXPECT_EQ(WatchLines(w.body), std::vector<std::string>{"ADDED:a"});
  // A small history window on a second server: old versions are gone.
  TempDir d2;
  ServerProcess small(d2.path(), {"--watch-history", "5"});
  ASSERT_TRUE(small.Start()) << small.log();
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(small.Http("POST", std::string(kNs) + "/volumes", VolumeJson("v" + std::to_string(i))).code, 201);
  }
  auto gone = small.Http("GET", std::string(kNs) + "/volumes?watch=1&resourceVersion=2&timeoutSeconds=1", "", "");
  EXPECT_EQ(gone.code, 410) << gone.body;
  EXPECT_EQ(gone.Json()["reason"], "Expired");
}

// Lists and watch events are spliced from each object's stored JSON: after creates, patches and deletes, a list
// (whole, paged, by label, across namespaces) holds exactly what GET returns for each object, and a watch's events
// carry the objects as written.
TEST_F(ApiTest, ListsAndWatchEventsCarryTheStoredObjects) {
  std::string rv0 = server_->Http("GET", std::string(kNs) + "/securitygroups").Json()["metadata"]["resourceVersion"];
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/namespaces", R"({"metadata":{"name":"team"}})").code, 201);
  for (int i = 0; i < 7; ++i) {
    json g = json::parse(GroupJson("g" + std::to_string(i)));
    g["metadata"]["labels"] = {{"tier", i % 2 ? "db" : "web"}};
    std::string ns = i < 5 ? kNs : "/apis/stratus.io/v1/namespaces/team";
    ASSERT_EQ(server_->Http("POST", ns + "/securitygroups", g.dump()).code, 201);
  }
  ASSERT_EQ(server_->Http("PATCH", std::string(kNs) + "/securitygroups/g1", R"({"spec":{"description":"café \"x\""}})",
                          "application/merge-patch+json")
                .code,
            200);
  ASSERT_EQ(server_->Http("DELETE", std::string(kNs) + "/securitygroups/g2").code, 200);

  auto all = server_->Http("GET", "/apis/stratus.io/v1/securitygroups");
  ASSERT_EQ(all.code, 200) << all.body;
  json items = all.Json()["items"];
  ASSERT_EQ(items.size(), 6u);
  EXPECT_EQ(all.Json()["kind"], "SecurityGroupList");
  for (const auto& item : items) {
    std::string path = "/apis/stratus.io/v1/namespaces/" + item["metadata"]["namespace"].get<std::string>() +
                       "/securitygroups/" + item["metadata"]["name"].get<std::string>();
    auto g = server_->Http("GET", path);
    ASSERT_EQ(g.code, 200);
    EXPECT_EQ(g.Json(), item);
  }
  EXPECT_EQ(items[1]["spec"]["description"], "café \"x\"");
  // Paged by 2 across namespaces: the same objects in the same order.
  json paged = json::array();
  std::string cont;
  for (int page = 0; page < 10; ++page) {
    auto p = server_->Http("GET", "/apis/stratus.io/v1/securitygroups?limit=2" +
                                      (cont.empty() ? std::string() : "&continue=" + web::uri::encode_data_string(cont)));
    ASSERT_EQ(p.code, 200) << p.body;
    json page_json = p.Json();
    for (const auto& it : page_json["items"]) paged.push_back(it);
    cont = page_json["metadata"].value("continue", "");
    if (cont.empty()) break;
  }
  EXPECT_EQ(paged, items);
  auto db = server_->Http("GET", std::string(kNs) + "/securitygroups?labelSelector=tier%3Ddb");
  ASSERT_EQ(db.code, 200);
  std::vector<std::string> names;
  json db_json = db.Json();
  for (const auto& it : db_json["items"]) names.push_back(it["metadata"]["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"g1", "g3"}));
  EXPECT_EQ(server_->Http("GET", std::string(kNs) + "/securitygroups?limit=x").code, 400);

  // The watch from before the writes: each event's object is whole JSON with its own version, and the last
  // event of every surviving object is what GET returns now.
  auto w = server_->Http("GET", "/apis/stratus.io/v1/securitygroups?watch=1&timeoutSeconds=1&resourceVersion=" + rv0,
                         "", "");
  ASSERT_EQ(w.code, 200);
  std::istringstream in(w.body);
  std::string line;
  std::map<std::string, json> last;
  int events = 0;
  while (std::getline(in, line)) {
    json e = json::parse(line);
    ++events;
    last[e["object"]["metadata"]["name"].get<std::string>()] = e;
  }
  EXPECT_EQ(events, 9);
  EXPECT_EQ(last["g2"]["type"], "DELETED");
  EXPECT_EQ(last["g1"]["type"], "MODIFIED");
  for (const auto& item : items) EXPECT_EQ(last[item["metadata"]["name"].get<std::string>()]["object"], item);
}

TEST_F(ApiTest, NamespaceDeletionRemovesContents) {
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/namespaces", R"({"metadata":{"name":"team"}})").code, 201);
  ASSERT_EQ(server_->Http("POST", "/apis/stratus.io/v1/namespaces/team/volumes", VolumeJson("x")).code, 201);
  ASSERT_EQ(server_->Http("DELETE", "/apis/stratus.io/v1/namespaces/team").code, 200);
  int code = 0;
  for (int i = 0; i < 100 && code != 404; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    code = server_->Http("GET", "/apis/stratus.io/v1/namespaces/team").code;
  }
  EXPECT_EQ(code, 404);
  EXPECT_EQ(server_->Http("GET", "/apis/stratus.io/v1/namespaces/team/volumes/x").code, 404);
}

TEST_F(ApiTest, Kill9DuringConcurrentWritesLosesNoAcknowledgedWrite) {
  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 2000 && !stop; ++i) {
        std::string name = "w" + std::to_string(t) + "-" + std::to_string(i);
        auto r = server_->Http("POST", std::string(kNs) + "/volumes", VolumeJson(name), "application/json", 5);
        if (r.code == 201) {
          std::lock_guard lock(mu);
          acked.push_back(name);
        } else if (r.code == 0) {
          break;  // server gone
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  int st = server_->Kill(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(st));
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GT(acked.size(), 20u) << "the writers got some writes in before the kill";

  ASSERT_TRUE(server_->Start()) << server_->log();
  auto l = server_->Http("GET", std::string(kNs) + "/volumes");
  ASSERT_EQ(l.code, 200);
  std::set<std::string> present;
  json items = l.Json()["items"];
  for (const auto& item : items) {
    // No torn object: every stored object is whole.
    ASSERT_TRUE(item["spec"].contains("size")) << item.dump();
    ASSERT_FALSE(item["metadata"]["uid"].get<std::string>().empty());
    present.insert(item["metadata"]["name"].get<std::string>());
  }
  size_t lost = 0;
  for (const auto& n : acked) lost += present.count(n) ? 0 : 1;
  EXPECT_EQ(lost, 0u) << "acknowledged writes lost, of " << acked.size() << "; present after restart: "
                      << present.size();
  // The restarted server keeps serving writes with larger versions.
  auto c = server_->Http("POST", std::string(kNs) + "/volumes", VolumeJson("after-restart"));
  ASSERT_EQ(c.code, 201);
  EXPECT_GT(std::stoull(c.Json()["metadata"]["resourceVersion"].get<std::string>()),
            std::stoull(l.Json()["metadata"]["resourceVersion"].get<std::string>()));
}

TEST_F(ApiTest, SixtyFourConcurrentWritersAllServed) {
  // More writers than cpprestsdk has pool threads: no handler may block on work that needs another pool thread.
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 64; ++t) {
    writers.emplace_back([&, t] {
      // One keep-alive connection per writer, all writing at once.
      web::http::client::http_client c(server_->url(), TestHttpConfig(20));
      for (int i = 0; i < 20; ++i) {
        try {
          web::http::http_request req(web::http::methods::POST);
          req.set_request_uri(std::string(kNs) + "/volumes");
          req.headers().add("Authorization", "Bearer " + server_->token());
          req.set_body(VolumeJson("c" + std::to_string(t) + "-" + std::to_string(i)), "application/json");
          auto r = c.request(req).get();
          r.extract_vector().get();
          (r.status_code() == 201 ? ok : failed)++;
        } catch (const std::exception&) {
          failed++;
          return;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(ok.load(), 1280);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(server_->Http("GET", "/healthz").code, 200);
}

TEST_F(ApiTest, SigtermShutsDownGracefully) {
  ASSERT_EQ(server_->Http("POST", std::string(kNs) + "/volumes", VolumeJson("a")).code, 201);
  int st = server_->Kill(SIGTERM);
  ASSERT_TRUE(WIFEXITED(st)) << server_->log();
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_NE(server_->log().find("stopped"), std::string::npos);
}

struct BadCase {
  std::string name, method, path, body, content_type;
  int want_code;
  std::string want_text;  // must appear in the message
};

TEST_F(ApiTest, BadInputCorpusGetsClear4xxAndServerKeepsServing) {
  std::string deep_json(10000, '[');
  deep_json += std::string(10000, ']');
  std::string deep_yaml;
  for (int i = 0; i < 10000; ++i) deep_yaml += "[";
  std::string big = VolumeJson("big");
  big.insert(big.size() - 1, ",\"pad\":\"" + std::string(10 * 1024 * 1024, 'x') + "\"");
  std::string vols = std::string(kNs) + "/volumes";
  std::vector<BadCase> cases = {
      {"malformed json", "POST", vols, "{\"metadata\":", "application/json", 400, ""},
      {"malformed yaml", "POST", vols, "metadata: [unclosed\n  name: x", "application/yaml", 400, ""},
      {"wrong type", "POST", vols, R"({"metadata":{"name":"w"},"spec":{"size":5}})", "application/json", 422,
       "spec.size"},
      {"unknown top-level field", "POST", vols, R"({"metadata":{"name":"u"},"spec":{"size":"1Gi"},"bogus":1})",
       "application/json", 422, "bogus"},
      {"unknown spec field", "POST", vols, R"({"metadata":{"name":"u"},"spec":{"size":"1Gi","colour":"red"}})",
       "application/json", 422, "spec.colour"},
      {"name with slash", "POST", vols, VolumeJson("a/b"), "application/json", 422, "metadata.name"},
      {"name dotdot", "POST", vols, VolumeJson(".."), "application/json", 422, "metadata.name"},
      {"name uppercase", "POST", vols, VolumeJson("Data"), "application/json", 422, "metadata.name"},
      {"name 300 chars", "POST", vols, VolumeJson(std::string(300, 'a')), "application/json", 422, "metadata.name"},
      {"path name uppercase", "GET", vols + "/Data", "", "", 400, "metadata.name"},
      {"path name dotdot", "GET", vols + "/..%2f..%2fetc", "", "", 400, "name"},
      {"10 MB body", "POST", vols, big, "application/json", 413, "limit"},
      {"10000-deep json", "POST", vols, deep_json, "application/json", 400, "depth"},
      {"10000-deep yaml", "POST", vols, deep_yaml, "application/yaml", 400, ""},
      {"invalid label selector", "GET", vols + "?labelSelector=a%20in%20b", "", "", 400, "selector"},
      {"invalid field selector", "GET", vols + "?fieldSelector=spec.colour%3Dred", "", "", 400, "spec.colour"},
      {"wrong content type", "POST", vols, VolumeJson("ct"), "text/plain", 415, "Content-Type"},
      {"patch without merge type", "PATCH", vols + "/x", R"({"spec":{}})", "application/json", 415, "merge-patch"},
      {"array body", "POST", vols, "[1,2]", "application/json", 400, "object"},
      {"empty body", "POST", vols, "", "application/json", 400, "empty"},
      {"unknown kind path", "GET", std::string(kNs) + "/widgets", "", "", 404, "widgets"},
      {"kind mismatch", "POST", vols, R"({"kind":"Image","metadata":{"name":"k"}})", "application/json", 400, "kind"},
      {"bad limit", "GET", vols + "?limit=abc", "", "", 400, "limit"},
      {"bad watch version", "GET", vols + "?watch=1&resourceVersion=xyz", "", "", 400, "resourceVersion"},
      // Malformed list and watch parameters: a 400 that names the parameter, never a 500.
      {"continue bad escape", "GET", vols + "?limit=1&continue=%%%", "", "", 400, "continue"},
      {"continue not base64", "GET", vols + "?limit=1&continue=*!*", "", "", 400, "continue"},
      {"continue not ours", "GET", vols + "?limit=1&continue=Zm9v", "", "", 400, "continue"},
      {"limit negative", "GET", vols + "?limit=-1", "", "", 400, "limit"},
      {"limit trailing", "GET", vols + "?limit=5x", "", "", 400, "limit"},
      {"limit huge", "GET", vols + "?limit=99999999999999999999999", "", "", 400, "limit"},
      {"limit bad escape", "GET", vols + "?limit=%G1", "", "", 400, "limit"},
      {"list version", "GET", vols + "?resourceVersion=-3", "", "", 400, "resourceVersion"},
      {"watch version huge", "GET", vols + "?watch=1&resourceVersion=184467440737095516160", "", "", 400,
       "resourceVersion"},
      {"label selector bad escape", "GET", vols + "?labelSelector=%zz", "", "", 400, "labelSelector"},
      {"label selector garbage", "GET", vols + "?labelSelector=a%3D%3D%3Db", "", "", 400, "labelSelector"},
      {"field selector unknown", "GET", vols + "?fieldSelector=x", "", "", 400, "fieldSelector"},
      {"field selector bad escape", "GET", vols + "?fieldSelector=%", "", "", 400, "fieldSelector"},
      {"timeout not a number", "GET", vols + "?watch=1&timeoutSeconds=soon", "", "", 400, "timeoutSeconds"},
      {"timeout negative", "GET", vols + "?watch=1&timeoutSeconds=-5", "", "", 400, "timeoutSeconds"},
      {"timeout trailing", "GET", vols + "?watch=1&timeoutSeconds=5s", "", "", 400, "timeoutSeconds"},
      {"watch not boolean", "GET", vols + "?watch=maybe", "", "", 400, "watch"},
      {"memory too small", "POST", std::string(kNs) + "/instances",
       R"({"metadata":{"name":"i"},"spec":{"resources":{"vcpus":1,"memoryMiB":32}}})", "application/json", 422,
       "spec.resources.memoryMiB"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = server_->Http(c.method, c.path, c.body, c.content_type);
    EXPECT_EQ(r.code, c.want_code) << r.body.substr(0, 500);
    json j = r.Json();
    ASSERT_TRUE(j.is_object()) << "a Status object, got: " << r.body.substr(0, 200);
    EXPECT_EQ(j["kind"], "Status");
    std::string msg = j.value("message", "");
    EXPECT_FALSE(msg.empty());
    if (!c.want_text.empty()) EXPECT_NE(msg.find(c.want_text), std::string::npos) << msg;
    ASSERT_EQ(server_->Http("GET", "/healthz").code, 200) << "server died after: " << c.name;
  }
  // None of the bad writes left anything behind.
  EXPECT_EQ(server_->Http("GET", vols).Json()["items"].size(), 0u);
}

}  // namespace
}  // namespace stratus::testing
