// Volumes on libvirt's test:///default driver through the real server and embedded agent: create (blank,
// from an image, clone), grow, refuse to shrink, attach/detach reflected in the domain XML, one holder at a
// time, deleting an attached volume refused, root volumes made from spec.image and removed with the instance.
#include <gtest/gtest.h>

#include <fstream>

#include "harness.h"

namespace stratus::testing {
namespace {

namespace fs = std::filesystem;
const char* kNs = "/apis/stratus.io/v1/namespaces/default";

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_port_ = ReservePort();
    ASSERT_NE(agent_port_.port(), 0) << agent_port_.error();
    server_ = std::make_unique<ServerProcess>(
        dir_.path() / "data",
        std::vector<std::string>{"--agent=true", "--libvirt-uri", "test:///default", "--node", "node-a",
                                 "--agent-listen", agent_port_.hostport(),
                                 "--reserved-memory-mib", "0", "--heartbeat-seconds", "2"});
    ASSERT_TRUE(server_->Start()) << server_->log();
    std::ofstream(dir_.path() / "vmlinuz") << std::string(4096, 'k');
    std::string qcow = (dir_.path() / "disk.qcow2").string();
    ASSERT_EQ(stratus::testing::Run({"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M"}).exit_code, 0);
    Apply("apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: k}\nspec: {type: kernel, source: {url: file://" +
          (dir_.path() / "vmlinuz").string() + "}}\n---\n" +
          "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: disk}\nspec: {type: disk, source: {url: file://" +
          qcow + "}}\n---\n" +
          "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n");
  }

  void Apply(const std::string& yaml) {
    auto a = server_->Ctl({"apply", "-f", "-"}, yaml);
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  }
  json Get(const std::string& plural, const std::string& name) {
    return server_->Http("GET", std::string(kNs) + "/" + plural + "/" + name).Json();
  }
  std::string Phase(const std::string& plural, const std::string& name) {
    json j = Get(plural, name);
    return j.contains("status") ? j["status"].value("phase", "") : "";
  }
  bool WaitPhase(const std::string& plural, const std::string& name, const std::string& phase, int seconds = 30) {
    return Eventually([&] { return Phase(plural, name) == phase; }, seconds);
  }
  HttpResult Patch(const std::string& plural, const std::string& name, const json& patch) {
    return server_->Http("PATCH", std::string(kNs) + "/" + plural + "/" + name, patch.dump(),
                         "application/merge-patch+json");
  }
  std::string AgentGet(const std::string& path) {
    web::http::client::http_client c("http://" + agent_port_.hostport(), TestHttpConfig());
    return c.request(web::http::methods::GET, path).get().extract_string().get();
  }
  std::string DomainXml(const std::string& inst, bool inactive = true) {
    return AgentGet("/domains/stratus_default_" + inst + "/xml" + (inactive ? "?inactive=1" : ""));
  }
  // Names of the storage volumes in the node's volume pools.
  std::set<std::string> Storage() {
    std::set<std::string> out;
    for (const auto& v : json::parse(AgentGet("/volumes"))) out.insert(v["name"].get<std::string>());
    return out;
  }
  std::string StorageOf(const std::string& volume) { return "vol-" + Get("volumes", volume)["metadata"].value("uid", ""); }
  static std::string VolumeYaml(const std::string& name, const std::string& spec) {
    return "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: " + name + "}\nspec: " + spec + "\n";
  }
  static std::string InstanceYaml(const std::string& name, const std::string& extra) {
    return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name +
           "}\nspec:\n  instanceType: m1.small\n  kernelImage: k\n" + extra;
  }
  static std::string Condition(const json& obj, const std::string& type, const char* field) {
    if (!obj.contains("status") || !obj["status"].contains("conditions")) return "";
    for (const auto& c : obj["status"]["conditions"]) {
      if (c["type"] == type) return c.value(field, "");
    }
    return "";
  }

