// The server with its embedded node agent on libvirt's test:///default driver: instances placed, defined and
// started; stop/start; restart; delete removes the domain; a domain destroyed or undefined behind Stratus' back
// comes back; two agents share the work and placement respects capacity.
#include <gtest/gtest.h>

#include <fstream>

#include <set>

#include "harness.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;
const char* kNs = "/apis/stratus.io/v1/namespaces/default";

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_port_ = ReservePort();
    ASSERT_NE(agent_port_.port(), 0) << agent_port_.error();
    server_ = std::make_unique<ServerProcess>(
        dir_.path() / "data",
        std::vector<std::string>{"--agent=true", "--libvirt-uri", "test:///default", "--node", "node-a",
                                 "--agent-listen", agent_port_.hostport(), "--debug-endpoints",
                                 "--reserved-memory-mib", "0", "--heartbeat-seconds", "2"});
    ASSERT_TRUE(server_->Start()) << server_->log();
    // Guest files: any bytes will do for the test driver, which never runs them.
    std::ofstream(dir_.path() / "vmlinuz") << std::string(4096, 'k');
    std::ofstream(dir_.path() / "initrd.img") << std::string(4096, 'i');
    std::string images =
        "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: k}\nspec: {type: kernel, source: {url: file://" +
        (dir_.path() / "vmlinuz").string() + "}}\n---\n" +
        "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: i}\nspec: {type: ramdisk, source: {url: file://" +
        (dir_.path() / "initrd.img").string() + "}}\n---\n" +
        "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n";
    auto a = server_->Ctl({"apply", "-f", "-"}, images);
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  }

  std::string InstanceYaml(const std::string& name, const std::string& extra = "") {
    return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name +
           "}\nspec:\n  instanceType: m1.small\n  kernelImage: k\n  ramdiskImage: i\n" + extra;
  }
  json Get(const std::string& name) { return server_->Http("GET", std::string(kNs) + "/instances/" + name).Json(); }
  std::string Phase(const std::string& name) {
    json j = Get(name);
    return j.contains("status") ? j["status"].value("phase", "") : "";
  }
  json Domains(int port) {
    web::http::client::http_client c("http://127.0.0.1:" + std::to_string(port), TestHttpConfig());
    auto r = c.request(web::http::methods::GET, "/domains").get();
    return json::parse(r.extract_string().get());
  }
  int DebugAction(int port, const std::string& dom, const std::string& action) {
    web::http::client::http_client c("http://127.0.0.1:" + std::to_string(port), TestHttpConfig());
    return c.request(web::http::methods::POST, "/debug/domains/" + dom + "/" + action).get().status_code();
  }
  bool DomainRunning(const std::string& name, int port = 0) {
    for (const auto& d : Domains(port ? port : agent_port_.port())) {
      if (d["name"] == "stratus_default_" + name) return d["running"].get<bool>();
    }
    return false;
  }
  bool DomainExists(const std::string& name, int port = 0) {
    for (const auto& d : Domains(port ? port : agent_port_.port())) {
      if (d["name"] == "stratus_default_" + name) return true;
    }
    return false;
  }

  TempDir dir_;
  ReservedPort agent_port_;  // outlives server_
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AgentTest, NodeRegistersWithCapacityAndHeartbeats) {
  json node;
  ASSERT_TRUE(Eventually([&] {
    node = server_->Http("GET", "/apis/stratus.io/v1/nodes/node-a").Json();
    return node.contains("status") && node["status"].contains("lastHeartbeatTime");
  })) << server_->log();
  EXPECT_GT(node["status"]["capacity"]["vcpus"].get<int>(), 0);
  EXPECT_GT(node["status"]["capacity"]["memoryMiB"].get<int64_t>(), 0);
  EXPECT_EQ(node["status"]["virtType"], "test");
  EXPECT_EQ(node["metadata"]["labels"]["stratus.io/zone"], "default");
  std::string first = node["status"]["lastHeartbeatTime"];
  EXPECT_TRUE(Eventually([&] {
    return server_->Http("GET", "/apis/stratus.io/v1/nodes/node-a").Json()["status"]["lastHeartbeatTime"] != first;
  }, 10)) << "heartbeats advance";
}

