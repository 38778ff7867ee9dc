// stratusctl's pure helpers: durations, tables, diffs, argument parsing, printers and wait conditions.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "lib/commands.h"
#include "lib/common.h"
#include "lib/diff.h"
#include "stratus/core/columns.h"
#include "lib/table.h"
#include "lib/targets.h"
#include "lib/util.h"

namespace stratus::cli {
namespace {

using std::chrono::milliseconds;

TEST(CliDuration, ParsesUnitsAndCombinations) {
  EXPECT_EQ(*ParseDuration("60s"), milliseconds(60000));
  EXPECT_EQ(*ParseDuration("2m"), milliseconds(120000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3600000));
  EXPECT_EQ(*ParseDuration("1h30m"), milliseconds(5400000));
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("90"), milliseconds(90000));  // bare number: seconds
  EXPECT_EQ(*ParseDuration("0"), milliseconds(0));
}

TEST(CliDuration, RejectsMalformed) {
  for (const char* bad : {"", "s", "10x", "-5s", "1..2s", "abc", "5 s m"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), Code::kBadRequest);
    }
  }
  EXPECT_NE(ParseDuration("10x").status().message().find("10x"), std::string::npos);
}

TEST(CliDuration, Formats) {
  EXPECT_EQ(FormatDuration(milliseconds(30000)), "30s");
  EXPECT_EQ(FormatDuration(milliseconds(90000)), "1m30s");
  EXPECT_EQ(FormatDuration(milliseconds(3600000)), "1h");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
}

TEST(CliQuantities, MemoryAndBytes) {
  EXPECT_EQ(FormatMiB(512), "512Mi");
  EXPECT_EQ(FormatMiB(2048), "2Gi");
  EXPECT_EQ(FormatMiB(1536), "1536Mi");
  EXPECT_EQ(FormatBytes(0), "0");
  EXPECT_EQ(FormatBytes(1536), "1.5Ki");
  EXPECT_EQ(FormatBytes(10737418240LL), "10Gi");
  EXPECT_EQ(FormatBytes(123456789), "118Mi");
}

TEST(CliTable, AlignsColumnsAndTrimsTrailingSpace) {
  Table t({"NAME", "STATUS", "MESSAGE"});
  t.AddRow({"web-1", "Running", ""});
  t.AddRow({"a-much-longer-name", "Pending", "waiting"});
  EXPECT_EQ(t.ToString(),
            "NAME                 STATUS    MESSAGE\n"
            "web-1                Running\n"
            "a-much-longer-name   Pending   waiting\n");
}

TEST(CliTable, StreamedRowsGrowWidths) {
  std::vector<size_t> widths = {4, 6};
  EXPECT_EQ(FormatRow({"ab", "x"}, widths), "ab     x");
  EXPECT_EQ(FormatRow({"abcdefgh", "y"}, widths), "abcdefgh   y");
  EXPECT_EQ(widths[0], 8u);
  // Newlines inside a cell would break the table.
  EXPECT_EQ(FormatRow({"a\nb"}, widths), "a b");
}

TEST(CliDiff, EqualTextsHaveNoDiff) { EXPECT_EQ(UnifiedDiff("a\nb\n", "a\nb\n", "x", "y"), ""); }

TEST(CliDiff, OneChangedLineWithContext) {
  std::string a = "1\n2\n3\n4\n5\n6\n7\n8\n";
  std::string b = "1\n2\n3\n4\nFIVE\n6\n7\n8\n";
  EXPECT_EQ(UnifiedDiff(a, b, "live", "merged"),
            "--- live\n+++ merged\n"
            "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n");
}

TEST(CliDiff, DistantChangesMakeSeparateHunks) {
  std::string a, b;
  for (int i = 1; i <= 20; ++i) {
    a += std::to_string(i) + "\n";
    b += (i == 2 ? "two" : i == 18 ? "eighteen" : std::to_string(i)) + "\n";
  }
  std::string d = UnifiedDiff(a, b, "a", "b");
  EXPECT_NE(d.find("@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"), std::string::npos) << d;
  EXPECT_NE(d.find("@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n"), std::string::npos) << d;
}

TEST(CliDiff, InsertionsAndDeletionsAtTheEdges) {
  EXPECT_EQ(UnifiedDiff("", "a\nb\n", "x", "y"), "--- x\n+++ y\n@@ -0,0 +1,2 @@\n+a\n+b\n");
  EXPECT_EQ(UnifiedDiff("a\nb\n", "", "x", "y"), "--- x\n+++ y\n@@ -1,2 +0,0 @@\n-a\n-b\n");
  EXPECT_EQ(UnifiedDiff("a\n", "a\nb\n", "x", "y"), "--- x\n+++ y\n@@ -1 +1,2 @@\n a\n+b\n");
}

