// The image-status reconciler's decision: the top-level status of an Image from its per-node entries and the
// cluster's Nodes (one writer per field: nodes write status.nodes.<node>, this summarizes).
#include <gtest/gtest.h>

#include "stratus/imagestatus/imagestatus.h"

namespace stratus::imagestatus {
namespace {

json Node(const std::string& name, const std::string& ready, const std::string& reason = "AgentReady",
          const std::string& message = "") {
  return {{"metadata", {{"name", name}}},
          {"status", {{"conditions", json::array({{{"type", "Ready"}, {"status", ready}, {"reason", reason},
                                                   {"message", message}}})}}}};
}

json Image(const json& entries) {
  json img = {{"metadata", {{"name", "img"}, {"namespace", "default"}, {"generation", 3}}}, {"spec", {{"type", "disk"}}}};
  if (!entries.is_null()) img["status"]["nodes"] = entries;
  return img;
}

json Ready(const std::string& checksum = "sha256:ab") {
  return {{"phase", "Ready"}, {"progress", 100}, {"size", 10}, {"virtualSize", 20}, {"format", "qcow2"},
          {"checksum", checksum}};
}

struct Case {
  std::string name;
  json entries;
  std::vector<json> nodes;
  std::string phase, ready, reason, message_has;
};

TEST(ImageStatusSummarize, DecisionTable) {
  std::vector<Case> cases = {
      {"no nodes at all", json(), {}, "Pending", "False", "NodeNotReady", "no node has registered"},
      {"the only node cannot work", json(), {Node("vm", "False", "StoragePoolFailed", "storage pool x exists")},
       "Pending", "False", "NodeNotReady", "node vm: StoragePoolFailed: storage pool x exists"},
      {"node silent", json(), {Node("vm", "Unknown", "NodeStatusUnknown", "no heartbeat")}, "Pending", "False",
       "NodeNotReady", "node vm: NodeStatusUnknown"},
      {"ready node, nothing reported yet", json(), {Node("a", "True")}, "Pending", "False", "Pending",
       "waiting for a node"},
      {"downloading on one node", {{"a", {{"phase", "Downloading"}, {"progress", 40}}}}, {Node("a", "True")},
       "Downloading", "False", "Downloading", "importing on a"},
      {"ready on one of two", {{"a", Ready()}, {"b", {{"phase", "Downloading"}, {"progress", 10}}}},
       {Node("a", "True"), Node("b", "True")}, "Ready", "True", "Imported", "cached on 1 of 2 node(s): a"},
      {"ready on both", {{"a", Ready()}, {"b", Ready()}}, {Node("a", "True"), Node("b", "True")}, "Ready", "True",
       "Imported", "cached on 2 of 2 node(s): a, b"},
      {"failed everywhere", {{"a", {{"phase", "Failed"}, {"reason", "ChecksumMismatch"}, {"message", "bad sum"}}}},
       {Node("a", "True")}, "Failed", "False", "ChecksumMismatch", "node a: bad sum"},
      {"failed on one, importing on another",
       {{"a", {{"phase", "Failed"}, {"reason", "CacheFailed"}}}, {"b", {{"phase", "Converting"}, {"progress", 100}}}},
       {Node("a", "True"), Node("b", "True")}, "Converting", "False", "Converting", "importing on b"},
      {"awaiting upload", {{"a", {{"phase", "Pending"}, {"reason", "AwaitingUpload"}, {"message", "upload it"}}}},
       {Node("a", "True")}, "Pending", "False", "AwaitingUpload", "upload it"},
      {"entry of a node that is gone is ignored", {{"gone", Ready()}}, {Node("a", "True")}, "Pending", "False",
       "Pending", "waiting"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Summary s = Summarize(Image(c.entries), c.nodes);
    EXPECT_EQ(s.fields.value("phase", ""), c.phase);
    EXPECT_EQ(s.ready_status, c.ready);
    EXPECT_EQ(s.ready_reason, c.reason);
    EXPECT_NE(s.ready_message.find(c.message_has), std::string::npos) << s.ready_message;
    EXPECT_EQ(s.fields["observedGeneration"], 3);
  }
}

TEST(ImageStatusSummarize, ReadyCopiesWhatTheNodeImportedAndNotReadyClearsIt) {
  Summary s = Summarize(Image({{"a", Ready("sha256:cd")}}), {Node("a", "True")});
  EXPECT_EQ(s.fields["checksum"], "sha256:cd");
  EXPECT_EQ(s.fields["virtualSize"], 20);
  EXPECT_EQ(s.fields["format"], "qcow2");
  EXPECT_EQ(s.fields["progress"], 100);
  Summary p = Summarize(Image({{"a", {{"phase", "Pending"}}}}), {Node("a", "True")});
  EXPECT_TRUE(p.fields.contains("checksum") && p.fields["checksum"].is_null()) << "stale fields are removed";
  EXPECT_TRUE(p.fields["progress"].is_null());
}

}  // namespace
}  // namespace stratus::imagestatus