TEST_F(AgentTest, ApplyRunsStopStartRestartAndDeleteRemovesTheDomain) {
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, InstanceYaml("web-1")).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Phase("web-1") == "Running"; })) << Get("web-1").dump(2) << server_->log();
  json inst = Get("web-1");
  EXPECT_EQ(inst["spec"]["nodeName"], "node-a");
  EXPECT_EQ(inst["status"]["domainUUID"], inst["metadata"]["uid"]);
  EXPECT_TRUE(DomainRunning("web-1"));
  auto w = server_->Ctl({"wait", "instance/web-1", "--for=condition=Ready", "--timeout=20s"});
  EXPECT_EQ(w.exit_code, 0) << w.err;
  // Events were recorded for the transitions.
  auto ev = server_->Http("GET", std::string(kNs) + "/events?fieldSelector=involvedObject.name%3Dweb-1");
  std::set<std::string> reasons;
  json evj = ev.Json();
  for (const auto& e : evj["items"]) reasons.insert(e["reason"].get<std::string>());
  EXPECT_TRUE(reasons.count("Scheduled")) << ev.body;
  EXPECT_TRUE(reasons.count("Started")) << ev.body;

  ASSERT_EQ(server_->Ctl({"stop", "instance/web-1"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Phase("web-1") == "Stopped"; }, 60)) << Get("web-1").dump(2);
  EXPECT_FALSE(DomainRunning("web-1"));
  EXPECT_TRUE(DomainExists("web-1"));
  ASSERT_EQ(server_->Ctl({"start", "instance/web-1"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Phase("web-1") == "Running"; }));
  EXPECT_TRUE(DomainRunning("web-1"));
  ASSERT_EQ(server_->Ctl({"restart", "instance/web-1"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] {
    json j = Get("web-1");
    return j["status"].value("restartedAt", "") == j["spec"].value("restartRequestedAt", "x");
  })) << Get("web-1").dump(2);

  auto d = server_->Ctl({"delete", "instance", "web-1", "--wait", "--timeout", "30s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_EQ(server_->Http("GET", std::string(kNs) + "/instances/web-1").code, 404);
  EXPECT_FALSE(DomainExists("web-1"));
}

// stratusctl console through the API server to the agent: what cannot be attached says why and exits non-zero
// (libvirt's test driver has no console streams), an instance that does not exist is 404, a bad session id is
// refused by the agent, and the agent's endpoint answers without leaving a session behind.
TEST_F(AgentTest, ConsoleRefusalsSayWhy) {
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, InstanceYaml("con-1")).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Phase("con-1") == "Running"; })) << Get("con-1").dump(2) << server_->log();
  auto r = server_->Ctl({"console", "instance/con-1"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("console"), std::string::npos) << r.err;
  r = server_->Ctl({"console", "instance/nothing-here"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  auto bad = server_->Http("GET", std::string(kNs) + "/instances/con-1/console?session=bad%20id");
  EXPECT_EQ(bad.code, 422) << bad.body;
  auto input = server_->Http("POST", std::string(kNs) + "/instances/con-1/console?session=never-attached", "x",
                             "application/octet-stream");
  EXPECT_EQ(input.code, 404) << input.body;
}

TEST_F(AgentTest, DriftIsRepaired) {
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, InstanceYaml("drift")).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Phase("drift") == "Running" && DomainRunning("drift"); })) << server_->log();
  ASSERT_EQ(DebugAction(agent_port_.port(), "stratus_default_drift", "destroy"), 200);
  EXPECT_FALSE(DomainRunning("drift"));
  EXPECT_TRUE(Eventually([&] { return DomainRunning("drift"); }, 30)) << "destroyed domain started again";
  ASSERT_EQ(DebugAction(agent_port_.port(), "stratus_default_drift", "undefine"), 200);
  EXPECT_FALSE(DomainExists("drift"));
  EXPECT_TRUE(Eventually([&] { return DomainRunning("drift"); }, 30)) << "undefined domain defined and started again";
}

