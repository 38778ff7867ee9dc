// The Instance reconciler carried out on fakes: a real in-process API and informers, a fake hypervisor and
// fake storage. Decisions are covered by instance_decide_test.cpp; this checks that they are acted on: what
// the hypervisor is asked, the one status write, events after success, failures reported and retried,
// nothing repeated when nothing changed, and teardown behind the finalizer.
#include <gtest/gtest.h>

#include "fake_hypervisor.h"
#include "fake_storage.h"
#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/instance/instance.h"
#include "stratus/runtime/conditions.h"

namespace stratus::instance {
namespace {

using namespace std::chrono_literals;
using host::DomainState;

constexpr const char* kDom = "stratus_default_web-1";

class InstanceReconcilerTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    for (auto [inf, plural] : {std::pair{&instances_, "instances"}, {&images_, "images"}, {&flavors_, "instancetypes"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(5s));
    }
    // A kernel image cached on node-a.
    json img = MustCreate({{"apiVersion", "stratus.io/v1"},
                           {"kind", "Image"},
                           {"metadata", {{"name", "k"}, {"namespace", "default"}}},
                           {"spec", {{"type", "kernel"}, {"source", {{"url", "http://example.invalid/k"}}}}}},
                          "images");
    img["status"]["nodes"]["node-a"] = {{"phase", "Ready"}};
    auto u = client_->UpdateStatus("images", "default", img);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    ASSERT_TRUE(Cached(images_.get(), *u));
    storage_.PutVolume("stratus-images", {"img-" + MetaString(img, "uid"), "", 1 << 20, 0, "raw"});
    Rebuild(30s);
  }
  void TearDown() override {
    rec_.reset();
    for (auto* inf : {&instances_, &images_, &flavors_}) (*inf)->Stop();
    LocalApiTest::TearDown();
  }
  void Rebuild(std::chrono::seconds shutdown_timeout, const std::string& owner = "") {
    Options o;
    o.node = "node-a";
    o.owner = owner;
    o.data_dir = (dir_ / "agent").string();
    o.shutdown_timeout = shutdown_timeout;
    rec_ = std::make_unique<InstanceReconciler>(client_.get(), instances_.get(), images_.get(), flavors_.get(), &hv_,
                                                &storage_, o);
  }

  // Reconciles web-1 once the cache shows the API's latest version of it.
  StatusOr<runtime::Result> Reconcile() {
    auto cur = client_->Get("instances", "default", "web-1");
    if (cur.ok()) {
      EXPECT_TRUE(Cached(instances_.get(), *cur));
    }
    return rec_->Reconcile("default/web-1");
  }
  json Web() {
    auto r = client_->Get("instances", "default", "web-1");
    return r.ok() ? *r : json();
  }
  void Patch(const json& spec) {
    auto p = client_->Patch("instances", "default", "web-1", {{"spec", spec}});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
  }
  std::string Ready() { return runtime::GetCondition(Web(), "Ready").value("reason", ""); }
  int Events(const std::string& reason) {
    auto l = client_->List("events", "default", {});
    int n = 0;
    if (l.ok()) {
      for (const auto& e : (*l)["items"]) n += e.value("reason", "") == reason;
    }
    return n;
  }

