// The libvirt storage adapter: pool and volume XML for dir and logical pools, and volumes on libvirt's
// in-process test driver (test:///default: no daemon needed).
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <string>
#include <vector>

#include "stratus/host/hypervisor.h"
#include "stratus/host/storage.h"

namespace stratus::host {
namespace {

DomainSpec::Disk MakeDisk(const std::string& path, const std::string& format, const std::string& target,
                          bool read_only = false, bool block = false) {
  DomainSpec::Disk d;
  d.path = path;
  d.format = format;
  d.target = target;
  d.read_only = read_only;
  d.block = block;
  return d;
}

std::string Unique(const std::string& what) {
  return "hosttest-" + std::to_string(::getpid()) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + what;
}

std::shared_ptr<LibvirtConnection> TestConn() {
  auto c = ConnectLibvirt("test:///default");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : nullptr;
}

TEST(StoragePoolXmlTest, DirPool) {
  auto st = NewLibvirtStorage(TestConn());
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(st->RenderPoolXml({"stratus-images", "dir", "/var/lib/stratus/images <&>", ""}).c_str()));
  pugi::xml_node pool = doc.child("pool");
  EXPECT_STREQ(pool.attribute("type").value(), "dir");
  EXPECT_STREQ(pool.child("name").text().get(), "stratus-images");
  EXPECT_STREQ(pool.child("target").child("path").text().get(), "/var/lib/stratus/images <&>");
  EXPECT_FALSE(pool.child("source"));
}

TEST(StoragePoolXmlTest, LogicalPool) {
  auto st = NewLibvirtStorage(TestConn());
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(st->RenderPoolXml({"stratus-lvm", "logical", "", "vg0"}).c_str()));
  pugi::xml_node pool = doc.child("pool");
  EXPECT_STREQ(pool.attribute("type").value(), "logical");
  EXPECT_STREQ(pool.child("name").text().get(), "stratus-lvm");
  EXPECT_STREQ(pool.child("source").child("name").text().get(), "vg0");
  EXPECT_STREQ(pool.child("source").child("format").attribute("type").value(), "lvm2");
  EXPECT_STREQ(pool.child("target").child("path").text().get(), "/dev/vg0");
}

TEST(StorageVolumeXmlTest, DirVolumesAreSparseWithFormatAndBacking) {
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(
      RenderVolumeXml("dir", {"root-web-1", 10ull << 30, "qcow2", "/pool/img <&>.qcow2", "qcow2"}).c_str()));
  pugi::xml_node vol = doc.child("volume");
  EXPECT_STREQ(vol.child("name").text().get(), "root-web-1");
  EXPECT_STREQ(vol.child("capacity").text().get(), std::to_string(10ull << 30).c_str());
  EXPECT_STREQ(vol.child("capacity").attribute("unit").value(), "bytes");
  EXPECT_STREQ(vol.child("allocation").text().get(), "0");
  EXPECT_STREQ(vol.child("target").child("format").attribute("type").value(), "qcow2");
  EXPECT_STREQ(vol.child("target").child("compat").text().get(), "1.1");  // qcow2 v3, not 0.10
  EXPECT_STREQ(vol.child("backingStore").child("path").text().get(), "/pool/img <&>.qcow2");
  EXPECT_STREQ(vol.child("backingStore").child("format").attribute("type").value(), "qcow2");

  ASSERT_TRUE(doc.load_string(RenderVolumeXml("dir", {"blank", 1 << 20, "raw", "", ""}).c_str()));
  EXPECT_STREQ(doc.child("volume").child("target").child("format").attribute("type").value(), "raw");
  EXPECT_FALSE(doc.child("volume").child("target").child("compat"));
  EXPECT_FALSE(doc.child("volume").child("backingStore"));

  ASSERT_TRUE(doc.load_string(RenderVolumeXml("dir", {"overlay", 0, "qcow2", "/pool/base", "raw"}).c_str()));
  EXPECT_FALSE(doc.child("volume").child("capacity")) << "the backing file's size applies";
}

