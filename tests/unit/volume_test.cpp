// Volume decisions: how storage is created (blank, qcow2 over the image, full copy, clone), resize, who holds a
// volume, root volume names, --pool parsing, placement pinned to volumes and root-disk space, and the API's
// admission rules (grow-only, immutable fields, no delete while attached).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "stratus/agent/agent.h"
#include "stratus/apiserver/admission.h"
#include "stratus/apiserver/sqlite_store.h"
#include "stratus/placement/placement.h"
#include "stratus/volume/volume.h"
#include "registry_env.h"

namespace stratus::volume {
namespace {

SourceInfo Image(const std::string& format, uint64_t vbytes) {
  return {"stratus-n-images", "img-1", "/pools/images/img-1", format, vbytes};
}

TEST(VolumePlanTest, BlankBackingFileFullCopyAndClone) {
  auto blank = PlanCreate("dir", "qcow2", 1 << 30, "", nullptr);
  ASSERT_TRUE(blank.ok());
  EXPECT_EQ(blank->method, CreatePlan::Method::kBlank);
  EXPECT_EQ(blank->format, "qcow2");

  SourceInfo img = Image("qcow2", 64 << 20);
  auto overlay = PlanCreate("dir", "qcow2", 1 << 30, "image", &img);
  ASSERT_TRUE(overlay.ok());
  EXPECT_EQ(overlay->method, CreatePlan::Method::kBackingFile);
  EXPECT_EQ(overlay->source_path, "/pools/images/img-1");
  EXPECT_EQ(overlay->source_format, "qcow2");
  EXPECT_EQ(overlay->bytes, 1u << 30);

  auto raw = PlanCreate("dir", "raw", 1 << 30, "image", &img);
  EXPECT_EQ(raw->method, CreatePlan::Method::kFullCopy);
  EXPECT_EQ(raw->format, "raw");

  // An LVM pool has no qcow2 and no backing files: always a full copy into a raw LV.
  auto lv = PlanCreate("logical", "qcow2", 1 << 30, "image", &img);
  EXPECT_EQ(lv->method, CreatePlan::Method::kFullCopy);
  EXPECT_EQ(lv->format, "raw");
  EXPECT_EQ(PlanCreate("logical", "qcow2", 1 << 30, "", nullptr)->format, "raw");

  // An ISO (stored raw) can back a qcow2 too; anything else is copied.
  SourceInfo iso = Image("raw", 1 << 20);
  EXPECT_EQ(PlanCreate("dir", "qcow2", 1 << 30, "image", &iso)->method, CreatePlan::Method::kBackingFile);

  SourceInfo vol{"stratus-n-default", "vol-2", "/pools/default/vol-2", "qcow2", 1 << 30};
  auto clone = PlanCreate("dir", "qcow2", 2ull << 30, "volume", &vol);
  EXPECT_EQ(clone->method, CreatePlan::Method::kCloneVolume);  // a clone never depends on its source
}

TEST(VolumePlanTest, SmallerThanTheSourceIsRefusedNamingTheField) {
  SourceInfo img = Image("qcow2", 2ull << 30);
  auto p = PlanCreate("dir", "qcow2", 1 << 30, "image", &img);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalid);
  EXPECT_NE(p.status().message().find("spec.size: 1Gi is smaller than the image"), std::string::npos)
      << p.status().message();
  EXPECT_NE(p.status().message().find("2Gi"), std::string::npos);
}

TEST(VolumePlanTest, ResizeGrowsOnlyAndLiveWhenRunning) {
  EXPECT_EQ(PlanResize(1 << 30, 1 << 30, true), ResizeAction::kNone);
  EXPECT_EQ(PlanResize(1 << 30, 2ull << 30, true), ResizeAction::kGrowLive);
  EXPECT_EQ(PlanResize(1 << 30, 2ull << 30, false), ResizeAction::kGrowOffline);
  EXPECT_EQ(PlanResize(2ull << 30, 1 << 30, false), ResizeAction::kRefuseShrink);
}

json Inst(const std::string& name, const std::string& created, json volumes, json status = json::object()) {
  json i = {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}, {"creationTimestamp", created}}},
            {"spec", {{"volumes", volumes}}}};
  if (!status.empty()) i["status"] = status;
  return i;
}
json Vol(const std::string& holder = "") {
  json v = {{"metadata", {{"name", "data"}, {"namespace", "default"}}}, {"spec", {{"size", "1Gi"}}}};
  if (!holder.empty()) v["status"]["attachment"] = {{"instance", holder}, {"device", "vdb"}};
  return v;
}
const json kAsk = json::array({{{"volume", "data"}, {"device", "vdb"}}});