  fakes::FakeHypervisor hv_;
  fakes::FakeStoragePools storage_;
  std::unique_ptr<runtime::Informer> instances_, images_, flavors_;
  std::unique_ptr<InstanceReconciler> rec_;
};

json WebInstance() {
  return {{"apiVersion", "stratus.io/v1"},
          {"kind", "Instance"},
          {"metadata", {{"name", "web-1"}, {"namespace", "default"}}},
          {"spec", {{"nodeName", "node-a"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"kernelImage", "k"}}}};
}

TEST_F(InstanceReconcilerTest, BootsRepairsAndDoesNothingWhenNothingChanged) {
  MustCreate(WebInstance(), "instances");
  auto r = Reconcile();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(hv_.TakeCalls(), (std::vector<std::string>{"Define " + std::string(kDom), "Start " + std::string(kDom)}));
  json web = Web();
  EXPECT_EQ(web["status"]["phase"], "Running");
  EXPECT_EQ(web["status"]["domainUUID"], MetaString(web, "uid"));
  EXPECT_TRUE(runtime::HasFinalizer(web, kFinalizer));
  EXPECT_EQ(hv_.Get(kDom).spec.kernel_path, storage_.ListVolumes("stratus-images")->front().path);
  EXPECT_EQ(Events("Started"), 1);
  // Level-triggered and idempotent: the same state again changes nothing and writes nothing.
  uint64_t rv = ResourceVersionOf(Web());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_TRUE(hv_.TakeCalls().empty());
  EXPECT_EQ(ResourceVersionOf(Web()), rv);
  // The guest powered itself off behind our back: started again, told as a repair.
  hv_.SetState(kDom, DomainState::kShutoff);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(hv_.TakeCalls(), std::vector<std::string>{"Start " + std::string(kDom)});
  EXPECT_EQ(Events("Repaired"), 1);
  // Undefined behind our back: defined and started again.
  hv_.Remove(kDom);
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(hv_.Get(kDom).state, DomainState::kRunning);
}

TEST_F(InstanceReconcilerTest, FailuresAreReportedAndRetriedWithoutLosingTheGeneration) {
  MustCreate(WebInstance(), "instances");
  ASSERT_TRUE(Reconcile().ok());
  hv_.TakeCalls();
  Patch({{"resources", {{"vcpus", 2}, {"memoryMiB", 128}}}});
  hv_.FailNext("Define", Internal("no space left on device"));
  auto r = Reconcile();
  EXPECT_FALSE(r.ok());
  json web = Web();
  EXPECT_EQ(web["status"]["phase"], "Failed");
  EXPECT_EQ(runtime::GetCondition(web, "Ready")["reason"], "DefineFailed");
  EXPECT_EQ(runtime::GetCondition(web, "Ready")["message"], "no space left on device");
  EXPECT_EQ(web["status"]["observedGeneration"], 1);  // generation 2 is not on the host yet
  EXPECT_EQ(Events("DefineFailed"), 1);
  // The retry defines generation 2 (a failed define must not be forgotten as observed).
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(hv_.Get(kDom).spec.vcpus, 2);
  web = Web();
  EXPECT_EQ(web["status"]["phase"], "Running");
  EXPECT_EQ(web["status"]["observedGeneration"], 2);
  // A failed start: Failed with the cause, no Started event for it.
  hv_.SetState(kDom, DomainState::kShutoff);
  hv_.FailNext("Start", Internal("qemu: could not open kernel"));
  EXPECT_FALSE(Reconcile().ok());
  EXPECT_EQ(Ready(), "StartFailed");
  EXPECT_EQ(Events("Started"), 1);
  EXPECT_EQ(Events("Repaired"), 0);
}

TEST_F(InstanceReconcilerTest, StopsGracefullyOrForcesOffAtTheDeadline) {
  MustCreate(WebInstance(), "instances");
  ASSERT_TRUE(Reconcile().ok());
  hv_.TakeCalls();
  // A cooperating guest: ACPI request, Stopping, then Stopped.
  Patch({{"powerState", "Stopped"}});
  auto r = Reconcile();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->requeue_after, 1s);
  // (Any spec change redefines the persistent definition from the new generation.)
  EXPECT_EQ(hv_.TakeCalls(), (std::vector<std::string>{"Define " + std::string(kDom), "Shutdown " + std::string(kDom)}));
  EXPECT_EQ(Web()["status"]["phase"], "Stopping");
  EXPECT_FALSE(Web()["status"].value("shutdownStartedAt", "").empty());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Web()["status"]["phase"], "Stopped");
  EXPECT_FALSE(Web()["status"].contains("shutdownStartedAt"));
  EXPECT_EQ(Events("Stopped"), 1);
  // A guest that ignores ACPI, with no grace period left: forced off.
  Patch({{"powerState", "Running"}});
  ASSERT_TRUE(Reconcile().ok());
  hv_.SetGuestCooperates(false);
  Rebuild(0s);
  Patch({{"powerState", "Stopped"}});
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(hv_.Get(kDom).state, DomainState::kShutoff);
  EXPECT_EQ(Web()["status"]["phase"], "Stopped");
  EXPECT_EQ(Events("ForcedOff"), 1);
}

TEST_F(InstanceReconcilerTest, TeardownRemovesOnlyOurDomainThenTheFinalizer) {
  MustCreate(WebInstance(), "instances");
  ASSERT_TRUE(Reconcile().ok());
  hv_.TakeCalls();
  auto d = client_->Delete("instances", "default", "web-1");
  ASSERT_TRUE(d.ok());
  ASSERT_FALSE(MetaString(*d, "deletionTimestamp").empty());  // held by our finalizer
  hv_.FailNext("Undefine", Internal("libvirt is busy"));
  EXPECT_FALSE(Reconcile().ok());
  EXPECT_EQ(Ready(), "TeardownFailed");
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_FALSE(hv_.Has(kDom));
  EXPECT_TRUE(Web().is_null());  // the finalizer was the last one
  EXPECT_EQ(Events("Deleted"), 1);
}

