// Shared by the end-to-end tests on qemu:///system (TCG): the guest built by tests/guest/build-guest.sh into
// $STRATUS_GUEST_DIR (default /var/lib/stratus/guest), libvirtd reachable (scripts/libvirt-up.sh), and a
// fixture that gives each test its own node name, data dir (traversable by QEMU) and cleans libvirt up by name.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "../integration/harness.h"

namespace stratus::testing {

inline const char* kNs = "/apis/stratus.io/v1/namespaces/default";

namespace fs = std::filesystem;

inline std::string GuestDir() {
  const char* d = getenv("STRATUS_GUEST_DIR");
  return d && *d ? d : "/var/lib/stratus/guest";
}

// The network namespace scripts/libvirt-up.sh started libvirtd in (STRATUS_NETNS; scripts/test.sh sets it), "" when
// none. Agents with --networking get it as --netns, so bridges, dnsmasq, taps and guests all live there.
inline std::string NetnsName() {
  const char* n = getenv("STRATUS_NETNS");
  return n && *n ? n : "";
}

// Inode of a network namespace file ("/run/netns/NAME", "/proc/PID/ns/net"), 0 when it cannot be read.
inline ino_t NetnsInode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// "" when libvirtd runs in network namespace NetnsName(), one of its own (not the host's), else what is wrong.
// Tests that give guests private addresses need that: the addresses then never leave the namespace.
inline std::string PrivateNetnsProblem() {
  std::string ns = NetnsName();
  if (ns.empty()) return "STRATUS_NETNS is not set: run through scripts/test.sh, which starts libvirtd in a network namespace";
  ino_t want = NetnsInode("/run/netns/" + ns);
  if (want == 0) return "no network namespace " + ns + " (/run/netns/" + ns + "): run scripts/libvirt-up.sh with STRATUS_NETNS";
  if (want == NetnsInode("/proc/1/ns/net")) return "network namespace " + ns + " is the host's own";
  std::ifstream pf("/run/libvirtd.pid");
  long pid = 0;
  pf >> pid;
  if (pid <= 0) return "no /run/libvirtd.pid: run scripts/libvirt-up.sh";
  if (NetnsInode("/proc/" + std::to_string(pid) + "/ns/net") != want) {
    return "libvirtd (pid " + std::to_string(pid) + ") runs outside network namespace " + ns +
           ": stop it and let scripts/libvirt-up.sh start it with STRATUS_NETNS=" + ns;
  }
  return "";
}

inline RunResult Virsh(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/virsh", "-c", "qemu:///system"});
  return Run(args, "", {}, 60);
}

// Names of the libvirt storage pools whose target directory lies under `dir` (what agents with that data dir made).
inline std::vector<std::string> PoolsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream names(Virsh({"pool-list", "--all", "--name"}).out);
  for (std::string name; std::getline(names, name);) {
    if (name.empty()) continue;
    if (Virsh({"pool-dumpxml", name}).out.find("<path>" + dir + "/") != std::string::npos) out.push_back(name);
  }
  return out;
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Virsh({"version"}).exit_code != 0) {
      GTEST_FAIL() << "libvirtd is not reachable at qemu:///system: run scripts/libvirt-up.sh";
    }
    for (const char* f : {"vmlinuz", "initrd.img"}) {
      if (!fs::exists(fs::path(GuestDir()) / f)) GTEST_FAIL() << "missing " << GuestDir() << "/" << f << ": run tests/guest/build-guest.sh";
    }
    // QEMU runs as libvirt-qemu: it must be able to traverse to the image pool and kernel.
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                                  std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                                  std::filesystem::perms::others_exec);
    node_ = "e2e-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : node_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  void TearDown() override {
    // Remove what this test's agent defined in the shared libvirtd, by name.
    for (const auto& d : domains_) {  // only if a failed test left it behind
      Virsh({"destroy", d});
      Virsh({"undefine", d});
    }
    for (const auto& pool : PoolsUnder(dir_.path().string())) {
      Virsh({"pool-destroy", pool});
      Virsh({"pool-undefine", pool});
    }
  }
  std::string Manifests(const std::string& inst) {
    return "apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-kernel}\nspec: {type: kernel, source: {url: file://" +
           GuestDir() + "/vmlinuz}}\n---\napiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: demo-initrd}\n" +
           "spec: {type: ramdisk, source: {url: file://" + GuestDir() + "/initrd.img}}\n---\n" +
           "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n---\n" +
           "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + inst + "}\nspec:\n  instanceType: m1.small\n" +
           "  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n  kernelArgs: stratus.marker=" + inst + "\n";
  }
  // `agent_port` must stay reserved while the agent runs.
  std::vector<std::string> AgentFlags(const ReservedPort& agent_port) {
    return {"--node", node_, "--libvirt-uri", "qemu:///system", "--agent-listen", agent_port.hostport(),
            "--reserved-memory-mib", "0", "--virt-type", "qemu"};
  }
  int DomainCount(const std::string& dom) {
    auto l = Virsh({"list", "--all", "--name"});
    int n = 0;
    std::istringstream in(l.out);
    std::string line;
    while (std::getline(in, line)) n += line == dom;
    return n;
  }

  TempDir dir_;
  std::string node_;
  std::vector<std::string> domains_;
};