TEST(StorageVolumeXmlTest, LogicalVolumesHaveNoFormatOrBacking) {
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(RenderVolumeXml("logical", {"data-1", 1 << 30, "qcow2", "/x", "raw"}).c_str()));
  pugi::xml_node vol = doc.child("volume");
  EXPECT_STREQ(vol.child("name").text().get(), "data-1");
  EXPECT_STREQ(vol.child("capacity").text().get(), std::to_string(1 << 30).c_str());
  EXPECT_FALSE(vol.child("allocation")) << "an LV with allocation < capacity would be a thin snapshot";
  EXPECT_FALSE(vol.child("target"));
  EXPECT_FALSE(vol.child("backingStore"));
}

TEST(StorageVolumeNameTest, UserNamesAreValidated) {
  EXPECT_TRUE(ValidateVolumeName("data-1").ok());
  EXPECT_TRUE(ValidateVolumeName("image_abc.qcow2").ok());
  for (const std::string& bad : std::vector<std::string>{"", "a/b", "/etc/passwd", ".hidden", "..", ".", "a\nb",
                                                        std::string(256, 'x')}) {
    Status s = ValidateVolumeName(bad);
    EXPECT_EQ(s.code(), Code::kInvalid) << "accepted \"" << bad << "\"";
  }
}

class StorageLibvirtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conn_ = TestConn();
    ASSERT_NE(conn_, nullptr);
    st_ = NewLibvirtStorage(conn_);
    pool_ = {Unique("pool"), "dir", "/tmp/" + Unique("pool"), ""};
    Status s = st_->EnsurePool(pool_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (!st_) return;
    auto vols = st_->ListVolumes(pool_.name);
    if (vols.ok()) {
      for (const auto& v : *vols) EXPECT_TRUE(st_->DeleteVolume(pool_.name, v.name).ok());
    }
    EXPECT_TRUE(st_->RemovePool(pool_.name).ok());
  }
  std::shared_ptr<LibvirtConnection> conn_;
  std::unique_ptr<StoragePools> st_;
  PoolConfig pool_;
};

TEST_F(StorageLibvirtTest, EnsurePoolIsIdempotentAndRefusesAConflictingDefinition) {
  EXPECT_TRUE(st_->EnsurePool(pool_).ok());
  PoolConfig slashed = pool_;
  slashed.path = pool_.path + "/";
  EXPECT_TRUE(st_->EnsurePool(slashed).ok()) << "the same directory, spelled with a trailing slash";
  auto info = st_->Pool(pool_.name);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->type, "dir");
  EXPECT_GT(info->capacity_bytes, 0u);
  EXPECT_GT(info->available_bytes, 0u);

  PoolConfig moved = pool_;
  moved.path = "/tmp/elsewhere";
  Status s = st_->EnsurePool(moved);
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();

  // The test driver's own pool is a dir pool at /default-pool.
  EXPECT_TRUE(st_->EnsurePool({"default-pool", "dir", "/default-pool", ""}).ok());

  EXPECT_EQ(st_->EnsurePool({"bad/name", "dir", "/tmp/x", ""}).code(), Code::kInvalid);
  EXPECT_EQ(st_->EnsurePool({Unique("rel"), "dir", "relative", ""}).code(), Code::kInvalid);
  EXPECT_EQ(st_->EnsurePool({Unique("zfs"), "zfs", "/tmp/x", ""}).code(), Code::kInvalid);
  EXPECT_EQ(st_->EnsurePool({Unique("lvm"), "logical", "", ""}).code(), Code::kInvalid) << "needs a VG";
  EXPECT_EQ(st_->Pool("no-such-pool").status().code(), Code::kNotFound);
}

// What libvirt itself holds for pool `name` (another connection to the same in-process test driver): its UUID and
// target path, or empty strings when there is no such pool.
std::pair<std::string, std::string> PoolFacts(const std::string& name) {
  virConnectPtr c = virConnectOpen("test:///default");
  if (!c) return {};
  std::pair<std::string, std::string> out;
  if (virStoragePoolPtr p = virStoragePoolLookupByName(c, name.c_str())) {
    if (char* x = virStoragePoolGetXMLDesc(p, 0)) {
      pugi::xml_document doc;
      doc.load_string(x);
      out = {doc.child("pool").child("uuid").text().get(), doc.child("pool").child("target").child("path").text().get()};
      free(x);
    }
    virStoragePoolFree(p);
  }
  virConnectClose(c);
  return out;
}

