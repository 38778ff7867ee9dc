// The libvirt Hypervisor adapter: domain XML rendering (every user string escaped by the XML library) and the
// domain life cycle on libvirt's in-process test driver (test:///default: no daemon needed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <pugixml.hpp>
#include <atomic>
#include <string>
#include <thread>

#include "stratus/host/hypervisor.h"

namespace stratus::host {
namespace {

DomainSpec::Disk MakeDisk(const std::string& path, const std::string& format, const std::string& target,
                          bool read_only = false, bool block = false) {
  DomainSpec::Disk d;
  d.path = path;
  d.format = format;
  d.target = target;
  d.read_only = read_only;
  d.block = block;
  return d;
}

// Every character XML cares about, and the CDATA terminator.
const std::string kNasty = "a<b&c'd\"e]]>f>g";

std::shared_ptr<LibvirtConnection> TestConn() {
  auto c = ConnectLibvirt("test:///default");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : nullptr;
}

// Unique per process and test: the test driver shares its state between connections of one process.
std::string UniqueName(const std::string& what) {
  return "hosttest-" + std::to_string(::getpid()) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + what;
}

DomainSpec BaseSpec(const std::string& name) {
  DomainSpec s;
  s.name = name;
  s.instance_uid = "0b5c1f3e-5c8a-4d6e-9d51-7f0e3f7d2a11";
  s.instance_ref = "default/web-1";
  s.virt_type = "test";
  s.vcpus = 2;
  s.memory_mib = 128;
  s.kernel_path = "/var/lib/stratus/images/kernel";
  s.initrd_path = "/var/lib/stratus/images/initrd";
  s.cmdline = "console=ttyS0";
  s.disks.push_back(MakeDisk("/var/lib/stratus/pool/root.qcow2", "qcow2", "vda", false, false));
  s.serial_log_path = "/var/lib/stratus/instances/web-1/console.log";
  return s;
}

TEST(DomainXmlTest, EscapesEveryUserString) {
  auto hv = NewLibvirtHypervisor(TestConn());
  DomainSpec s;
  s.name = "n" + kNasty;
  s.uuid = "u" + kNasty;
  s.instance_uid = "uid" + kNasty;
  s.instance_ref = "ns" + kNasty + "/name";
  s.virt_type = "test";
  s.kernel_path = "/k/" + kNasty;
  s.initrd_path = "/i/" + kNasty;
  s.cmdline = "console=ttyS0 x=" + kNasty;
  DomainSpec::Disk file = MakeDisk("/d/" + kNasty, "qcow2", "vda", false, false);
  file.serial = "s" + kNasty;
  DomainSpec::Disk block = MakeDisk("/dev/vg/" + kNasty, "raw", "vdb", true, true);
  s.disks = {file, block};
  s.nics.push_back({"52:54:00:" + kNasty, "br" + kNasty, "tap" + kNasty});
  s.serial_log_path = "/log/" + kNasty;

  std::string xml = hv->RenderDomainXml(s);
  EXPECT_EQ(xml.find(kNasty), std::string::npos) << "raw user text leaked into the XML:\n" << xml;
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml.c_str())) << xml;
  pugi::xml_node dom = doc.child("domain");
  EXPECT_EQ(std::string(dom.child("name").text().get()), s.name);
  EXPECT_EQ(std::string(dom.child("uuid").text().get()), s.uuid);
  pugi::xml_node meta = dom.child("metadata").child("stratus:instance");
  ASSERT_TRUE(meta);
  EXPECT_EQ(std::string(meta.attribute("xmlns:stratus").value()), kInstanceMetadataNs);
  EXPECT_EQ(std::string(meta.child("uid").text().get()), s.instance_uid);
  EXPECT_EQ(std::string(meta.child("ref").text().get()), s.instance_ref);
  pugi::xml_node os = dom.child("os");
  EXPECT_EQ(std::string(os.child("kernel").text().get()), s.kernel_path);
  EXPECT_EQ(std::string(os.child("initrd").text().get()), s.initrd_path);
  EXPECT_EQ(std::string(os.child("cmdline").text().get()), s.cmdline);
  pugi::xml_node devices = dom.child("devices");
  pugi::xml_node d0 = devices.child("disk");
  pugi::xml_node d1 = d0.next_sibling("disk");
  EXPECT_EQ(std::string(d0.child("source").attribute("file").value()), file.path);
  EXPECT_EQ(std::string(d0.child("serial").text().get()), file.serial);
  EXPECT_EQ(std::string(d1.attribute("type").value()), "block");
  EXPECT_EQ(std::string(d1.child("source").attribute("dev").value()), block.path);
  EXPECT_TRUE(d1.child("readonly"));
  pugi::xml_node nic = devices.child("interface");
  EXPECT_EQ(std::string(nic.child("mac").attribute("address").value()), s.nics[0].mac);
  EXPECT_EQ(std::string(nic.child("source").attribute("bridge").value()), s.nics[0].bridge);
  EXPECT_EQ(std::string(nic.child("target").attribute("dev").value()), s.nics[0].tap);
  EXPECT_EQ(std::string(devices.child("serial").attribute("type").value()), "pty");  // stratusctl console
  EXPECT_EQ(std::string(devices.child("serial").child("log").attribute("file").value()), s.serial_log_path);
  EXPECT_EQ(std::string(devices.child("serial").child("log").attribute("append").value()), "on");
}