TEST(VolumeAttachmentTest, OldestAskerWinsAndTheHolderKeepsIt) {
  json a = Inst("a", "2026-01-02T00:00:00Z", kAsk), b = Inst("b", "2026-01-01T00:00:00Z", kAsk);
  EXPECT_EQ(ChooseHolder(Vol(), {a, b}), "b");           // oldest first
  EXPECT_EQ(ChooseHolder(Vol("a"), {a, b}), "a");        // the current holder keeps it
  EXPECT_EQ(ChooseHolder(Vol(), {}), "");
  json other_ns = b;
  other_ns["metadata"]["namespace"] = "other";
  EXPECT_EQ(ChooseHolder(Vol(), {other_ns}), "");        // volumes are namespaced
}

TEST(VolumeAttachmentTest, ReleasedOnlyOnceTheDomainLetGo) {
  json attached = {{"volumes", json::array({{{"name", "data"}, {"device", "vdb"}}})}};
  // a removed the entry but its domain still has the disk (unplug under way): nobody else gets it yet.
  json a = Inst("a", "2026-01-01T00:00:00Z", json::array(), attached);
  json b = Inst("b", "2026-01-02T00:00:00Z", kAsk);
  EXPECT_EQ(ChooseHolder(Vol("a"), {a, b}), "a");
  EXPECT_TRUE(ReportsAttached(a, "data"));
  // Once the domain reports it gone, b gets it.
  json a2 = Inst("a", "2026-01-01T00:00:00Z", json::array());
  EXPECT_EQ(ChooseHolder(Vol("a"), {a2, b}), "b");
  // A terminating instance does not ask any more.
  json dying = Inst("c", "2025-01-01T00:00:00Z", kAsk);
  dying["metadata"]["deletionTimestamp"] = "2026-01-03T00:00:00Z";
  EXPECT_EQ(ChooseHolder(Vol(), {dying, b}), "b");
}

TEST(VolumeAttachmentTest, VolumesOfListsRootFirst) {
  json i = Inst("web", "t", kAsk);
  i["spec"]["image"] = "debian";
  auto uses = VolumesOf(i);
  ASSERT_EQ(uses.size(), 2u);
  EXPECT_EQ(uses[0].volume, "web-root");
  EXPECT_EQ(uses[0].device, "vda");
  EXPECT_TRUE(uses[0].root);
  EXPECT_EQ(uses[1].volume, "data");
  EXPECT_EQ(uses[1].device, "vdb");
}

TEST(VolumeAttachmentTest, RootVolumeNamesStayDnsLabels) {
  json i = {{"metadata", {{"name", "web-1"}, {"uid", "0123abcd-4567-89ef-0123-456789abcdef"}}}};
  EXPECT_EQ(RootVolumeName(i), "web-1-root");
  i["metadata"]["name"] = std::string(63, 'a');
  std::string long_name = RootVolumeName(i);
  EXPECT_LE(long_name.size(), 63u);
  EXPECT_TRUE(ValidateDns1123Label(long_name, "name").ok()) << long_name;
  EXPECT_NE(long_name.find("0123abcd"), std::string::npos);
}