  TempDir dir_;
  ReservedPort agent_port_;  // outlives server_
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(VolumeTest, CreateGrowCloneRefuseShrinkAndDelete) {
  Apply(VolumeYaml("blank", "{size: 1Gi}") + "---\n" + VolumeYaml("from-img", "{size: 1Gi, source: {image: disk}}") +
        "---\n" + VolumeYaml("copy", "{size: 256Mi, format: raw, source: {image: disk}}"));
  for (const char* v : {"blank", "from-img", "copy"}) ASSERT_TRUE(WaitPhase("volumes", v, "Available")) << Get("volumes", v).dump(2);
  json blank = Get("volumes", "blank");
  EXPECT_EQ(blank["spec"]["nodeName"], "node-a");  // placed
  EXPECT_EQ(blank["status"]["capacity"], "1Gi");
  EXPECT_EQ(blank["status"]["pool"], "default");
  EXPECT_EQ(blank["status"]["format"], "qcow2");
  EXPECT_NE(blank["status"]["path"].get<std::string>().find(StorageOf("blank")), std::string::npos);
  EXPECT_EQ(Get("volumes", "copy")["status"]["format"], "raw");
  EXPECT_EQ(Storage().size(), 3u);

  // Grow: applied to the storage.
  ASSERT_EQ(Patch("volumes", "blank", {{"spec", {{"size", "2Gi"}}}}).code, 200);
  EXPECT_TRUE(Eventually([&] { return Get("volumes", "blank")["status"].value("capacity", "") == "2Gi"; }));
  // Shrink: refused by the API, naming the field; nothing changes.
  auto shrink = Patch("volumes", "blank", {{"spec", {{"size", "1Gi"}}}});
  EXPECT_EQ(shrink.code, 422) << shrink.body;
  EXPECT_EQ(shrink.Json()["details"]["causes"][0]["field"], "spec.size");
  EXPECT_NE(shrink.body.find("may not shrink"), std::string::npos);
  auto repool = Patch("volumes", "blank", {{"spec", {{"pool", "other"}}}});
  EXPECT_EQ(repool.code, 422) << repool.body;

  // A clone is made next to its source, at least as big.
  Apply(VolumeYaml("clone", "{size: 3Gi, source: {volume: blank}}"));
  ASSERT_TRUE(WaitPhase("volumes", "clone", "Available")) << Get("volumes", "clone").dump(2);
  EXPECT_EQ(Get("volumes", "clone")["spec"]["nodeName"], "node-a");
  EXPECT_EQ(Get("volumes", "clone")["status"]["capacity"], "3Gi");
  // Smaller than its source: Failed with a reason naming spec.size.
  Apply(VolumeYaml("too-small", "{size: 1Mi, source: {image: disk}}"));
  ASSERT_TRUE(WaitPhase("volumes", "too-small", "Failed"));
  EXPECT_NE(Condition(Get("volumes", "too-small"), "Ready", "message").find("spec.size"), std::string::npos);

  // Deleting detached volumes removes their storage.
  std::string clone_storage = StorageOf("clone");
  ASSERT_EQ(server_->Ctl({"delete", "volume", "clone", "too-small", "--wait", "--timeout", "30s"}).exit_code, 0);
  EXPECT_EQ(Storage().count(clone_storage), 0u);
  EXPECT_EQ(Storage().size(), 3u);
}

TEST_F(VolumeTest, AttachDetachHolderAndRefusedDelete) {
  Apply(VolumeYaml("data", "{size: 1Gi}") + "---\n" + InstanceYaml("vm1", "  volumes: [{volume: data, device: vdb}]\n"));
  ASSERT_TRUE(WaitPhase("instances", "vm1", "Running")) << Get("instances", "vm1").dump(2);
  ASSERT_TRUE(WaitPhase("volumes", "data", "InUse")) << Get("volumes", "data").dump(2);
  json vol = Get("volumes", "data");
  EXPECT_EQ(vol["status"]["attachment"]["instance"], "vm1");
  EXPECT_EQ(vol["status"]["attachment"]["device"], "vdb");
  std::string path = vol["status"]["path"];
  std::string xml = DomainXml("vm1");
  EXPECT_NE(xml.find(path), std::string::npos) << xml;
  EXPECT_NE(xml.find("dev='vdb'"), std::string::npos) << xml;
  json inst = Get("instances", "vm1");
  ASSERT_TRUE(inst["status"].contains("volumes")) << inst.dump(2);
  EXPECT_EQ(inst["status"]["volumes"][0]["name"], "data");

  // Deleting an attached volume is refused and names the instance.
  auto del = server_->Http("DELETE", std::string(kNs) + "/volumes/data");
  EXPECT_EQ(del.code, 409) << del.body;
  EXPECT_NE(del.body.find("vm1"), std::string::npos);
  EXPECT_EQ(Phase("volumes", "data"), "InUse");

  // A second instance asking for it waits with a condition saying who holds it.
  Apply(InstanceYaml("vm2", "  volumes: [{volume: data, device: vdc}]\n"));
  json vm2;
  ASSERT_TRUE(Eventually([&] {
    vm2 = Get("instances", "vm2");
    return Condition(vm2, "VolumesReady", "reason") == "VolumeInUse";
  })) << vm2.dump(2);
  EXPECT_NE(Condition(vm2, "VolumesReady", "message").find("attached to instance vm1"), std::string::npos);
  EXPECT_NE(vm2["status"].value("phase", ""), "Running");

  // Detach from vm1 (spec is the truth): the disk leaves vm1's definition and vm2 gets the volume.
  ASSERT_EQ(Patch("instances", "vm1", {{"spec", {{"volumes", json::array()}}}}).code, 200);
  ASSERT_TRUE(Eventually([&] { return DomainXml("vm1").find(path) == std::string::npos; })) << DomainXml("vm1");
  ASSERT_TRUE(WaitPhase("instances", "vm2", "Running")) << Get("instances", "vm2").dump(2);
  EXPECT_TRUE(Eventually([&] { return Get("volumes", "data")["status"]["attachment"].value("instance", "") == "vm2"; }));
  EXPECT_NE(DomainXml("vm2").find("dev='vdc'"), std::string::npos);

  // Released by vm2 too: now it can be deleted, and its storage goes.
  std::string storage = StorageOf("data");
  ASSERT_EQ(server_->Ctl({"delete", "instance", "vm2", "--wait", "--timeout", "30s"}).exit_code, 0);
  ASSERT_TRUE(WaitPhase("volumes", "data", "Available"));
  auto d = server_->Ctl({"delete", "volume", "data", "--wait", "--timeout", "30s"});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(Storage().count(storage), 0u);
}

TEST_F(VolumeTest, RootVolumeFromImageGoesWithTheInstanceUnlessKept) {
  Apply(InstanceYaml("vm", "  image: disk\n  rootDisk: {size: 512Mi}\n") + "---\n" +
        InstanceYaml("keeper", "  image: disk\n  rootDisk: {deleteOnTermination: false}\n"));
  ASSERT_TRUE(WaitPhase("instances", "vm", "Running")) << Get("instances", "vm").dump(2);
  ASSERT_TRUE(WaitPhase("instances", "keeper", "Running")) << Get("instances", "keeper").dump(2);
  json root = Get("volumes", "vm-root");
  EXPECT_EQ(root["status"]["capacity"], "512Mi");
  EXPECT_EQ(root["metadata"]["ownerReferences"][0]["name"], "vm");
  EXPECT_EQ(root["spec"]["source"]["image"], "disk");
  EXPECT_EQ(Get("volumes", "keeper-root")["status"]["capacity"], "64Mi");  // the image's virtual size
  EXPECT_EQ(Get("instances", "vm")["status"]["rootVolume"], "vm-root");
  std::string xml = DomainXml("vm");
  EXPECT_NE(xml.find(root["status"]["path"].get<std::string>()), std::string::npos) << xml;
  EXPECT_NE(xml.find("dev='vda'"), std::string::npos);
  // The root volume of a live instance cannot be deleted on its own.
  EXPECT_EQ(server_->Http("DELETE", std::string(kNs) + "/volumes/vm-root").code, 409);
  // Growing rootDisk.size grows the root volume; shrinking it is refused.
  ASSERT_EQ(Patch("instances", "vm", {{"spec", {{"rootDisk", {{"size", "1Gi"}}}}}}).code, 200);
  EXPECT_TRUE(Eventually([&] { return Get("volumes", "vm-root")["status"].value("capacity", "") == "1Gi"; }));
  EXPECT_EQ(Patch("instances", "vm", {{"spec", {{"rootDisk", {{"size", "128Mi"}}}}}}).code, 422);

  std::string storage = StorageOf("vm-root");
  ASSERT_EQ(server_->Ctl({"delete", "instance", "vm", "keeper", "--wait", "--timeout", "30s"}).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return server_->Http("GET", std::string(kNs) + "/volumes/vm-root").code == 404; }));
  EXPECT_TRUE(Eventually([&] { return Storage().count(storage) == 0; }));
  json kept = Get("volumes", "keeper-root");
  ASSERT_TRUE(WaitPhase("volumes", "keeper-root", "Available")) << kept.dump(2);
  kept = Get("volumes", "keeper-root");
  EXPECT_TRUE(!kept["metadata"].contains("ownerReferences") || kept["metadata"]["ownerReferences"].empty());
}