TEST(DomainXmlTest, ShapeForDirectKernelBoot) {
  auto hv = NewLibvirtHypervisor(TestConn());
  DomainSpec s = BaseSpec("web");
  s.virt_type = "qemu";
  s.nics.push_back({"52:54:00:00:00:01", "stratus0", ""});
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(hv->RenderDomainXml(s).c_str()));
  pugi::xml_node dom = doc.child("domain");
  EXPECT_STREQ(dom.attribute("type").value(), "qemu");
  EXPECT_STREQ(dom.child("memory").attribute("unit").value(), "MiB");
  EXPECT_STREQ(dom.child("memory").text().get(), "128");
  EXPECT_STREQ(dom.child("vcpu").text().get(), "2");
  pugi::xml_node type = dom.child("os").child("type");
  EXPECT_STREQ(type.text().get(), "hvm");
  EXPECT_STREQ(type.attribute("arch").value(), "x86_64");
  EXPECT_STREQ(type.attribute("machine").value(), "pc");
  EXPECT_FALSE(dom.child("os").child("boot"));
  EXPECT_TRUE(dom.child("features").child("acpi"));
  EXPECT_STREQ(dom.child("on_poweroff").text().get(), "destroy");
  EXPECT_STREQ(dom.child("on_reboot").text().get(), "restart");
  EXPECT_STREQ(dom.child("on_crash").text().get(), "destroy");
  pugi::xml_node devices = dom.child("devices");
  pugi::xml_node disk = devices.child("disk");
  EXPECT_STREQ(disk.attribute("type").value(), "file");
  EXPECT_STREQ(disk.attribute("device").value(), "disk");
  EXPECT_STREQ(disk.child("driver").attribute("name").value(), "qemu");
  EXPECT_STREQ(disk.child("driver").attribute("type").value(), "qcow2");
  EXPECT_STREQ(disk.child("target").attribute("dev").value(), "vda");
  EXPECT_STREQ(disk.child("target").attribute("bus").value(), "virtio");
  pugi::xml_node nic = devices.child("interface");
  EXPECT_STREQ(nic.attribute("type").value(), "bridge");
  EXPECT_STREQ(nic.child("model").attribute("type").value(), "virtio");
  EXPECT_FALSE(nic.child("target")) << "libvirt picks the tap name when none is given";
  EXPECT_STREQ(devices.child("serial").attribute("type").value(), "pty");  // console stream + virtlogd log
  EXPECT_STREQ(devices.child("serial").child("target").attribute("port").value(), "0");
  EXPECT_STREQ(devices.child("memballoon").attribute("model").value(), "none");
  EXPECT_FALSE(devices.child("graphics"));
}