TEST(PoolSpecTest, DirAndLogicalAndErrors) {
  auto d = agent::ParsePoolSpec("fast=dir:/srv/fast");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->type, "dir");
  EXPECT_EQ(d->path, "/srv/fast");
  auto l = agent::ParsePoolSpec("lvm=logical:vg0");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->vg, "vg0");
  for (const char* bad : {"fast", "fast=ssd:/x", "fast=dir:relative", "Fast=dir:/x", "images=dir:/x",
                          "v=logical:../etc", "v=logical:"}) {
    auto r = agent::ParsePoolSpec(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--pool"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace stratus::volume

namespace stratus::placement {
namespace {

NodeView StorageNode(const std::string& name, int64_t free_bytes) {
  NodeView n;
  n.name = name;
  n.ready = true;
  n.alloc_vcpus = 4;
  n.alloc_memory_mib = 4096;
  n.pool_free["default"] = free_bytes;
  n.default_pool = "default";
  return n;
}

// A demand of `vcpus` and `memory_mib`, nothing else.
Demand Sized(int vcpus, int64_t memory_mib) {
  Demand d;
  d.vcpus = vcpus;
  d.memory_mib = memory_mib;
  return d;
}

TEST(VolumePlacementTest, PinnedToTheNodeOfItsVolumes) {
  Demand d = Sized(1, 256);
  std::map<std::string, json> vols = {
      {"a", {{"spec", {{"nodeName", "n2"}}}}}, {"b", {{"spec", {{"nodeName", "n2"}}}}}, {"c", {{"spec", json::object()}}}};
  json inst = {{"spec", {{"volumes", json::array({{{"volume", "a"}}, {{"volume", "b"}}})}}}};
  std::string wait;
  ASSERT_TRUE(PinToVolumes(inst, vols, &d, &wait).ok());
  EXPECT_EQ(wait, "");
  EXPECT_EQ(d.pinned_node, "n2");
  Options o;
  auto choice = Choose(d, json::object(), {StorageNode("n1", 1ll << 40), StorageNode("n2", 1 << 30)}, o);
  EXPECT_EQ(choice.node, "n2");
  d.pinned_node = "n3";
  d.pinned_why = "volume a";
  auto none = Choose(d, json::object(), {StorageNode("n1", 1ll << 40)}, o);
  EXPECT_EQ(none.node, "");
  EXPECT_NE(none.reasons[0].find("n1: does not hold volume a (on node n3)"), std::string::npos) << none.reasons[0];

  Demand w = Sized(1, 256);
  json waiting = {{"spec", {{"volumes", json::array({{{"volume", "c"}}})}}}};
  ASSERT_TRUE(PinToVolumes(waiting, vols, &w, &wait).ok());
  EXPECT_EQ(wait, "volume c is not placed on a node yet");
  json missing = {{"spec", {{"volumes", json::array({{{"volume", "zz"}}})}}}};
  EXPECT_TRUE(PinToVolumes(missing, vols, &w, &wait).ok()) << "a missing volume is a reason to wait, not an error";
  EXPECT_EQ(wait, "volume zz does not exist");

  vols["b"]["spec"]["nodeName"] = "n1";
  Demand split = Sized(1, 256);
  wait.clear();
  Status s = PinToVolumes(inst, vols, &split, &wait);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("volumes a (node n2) and b (node n1) are on different nodes"), std::string::npos) << s.message();
}

TEST(VolumePlacementTest, RootDiskNeedsRoomInThePool) {
  Demand d = Sized(1, 256);
  d.root_bytes = 10ull << 30;
  Options o;
  auto c = Choose(d, json::object(), {StorageNode("small", 1 << 30), StorageNode("big", 20ll << 30)}, o);
  EXPECT_EQ(c.node, "big");
  ASSERT_EQ(c.reasons.size(), 1u);
  EXPECT_NE(c.reasons[0].find("small: insufficient storage for the root disk in the default pool (need 10Gi"),
            std::string::npos) << c.reasons[0];
  d.root_pool = "ssd";
  auto none = Choose(d, json::object(), {StorageNode("big", 20ll << 30)}, o);
  EXPECT_NE(none.reasons[0].find("no pool ssd"), std::string::npos) << none.reasons[0];
}

TEST(VolumePlacementTest, ChoosesTheNodeWithMostFreeSpace) {
  NodeView down = StorageNode("down", 100ll << 30);
  down.ready = false;
  NodeView cordoned = StorageNode("cordoned", 100ll << 30);
  cordoned.unschedulable = true;
  std::vector<NodeView> nodes = {StorageNode("a", 5ll << 30), StorageNode("b", 8ll << 30), StorageNode("c", 8ll << 30),
                                 StorageNode("small", 1ll << 30), down, cordoned};
  struct Case {
    const char* name;
    int64_t bytes;
    std::string pool, pinned, why;
    std::string want;              // chosen node, "" for none
    std::vector<std::string> has;  // substrings of the reasons
  };
  std::vector<Case> cases = {
      {"most free, ties by name", 2ll << 30, "", "", "", "b",
       {"small: insufficient space (need 2Gi, free 1024 MiB)", "down: not Ready", "cordoned: unschedulable (cordoned)"}},
      {"pinned to a smaller node", 2ll << 30, "", "a", "source volume s", "a", {"b: not where source volume s is (a)"}},
      {"pinned to a cordoned node is allowed", 2ll << 30, "", "cordoned", "instance web", "cordoned", {}},
      {"no such pool anywhere", 1, "ssd", "", "", "", {"a: has no pool \"ssd\""}},
      {"too big for every node", 200ll << 30, "", "", "", "", {"b: insufficient space (need 200Gi, free 8192 MiB)"}},
  };
  for (const auto& c : cases) {
    Decision d = ChooseVolumeNode(c.bytes, c.pool, c.pinned, c.why, nodes);
    EXPECT_EQ(d.node, c.want) << c.name;
    std::string msg = VolumeDecisionMessage(d, nodes.size());
    for (const auto& h : c.has) EXPECT_NE(msg.find(h), std::string::npos) << c.name << ": " << msg;
  }
  EXPECT_EQ(VolumeDecisionMessage(Decision{}, 0), "0/0 nodes can hold this volume: no nodes are registered");
}

json PlacedVolume(const std::string& uid, const std::string& node, const std::string& size, bool made = false) {
  json v = {{"metadata", {{"name", "v-" + uid}, {"namespace", "default"}, {"uid", uid}}}, {"spec", {{"size", size}}}};
  if (!node.empty()) v["spec"]["nodeName"] = node;
  if (made) v["status"]["path"] = "/pool/v-" + uid;
  return v;
}

int64_t FreeAfter(const PoolSpaceCache& c, const std::string& node = "n1") {
  std::vector<NodeView> v = {StorageNode("n1", 10ll << 30), StorageNode("n2", 10ll << 30)};
  c.SubtractFrom(&v);
  for (const auto& n : v) {
    if (n.name == node) return PoolFree(n, "");
  }
  return -1;
}

TEST(PoolSpaceCacheTest, ManyDecidedAtOnceNeverOvercommit) {
  // Two nodes with 10 GiB each hold ten 2 GiB volumes; 8 threads place 10 each at once.
  PoolSpaceCache cache;
  std::atomic<int> placed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        Decision d = cache.ChooseAndAssume("u" + std::to_string(t) + "-" + std::to_string(i), 2ll << 30, "", "", "",
                                           {StorageNode("n1", 10ll << 30), StorageNode("n2", 10ll << 30)});
        if (!d.node.empty()) placed++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(placed.load(), 10);
  EXPECT_EQ(cache.NumAssumed(), 10u);
  EXPECT_EQ(FreeAfter(cache, "n1"), 0);
  EXPECT_EQ(FreeAfter(cache, "n2"), 0);
}

TEST(PoolSpaceCacheTest, AssumptionsEndWhenTheBindShowsOrFails) {
  PoolSpaceCache cache;
  cache.Assume("a", "n1", "", 2ll << 30);
  cache.Assume("b", "n1", "", 3ll << 30);
  EXPECT_EQ(FreeAfter(cache), 5ll << 30);
  // b's bind fails: its space is free again.
  EXPECT_TRUE(cache.Forget("b"));
  EXPECT_FALSE(cache.Forget("b"));
  EXPECT_EQ(FreeAfter(cache), 8ll << 30);
  // a unplaced in the cache (a late event): still assumed.
  cache.Observe(PlacedVolume("a", "", "2Gi"), false);
  EXPECT_TRUE(cache.Assumed("a"));
  // a's bind shows: counted once, as placed but not made.
  cache.Observe(PlacedVolume("a", "n1", "2Gi"), false);
  EXPECT_FALSE(cache.Assumed("a"));
  EXPECT_EQ(FreeAfter(cache), 8ll << 30);
  cache.Observe(PlacedVolume("a", "n1", "2Gi"), false);
  EXPECT_EQ(FreeAfter(cache), 8ll << 30);
  // Made: the node's own free space includes it from now on, so nothing is taken here.
  cache.Observe(PlacedVolume("a", "n1", "2Gi", true), false);
  EXPECT_EQ(FreeAfter(cache), 10ll << 30);
  // Deleted while its bind was in flight: its assumption goes with it.
  cache.Assume("c", "n1", "", 1ll << 30);
  cache.Observe(PlacedVolume("c", "", "1Gi"), true);
  EXPECT_EQ(cache.NumAssumed(), 0u);
  EXPECT_EQ(FreeAfter(cache), 10ll << 30);
}

TEST(VolumePlacementTest, ReadsPoolsFromNodeStatus) {
  json node = {{"status", {{"pools", json::array({{{"name", "default"}, {"default", true}, {"availableBytes", 100}},
                                                  {{"name", "images"}, {"images", true}, {"availableBytes", 5}},
                                                  {{"name", "fast"}, {"availableBytes", 7}}})}}}};
  NodeView v;
  ReadPools(node, &v);
  EXPECT_EQ(v.default_pool, "default");
  EXPECT_EQ(PoolFree(v, ""), 100);
  EXPECT_EQ(PoolFree(v, "fast"), 7);
  EXPECT_EQ(PoolFree(v, "images"), -1);  // the image cache is not for volumes
}

}  // namespace
}  // namespace stratus::placement

namespace stratus {
namespace {

const ResourceInfo& R(const char* kind) { return *FindByKind(kind); }

// An empty store (no Migration moves any volume), for the admission rules that look things up.
const Store& NoObjects() {
  struct Empty {
    std::string path =
        (std::filesystem::temp_directory_path() / ("stratus-admission-" + std::to_string(::getpid()) + ".db")).string();
    std::unique_ptr<Store> store;
    Empty() {
      SqliteStoreOptions o;
      o.path = path;
      store = std::move(OpenSqliteStore(o)).value();
    }
    ~Empty() {
      store.reset();
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    }
  };
  static Empty empty;
  return *empty.store;
}

TEST(AdmissionTest, VolumesGrowOnlyAndKeepTheirIdentity) {
  json cur = {{"metadata", {{"name", "v"}}}, {"spec", {{"size", "2Gi"}, {"format", "qcow2"}, {"nodeName", "n1"}}}};
  json next = cur;
  next["spec"]["size"] = "4Gi";
  EXPECT_TRUE(AdmitUpdate(R("Volume"), cur, next, NoObjects()).ok());
  next["spec"]["size"] = "1Gi";
  Status s = AdmitUpdate(R("Volume"), cur, next, NoObjects());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_EQ(s.causes()[0].field, "spec.size");
  EXPECT_NE(s.message().find("may not shrink from 2Gi to 1Gi"), std::string::npos) << s.message();
  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"format", "raw"}, {"pool", "fast"}, {"nodeName", "n2"}, {"source", {{"image", "x"}}}}) {
    json n = cur;
    n["spec"][field] = value;
    Status f = AdmitUpdate(R("Volume"), cur, n, NoObjects());
    ASSERT_FALSE(f.ok()) << field;
    EXPECT_EQ(f.causes()[0].field, "spec." + field);
  }
  // Placement may set nodeName once.
  json unplaced = cur;
  unplaced["spec"].erase("nodeName");
  EXPECT_TRUE(AdmitUpdate(R("Volume"), unplaced, cur, NoObjects()).ok());
}

