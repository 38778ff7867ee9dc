// The summary reconcilers' decisions: the top-level status of an Image or a Network from its per-node entries
// and the cluster's Nodes (one writer per field: nodes write status.nodes.<node>, the summary the rest).
#include <gtest/gtest.h>

#include "stratus/summary/summary.h"

namespace stratus::summary {
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

void ExpectSummary(const Case& c, const Summary& s) {
  EXPECT_EQ(s.fields.value("phase", ""), c.phase);
  EXPECT_EQ(s.ready_status, c.ready);
  EXPECT_EQ(s.ready_reason, c.reason);
  EXPECT_NE(s.ready_message.find(c.message_has), std::string::npos) << s.ready_message;
}

TEST(SummarizeImage, DecisionTable) {
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
    Summary s = SummarizeImage(Image(c.entries), c.nodes);
    ExpectSummary(c, s);
    EXPECT_EQ(s.fields["observedGeneration"], 3);
  }
}

TEST(SummarizeImage, ReadyCopiesWhatTheNodeImportedAndNotReadyClearsIt) {
  Summary s = SummarizeImage(Image({{"a", Ready("sha256:cd")}}), {Node("a", "True")});
  EXPECT_EQ(s.fields["checksum"], "sha256:cd");
  EXPECT_EQ(s.fields["virtualSize"], 20);
  EXPECT_EQ(s.fields["format"], "qcow2");
  EXPECT_EQ(s.fields["progress"], 100);
  Summary p = SummarizeImage(Image({{"a", {{"phase", "Pending"}}}}), {Node("a", "True")});
  EXPECT_TRUE(p.fields.contains("checksum") && p.fields["checksum"].is_null()) << "stale fields are removed";
  EXPECT_TRUE(p.fields["progress"].is_null());
}

json Network(const json& entries) {
  json n = {{"metadata", {{"name", "lan"}, {"namespace", "default"}, {"generation", 2}}}, {"spec", {{"cidr", "10.0.0.0/24"}}}};
  if (!entries.is_null()) n["status"]["nodes"] = entries;
  return n;
}

TEST(SummarizeNetwork, DecisionTable) {
  json up = {{"phase", "Ready"}, {"ready", true}, {"reason", "Up"}, {"bridge", "st-1"}, {"gateway", "10.0.0.1"}};
  std::vector<Case> cases = {
      {"nobody reported, nodes ready", json(), {Node("a", "True")}, "Pending", "False", "Pending", "no node"},
      {"no Ready node", json(), {Node("a", "False", "LibvirtUnreachable", "down")}, "Pending", "False",
       "NodeNotReady", "node a: LibvirtUnreachable: down"},
      {"up on both", {{"a", up}, {"b", up}}, {Node("a", "True"), Node("b", "True")}, "Ready", "True", "Up",
       "up on 2 node(s): a, b"},
      {"one node failing", {{"a", up}, {"b", {{"phase", "Pending"}, {"reason", "HostError"}, {"message", "no nft"}}}},
       {Node("a", "True"), Node("b", "True")}, "Pending", "False", "HostError", "node b: no nft"},
      {"invalid spec", {{"a", {{"phase", "Failed"}, {"reason", "InvalidSpec"}, {"message", "prefix"}}}},
       {Node("a", "True")}, "Failed", "False", "InvalidSpec", "node a: prefix"},
      {"in use while deleted", {{"a", {{"phase", "Terminating"}, {"reason", "InUse"}, {"message", "web-1"}}}},
       {Node("a", "True")}, "Terminating", "False", "InUse", "web-1"},
      {"entry of a gone node ignored", {{"gone", up}}, {Node("a", "True")}, "Pending", "False", "Pending", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectSummary(c, SummarizeNetwork(Network(c.entries), c.nodes));
  }
  Summary s = SummarizeNetwork(Network({{"a", up}}), {Node("a", "True")});
  EXPECT_EQ(s.fields["bridge"], "st-1");
  EXPECT_EQ(s.fields["gateway"], "10.0.0.1");
}

}  // namespace
}  // namespace stratus::summary