// Owner marks: a pool's UUID says whose it is. Someone else's pool under our name is left alone; ours follows a
// data dir that moved (never one that was copied) and a change of name; an unmarked pool from before owner marks
// is adopted only where it stands exactly at our path.
TEST_F(StorageLibvirtTest, OwnerMarkedPoolsAreAdoptedOnlyWhenOurs) {
  namespace fs = std::filesystem;
  fs::path base = fs::temp_directory_path() / Unique("owned");
  fs::create_directories(base / "a");
  PoolConfig ours{Unique("o"), "dir", (base / "a").string(), ""};
  ours.uuid = "5b0c9f43-0d2e-5a8b-9c1d-2e3f4a5b6c7d";
  ASSERT_TRUE(st_->EnsurePool(ours).ok());
  EXPECT_EQ(PoolFacts(ours.name), std::make_pair(ours.uuid, ours.path));
  EXPECT_TRUE(st_->EnsurePool(ours).ok()) << "idempotent";

  PoolConfig theirs = ours;
  theirs.uuid = "0f0e0d0c-0b0a-5908-8706-050403020100";
  Status s = st_->EnsurePool(theirs);
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_NE(s.message().find("left alone"), std::string::npos) << s.message();
  EXPECT_EQ(PoolFacts(ours.name), std::make_pair(ours.uuid, ours.path)) << "someone else's pool is untouched";

  // Copied: the old directory is still there, so the pool stays where it is.
  PoolConfig moved = ours;
  moved.path = (base / "b").string();
  fs::create_directories(moved.path);
  s = st_->EnsurePool(moved);
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_NE(s.message().find("still exists"), std::string::npos) << s.message();
  EXPECT_EQ(PoolFacts(ours.name).second, ours.path);
  // Moved: the old directory is gone; the pool follows.
  fs::remove_all(ours.path);
  s = st_->EnsurePool(moved);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(PoolFacts(ours.name), std::make_pair(ours.uuid, moved.path));

  // Renamed: found by its UUID, redefined under the new name at the same place.
  PoolConfig renamed = moved;
  renamed.name = Unique("o2");
  ASSERT_TRUE(st_->EnsurePool(renamed).ok());
  EXPECT_EQ(PoolFacts(ours.name).first, "") << "the old name is gone";
  EXPECT_EQ(PoolFacts(renamed.name), std::make_pair(ours.uuid, moved.path));
  EXPECT_TRUE(st_->RemovePool(renamed.name).ok());

  // Unmarked pools from before: adopted at our exact path, left alone anywhere else.
  PoolConfig legacy{Unique("legacy"), "dir", (base / "c").string(), ""};
  PoolConfig stranger{Unique("stranger"), "dir", (base / "d").string(), ""};
  for (const auto& p : {legacy, stranger}) {
    fs::create_directories(p.path);
    ASSERT_TRUE(st_->EnsurePool(p).ok());
  }
  PoolConfig adopter{Unique("new"), "dir", legacy.path, ""};
  adopter.uuid = "11111111-2222-5333-8444-555555555555";
  adopter.adopt_name = legacy.name;
  ASSERT_TRUE(st_->EnsurePool(adopter).ok());
  EXPECT_EQ(PoolFacts(legacy.name).first, "") << "adopted";
  EXPECT_EQ(PoolFacts(adopter.name), std::make_pair(adopter.uuid, legacy.path));
  PoolConfig elsewhere{Unique("new2"), "dir", (base / "e").string(), ""};
  elsewhere.uuid = "66666666-7777-5888-9999-aaaaaaaaaaaa";
  elsewhere.adopt_name = stranger.name;
  ASSERT_TRUE(st_->EnsurePool(elsewhere).ok());
  EXPECT_EQ(PoolFacts(stranger.name).second, stranger.path) << "an unmarked pool elsewhere is not ours";
  for (const auto& n : {adopter.name, elsewhere.name, stranger.name}) EXPECT_TRUE(st_->RemovePool(n).ok());
  fs::remove_all(base);
}

