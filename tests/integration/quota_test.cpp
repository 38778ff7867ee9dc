// Quotas per namespace: enforced at admission atomically under real concurrency, shown in status.used, counting
// resizes and volume growth, released by deletes.
#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <thread>

#include "harness.h"

namespace stratus::testing {
namespace {

const std::string kApi = "/apis/stratus.io/v1";

json Instance(const std::string& name, int vcpus) {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Instance"},
          {"metadata", {{"name", name}}},
          {"spec", {{"image", "debian"}, {"resources", {{"vcpus", vcpus}, {"memoryMiB", 128}}}}}};
}

json Quota(const json& hard) {
  return {{"apiVersion", "stratus.io/v1"}, {"kind", "Quota"}, {"metadata", {{"name", "default"}}},
          {"spec", {{"hard", hard}}}};
}

class QuotaTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()) << server_.log(); }
  void MakeNamespace(const std::string& ns) {
    ASSERT_EQ(server_.Http("POST", kApi + "/namespaces",
                           json{{"apiVersion", "stratus.io/v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}.dump())
                  .code,
              201);
  }
  TempDir dir_;
  ServerProcess server_{dir_.path() / "data"};
};

TEST_F(QuotaTest, FiftyConcurrentCreatesAgainstTenLeaveExactlyTen) {
  ASSERT_EQ(server_.Http("POST", kApi + "/namespaces/default/quotas", Quota({{"instances", 10}}).dump()).code, 201);
  std::atomic<int> created{0}, refused{0}, other{0};
  std::vector<std::string> messages(50);
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      auto r = server_.Http("POST", kApi + "/namespaces/default/instances", Instance("vm-" + std::to_string(i), 1).dump());
      if (r.code == 201) {
        ++created;
      } else if (r.code == 403 && r.Json().value("reason", "") == "QuotaExceeded") {
        ++refused;
        messages[i] = r.Json().value("message", "");
      } else {
        ++other;
        messages[i] = std::to_string(r.code) + " " + r.body;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 10);
  EXPECT_EQ(refused.load(), 40);
  EXPECT_EQ(other.load(), 0);
  for (const auto& m : messages) {
    if (m.empty()) continue;
    EXPECT_EQ(m, "exceeded quota: instances, requested 1, used 10, limited 10");
    break;
  }
  EXPECT_EQ(server_.Http("GET", kApi + "/namespaces/default/instances").Json()["items"].size(), 10u);

  // status.used follows, and describe shows it.
  auto used = [&] {
    json q = server_.Http("GET", kApi + "/namespaces/default/quotas/default").Json();
    return q.contains("status") ? q["status"].value("used", json::object()).value("instances", -1) : -1;
  };
  ASSERT_TRUE(Eventually([&] { return used() == 10; }, 20)) << "status.used.instances=" << used();
  RunResult d = server_.Ctl({"describe", "quota", "default"});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("Resource Usage:"), std::string::npos) << d.out;
  EXPECT_TRUE(std::regex_search(d.out, std::regex(R"(\n\s+instances\s+10\s+10\n)"))) << d.out;

  // A delete releases: one more fits.
  // (Which ten won the race is up to the scheduler: delete one of those that exist.)
  json items = server_.Http("GET", kApi + "/namespaces/default/instances").Json()["items"];
  ASSERT_FALSE(items.empty());
  std::string first = items[0]["metadata"]["name"];
  ASSERT_EQ(server_.Http("DELETE", kApi + "/namespaces/default/instances/" + first).code, 200);
  ASSERT_TRUE(Eventually([&] { return server_.Http("GET", kApi + "/namespaces/default/instances/" + first).code == 404; }, 20));
  EXPECT_EQ(server_.Http("POST", kApi + "/namespaces/default/instances", Instance("vm-again", 1).dump()).code, 201);
  EXPECT_EQ(server_.Http("POST", kApi + "/namespaces/default/instances", Instance("vm-over", 1).dump()).code, 403);
  ASSERT_TRUE(Eventually([&] { return used() == 10; }, 20));
}

TEST_F(QuotaTest, ResizesAndVolumeGrowthCountAndOtherNamespacesAreApart) {
  MakeNamespace("small");
  ASSERT_EQ(server_.Http("POST", kApi + "/namespaces/small/quotas",
                         Quota({{"cores", 3}, {"ramMiB", 1024}, {"gigabytes", 3}, {"keyPairs", 0}}).dump())
                .code,
            201);
  ASSERT_EQ(server_.Http("POST", kApi + "/namespaces/small/instances", Instance("a", 2).dump()).code, 201);
  auto big = server_.Http("POST", kApi + "/namespaces/small/instances", Instance("b", 2).dump());
  EXPECT_EQ(big.code, 403);
  EXPECT_EQ(big.Json().value("message", ""), "exceeded quota: cores, requested 2, used 2, limited 3");
  auto resize = server_.Http("PATCH", kApi + "/namespaces/small/instances/a",
                             R"({"spec":{"resources":{"vcpus":4,"memoryMiB":128}}})", "application/merge-patch+json");
  EXPECT_EQ(resize.code, 403) << resize.body;
  EXPECT_EQ(resize.Json().value("reason", ""), "QuotaExceeded");
  EXPECT_EQ(server_.Http("PATCH", kApi + "/namespaces/small/instances/a",
                         R"({"spec":{"resources":{"vcpus":3,"memoryMiB":128}}})", "application/merge-patch+json")
                .code,
            200);

  json vol = {{"apiVersion", "stratus.io/v1"}, {"kind", "Volume"}, {"metadata", {{"name", "v"}}}, {"spec", {{"size", "2Gi"}}}};
  ASSERT_EQ(server_.Http("POST", kApi + "/namespaces/small/volumes", vol.dump()).code, 201);
  auto grow = server_.Http("PATCH", kApi + "/namespaces/small/volumes/v", R"({"spec":{"size":"4Gi"}})",
                           "application/merge-patch+json");
  EXPECT_EQ(grow.code, 403) << grow.body;
  EXPECT_NE(grow.Json().value("message", "").find("gigabytes, requested 2, used 2, limited 3"), std::string::npos)
      << grow.body;

  json kp = {{"apiVersion", "stratus.io/v1"}, {"kind", "KeyPair"}, {"metadata", {{"name", "k"}}},
             {"spec", {{"publicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG k"}}}};
  EXPECT_EQ(server_.Http("POST", kApi + "/namespaces/small/keypairs", kp.dump()).code, 403);
  // The default namespace has no Quota (and the server no default): unlimited.
  EXPECT_EQ(server_.Http("POST", kApi + "/namespaces/default/keypairs", kp.dump()).code, 201);
  EXPECT_EQ(server_.Http("POST", kApi + "/namespaces/default/instances", Instance("huge", 64).dump()).code, 201);
}

TEST(QuotaFlagTest, DefaultQuotaAppliesWhereNoQuotaIsAndBadFlagsAreRefused) {
  TempDir dir;
  ServerProcess server(dir.path() / "data", {"--default-quota", "instances=1"});
  ASSERT_TRUE(server.Start()) << server.log();
  EXPECT_EQ(server.Http("POST", kApi + "/namespaces/default/instances", Instance("one", 1).dump()).code, 201);
  EXPECT_EQ(server.Http("POST", kApi + "/namespaces/default/instances", Instance("two", 1).dump()).code, 403);

  TempDir dir2;
  RunResult bad = stratus::testing::Run({StratusdBin(), "server", "--data-dir", (dir2.path() / "d").string(), "--listen",
                       "127.0.0.1:1", "--default-quota", "instances=ten"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--default-quota"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("whole number"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace stratus::testing
