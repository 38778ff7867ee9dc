// End to end on qemu:///system (TCG): an instance booted from a real ext4 root-filesystem image writes a marker
// to its data volume; a snapshot of it is taken while the guest runs (paused for the copy); the volume grows
// live and the guest sees it; it is detached, the instance deleted, the volume attached to a new instance that
// reads the same marker, and so does a volume made from the snapshot (which cannot be deleted before it). And: kill -9 of the agent while volumes are
// being created leaves no orphan storage and converges.
#include <gtest/gtest.h>

#include "e2e.h"

namespace stratus::testing {
namespace {

using VolumeE2eTest = E2eTest;

std::string Images() {
  return "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-kernel}\nspec: {type: kernel, source: {url: file://" +
         GuestDir() + "/vmlinuz}}\n---\napiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-initrd}\n" +
         "spec: {type: ramdisk, source: {url: file://" + GuestDir() + "/initrd.img}}\n---\n" +
         "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-rootfs}\n" +
         "spec: {type: disk, source: {url: file://" + GuestDir() + "/rootfs.qcow2}}\n---\n" +
         "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n";
}

std::string DiskInstance(const std::string& name, const std::string& args, const std::string& volumes) {
  return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name +
         "}\nspec:\n  instanceType: m1.small\n  image: demo-rootfs\n  kernelImage: demo-kernel\n"
         "  ramdiskImage: demo-initrd\n  kernelArgs: \"" + args + "\"\n" + volumes;
}

TEST_F(VolumeE2eTest, DataOutlivesTheInstanceAndGrowsLive) {
  if (!fs::exists(fs::path(GuestDir()) / "rootfs.qcow2")) GTEST_FAIL() << "missing rootfs.qcow2: run build-guest.sh";
  ReservedPort agent_port = ReservePort();
  std::vector<std::string> flags = {"--agent=true"};
  for (auto& f : AgentFlags(agent_port)) flags.push_back(f);
  ServerProcess server(dir_.path() / "data", flags);
  ASSERT_TRUE(server.Start()) << server.log();
  std::string tag = std::to_string(::getpid());
  std::string token = "tok" + tag;
  std::string vm1 = "writer-" + tag, vm2 = "reader-" + tag;
  domains_ = {"stratus_default_" + vm1, "stratus_default_" + vm2};
  auto logs_of = [&](const std::string& inst) { return server.Ctl({"logs", "instance/" + inst}).out; };
  auto wait_log = [&](const std::string& inst, const std::string& what, int secs) {
    return Eventually([&] { return logs_of(inst).find(what) != std::string::npos; }, secs);
  };

  auto a = server.Ctl({"apply", "-f", "-"},
                      Images() + "---\napiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: data}\n"
                                 "spec: {size: 16Mi, format: qcow2}\n---\n" +
                          DiskInstance(vm1, "stratus.volmarker=" + token, "  volumes: [{volume: data, device: vdb}]\n"));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  ASSERT_TRUE(wait_log(vm1, "STRATUS-ROOTFS-BOOTED dev=/dev/vda", 120))
      << logs_of(vm1) << server.Http("GET", std::string(kNs) + "/instances/" + vm1).body << server.log();
  ASSERT_TRUE(wait_log(vm1, "STRATUS-VOLUME-WROTE vdb " + token, 30)) << logs_of(vm1);
  json vol = server.Http("GET", std::string(kNs) + "/volumes/data").Json();
  EXPECT_EQ(vol["status"]["phase"], "InUse");
  EXPECT_EQ(vol["status"]["attachment"]["instance"], vm1);

  // A snapshot while the guest runs: its guest is paused for the copy and runs on after it.
  a = server.Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: VolumeSnapshot\nmetadata: {name: data-snap}\n"
                                       "spec: {volume: data}\n");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  auto w = server.Ctl({"wait", "volumesnapshot/data-snap", "--for", "condition=Ready", "--timeout", "60s"});
  ASSERT_EQ(w.exit_code, 0) << w.out << w.err << server.Http("GET", std::string(kNs) + "/volumesnapshots/data-snap").body;
  json snap = server.Http("GET", std::string(kNs) + "/volumesnapshots/data-snap").Json();
  EXPECT_EQ(snap["status"]["size"], "16Mi");
  EXPECT_EQ(snap["status"]["format"], "qcow2");
  EXPECT_TRUE(snap["status"].contains("pausedMillis")) << snap.dump();
  EXPECT_TRUE(fs::exists(snap["status"].value("path", ""))) << snap.dump();
  EXPECT_EQ(server.Http("GET", std::string(kNs) + "/instances/" + vm1).Json()["status"].value("phase", ""), "Running");
  auto ev = server.Ctl({"describe", "volumesnapshot", "data-snap"});
  EXPECT_NE(ev.out.find("paused for"), std::string::npos) << ev.out;

  // Live resize: the guest sees the new size.
  auto p = server.Http("PATCH", std::string(kNs) + "/volumes/data", R"({"spec":{"size":"32Mi"}})",
                       "application/merge-patch+json");
  ASSERT_EQ(p.code, 200) << p.body;
  EXPECT_TRUE(wait_log(vm1, "STRATUS-DISK-RESIZED vdb bytes=33554432", 60)) << logs_of(vm1);

