// Live migration: the pure decisions (the domain XML the target gets, the latest migration of an instance, whether
// and where an instance can move); the server's reconciler (Pending -> Scheduled, a cold move, the refusals,
// Migrated -> Succeeded) on a real in-process API; the node agent as target (prepares through the instance
// reconciler and publishes its paths) and as source (libvirt's migration with the rewritten XML, its failures, an
// agent restarted mid-flight) on fakes; and the instance reconciler's guards (the source leaves a moving instance
// alone; the target's fence keeps an arriving domain).
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <pugixml.hpp>

#include "fake_hypervisor.h"
#include "fake_storage.h"
#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/host/seed_disk.h"
#include "stratus/instance/instance.h"
#include "stratus/runtime/migration_phases.h"
#include "stratus/migration/migration.h"
#include "stratus/runtime/conditions.h"

namespace stratus::migration {
namespace {

using namespace std::chrono_literals;
using host::DomainState;

constexpr const char* kDom = "stratus_default_web-1";

// ---- RewriteForTarget ------------------------------------------------------------------------------------------

// A source domain as libvirt's migratable XML shows it: direct kernel boot, a data disk, the seed cdrom and the
// serial console logged to a file (on the source's paths, under /a).
const char* kSourceXml = R"(<domain type="kvm">
  <name>stratus_default_web-1</name>
  <metadata>
    <stratus:instance xmlns:stratus="http://stratus.io/xmlns/instance/1"><uid>u1</uid><owner>stratus:c1/node-a</owner></stratus:instance>
  </metadata>
  <memory unit="MiB">512</memory>
  <os>
    <type arch="x86_64" machine="pc">hvm</type>
    <kernel>/a/images/img-k</kernel>
    <initrd>/a/images/img-r</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <devices>
    <disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="/a/pool/data.qcow2"/><target dev="vdb" bus="virtio"/></disk>
    <disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="/a/instances/default/web-1/seed.iso"/><target dev="hdc" bus="ide"/><readonly/></disk>
    <disk type="file" device="cdrom"><source file="/a/other.iso"/><target dev="hdd" bus="ide"/><readonly/></disk>
    <serial type="pty"><log file="/a/instances/default/web-1/console.log" append="on"/><target port="0"/></serial>
    <console type="pty"><log file="/a/instances/default/web-1/console.log" append="on"/><target type="serial" port="0"/></console>
  </devices>
</domain>)";

// The text of the element or attribute `xpath` selects in `xml` ("<none>" when nothing).
std::string At(const std::string& xml, const char* xpath) {
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str())) return "<unparsable>";
  pugi::xpath_node n = doc.select_node(xpath);
  if (n.attribute()) return n.attribute().value();
  if (n.node()) return n.node().text().get();
  return "<none>";
}

const json kTargetPaths = {{"kernel", "/b/images/img-k"},
                           {"owner", "stratus:c1/node-b"},
                           {"initrd", "/b/images/img-r"},
                           {"seed", "/b/instances/default/web-1/seed.iso"},
                           {"consoleLog", "/b/instances/default/web-1/console.log"}};

// The pool "default" is /a/pool on the source and /b/pool on the target.
const std::vector<PoolMove> kPools = {{"default", "/a/pool", "/b/pool"}};

TEST(MigrationRewriteTest, BootImagesSeedAndConsoleLogMoveToTheTargetsPaths) {
  std::vector<MovedDisk> moved;
  auto out = RewriteForTarget(kSourceXml, kTargetPaths, kPools, &moved);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(At(*out, "/domain/os/kernel"), "/b/images/img-k");
  EXPECT_EQ(At(*out, "/domain/os/initrd"), "/b/images/img-r");
  EXPECT_EQ(At(*out, "/domain/devices/disk[target/@dev='hdc']/source/@file"), "/b/instances/default/web-1/seed.iso");
  EXPECT_EQ(At(*out, "/domain/devices/serial/log/@file"), "/b/instances/default/web-1/console.log");
  EXPECT_EQ(At(*out, "/domain/devices/console/log/@file"), "/b/instances/default/web-1/console.log");
  // Once there it is the target agent's own (the fence there takes it for its own if that node is lost later).
  EXPECT_NE(out->find("<owner>stratus:c1/node-b</owner>"), std::string::npos) << *out;
  EXPECT_EQ(out->find("stratus:c1/node-a"), std::string::npos) << *out;
  EXPECT_NE(out->find("<uid>u1</uid>"), std::string::npos) << *out;
  // A writable disk moves to the same file in the same pool on the target (libvirt copies it there).
  EXPECT_EQ(At(*out, "/domain/devices/disk[target/@dev='vdb']/source/@file"), "/b/pool/data.qcow2");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].pool, "default");
  EXPECT_EQ(moved[0].source_path, "/a/pool/data.qcow2");
  EXPECT_EQ(moved[0].target_path, "/b/pool/data.qcow2");
  // Everything else is the source's: a read-only cdrom, the command line, the metadata.
  EXPECT_EQ(At(*out, "/domain/devices/disk[target/@dev='hdd']/source/@file"), "/a/other.iso");
  EXPECT_EQ(At(*out, "/domain/os/cmdline"), "console=ttyS0");
  EXPECT_EQ(At(*out, "/domain/name"), kDom);
  EXPECT_EQ(At(*out, "/domain/devices/serial/log/@append"), "on");
  EXPECT_EQ(out->find("/a/instances"), std::string::npos) << "no source path of the instance's files is left:\n" << *out;
}

TEST(MigrationRewriteTest, AWritableDiskInNoPoolOfTheTargetIsRefused) {
  // The target has no pool where the data disk lives: it could not be copied there.
  auto out = RewriteForTarget(kSourceXml, kTargetPaths, {{"fast", "/a/fast", "/b/fast"}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kInvalid);
  EXPECT_NE(out.status().message().find("disk vdb (/a/pool/data.qcow2) is in no storage pool the target node has"),
            std::string::npos) << out.status().message();
  // PoolMoves pairs the pools both nodes have, by name, leaving out each node's image cache.
  json a = {{"status", {{"pools", {{{"name", "default"}, {"path", "/a/pool"}}, {{"name", "fast"}, {"path", "/a/fast"}},
                                   {{"name", "images"}, {"path", "/a/images"}, {"images", true}}}}}}};
  json b = {{"status", {{"pools", {{{"name", "default"}, {"path", "/b/pool"}},
                                   {{"name", "images"}, {"path", "/b/images"}, {"images", true}}}}}}};
  auto moves = PoolMoves(a, b);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].pool, "default");
  EXPECT_EQ(moves[0].source_path, "/a/pool");
  EXPECT_EQ(moves[0].target_path, "/b/pool");
}

