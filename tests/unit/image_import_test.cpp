// Image import helpers: fetching with a checksum and progress, and format detection with qemu-img.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "stratus/core/exec.h"
#include "stratus/core/sha256.h"
#include "stratus/image/image.h"

namespace stratus::image {
namespace {
namespace fs = std::filesystem;

class ImageImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stratus-img-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ImageImportTest, FetchCopiesHashesAndReportsProgress) {
  fs::path src = dir_ / "src.bin";
  std::ofstream(src) << "abc";
  uint64_t last_done = 0, last_total = 0;
  auto sum = Fetch("file://" + src.string(), (dir_ / "out").string(), [&](uint64_t d, uint64_t t) {
    last_done = d;
    last_total = t;
  });
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  // SHA-256 of "abc" (FIPS 180-2 test vector).
  EXPECT_EQ(*sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(last_done, 3u);
  EXPECT_EQ(last_total, 3u);
  EXPECT_EQ(fs::file_size(dir_ / "out"), 3u);
}

TEST_F(ImageImportTest, FetchRefusesMissingSourcesAndUnknownSchemes) {
  auto missing = Fetch("file://" + (dir_ / "nope").string(), (dir_ / "out").string(), nullptr);
  EXPECT_EQ(missing.status().code(), Code::kUnavailable);
  auto ftp = Fetch("ftp://example.invalid/x", (dir_ / "out").string(), nullptr);
  EXPECT_EQ(ftp.status().code(), Code::kBadRequest);
  EXPECT_NE(ftp.status().message().find("file://, http:// or https://"), std::string::npos);
}

TEST_F(ImageImportTest, DetectsQcow2RawAndIso) {
  std::string qcow = (dir_ / "d.qcow2").string();
  ASSERT_TRUE(ExecChecked({"qemu-img", "create", "-f", "qcow2", qcow, "64M"}).ok());
  auto q = DetectFormat(qcow);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->format, "qcow2");
  EXPECT_EQ(q->virtual_size, 64u << 20);
  EXPECT_FALSE(q->has_backing);
  std::string overlay = (dir_ / "o.qcow2").string();
  ASSERT_TRUE(ExecChecked({"qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", qcow, overlay}).ok());
  EXPECT_TRUE(DetectFormat(overlay)->has_backing) << "images with backing files must be recognisable";
  fs::path raw = dir_ / "r.img";
  std::ofstream(raw) << std::string(1 << 16, '\0');
  EXPECT_EQ(DetectFormat(raw.string())->format, "raw");
  // An ISO 9660 signature at 0x8001 makes a raw file an iso.
  fs::path iso = dir_ / "x.iso";
  {
    std::string data(0x9000, '\0');
    data.replace(0x8001, 5, "CD001");
    std::ofstream(iso, std::ios::binary) << data;
  }
  EXPECT_EQ(DetectFormat(iso.string())->format, "iso");
}

TEST(ImageSourceTest, UploadedImagesComeFromTheApiServerOnceUploaded) {
  json with_url = {{"metadata", {{"name", "k"}, {"namespace", "default"}}},
                   {"spec", {{"source", {{"url", "http://mirror/k"}}}}}};
  std::string waiting;
  EXPECT_EQ(SourceUrl(with_url, "http://api:8774", &waiting), "http://mirror/k");
  json pending = {{"metadata", {{"name", "up"}, {"namespace", "ns1"}}}, {"spec", {{"type", "disk"}}}};
  EXPECT_EQ(SourceUrl(pending, "http://api:8774", &waiting), "");
  EXPECT_NE(waiting.find("stratusctl upload image/up"), std::string::npos) << waiting;
  json done = pending;
  done["status"]["upload"] = {{"size", 3}, {"sha256", std::string(64, 'a')}};
  EXPECT_EQ(SourceUrl(done, "http://api:8774", &waiting),
            "http://api:8774/apis/stratus.io/v1/namespaces/ns1/images/up/upload");
  waiting.clear();
  EXPECT_EQ(SourceUrl(done, "", &waiting), "");
  EXPECT_FALSE(waiting.empty());
}

TEST(Sha256Test, KnownDigests) {
  Sha256 h;
  EXPECT_EQ(h.Hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.Update("abc", 3);
  EXPECT_EQ(abc.Hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256File("/nonexistent/file").status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace stratus::image
