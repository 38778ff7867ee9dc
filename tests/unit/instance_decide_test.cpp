// The Instance reconciler's decision matrix, on observed states built by hand (no API, no hypervisor): domain
// absent/running/stopped x powerState, generation and disk drift, restarts, the graceful-shutdown deadline kept
// on the object, conflicts (another object's domain, a volume held elsewhere, a Volume not ours), missing
// dependencies (instance type, images, volumes, networks, addresses), hot-plug and teardown.
#include <gtest/gtest.h>

#include <functional>

#include "stratus/core/object.h"
#include "stratus/instance/instance.h"
#include "stratus/runtime/conditions.h"

namespace stratus::instance {
namespace {

using namespace std::chrono_literals;
using Kind = Action::Kind;
using host::DomainState;

constexpr const char* kUid = "0b6f2a3e-1111-4222-8333-444455556666";
constexpr const char* kDom = "stratus_default_web-1";
const auto kNow = std::chrono::system_clock::from_time_t(1800000000);

Options Opts() {
  Options o;
  o.node = "node-a";
  o.data_dir = "/var/lib/stratus/agent";
  o.shutdown_timeout = 30s;
  o.resync = 10s;
  o.lease_poll = 2s;
  return o;
}

// web-1 on node-a booting a cached kernel, generation 1, observed 1.
Observed Base() {
  Observed o;
  o.inst = {{"apiVersion", "stratus.io/v1"},
            {"kind", "Instance"},
            {"metadata", {{"name", "web-1"}, {"namespace", "default"}, {"uid", kUid}, {"generation", 1}}},
            {"spec",
             {{"nodeName", "node-a"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 128}}}, {"kernelImage", "k"}}},
            {"status", {{"observedGeneration", 1}}}};
  o.kernel.path = "/pool/img-k";
  o.now = kNow;
  return o;
}

void Exists(Observed& o, DomainState state, std::vector<host::DomainSpec::Disk> disks = {}) {
  o.domain.info.name = kDom;
  o.domain.info.uuid = kUid;
  o.domain.info.instance_uid = kUid;
  o.domain.info.state = state;
  o.domain.persistent_disks = disks;
  o.domain.persistent_nics = std::vector<host::DomainSpec::Nic>{};
  if (state == DomainState::kRunning) {
    o.domain.live_disks = disks;
    o.domain.live_nics = std::vector<host::DomainSpec::Nic>{};
  }
}

// A data volume "data" made on node-a and held by `holder`.
json DataVolume(const std::string& holder, const std::string& node = "node-a") {
  json v = {{"metadata", {{"name", "data"}, {"namespace", "default"}}},
            {"spec", {{"size", "1Gi"}, {"nodeName", node}}},
            {"status", {{"path", "/pool/vol-data"}, {"format", "qcow2"}}}};
  if (!holder.empty()) v["status"]["attachment"] = {{"instance", holder}, {"device", "vdb"}};
  return v;
}
void AsksForData(Observed& o) { o.inst["spec"]["volumes"] = json::array({{{"volume", "data"}, {"device", "vdb"}}}); }
host::DomainSpec::Disk DataDisk() {
  host::DomainSpec::Disk d;
  d.path = "/pool/vol-data";
  d.target = "vdb";
  return d;
}

void OnNetwork(Observed& o, bool allocated) {
  o.inst["spec"]["networks"] = json::array({{{"network", "net"}}});
  json net = {{"metadata", {{"name", "net"}, {"namespace", "default"}}}, {"spec", {{"cidr", "10.9.0.0/24"}}}};
  if (allocated) {
    net["status"]["allocations"] = {{"10.9.0.5", {{"uid", kUid}, {"nic", 0}, {"mac", "52:54:00:00:00:05"}}}};
  }
  o.networks["net"] = net;
}

std::vector<Kind> Kinds(const Decision& d) {
  std::vector<Kind> k;
  for (const auto& a : d.actions) k.push_back(a.kind);
  return k;
}
std::string Phase(const Decision& d) { return d.status["status"].value("phase", ""); }
std::string Reason(const Decision& d, const char* type) {
  json c = runtime::GetCondition(d.status, type);
  return c.is_null() ? "" : c.value("reason", "");
}
bool HasEvent(const Decision& d, const std::string& reason) {
  for (const auto& a : d.actions) {
    if (a.event_reason == reason) return true;
  }
  for (const auto& e : d.events) {
    if (e.reason == reason) return true;
  }
  return false;
}

struct Case {
  const char* name;
  std::function<void(Observed&)> given;
  std::vector<Kind> actions;
  const char* phase;
  const char* ready_reason;
  std::chrono::milliseconds next;
};

