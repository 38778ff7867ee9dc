// Image data upload (PUT .../images/NAME/upload, `stratusctl upload`): stored durably by the server, served
// back, imported by the node agent like any other source, refused when it cannot be right, removed with its Image.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "harness.h"
#include "stratus/core/sha256.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;
const char* kNs = "/apis/stratus.io/v1/namespaces/default";

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ImageYaml(const std::string& name, const std::string& extra = "") {
  return "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: " + name + "}\nspec:\n  type: kernel\n" + extra;
}

std::string ReadyReason(const json& img) {
  if (!img.contains("status") || !img["status"].contains("conditions")) return "";
  for (const auto& c : img["status"]["conditions"]) {
    if (c["type"] == "Ready") return c.value("reason", "");
  }
  return "";
}

size_t FilesIn(const fs::path& dir) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

TEST(UploadTest, UploadedImageIsImportedServedBackAndRemovedWithItsImage) {
  TempDir dir;
  ReservedPort agent_port = ReservePort();
  ServerProcess server(dir.path() / "data",
                       {"--agent=true", "--libvirt-uri", "test:///default", "--node", "node-a", "--agent-listen",
                        agent_port.hostport(), "--reserved-memory-mib", "0"});
  ASSERT_TRUE(server.Start()) << server.log();
  std::string data = RandomBytes(3 << 20);
  fs::path file = dir.path() / "vmlinuz";
  std::ofstream(file, std::ios::binary) << data;
  auto sum = Sha256File(file.string());
  ASSERT_TRUE(sum.ok());

  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, ImageYaml("up", "  sha256: " + *sum + "\n")).exit_code, 0);
  json img;
  ASSERT_TRUE(Eventually([&] {
    img = server.Http("GET", std::string(kNs) + "/images/up").Json();
    return ReadyReason(img) == "AwaitingUpload";
  })) << img.dump(2);
  EXPECT_EQ(img["status"]["phase"], "Pending");

  auto up = server.Ctl({"upload", "image/up", file.string()});
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_NE(up.out.find(*sum), std::string::npos) << up.out;
  EXPECT_NE(up.err.find("uploading 100%"), std::string::npos) << up.err;  // progress is shown

  ASSERT_TRUE(Eventually([&] {
    img = server.Http("GET", std::string(kNs) + "/images/up").Json();
    return img["status"].value("phase", "") == "Ready";
  })) << img.dump(2) << server.log();
  EXPECT_EQ(img["status"]["checksum"], "sha256:" + *sum);
  EXPECT_EQ(img["status"]["upload"]["size"], static_cast<int64_t>(data.size()));

  auto back = server.Http("GET", std::string(kNs) + "/images/up/upload");
  ASSERT_EQ(back.code, 200);
  EXPECT_TRUE(back.body == data);

  // Images are immutable: a second upload is refused and says why.
  auto again = server.Ctl({"upload", "image/up", file.string(), "-q"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("immutable"), std::string::npos) << again.err;

  // An instance boots from the uploaded kernel.
  std::string inst =
      "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n"
      "---\napiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: vm}\nspec:\n  instanceType: m1.small\n"
      "  kernelImage: up\n";
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, inst).exit_code, 0);
  json vm;
  EXPECT_TRUE(Eventually([&] {
    vm = server.Http("GET", std::string(kNs) + "/instances/vm").Json();
    return vm.contains("status") && vm["status"].value("phase", "") == "Running";
  })) << vm.dump(2);

  // Deleting the Image removes its data on the server.
  fs::path blobs = dir.path() / "data" / "images";
  EXPECT_EQ(FilesIn(blobs), 1u);
  ASSERT_EQ(server.Ctl({"delete", "image", "up"}).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return FilesIn(blobs) == 0; }, 10));
  EXPECT_EQ(server.Http("GET", std::string(kNs) + "/images/up/upload").code, 404);
}

TEST(UploadTest, BadUploadsAreRefusedAndLeaveNothingBehind) {
  TempDir dir;
  ServerProcess server(dir.path() / "data");
  ASSERT_TRUE(server.Start()) << server.log();
  fs::path file = dir.path() / "blob";
  std::ofstream(file, std::ios::binary) << RandomBytes(1 << 20);
  std::string path = std::string(kNs) + "/images/pinned/upload";

  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, ImageYaml("pinned", "  sha256: " + std::string(64, 'a') + "\n")).exit_code, 0);
  auto wrong = server.Ctl({"upload", "image/pinned", file.string(), "-q"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("spec.sha256"), std::string::npos) << wrong.err;
  EXPECT_EQ(FilesIn(dir.path() / "data" / "images"), 0u);
  json img = server.Http("GET", std::string(kNs) + "/images/pinned").Json();
  EXPECT_FALSE(img.contains("status") && img["status"].contains("upload")) << img.dump(2);

  std::string with_url = "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: fetched}\nspec:\n  type: kernel\n"
                         "  source: {url: 'http://127.0.0.1:1/k'}\n";
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, with_url).exit_code, 0);
  auto r = server.Http("PUT", std::string(kNs) + "/images/fetched/upload", "abc", "application/octet-stream");
  EXPECT_EQ(r.code, 409) << r.body;
  EXPECT_NE(r.body.find("spec.source"), std::string::npos) << r.body;

  EXPECT_EQ(server.Http("PUT", std::string(kNs) + "/images/missing/upload", "abc", "application/octet-stream").code, 404);
  EXPECT_EQ(server.Http("PUT", std::string(kNs) + "/images/pinned/upload", "", "application/octet-stream").code, 400);
  EXPECT_EQ(server.Http("POST", std::string(kNs) + "/images/pinned/upload", "abc", "application/octet-stream").code, 405);
  EXPECT_EQ(server.Ctl({"upload", "instance/pinned", file.string()}).exit_code, 1);
  auto missing_file = server.Ctl({"upload", "image/pinned", (dir.path() / "nope").string()});
  EXPECT_EQ(missing_file.exit_code, 1);
  EXPECT_NE(missing_file.err.find("nope"), std::string::npos);
  EXPECT_EQ(FilesIn(dir.path() / "data" / "images"), 0u);
}

TEST(UploadTest, AcknowledgedUploadSurvivesKill9) {
  TempDir dir;
  ServerProcess server(dir.path() / "data");
  ASSERT_TRUE(server.Start()) << server.log();
  std::string data = RandomBytes(2 << 20);
  fs::path file = dir.path() / "blob";
  std::ofstream(file, std::ios::binary) << data;
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, ImageYaml("keep")).exit_code, 0);
  ASSERT_EQ(server.Ctl({"upload", "image/keep", file.string(), "-q"}).exit_code, 0);
  server.Kill(SIGKILL);
  ASSERT_TRUE(server.Start()) << server.log();
  auto back = server.Http("GET", std::string(kNs) + "/images/keep/upload");
  ASSERT_EQ(back.code, 200) << back.body;
  EXPECT_TRUE(back.body == data);
}

}  // namespace
}  // namespace stratus::testing