TEST(MigrationRewriteTest, AbsentKeysLeaveThosePathsAlone) {
  // Only the kernel moves; initrd, seed and console log keep the source's paths.
  auto out = RewriteForTarget(kSourceXml, {{"kernel", "/b/images/img-k"}, {"initrd", ""}}, kPools);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(At(*out, "/domain/os/kernel"), "/b/images/img-k");
  EXPECT_EQ(At(*out, "/domain/os/initrd"), "/a/images/img-r") << "an empty path is no path";
  EXPECT_EQ(At(*out, "/domain/devices/disk[target/@dev='hdc']/source/@file"), "/a/instances/default/web-1/seed.iso");
  EXPECT_EQ(At(*out, "/domain/devices/serial/log/@file"), "/a/instances/default/web-1/console.log");
  // No target at all (an object without keys, or none): the XML is the source's.
  for (const json& none : {json::object(), json()}) {
    auto same = RewriteForTarget(kSourceXml, none, kPools);
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(At(*same, "/domain/os/kernel"), "/a/images/img-k");
    EXPECT_EQ(At(*same, "/domain/devices/disk[target/@dev='hdc']/source/@file"), "/a/instances/default/web-1/seed.iso");
    EXPECT_EQ(At(*same, "/domain/devices/console/log/@file"), "/a/instances/default/web-1/console.log");
  }
  // A target kernel for a domain that boots from disk adds no kernel (there is no <kernel> to rewrite).
  auto disk_boot = RewriteForTarget("<domain><name>d</name><os><type>hvm</type><boot dev='hd'/></os></domain>",
                                    kTargetPaths);
  ASSERT_TRUE(disk_boot.ok());
  EXPECT_EQ(At(*disk_boot, "/domain/os/kernel"), "<none>");
}

TEST(MigrationRewriteTest, AnEmptySeedCdromGetsTheTargetsSeed) {
  auto out = RewriteForTarget(
      "<domain><devices><disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk></devices></domain>",
      kTargetPaths);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(At(*out, "/domain/devices/disk[target/@dev='hdc']/source/@file"), "/b/instances/default/web-1/seed.iso");
}

TEST(MigrationRewriteTest, XmlThatDoesNotParseIsInvalid) {
  for (const char* bad : {"<domain><name>x</name>", "not xml at all <", ""}) {
    auto out = RewriteForTarget(bad, kTargetPaths);
    EXPECT_EQ(out.status().code(), Code::kInvalid) << bad;
  }
  auto no_domain = RewriteForTarget("<network><name>x</name></network>", kTargetPaths);
  EXPECT_EQ(no_domain.status().code(), Code::kInvalid);
}

// ---- LatestMigration, PhaseOf --------------------------------------------------------------------------------

json Mig(const std::string& name, const std::string& instance, const std::string& created,
         const std::string& ns = "default", const std::string& phase = "") {
  json m = {{"metadata", {{"name", name}, {"namespace", ns}, {"creationTimestamp", created}}},
            {"spec", {{"instance", instance}}}};
  if (!phase.empty()) m["status"]["phase"] = phase;
  return m;
}

TEST(MigrationLatestTest, NewestByCreationTimeThenNameOfThatInstanceOnly) {
  std::vector<json> ms = {
      Mig("b-old", "web-1", "2026-01-01T10:00:00Z"),
      Mig("z-newest", "web-1", "2026-01-01T10:00:05Z", "default", kFailed),
      Mig("a-same-second", "web-1", "2026-01-01T10:00:05Z"),
      Mig("later-other-ns", "web-1", "2026-01-01T11:00:00Z", "team-b"),
      Mig("later-other-instance", "web-2", "2026-01-01T11:00:00Z"),
      {{"metadata", {{"name", "no-spec"}, {"namespace", "default"}, {"creationTimestamp", "2026-01-02T00:00:00Z"}}}},
  };
  json latest = LatestMigration(ms, "default", "web-1");
  EXPECT_EQ(MetaString(latest, "name"), "z-newest");
  EXPECT_EQ(PhaseOf(latest), kFailed);
  // The order of the list does not matter.
  std::reverse(ms.begin(), ms.end());
  EXPECT_EQ(MetaString(LatestMigration(ms, "default", "web-1"), "name"), "z-newest");
  EXPECT_EQ(MetaString(LatestMigration(ms, "team-b", "web-1"), "name"), "later-other-ns");
  EXPECT_TRUE(LatestMigration(ms, "default", "web-9").is_null());
  EXPECT_TRUE(LatestMigration({}, "default", "web-1").is_null());
  // No status (or no phase) is Pending; Succeeded and Failed are the terminal ones.
  EXPECT_EQ(PhaseOf(Mig("m", "web-1", "")), kPending);
  EXPECT_EQ(PhaseOf(json()), kPending);
  EXPECT_TRUE(Terminal(kSucceeded) && Terminal(kFailed));
  EXPECT_FALSE(Terminal(kMigrated) || Terminal(kRunning) || Terminal(kPending));
}

// ---- Unmovable -------------------------------------------------------------------------------------------------

json Inst(const std::string& node, json extra = json::object()) {
  json spec = {{"resources", {{"vcpus", 1}, {"memoryMiB", 512}}}, {"kernelImage", "k"}};
  if (!node.empty()) spec["nodeName"] = node;
  for (auto it = extra.begin(); it != extra.end(); ++it) spec[it.key()] = it.value();
  return {{"metadata", {{"name", "web-1"}, {"namespace", "default"}, {"uid", "u-web-1"}}}, {"spec", spec}};
}

TEST(MigrationUnmovableTest, BoundInstancesMoveAndVolumesOnlyLive) {
  EXPECT_EQ(Unmovable(Inst("node-a")), "");
  EXPECT_EQ(Unmovable(Inst("node-a", {{"ramdiskImage", "r"}})), "");
  EXPECT_NE(Unmovable(Inst("")).find("not bound"), std::string::npos) << Unmovable(Inst(""));
  json dying = Inst("node-a");
  dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_NE(Unmovable(dying).find("being deleted"), std::string::npos) << Unmovable(dying);
  EXPECT_NE(Unmovable(json()).find("does not exist"), std::string::npos);
  // Volumes are node-local: a live migration copies them; a cold move cannot, and names them, the root one as such.
  EXPECT_EQ(Unmovable(Inst("node-a", {{"image", "debian"}, {"volumes", {{{"volume", "db"}, {"device", "vdb"}}}}}), true), "");
  std::string root = Unmovable(Inst("node-a", {{"image", "debian"}}));
  EXPECT_NE(root.find("web-1-root (root)"), std::string::npos) << root;
  std::string data = Unmovable(
      Inst("node-a", {{"volumes", {{{"volume", "db"}, {"device", "vdb"}}, {{"volume", "logs"}, {"device", "vdc"}}}}}));
  EXPECT_NE(data.find("db, logs"), std::string::npos) << data;
  EXPECT_NE(data.find("node-local"), std::string::npos) << data;
  std::string both = Unmovable(Inst("node-a", {{"image", "debian"}, {"volumes", {{{"volume", "db"}, {"device", "vdb"}}}}}));
  EXPECT_NE(both.find("web-1-root (root), db"), std::string::npos) << both;
}

// ---- ChooseTarget ----------------------------------------------------------------------------------------------

struct NodeOpts {
  int vcpus = 4;
  int64_t memory_mib = 4096;
  bool ready = true;
  std::string not_ready_reason = "HypervisorDown";
  bool cordoned = false;
  int64_t heartbeat_age = 0;  // seconds
};