TEST(AdmissionTest, InstanceImageAndRootDisk) {
  json cur = {{"metadata", {{"name", "i"}}}, {"spec", {{"image", "deb"}, {"rootDisk", {{"size", "2Gi"}}}}}};
  json next = cur;
  next["spec"]["rootDisk"]["size"] = "3Gi";
  EXPECT_TRUE(AdmitUpdate(R("Instance"), cur, next, NoObjects()).ok());
  next["spec"]["rootDisk"]["size"] = "1Gi";
  EXPECT_EQ(AdmitUpdate(R("Instance"), cur, next, NoObjects()).causes()[0].field, "spec.rootDisk.size");
  json other = cur;
  other["spec"]["image"] = "ubuntu";
  Status s = AdmitUpdate(R("Instance"), cur, other, NoObjects());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.causes()[0].field, "spec.image");
  EXPECT_NE(s.message().find("may only change with spec.rebuildPolicy: Recreate"), std::string::npos) << s.message();
  // A rebuild: another image with rebuildPolicy Recreate; never adding or removing the image.
  other["spec"]["rebuildPolicy"] = "Recreate";
  EXPECT_TRUE(AdmitUpdate(R("Instance"), cur, other, NoObjects()).ok());
  json none = other;
  none["spec"].erase("image");
  EXPECT_NE(AdmitUpdate(R("Instance"), cur, none, NoObjects()).message().find("may not be added or removed"), std::string::npos);
}

