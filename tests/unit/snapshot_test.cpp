// Volume snapshots: the reconciler's decision matrix (volume missing / not made / free / in use by a running or
// paused guest, qcow2 or raw, dir or LVM pool; taken, lost, partial) and deletion blocked by overlays; then the
// reconciler carried out on fakes (the guest paused exactly for the copy, a copy discarded when the guest ran
// meanwhile, a volume made over the snapshot, deletion order); and the API's admission rules.
#include <gtest/gtest.h>

#include "fake_hypervisor.h"
#include "fake_storage.h"
#include "runtime_test_env.h"
#include "stratus/apiserver/admission.h"
#include "stratus/core/object.h"
#include "stratus/runtime/conditions.h"
#include "stratus/snapshot/decide.h"
#include "stratus/snapshot/snapshot.h"
#include "stratus/volume/volume.h"

namespace stratus::snapshot {
namespace {

using namespace std::chrono_literals;
using host::DomainState;

volume::PoolConfig DirPool() { return {"default", "stratus-node-a-default", "dir"}; }
volume::PoolConfig LvmPool() { return {"fast", "stratus-node-a-fast", "logical"}; }

// Snapshot s1 of volume data (1 GiB qcow2, made on node-a), nothing copied yet.
Observed Base() {
  Observed o;
  o.snap = {{"apiVersion", "stratus.io/v1"},
            {"kind", "VolumeSnapshot"},
            {"metadata", {{"name", "s1"}, {"namespace", "default"}, {"uid", "suid"}, {"generation", 1}}},
            {"spec", {{"volume", "data"}}}};
  o.volume = {{"metadata", {{"name", "data"}, {"namespace", "default"}, {"uid", "vuid"}}},
              {"spec", {{"size", "1Gi"}, {"nodeName", "node-a"}}},
              {"status", {{"path", "/pool/vol-vuid"}, {"format", "qcow2"}}}};
  o.pool = DirPool();
  o.source = host::VolumeInfo{"vol-vuid", "/pool/vol-vuid", uint64_t{1} << 30, 0, "qcow2"};
  return o;
}
void AttachedTo(Observed& o, const std::string& inst, DomainState state) {
  o.volume["status"]["attachment"] = {{"instance", inst}, {"device", "vdb"}};
  o.holder = inst;
  o.holder_state = state;
}
std::string Phase(const json& obj) { return obj["status"].value("phase", ""); }
std::string Reason(const json& obj) { return runtime::GetCondition(obj, "Ready").value("reason", ""); }
std::string Message(const json& obj) { return runtime::GetCondition(obj, "Ready").value("message", ""); }

TEST(SnapshotDecideTest, WaitsForItsVolumeNamingTheField) {
  Observed o = Base();
  o.volume = json();
  Decision d = Decide(o, "node-a");
  EXPECT_FALSE(d.copy);
  EXPECT_EQ(Phase(d.status), "Pending");
  EXPECT_EQ(Reason(d.status), "VolumeNotFound");
  EXPECT_NE(Message(d.status).find("spec.volume: volume \"data\" does not exist"), std::string::npos);
  EXPECT_GT(d.next.requeue_after.count(), 0);

  o = Base();
  o.volume["status"].erase("path");
  o.source.reset();
  d = Decide(o, "node-a");
  EXPECT_FALSE(d.copy);
  EXPECT_EQ(Reason(d.status), "WaitingForVolume");
}

TEST(SnapshotDecideTest, CopiesPausingOnlyARunningGuestOfAQcow2Volume) {
  struct Case {
    const char* what;
    std::string source_format;
    volume::PoolConfig pool;
    std::string holder;
    DomainState state;
    bool copy, pause;
    std::string format, reason;
  };
  const std::vector<Case> cases = {
      {"qcow2, free", "qcow2", DirPool(), "", DomainState::kNotFound, true, false, "qcow2", ""},
      {"qcow2, running guest: paused for the copy", "qcow2", DirPool(), "web", DomainState::kRunning, true, true,
       "qcow2", ""},
      {"qcow2, guest paused by its user: left as it is", "qcow2", DirPool(), "web", DomainState::kPaused, true, false,
       "qcow2", ""},
      {"qcow2, guest stopped", "qcow2", DirPool(), "web", DomainState::kShutoff, true, false, "qcow2", ""},
      {"raw, free", "raw", DirPool(), "", DomainState::kNotFound, true, false, "qcow2", ""},
      {"raw, guest stopped", "raw", DirPool(), "web", DomainState::kShutoff, true, false, "qcow2", ""},
      {"raw, running guest: refused", "raw", DirPool(), "web", DomainState::kRunning, false, false, "", "VolumeInUse"},
      {"raw, paused guest: refused", "raw", DirPool(), "web", DomainState::kPaused, false, false, "", "VolumeInUse"},
      {"LVM, free: a raw copy", "raw", LvmPool(), "", DomainState::kNotFound, true, false, "raw", ""},
      {"LVM, running guest: refused", "", LvmPool(), "web", DomainState::kRunning, false, false, "", "VolumeInUse"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Observed o = Base();
    o.pool = c.pool;
    o.source->format = c.source_format;
    if (!c.holder.empty()) AttachedTo(o, c.holder, c.state);
    Decision d = Decide(o, "node-a");
    EXPECT_EQ(d.copy, c.copy);
    EXPECT_EQ(d.pause, c.pause);
    if (c.copy) {
      EXPECT_EQ(d.format, c.format);
      ASSERT_TRUE(d.creating.has_value());
      EXPECT_EQ(Phase(*d.creating), "Creating");
      EXPECT_EQ((*d.creating)["status"]["node"], "node-a") << "claimed for this node before the copy";
      EXPECT_EQ(Phase(d.status), "Ready");
      EXPECT_EQ(d.status["status"]["size"], "1Gi");
      EXPECT_EQ(d.status["status"]["volumeUID"], "vuid");
      if (c.pause) EXPECT_EQ(d.domain, "stratus_default_web");
    } else {
      EXPECT_FALSE(d.creating.has_value());
      EXPECT_EQ(Phase(d.status), "Pending");
      EXPECT_EQ(Reason(d.status), c.reason);
      EXPECT_NE(Message(d.status).find("spec.volume: volume \"data\" is raw"), std::string::npos) << Message(d.status);
      EXPECT_NE(Message(d.status).find("running instance \"web\""), std::string::npos);
      EXPECT_GT(d.next.requeue_after.count(), 0) << "taken once the guest stops";
    }
  }
}

TEST(SnapshotDecideTest, TakenOnceLostWhenItsDataGoesAndAPartialCopyIsRedone) {
  Observed o = Base();
  o.snap["status"] = {{"phase", "Ready"}, {"path", "/pool/snap-suid"}, {"node", "node-a"}, {"takenAt", "T"}};
  o.storage = host::VolumeInfo{"snap-suid", "/pool/snap-suid", uint64_t{1} << 30, 0, "qcow2"};
  AttachedTo(o, "web", DomainState::kRunning);
  Decision d = Decide(o, "node-a");
  EXPECT_FALSE(d.copy) << "a snapshot is taken once";
  EXPECT_FALSE(d.remove_partial);
  EXPECT_EQ(Phase(d.status), "Ready");

  o.storage.reset();
  d = Decide(o, "node-a");
  EXPECT_FALSE(d.copy);
  EXPECT_EQ(Phase(d.status), "Failed");
  EXPECT_EQ(Reason(d.status), "StorageLost");
  ASSERT_EQ(d.events.size(), 1u);

  // Storage without status.path: an agent killed mid-copy. Removed and copied again.
  o = Base();
  o.storage = host::VolumeInfo{"snap-suid", "/pool/snap-suid", 1 << 20, 0, "qcow2"};
  d = Decide(o, "node-a");
  EXPECT_TRUE(d.remove_partial);
  EXPECT_TRUE(d.copy);

  // A failed copy is retried without flapping to Creating.
  o = Base();
  o.snap["status"] = {{"phase", "Failed"}, {"node", "node-a"}};
  d = Decide(o, "node-a");
  EXPECT_TRUE(d.copy);
  EXPECT_EQ(Phase(*d.creating), "Failed");
}

TEST(SnapshotDecideTest, DeletionWaitsForTheVolumesOverIt) {
  Observed o = Base();
  o.backed = {"restored", "other"};
  DeleteDecision d = DecideDelete(o);
  EXPECT_FALSE(d.delete_storage);
  EXPECT_EQ(Phase(d.status), "Deleting");
  EXPECT_EQ(Reason(d.status), "DeleteBlocked");
  EXPECT_NE(Message(d.status).find("volume restored, other"), std::string::npos);
  o.backed.clear();
  EXPECT_TRUE(DecideDelete(o).delete_storage);
  o.pool.reset();
  EXPECT_FALSE(DecideDelete(o).delete_storage) << "nothing to remove without the pool";
}

TEST(SnapshotNodeTest, TheVolumesNodeUntilTaken) {
  json snap = {{"spec", {{"volume", "data"}}}};
  json vol = {{"spec", {{"nodeName", "node-a"}}}};
  EXPECT_EQ(NodeOf(snap, vol), "node-a");
  EXPECT_EQ(NodeOf(snap, json()), "");
  snap["status"]["node"] = "node-b";  // taken there; the volume moved since
  EXPECT_EQ(NodeOf(snap, vol), "node-b");
}

// --- the reconciler on fakes ----------------------------------------------------------------------------------

class SnapshotReconcilerTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    for (auto [inf, plural] : {std::pair{&snapshots_, "volumesnapshots"}, {&volumes_, "volumes"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(5s));
    }
    ASSERT_TRUE(storage_.EnsurePool({"stratus-node-a-default", "dir", "/pool"}).ok());
    opts_.node = "node-a";
    opts_.pools["default"] = DirPool();
    rec_ = std::make_unique<SnapshotReconciler>(client_.get(), snapshots_.get(), volumes_.get(), &storage_, &hv_, opts_);
    // Volume data, made on node-a and attached to the running instance web.
    json vol = MustCreate(LocalApiTest::Volume("data"));
    auto p = client_->Patch("volumes", "default", "data", {{"spec", {{"nodeName", "node-a"}}}});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    vol = *p;
    vol["status"] = {{"phase", "InUse"}, {"node", "node-a"}, {"pool", "default"}, {"format", "qcow2"},
                     {"path", "/pool/vol-" + MetaString(vol, "uid")},
                     {"attachment", {{"instance", "web"}, {"device", "vdb"}}}};
    auto u = client_->UpdateStatus("volumes", "default", vol);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    storage_.PutVolume("stratus-node-a-default",
                       {"vol-" + MetaString(vol, "uid"), "/pool/vol-" + MetaString(vol, "uid"), 1 << 30, 0, "qcow2"});
    fakes::FakeHypervisor::Domain web;
    web.state = DomainState::kRunning;
    hv_.Put(kDom, web);
    ASSERT_TRUE(Cached(volumes_.get(), *u));
  }
  void TearDown() override {
    rec_.reset();
    for (auto* inf : {&snapshots_, &volumes_}) (*inf)->Stop();
    LocalApiTest::TearDown();
  }
  StatusOr<runtime::Result> Reconcile(const std::string& name = "s1") {
    auto cur = client_->Get("volumesnapshots", "default", name);
    if (cur.ok()) EXPECT_TRUE(Cached(snapshots_.get(), *cur));
    return rec_->Reconcile("default/" + name);
  }
  json Snap(const std::string& name = "s1") {
    auto r = client_->Get("volumesnapshots", "default", name);
    return r.ok() ? *r : json();
  }
  static json SnapshotOf(const std::string& name, const std::string& volume) {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "VolumeSnapshot"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", {{"volume", volume}}}};
  }
  static constexpr const char* kDom = "stratus_default_web";
  fakes::FakeHypervisor hv_;
  fakes::FakeStoragePools storage_;
  volume::Options opts_;
  std::unique_ptr<runtime::Informer> snapshots_, volumes_;
  std::unique_ptr<SnapshotReconciler> rec_;
};

TEST_F(SnapshotReconcilerTest, PausesTheGuestExactlyForTheCopyAndRecordsIt) {
  DomainState during = DomainState::kNotFound;
  storage_.SetCopyHook([&] { during = hv_.Get(kDom).state; });
  json s = MustCreate(SnapshotOf("s1", "data"), "volumesnapshots");
  auto r = Reconcile();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(during, DomainState::kPaused) << "the copy ran while the guest was paused";
  EXPECT_EQ(hv_.TakeCalls(), (std::vector<std::string>{std::string("Pause ") + kDom, std::string("Resume ") + kDom}));
  EXPECT_EQ(hv_.Get(kDom).state, DomainState::kRunning);
  json snap = Snap();
  EXPECT_EQ(Phase(snap), "Ready") << snap.dump();
  EXPECT_EQ(snap["status"]["node"], "node-a");
  EXPECT_EQ(snap["status"]["format"], "qcow2");
  EXPECT_EQ(snap["status"]["size"], "1Gi");
  EXPECT_FALSE(snap["status"].value("path", "").empty());
  EXPECT_FALSE(snap["status"].value("takenAt", "").empty());
  EXPECT_TRUE(runtime::HasFinalizer(snap, kFinalizer));
  EXPECT_TRUE(storage_.HasVolume("stratus-node-a-default", StorageName(snap)));
  // Taken once: nothing more happens on the next passes.
  storage_.TakeCalls();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_TRUE(hv_.TakeCalls().empty());
  EXPECT_TRUE(storage_.TakeCalls().empty());
}

TEST_F(SnapshotReconcilerTest, ACopyTheGuestWroteDuringIsDiscardedAndTakenAgain) {
  int copies = 0;
  storage_.SetCopyHook([&] {
    if (++copies == 1) hv_.SetState(kDom, DomainState::kRunning);  // someone resumed the guest mid-copy
  });
  MustCreate(SnapshotOf("s1", "data"), "volumesnapshots");
  auto r = Reconcile();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ran again during the copy"), std::string::npos) << r.status().message();
  json snap = Snap();
  EXPECT_EQ(Phase(snap), "Failed");
  EXPECT_EQ(Reason(snap), "CopyFailed");
  EXPECT_FALSE(storage_.HasVolume("stratus-node-a-default", StorageName(snap))) << "the inconsistent copy is gone";
  EXPECT_EQ(hv_.Get(kDom).state, DomainState::kRunning);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Phase(Snap()), "Ready");
  EXPECT_EQ(copies, 2);
}

TEST_F(SnapshotReconcilerTest, AnotherNodesSnapshotIsLeftAlone) {
  opts_.node = "node-b";
  rec_ = std::make_unique<SnapshotReconciler>(client_.get(), snapshots_.get(), volumes_.get(), &storage_, &hv_, opts_);
  MustCreate(SnapshotOf("s1", "data"), "volumesnapshots");
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_TRUE(hv_.TakeCalls().empty());
  EXPECT_FALSE(Snap().contains("status"));
  EXPECT_FALSE(runtime::HasFinalizer(Snap(), kFinalizer));
}

TEST_F(SnapshotReconcilerTest, DeletionWaitsForAVolumeOverItThenRemovesTheData) {
  MustCreate(SnapshotOf("s1", "data"), "volumesnapshots");
  ASSERT_TRUE(Reconcile().ok());
  json snap = Snap();
  // A volume made over it (what the volume reconciler records).
  json over = LocalApiTest::Volume("restored");
  over["spec"]["source"] = {{"snapshot", "s1"}};
  over = MustCreate(over);
  over["status"] = {{"path", "/pool/vol-x"}, {"backingSnapshot", "s1"}, {"phase", "Available"}};
  auto u = client_->UpdateStatus("volumes", "default", over);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  ASSERT_TRUE(Cached(volumes_.get(), *u));
  // The API refuses; a delete that got past it (a race) waits in the reconciler.
  auto del = client_->Delete("volumesnapshots", "default", "s1");
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.status().code(), Code::kConflict);
  EXPECT_NE(del.status().message().find("backs volume restored"), std::string::npos) << del.status().message();
  Observed o;
  o.snap = snap;
  o.backed = {"restored"};
  EXPECT_FALSE(DecideDelete(o).delete_storage);