// E2e tests whose guests have private addresses: libvirtd must run in a network namespace of its own. Their
// server's data dir is DIR/data (the embedded agent's: DIR/data/agent).
class NetnsE2eTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (HasFatalFailure()) return;
    std::string why = PrivateNetnsProblem();
    if (!why.empty()) GTEST_FAIL() << why;
  }
  void TearDown() override {
    E2eTest::TearDown();
    // dnsmasq daemonises away from the agent: stop the ones our agent started (pid files in our data dir) when the
    // test ended with its networks still there, so that the next run's dnsmasq on a bridge of that name can start.
    std::error_code ec;
    fs::path nets = dir_.path() / "data" / "agent" / "networks";
    if (!fs::exists(nets, ec)) return;
    for (const auto& e : fs::directory_iterator(nets, ec)) {
      std::ifstream pf(e.path() / "dnsmasq.pid");
      long pid = 0;
      if (!(pf >> pid) || pid <= 1) continue;
      std::string cmd = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
      if (cmd.find(e.path().string()) != std::string::npos) ::kill(static_cast<pid_t>(pid), SIGTERM);
    }
  }
};

// An "outside" for floating addresses: a network namespace of its own, joined to the node's (NetnsName()) by a veth
// pair. The node's end (`node_if`, PREFIX.1/24) serves as an AddressPool's interface; the outside end has PREFIX.2.
// Removed with its namespace (the node's end goes with its peer).
class OutsideNetns {
 public:
  OutsideNetns() = default;
  OutsideNetns(const OutsideNetns&) = delete;
  OutsideNetns& operator=(const OutsideNetns&) = delete;
  ~OutsideNetns() {
    if (made_) (void)Ip({"netns", "del", name});
  }
  // `tag` keeps names apart (at most 6 characters: interface names have 15); `prefix` is "A.B.C". "" or what failed.
  std::string Make(const std::string& tag, const std::string& prefix) {
    std::string id = tag + std::to_string(::getpid() % 100000);
    name = "st-out-" + id;
    node_if = "n" + id;
    outside_if = "o" + id;
    node_ip = prefix + ".1";
    outside_ip = prefix + ".2";
    RunResult r = Ip({"netns", "add", name});
    if (r.exit_code != 0) return "ip netns add " + name + ": " + r.err;
    made_ = true;
    for (auto args : std::vector<std::vector<std::string>>{
             {"-n", NetnsName(), "link", "add", node_if, "type", "veth", "peer", "name", outside_if, "netns", name},
             {"-n", NetnsName(), "addr", "add", node_ip + "/24", "dev", node_if},
             {"-n", NetnsName(), "link", "set", node_if, "up"},
             {"-n", name, "addr", "add", outside_ip + "/24", "dev", outside_if},
             {"-n", name, "link", "set", outside_if, "up"},
             {"-n", name, "link", "set", "lo", "up"}}) {
      r = Ip(args);
      if (r.exit_code != 0) return "ip " + args[2] + " " + args[3] + ": " + r.err;
    }
    return "";
  }
  // An HTTP GET from the outside; the body, "" when nothing answered within 3 s.
  std::string Get(const std::string& url) const {
    auto r = Run({"/bin/ip", "netns", "exec", name, "/usr/bin/curl", "-s", "--max-time", "3", url}, "", {}, 30);
    return r.exit_code == 0 ? r.out : "";
  }
  // Whether the node answers `ip` on its end (the /32 a floating address puts there).
  bool NodeHas(const std::string& ip) const {
    return Ip({"-n", NetnsName(), "-4", "addr", "show", "dev", node_if}).out.find(ip + "/32") != std::string::npos;
  }
  static RunResult Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "/bin/ip");
    return Run(args, "", {}, 30);
  }

  std::string name, node_if, outside_if, node_ip, outside_ip;

 private:
  bool made_ = false;
};

}  // namespace stratus::testing