TEST_F(AgentTest, UnschedulableSaysWhy) {
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"},
                         "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: huge}\nspec:\n  resources: "
                         "{vcpus: 64, memoryMiB: 1048576}\n  kernelImage: k\n")
                .exit_code,
            0);
  json cond;
  ASSERT_TRUE(Eventually([&] {
    json j = Get("huge");
    if (!j.contains("status") || !j["status"].contains("conditions")) return false;
    for (const auto& c : j["status"]["conditions"]) {
      if (c["type"] == "Scheduled") cond = c;
    }
    return cond.is_object() && cond["status"] == "False";
  })) << Get("huge").dump(2);
  EXPECT_EQ(cond["reason"], "Unschedulable");
  std::string msg = cond["message"];
  EXPECT_NE(msg.find("node-a: insufficient"), std::string::npos) << msg;
}

TEST_F(AgentTest, ImageChecksumMismatchFailsWithReason) {
  std::string y = "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: bad-sum}\nspec: {type: kernel, sha256: " +
                  std::string(64, 'a') + ", source: {url: file://" + (dir_.path() / "vmlinuz").string() + "}}\n";
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, y).exit_code, 0);
  json img;
  ASSERT_TRUE(Eventually([&] {
    img = server_->Http("GET", std::string(kNs) + "/images/bad-sum").Json();
    return img.contains("status") && img["status"].value("phase", "") == "Failed";
  })) << img.dump(2);
  bool found = false;
  for (const auto& c : img["status"]["conditions"]) {
    if (c["type"] == "Ready") {
      found = c["reason"] == "ChecksumMismatch";
      EXPECT_NE(c["message"].get<std::string>().find("checksum mismatch"), std::string::npos);
    }
  }
  EXPECT_TRUE(found) << img.dump(2);
  // The good images are Ready with their checksum.
  json k = server_->Http("GET", std::string(kNs) + "/images/k").Json();
  EXPECT_TRUE(Eventually([&] {
    k = server_->Http("GET", std::string(kNs) + "/images/k").Json();
    return k.contains("status") && k["status"].value("phase", "") == "Ready";
  }));
  EXPECT_EQ(k["status"]["checksum"].get<std::string>().rfind("sha256:", 0), 0u);
}

TEST_F(AgentTest, TwoAgentsSpreadAndRespectCapacity) {
  AgentProcess b(*server_, "node-b", dir_.path(), /*heartbeat_seconds=*/2);
  int port_b = b.port();
  json nb;
  ASSERT_TRUE(Eventually([&] {
    nb = server_->Http("GET", "/apis/stratus.io/v1/nodes/node-b").Json();
    return nb.contains("status") && nb["status"].contains("allocatable");
  })) << b.log();
  // A flavor of 60% of a node's memory: one per node fits, a third does not.
  int64_t mem = nb["status"]["allocatable"]["memoryMiB"].get<int64_t>() * 6 / 10;
  std::string flavor = "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: big}\nspec: {vcpus: 1, memoryMiB: " +
                       std::to_string(mem) + "}\n";
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, flavor).exit_code, 0);
  std::string all;
  for (const char* n : {"big-1", "big-2", "big-3"}) {
    all += "---\napiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + std::string(n) +
           "}\nspec:\n  instanceType: big\n  kernelImage: k\n  ramdiskImage: i\n";
  }
  ASSERT_EQ(server_->Ctl({"apply", "-f", "-"}, all).exit_code, 0);
  std::map<std::string, std::string> placed;
  ASSERT_TRUE(Eventually([&] {
    placed.clear();
    for (const char* n : {"big-1", "big-2", "big-3"}) {
      std::string node = Get(n)["spec"].value("nodeName", "");
      if (!node.empty()) placed[n] = node;
    }
    return placed.size() == 2;
  })) << server_->log();
  std::set<std::string> nodes;
  for (const auto& [_, n] : placed) nodes.insert(n);
  EXPECT_EQ(nodes, (std::set<std::string>{"node-a", "node-b"})) << "spread over both nodes";
  std::this_thread::sleep_for(std::chrono::seconds(2));
  int unplaced = 0;
  for (const char* n : {"big-1", "big-2", "big-3"}) {
    if (Get(n)["spec"].value("nodeName", "").empty()) ++unplaced;
  }
  EXPECT_EQ(unplaced, 1) << "capacity respected: the third does not fit";
  // The instance on node-b runs there (its agent reports it).
  for (const auto& [inst, node] : placed) {
    EXPECT_TRUE(Eventually([&] { return Phase(inst) == "Running"; })) << inst << " " << Get(inst).dump(2);
    if (node == "node-b") EXPECT_TRUE(DomainRunning(inst, port_b));
  }
}