TEST(DomainXmlTest, DiskBootWithoutKernelAndCdrom) {
  auto hv = NewLibvirtHypervisor(TestConn());
  DomainSpec s = BaseSpec("disk-boot");
  s.kernel_path.clear();
  s.initrd_path.clear();
  s.cmdline.clear();
  DomainSpec::Disk seed = MakeDisk("/seed.iso", "raw", "hdc", false, false);
  seed.device = "cdrom";
  s.disks.push_back(seed);
  s.uuid.clear();
  s.instance_uid.clear();
  s.instance_ref.clear();
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(hv->RenderDomainXml(s).c_str()));
  pugi::xml_node dom = doc.child("domain");
  EXPECT_FALSE(dom.child("os").child("kernel"));
  EXPECT_FALSE(dom.child("os").child("cmdline"));
  EXPECT_STREQ(dom.child("os").child("boot").attribute("dev").value(), "hd");
  EXPECT_FALSE(dom.child("uuid"));
  EXPECT_FALSE(dom.child("metadata"));
  pugi::xml_node cd = dom.child("devices").find_child_by_attribute("disk", "device", "cdrom");
  ASSERT_TRUE(cd);
  EXPECT_STREQ(cd.child("target").attribute("bus").value(), "ide");
  EXPECT_TRUE(cd.child("readonly"));
}

class LibvirtHypervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conn_ = TestConn();
    ASSERT_NE(conn_, nullptr);
    hv_ = NewLibvirtHypervisor(conn_);
  }
  void TearDown() override {
    for (const auto& n : created_) {
      (void)hv_->Destroy(n);  // cleanup: either may find nothing to do
      (void)hv_->Undefine(n);
    }
  }
  std::string Track(const std::string& name) {
    created_.push_back(name);
    return name;
  }
  std::shared_ptr<LibvirtConnection> conn_;
  std::unique_ptr<Hypervisor> hv_;
  std::vector<std::string> created_;
};

TEST_F(LibvirtHypervisorTest, DefineStartLookupDestroyUndefine) {
  DomainSpec s = BaseSpec(Track(UniqueName("d")));
  auto absent = hv_->Lookup(s.name);
  ASSERT_TRUE(absent.ok()) << absent.status().ToString();
  EXPECT_EQ(absent->state, DomainState::kNotFound);

  ASSERT_TRUE(hv_->Define(s).ok());
  auto info = hv_->Lookup(s.name);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->state, DomainState::kShutoff);
  EXPECT_TRUE(info->persistent);
  EXPECT_FALSE(info->uuid.empty());

  ASSERT_TRUE(hv_->Start(s.name).ok());
  EXPECT_TRUE(hv_->Start(s.name).ok()) << "starting a running domain is Ok";
  EXPECT_EQ(hv_->Lookup(s.name)->state, DomainState::kRunning);
  EXPECT_TRUE(hv_->Reboot(s.name).ok());
  EXPECT_TRUE(hv_->Reset(s.name).ok());
  EXPECT_EQ(hv_->Lookup(s.name)->state, DomainState::kRunning);

  ASSERT_TRUE(hv_->Destroy(s.name).ok());
  EXPECT_EQ(hv_->Lookup(s.name)->state, DomainState::kShutoff);
  EXPECT_TRUE(hv_->Destroy(s.name).ok()) << "destroying a stopped domain is Ok";
  EXPECT_TRUE(hv_->Shutdown(s.name).ok()) << "shutting down a stopped domain is Ok";
  Status rb = hv_->Reboot(s.name);
  EXPECT_EQ(rb.code(), Code::kConflict) << rb.ToString();

  ASSERT_TRUE(hv_->Start(s.name).ok());
  ASSERT_TRUE(hv_->Shutdown(s.name).ok());  // the test driver's guest obeys at once
  EXPECT_EQ(hv_->Lookup(s.name)->state, DomainState::kShutoff);

  ASSERT_TRUE(hv_->Undefine(s.name).ok());
  EXPECT_EQ(hv_->Lookup(s.name)->state, DomainState::kNotFound);
  EXPECT_TRUE(hv_->Undefine(s.name).ok()) << "undefining an absent domain is Ok";
  EXPECT_TRUE(hv_->Destroy(s.name).code() == Code::kNotFound);
  EXPECT_EQ(hv_->Start(s.name).code(), Code::kNotFound);
}