TEST(InstanceDecideTest, Matrix) {
  const std::vector<Case> cases = {
      {"absent, Running: define and start", [](Observed&) {}, {Kind::kDefine, Kind::kStart}, "Running", "Running", 10s},
      {"absent, Stopped: define only",
       [](Observed& o) { o.inst["spec"]["powerState"] = "Stopped"; }, {Kind::kDefine}, "Stopped", "Stopped", 10s},
      {"running, nothing changed: nothing to do",
       [](Observed& o) { Exists(o, DomainState::kRunning); }, {}, "Running", "Running", 10s},
      {"shut off behind our back while Running: started again",
       [](Observed& o) {
         Exists(o, DomainState::kShutoff);
         o.inst["status"]["phase"] = "Running";
       },
       {Kind::kStart}, "Running", "Running", 10s},
      {"crashed: started again", [](Observed& o) { Exists(o, DomainState::kCrashed); }, {Kind::kStart}, "Running",
       "Running", 10s},
      {"spec changed (generation): redefined, not restarted",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         o.inst["metadata"]["generation"] = 2;
       },
       {Kind::kDefine}, "Running", "Running", 10s},
      {"persistent disks differ from what it holds: redefined and hot-plugged",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         AsksForData(o);
         o.volumes["data"] = DataVolume("web-1");
       },
       {Kind::kDefine, Kind::kAttachDisk}, "Running", "Running", 10s},
      {"running, Stopped asked: graceful shutdown first",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         o.inst["spec"]["powerState"] = "Stopped";
       },
       {Kind::kShutdown}, "Stopping", "Stopping", 1s},
      {"running past the shutdown deadline: forced off",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         o.inst["spec"]["powerState"] = "Stopped";
         o.inst["status"]["shutdownStartedAt"] = FormatRfc3339(1800000000 - 31);
       },
       {Kind::kDestroy}, "Stopped", "Stopped", 10s},
      {"shut off, Stopped: nothing to do",
       [](Observed& o) {
         Exists(o, DomainState::kShutoff);
         o.inst["spec"]["powerState"] = "Stopped";
       },
       {}, "Stopped", "Stopped", 10s},
      {"another object's domain under our name: left alone",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         o.domain.info.instance_uid = "someone-else";
       },
       {}, "Failed", "DomainConflict", 30s},
      {"instance type missing",
       [](Observed& o) {
         o.inst["spec"].erase("resources");
         o.inst["spec"]["instanceType"] = "m1.nope";
       },
       {}, "Pending", "InstanceTypeNotFound", 5s},
      {"instance type found",
       [](Observed& o) {
         o.inst["spec"].erase("resources");
         o.inst["spec"]["instanceType"] = "m1.small";
         o.flavor = {{"spec", {{"vcpus", 2}, {"memoryMiB", 512}}}};
       },
       {Kind::kDefine, Kind::kStart}, "Running", "Running", 10s},
      {"kernel not cached yet",
       [](Observed& o) {
         o.kernel.path = "";
         o.kernel.not_ready = "image \"k\" is not Ready on node node-a yet (Downloading)";
       },
       {}, "Pending", "ImagesNotReady", 3s},
      {"nothing to boot", [](Observed& o) { o.inst["spec"].erase("kernelImage"); }, {}, "Pending", "ImagesNotReady",
       3s},
      {"volume held by another instance, domain absent: waits",
       [](Observed& o) {
         AsksForData(o);
         o.volumes["data"] = DataVolume("web-2");
       },
       {}, "Pending", "VolumeInUse", 3s},
      {"volume on another node: waits",
       [](Observed& o) {
         AsksForData(o);
         o.volumes["data"] = DataVolume("web-1", "node-b");
       },
       {}, "Pending", "VolumesNotReady", 3s},
      {"volume missing but the domain runs: keeps running, hot-plugs later",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         AsksForData(o);
       },
       {}, "Running", "Running", 10s},
      {"agent without volumes",
       [](Observed& o) {
         AsksForData(o);
         o.manages_volumes = false;
       },
       {}, "Pending", "VolumesNotReady", 3s},
      {"no address yet, domain absent: waits", [](Observed& o) { OnNetwork(o, false); }, {}, "Pending",
       "NetworkNotReady", 3s},
      {"network missing, domain absent: waits",
       [](Observed& o) {
         OnNetwork(o, false);
         o.networks.clear();
       },
       {}, "Pending", "NetworkNotReady", 3s},
      {"address allocated, not leased yet: boots and looks again soon",
       [](Observed& o) {
         OnNetwork(o, true);
         o.leased["52:54:00:00:00:05 10.9.0.5"] = false;
       },
       {Kind::kDefine, Kind::kStart}, "Running", "Running", 2s},
      {"node without networking: boots without NICs",
       [](Observed& o) {
         OnNetwork(o, true);
         o.networking = false;
       },
       {Kind::kDefine, Kind::kStart}, "Running", "Running", 10s},
      {"restart asked while running: rebooted",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         o.inst["spec"]["restartRequestedAt"] = "2027-01-15T08:00:00Z";
       },
       {Kind::kReboot}, "Running", "Running", 10s},
      {"restart asked while shut off: the start satisfies it",
       [](Observed& o) {
         Exists(o, DomainState::kShutoff);
         o.inst["spec"]["restartRequestedAt"] = "2027-01-15T08:00:00Z";
       },
       {Kind::kStart}, "Running", "Running", 10s},
      {"restart already done: nothing",
       [](Observed& o) {
         Exists(o, DomainState::kRunning);
         o.inst["spec"]["restartRequestedAt"] = "2027-01-15T08:00:00Z";
         o.inst["status"]["restartedAt"] = "2027-01-15T08:00:00Z";
       },
       {}, "Running", "Running", 10s},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Observed o = Base();
    c.given(o);
    Decision d = Decide(o, Opts());
    EXPECT_EQ(Kinds(d), c.actions);
    EXPECT_EQ(Phase(d), c.phase);
    EXPECT_EQ(Reason(d, "Ready"), c.ready_reason);
    EXPECT_EQ(d.next.requeue_after, c.next);
    EXPECT_EQ(d.status["status"].value("nodeName", ""), "node-a");
  }
}

