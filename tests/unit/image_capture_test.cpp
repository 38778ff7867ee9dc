// Images captured from a volume (EC2's CreateImage): which node copies the volume, and when every node waits.
#include <gtest/gtest.h>

#include "stratus/image/image.h"

namespace stratus::image {
namespace {

json Img(const std::string& volume, bool uploaded = false) {
  json i = {{"metadata", {{"name", "snap"}, {"namespace", "default"}}},
            {"spec", {{"type", "disk"}, {"source", {{"volume", volume}}}}}};
  if (uploaded) i["status"]["upload"] = {{"size", 10}, {"sha256", std::string(64, 'a')}};
  return i;
}

json Vol(const std::string& node, const std::string& phase, const std::string& path = "/pool/root.qcow2") {
  return {{"metadata", {{"name", "root"}}}, {"status", {{"node", node}, {"phase", phase}, {"path", path}}}};
}

json Snap(const std::string& snapshot) {
  return {{"metadata", {{"name", "img"}, {"namespace", "default"}}},
          {"spec", {{"type", "disk"}, {"source", {{"snapshot", snapshot}}}}}};
}

TEST(DecideCaptureTest, OnlyTheNodeHoldingTheReadyVolumeCopiesItOnce) {
  using A = CaptureDecision::Action;
  struct Case {
    const char* what;
    json image, volume;
    std::string node;
    A want;
    std::string message_has;
  };
  const std::vector<Case> cases = {
      {"holder, in use", Img("root"), Vol("n1", "InUse"), "n1", A::kCapture, ""},
      {"holder, available", Img("root"), Vol("n1", "Available"), "n1", A::kCapture, ""},
      {"another node waits for the holder", Img("root"), Vol("n1", "InUse"), "n2", A::kWait, "captured by node n1"},
      {"volume missing", Img("root"), json(), "n1", A::kWait, "waiting for volume root"},
      {"volume not ready", Img("root"), Vol("n1", "Creating"), "n1", A::kWait, "to be ready"},
      {"volume without node", Img("root"), Vol("", "Pending"), "n1", A::kWait, "to be ready"},
      {"no path yet", Img("root"), Vol("n1", "InUse", ""), "n1", A::kWait, "no path"},
      {"uploaded already: import it", Img("root", true), Vol("n1", "InUse"), "n1", A::kNone, ""},
      {"not from a volume", json{{"spec", {{"source", {{"url", "http://x/y"}}}}}}, Vol("n1", "InUse"), "n1", A::kNone, ""},
      // From a VolumeSnapshot: ready once its phase is Ready (a volume's phases do not count).
      {"snapshot ready", Snap("s1"), Vol("n1", "Ready"), "n1", A::kCapture, ""},
      {"snapshot still copying", Snap("s1"), Vol("n1", "Creating"), "n1", A::kWait, "snapshot s1 to be ready"},
      {"snapshot phase is not a volume's", Snap("s1"), Vol("n1", "InUse"), "n1", A::kWait, "to be ready"},
      {"snapshot on another node", Snap("s1"), Vol("n2", "Ready"), "n1", A::kWait, "snapshot s1 is captured by node n2"},
      {"snapshot missing", Snap("s1"), json(), "n1", A::kWait, "waiting for snapshot s1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    CaptureDecision d = DecideCapture(c.image, c.volume, c.node);
    EXPECT_EQ(d.action, c.want);
    if (!c.message_has.empty()) EXPECT_NE(d.message.find(c.message_has), std::string::npos) << d.message;
    if (c.want == A::kCapture) EXPECT_EQ(d.path, "/pool/root.qcow2");
  }
}

TEST(ValidateImageTest, SourceNamesExactlyOneOfUrlAndVolume) {
  EXPECT_TRUE(ValidateImage(Img("root")).ok());
  EXPECT_TRUE(ValidateImage({{"spec", {{"source", {{"url", "http://x/y"}}}}}}).ok());
  EXPECT_TRUE(ValidateImage({{"spec", {{"type", "disk"}}}}).ok());  // uploaded
  Status both = ValidateImage({{"spec", {{"source", {{"url", "http://x/y"}, {"volume", "root"}}}}}});
  EXPECT_EQ(both.code(), Code::kInvalid);
  EXPECT_NE(both.message().find("spec.source"), std::string::npos);
  EXPECT_EQ(ValidateImage({{"spec", {{"source", json::object()}}}}).code(), Code::kInvalid);
  Status kernel = ValidateImage({{"spec", {{"type", "kernel"}, {"source", {{"volume", "root"}}}}}});
  EXPECT_EQ(kernel.code(), Code::kInvalid);
  EXPECT_NE(kernel.message().find("spec.source.volume"), std::string::npos);
  EXPECT_TRUE(ValidateImage(Snap("s1")).ok());
  EXPECT_EQ(ValidateImage({{"spec", {{"source", {{"snapshot", "s1"}, {"volume", "root"}}}}}}).code(), Code::kInvalid);
  Status ramdisk = ValidateImage({{"spec", {{"type", "ramdisk"}, {"source", {{"snapshot", "s1"}}}}}});
  EXPECT_EQ(ramdisk.code(), Code::kInvalid);
  EXPECT_NE(ramdisk.message().find("spec.source.snapshot"), std::string::npos);
}

}  // namespace
}  // namespace stratus::image