TEST(CliTargets, KindAndNames) {
  auto t = ParseTargets({"inst", "web-1", "web-2"});
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ((*t)[0].resource->kind, "Instance");
  EXPECT_EQ((*t)[0].names, (std::vector<std::string>{"web-1", "web-2"}));
}

TEST(CliTargets, SlashFormGroupsByKind) {
  auto t = ParseTargets({"instance/a", "Volume/b", "instances/c"});
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].names, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ((*t)[1].resource->kind, "Volume");
}

TEST(CliTargets, SeveralKindsAndAll) {
  auto t = ParseTargets({"instances,volumes"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size(), 2u);
  auto all = ParseTargets({"all"});
  ASSERT_TRUE(all.ok());
  for (const auto& x : *all) EXPECT_NE(x.resource->kind, "Event");
  EXPECT_GE(all->size(), 4u);
}

TEST(CliTargets, Errors) {
  EXPECT_FALSE(ParseTargets({}).ok());
  EXPECT_FALSE(ParseTargets({"frobs"}).ok());
  EXPECT_FALSE(ParseTargets({"instances,volumes", "x"}).ok());
  EXPECT_FALSE(ParseTargets({"instance/"}).ok());
  EXPECT_FALSE(ParseTargets({"instance", "volume/x"}).ok());
}

json Instance() {
  return json::parse(R"({
    "apiVersion": "stratus.io/v1", "kind": "Instance",
    "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z",
                 "generation": 2, "labels": {"app": "web"}},
    "spec": {"instanceType": "m1.small", "image": "debian", "nodeName": "host-1"},
    "status": {"phase": "Running", "observedGeneration": 2,
               "addresses": [{"network": "default", "ip": "10.44.0.5", "mac": "52:54:00:00:00:01"}],
               "conditions": [{"type": "Ready", "status": "True", "reason": "Running"}]}
  })");
}

constexpr int64_t kNow = 1767225600 + 300;  // 2026-01-01T00:05:00Z

TEST(CliPrinters, InstanceRow) {
  const ResourceInfo& r = *FindByKind("Instance");
  TableOptions o;
  EXPECT_EQ(TableHeader(r, o), (std::vector<std::string>{"NAME", "STATUS", "READY", "NODE", "IP", "AGE"}));
  EXPECT_EQ(TableRow(r, Instance(), o, kNow),
            (std::vector<std::string>{"web-1", "Running", "True", "host-1", "10.44.0.5", "5m"}));
  o.with_namespace = true;
  o.kind_prefix = true;
  o.show_labels = true;
  auto row = TableRow(r, Instance(), o, kNow);
  EXPECT_EQ(row.front(), "default");
  EXPECT_EQ(row[1], "instance/web-1");
  EXPECT_EQ(row.back(), "app=web");
}

TEST(CliPrinters, TerminatingWinsOverPhase) {
  json obj = Instance();
  obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:04:00Z";
  EXPECT_EQ(TableRow(*FindByKind("Instance"), obj, {}, kNow)[1], "Terminating");
}

TEST(CliPrinters, NodeAndImageColumns) {
  json node = json::parse(R"({"metadata": {"name": "host-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"unschedulable": true},
    "status": {"capacity": {"vcpus": 8, "memoryMiB": 16384}, "virtType": "kvm",
               "conditions": [{"type": "Ready", "status": "True"}]}})");
  EXPECT_EQ(TableRow(*FindByKind("Node"), node, {}, kNow),
            (std::vector<std::string>{"host-1", "Ready,SchedulingDisabled", "8", "16Gi", "kvm", "5m"}));
  json image = json::parse(R"({"metadata": {"name": "debian"}, "spec": {"type": "disk"},
    "status": {"phase": "Downloading", "progress": 45, "size": 1048576}})");
  EXPECT_EQ(TableRow(*FindByKind("Image"), image, {}, kNow),
            (std::vector<std::string>{"debian", "disk", "Downloading", "1Mi", "45%", "<unknown>"}));
}

TEST(CliPrinters, EventRowHasNoNameColumn) {
  const ResourceInfo& r = *FindByKind("Event");
  json ev = json::parse(R"({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Instance", "name": "web-1"},
    "reason": "Started", "message": "domain started", "type": "Normal", "count": 2,
    "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:04:00Z"})");
  EXPECT_EQ(TableHeader(r, {}), (std::vector<std::string>{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}));
  EXPECT_EQ(TableRow(r, ev, {}, kNow),
            (std::vector<std::string>{"60s (x2 over 5m)", "Normal", "Started", "instance/web-1", "domain started"}));
}