TEST(InstanceDecideTest, AGenerationIsObservedOnlyOnceTheDomainHasIt) {
  Observed o = Base();
  o.inst["metadata"]["generation"] = 2;
  // Waiting with no domain: the status describes generation 2.
  o.inst["spec"].erase("resources");
  o.inst["spec"]["instanceType"] = "m1.gone";
  EXPECT_EQ(Decide(o, Opts()).status["status"]["observedGeneration"], 2);
  // Waiting while a domain of generation 1 runs: generation 2 is not on the host, so it is not observed.
  Exists(o, DomainState::kRunning);
  EXPECT_EQ(Decide(o, Opts()).status["status"]["observedGeneration"], 1);
  // Once it can be defined, it is.
  o.flavor = {{"spec", {{"vcpus", 1}, {"memoryMiB", 128}}}};
  Decision d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kDefine});
  EXPECT_EQ(d.status["status"]["observedGeneration"], 2);
}

TEST(InstanceDecideTest, TellsRepairFromFirstStart) {
  Observed o = Base();
  Exists(o, DomainState::kShutoff);
  EXPECT_TRUE(HasEvent(Decide(o, Opts()), "Started"));
  o.inst["status"]["phase"] = "Running";
  Decision d = Decide(o, Opts());
  EXPECT_TRUE(HasEvent(d, "Repaired"));
  EXPECT_FALSE(HasEvent(d, "Started"));
  // A failed start makes the instance Failed with the cause.
  ASSERT_EQ(d.actions.size(), 1u);
  EXPECT_EQ(d.actions[0].fail_reason, "StartFailed");
  EXPECT_EQ(d.actions[0].fail_phase, "Failed");
}

TEST(InstanceDecideTest, ShutdownDeadlineLivesOnTheObject) {
  Observed o = Base();
  Exists(o, DomainState::kRunning);
  o.inst["spec"]["powerState"] = "Stopped";
  Decision first = Decide(o, Opts());
  ASSERT_EQ(Kinds(first), std::vector<Kind>{Kind::kShutdown});
  std::string since = first.status["status"].value("shutdownStartedAt", "");
  EXPECT_EQ(ParseRfc3339(since), 1800000000);
  // The next pass (from the written object, e.g. after an agent restart) keeps the deadline, not a new one.
  o.inst = first.status;
  o.now = kNow + 29s;
  Decision later = Decide(o, Opts());
  EXPECT_EQ(Kinds(later), std::vector<Kind>{Kind::kShutdown});
  EXPECT_EQ(later.status["status"].value("shutdownStartedAt", ""), since);
  o.now = kNow + 30s;
  Decision forced = Decide(o, Opts());
  EXPECT_EQ(Kinds(forced), std::vector<Kind>{Kind::kDestroy});
  EXPECT_TRUE(HasEvent(forced, "ForcedOff"));
  EXPECT_FALSE(forced.status["status"].contains("shutdownStartedAt"));
  // The guest shut down in time: one Stopped event, the deadline is gone.
  o.domain.info.state = DomainState::kShutoff;
  o.now = kNow + 5s;
  Decision stopped = Decide(o, Opts());
  EXPECT_TRUE(stopped.actions.empty());
  EXPECT_TRUE(HasEvent(stopped, "Stopped"));
  EXPECT_FALSE(stopped.status["status"].contains("shutdownStartedAt"));
  // Asked to run again while stopping: the deadline is dropped.
  o.domain.info.state = DomainState::kRunning;
  o.inst["spec"]["powerState"] = "Running";
  EXPECT_FALSE(Decide(o, Opts()).status["status"].contains("shutdownStartedAt"));
}