json NodeJson(const std::string& name, NodeOpts o = {}) {
  json n = {{"apiVersion", "stratus.io/v1"},
            {"kind", "Node"},
            {"metadata", {{"name", name}}},
            {"spec", json::object()},
            {"status",
             {{"allocatable", {{"vcpus", o.vcpus}, {"memoryMiB", o.memory_mib}}},
              {"lastHeartbeatTime", FormatRfc3339(std::time(nullptr) - o.heartbeat_age)},
              {"conditions",
               {{{"type", "Ready"}, {"status", o.ready ? "True" : "False"},
                 {"reason", o.ready ? "AgentReady" : o.not_ready_reason}}}}}}};
  if (o.cordoned) n["spec"]["unschedulable"] = true;
  // Its volume pool "default" lives in /<last letter of its name>/pool (node-a: /a/pool).
  n["status"]["pools"] = {{{"name", "default"}, {"libvirtName", "pool-" + name}, {"default", true},
                           {"path", "/" + std::string(1, name.back()) + "/pool"}}};
  return n;
}

NodeOpts Cordoned() {
  NodeOpts o;
  o.cordoned = true;
  return o;
}
NodeOpts Down(const std::string& reason = "HypervisorDown") {
  NodeOpts o;
  o.ready = false;
  o.not_ready_reason = reason;
  return o;
}
NodeOpts Silent() {  // Ready by its last word, but that was long ago
  NodeOpts o;
  o.heartbeat_age = 600;
  return o;
}
NodeOpts Sized(int vcpus, int64_t memory_mib) {
  NodeOpts o;
  o.vcpus = vcpus;
  o.memory_mib = memory_mib;
  return o;
}

placement::Options NoOvercommit() {
  placement::Options o;
  o.cpu_overcommit = 1;
  o.memory_overcommit = 1;
  return o;
}

StatusOr<std::string> Choose(const std::string& wanted, const std::vector<json>& nodes,
                             std::vector<json> others = {}) {
  json inst = Inst("node-a");
  others.push_back(inst);  // the moving instance counts on its source
  return ChooseTarget(inst, "node-a", wanted, nodes, others, {}, std::time(nullptr), NoOvercommit());
}

TEST(MigrationChooseTargetTest, AnExplicitTargetWhenItCanTakeTheInstance) {
  std::vector<json> nodes = {NodeJson("node-a"), NodeJson("node-b"), NodeJson("node-c"),
                             NodeJson("node-cordoned", Cordoned()),
                             NodeJson("node-down", Down()),
                             NodeJson("node-silent", Silent()),
                             NodeJson("node-small", Sized(1, 256))};
  auto c = Choose("node-c", nodes);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, "node-c") << "the wanted one, not the scheduler's choice";
  auto same = Choose("node-a", nodes);
  EXPECT_EQ(same.status().code(), Code::kInvalid);
  EXPECT_NE(same.status().message().find("runs on node-a already"), std::string::npos) << same.status().message();
  auto unknown = Choose("node-x", nodes);
  EXPECT_EQ(unknown.status().code(), Code::kInvalid);
  EXPECT_NE(unknown.status().message().find("no node named node-x"), std::string::npos) << unknown.status().message();
  // Wanted but unable: the reason is the scheduler's for that node; no other node is chosen instead.
  for (auto [wanted, why] : {std::pair{"node-cordoned", "node-cordoned: unschedulable"},
                             {"node-down", "node-down: not Ready (HypervisorDown)"},
                             {"node-silent", "node-silent: not Ready (heartbeat missed)"},
                             {"node-small", "node-small: insufficient"}}) {
    auto r = Choose(wanted, nodes);
    ASSERT_FALSE(r.ok()) << wanted << " chosen";
    EXPECT_EQ(r.status().code(), Code::kInvalid);
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
  }
  // What is bound there counts: node-b full of others does not take it.
  json other = Inst("node-b", {{"resources", {{"vcpus", 4}, {"memoryMiB", 4096}}}});
  other["metadata"]["name"] = "big";
  other["metadata"]["uid"] = "u-big";
  auto full = Choose("node-b", nodes, {other});
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.status().message().find("node-b: insufficient"), std::string::npos) << full.status().message();
}

TEST(MigrationChooseTargetTest, TheSchedulerChoosesAnotherNodeNeverTheSource) {
  // The source is by far the emptiest node; it is still not a choice.
  auto c = Choose("", {NodeJson("node-a", Sized(64, 65536)), NodeJson("node-b")});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, "node-b");
  // Among the others, one it fits.
  auto fits = Choose("", {NodeJson("node-a"), NodeJson("node-b", Cordoned()),
                          NodeJson("node-c", Sized(1, 256)), NodeJson("node-d")});
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  EXPECT_EQ(*fits, "node-d");
}

TEST(MigrationChooseTargetTest, NothingFitsNamesEveryNodesReason) {
  auto r = Choose("", {NodeJson("node-a"), NodeJson("node-b", Cordoned()),
                       NodeJson("node-c", Down("HypervisorDown")),
                       NodeJson("node-d", Sized(1, 256))});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("no node can take it"), std::string::npos) << msg;
  EXPECT_NE(msg.find("node-b: unschedulable"), std::string::npos) << msg;
  EXPECT_NE(msg.find("node-c: not Ready (HypervisorDown)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("node-d: insufficient"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("node-a"), std::string::npos) << "the source is not a candidate: " << msg;
  // Only the source: there is no other node.
  auto alone = Choose("", {NodeJson("node-a")});
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("there is no other node"), std::string::npos) << alone.status().message();
}

// ---- A real in-process API with the informers the migration reconcilers read -------------------------------------