// A storage pool the agent cannot make (another pool already stands at its directory, defined in the test
// driver's node XML): the Node says StoragePoolFailed and which pool is in the way, and `wait` shows it.
TEST(AgentFailureTest, PoolThatCannotBeMadeIsTheNodesReason) {
  TempDir dir;
  fs::path images = dir.path() / "data" / "agent" / "pools" / "images";
  std::string xml = dir.path().string() + "/node.xml";
  {
    std::ofstream out(xml);
    out << "<node><pool type='dir'><name>squatter</name><uuid>35bb2ad9-388a-4dfe-861a-b8907f6e53fe</uuid>"
        << "<target><path>" << images.string() << "</path></target></pool></node>\n";
  }
  ReservedPort agent_port = ReservePort();
  ServerProcess server(dir.path() / "data", {"--agent=true", "--libvirt-uri", "test://" + xml, "--node", "nopool",
                                              "--agent-listen", agent_port.hostport()});
  ASSERT_TRUE(server.Start()) << server.log();
  json cond;
  ASSERT_TRUE(Eventually([&] { return (cond = NodeCondition(server, "nopool")).is_object(); })) << server.log();
  EXPECT_EQ(cond.value("status", ""), "False");
  EXPECT_EQ(cond.value("reason", ""), "StoragePoolFailed");
  EXPECT_NE(cond.value("message", "").find("squatter"), std::string::npos) << cond.dump();
  auto w = server.Ctl({"wait", "node/nopool", "--for=condition=Ready", "--timeout=2s"});
  EXPECT_NE(w.exit_code, 0);
  EXPECT_NE((w.out + w.err).find("StoragePoolFailed"), std::string::npos) << w.out << w.err;
  EXPECT_NE((w.out + w.err).find("squatter"), std::string::npos) << w.out << w.err;
}

}  // namespace
}  // namespace stratus::testing

namespace stratus::testing {
namespace {

// An agent that cannot work says so through the API: the Node is registered Ready=False with the cause, one
// Event says it, and an Image waiting for a node says it waits on that node (`stratusctl wait` prints it).
TEST(AgentFailureTest, NodeThatCannotWorkSaysWhyAndWaitersShowIt) {
  TempDir dir;
  ReservedPort agent_port = ReservePort();
  ServerProcess server(dir.path() / "data",
                       {"--agent=true", "--libvirt-uri", "test:///nonexistent-stratus-config.xml", "--node", "broken",
                        "--agent-listen", agent_port.hostport()});
  ASSERT_TRUE(server.Start()) << server.log();
  json cond;
  ASSERT_TRUE(Eventually([&] { return (cond = NodeCondition(server, "broken")).is_object(); })) << server.log();
  EXPECT_EQ(cond.value("status", ""), "False");
  EXPECT_EQ(cond.value("reason", ""), "LibvirtUnreachable");
  EXPECT_NE(cond.value("message", "").find("test:///nonexistent-stratus-config.xml"), std::string::npos) << cond.dump();
  auto d = server.Ctl({"describe", "node", "broken"});
  EXPECT_NE(d.out.find("LibvirtUnreachable"), std::string::npos) << d.out << d.err;
  // One Event, not one per retry.
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"},
                       "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: k}\nspec: {type: kernel, source: "
                       "{url: file:///nonexistent}}\n").exit_code, 0);
  auto w = server.Ctl({"wait", "image/k", "--for=condition=Ready", "--timeout=3s"});
  EXPECT_NE(w.exit_code, 0);
  EXPECT_NE((w.out + w.err).find("NodeNotReady"), std::string::npos) << w.out << w.err;
  EXPECT_NE((w.out + w.err).find("node broken: LibvirtUnreachable"), std::string::npos) << w.out << w.err;
  json events = server.Http("GET", std::string(kNs) + "/events").Json();
  int about_node = 0;
  for (const auto& e : events["items"]) {
    if (e["involvedObject"].value("name", "") == "broken" && e.value("reason", "") == "LibvirtUnreachable") {
      ++about_node;
      EXPECT_EQ(e.value("count", 1), 1) << "recorded once, not at every retry";
    }
  }
  EXPECT_EQ(about_node, 1) << events.dump();
}

}  // namespace
}  // namespace stratus::testing