TEST(InstanceDecideTest, RootVolumeIsMadeOwnedGrownAndNeverTakenFromAnother) {
  Observed o = Base();
  o.inst["spec"].erase("kernelImage");
  o.inst["spec"]["image"] = "debian";
  o.inst["spec"]["rootDisk"] = {{"size", "2Gi"}, {"pool", "fast"}};
  o.image = {{"metadata", {{"name", "debian"}}}, {"spec", {{"type", "disk"}}}, {"status", {{"virtualSize", 1 << 30}}}};
  // Absent: made from the image, owned by the instance, on this node; the instance waits for it.
  Decision d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), std::vector<Kind>{Kind::kCreateRootVolume});
  const json& v = d.actions[0].volume;
  EXPECT_EQ(MetaString(v, "name"), "web-1-root");
  EXPECT_EQ(v["metadata"]["ownerReferences"][0]["uid"], kUid);
  EXPECT_EQ(v["spec"]["size"], "2Gi");
  EXPECT_EQ(v["spec"]["nodeName"], "node-a");
  EXPECT_EQ(v["spec"]["pool"], "fast");
  EXPECT_EQ(v["spec"]["source"]["image"], "debian");
  EXPECT_EQ(Phase(d), "Pending");
  EXPECT_EQ(Reason(d, "Ready"), "VolumesNotReady");
  EXPECT_EQ(d.status["status"]["rootVolume"], "web-1-root");
  // Without rootDisk.size the image's size sizes it; an image without a size yet makes the instance wait.
  o.inst["spec"]["rootDisk"].erase("size");
  EXPECT_EQ(Decide(o, Opts()).actions[0].volume["spec"]["size"], "1Gi");
  o.image["status"].erase("virtualSize");
  EXPECT_EQ(Reason(Decide(o, Opts()), "Ready"), "ImagesNotReady");
  // A kernel image given as spec.image is refused by name.
  o.image = {{"metadata", {{"name", "debian"}}}, {"spec", {{"type", "kernel"}}}};
  EXPECT_NE(runtime::GetCondition(Decide(o, Opts()).status, "Ready")["message"].get<std::string>().find("needs a disk image"),
            std::string::npos);
  // Someone else's Volume of that name is never used.
  o.root_volume = {{"metadata", {{"name", "web-1-root"}, {"uid", "v1"}}}, {"spec", {{"size", "1Gi"}}}};
  d = Decide(o, Opts());
  EXPECT_TRUE(d.actions.empty());
  EXPECT_EQ(Reason(d, "ImagesReady"), "ImageNotReady");
  EXPECT_NE(runtime::GetCondition(d.status, "Ready")["message"].get<std::string>().find("does not belong"),
            std::string::npos);
  // Ours and smaller than rootDisk.size: grown (never shrunk).
  o.root_volume["metadata"]["ownerReferences"] = json::array({{{"uid", kUid}}});
  o.inst["spec"]["rootDisk"]["size"] = "3Gi";
  d = Decide(o, Opts());
  ASSERT_FALSE(d.actions.empty());
  EXPECT_EQ(d.actions[0].kind, Kind::kGrowRootVolume);
  EXPECT_EQ(d.actions[0].size, "3Gi");
  o.inst["spec"]["rootDisk"]["size"] = "512Mi";
  EXPECT_TRUE(Kinds(Decide(o, Opts())).empty());
}

TEST(InstanceDecideTest, HotplugFollowsWhatTheInstanceHolds) {
  Observed o = Base();
  AsksForData(o);
  o.volumes["data"] = DataVolume("web-1");
  Exists(o, DomainState::kRunning, {DataDisk()});
  // Held and attached: nothing to do, VolumesReady.
  Decision d = Decide(o, Opts());
  EXPECT_TRUE(d.actions.empty());
  EXPECT_EQ(Reason(d, "VolumesReady"), "VolumesAttached");
  // Removed from the spec: unplugged (told once, while the definition still has it), definition rewritten.
  o.inst["spec"].erase("volumes");
  d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDefine, Kind::kDetachDisk}));
  EXPECT_EQ(d.actions[1].target, "vdb");
  EXPECT_EQ(d.actions[1].event_reason, "VolumeDetached");
  EXPECT_FALSE(runtime::GetCondition(d.status, "VolumesReady").is_object());
  // The guest has not finished the unplug and the definition no longer has it: asked again, not told again.
  o.domain.persistent_disks = std::vector<host::DomainSpec::Disk>{};
  d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), std::vector<Kind>{Kind::kDetachDisk});
  EXPECT_TRUE(d.actions[0].event_reason.empty());
  // Another disk waiting for that target: not plugged until the old one is gone.
  AsksForData(o);
  o.volumes["data"]["status"]["path"] = "/pool/vol-other";
  d = Decide(o, Opts());
  for (const auto& a : d.actions) EXPECT_NE(a.kind, Kind::kAttachDisk);
  // A hot-plug failure marks VolumesReady, not Ready.
  o.domain.live_disks = std::vector<host::DomainSpec::Disk>{};
  d = Decide(o, Opts());
  ASSERT_FALSE(d.actions.empty());
  EXPECT_EQ(d.actions.back().kind, Kind::kAttachDisk);
  EXPECT_EQ(d.actions.back().fail_condition, "VolumesReady");
  EXPECT_EQ(d.actions.back().fail_reason, "HotplugFailed");
}