class MigrationEnv : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    for (auto [inf, plural] : {std::pair{&migrations_, "migrations"}, {&instances_, "instances"}, {&nodes_, "nodes"},
                               {&flavors_, "instancetypes"}, {&images_, "images"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(5s));
    }
  }
  void TearDown() override {
    for (auto* inf : {&migrations_, &instances_, &nodes_, &flavors_, &images_}) (*inf)->Stop();
    LocalApiTest::TearDown();
  }

  void MakeNode(const std::string& name, NodeOpts o = {}, json migration_endpoint = json()) {
    json want = NodeJson(name, o);
    json n = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}},
                         {"spec", want["spec"]}},
                        "nodes", "");
    n["status"] = want["status"];
    if (!migration_endpoint.is_null()) n["status"]["migration"] = migration_endpoint;
    auto u = client_->UpdateStatus("nodes", "", n);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    ASSERT_TRUE(Cached(nodes_.get(), *u));
  }
  // web-1 (or `name`) bound to `node`, with status.phase `phase` ("" = no status).
  json MakeInstance(const std::string& node, const std::string& phase, const std::string& name = "web-1",
                    json extra_spec = json::object()) {
    json spec = {{"resources", {{"vcpus", 1}, {"memoryMiB", 512}}}, {"kernelImage", "k"}};
    if (!node.empty()) spec["nodeName"] = node;
    for (auto it = extra_spec.begin(); it != extra_spec.end(); ++it) spec[it.key()] = it.value();
    json i = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"},
                         {"metadata", {{"name", name}, {"namespace", "default"}}}, {"spec", spec}},
                        "instances");
    if (!phase.empty()) {
      i["status"]["phase"] = phase;
      auto u = client_->UpdateStatus("instances", "default", i);
      EXPECT_TRUE(u.ok()) << u.status().ToString();
      if (u.ok()) i = *u;
    }
    EXPECT_TRUE(Cached(instances_.get(), i));
    return i;
  }
  json MakeMigration(const std::string& name, const std::string& instance = "web-1", const std::string& target = "",
                     json status = json()) {
    json spec = {{"instance", instance}};
    if (!target.empty()) spec["targetNode"] = target;
    json m = MustCreate({{"apiVersion", "stratus.io/v1"}, {"kind", "Migration"},
                         {"metadata", {{"name", name}, {"namespace", "default"}}}, {"spec", spec}},
                        "migrations");
    if (!status.is_null()) m = SetMigrationStatus(name, status);
    EXPECT_TRUE(Cached(migrations_.get(), m));
    return m;
  }
  // Replaces the status of migration `name` (as an agent or the server would write it); waits for the cache.
  json SetMigrationStatus(const std::string& name, const json& status) {
    auto cur = client_->Get("migrations", "default", name);
    EXPECT_TRUE(cur.ok()) << cur.status().ToString();
    if (!cur.ok()) return json();
    json m = *cur;
    m["status"] = status;
    auto u = client_->UpdateStatus("migrations", "default", m);
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    if (!u.ok()) return json();
    EXPECT_TRUE(Cached(migrations_.get(), *u));
    return *u;
  }
  json Migration(const std::string& name) {
    auto r = client_->Get("migrations", "default", name);
    return r.ok() ? *r : json();
  }
  json MigStatus(const std::string& name) { return Migration(name).value("status", json::object()); }
  json Instance(const std::string& name = "web-1") {
    auto r = client_->Get("instances", "default", name);
    return r.ok() ? *r : json();
  }
  int Events(const std::string& reason) {
    auto l = client_->List("events", "default", {});
    int n = 0;
    if (l.ok()) {
      for (const auto& e : (*l)["items"]) n += e.value("reason", "") == reason;
    }
    return n;
  }

  std::unique_ptr<runtime::Informer> migrations_, instances_, nodes_, flavors_, images_;
};

// ---- The server: MigrationReconciler ----------------------------------------------------------------------------

class MigrationServerTest : public MigrationEnv {
 protected:
  void SetUp() override {
    MigrationEnv::SetUp();
    rec_ = std::make_unique<MigrationReconciler>(client_.get(), migrations_.get(), instances_.get(), nodes_.get(),
                                                 flavors_.get(), NoOvercommit());
  }
  void TearDown() override {
    rec_.reset();
    MigrationEnv::TearDown();
  }
  void Reconcile(const std::string& name) {
    auto r = rec_->Reconcile("default/" + name);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  std::unique_ptr<MigrationReconciler> rec_;
};

TEST_F(MigrationServerTest, ARunningInstanceIsScheduledForALiveMigrationAndNotYetRebound) {
  MakeNode("node-a");
  MakeNode("node-b");
  MakeNode("node-c", Cordoned());
  MakeInstance("node-a", "Running");
  MakeMigration("m1");
  Reconcile("m1");
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kScheduled);
  EXPECT_EQ(st.value("sourceNode", ""), "node-a");
  EXPECT_EQ(st.value("targetNode", ""), "node-b");
  EXPECT_EQ(st.value("live", false), true);
  EXPECT_EQ(st.value("reason", ""), "TargetChosen");
  EXPECT_EQ(Instance()["spec"]["nodeName"], "node-a") << "bound to the target only once its domain runs there";
  EXPECT_EQ(Events("Scheduled"), 1);
  // Scheduled is the agents' part now: looking again changes nothing.
  uint64_t rv = ResourceVersionOf(Migration("m1"));
  ASSERT_TRUE(Cached(migrations_.get(), Migration("m1")));
  Reconcile("m1");
  EXPECT_EQ(ResourceVersionOf(Migration("m1")), rv);
}

TEST_F(MigrationServerTest, AnExplicitTargetNodeIsHonoured) {
  MakeNode("node-a");
  MakeNode("node-b");
  MakeNode("node-c");
  MakeInstance("node-a", "Paused");
  MakeMigration("m1", "web-1", "node-c");
  Reconcile("m1");
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kScheduled);
  EXPECT_EQ(st.value("targetNode", ""), "node-c");
  EXPECT_EQ(st.value("live", false), true) << "a paused guest is moved live too";
}

TEST_F(MigrationServerTest, AStoppedInstanceIsMovedCold) {
  MakeNode("node-a");
  MakeNode("node-b");
  MakeInstance("node-a", "Stopped");
  MakeMigration("m1");
  Reconcile("m1");
  EXPECT_EQ(Instance()["spec"]["nodeName"], "node-b");
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kSucceeded);
  EXPECT_EQ(st.value("reason", ""), "MovedCold");
  EXPECT_EQ(st.value("live", true), false);
  EXPECT_EQ(st.value("sourceNode", ""), "node-a");
  EXPECT_EQ(st.value("targetNode", ""), "node-b");
  EXPECT_FALSE(st.value("completionTime", "").empty());
  EXPECT_NE(st.value("message", "").find("Stopped"), std::string::npos) << st.dump();
}

TEST_F(MigrationServerTest, RefusalsFailWithTheirReasons) {
  MakeNode("node-a");
  MakeInstance("node-a", "Running");
  // No such instance.
  MakeMigration("ghost", "web-9");
  Reconcile("ghost");
  EXPECT_EQ(MigStatus("ghost").value("phase", ""), kFailed);
  EXPECT_EQ(MigStatus("ghost").value("reason", ""), "InstanceNotFound");
  EXPECT_FALSE(MigStatus("ghost").value("completionTime", "").empty());
  // No other node.
  MakeMigration("nowhere");
  Reconcile("nowhere");
  EXPECT_EQ(MigStatus("nowhere").value("phase", ""), kFailed);
  EXPECT_EQ(MigStatus("nowhere").value("reason", ""), "NoTarget");
  EXPECT_NE(MigStatus("nowhere").value("message", "").find("there is no other node"), std::string::npos);
  // Volumes move only live: a stopped instance with one is refused, naming it; a running one is scheduled.
  MakeNode("node-b");
  MakeInstance("node-a", "Stopped", "db-1", {{"volumes", {{{"volume", "data"}, {"device", "vdb"}}}}});
  MakeMigration("with-volume", "db-1");
  Reconcile("with-volume");
  EXPECT_EQ(MigStatus("with-volume").value("phase", ""), kFailed);
  EXPECT_EQ(MigStatus("with-volume").value("reason", ""), "Unmovable");
  EXPECT_NE(MigStatus("with-volume").value("message", "").find("data"), std::string::npos);
  EXPECT_EQ(Instance("db-1")["spec"]["nodeName"], "node-a");
  MakeInstance("node-a", "Running", "db-2", {{"volumes", {{{"volume", "data2"}, {"device", "vdb"}}}}});
  MakeMigration("live-volume", "db-2");
  Reconcile("live-volume");
  EXPECT_EQ(MigStatus("live-volume").value("phase", ""), kScheduled) << MigStatus("live-volume").dump();
}

