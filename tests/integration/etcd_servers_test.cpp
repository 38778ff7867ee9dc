// Several API servers on one etcd (`stratusd server --store etcd`): a watch on one server sees every write made
// through another, and after the other is killed -9 the survivor serves everything that was acknowledged.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "../etcd_process.h"
#include "harness.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;
const std::string kVolumes = "/apis/stratus.io/v1/namespaces/default/volumes";

TEST(EtcdServersTest, TwoServersShareOneStoreAndSurviveEachOther) {
  if (!fs::exists(EtcdProcess::kBinary)) GTEST_FAIL() << "etcd is missing: scripts/install-deps.sh installs etcd-server";
  TempDir dir;
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.Start(dir.path() / "etcd", [](const std::string& url) {
    return stratus::testing::Run({"/usr/bin/etcdctl", "--endpoints", url, "endpoint", "health"}).exit_code == 0;
  }));
  std::vector<std::string> flags = {"--store", "etcd", "--etcd-endpoints", etcd.url()};
  ServerProcess a(dir.path() / "a", flags);
  ASSERT_TRUE(a.Start()) << a.log();
  // The servers of one cluster share its credentials: the first one's token files (as an operator copies them).
  fs::create_directories(dir.path() / "b");
  for (const char* f : {"admin.token", "bootstrap.token", "ec2-access-keys.key"}) {
    fs::copy_file(dir.path() / "a" / f, dir.path() / "b" / f);
  }
  ServerProcess b(dir.path() / "b", flags);
  ASSERT_TRUE(b.Start()) << b.log();
  ASSERT_EQ(a.token(), b.token());

  // A watch on b, from now, while 20 volumes are created through a.
  std::string rv = b.Http("GET", kVolumes).Json()["metadata"].value("resourceVersion", "");
  auto watching = std::async(std::launch::async, [&] {
    return b.Http("GET", kVolumes + "?watch=1&timeoutSeconds=8&resourceVersion=" + rv, "", "application/json", 20);
  });
  std::set<std::string> made;
  for (int i = 0; i < 20; ++i) {
    std::string name = "v" + std::to_string(i);
    auto c = a.Http("POST", kVolumes, json{{"metadata", {{"name", name}}}, {"spec", {{"size", "1Gi"}}}}.dump());
    ASSERT_EQ(c.code, 201) << c.body;
    made.insert(name);
  }
  auto w = watching.get();
  ASSERT_EQ(w.code, 200) << w.body;
  std::set<std::string> added;
  std::istringstream lines(w.body);
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("type", "") == "ADDED") added.insert(e["object"]["metadata"].value("name", ""));
  }
  EXPECT_EQ(added, made);

  // a dies; b has every acknowledged write and keeps serving writes.
  a.Kill(SIGKILL);
  auto list = b.Http("GET", kVolumes).Json();
  EXPECT_EQ(list["items"].size(), 20u);
  auto c = b.Http("POST", kVolumes, json{{"metadata", {{"name", "after"}}}, {"spec", {{"size", "1Gi"}}}}.dump());
  EXPECT_EQ(c.code, 201) << c.body;
  // A conflicting write through b (stale resourceVersion) is refused as on one server.
  json v0 = b.Http("GET", kVolumes + "/v0").Json();
  json stale = v0;
  stale["spec"]["size"] = "2Gi";
  ASSERT_EQ(b.Http("PUT", kVolumes + "/v0", stale.dump()).code, 200);
  EXPECT_EQ(b.Http("PUT", kVolumes + "/v0", stale.dump()).code, 409);
  // a comes back and sees everything.
  ASSERT_TRUE(a.Start()) << a.log();
  EXPECT_EQ(a.Http("GET", kVolumes).Json()["items"].size(), 21u);
}

}  // namespace
}  // namespace stratus::testing