TEST(InstanceDecideTest, NicsAreWiredFromIpamAndHotplugged) {
  Observed o = Base();
  OnNetwork(o, true);
  o.leased["52:54:00:00:00:05 10.9.0.5"] = true;
  Decision d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDefine, Kind::kStart}));
  ASSERT_EQ(d.actions[0].domain.nics.size(), 1u);
  EXPECT_EQ(d.actions[0].domain.nics[0].mac, "52:54:00:00:00:05");
  EXPECT_EQ(Reason(d, "NetworkReady"), "AddressesAllocated");
  const json& addr = d.status["status"]["addresses"][0];
  EXPECT_EQ(addr["ip"], "10.9.0.5");
  EXPECT_TRUE(addr["leased"].get<bool>());
  // Running without the NIC (added to the spec later): hot-plugged.
  Exists(o, DomainState::kRunning);
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kAttachNic});
  // IPAM refused the address: its reason carries over.
  OnNetwork(o, false);
  o.inst["status"]["conditions"] =
      json::array({{{"type", "AddressesAllocated"}, {"status", "False"}, {"reason", "AddressRefused"},
                    {"message", "spec.networks[0].ip: 10.9.0.1 is the gateway"}}});
  d = Decide(o, Opts());
  EXPECT_EQ(Reason(d, "NetworkReady"), "AddressRefused");
  EXPECT_EQ(runtime::GetCondition(d.status, "NetworkReady")["message"], "spec.networks[0].ip: 10.9.0.1 is the gateway");
}

TEST(InstanceDecideTest, TheSeedCarriesTheKeyUserDataAndAddressesAndIsWrittenBeforeTheDefine) {
  Observed o = Base();
  o.seeding = true;
  OnNetwork(o, true);
  o.inst["spec"]["keyName"] = "laptop";
  o.inst["spec"]["userData"] = "#!/bin/sh\necho hello\n";
  // A missing KeyPair: nothing is defined, and the reason names the field.
  Decision d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty());
  EXPECT_EQ(Phase(d), "Pending");
  EXPECT_EQ(Reason(d, "Ready"), "KeyPairNotFound");
  EXPECT_EQ(runtime::GetCondition(d.status, "Ready")["message"],
            "spec.keyName: key pair \"laptop\" does not exist in namespace default");
  // With the key: the seed is written, then the domain defined with it as a read-only cdrom.
  o.key_pair = {{"metadata", {{"name", "laptop"}}}, {"spec", {{"publicKey", "ssh-ed25519 AAAAC3Nz laptop"}}}};
  d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), (std::vector<Kind>{Kind::kWriteSeed, Kind::kDefine, Kind::kStart}));
  const Action& w = d.actions[0];
  EXPECT_EQ(w.name, SeedPath("/var/lib/stratus/agent", "default", "web-1"));
  EXPECT_NE(w.seed_files.at("meta-data").find(kUid), std::string::npos);
  EXPECT_NE(w.seed_files.at("meta-data").find("web-1"), std::string::npos);
  EXPECT_NE(w.seed_files.at("user-data").find("ssh-ed25519 AAAAC3Nz laptop"), std::string::npos);
  EXPECT_NE(w.seed_files.at("user-data").find("echo hello"), std::string::npos);
  EXPECT_NE(w.seed_files.at("network-config").find("10.9.0.5/24"), std::string::npos);
  EXPECT_NE(w.seed_files.at("network-config").find("10.9.0.1"), std::string::npos);  // the gateway (nat)
  EXPECT_TRUE(HasEvent(d, "SeedWritten"));
  const auto& disks = d.actions[1].domain.disks;
  ASSERT_EQ(disks.size(), 1u);
  EXPECT_EQ(disks[0].device, "cdrom");
  EXPECT_EQ(disks[0].target, kSeedTarget);
  EXPECT_EQ(disks[0].path, w.name);
  EXPECT_TRUE(disks[0].read_only);
  // The same inputs on the node already: nothing rewritten, and a running domain with that cdrom is left alone.
  o.seed_stamp = w.seed_stamp;
  Exists(o, DomainState::kRunning, disks);
  o.domain.persistent_nics = d.actions[1].domain.nics;
  o.domain.live_nics = d.actions[1].domain.nics;
  d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty());
  // New user data: the seed is rewritten (for the next start); the running domain is not redefined or touched.
  o.inst["spec"]["userData"] = "#!/bin/sh\necho again\n";
  d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), std::vector<Kind>{Kind::kWriteSeed});
  EXPECT_TRUE(HasEvent(d, "SeedUpdated"));
  // The key pair deleted while the instance runs: it keeps running with the seed it has, with a warning.
  o.key_pair = json();
  d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty());
  EXPECT_EQ(Phase(d), "Running");
  EXPECT_TRUE(HasEvent(d, "KeyPairNotFound"));
}