  ASSERT_TRUE(client_->Delete("volumes", "default", "restored").ok());
  ASSERT_TRUE(WaitFor([&] { return volumes_->Get("default/restored").is_null(); }));
  ASSERT_TRUE(client_->Delete("volumesnapshots", "default", "s1").ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_FALSE(storage_.HasVolume("stratus-node-a-default", StorageName(snap)));
  EXPECT_EQ(client_->Get("volumesnapshots", "default", "s1").status().code(), Code::kNotFound);
}

TEST_F(SnapshotReconcilerTest, ARawVolumeInUseIsRefusedAtCreateNamingTheField) {
  json vol = *client_->Get("volumes", "default", "data");
  vol["status"]["format"] = "raw";
  ASSERT_TRUE(client_->UpdateStatus("volumes", "default", vol).ok());
  json web = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Instance"},
              {"metadata", {{"name", "web"}, {"namespace", "default"}}},
              {"spec", {{"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"kernelImage", "k"}}}};
  web = MustCreate(web, "instances");
  web["status"]["phase"] = "Running";
  ASSERT_TRUE(client_->UpdateStatus("instances", "default", web).ok());
  auto c = client_->Create("volumesnapshots", "default", SnapshotOf("s1", "data"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalid);
  EXPECT_NE(c.status().message().find("spec.volume: volume \"data\" is raw and in use by running instance \"web\""),
            std::string::npos)
      << c.status().message();
  // Stopped: allowed.
  web = *client_->Get("instances", "default", "web");
  web["status"]["phase"] = "Stopped";
  ASSERT_TRUE(client_->UpdateStatus("instances", "default", web).ok());
  EXPECT_TRUE(client_->Create("volumesnapshots", "default", SnapshotOf("s1", "data")).ok());
}

TEST_F(SnapshotReconcilerTest, ASnapshotOfNoVolumeIsRefusedNamingTheField) {
  auto c = client_->Create("volumesnapshots", "default", SnapshotOf("s1", "nothing-here"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalid);
  EXPECT_NE(c.status().message().find("spec.volume: volume \"nothing-here\" does not exist in namespace default"),
            std::string::npos)
      << c.status().message();
}

TEST_F(SnapshotReconcilerTest, TheSourceVolumeIsImmutable) {
  MustCreate(SnapshotOf("s1", "data"), "volumesnapshots");
  auto p = client_->Patch("volumesnapshots", "default", "s1", {{"spec", {{"volume", "other"}}}});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalid);
  EXPECT_NE(p.status().message().find("spec.volume: field is immutable"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace stratus::snapshot
