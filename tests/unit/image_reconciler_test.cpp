// The image cache reconciler on a fake storage pool and a real in-process API: an image is fetched (file://),
// checked and imported once; this node's entry says Ready; nothing is redone when nothing changed; a cached
// volume without a finished import is redone; a checksum mismatch fails with the cause and leaves nothing behind;
// an image that waits for its upload says so.
#include <gtest/gtest.h>

#include <fstream>

#include "fake_storage.h"
#include "runtime_test_env.h"
#include "stratus/core/object.h"
#include "stratus/image/image.h"

namespace stratus::image {
namespace {

using namespace std::chrono_literals;

class ImageReconcilerTest : public testing_env::LocalApiTest {
 protected:
  void SetUp() override {
    LocalApiTest::SetUp();
    runtime::InformerOptions o;
    o.plural = "images";
    images_ = std::make_unique<runtime::Informer>(client_.get(), o);
    images_->Start();
    ASSERT_TRUE(images_->WaitForSync(5s));
    ASSERT_TRUE(storage_.EnsurePool({"stratus-images", "dir", "/fake/images"}).ok());
    src_ = dir_ / "kernel.bin";
    std::ofstream(src_) << "not really a kernel";
    rec_ = std::make_unique<ImageReconciler>(client_.get(), images_.get(), &storage_, "stratus-images",
                                             (dir_ / "work").string(), "node-a");
    storage_.TakeCalls();
  }
  void TearDown() override {
    rec_.reset();
    images_->Stop();
    LocalApiTest::TearDown();
  }
  json Create(const std::string& name, json source, const std::string& sha = "") {
    json img = {{"apiVersion", "stratus.io/v1"},
                {"kind", "Image"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"type", "kernel"}}}};
    if (!source.is_null()) img["spec"]["source"] = source;
    if (!sha.empty()) img["spec"]["sha256"] = sha;
    return MustCreate(img, "images");
  }
  // Reconciles `name` once the cache shows the API's latest version of it.
  StatusOr<runtime::Result> Reconcile(const std::string& name) {
    auto cur = client_->Get("images", "default", name);
    if (cur.ok()) {
      uint64_t rv = ResourceVersionOf(*cur);
      EXPECT_TRUE(WaitFor([&] { return ResourceVersionOf(images_->Get("default/" + name)) >= rv; }));
    }
    return rec_->Reconcile("default/" + name);
  }
  json Entry(const std::string& name) {
    auto r = client_->Get("images", "default", name);
    return r.ok() ? NodeEntry(*r, "node-a") : json();
  }

  fakes::FakeStoragePools storage_;
  std::unique_ptr<runtime::Informer> images_;
  std::unique_ptr<ImageReconciler> rec_;
  std::filesystem::path src_;
};

TEST_F(ImageReconcilerTest, ImportsOnceAndRedoesAnUnfinishedImport) {
  json img = Create("k", {{"url", "file://" + src_.string()}});
  const std::string vol = CacheVolumeName(img);
  ASSERT_TRUE(Reconcile("k").ok());
  EXPECT_EQ(storage_.TakeCalls(), std::vector<std::string>{"ImportFile stratus-images/" + vol});
  json e = Entry("k");
  EXPECT_EQ(e["phase"], "Ready");
  EXPECT_EQ(e["progress"], 100);
  EXPECT_EQ(e["format"], "raw");
  EXPECT_EQ(e["checksum"].get<std::string>().rfind("sha256:", 0), 0u);
  // Cached and Ready: nothing is fetched again.
  ASSERT_TRUE(Reconcile("k").ok());
  EXPECT_TRUE(storage_.TakeCalls().empty());
  // The node entry says it is not done (an agent killed mid-import): the volume is removed and imported again.
  auto cur = client_->Get("images", "default", "k");
  ASSERT_TRUE(cur.ok());
  json half = *cur;
  half["status"]["nodes"]["node-a"] = {{"phase", "Downloading"}, {"progress", 40}};
  ASSERT_TRUE(client_->UpdateStatus("images", "default", half).ok());
  ASSERT_TRUE(Reconcile("k").ok());
  EXPECT_EQ(storage_.TakeCalls(),
            (std::vector<std::string>{"DeleteVolume stratus-images/" + vol, "ImportFile stratus-images/" + vol}));
  EXPECT_EQ(Entry("k")["phase"], "Ready");
}

TEST_F(ImageReconcilerTest, ChecksumMismatchFailsAndCachesNothing) {
  Create("k", {{"url", "file://" + src_.string()}}, std::string(64, 'a'));
  EXPECT_FALSE(Reconcile("k").ok());
  json e = Entry("k");
  EXPECT_EQ(e["phase"], "Failed");
  EXPECT_EQ(e["reason"], "ChecksumMismatch");
  EXPECT_NE(e["message"].get<std::string>().find("spec.sha256"), std::string::npos);
  EXPECT_TRUE(storage_.TakeCalls().empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "work"));  // no partial download left behind
}

TEST_F(ImageReconcilerTest, StorageFailureIsReportedAndRetried) {
  Create("k", {{"url", "file://" + src_.string()}});
  storage_.FailNext("ImportFile", Internal("pool is full"));
  EXPECT_FALSE(Reconcile("k").ok());
  EXPECT_EQ(Entry("k")["reason"], "CacheFailed");
  ASSERT_TRUE(Reconcile("k").ok());
  EXPECT_EQ(Entry("k")["phase"], "Ready");
}

TEST_F(ImageReconcilerTest, AnUploadedImageWaitsForItsData) {
  Create("k", nullptr);  // no source: uploaded
  ASSERT_TRUE(Reconcile("k").ok());
  EXPECT_EQ(Entry("k")["phase"], "Pending");
  EXPECT_EQ(Entry("k")["reason"], "AwaitingUpload");
  EXPECT_TRUE(storage_.TakeCalls().empty());
}

}  // namespace
}  // namespace stratus::image