TEST_F(InstanceReconcilerTest, AnotherObjectsDomainIsNeverTouched) {
  fakes::FakeHypervisor::Domain other;
  other.state = DomainState::kRunning;
  other.instance_uid = "uid-of-another-cluster";
  hv_.Put(kDom, other);
  MustCreate(WebInstance(), "instances");
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_TRUE(hv_.TakeCalls().empty());
  EXPECT_EQ(Ready(), "DomainConflict");
  // Deleting ours leaves theirs running.
  ASSERT_TRUE(client_->Delete("instances", "default", "web-1").ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_TRUE(hv_.TakeCalls().empty());
  EXPECT_EQ(hv_.Get(kDom).state, DomainState::kRunning);
  EXPECT_TRUE(Web().is_null());
}

// The fence: a node that comes back finds a domain it made for an instance that was moved away (evacuated) while it
// was gone: the domain is destroyed and undefined, never started, and the instance hears of it. Domains of other
// owners (another node on a shared libvirtd) and older ones without an owner are left alone.
TEST_F(InstanceReconcilerTest, DomainsOfInstancesThatLeftTheNodeAreFenced) {
  Rebuild(30s, "stratus:cluster-1/node-a");
  json web = MustCreate(WebInstance(), "instances");
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(hv_.Get(kDom).state, DomainState::kRunning);
  EXPECT_EQ(hv_.Get(kDom).spec.owner, "stratus:cluster-1/node-a") << "the domain carries its maker";
  fakes::FakeHypervisor::Domain theirs;
  theirs.state = DomainState::kRunning;
  theirs.instance_uid = "uid-elsewhere";
  theirs.spec.owner = "stratus:cluster-1/node-b";
  hv_.Put("stratus_default_theirs", theirs);
  fakes::FakeHypervisor::Domain old;
  old.state = DomainState::kRunning;
  old.instance_uid = "uid-old";
  hv_.Put("stratus_default_old", old);
  // Nothing has left yet: the sweep touches nothing.
  ASSERT_TRUE(rec_->Reconcile(InstanceReconciler::kSweepKey).ok());
  EXPECT_TRUE(hv_.Has(kDom));
  // Evacuated to node-b while this node was away.
  auto moved = client_->Patch("instances", "default", "web-1", {{"spec", {{"nodeName", "node-b"}}}});
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(Cached(instances_.get(), *moved));
  hv_.TakeCalls();
  ASSERT_TRUE(rec_->Reconcile("default/web-1").ok());
  EXPECT_TRUE(hv_.TakeCalls().empty()) << "an instance of another node is not ours to start or stop";
  ASSERT_TRUE(rec_->Reconcile(InstanceReconciler::kSweepKey).ok());
  EXPECT_FALSE(hv_.Has(kDom)) << "fenced";
  EXPECT_TRUE(hv_.Has("stratus_default_theirs"));
  EXPECT_TRUE(hv_.Has("stratus_default_old"));
  EXPECT_EQ(Events("Fenced"), 1);
  // Without an owner mark there is no fence at all.
  Rebuild(30s);
  hv_.Put(kDom, old);
  ASSERT_TRUE(rec_->Reconcile(InstanceReconciler::kSweepKey).ok());
  EXPECT_TRUE(hv_.Has(kDom));
}

TEST(DomainsToFenceTest, OnlyOursWhoseInstanceLeft) {
  auto dom = [](const std::string& name, const std::string& uid, const std::string& owner) {
    host::DomainInfo d;
    d.name = name;
    d.instance_uid = uid;
    d.owner = owner;
    d.state = DomainState::kShutoff;
    return d;
  };
  std::vector<host::DomainInfo> doms = {dom("stratus_a_here", "u1", "me"), dom("stratus_a_gone", "u2", "me"),
                                        dom("stratus_a_other", "u3", "you"), dom("stratus_a_old", "u4", ""),
                                        dom("plain", "", "me")};
  EXPECT_EQ(DomainsToFence(doms, "me", {"u1"}), std::vector<std::string>{"stratus_a_gone"});
  EXPECT_TRUE(DomainsToFence(doms, "", {}).empty());
}

}  // namespace
}  // namespace stratus::instance
