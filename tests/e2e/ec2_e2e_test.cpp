// The seed's workflow end to end with the real awscli on real TCG guests, as a tenant (a member of `default` with an
// access key): zones and images, a key pair imported, two instances run and waited for, their private addresses,
// a security group, a 1 GiB volume created, attached (the guest sees the disk appear), detached, snapshotted and a
// volume made from the snapshot (which cannot be deleted before that volume), stop/start/reboot
// (the guest boots again), a floating address allocated and associated through which an "outside" network
// namespace reaches the guest's listener, the console output, an image of a running instance's root disk that a new
// instance boots, terminate and wait terminated, the volume and key deleted; and at each step the same objects
// through `stratusctl get`. Runs in the network namespace libvirtd runs in.
#include <gtest/gtest.h>

#include "../integration/aws_cli.h"
#include "e2e.h"

namespace stratus::testing {
namespace {

class Ec2E2eTest : public NetnsE2eTest {
 protected:
  void SetUp() override {
    NetnsE2eTest::SetUp();
    if (HasFatalFailure()) return;
    if (!fs::exists(kAwsCli)) GTEST_FAIL() << kAwsCli << " is missing: scripts/install-deps.sh installs awscli";
    if (!fs::exists(fs::path(GuestDir()) / "rootfs.qcow2")) GTEST_FAIL() << "missing rootfs.qcow2: run build-guest.sh";
    std::string err = outside_.Make("ec2", "10.97.0");
    ASSERT_TRUE(err.empty()) << err;
  }
  OutsideNetns outside_;
};

json Parse(const RunResult& r) {
  json j = json::parse(r.out, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

TEST_F(Ec2E2eTest, AwscliDrivesTheWholeWorkflowOnRealGuests) {
  ReservedPort agent_port = ReservePort();
  ReservedPort ec2_port = ReservePort();
  std::vector<std::string> flags = {"--agent=true", "--networking", "true", "--netns", NetnsName(),
                                    "--ec2-listen", ec2_port.hostport(), "--secure"};
  for (auto& f : AgentFlags(agent_port)) flags.push_back(f);
  ServerProcess server(dir_.path() / "data", flags);
  ASSERT_TRUE(server.Start()) << server.log();
  auto t0 = std::chrono::steady_clock::now();
  auto say = [&](const std::string& what) {
    std::cout << "[ e2e ] " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
              << " s: " << what << std::endl;
  };

  // The operator's part: images, a flavor and the default subnet (stratusctl as admin).
  auto ap = server.Ctl({"apply", "-f", "-"},
                       "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-kernel}\nspec: {type: kernel, "
                       "source: {url: file://" + GuestDir() + "/vmlinuz}}\n---\n"
                       "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-initrd}\nspec: {type: ramdisk, "
                       "source: {url: file://" + GuestDir() + "/initrd.img}}\n---\n"
                       "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-rootfs}\nspec: {type: disk, "
                       "source: {url: file://" + GuestDir() + "/rootfs.qcow2}}\n---\n"
                       "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\n"
                       "spec: {vcpus: 1, memoryMiB: 256}\n---\n"
                       "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: default}\n"
                       "spec: {cidr: 10.79.0.0/24, mode: nat}\n---\n"
                       "apiVersion: stratus.io/v1\nkind: AddressPool\nmetadata: {name: public-" + outside_.node_if + "}\n"
                       "spec: {cidr: 10.97.0.16/28, interface: " + outside_.node_if + "}\n");
  ASSERT_EQ(ap.exit_code, 0) << ap.out << ap.err;
  // The tenant: alice, a member of `default`, with an access key.
  ASSERT_FALSE(server.MakeUser("alice", "default", "member").empty());
  json key = CreateAccessKey(server, "alice-key", "alice", "default");
  ASSERT_TRUE(key.contains("status")) << key.dump();
  AwsCli aws{"https://" + ec2_port.hostport(), server.ca_file(), (dir_.path() / "home").string(),
             key["spec"].value("accessKeyId", ""), key["status"].value("secretAccessKey", "")};
  std::vector<std::string> ids, names;  // EC2 ids and the Instances' names
  auto get_json = [&](const std::string& what) { return json::parse(server.Ctl({"get", what, "-o", "json"}).out, nullptr, false); };
  auto console = [&](const std::string& id) {
    RunResult r = aws({"get-console-output", "--instance-id", id});
    return Parse(r).value("Output", std::string());
  };
  auto dump = [&] {
    std::string out = "\n--- instances:\n" + server.Http("GET", std::string(kNs) + "/instances").body;
    for (const auto& id : ids) out += "\n--- console of " + id + ":\n" + console(id);
    return out + "\n--- server:\n" + server.log();
  };

  // Zones and images.
  RunResult r = aws({"describe-availability-zones"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Parse(r)["AvailabilityZones"][0].value("ZoneName", ""), "default") << r.out;
  r = aws({"describe-images", "--owners", "self"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> image;  // name -> id
  json images = Parse(r);
  for (const auto& i : images["Images"]) image[i.value("Name", "")] = i.value("ImageId", "");
  ASSERT_EQ(image["demo-rootfs"].rfind("ami-", 0), 0u) << r.out;
  ASSERT_EQ(image["demo-kernel"].rfind("aki-", 0), 0u) << r.out;
  ASSERT_EQ(image["demo-initrd"].rfind("ari-", 0), 0u) << r.out;

  // A key pair, imported.
  std::string keyfile = (dir_.path() / "laptop").string();
  ASSERT_EQ(stratus::testing::Run({"/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", keyfile}).exit_code, 0);
  r = aws({"import-key-pair", "--key-name", "laptop", "--public-key-material", "fileb://" + keyfile + ".pub"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(get_json("keypair/laptop").is_object());

  // Two instances, booted from the root-filesystem image with the kernel and ramdisk.
  r = aws({"run-instances", "--image-id", image["demo-rootfs"], "--kernel-id", image["demo-kernel"], "--ramdisk-id",
           image["demo-initrd"], "--count", "2", "--instance-type", "m1.small", "--key-name", "laptop",
           "--tag-specifications", "ResourceType=instance,Tags=[{Key=team,Value=e2e}]"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json run = Parse(r);
  for (const auto& i : run["Instances"]) ids.push_back(i.value("InstanceId", ""));
  ASSERT_EQ(ids.size(), 2u) << r.out;
  for (const auto& id : ids) {
    json listed = json::parse(server.Ctl({"get", "instances", "-l", "ec2.stratus.io/id=" + id, "-o", "json"}).out, nullptr, false);
    ASSERT_EQ(listed.value("items", json::array()).size(), 1u) << "stratusctl finds " << id << " by its EC2 id";
    names.push_back(listed["items"][0]["metadata"].value("name", ""));
    domains_.push_back("stratus_default_" + names.back());
  }
  say("run-instances answered");
  r = aws({"wait", "instance-running", "--instance-ids", ids[0], ids[1]}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  say("instances running");
  for (const auto& id : ids) {
    ASSERT_TRUE(Eventually([&] { return console(id).find("STRATUS-ROOTFS-BOOTED dev=/dev/vda") != std::string::npos; }, 180, 1000))
        << id << " booted its root disk" << dump();
  }
  // Their private addresses, as stratusctl shows them.
  r = aws({"describe-instances", "--filters", "Name=tag:team,Values=e2e", "Name=instance-state-name,Values=running"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> ip;
  json described = Parse(r);
  for (const auto& res : described["Reservations"]) {
    for (const auto& i : res["Instances"]) ip[i.value("InstanceId", "")] = i.value("PrivateIpAddress", "");
  }
  ASSERT_EQ(ip.size(), 2u) << r.out;
  json insts = get_json("instances");
  for (const auto& id : ids) {
    EXPECT_EQ(ip[id].rfind("10.79.0.", 0), 0u) << r.out;
    bool same = false;
    for (const auto& i : insts["items"]) {
      if (i["metadata"]["labels"].value("ec2.stratus.io/id", "") == id) same = i["status"]["addresses"][0].value("ip", "") == ip[id];
    }
    EXPECT_TRUE(same) << id << " " << ip[id] << " " << insts.dump();
  }

  // A security group, authorized.
  r = aws({"create-security-group", "--group-name", "web", "--description", "web servers"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string sg = Parse(r).value("GroupId", "");
  r = aws({"authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "8080", "--cidr", "10.79.0.0/24"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json group = get_json("securitygroup/web");
  ASSERT_TRUE(group.is_object());
  EXPECT_EQ(group["spec"]["ingress"][0].value("cidr", ""), "10.79.0.0/24") << group.dump();

  // A 1 GiB volume: available, attached (the guest sees vdf appear), detached (and disappear).
  r = aws({"create-volume", "--size", "1", "--availability-zone", "default"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string vol = Parse(r).value("VolumeId", "");
  r = aws({"wait", "volume-available", "--volume-ids", vol}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  json vols = json::parse(server.Ctl({"get", "volumes", "-l", "ec2.stratus.io/id=" + vol, "-o", "json"}).out, nullptr, false);
  ASSERT_EQ(vols.value("items", json::array()).size(), 1u);
  EXPECT_EQ(vols["items"][0]["status"].value("phase", ""), "Available");
  r = aws({"attach-volume", "--volume-id", vol, "--instance-id", ids[0], "--device", "/dev/sdf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"wait", "volume-in-use", "--volume-ids", vol}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  // The guest's kernel names disks in the order they appear (libvirt's target vdf is its vdb): look for the size.
  auto disk_line = [&](const std::string& what) {
    std::string out = console(ids[0]);
    for (size_t at = 0; (at = out.find(what, at)) != std::string::npos; ++at) {
      std::string line = out.substr(at, out.find('\n', at) - at);
      if (line.find("bytes=1073741824") != std::string::npos || what == "STRATUS-DISK-REMOVED") return line;
    }
    return std::string();
  };
  ASSERT_TRUE(Eventually([&] { return !disk_line("STRATUS-DISK-ADDED").empty(); }, 120, 1000))
      << "the guest sees the attached 1 GiB disk" << dump();
  say("volume attached and seen by the guest");
  r = aws({"detach-volume", "--volume-id", vol});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"wait", "volume-available", "--volume-ids", vol}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  ASSERT_TRUE(Eventually([&] { return !disk_line("STRATUS-DISK-REMOVED").empty(); }, 120, 1000))
      << "the guest sees the disk go" << dump();
  // A snapshot of it, a volume from the snapshot (which then keeps the snapshot), and EC2's waiters on both.
  r = aws({"create-snapshot", "--volume-id", vol, "--description", "e2e"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string ebs_snap = Parse(r).value("SnapshotId", "");
  ASSERT_EQ(ebs_snap.rfind("snap-", 0), 0u) << r.out;
  r = aws({"wait", "snapshot-completed", "--snapshot-ids", ebs_snap}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  r = aws({"create-volume", "--snapshot-id", ebs_snap, "--availability-zone", "default"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string vol2 = Parse(r).value("VolumeId", "");
  EXPECT_EQ(Parse(r).value("Size", 0), 1) << r.out;
  r = aws({"wait", "volume-available", "--volume-ids", vol2}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  r = aws({"delete-snapshot", "--snapshot-id", ebs_snap});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("InvalidSnapshot.InUse"), std::string::npos) << r.err;
  r = aws({"delete-volume", "--volume-id", vol2});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] { return aws({"delete-snapshot", "--snapshot-id", ebs_snap}).exit_code == 0; }, 60))
      << "deleted once the volume over it is gone" << dump();
  say("snapshot, volume from it, both deleted");

  // Stop and start one, reboot the other: each boots its root disk again. The operator gives the stopped one a
  // listener on 8080 (the test guest's kernel argument), which it has from its next start on.
  auto ka = server.Http("PATCH", std::string(kNs) + "/instances/" + names[1], R"({"spec":{"kernelArgs":"stratus.listen=8080"}})",
                        "application/merge-patch+json");
  ASSERT_EQ(ka.code, 200) << ka.body;
  r = aws({"stop-instances", "--instance-ids", ids[1]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"wait", "instance-stopped", "--instance-ids", ids[1]}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  r = aws({"start-instances", "--instance-ids", ids[1]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"reboot-instances", "--instance-ids", ids[0]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"wait", "instance-running", "--instance-ids", ids[1]}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  for (const auto& id : ids) {
    ASSERT_TRUE(Eventually([&] { return console(id).find("STRATUS-ROOTFS-BOOTED dev=/dev/vda bytes=") != std::string::npos &&
                                        console(id).find(" boot=2") != std::string::npos; }, 180, 1000))
        << id << " booted a second time" << dump();
  }
  say("stopped, started and rebooted");

  // A floating address: the web group lets the outside's 10.97.0.0/24 in on 8080 and goes onto the listening
  // instance; allocated from the pool, associated, the outside reaches the guest's listener through it (DNAT).
  ASSERT_TRUE(Eventually([&] { return console(ids[1]).find("STRATUS-LISTEN 8080") != std::string::npos; }, 120, 1000))
      << dump();
  r = aws({"authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "8080", "--cidr", "10.97.0.0/24"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"modify-instance-attribute", "--instance-id", ids[1], "--groups", sg});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"allocate-address", "--domain", "vpc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string alloc = Parse(r).value("AllocationId", ""), fip = Parse(r).value("PublicIp", "");
  ASSERT_EQ(alloc.rfind("eipalloc-", 0), 0u) << r.out;
  ASSERT_EQ(fip.rfind("10.97.0.", 0), 0u) << r.out;
  r = aws({"associate-address", "--instance-id", ids[1], "--allocation-id", alloc});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string assoc = Parse(r).value("AssociationId", "");
  ASSERT_EQ(assoc.rfind("eipassoc-", 0), 0u) << r.out;
  json addrs = json::parse(server.Ctl({"get", "addresses", "-l", "ec2.stratus.io/id=" + alloc, "-o", "json"}).out, nullptr, false);
  ASSERT_EQ(addrs.value("items", json::array()).size(), 1u) << addrs.dump();
  EXPECT_EQ(addrs["items"][0]["spec"].value("instance", ""), names[1]) << addrs.dump();
  ASSERT_TRUE(Eventually([&] { return outside_.Get("http://" + fip + ":8080/").find("STRATUS-PEER") != std::string::npos; }, 120, 1000))
      << "outside -> " << fip << ":8080" << dump();
  r = aws({"describe-addresses", "--allocation-ids", alloc});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Parse(r)["Addresses"][0].value("InstanceId", ""), ids[1]) << r.out;
  EXPECT_EQ(Parse(r)["Addresses"][0].value("PrivateIpAddress", ""), ip[ids[1]]) << r.out;
  say("reached through floating address " + fip);
  r = aws({"disassociate-address", "--association-id", assoc});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Eventually([&] { return !outside_.NodeHas(fip); }, 60)) << "the /32 leaves the node" << dump();
  EXPECT_TRUE(Eventually([&] { return outside_.Get("http://" + fip + ":8080/").empty(); }, 60, 1000)) << dump();
  r = aws({"release-address", "--allocation-id", alloc});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // An image of the first instance's root disk (crash-consistent, the guest keeps running); an instance launched
  // from it boots that disk: its boot counter goes on from the copy's.
  r = aws({"create-image", "--instance-id", ids[0], "--name", "web snapshot (e2e)", "--no-reboot"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string snap = Parse(r).value("ImageId", "");
  ASSERT_EQ(snap.rfind("ami-", 0), 0u) << r.out;
  r = aws({"wait", "image-available", "--image-ids", snap}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err << server.Ctl({"get", "images", "-o", "yaml"}).out << dump();
  say("image captured");
  r = aws({"run-instances", "--image-id", snap, "--count", "1", "--instance-type", "m1.small"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string from_snap = Parse(r)["Instances"][0].value("InstanceId", "");
  ids.push_back(from_snap);
  json listed = json::parse(server.Ctl({"get", "instances", "-l", "ec2.stratus.io/id=" + from_snap, "-o", "json"}).out, nullptr, false);
  ASSERT_EQ(listed.value("items", json::array()).size(), 1u);
  domains_.push_back("stratus_default_" + listed["items"][0]["metadata"].value("name", ""));
  EXPECT_EQ(listed["items"][0]["spec"].value("kernelImage", ""), "demo-kernel") << "the image's kernel by default";
  ASSERT_TRUE(Eventually([&] { return console(from_snap).find("STRATUS-ROOTFS-BOOTED dev=/dev/vda") != std::string::npos; }, 180, 1000))
      << dump();
  std::string booted = console(from_snap);
  EXPECT_EQ(booted.find(" boot=1"), std::string::npos) << "booted a fresh disk, not the copy: " << booted;

  // Terminate both and wait until EC2 says terminated; stratusctl has nothing left.
  r = aws({"terminate-instances", "--instance-ids", ids[0], ids[1], ids[2]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"wait", "instance-terminated", "--instance-ids", ids[0], ids[1], ids[2]}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err << dump();
  EXPECT_EQ(get_json("instances").value("items", json::array()).size(), 0u);
  say("terminated");

  r = aws({"delete-volume", "--volume-id", vol});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = aws({"delete-security-group", "--group-id", sg});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = aws({"deregister-image", "--image-id", snap});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = aws({"delete-key-pair", "--key-name", "laptop"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Eventually([&] { return get_json("volumes").value("items", json::array()).empty(); }, 60)) << dump();
  EXPECT_FALSE(get_json("keypair/laptop").is_object());
}

}  // namespace
}  // namespace stratus::testing