TEST(InstanceDecideTest, ANewImageRebuildsOnlyWithRecreateAndKeepsTheIdentity) {
  Observed o = Base();
  o.inst["spec"].erase("kernelImage");
  o.inst["spec"]["image"] = "debian-12";
  o.image = {{"metadata", {{"name", "debian-12"}}}, {"spec", {{"type", "disk"}}}, {"status", {{"virtualSize", 1 << 30}}}};
  o.root_volume = {{"metadata", {{"name", "web-1-root"}, {"uid", "v1"}, {"ownerReferences", {{{"uid", kUid}}}}}},
                   {"spec", {{"size", "1Gi"}, {"nodeName", "node-a"}, {"source", {{"image", "debian-11"}}}}},
                   {"status", {{"path", "/pool/web-1-root"}, {"attachment", {{"instance", "web-1"}}}}}};
  o.volumes["web-1-root"] = o.root_volume;
  host::DomainSpec::Disk root;
  root.path = "/pool/web-1-root";
  root.target = "vda";
  Exists(o, DomainState::kRunning, {root});
  // No rebuildPolicy: the running disk stays, and the instance says why it does not match.
  Decision d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty()) << (d.actions.empty() ? 0 : static_cast<int>(d.actions[0].kind));
  EXPECT_EQ(Phase(d), "Running");
  json c = runtime::GetCondition(d.status, "RebuildRequired");
  ASSERT_FALSE(c.is_null());
  EXPECT_EQ(c["message"], "spec.image is \"debian-12\" but root volume web-1-root was made from \"debian-11\"; set "
                          "spec.rebuildPolicy: Recreate to rebuild from it (the root volume is replaced; addresses "
                          "and data volumes stay)");
  // Recreate: the domain goes (powered off, undefined), then the old root volume (by its uid).
  o.inst["spec"]["rebuildPolicy"] = "Recreate";
  d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDestroy, Kind::kUndefine, Kind::kDeleteRootVolume}));
  EXPECT_EQ(d.actions[2].name, "web-1-root");
  EXPECT_EQ(d.actions[2].target, "v1");
  EXPECT_EQ(Phase(d), "Rebuilding");
  EXPECT_EQ(Reason(d, "Ready"), "Rebuilding");
  EXPECT_TRUE(runtime::GetCondition(d.status, "RebuildRequired").is_null());
  EXPECT_TRUE(d.status["status"]["volumes"].empty());
  // While the old one is being deleted: wait, touch nothing, and say nothing is attached (also when the write of
  // the pass that deleted it was lost).
  o.domain = ObservedDomain{};
  o.root_volume["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z";
  o.inst["status"]["volumes"] = json::array({{{"name", "web-1-root"}, {"device", "vda"}}});
  d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty());
  EXPECT_EQ(Phase(d), "Rebuilding");
  EXPECT_TRUE(d.status["status"]["volumes"].empty());
  // Gone: a new one from the new image, with the same name (and then the usual first boot).
  o.root_volume = json();
  o.volumes.clear();
  d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), std::vector<Kind>{Kind::kCreateRootVolume});
  EXPECT_EQ(d.actions[0].volume["spec"]["source"]["image"], "debian-12");
  EXPECT_EQ(MetaString(d.actions[0].volume, "name"), "web-1-root");
}

TEST(InstanceDecideTest, PauseSuspendAndResume) {
  Observed o = Base();
  Exists(o, DomainState::kRunning);
  o.inst["spec"]["powerState"] = "Paused";
  Decision d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kPause});
  EXPECT_EQ(Phase(d), "Paused");
  EXPECT_EQ(Reason(d, "Ready"), "Paused");
  o.domain.info.state = DomainState::kPaused;
  EXPECT_TRUE(Kinds(Decide(o, Opts())).empty());  // paused already
  o.inst["spec"]["powerState"] = "Running";
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kResume});
  EXPECT_EQ(Phase(d), "Running");
  // Suspended from paused or running: the memory is saved and the domain stops.
  o.inst["spec"]["powerState"] = "Suspended";
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kManagedSave});
  EXPECT_EQ(Phase(d), "Suspended");
  o.domain.info.state = DomainState::kShutoff;
  o.domain.info.managed_save = true;
  d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty());
  EXPECT_EQ(Phase(d), "Suspended");
  // Resume: the start restores the saved memory (told as such).
  o.inst["spec"]["powerState"] = "Running";
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kStart});
  EXPECT_TRUE(HasEvent(d, "Restored"));
  // Suspended while off without a save image: nothing to save, it says so.
  o.domain.info.managed_save = false;
  o.inst["spec"]["powerState"] = "Suspended";
  d = Decide(o, Opts());
  EXPECT_TRUE(Kinds(d).empty());
  EXPECT_EQ(Phase(d), "Stopped");
  EXPECT_NE(runtime::GetCondition(d.status, "Ready")["message"].get<std::string>().find("nothing to save"),
            std::string::npos);
  // Paused from off: started, then paused.
  o.inst["spec"]["powerState"] = "Paused";
  EXPECT_EQ(Kinds(Decide(o, Opts())), (std::vector<Kind>{Kind::kStart, Kind::kPause}));
  // Stopped from paused: resumed first, so that the guest hears the ACPI request.
  o.domain.info.state = DomainState::kPaused;
  o.domain.live_disks = o.domain.persistent_disks;
  o.domain.live_nics = o.domain.persistent_nics;
  o.inst["spec"]["powerState"] = "Stopped";
  EXPECT_EQ(Kinds(Decide(o, Opts())), (std::vector<Kind>{Kind::kResume, Kind::kShutdown}));
}