TEST_F(MigrationServerTest, ASecondMigrationOfAMovingInstanceFails) {
  MakeNode("node-a");
  MakeNode("node-b");
  MakeInstance("node-a", "Running");
  MakeMigration("m1");
  Reconcile("m1");
  ASSERT_EQ(MigStatus("m1").value("phase", ""), kScheduled);
  ASSERT_TRUE(Cached(migrations_.get(), Migration("m1")));
  MakeMigration("m2");
  Reconcile("m2");
  json st = MigStatus("m2");
  EXPECT_EQ(st.value("phase", ""), kFailed);
  EXPECT_EQ(st.value("reason", ""), "AlreadyMigrating");
  EXPECT_NE(st.value("message", "").find("m1"), std::string::npos) << st.dump();
  EXPECT_EQ(MigStatus("m1").value("phase", ""), kScheduled) << "the one under way goes on";
  // Once that one is over, another may start.
  SetMigrationStatus("m1", {{"phase", kFailed}, {"reason", "MigrationFailed"}});
  MakeMigration("m3");
  Reconcile("m3");
  EXPECT_EQ(MigStatus("m3").value("phase", ""), kScheduled);
}

// Two workers (stratusd runs this reconciler with 2) scheduling two Pending migrations of one instance at once both
// decide from a cache that shows the other still Pending: only one is Scheduled (the older; this process' own
// decision counts ahead of the cache). Frozen cache = both read before either wrote.
TEST_F(MigrationServerTest, TwoPendingMigrationsOfOneInstanceAreNotBothScheduled) {
  MakeNode("node-a");
  MakeNode("node-b");
  MakeNode("node-c");
  MakeInstance("node-a", "Running");
  MakeMigration("m1", "web-1", "node-b");
  MakeMigration("m2", "web-1", "node-c");
  migrations_->Stop();  // the cache as both workers saw it
  Reconcile("m1");
  Reconcile("m2");
  std::set<std::string> phases = {MigStatus("m1").value("phase", ""), MigStatus("m2").value("phase", "")};
  EXPECT_EQ(phases, (std::set<std::string>{kScheduled, kFailed}))
      << "m1: " << MigStatus("m1").dump() << "\nm2: " << MigStatus("m2").dump();
}

// A node gone quiet does not leave a migration pending forever: not started within kStartTimeout of being scheduled,
// it fails saying which node did not do its part; before that it is looked at again when the time is up.
TEST_F(MigrationServerTest, AMigrationNotStartedInTimeFails) {
  MakeNode("node-a");
  MakeNode("node-b");
  MakeInstance("node-a", "Running");
  json recent = {{"phase", kScheduled}, {"sourceNode", "node-a"}, {"targetNode", "node-b"}, {"live", true},
                 {"scheduledTime", NowRfc3339()}};
  MakeMigration("fresh", "web-1", "", recent);
  auto r = rec_->Reconcile("default/fresh");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(MigStatus("fresh").value("phase", ""), kScheduled);
  EXPECT_GT(r->requeue_after.count(), 0) << "looked at again when its time is up";
  json old = recent;
  old["scheduledTime"] = FormatRfc3339(std::time(nullptr) - MigrationReconciler::kStartTimeout.count() - 5);
  MakeMigration("stale", "web-1", "", old);
  Reconcile("stale");
  json st = MigStatus("stale");
  EXPECT_EQ(st.value("phase", ""), kFailed);
  EXPECT_EQ(st.value("reason", ""), "StartTimeout");
  EXPECT_NE(st.value("message", "").find("node node-b did not prepare to take it"), std::string::npos) << st.dump();
  old["phase"] = kTargetReady;
  MakeMigration("stale2", "web-1", "", old);
  Reconcile("stale2");
  EXPECT_NE(MigStatus("stale2").value("message", "").find("node node-a did not begin to send it"), std::string::npos);
  EXPECT_EQ(Instance()["spec"]["nodeName"], "node-a");
}

TEST_F(MigrationServerTest, MigratedBindsTheInstanceToTheTargetAndSucceeds) {
  MakeNode("node-a");
  MakeNode("node-b");
  json before = MakeInstance("node-a", "Running");
  MakeMigration("m1", "web-1", "",
                {{"phase", kMigrated}, {"sourceNode", "node-a"}, {"targetNode", "node-b"}, {"live", true}});
  Reconcile("m1");
  json inst = Instance();
  EXPECT_EQ(inst["spec"]["nodeName"], "node-b");
  EXPECT_EQ(MetaString(inst, "uid"), MetaString(before, "uid")) << "the same instance, moved";
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kSucceeded);
  EXPECT_EQ(st.value("reason", ""), "Migrated");
  EXPECT_FALSE(st.value("completionTime", "").empty());
  EXPECT_EQ(Events("Succeeded"), 1);
}

// ---- The node agent: MigrationAgentReconciler -------------------------------------------------------------------

// The fake hypervisor with a migratable XML as libvirt shows it (kSourceXml, on the source's paths).
class XmlHypervisor : public fakes::FakeHypervisor {
 public:
  StatusOr<std::string> MigratableXml(const std::string& name) override {
    if (!Has(name)) return NotFound("domain " + name);
    return std::string(kSourceXml);
  }
};