TEST_F(LibvirtHypervisorTest, UndefineRunningLeavesItTransient) {
  DomainSpec s = BaseSpec(Track(UniqueName("t")));
  ASSERT_TRUE(hv_->Define(s).ok());
  ASSERT_TRUE(hv_->Start(s.name).ok());
  ASSERT_TRUE(hv_->Undefine(s.name).ok());
  auto info = hv_->Lookup(s.name);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, DomainState::kRunning);
  EXPECT_FALSE(info->persistent);
  ASSERT_TRUE(hv_->Destroy(s.name).ok());
  EXPECT_EQ(hv_->Lookup(s.name)->state, DomainState::kNotFound);
}

TEST_F(LibvirtHypervisorTest, MetadataUidRoundTripAndForeignDomainsLeftAlone) {
  DomainSpec s = BaseSpec(Track(UniqueName("m")));
  s.uuid = "6f1c3a52-2b0d-4c36-9a57-0d3cbb2e0f41";
  ASSERT_TRUE(hv_->Define(s).ok());
  auto info = hv_->Lookup(s.name);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->instance_uid, s.instance_uid);
  EXPECT_EQ(info->uuid, s.uuid);

  DomainSpec other = s;
  other.instance_uid = "another-instance";
  other.uuid.clear();
  Status st = hv_->Define(other);
  EXPECT_EQ(st.code(), Code::kConflict) << st.ToString();
  EXPECT_NE(st.message().find(s.instance_uid), std::string::npos) << st.message();
  EXPECT_EQ(hv_->Lookup(s.name)->instance_uid, s.instance_uid) << "the foreign definition must not replace it";

  DomainSpec moved = s;
  moved.uuid = "1f1c3a52-2b0d-4c36-9a57-0d3cbb2e0f42";
  EXPECT_EQ(hv_->Define(moved).code(), Code::kConflict);
}

TEST_F(LibvirtHypervisorTest, DomainsWithoutStratusMetadataHaveNoUid) {
  // The test driver ships a running domain named "test" that is not ours.
  auto info = hv_->Lookup("test");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_NE(info->state, DomainState::kNotFound);
  EXPECT_EQ(info->instance_uid, "");
}

TEST_F(LibvirtHypervisorTest, RedefineKeepsUuidAndAppliesChanges) {
  DomainSpec s = BaseSpec(Track(UniqueName("r")));
  ASSERT_TRUE(hv_->Define(s).ok());
  std::string uuid = hv_->Lookup(s.name)->uuid;
  s.vcpus = 3;
  s.cmdline = "console=ttyS0 quiet";
  ASSERT_TRUE(hv_->Define(s).ok()) << "redefining without a UUID must reuse the existing one";
  EXPECT_EQ(hv_->Lookup(s.name)->uuid, uuid);
  auto xml = hv_->DomainXml(s.name, true);
  ASSERT_TRUE(xml.ok());
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml->c_str()));
  EXPECT_STREQ(doc.child("domain").child("vcpu").text().get(), "3");
  EXPECT_STREQ(doc.child("domain").child("os").child("cmdline").text().get(), "console=ttyS0 quiet");
}

TEST_F(LibvirtHypervisorTest, LibvirtAcceptsAndReturnsHostileStrings) {
  DomainSpec s = BaseSpec(Track(UniqueName("x") + kNasty));
  s.cmdline = "console=ttyS0 " + kNasty;
  s.instance_ref = "ns/" + kNasty;
  s.kernel_path = "/k/" + kNasty;
  s.disks[0].path = "/d/" + kNasty;
  s.serial_log_path = "/log/" + kNasty;
  Status st = hv_->Define(s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto xml = hv_->DomainXml(s.name, true);
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml->c_str()));
  pugi::xml_node dom = doc.child("domain");
  EXPECT_EQ(std::string(dom.child("name").text().get()), s.name);
  EXPECT_EQ(std::string(dom.child("os").child("cmdline").text().get()), s.cmdline);
  EXPECT_EQ(std::string(dom.child("os").child("kernel").text().get()), s.kernel_path);
  EXPECT_EQ(std::string(dom.child("devices").child("disk").child("source").attribute("file").value()),
            s.disks[0].path);
  EXPECT_EQ(hv_->Lookup(s.name)->instance_uid, s.instance_uid);
}

