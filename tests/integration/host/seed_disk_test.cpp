// The real NoCloud seed writer (Debian's xorriso): the image is ISO 9660 labelled "cidata" with the three files as
// given, its stamp follows it, and a rewrite replaces the image whole.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "stratus/core/exec.h"
#include "stratus/host/seed_disk.h"

namespace stratus::host {
namespace {
namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "stratus-seed.XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The files in the image, read back by xorriso itself (not by our writer).
std::map<std::string, std::string> Extract(const fs::path& iso, const fs::path& dir) {
  fs::remove_all(dir);
  auto r = Exec({"xorriso", "-osirrox", "on", "-indev", iso.string(), "-extract", "/", dir.string()});
  EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().message());
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = ReadFile(e.path());
  return out;
}

TEST(SeedDiskTest, WritesACidataImageWithItsStampAndReplacesItWhole) {
  if (!ProgramInPath("xorriso")) GTEST_FAIL() << "xorriso is missing: scripts/install-deps.sh installs it";
  TempDir tmp;
  auto seeds = NewIsoSeedDisks();
  fs::path iso = tmp.path / "inst" / "seed.iso";
  EXPECT_EQ(seeds->Stamp(iso.string()), "");
  std::map<std::string, std::string> files = {{"meta-data", "instance-id: abc\nlocal-hostname: web-1\n"},
                                              {"user-data", "#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAA k]\n"},
                                              {"network-config", "version: 2\n"}};
  ASSERT_TRUE(seeds->Write(iso.string(), files, "stamp-1").ok());
  EXPECT_EQ(seeds->Stamp(iso.string()), "stamp-1");
  // ISO 9660: "CD001" at byte 32769 and the volume identifier (padded to 32 bytes) at 32808.
  std::string bytes = ReadFile(iso);
  ASSERT_GT(bytes.size(), 32840u);
  EXPECT_EQ(bytes.substr(32769, 5), "CD001");
  EXPECT_EQ(bytes.substr(32808, 6), "cidata");
  EXPECT_EQ(Extract(iso, tmp.path / "x1"), files);
  // Rewritten with other contents: the new image, the new stamp, no temporary leftovers beside it.
  files["user-data"] = "#!/bin/sh\necho hi\n";
  files.erase("network-config");
  ASSERT_TRUE(seeds->Write(iso.string(), files, "stamp-2").ok());
  EXPECT_EQ(seeds->Stamp(iso.string()), "stamp-2");
  EXPECT_EQ(Extract(iso, tmp.path / "x2"), files);
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(iso.parent_path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 2u);  // seed.iso and seed.iso.stamp
  // A torn write (the image without its stamp) reads as no seed, so it is written again.
  fs::remove(iso.string() + ".stamp");
  EXPECT_EQ(seeds->Stamp(iso.string()), "");
  // Bad file names are refused, not written outside the image.
  EXPECT_FALSE(seeds->Write(iso.string(), {{"../escape", "x"}}, "s").ok());
}

}  // namespace
}  // namespace stratus::host