TEST(InstanceDecideTest, AResizeOfARunningInstanceWaitsForARestartThatPowerCycles) {
  Observed o = Base();
  Exists(o, DomainState::kRunning);
  o.domain.info.vcpus = 1;
  o.domain.info.memory_mib = 128;
  EXPECT_TRUE(runtime::GetCondition(Decide(o, Opts()).status, "RestartRequired").is_null());
  // The type changed (a new generation): redefined, and the running domain says what it waits for.
  o.inst["metadata"]["generation"] = 2;
  o.inst["spec"]["resources"] = {{"vcpus", 2}, {"memoryMiB", 256}};
  Decision d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), std::vector<Kind>{Kind::kDefine});
  EXPECT_EQ(d.actions[0].domain.vcpus, 2);
  json c = runtime::GetCondition(d.status, "RestartRequired");
  ASSERT_FALSE(c.is_null());
  EXPECT_EQ(c["status"], "True");
  EXPECT_EQ(c["message"], "runs with 1 vCPU and 128 MiB; 2 vCPU and 256 MiB apply when it is restarted (stratusctl restart)");
  // A restart request: a power cycle (a reboot would keep the running size), not a reboot.
  o.inst["status"]["observedGeneration"] = 2;
  o.inst["spec"]["restartRequestedAt"] = "2027-01-15T08:00:00Z";
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDestroy, Kind::kStart}));
  EXPECT_TRUE(runtime::GetCondition(d.status, "RestartRequired").is_null());
  // Once it runs with the new size, nothing is pending.
  o.inst["status"]["restartedAt"] = "2027-01-15T08:00:00Z";
  o.domain.info.vcpus = 2;
  o.domain.info.memory_mib = 256;
  EXPECT_TRUE(Kinds(Decide(o, Opts())).empty());
}

TEST(InstanceDecideTest, VcpusAreAddedLiveUpToTheCeilingAndTheRestWaits) {
  Observed o = Base();
  Exists(o, DomainState::kRunning);
  o.domain.info.vcpus = 1;
  o.domain.info.max_vcpus = 2;  // defined with room to grow (Options.max_vcpus)
  o.domain.info.memory_mib = 128;
  o.inst["metadata"]["generation"] = 2;
  o.inst["spec"]["resources"] = {{"vcpus", 2}, {"memoryMiB", 128}};
  Decision d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDefine, Kind::kSetVcpus}));
  EXPECT_EQ(d.actions[1].domain.vcpus, 2);
  EXPECT_EQ(d.actions[1].event_reason, "Resized");
  EXPECT_TRUE(runtime::GetCondition(d.status, "RestartRequired").is_null()) << "nothing left for a restart";
  // More memory too: the vCPU goes live, the memory waits, and the condition says what runs.
  o.inst["spec"]["resources"] = {{"vcpus", 2}, {"memoryMiB", 256}};
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDefine, Kind::kSetVcpus}));
  EXPECT_EQ(runtime::GetCondition(d.status, "RestartRequired").value("message", ""),
            "runs with 2 vCPU and 128 MiB; 2 vCPU and 256 MiB apply when it is restarted (stratusctl restart)");
  // Past the ceiling, or fewer vCPUs: only a restart applies it.
  o.inst["spec"]["resources"] = {{"vcpus", 3}, {"memoryMiB", 128}};
  EXPECT_EQ(Kinds(Decide(o, Opts())), std::vector<Kind>{Kind::kDefine});
  o.domain.info.vcpus = 2;
  o.inst["spec"]["resources"] = {{"vcpus", 1}, {"memoryMiB", 128}};
  EXPECT_EQ(Kinds(Decide(o, Opts())), std::vector<Kind>{Kind::kDefine});
  // A hot-add that failed once is not tried again on every pass: the restart applies it.
  o.domain.info.vcpus = 1;
  o.inst["spec"]["resources"] = {{"vcpus", 2}, {"memoryMiB", 128}};
  o.inst["status"]["conditions"] = {{{"type", "RestartRequired"}, {"status", "True"}, {"reason", "LiveResizeFailed"},
                                     {"message", "vCPUs not added live (x)"}}};
  d = Decide(o, Opts());
  EXPECT_EQ(Kinds(d), std::vector<Kind>{Kind::kDefine});
  EXPECT_EQ(runtime::GetCondition(d.status, "RestartRequired").value("reason", ""), "LiveResizeFailed");
}