TEST_F(StorageLibvirtTest, RemovePoolThenEnsureAgain) {
  ASSERT_TRUE(st_->RemovePool(pool_.name).ok());
  EXPECT_EQ(st_->Pool(pool_.name).status().code(), Code::kNotFound);
  EXPECT_TRUE(st_->RemovePool(pool_.name).ok()) << "removing an absent pool is Ok";
  ASSERT_TRUE(st_->EnsurePool(pool_).ok());
  EXPECT_TRUE(st_->Pool(pool_.name).ok());
}

TEST_F(StorageLibvirtTest, CreateResizeShrinkRefusedDelete) {
  auto v = st_->CreateVolume(pool_.name, "data-1", 1 << 20, "raw");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->name, "data-1");
  EXPECT_EQ(v->capacity_bytes, 1u << 20);
  EXPECT_EQ(v->format, "raw");
  EXPECT_EQ(v->path, pool_.path + "/data-1");

  auto dup = st_->CreateVolume(pool_.name, "data-1", 1 << 20, "raw");
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);

  Status s = st_->ResizeVolume(pool_.name, "data-1", 4 << 20);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(st_->Volume(pool_.name, "data-1")->capacity_bytes, 4u << 20);
  EXPECT_TRUE(st_->ResizeVolume(pool_.name, "data-1", 4 << 20).ok()) << "same size is Ok";

  s = st_->ResizeVolume(pool_.name, "data-1", 2 << 20);
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_NE(s.message().find("shrinking"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not supported"), std::string::npos) << s.message();
  EXPECT_EQ(st_->Volume(pool_.name, "data-1")->capacity_bytes, 4u << 20);

  ASSERT_TRUE(st_->DeleteVolume(pool_.name, "data-1").ok());
  EXPECT_EQ(st_->Volume(pool_.name, "data-1").status().code(), Code::kNotFound);
  EXPECT_TRUE(st_->DeleteVolume(pool_.name, "data-1").ok()) << "deleting an absent volume is Ok";
  EXPECT_EQ(st_->ResizeVolume(pool_.name, "data-1", 8 << 20).code(), Code::kNotFound);
  EXPECT_EQ(st_->DeleteVolume("no-such-pool", "data-1").code(), Code::kNotFound);
}

TEST_F(StorageLibvirtTest, Qcow2OverABackingVolumeAndClone) {
  auto base = st_->CreateVolume(pool_.name, "image-1", 8 << 20, "qcow2");
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  auto overlay = st_->CreateVolume(pool_.name, "root-1", 16 << 20, "qcow2", base->path);
  ASSERT_TRUE(overlay.ok()) << overlay.status().ToString();
  EXPECT_EQ(overlay->format, "qcow2");

  EXPECT_EQ(st_->CreateVolume(pool_.name, "root-2", 16 << 20, "raw", base->path).status().code(), Code::kInvalid)
      << "a raw volume cannot have a backing file";
  EXPECT_EQ(st_->CreateVolume(pool_.name, "root-3", 16 << 20, "qcow2", "/nowhere/unknown").status().code(),
            Code::kInvalid)
      << "unknown backing format must not be probed";
  EXPECT_EQ(st_->CreateVolume(pool_.name, "root-4", 16 << 20, "qcow2", "/pool/../etc/shadow", "raw").status().code(),
            Code::kInvalid);
  EXPECT_EQ(st_->CreateVolume(pool_.name, "root-5", 0, "raw").status().code(), Code::kInvalid);
  EXPECT_EQ(st_->CreateVolume(pool_.name, "root-6", 1 << 20, "vmdk").status().code(), Code::kInvalid);

  auto clone = st_->CloneVolume(pool_.name, "copy-1", pool_.name, "image-1", 32 << 20, "raw");
  ASSERT_TRUE(clone.ok()) << clone.status().ToString();
  EXPECT_GE(clone->capacity_bytes, 32u << 20);
  EXPECT_EQ(st_->CloneVolume(pool_.name, "copy-2", pool_.name, "image-1", 1 << 20, "raw").status().code(),
            Code::kInvalid)
      << "a clone smaller than its source";
  EXPECT_EQ(st_->CloneVolume(pool_.name, "copy-1", pool_.name, "image-1", 0, "raw").status().code(),
            Code::kAlreadyExists);

  auto all = st_->ListVolumes(pool_.name);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, "copy-1");
  EXPECT_EQ((*all)[1].name, "image-1");
  EXPECT_EQ((*all)[2].name, "root-1");
}

