// Each reconciler names what wakes it (Reconciler::Watches): the instance and volume reconcilers' event-to-key
// mappings, on informers over a real in-process API.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime_test_env.h"
#include "stratus/instance/instance.h"
#include "stratus/runtime/informer.h"
#include "stratus/volume/volume.h"

namespace stratus {
namespace {

using namespace std::chrono_literals;

class WatchMappingsTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    for (auto [inf, plural] : {std::pair{&instances_, "instances"}, {&volumes_, "volumes"}, {&images_, "images"},
                               {&networks_, "networks"}}) {
      runtime::InformerOptions o;
      o.plural = plural;
      *inf = std::make_unique<runtime::Informer>(client_.get(), o);
      (*inf)->Start();
      ASSERT_TRUE((*inf)->WaitForSync(5s));
    }
  }
  void TearDown() override {
    for (auto* inf : {&instances_, &volumes_, &images_, &networks_}) (*inf)->Stop();
    LocalApiTest::TearDown();
  }
  static json Inst(const std::string& name, json spec) {
    return {{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"}, {"metadata", {{"name", name}}}, {"spec", spec}};
  }
  // The keys the mapping of `informer` in `specs` gives for `obj`; fails when that informer is not watched.
  static std::vector<std::string> Keys(const std::vector<runtime::WatchSpec>& specs, runtime::Informer* informer,
                                       const json& obj) {
    for (const auto& w : specs) {
      if (w.informer != informer) continue;
      std::vector<std::string> k = w.map ? w.map(runtime::KeyFor(obj), obj) : std::vector<std::string>{runtime::KeyFor(obj)};
      std::sort(k.begin(), k.end());
      return k;
    }
    ADD_FAILURE() << "not watched";
    return {};
  }
  bool Cached(runtime::Informer* inf, size_t n) { return WaitFor([&] { return inf->List().size() == n; }); }

  std::unique_ptr<runtime::Informer> instances_, volumes_, images_, networks_;
};

TEST_F(WatchMappingsTest, InstanceReconcilerIsWokenByItsImagesVolumesAndNetworks) {
  MustCreate(Inst("kernel-user", {{"instanceType", "m1"}, {"kernelImage", "k"}, {"ramdiskImage", "r"}}), "instances");
  MustCreate(Inst("disk-user", {{"instanceType", "m1"}, {"image", "disk"}, {"volumes", {{{"volume", "data"}, {"device", "vdb"}}}},
                                {"networks", {{{"network", "lan"}}}}}),
             "instances");
  ASSERT_TRUE(Cached(instances_.get(), 2));
  instance::Options o;
  o.node = "n1";
  instance::InstanceReconciler rec(client_.get(), instances_.get(), images_.get(), nullptr, nullptr, nullptr, o,
                                   volumes_.get(), networks_.get());
  auto specs = rec.Watches();
  auto obj = [](const std::string& name, const std::string& ns = "default") {
    return json{{"metadata", {{"name", name}, {"namespace", ns}}}};
  };
  // Its own instances, and the node's fence (an instance leaving the node may leave a domain to remove).
  EXPECT_EQ(Keys(specs, instances_.get(), obj("x")), (std::vector<std::string>{"default/x", "~sweep"}));
  EXPECT_EQ(Keys(specs, images_.get(), obj("k")), std::vector<std::string>{"default/kernel-user"});
  EXPECT_EQ(Keys(specs, images_.get(), obj("r")), std::vector<std::string>{"default/kernel-user"});
  EXPECT_EQ(Keys(specs, images_.get(), obj("disk")), std::vector<std::string>{"default/disk-user"});
  EXPECT_TRUE(Keys(specs, images_.get(), obj("k", "other")).empty()) << "images are namespaced";
  EXPECT_EQ(Keys(specs, volumes_.get(), obj("data")), std::vector<std::string>{"default/disk-user"});
  EXPECT_TRUE(Keys(specs, volumes_.get(), obj("unused")).empty());
  EXPECT_EQ(Keys(specs, networks_.get(), obj("lan")), std::vector<std::string>{"default/disk-user"});
  for (const auto& w : specs) {
    if (w.informer == instances_.get()) {
      EXPECT_EQ(w.resync, instance::InstanceReconciler::kDriftCheck);
    }
  }

  // Without networking (and volumes) those sources are simply not watched.
  instance::InstanceReconciler plain(client_.get(), instances_.get(), images_.get(), nullptr, nullptr, nullptr, o);
  for (const auto& w : plain.Watches()) {
    if (w.informer) {
      EXPECT_TRUE(w.informer == instances_.get() || w.informer == images_.get());
    }
  }
}

TEST_F(WatchMappingsTest, VolumeReconcilerIsWokenByInstancesOldAndNewVolumesAndItsImages) {
  json from_image = Volume("from-image");
  from_image["spec"]["source"] = {{"image", "disk"}};
  MustCreate(from_image);
  MustCreate(Volume("blank"));
  ASSERT_TRUE(Cached(volumes_.get(), 2));
  volume::Options o;
  o.node = "n1";
  volume::VolumeReconciler rec(client_.get(), volumes_.get(), instances_.get(), images_.get(), nullptr, nullptr, o);
  auto specs = rec.Watches();
  json inst = Inst("vm", {{"volumes", {{{"volume", "new"}}}}});
  inst["metadata"]["namespace"] = "default";
  inst["status"]["volumes"] = {{{"name", "old"}, {"device", "vdb"}}};
  EXPECT_EQ(Keys(specs, instances_.get(), inst), (std::vector<std::string>{"default/new", "default/old"}));
  json img = {{"metadata", {{"name", "disk"}, {"namespace", "default"}}}};
  EXPECT_EQ(Keys(specs, images_.get(), img), std::vector<std::string>{"default/from-image"});
  img["metadata"]["name"] = "other";
  EXPECT_TRUE(Keys(specs, images_.get(), img).empty());
}

}  // namespace
}  // namespace stratus