TEST_F(LibvirtHypervisorTest, InvalidSpecsAreRefusedBeforeLibvirt) {
  DomainSpec s = BaseSpec(UniqueName("bad"));
  s.cmdline = std::string("console=ttyS0\x01");
  EXPECT_EQ(hv_->Define(s).code(), Code::kInvalid);
  s = BaseSpec(UniqueName("bad"));
  s.kernel_path = "relative/kernel";
  EXPECT_EQ(hv_->Define(s).code(), Code::kInvalid);
  s = BaseSpec("");
  EXPECT_EQ(hv_->Define(s).code(), Code::kInvalid);
  s = BaseSpec("a/b");
  EXPECT_EQ(hv_->Define(s).code(), Code::kInvalid);
  s = BaseSpec(UniqueName("bad"));
  s.disks.push_back(s.disks[0]);
  EXPECT_EQ(hv_->Define(s).code(), Code::kInvalid) << "duplicate target";
  s = BaseSpec(UniqueName("bad"));
  s.virt_type = "xen";
  EXPECT_EQ(hv_->Define(s).code(), Code::kInvalid);
  EXPECT_EQ(hv_->Lookup(UniqueName("bad"))->state, DomainState::kNotFound);
}

TEST_F(LibvirtHypervisorTest, ListShowsOurDomains) {
  DomainSpec a = BaseSpec(Track(UniqueName("a")));
  DomainSpec b = BaseSpec(Track(UniqueName("b")));
  b.instance_uid = "uid-b";
  ASSERT_TRUE(hv_->Define(a).ok());
  ASSERT_TRUE(hv_->Define(b).ok());
  ASSERT_TRUE(hv_->Start(b.name).ok());
  auto all = hv_->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  auto find = [&](const std::string& n) {
    return std::find_if(all->begin(), all->end(), [&](const DomainInfo& d) { return d.name == n; });
  };
  ASSERT_NE(find(a.name), all->end());
  ASSERT_NE(find(b.name), all->end());
  EXPECT_EQ(find(a.name)->state, DomainState::kShutoff);
  EXPECT_EQ(find(a.name)->instance_uid, a.instance_uid);
  EXPECT_EQ(find(b.name)->state, DomainState::kRunning);
  EXPECT_EQ(find(b.name)->instance_uid, "uid-b");
}

TEST_F(LibvirtHypervisorTest, CapacityFromTheNode) {
  auto cap = hv_->Capacity();
  ASSERT_TRUE(cap.ok()) << cap.status().ToString();
  EXPECT_GT(cap->vcpus, 0);
  EXPECT_GT(cap->memory_mib, 0u);
  EXPECT_EQ(cap->virt_type, "test");
  EXPECT_FALSE(cap->hostname.empty());
}

TEST_F(LibvirtHypervisorTest, AttachAndDetachDiskReflectedInDefinition) {
  DomainSpec s = BaseSpec(Track(UniqueName("disk")));
  ASSERT_TRUE(hv_->Define(s).ok());
  ASSERT_TRUE(hv_->Start(s.name).ok());
  DomainSpec::Disk data = MakeDisk("/pool/data-1", "raw", "vdb", false, false);
  data.serial = "data-1";
  Status st = hv_->AttachDisk(s.name, data);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(hv_->AttachDisk(s.name, data).ok()) << "attaching again is Ok";
  auto disks = hv_->Disks(s.name, true);
  ASSERT_TRUE(disks.ok()) << disks.status().ToString();
  ASSERT_EQ(disks->size(), 2u);
  EXPECT_EQ((*disks)[1].target, "vdb");
  EXPECT_EQ((*disks)[1].path, "/pool/data-1");
  EXPECT_EQ((*disks)[1].format, "raw");
  EXPECT_EQ((*disks)[1].serial, "data-1");

  DomainSpec::Disk other = MakeDisk("/pool/data-2", "raw", "vdb", false, false);
  EXPECT_EQ(hv_->AttachDisk(s.name, other).code(), Code::kConflict);

  // Survives a restart (it is in the persistent definition).
  ASSERT_TRUE(hv_->Destroy(s.name).ok());
  ASSERT_TRUE(hv_->Start(s.name).ok());
  EXPECT_EQ(hv_->Disks(s.name, false)->size(), 2u);

  ASSERT_TRUE(hv_->DetachDisk(s.name, "vdb").ok());
  EXPECT_TRUE(hv_->DetachDisk(s.name, "vdb").ok()) << "detaching an absent disk is Ok";
  EXPECT_EQ(hv_->Disks(s.name, true)->size(), 1u);
  EXPECT_EQ(hv_->DetachDisk(s.name, "../x").code(), Code::kInvalid);
  EXPECT_EQ(hv_->AttachDisk(s.name, MakeDisk("relative", "raw", "vdc")).code(), Code::kInvalid);
}