TEST(InstanceDecideTest, OurStatusGoesOntoTheLatestObjectKeepingOtherWritersConditions) {
  json latest = {{"metadata", {{"name", "web-1"}, {"resourceVersion", "9"}}},
                 {"spec", {{"powerState", "Running"}}},
                 {"status", {{"phase", "Scheduled"}, {"shutdownStartedAt", "x"},
                             {"conditions", {{{"type", "Scheduled"}, {"status", "True"}},
                                             {{"type", "AddressesAllocated"}, {"status", "True"}},
                                             {{"type", "RestartRequired"}, {"status", "True"}},
                                             {{"type", "Ready"}, {"status", "False"}}}}}}};
  json ours = {{"metadata", {{"name", "web-1"}, {"resourceVersion", "7"}}},
               {"status", {{"phase", "Running"}, {"restartedAt", "2027-01-15T08:00:00Z"},
                           {"conditions", {{{"type", "Ready"}, {"status", "True"}},
                                           {{"type", "Scheduled"}, {"status", "False"}}}}}}};
  json out = WithOwnStatus(latest, ours);
  EXPECT_EQ(out["metadata"]["resourceVersion"], "9");  // written against the latest version
  EXPECT_EQ(out["status"]["phase"], "Running");
  EXPECT_EQ(out["status"]["restartedAt"], "2027-01-15T08:00:00Z");  // the one-shot request is recorded
  EXPECT_FALSE(out["status"].contains("shutdownStartedAt"));
  std::map<std::string, std::string> got;
  for (const auto& c : out["status"]["conditions"]) got[c["type"]] = c["status"];
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"Scheduled", "True"}, {"AddressesAllocated", "True"},
                                                     {"Ready", "True"}}));  // ours replaced, dropped; theirs kept
}

TEST(InstanceDecideTest, WithoutASeedWriterNoCdromIsAttached) {
  Observed o = Base();
  o.inst["spec"]["keyName"] = "laptop";  // not read: this node writes no seeds
  Decision d = Decide(o, Opts());
  ASSERT_EQ(Kinds(d), (std::vector<Kind>{Kind::kDefine, Kind::kStart}));
  EXPECT_TRUE(d.actions[0].domain.disks.empty());
}

TEST(InstanceDecideTest, WaitingIsToldOnceAndInUseIsAWarning) {
  Observed o = Base();
  AsksForData(o);
  o.volumes["data"] = DataVolume("web-2");
  Decision d = Decide(o, Opts());
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].type, "Warning");
  EXPECT_EQ(d.events[0].reason, "VolumeInUse");
  // The same condition again (as written last time): no new event.
  o.inst = d.status;
  EXPECT_TRUE(Decide(o, Opts()).events.empty());
}

TEST(InstanceDecideTest, TeardownReleasesOnlyWhatIsOurs) {
  TeardownObserved o;
  o.inst = Base().inst;
  o.inst["spec"]["image"] = "debian";
  // No domain, no root volume: nothing but the finalizer.
  TeardownDecision t = DecideTeardown(o);
  EXPECT_FALSE(t.destroy_domain);
  EXPECT_EQ(t.root, TeardownDecision::Root::kNone);
  // Our domain and root volume: destroyed, deleted; attachments cleared first.
  o.domain.info.state = DomainState::kRunning;
  o.domain.info.instance_uid = kUid;
  o.inst["status"]["volumes"] = json::array({{{"name", "web-1-root"}, {"device", "vda"}}});
  o.root_volume = {{"metadata", {{"name", "web-1-root"}, {"ownerReferences", json::array({{{"uid", kUid}}, {{"uid", "other"}}})}}}};
  t = DecideTeardown(o);
  EXPECT_TRUE(t.destroy_domain);
  EXPECT_TRUE(t.clear_volumes);
  EXPECT_EQ(t.root, TeardownDecision::Root::kDelete);
  // deleteOnTermination: false keeps it, without our owner reference only.
  o.inst["spec"]["rootDisk"] = {{"deleteOnTermination", false}};
  t = DecideTeardown(o);
  EXPECT_EQ(t.root, TeardownDecision::Root::kKeep);
  EXPECT_EQ(t.root_owner_refs, json::array({{{"uid", "other"}}}));
  // Another object's domain and a Volume not ours are left alone.
  o.domain.info.instance_uid = "someone-else";
  o.root_volume["metadata"]["ownerReferences"] = json::array({{{"uid", "other"}}});
  t = DecideTeardown(o);
  EXPECT_FALSE(t.destroy_domain);
  EXPECT_TRUE(t.foreign_domain);
  EXPECT_EQ(t.root, TeardownDecision::Root::kNone);
}

}  // namespace
}  // namespace stratus::instance