// Seeds in memory: what was written where.
class FakeSeeds : public host::SeedDisks {
 public:
  std::string Stamp(const std::string& path) override {
    std::lock_guard l(mu_);
    auto it = stamps_.find(path);
    return it == stamps_.end() ? "" : it->second;
  }
  Status Write(const std::string& path, const std::map<std::string, std::string>& files,
               const std::string& stamp) override {
    std::lock_guard l(mu_);
    stamps_[path] = stamp;
    written_[path] = files;
    return Status::Ok();
  }
  std::map<std::string, std::map<std::string, std::string>> Written() {
    std::lock_guard l(mu_);
    return written_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> stamps_;
  std::map<std::string, std::map<std::string, std::string>> written_;
};

const json kEndpointB = {{"libvirtURI", "qemu+tcp://10.250.0.12/system"}, {"address", "10.250.0.12"}};

class MigrationAgentTest : public MigrationEnv {
 protected:
  void SetUp() override {
    MigrationEnv::SetUp();
    // A kernel image, cached on the nodes in `cached_on_` (each node's own storage holds its cache volume).
    json img = MustCreate({{"apiVersion", "stratus.io/v1"},
                           {"kind", "Image"},
                           {"metadata", {{"name", "k"}, {"namespace", "default"}}},
                           {"spec", {{"type", "kernel"}, {"source", {{"url", "http://example.invalid/k"}}}}}},
                          "images");
    image_uid_ = MetaString(img, "uid");
    storage_a_.PutVolume("stratus-images", {"img-" + image_uid_, "", 1 << 20, 0, "raw"});
    storage_b_.PutVolume("stratus-images", {"img-" + image_uid_, "", 1 << 20, 0, "raw"});
    CacheImageOn({"node-a", "node-b"});
  }
  void TearDown() override {
    agent_.reset();
    inst_.reset();
    MigrationEnv::TearDown();
  }
  void CacheImageOn(const std::vector<std::string>& nodes) {
    auto cur = client_->Get("images", "default", "k");
    ASSERT_TRUE(cur.ok());
    json img = *cur;
    img["status"]["nodes"] = json::object();
    for (const auto& n : nodes) img["status"]["nodes"][n] = {{"phase", "Ready"}};
    auto u = client_->UpdateStatus("images", "default", img);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    ASSERT_TRUE(Cached(images_.get(), *u));
  }
  std::string DataDir(const std::string& node) { return (dir_ / node).string(); }
  // The agent of `node` (its instance reconciler, hypervisor and storage); `owner`: its fence's mark.
  void Agent(const std::string& node, const std::string& owner = "") {
    agent_.reset();
    instance::Options o;
    o.node = node;
    o.owner = owner;
    o.data_dir = DataDir(node);
    o.seeds = &seeds_;
    inst_ = std::make_unique<instance::InstanceReconciler>(client_.get(), instances_.get(), images_.get(),
                                                           flavors_.get(), Hv(node), Storage(node), o, nullptr,
                                                           nullptr, migrations_.get());
    AgentOptions ao;
    ao.node = node;
    ao.progress_period = 20ms;
    agent_ = std::make_unique<MigrationAgentReconciler>(client_.get(), migrations_.get(), nodes_.get(), inst_.get(),
                                                        Hv(node), ao);
  }
  XmlHypervisor* Hv(const std::string& node) { return node == "node-a" ? &hv_a_ : &hv_b_; }
  fakes::FakeStoragePools* Storage(const std::string& node) { return node == "node-a" ? &storage_a_ : &storage_b_; }
  std::string ImagePath(const std::string& node) {
    auto v = Storage(node)->Volume("stratus-images", "img-" + image_uid_);
    return v.ok() ? v->path : "";
  }
  // web-1's running domain on node-a, as node-a's instance reconciler made it.
  void RunningDomainOnA(const json& inst) {
    fakes::FakeHypervisor::Domain d;
    d.state = DomainState::kRunning;
    d.instance_uid = MetaString(inst, "uid");
    d.spec.name = kDom;
    d.spec.kernel_path = ImagePath("node-a");
    hv_a_.Put(kDom, d);
    hv_a_.TakeCalls();
  }
  StatusOr<runtime::Result> Reconcile(const std::string& name) { return agent_->Reconcile("default/" + name); }
  // web-1 runs on node-a and migration m1 is Scheduled to node-b; node-b's agent takes its turn.
  StatusOr<runtime::Result> ScheduledOnTargetNodeB() {
    MakeNode("node-a");
    MakeNode("node-b", {}, kEndpointB);
    MakeInstance("node-a", "Running");
    Agent("node-b");
    MakeMigration("m1", "web-1", "",
                  {{"phase", kScheduled}, {"sourceNode", "node-a"}, {"targetNode", "node-b"}, {"live", true}});
    return Reconcile("m1");
  }
  json SourceStatus(const std::string& phase) {
    return {{"phase", phase}, {"sourceNode", "node-a"}, {"targetNode", "node-b"}, {"live", true},
            {"target", kTargetPaths}};
  }

  XmlHypervisor hv_a_, hv_b_;
  fakes::FakeStoragePools storage_a_, storage_b_;
  FakeSeeds seeds_;
  std::string image_uid_;
  std::unique_ptr<instance::InstanceReconciler> inst_;
  std::unique_ptr<MigrationAgentReconciler> agent_;
};

TEST_F(MigrationAgentTest, TheSourceMigratesWithTheXmlRewrittenToTheTargetsPaths) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  RunningDomainOnA(MakeInstance("node-a", "Running"));
  Agent("node-a");
  MakeMigration("m1", "web-1", "", SourceStatus(kTargetReady));
  auto r = Reconcile("m1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(hv_a_.migrations.size(), 1u);
  const host::MigrateRequest& req = hv_a_.migrations[0];
  EXPECT_EQ(req.dest_uri, "qemu+tcp://10.250.0.12/system");
  EXPECT_EQ(req.migrate_uri, "tcp://10.250.0.12");
  EXPECT_EQ(req.listen_address, "10.250.0.12");
  EXPECT_TRUE(req.copy_storage) << "its data disk is node-local: libvirt copies it";
  EXPECT_EQ(At(req.dest_xml, "/domain/devices/disk[target/@dev='vdb']/source/@file"), "/b/pool/data.qcow2");
  EXPECT_EQ(At(req.dest_xml, "/domain/os/kernel"), "/b/images/img-k");
  EXPECT_EQ(At(req.dest_xml, "/domain/os/initrd"), "/b/images/img-r");
  EXPECT_EQ(At(req.dest_xml, "/domain/devices/disk[target/@dev='hdc']/source/@file"),
            "/b/instances/default/web-1/seed.iso");
  EXPECT_EQ(At(req.dest_xml, "/domain/devices/serial/log/@file"), "/b/instances/default/web-1/console.log");
  EXPECT_FALSE(hv_a_.Has(kDom)) << "the domain left node-a";
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kMigrated);
  EXPECT_EQ(st.value("reason", ""), "Migrated");
  EXPECT_FALSE(st.value("startTime", "").empty());
  EXPECT_EQ(st["progress"].value("percent", 0), 100);
  EXPECT_EQ(Events("Migrating"), 1);
}

TEST_F(MigrationAgentTest, AFailedMigrationLeavesTheDomainRunningOnTheSource) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  RunningDomainOnA(MakeInstance("node-a", "Running"));
  Agent("node-a");
  MakeMigration("m1", "web-1", "", SourceStatus(kTargetReady));
  hv_a_.FailNext("Migrate", Internal("operation failed: migration out job: unexpectedly failed"));
  ASSERT_TRUE(Reconcile("m1").ok());
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kFailed);
  EXPECT_EQ(st.value("reason", ""), "MigrationFailed");
  EXPECT_NE(st.value("message", "").find("unexpectedly failed"), std::string::npos) << st.dump();
  EXPECT_NE(st.value("message", "").find("keeps running on node-a"), std::string::npos) << st.dump();
  EXPECT_FALSE(st.value("completionTime", "").empty());
  EXPECT_TRUE(hv_a_.Has(kDom));
  EXPECT_EQ(hv_a_.Get(kDom).state, DomainState::kRunning);
  EXPECT_TRUE(hv_a_.migrations.empty());
  EXPECT_EQ(Events("MigrationFailed"), 1);
  // Failed is over: the agent does not try again.
  ASSERT_TRUE(Cached(migrations_.get(), Migration("m1")));
  ASSERT_TRUE(Reconcile("m1").ok());
  EXPECT_TRUE(hv_a_.TakeCalls().empty());
  EXPECT_TRUE(hv_a_.Has(kDom));
}

TEST_F(MigrationAgentTest, NoEndpointOnTheTargetNodeFailsWithoutMigrating) {
  MakeNode("node-a");
  MakeNode("node-b");  // no status.migration
  RunningDomainOnA(MakeInstance("node-a", "Running"));
  Agent("node-a");
  MakeMigration("m1", "web-1", "", SourceStatus(kTargetReady));
  ASSERT_TRUE(Reconcile("m1").ok());
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kFailed);
  EXPECT_EQ(st.value("reason", ""), "NoTargetEndpoint");
  EXPECT_NE(st.value("message", "").find("node-b"), std::string::npos) << st.dump();
  EXPECT_TRUE(hv_a_.TakeCalls().empty());
  EXPECT_TRUE(hv_a_.Has(kDom));
}