TEST_F(LibvirtHypervisorTest, AttachAndDetachNicReflectedInDefinition) {
  DomainSpec s = BaseSpec(Track(UniqueName("nic")));
  s.nics = {{"52:54:00:00:00:01", "st-aaaaaaaaaaaa", "stv000000000001"}};
  ASSERT_TRUE(hv_->Define(s).ok());
  ASSERT_TRUE(hv_->Start(s.name).ok());
  DomainSpec::Nic second{"52:54:00:00:00:02", "st-bbbbbbbbbbbb", "stv000000000002"};
  Status st = hv_->AttachNic(s.name, second);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(hv_->AttachNic(s.name, second).ok()) << "attaching again is Ok";
  auto nics = hv_->Nics(s.name, true);
  ASSERT_TRUE(nics.ok()) << nics.status().ToString();
  ASSERT_EQ(nics->size(), 2u);
  EXPECT_EQ((*nics)[1].mac, "52:54:00:00:00:02");
  EXPECT_EQ((*nics)[1].bridge, "st-bbbbbbbbbbbb");
  EXPECT_EQ((*nics)[1].tap, "stv000000000002");

  ASSERT_TRUE(hv_->DetachNic(s.name, "52:54:00:00:00:02").ok());
  EXPECT_TRUE(hv_->DetachNic(s.name, "52:54:00:00:00:02").ok()) << "detaching an absent NIC is Ok";
  nics = hv_->Nics(s.name, true);
  ASSERT_EQ(nics->size(), 1u);
  EXPECT_EQ((*nics)[0].mac, "52:54:00:00:00:01") << "the other NIC stays";
  EXPECT_EQ(hv_->AttachNic(s.name, {"", "st-x", ""}).code(), Code::kInvalid) << "a MAC is required";
  EXPECT_EQ(hv_->AttachNic(s.name, {"52:54:00:00:00:03", "br\"/><evil/>", ""}).code(), Code::kInvalid);
}

TEST_F(LibvirtHypervisorTest, BlockResizeNeedsARunningDomainWithThatDisk) {
  DomainSpec s = BaseSpec(Track(UniqueName("br")));
  ASSERT_TRUE(hv_->Define(s).ok());
  EXPECT_EQ(hv_->BlockResize(s.name, "vda", 1 << 30).code(), Code::kConflict);
  ASSERT_TRUE(hv_->Start(s.name).ok());
  EXPECT_EQ(hv_->BlockResize(s.name, "vdz", 1 << 30).code(), Code::kNotFound);
}

TEST_F(LibvirtHypervisorTest, OneConnectionServesManyThreads) {
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        DomainSpec s = BaseSpec(UniqueName(std::to_string(t) + "-" + std::to_string(i)));
        bool ok = hv_->Define(s).ok() && hv_->Start(s.name).ok() &&
                  hv_->Lookup(s.name).value().state == DomainState::kRunning && hv_->Destroy(s.name).ok() &&
                  hv_->Undefine(s.name).ok() && hv_->Lookup(s.name).value().state == DomainState::kNotFound;
        if (!ok) ++failures;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(LibvirtConnectionTest, UnreachableDaemonIsUnavailableAndNamesTheUri) {
  std::string uri = "qemu+unix:///system?socket=/nonexistent/stratus-test/libvirt-sock";
  auto c = ConnectLibvirt(uri);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_NE(c.status().message().find(uri), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace stratus::host