TEST(CliPrinters, ProgressSummary) {
  json image = json::parse(R"({"status": {"phase": "Downloading", "progress": 45,
    "conditions": [{"type": "Ready", "status": "False", "reason": "Downloading", "message": "fetching"}]}})");
  EXPECT_EQ(ProgressSummary(image), "phase Downloading 45%, Ready=False (Downloading: fetching)");
  EXPECT_EQ(ProgressSummary(json::object()), "no status reported yet");
}

TEST(CliWait, ParsesForFlag) {
  auto c = ParseWaitFor("condition=Ready");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->mode, WaitSpec::kCondition);
  EXPECT_EQ(c->type, "Ready");
  EXPECT_EQ(c->value, "True");
  auto f = ParseWaitFor("condition=Scheduled=false");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->value, "False");
  EXPECT_EQ(ParseWaitFor("delete")->mode, WaitSpec::kDelete);
  EXPECT_EQ(ParseWaitFor("phase=Available")->mode, WaitSpec::kPhase);
  EXPECT_FALSE(ParseWaitFor("condition=").ok());
  EXPECT_FALSE(ParseWaitFor("condition=Ready=maybe").ok());
  EXPECT_FALSE(ParseWaitFor("jsonpath={.x}").ok());
}

TEST(CliWait, ConditionMustDescribeTheCurrentGeneration) {
  WaitSpec ready = *ParseWaitFor("condition=ready");  // type matches case-insensitively
  json obj = Instance();
  EXPECT_TRUE(WaitSpecMet(ready, obj));
  obj["metadata"]["generation"] = 3;  // spec changed; status still about generation 2
  EXPECT_FALSE(WaitSpecMet(ready, obj));
  obj["status"]["observedGeneration"] = 3;
  EXPECT_TRUE(WaitSpecMet(ready, obj));
  obj["status"]["conditions"][0]["status"] = "False";
  EXPECT_FALSE(WaitSpecMet(ready, obj));
  EXPECT_TRUE(WaitSpecMet(*ParseWaitFor("condition=Ready=False"), obj));
  EXPECT_TRUE(WaitSpecMet(*ParseWaitFor("phase=running"), obj));
}

}  // namespace
}  // namespace stratus::cli

namespace stratus::cli {
namespace {

TEST(SshArgvTest, AddressKeyAndHostKeyPerInstance) {
  std::string dir = (std::filesystem::temp_directory_path() / ("stratus-keys-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir + "/team");
  std::ofstream(dir + "/team/laptop") << "-----BEGIN OPENSSH PRIVATE KEY-----\n";
  json inst = {{"metadata", {{"name", "web"}, {"uid", "u-1"}}},
               {"spec", {{"keyName", "laptop"}}},
               {"status", {{"phase", "Running"},
                           {"addresses", {{{"network", "lan"}, {"ip", "10.0.0.5"}}, {{"network", "db"}, {"ip", "10.1.0.7"}}}}}}};
  SshOptions o;
  o.key_dir = dir;
  o.ssh_command = "ip netns exec guests ssh";
  o.command = {"--", "hostname", "-s"};  // as CLI11 hands it over after "--"
  auto argv = SshArgv(inst, "team", o);
  ASSERT_TRUE(argv.ok()) << argv.status().message();
  std::vector<std::string> want = {"ip", "netns", "exec", "guests", "ssh",
                                   "-o", "HostKeyAlias=stratus-u-1", "-o", "UserKnownHostsFile=" + dir + "/known_hosts",
                                   "-o", "StrictHostKeyChecking=accept-new", "-i", dir + "/team/laptop", "-o",
                                   "IdentitiesOnly=yes", "-l", "root", "--", "10.0.0.5", "hostname", "-s"};
  EXPECT_EQ(*argv, want);
  // Another network's address; no saved key for another namespace (ssh's own keys then).
  o.network = "db";
  o.command.clear();
  argv = SshArgv(inst, "other", o);
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ(argv->back(), "10.1.0.7");
  EXPECT_EQ(std::find(argv->begin(), argv->end(), "-i"), argv->end());
  // Clear errors: an unknown network, no address yet.
  o.network = "wan";
  argv = SshArgv(inst, "team", o);
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.status().message(), "instance web has no address on network wan (it has addresses on: lan, db)");
  o.network.clear();
  inst["status"] = {{"phase", "Pending"}};
  argv = SshArgv(inst, "team", o);
  ASSERT_FALSE(argv.ok());
  EXPECT_NE(argv.status().message().find("has no address yet (phase Pending)"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stratus::cli