  // Detach (hot-unplug), then delete the instance: the volume stays, Available, with its data.
  p = server.Http("PATCH", std::string(kNs) + "/instances/" + vm1, R"({"spec":{"volumes":[]}})",
                  "application/merge-patch+json");
  ASSERT_EQ(p.code, 200) << p.body;
  EXPECT_TRUE(wait_log(vm1, "STRATUS-DISK-REMOVED vdb", 60)) << logs_of(vm1);
  auto d = server.Ctl({"delete", "instance", vm1, "--wait", "--timeout", "90s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_EQ(DomainCount("stratus_default_" + vm1), 0);
  EXPECT_TRUE(Eventually([&] {
    return server.Http("GET", std::string(kNs) + "/volumes/data").Json()["status"].value("phase", "") == "Available";
  }, 30));
  EXPECT_EQ(server.Http("GET", std::string(kNs) + "/volumes/" + vm1 + "-root").code, 404) << "root volume deleted";

  // A new instance gets the volume and finds the marker the first one wrote; a volume made from the snapshot
  // (a qcow2 overlay over it) carries the same marker.
  a = server.Ctl({"apply", "-f", "-"},
                 "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: restored}\n"
                 "spec: {size: 16Mi, source: {snapshot: data-snap}}\n---\n" +
                     DiskInstance(vm2, "stratus.volmarker=off",
                                  "  volumes: [{volume: data, device: vdb}, {volume: restored, device: vdc}]\n"));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_TRUE(wait_log(vm2, "STRATUS-VOLUME-FOUND vdb " + token, 120)) << logs_of(vm2) << server.log();
  EXPECT_NE(logs_of(vm2).find("vdb:32768KiB"), std::string::npos) << "the grown size persisted";
  EXPECT_TRUE(wait_log(vm2, "STRATUS-VOLUME-FOUND vdc " + token, 30)) << logs_of(vm2);
  json restored = server.Http("GET", std::string(kNs) + "/volumes/restored").Json();
  EXPECT_EQ(restored["status"].value("backingSnapshot", ""), "data-snap") << restored.dump();
  // The snapshot backs it: its deletion is refused, naming the volume.
  auto refused = server.Ctl({"delete", "volumesnapshot", "data-snap"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE((refused.out + refused.err).find("backs volume restored"), std::string::npos) << refused.out << refused.err;

  d = server.Ctl({"delete", "instance", vm2, "--wait", "--timeout", "90s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  d = server.Ctl({"delete", "volume", "data", "--wait", "--timeout", "60s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  d = server.Ctl({"delete", "volume", "restored", "--wait", "--timeout", "60s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  d = server.Ctl({"delete", "volumesnapshot", "data-snap", "--wait", "--timeout", "60s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  fs::path pool = dir_.path() / "data" / "agent" / "pools" / "default";
  EXPECT_TRUE(fs::is_empty(pool)) << "no volume files left behind";
}

TEST_F(VolumeE2eTest, AgentKilledWhileCreatingVolumesLeavesNoOrphans) {
  ServerProcess server(dir_.path() / "data");
  ASSERT_TRUE(server.Start()) << server.log();
  ReservedPort agent_port = ReservePort();
  std::string log = (dir_.path() / "agent.log").string();
  fs::path agent_dir = dir_.path() / "agent";
  auto spawn_agent = [&]() {
    std::vector<std::string> a = {StratusdBin(), "agent", "--server", server.url(), "--data-dir", agent_dir.string(),
                                  "--bootstrap-token-file", server.bootstrap_token_file()};
    for (auto& f : AgentFlags(agent_port)) a.push_back(f);
    return SpawnLogged(a, log);
  };
  pid_t agent = spawn_agent();
  std::string yaml = Images();
  const int n = 12;
  for (int i = 0; i < n; ++i) {
    yaml += "---\napiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: v" + std::to_string(i) +
            "}\nspec: {size: 256Mi, format: raw, source: {image: demo-rootfs}}\n";
  }
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, yaml).exit_code, 0);
  fs::path pool = agent_dir / "pools" / "default";
  // Kill the agent as soon as the first volume file appears: others are queued or being copied.
  bool started = Eventually([&] { return fs::exists(pool) && !fs::is_empty(pool); }, 90);
  ::kill(agent, SIGKILL);
  ::waitpid(agent, nullptr, 0);
  ASSERT_TRUE(started) << ReadFile(log);
  agent = spawn_agent();
  auto all_available = [&] {
    json l = server.Http("GET", std::string(kNs) + "/volumes").Json();
    int ok = 0;
    for (const auto& v : l["items"]) ok += v.contains("status") && v["status"].value("phase", "") == "Available";
    return ok == n;
  };
  EXPECT_TRUE(Eventually(all_available, 120)) << server.Http("GET", std::string(kNs) + "/volumes").body << ReadFile(log);
  // Exactly one file per volume, each named by its volume's uid: nothing orphaned, nothing doubled.
  std::set<std::string> want, have;
  json list = server.Http("GET", std::string(kNs) + "/volumes").Json();  // kept alive for the loop
  for (const auto& v : list["items"]) {
    want.insert("vol-" + v["metadata"]["uid"].get<std::string>());
  }
  for (const auto& e : fs::directory_iterator(pool)) have.insert(e.path().filename().string());
  EXPECT_EQ(have, want);
  auto d = server.Ctl({"delete", "volumes", "--all", "--wait", "--timeout", "60s"});
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_TRUE(fs::is_empty(pool));
  ::kill(agent, SIGTERM);
  ::waitpid(agent, nullptr, 0);
}

}  // namespace
}  // namespace stratus::testing