TEST_F(MigrationAgentTest, OnlyTheSourceMigratesAndOnlyFromTargetReady) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  RunningDomainOnA(MakeInstance("node-a", "Running"));
  // node-a is neither source nor target of this one.
  json other = SourceStatus(kTargetReady);
  other["sourceNode"] = "node-c";
  Agent("node-a");
  MakeMigration("elsewhere", "web-1", "", other);
  ASSERT_TRUE(Reconcile("elsewhere").ok());
  EXPECT_TRUE(hv_a_.migrations.empty());
  EXPECT_EQ(MigStatus("elsewhere").value("phase", ""), kTargetReady);
  // The target's agent does not migrate it either.
  Agent("node-b");
  MakeMigration("m1", "web-1", "", SourceStatus(kTargetReady));
  ASSERT_TRUE(Reconcile("m1").ok());
  EXPECT_TRUE(hv_a_.migrations.empty());
  EXPECT_EQ(MigStatus("m1").value("phase", ""), kTargetReady);
}

TEST_F(MigrationAgentTest, AnAgentRestartedMidMigrationFindsOutHowItEnded) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  RunningDomainOnA(MakeInstance("node-a", "Running"));
  Agent("node-a");  // a new process: nothing in flight
  // The domain still runs here: libvirt cancelled it when the agent went away.
  MakeMigration("m1", "web-1", "", SourceStatus(kRunning));
  ASSERT_TRUE(Reconcile("m1").ok());
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kFailed);
  EXPECT_EQ(st.value("reason", ""), "Interrupted");
  EXPECT_TRUE(hv_a_.Has(kDom));
  EXPECT_TRUE(hv_a_.TakeCalls().empty()) << "nothing is migrated again or touched";
  // The domain is gone from here: it made it.
  hv_a_.Remove(kDom);
  MakeMigration("m2", "web-1", "", SourceStatus(kRunning));
  ASSERT_TRUE(Reconcile("m2").ok());
  EXPECT_EQ(MigStatus("m2").value("phase", ""), kMigrated);
  EXPECT_EQ(MigStatus("m2").value("reason", ""), "Migrated");
}

TEST_F(MigrationAgentTest, TheTargetPreparesAndPublishesItsPaths) {
  auto r = ScheduledOnTargetNodeB();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kTargetReady) << st.dump();
  EXPECT_EQ(st.value("reason", ""), "TargetReady");
  ASSERT_TRUE(st.contains("target")) << st.dump();
  const json& t = st["target"];
  ASSERT_FALSE(ImagePath("node-b").empty());
  EXPECT_EQ(t.value("kernel", ""), ImagePath("node-b"));
  const std::string seed = instance::SeedPath(DataDir("node-b"), "default", "web-1");
  const std::string log = instance::ConsoleLogPath(DataDir("node-b"), "default", "web-1");
  EXPECT_EQ(t.value("seed", ""), seed);
  EXPECT_EQ(t.value("consoleLog", ""), log);
  // What the domain needs is there before it arrives: its seed written, its console directory made.
  EXPECT_EQ(seeds_.Written().count(seed), 1u);
  EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::path(log).parent_path()));
  // Nothing is defined or started here: the domain comes by migration.
  EXPECT_TRUE(hv_b_.TakeCalls().empty());
  EXPECT_FALSE(hv_b_.Has(kDom));
  EXPECT_TRUE(hv_a_.TakeCalls().empty());
  EXPECT_EQ(Instance()["spec"]["nodeName"], "node-a");
}

TEST_F(MigrationAgentTest, TheTargetWaitsForImagesNotCachedThere) {
  CacheImageOn({"node-a"});
  auto r = ScheduledOnTargetNodeB();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->requeue_after.count(), 0) << "looked at again";
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kScheduled);
  EXPECT_EQ(st.value("reason", ""), "TargetNotReady");
  EXPECT_NE(st.value("message", "").find("node-b"), std::string::npos) << st.dump();
  EXPECT_FALSE(st.contains("target"));
  EXPECT_TRUE(hv_b_.TakeCalls().empty());
  // Once it is cached there, the target is ready.
  CacheImageOn({"node-a", "node-b"});
  ASSERT_TRUE(Cached(migrations_.get(), Migration("m1")));
  ASSERT_TRUE(Reconcile("m1").ok());
  EXPECT_EQ(MigStatus("m1").value("phase", ""), kTargetReady);
}

TEST_F(MigrationAgentTest, ATargetThatHasADomainOfThatNameAlreadyFails) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  MakeInstance("node-a", "Running");
  fakes::FakeHypervisor::Domain stale;
  stale.state = DomainState::kShutoff;
  stale.instance_uid = "u-stale";
  hv_b_.Put(kDom, stale);
  Agent("node-b");
  MakeMigration("m1", "web-1", "",
                {{"phase", kScheduled}, {"sourceNode", "node-a"}, {"targetNode", "node-b"}, {"live", true}});
  ASSERT_TRUE(Reconcile("m1").ok());
  json st = MigStatus("m1");
  EXPECT_EQ(st.value("phase", ""), kFailed);
  EXPECT_EQ(st.value("reason", ""), "TargetFailed");
  EXPECT_NE(st.value("message", "").find(kDom), std::string::npos) << st.dump();
  EXPECT_TRUE(hv_b_.Has(kDom)) << "not ours to remove";
}

// ---- The instance reconciler's guards ---------------------------------------------------------------------------

using MigrationInstanceGuardTest = MigrationAgentTest;

TEST_F(MigrationInstanceGuardTest, TheSourceLeavesAMovingInstanceAlone) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  MakeInstance("node-a", "Running");
  Agent("node-a");
  // Its domain is in flight: gone from node-a's list while libvirt moves it. Nothing is made again here.
  for (const char* phase : {kTargetReady, kRunning, kMigrated}) {
    SCOPED_TRACE(phase);
    if (Migration("m1").is_null()) MakeMigration("m1", "web-1", "", SourceStatus(phase));
    else SetMigrationStatus("m1", SourceStatus(phase));
    auto r = inst_->Reconcile("default/web-1");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_GT(r->requeue_after.count(), 0);
    EXPECT_TRUE(hv_a_.TakeCalls().empty());
    EXPECT_FALSE(hv_a_.Has(kDom));
  }
  // Just Succeeded (the binding has not reached this cache yet): still left alone.
  json done = SourceStatus(kSucceeded);
  done["completionTime"] = NowRfc3339();
  SetMigrationStatus("m1", done);
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_TRUE(hv_a_.TakeCalls().empty());
  // The migration failed (the domain would be here again, or never left): the instance is node-a's to keep
  // running, so a missing domain is made again. This is what the guard held back.
  json failed = SourceStatus(kFailed);
  failed["reason"] = "MigrationFailed";
  SetMigrationStatus("m1", failed);
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_EQ(hv_a_.TakeCalls(), (std::vector<std::string>{"Define " + std::string(kDom), "Start " + std::string(kDom)}));
}