TEST_F(VolumeTest, PlacementFollowsVolumesAndExplainsWhenItCannot) {
  // A volume too big for any pool: Unschedulable with a reason per node.
  Apply(VolumeYaml("huge", "{size: 1Ei}"));
  json huge;
  ASSERT_TRUE(Eventually([&] {
    huge = Get("volumes", "huge");
    return Condition(huge, "Scheduled", "reason") == "Unschedulable";
  })) << huge.dump(2);
  EXPECT_NE(Condition(huge, "Scheduled", "message").find("node-a: insufficient space"), std::string::npos)
      << Condition(huge, "Scheduled", "message");
  // An instance waiting for a volume that does not exist says so instead of booting without it.
  Apply(InstanceYaml("orphan", "  volumes: [{volume: missing, device: vdb}]\n"));
  json o;
  ASSERT_TRUE(Eventually([&] {
    o = Get("instances", "orphan");
    return Condition(o, "Scheduled", "message").find("volume missing does not exist") != std::string::npos;
  })) << o.dump(2);
  // Once the volume exists the instance is placed with it and boots.
  Apply(VolumeYaml("missing", "{size: 64Mi}"));
  ASSERT_TRUE(WaitPhase("instances", "orphan", "Running", 40)) << Get("instances", "orphan").dump(2);
  EXPECT_EQ(Get("instances", "orphan")["spec"]["nodeName"], Get("volumes", "missing")["spec"]["nodeName"]);
  // The node reports its pools.
  json node = server_->Http("GET", "/apis/stratus.io/v1/nodes/node-a").Json();
  bool has_default = false;
  for (const auto& p : node["status"]["pools"]) has_default |= p["name"] == "default" && p["default"] == true;
  EXPECT_TRUE(has_default) << node["status"].dump(2);
}

}  // namespace
}  // namespace stratus::testing
