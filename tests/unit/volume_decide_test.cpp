// The Volume reconciler's decision matrix on observed states built by hand: storage absent/present/partial/lost
// x source ready or not x holder (none, reserved, attached, running) x size grown/shrunk, the pool missing, and
// deletion blocked by users.
#include <gtest/gtest.h>

#include "stratus/runtime/conditions.h"
#include "stratus/volume/decide.h"

namespace stratus::volume {
namespace {

using namespace std::chrono_literals;

Options Opts() {
  Options o;
  o.node = "node-a";
  o.pools["default"] = {"default", "stratus-node-a-default", "dir"};
  o.image_pool = "stratus-node-a-images";
  return o;
}

// Volume data (2 GiB) on node-a with our finalizer, nothing made yet.
Observed Base() {
  Observed o;
  o.vol = {{"apiVersion", "stratus.io/v1"},
           {"kind", "Volume"},
           {"metadata", {{"name", "data"}, {"namespace", "default"}, {"uid", "vuid"}, {"generation", 1}}},
           {"spec", {{"size", "2Gi"}, {"nodeName", "node-a"}}}};
  o.pool = Opts().pools["default"];
  return o;
}

void Made(Observed& o, uint64_t bytes = uint64_t{2} << 30) {
  o.storage = host::VolumeInfo{"vol-vuid", "/pool/vol-vuid", bytes, 0, "qcow2"};
  o.recorded = true;
  o.vol["status"]["path"] = "/pool/vol-vuid";
}

json Asker(const std::string& name, bool attached, const std::string& created = "2026-12-01T00:00:00Z") {
  json i = {{"metadata", {{"name", name}, {"namespace", "default"}, {"creationTimestamp", created}}},
            {"spec", {{"volumes", json::array({{{"volume", "data"}, {"device", "vdb"}}})}}}};
  if (attached) i["status"]["volumes"] = json::array({{{"name", "data"}, {"device", "vdb"}}});
  return i;
}

std::string Phase(const Decision& d) { return d.status["status"].value("phase", ""); }
std::string Reason(const json& obj, const char* type) {
  json c = runtime::GetCondition(obj, type);
  return c.is_null() ? "" : c.value("reason", "");
}
bool HasEvent(const std::vector<Event>& events, const std::string& reason) {
  for (const auto& e : events) {
    if (e.reason == reason) return true;
  }
  return false;
}

TEST(VolumeDecideTest, StorageIsMadeOnceAndAPartialCreateIsRedone) {
  // Absent: made blank, Creating said first.
  Observed o = Base();
  Decision d = Decide(o, Opts());
  ASSERT_TRUE(d.create.has_value());
  EXPECT_EQ(d.create->method, CreatePlan::Method::kBlank);
  EXPECT_EQ(d.create->bytes, uint64_t{2} << 30);
  ASSERT_TRUE(d.creating.has_value());
  EXPECT_EQ((*d.creating)["status"]["phase"], "Creating");
  EXPECT_FALSE(d.remove_partial);
  EXPECT_TRUE(d.report_storage);
  EXPECT_EQ(Phase(d), "Available");
  // Retrying after a failed create: no Creating flap.
  o.vol["status"]["phase"] = "Failed";
  EXPECT_FALSE(Decide(o, Opts()).creating.has_value());
  // Storage there but no completed create on the object: the partial one is removed and made again.
  o = Base();
  o.storage = host::VolumeInfo{"vol-vuid", "/pool/vol-vuid", 1 << 20, 0, "qcow2"};
  d = Decide(o, Opts());
  EXPECT_TRUE(d.remove_partial);
  EXPECT_TRUE(d.create.has_value());
  // Made and recorded: nothing to make.
  Made(o);
  d = Decide(o, Opts());
  EXPECT_FALSE(d.remove_partial);
  EXPECT_FALSE(d.create.has_value());
  EXPECT_EQ(d.resize, ResizeAction::kNone);
  EXPECT_EQ(Reason(d.status, "Ready"), "Available");
}

TEST(VolumeDecideTest, LostStorageIsFailedNotRecreated) {
  Observed o = Base();
  o.recorded = true;
  o.vol["status"]["path"] = "/pool/vol-vuid";
  Decision d = Decide(o, Opts());
  EXPECT_FALSE(d.create.has_value());
  EXPECT_EQ(Phase(d), "Failed");
  EXPECT_EQ(Reason(d.status, "Ready"), "StorageLost");
  EXPECT_TRUE(HasEvent(d.events, "StorageLost"));
  EXPECT_EQ(d.next.requeue_after, 30s);
  // Told once.
  o.vol = d.status;
  EXPECT_FALSE(HasEvent(Decide(o, Opts()).events, "StorageLost"));
}

TEST(VolumeDecideTest, SourcesAndPools) {
  Observed o = Base();
  o.vol["spec"]["source"] = {{"image", "debian"}};
  o.source_kind = "image";
  o.source_waiting = "waiting for image \"debian\" on node node-a (Downloading)";
  Decision d = Decide(o, Opts());
  EXPECT_FALSE(d.create.has_value());
  EXPECT_EQ(Phase(d), "Pending");
  EXPECT_EQ(Reason(d.status, "Ready"), "WaitingForSource");
  EXPECT_EQ(d.next.requeue_after, 3s);
  // The image is cached: a qcow2 overlay on it.
  o.source_waiting.clear();
  o.source = {"stratus-node-a-images", "img-1", "/img/img-1", "qcow2", uint64_t{1} << 30};
  d = Decide(o, Opts());
  ASSERT_TRUE(d.create.has_value());
  EXPECT_EQ(d.create->method, CreatePlan::Method::kBackingFile);
  EXPECT_EQ(d.create->source_path, "/img/img-1");
  // Smaller than the image: refused naming spec.size, once.
  o.source.virtual_bytes = uint64_t{3} << 30;
  d = Decide(o, Opts());
  EXPECT_FALSE(d.create.has_value());
  EXPECT_EQ(Phase(d), "Failed");
  EXPECT_EQ(Reason(d.status, "Ready"), "InvalidSize");
  EXPECT_NE(runtime::GetCondition(d.status, "Ready")["message"].get<std::string>().find("spec.size"), std::string::npos);
  EXPECT_TRUE(HasEvent(d.events, "InvalidSize"));
  // A pool the node does not have.
  o = Base();
  o.pool.reset();
  o.pools_here = "default, fast";
  o.vol["spec"]["pool"] = "slow";
  d = Decide(o, Opts());
  EXPECT_EQ(Phase(d), "Failed");
  EXPECT_EQ(Reason(d.status, "Ready"), "PoolNotFound");
  EXPECT_EQ(runtime::GetCondition(d.status, "Ready")["message"],
            "spec.pool: node node-a has no pool \"slow\" (it has: default, fast)");
}

TEST(VolumeDecideTest, FromASnapshotAnOverlayThatKeepsItOrACopy) {
  Observed o = Base();
  o.vol["spec"]["source"] = {{"snapshot", "s1"}};
  o.source_kind = "snapshot";
  o.source_waiting = "waiting for snapshot \"s1\" to be Ready (Creating)";
  Decision d = Decide(o, Opts());
  EXPECT_FALSE(d.create.has_value());
  EXPECT_EQ(Reason(d.status, "Ready"), "WaitingForSource");
  // Ready: in a dir pool, a qcow2 overlay over the snapshot's data, recorded so the snapshot is kept.
  o.source_waiting.clear();
  o.source = {"stratus-node-a-default", "snap-1", "/pool/snap-1", "qcow2", uint64_t{1} << 30};
  d = Decide(o, Opts());
  ASSERT_TRUE(d.create.has_value());
  EXPECT_EQ(d.create->method, CreatePlan::Method::kBackingFile);
  EXPECT_EQ(d.create->source_path, "/pool/snap-1");
  EXPECT_EQ(d.status["status"]["backingSnapshot"], "s1");
  // A raw volume (or an LVM pool) is a full copy: it does not keep the snapshot.
  o.vol["spec"]["format"] = "raw";
  d = Decide(o, Opts());
  ASSERT_TRUE(d.create.has_value());
  EXPECT_EQ(d.create->method, CreatePlan::Method::kFullCopy);
  EXPECT_FALSE(d.status["status"].contains("backingSnapshot"));
}

TEST(VolumeDecideTest, TheHolderIsReservedAttachedAndReleased) {
  Observed o = Base();
  Made(o);
  // Two instances ask: the older one gets it, reserved until its domain has it.
  o.instances = {Asker("web-2", false, "2026-12-01T00:00:05Z"), Asker("web-1", false)};
  Decision d = Decide(o, Opts());
  EXPECT_EQ(d.status["status"]["attachment"]["instance"], "web-1");
  EXPECT_EQ(Phase(d), "Available");
  EXPECT_NE(runtime::GetCondition(d.status, "Ready")["message"].get<std::string>().find("reserved for instance web-1"),
            std::string::npos);
  EXPECT_TRUE(HasEvent(d.events, "Reserved"));
  // Its domain has it: InUse.
  o.vol = d.status;
  o.instances = {Asker("web-2", false, "2026-12-01T00:00:05Z"), Asker("web-1", true)};
  d = Decide(o, Opts());
  EXPECT_EQ(Phase(d), "InUse");
  EXPECT_EQ(d.status["status"]["attachment"]["device"], "vdb");
  EXPECT_FALSE(HasEvent(d.events, "Reserved"));
  // web-1 drops it from its spec but the unplug has not finished: still web-1's.
  o.vol = d.status;
  json web1 = Asker("web-1", true);
  web1["spec"]["volumes"] = json::array();
  o.instances = {Asker("web-2", false, "2026-12-01T00:00:05Z"), web1};
  EXPECT_EQ(Decide(o, Opts()).status["status"]["attachment"]["instance"], "web-1");
  // Unplugged: it moves to web-2.
  o.instances = {Asker("web-2", false, "2026-12-01T00:00:05Z"), Asker("web-1", false)};
  o.instances[1]["spec"]["volumes"] = json::array();
  d = Decide(o, Opts());
  EXPECT_EQ(d.status["status"]["attachment"]["instance"], "web-2");
  EXPECT_TRUE(HasEvent(d.events, "Reserved"));
  // Nobody asks: released.
  o.vol = d.status;
  o.instances.clear();
  d = Decide(o, Opts());
  EXPECT_FALSE(d.status["status"].contains("attachment"));
  EXPECT_TRUE(HasEvent(d.events, "Released"));
}

TEST(VolumeDecideTest, GrowsLiveWhenItsHolderRunsAndNeverShrinks) {
  Observed o = Base();
  Made(o, uint64_t{1} << 30);  // spec says 2Gi
  // Nobody holds it: offline.
  Decision d = Decide(o, Opts());
  EXPECT_EQ(d.resize, ResizeAction::kGrowOffline);
  EXPECT_EQ(d.resize_to, uint64_t{2} << 30);
  // Attached to a running domain: through the hypervisor, at the device it has there.
  o.vol["status"]["attachment"] = {{"instance", "web-1"}, {"device", "vdb"}};
  o.instances = {Asker("web-1", true)};
  o.holder_running = true;
  d = Decide(o, Opts());
  EXPECT_EQ(d.resize, ResizeAction::kGrowLive);
  EXPECT_EQ(d.domain, "stratus_default_web-1");
  EXPECT_EQ(d.device, "vdb");
  // Reserved but not attached yet: offline even if that domain runs.
  o.instances = {Asker("web-1", false)};
  EXPECT_EQ(Decide(o, Opts()).resize, ResizeAction::kGrowOffline);
  // Smaller than the storage: refused, told once, the volume stays usable.
  Made(o, uint64_t{4} << 30);
  d = Decide(o, Opts());
  EXPECT_EQ(d.resize, ResizeAction::kNone);
  EXPECT_EQ(Reason(d.status, "Resized"), "ShrinkRefused");
  EXPECT_EQ(Reason(d.status, "Ready"), "Available");
  EXPECT_TRUE(HasEvent(d.events, "ShrinkRefused"));
  o.vol = d.status;
  EXPECT_FALSE(HasEvent(Decide(o, Opts()).events, "ShrinkRefused"));
  // Back to a size it has: the refusal goes.
  o.vol["spec"]["size"] = "4Gi";
  EXPECT_EQ(Reason(Decide(o, Opts()).status, "Resized"), "");
}

TEST(VolumeDecideTest, DeletionWaitsForItsUsers) {
  Observed o = Base();
  Made(o);
  o.instances = {Asker("web-1", false)};
  DeleteDecision d = DecideDelete(o);
  EXPECT_EQ(d.users, std::vector<std::string>{"web-1"});
  EXPECT_FALSE(d.delete_storage);
  EXPECT_EQ(d.status["status"]["phase"], "Deleting");
  EXPECT_EQ(Reason(d.status, "Ready"), "DeleteBlocked");
  EXPECT_TRUE(HasEvent(d.events, "DeleteBlocked"));
  // A terminating instance that still has it attached holds it; one that has let go does not.
  o.instances[0]["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z";
  o.instances[0]["status"]["volumes"] = json::array({{{"name", "data"}, {"device", "vdb"}}});
  EXPECT_EQ(DecideDelete(o).users.size(), 1u);
  o.instances[0]["status"].erase("volumes");
  d = DecideDelete(o);
  EXPECT_TRUE(d.users.empty());
  EXPECT_TRUE(d.delete_storage);
  // No such pool on the node: nothing to remove, the finalizer goes.
  o.pool.reset();
  EXPECT_FALSE(DecideDelete(o).delete_storage);
}

TEST(VolumeDecideTest, ARootVolumeBeingRebuiltAwayIsNotAskedFor) {
  Observed o = Base();
  Made(o);
  o.vol["metadata"]["name"] = "web-1-root";
  o.vol["spec"]["source"] = {{"image", "deb-11"}};
  json inst = {{"metadata", {{"name", "web-1"}, {"namespace", "default"}}},
               {"spec", {{"image", "deb-11"}}},
               {"status", {{"rootVolume", "web-1-root"}}}};
  o.instances = {inst};
  EXPECT_EQ(DecideDelete(o).users, std::vector<std::string>{"web-1"});
  // Another image alone does not let go of it; a rebuild (Recreate) does, once the domain no longer has it.
  o.instances[0]["spec"]["image"] = "deb-12";
  EXPECT_EQ(DecideDelete(o).users.size(), 1u);
  o.instances[0]["spec"]["rebuildPolicy"] = "Recreate";
  EXPECT_TRUE(DecideDelete(o).users.empty());
  o.instances[0]["status"]["volumes"] = json::array({{{"name", "web-1-root"}, {"device", "vda"}}});
  EXPECT_EQ(DecideDelete(o).users.size(), 1u);
}

}  // namespace
}  // namespace stratus::volume