using AdmissionStoreTest = RegistryEnv;

TEST_F(AdmissionStoreTest, ARootVolumeGoesWithItsInstanceOrForARebuild) {
  json inst = {{"apiVersion", "stratus.io/v1"},
               {"kind", "Instance"},
               {"metadata", {{"name", "web"}}},
               {"spec", {{"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"image", "deb-11"}}}};
  auto made = reg_->Create(R("Instance"), "default", inst);
  ASSERT_TRUE(made.ok());
  json root = {{"apiVersion", "stratus.io/v1"},
               {"kind", "Volume"},
               {"metadata", {{"name", "web-root"},
                             {"ownerReferences", {{{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"},
                                                   {"name", "web"}, {"uid", MetaString(*made, "uid")}}}}}},
               {"spec", {{"size", "1Gi"}, {"source", {{"image", "deb-11"}}}}}};
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", root).ok());
  auto d = reg_->Delete(R("Volume"), "default", "web-root", "");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kConflict);
  EXPECT_NE(d.status().message().find("is the root disk of instance \"web\""), std::string::npos);
  // Rebuilding from another image: its node may delete the old root volume.
  ASSERT_TRUE(reg_->Patch(R("Instance"), "default", "web", {{"spec", {{"image", "deb-12"}, {"rebuildPolicy", "Recreate"}}}},
                          false).ok());
  EXPECT_TRUE(reg_->Delete(R("Volume"), "default", "web-root", "").ok());
}

TEST_F(AdmissionStoreTest, AttachedVolumeCannotBeDeletedUntilDetached) {
  json vol = {{"apiVersion", "stratus.io/v1"}, {"kind", "Volume"}, {"metadata", {{"name", "data"}}}, {"spec", {{"size", "1Gi"}}}};
  ASSERT_TRUE(reg_->Create(R("Volume"), "default", vol).ok());
  json inst = {{"apiVersion", "stratus.io/v1"},
               {"kind", "Instance"},
               {"metadata", {{"name", "web"}}},
               {"spec", {{"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"kernelImage", "k"},
                         {"volumes", json::array({{{"volume", "data"}, {"device", "vdb"}}})}}}};
  ASSERT_TRUE(reg_->Create(R("Instance"), "default", inst).ok());
  auto d = reg_->Delete(R("Volume"), "default", "data", "");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kConflict);
  EXPECT_NE(d.status().message().find("attached to instance web"), std::string::npos) << d.status().message();
  ASSERT_TRUE(reg_->Patch(R("Instance"), "default", "web", {{"spec", {{"volumes", json::array()}}}}, false).ok());
  EXPECT_TRUE(reg_->Delete(R("Volume"), "default", "data", "").ok());
}

}  // namespace
}  // namespace stratus