TEST_F(MigrationInstanceGuardTest, OnlyTheLatestMigrationFromThisNodeCounts) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  MakeInstance("node-a", "Running");
  Agent("node-a");
  // A migration from another node (this node is its target) does not stop node-a's own instance.
  json from_c = SourceStatus(kRunning);
  from_c["sourceNode"] = "node-c";
  from_c["targetNode"] = "node-a";
  MakeMigration("m1", "web-1", "", from_c);
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_EQ(hv_a_.TakeCalls(), (std::vector<std::string>{"Define " + std::string(kDom), "Start " + std::string(kDom)}));
  // A newer one from node-a is in flight: the latest is what counts (m1, from node-c, is older and listed first).
  hv_a_.Remove(kDom);
  // m2 is newer: a later creationTimestamp, or within the same second a later name.
  MakeMigration("m2", "web-1", "", SourceStatus(kRunning));
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_TRUE(hv_a_.TakeCalls().empty()) << "m2 from node-a is in flight";
  EXPECT_FALSE(hv_a_.Has(kDom));
}

// Moved away and straight back (a drain right after a migration): the newer move brought it home, so the older
// one's recent success no longer holds it here (it had kept node-a from even deleting it for two minutes).
TEST_F(MigrationInstanceGuardTest, AnInstanceMovedBackIsNotHeldByItsEarlierMove) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  MakeInstance("node-a", "Running");
  Agent("node-a");
  json away = SourceStatus(kSucceeded);
  away["completionTime"] = NowRfc3339();
  MakeMigration("m1", "web-1", "", away);
  EXPECT_TRUE(HeldBy(migrations_->List(), "default", "web-1", "node-a", std::time(nullptr)));
  json back = away;
  back["sourceNode"] = "node-b";
  back["targetNode"] = "node-a";
  MakeMigration("m2", "web-1", "", back);  // same second: the name orders them
  EXPECT_FALSE(HeldBy(migrations_->List(), "default", "web-1", "node-a", std::time(nullptr)));
  EXPECT_TRUE(HeldBy(migrations_->List(), "default", "web-1", "node-b", std::time(nullptr)))
      << "node-b, which it just left, still may not have seen it leave";
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_EQ(hv_a_.TakeCalls(), (std::vector<std::string>{"Define " + std::string(kDom), "Start " + std::string(kDom)}));
  // Long after: nothing holds it anywhere.
  EXPECT_FALSE(HeldBy(migrations_->List(), "default", "web-1", "node-b", std::time(nullptr) + 600));
}

// A newer migration of the same instance that the server refused (AlreadyMigrating) or has not looked at yet
// (Pending) is the instance's LatestMigration; the source's guard still holds for the one in flight.
TEST_F(MigrationInstanceGuardTest, ARefusedSecondMigrationDoesNotLiftTheGuardOfTheOneInFlight) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  MakeInstance("node-a", "Running");
  Agent("node-a");
  MakeMigration("m1", "web-1", "", SourceStatus(kMigrated));  // the domain runs on node-b now; not bound there yet
  // m2 is newer: a later creationTimestamp, or within the same second a later name.
  MakeMigration("m2");                                        // Pending
  ASSERT_EQ(MetaString(LatestMigration(migrations_->List(), "default", "web-1"), "name"), "m2");
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_TRUE(hv_a_.TakeCalls().empty()) << "Pending m2 lifted the guard of m1";
  hv_a_.Remove(kDom);
  hv_a_.TakeCalls();
  SetMigrationStatus("m2", {{"phase", kFailed}, {"reason", "AlreadyMigrating"}});
  ASSERT_TRUE(inst_->Reconcile("default/web-1").ok());
  EXPECT_TRUE(hv_a_.TakeCalls().empty()) << "Failed m2 lifted the guard of m1";
}

TEST_F(MigrationInstanceGuardTest, TheFenceKeepsADomainArrivingHereUntilItsMigrationFails) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  const std::string owner_a = "stratus:cluster-1/node-a";
  json web = MakeInstance("node-b", "Running");  // still bound to its source, node-b
  Agent("node-a", owner_a);
  fakes::FakeHypervisor::Domain arriving;
  arriving.state = DomainState::kRunning;
  arriving.instance_uid = MetaString(web, "uid");
  arriving.spec.name = kDom;
  arriving.spec.owner = owner_a;
  hv_a_.Put(kDom, arriving);
  hv_a_.TakeCalls();
  json in = {{"phase", kRunning}, {"sourceNode", "node-b"}, {"targetNode", "node-a"}, {"live", true}};
  MakeMigration("m1", "web-1", "", in);
  for (const char* phase : {kTargetReady, kRunning, kMigrated}) {
    SCOPED_TRACE(phase);
    in["phase"] = phase;
    SetMigrationStatus("m1", in);
    ASSERT_TRUE(inst_->Reconcile(instance::InstanceReconciler::kSweepKey).ok());
    EXPECT_TRUE(hv_a_.Has(kDom)) << "an arriving domain is not an orphan";
    EXPECT_TRUE(hv_a_.TakeCalls().empty());
  }
  // Succeeded a moment ago: the binding may not be in this cache yet; kept.
  in["phase"] = kSucceeded;
  in["completionTime"] = NowRfc3339();
  SetMigrationStatus("m1", in);
  ASSERT_TRUE(inst_->Reconcile(instance::InstanceReconciler::kSweepKey).ok());
  EXPECT_TRUE(hv_a_.Has(kDom));
  // Failed: the instance stays on node-b; a domain of ours here is an orphan and is fenced.
  in["phase"] = kFailed;
  in["reason"] = "MigrationFailed";
  SetMigrationStatus("m1", in);
  ASSERT_TRUE(inst_->Reconcile(instance::InstanceReconciler::kSweepKey).ok());
  EXPECT_FALSE(hv_a_.Has(kDom)) << "fenced";
  EXPECT_EQ(hv_a_.TakeCalls(), (std::vector<std::string>{"Destroy " + std::string(kDom), "Undefine " + std::string(kDom)}));
  EXPECT_EQ(Events("Fenced"), 1);
}

TEST_F(MigrationInstanceGuardTest, TheFenceIgnoresMigrationsToOtherNodes) {
  MakeNode("node-a");
  MakeNode("node-b", {}, kEndpointB);
  const std::string owner_a = "stratus:cluster-1/node-a";
  json web = MakeInstance("node-b", "Running");
  Agent("node-a", owner_a);
  fakes::FakeHypervisor::Domain left_behind;
  left_behind.state = DomainState::kRunning;
  left_behind.instance_uid = MetaString(web, "uid");
  left_behind.spec.name = kDom;
  left_behind.spec.owner = owner_a;
  hv_a_.Put(kDom, left_behind);
  // Running, but to node-c: node-a's copy is not arriving anywhere.
  MakeMigration("m1", "web-1", "", {{"phase", kRunning}, {"sourceNode", "node-b"}, {"targetNode", "node-c"}});
  ASSERT_TRUE(inst_->Reconcile(instance::InstanceReconciler::kSweepKey).ok());
  EXPECT_FALSE(hv_a_.Has(kDom));
}

}  // namespace
}  // namespace stratus::migration