TEST_F(StorageLibvirtTest, ImportFileOnTheTestDriverKeepsTheSize) {
  std::string file = "/tmp/" + Unique("import.img");
  {
    std::ofstream out(file, std::ios::binary);
    out << std::string(3 * 1024 * 1024 + 17, 'x');
  }
  uint64_t last_done = 0, last_total = 0;
  int calls = 0;
  auto v = st_->ImportFile(pool_.name, "img-1", file, "raw", [&](uint64_t d, uint64_t t) {
    last_done = d;
    last_total = t;
    ++calls;
  });
  std::filesystem::remove(file);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->capacity_bytes, 3u * 1024 * 1024 + 17);
  EXPECT_EQ(last_total, 3u * 1024 * 1024 + 17);
  EXPECT_EQ(last_done, last_total);
  EXPECT_GE(calls, 1);
  EXPECT_EQ(st_->ImportFile(pool_.name, "img-2", "/nonexistent/file", "raw", nullptr).status().code(),
            Code::kInvalid);
}

TEST_F(StorageLibvirtTest, InvalidVolumeNamesAreRejected) {
  for (const std::string bad : {"a/b", ".hidden", "", "../escape"}) {
    EXPECT_EQ(st_->CreateVolume(pool_.name, bad, 1 << 20, "raw").status().code(), Code::kInvalid) << bad;
    EXPECT_EQ(st_->Volume(pool_.name, bad).status().code(), Code::kInvalid) << bad;
    EXPECT_EQ(st_->DeleteVolume(pool_.name, bad).code(), Code::kInvalid) << bad;
    EXPECT_EQ(st_->ResizeVolume(pool_.name, bad, 1 << 20).code(), Code::kInvalid) << bad;
    EXPECT_EQ(st_->ImportFile(pool_.name, bad, "/etc/hostname", "raw", nullptr).status().code(), Code::kInvalid)
        << bad;
  }
  EXPECT_TRUE(st_->ListVolumes(pool_.name)->empty());
}

TEST_F(StorageLibvirtTest, LogicalPoolVolumesAreRawWithoutBacking) {
  // The test driver defines logical pools without touching LVM, which exercises the logical code path here.
  PoolConfig lvm{Unique("lvm"), "logical", "", "vg-" + std::to_string(::getpid())};
  Status s = st_->EnsurePool(lvm);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto info = st_->Pool(lvm.name);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->type, "logical");
  EXPECT_EQ(st_->CreateVolume(lvm.name, "lv-1", 1 << 20, "qcow2").status().code(), Code::kInvalid);
  auto v = st_->CreateVolume(lvm.name, "lv-1", 1 << 20, "raw");
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(st_->CreateVolume(lvm.name, "lv-2", 1 << 20, "qcow2", "/dev/vg/base", "raw").status().code(),
            Code::kInvalid);
  EXPECT_TRUE(st_->DeleteVolume(lvm.name, "lv-1").ok());
  EXPECT_TRUE(st_->RemovePool(lvm.name).ok());
}

TEST_F(StorageLibvirtTest, LiveResizeOfAnAttachedDiskOnTheTestDriver) {
  auto hv = NewLibvirtHypervisor(conn_);
  auto v = st_->CreateVolume(pool_.name, "data-live", 1 << 20, "raw");
  ASSERT_TRUE(v.ok());
  DomainSpec s;
  s.name = Unique("dom");
  s.virt_type = "test";
  s.disks.push_back(MakeDisk(v->path, "raw", "vdb", false, false));
  ASSERT_TRUE(hv->Define(s).ok());
  ASSERT_TRUE(hv->Start(s.name).ok());
  Status r = hv->BlockResize(s.name, "vdb", 2 << 20);
  EXPECT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(st_->Volume(pool_.name, "data-live")->capacity_bytes, 2u << 20);
  EXPECT_EQ(hv->BlockResize(s.name, "vdb", 1 << 20).code(), Code::kInvalid);
  EXPECT_TRUE(hv->Destroy(s.name).ok());
  EXPECT_TRUE(hv->Undefine(s.name).ok());
}

}  // namespace
}  // namespace stratus::host
