// Into the guest, on qemu:///system (TCG) inside the guests' network namespace: a KeyPair made by the server
// (`stratusctl create keypair`, private key saved once), an Instance naming it with a #! user-data script, and
// the guest's NoCloud seed: the guest takes its hostname from meta-data, the key from user-data and runs the
// script (its marker on the console); then `ssh -i KEY root@ADDRESS hostname` answers the instance's name, and
// so do `stratusctl ssh instance/NAME -- hostname` and an interactive `stratusctl ssh` in a pseudo-terminal;
// `stratusctl console` types into the guest's serial console while a read-only session watches. Then
// the instance verbs on the same guest: pause/resume (memory kept), suspend/resume (memory saved to disk and
// restored, not rebooted), a resize whose vCPU is added live and whose memory waits for a restart, which
// power-cycles it into its new size, a resize too large for the node refused, and a
// rebuild from another image that keeps the address and the data volume.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>

#include <atomic>
#include <functional>
#include <thread>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "e2e.h"

namespace stratus::testing {
namespace {

// Runs `argv` on a new pseudo-terminal (as a user's terminal would): writes each of `inputs` once the output so
// far contains its trigger, and returns everything read until the program exits (or `timeout_s`, then killed).
struct PtyStep {
  std::string wait_for;  // "" = at once
  std::string input;
};
// `on_output`, when given, sees the output so far after each read.
std::string RunInPty(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                     const std::vector<PtyStep>& steps, int timeout_s, int* exit_code,
                     const std::function<void(const std::string&)>& on_output = nullptr) {
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return "forkpty failed";
  if (pid == 0) {
    std::vector<char*> a, e;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
    for (char** p = environ; *p; ++p) e.push_back(*p);
    e.push_back(nullptr);
    execve(a[0], a.data(), e.data());
    _exit(127);
  }
  std::string out;
  size_t next = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    while (next < steps.size() && out.find(steps[next].wait_for) != std::string::npos) {
      (void)!write(master, steps[next].input.data(), steps[next].input.size());
      ++next;
    }
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      char buf[4096];
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        if (on_output) on_output(out);
      } else if (n <= 0 && waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
    } else if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  close(master);
  *exit_code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

using GuestAccessE2eTest = NetnsE2eTest;

TEST_F(GuestAccessE2eTest, KeyPairUserDataAndSsh) {
  if (stratus::testing::Run({"/usr/bin/ssh", "-V"}).exit_code != 0) GTEST_FAIL() << "ssh is missing: scripts/install-deps.sh installs openssh-client";
  ReservedPort agent_port = ReservePort();
  std::vector<std::string> flags = {"--agent=true", "--networking", "true", "--netns", NetnsName()};
  for (auto& f : AgentFlags(agent_port)) flags.push_back(f);
  fs::path data = dir_.path() / "data";
  ServerProcess server(data, flags);
  ASSERT_TRUE(server.Start()) << server.log();
  std::string name = "ssh-" + std::to_string(::getpid());
  domains_ = {"stratus_default_" + name};

  // The key pair: made by the server, the private key saved by stratusctl (HOME is the server's data dir/home).
  auto kp = server.Ctl({"create", "keypair", "laptop"});
  ASSERT_EQ(kp.exit_code, 0) << kp.err;
  fs::path key = data / "home" / ".stratus" / "keys" / "default" / "laptop";
  ASSERT_TRUE(fs::exists(key)) << kp.out;
  EXPECT_EQ(fs::status(key).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_NE(ReadFile(key).find("BEGIN OPENSSH PRIVATE KEY"), std::string::npos);
  EXPECT_NE(kp.out.find("fingerprint: SHA256:"), std::string::npos) << kp.out;
  // Made once: a second create refuses to overwrite the saved key.
  EXPECT_NE(server.Ctl({"create", "keypair", "laptop"}).exit_code, 0);

  std::string manifests = Manifests(name);
  manifests = manifests.substr(0, manifests.find("apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name));
  // The root disk from an image (two names for the guest's root filesystem, to rebuild from one to the other) and
  // a data volume (the guest writes a marker on it at first sight).
  for (const char* img : {"root-a", "root-b"}) {
    manifests += std::string("apiVersion: stratus.io/v1\nkind: Image\nmetadata: {name: ") + img +
                 "}\nspec: {type: disk, source: {url: file://" + GuestDir() + "/rootfs.qcow2}}\n---\n";
  }
  manifests +=
      "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: data}\nspec: {size: 16Mi, format: qcow2}\n---\n"
      "apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: lan}\nspec: {cidr: 10.78.0.0/24}\n---\n"
      "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name + "}\nspec:\n"
      "  instanceType: m1.small\n  image: root-a\n  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n"
      "  volumes: [{volume: data, device: vdb}]\n  networks: [{network: lan}]\n  keyName: laptop\n"
      "  userData: |\n    #!/bin/sh\n    echo \"USERDATA-RAN on $(hostname) as $(id -u)\"\n";
  auto a = server.Ctl({"apply", "-f", "-"}, manifests);
  ASSERT_EQ(a.exit_code, 0) << a.err << manifests;

  // The guest read its seed: hostname and key from it, and the script ran.
  std::string logs;
  ASSERT_TRUE(Eventually([&] {
    logs = server.Ctl({"logs", "instance/" + name}).out;
    return logs.find("USERDATA-RAN on " + name + " as 0") != std::string::npos &&
           logs.find("STRATUS-SSH port=22") != std::string::npos;
  }, 240)) << "console:\n" << logs << "\n" << server.log();
  EXPECT_NE(logs.find("STRATUS-SEED hostname=" + name + " keys=1 script=yes"), std::string::npos) << logs;
  std::string ip;
  ASSERT_TRUE(Eventually([&] {
    json inst = server.Http("GET", std::string(kNs) + "/instances/" + name).Json();
    const json addrs = inst["status"].value("addresses", json::array());
    if (addrs.empty() || !addrs[0].value("leased", false)) return false;
    ip = addrs[0].value("ip", "");
    return true;
  }, 120)) << server.Http("GET", std::string(kNs) + "/instances/" + name).body << "\nconsole:\n"
           << server.Ctl({"logs", "instance/" + name}).out;

  // ssh -i with the saved key, from inside the guests' namespace.
  std::vector<std::string> ssh = {"/bin/ip", "netns", "exec", NetnsName(), "/usr/bin/ssh", "-i", key.string(),
                                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                  "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "root@" + ip, "hostname"};
  RunResult r;
  ASSERT_TRUE(Eventually([&] {
    r = stratus::testing::Run(ssh, "", {"HOME=" + (data / "home").string()}, 60);
    return r.exit_code == 0;
  }, 60)) << r.err;
  EXPECT_EQ(r.out, name + "\n");
  // Without the key: refused (the guest takes keys only).
  std::vector<std::string> no_key = ssh;
  no_key.erase(no_key.begin() + 5, no_key.begin() + 7);
  EXPECT_NE(stratus::testing::Run(no_key, "", {"HOME=" + (data / "home").string()}, 60).exit_code, 0);

  // stratusctl ssh: the address from status, the saved key by keyName; ssh runs in the namespace via the wrapper.
  std::vector<std::string> ctl = {StratusctlBin(), "--server", server.url(), "ssh", "instance/" + name};
  std::vector<std::string> env = {"STRATUS_TOKEN=" + server.token(), "HOME=" + (data / "home").string(),
                                  "STRATUS_CONFIG=", "STRATUS_SSH_COMMAND=/bin/ip netns exec " + NetnsName() + " /usr/bin/ssh"};
  std::vector<std::string> one = ctl;
  one.insert(one.end(), {"--", "cat", "/proc/sys/kernel/hostname"});
  r = stratus::testing::Run(one, "", env, 60);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, name + "\n");
  EXPECT_TRUE(fs::exists(data / "home" / ".stratus" / "keys" / "known_hosts"));  // the host key, by instance uid

  // Interactively, in a terminal: a shell prompt, a command, exit.
  int code = -1;
  std::string session = RunInPty(ctl, env,
                                 {{"", "echo INTERACTIVE-$((6*7)) on $(hostname)\n"},
                                  {"INTERACTIVE-42 on " + name, "exit\n"}},
                                 90, &code);
  EXPECT_NE(session.find("INTERACTIVE-42 on " + name), std::string::npos) << session;
  EXPECT_EQ(code, 0) << session;

  // The serial console, both ways, in terminals: a read-only watcher attaches first (its typing is refused), then
  // a writer types a command into the guest's console shell; both see its answer; Ctrl-] leaves.
  std::vector<std::string> con = {StratusctlBin(), "--server", server.url(), "console", "instance/" + name};
  std::vector<std::string> watch_argv = con;
  watch_argv.push_back("--read-only");
  std::atomic<bool> watching{false};
  int watch_code = -1;
  std::string watched;
  std::thread watcher([&] {
    watched = RunInPty(watch_argv, env, {{"escape character", "x"}, {"CONSOLE-42", "\x1d"}}, 120, &watch_code,
                       [&](const std::string& out) {
                         if (out.find("input is not sent") != std::string::npos) watching = true;
                       });
  });
  bool attached = Eventually([&] { return watching.load(); }, 60);
  std::string typed;
  if (attached) {
    typed = RunInPty(con, env, {{"escape character", "\r"}, {"escape character", "echo CONSOLE-$((6*7))\r"},
                                {"CONSOLE-42", "\x1d"}}, 90, &code);
  }
  watcher.join();
  ASSERT_TRUE(attached) << watched;
  EXPECT_EQ(code, 0) << typed;
  EXPECT_NE(typed.find("CONSOLE-42"), std::string::npos) << typed;
  EXPECT_EQ(typed.find("(read-only)"), std::string::npos) << typed;
  EXPECT_NE(typed.find("Disconnected from instance/" + name), std::string::npos) << typed;
  EXPECT_EQ(watch_code, 0) << watched;
  EXPECT_NE(watched.find("(read-only)"), std::string::npos) << watched;
  EXPECT_NE(watched.find("CONSOLE-42"), std::string::npos) << watched;
  // The console log (virtlogd writes the pty's output to it) has it too.
  EXPECT_NE(server.Ctl({"logs", "instance/" + name}).out.find("CONSOLE-42"), std::string::npos);
  // A writer killed (no detach sent) does not keep the console: its dead stream is noticed by the keepalive and a
  // new session becomes the writer.
  int killed_code = 0;
  RunInPty(con, env, {}, 5, &killed_code);  // SIGKILLed after 5 s
  EXPECT_EQ(killed_code, -1);
  std::string again;
  EXPECT_TRUE(Eventually([&] {
    int c = -1;
    again = RunInPty(con, env, {{"escape character", "\x1d"}}, 20, &c);
    return c == 0 && again.find("escape character") != std::string::npos && again.find("(read-only)") == std::string::npos;
  }, 90)) << again;

  // The instance verbs, on the same guest. A helper: one command over ssh (fails fast while the guest is away).
  auto remote = [&](const std::string& cmd) {
    std::vector<std::string> argv = ssh;
    argv.back() = cmd;
    argv.insert(argv.end() - 2, {"-o", "ConnectTimeout=4"});
    return stratus::testing::Run(argv, "", {"HOME=" + (data / "home").string()}, 30);
  };
  auto phase_is = [&](const std::string& want) {
    return Eventually([&] {
      json inst = server.Http("GET", std::string(kNs) + "/instances/" + name).Json();
      return inst["status"].value("phase", "") == want;
    }, 120);
  };
  const std::string dom = "stratus_default_" + name;
  auto domstate = [&] { return Virsh({"domstate", dom}).out; };
  // pause: the vCPUs stop (ssh cannot get through), memory is kept; resume: it answers again.
  ASSERT_EQ(remote("echo kept > /tmp/mark").exit_code, 0);
  ASSERT_EQ(server.Ctl({"pause", "instance/" + name}).exit_code, 0);
  ASSERT_TRUE(phase_is("Paused")) << server.Ctl({"describe", "instance/" + name}).out << server.log();
  EXPECT_NE(domstate().find("paused"), std::string::npos) << domstate();
  EXPECT_NE(remote("true").exit_code, 0);
  ASSERT_EQ(server.Ctl({"resume", "instance/" + name}).exit_code, 0);
  ASSERT_TRUE(phase_is("Running"));
  ASSERT_TRUE(Eventually([&] { return remote("cat /tmp/mark").out == "kept\n"; }, 60));
  // suspend: the memory goes to the node's disk and the domain stops; resume restores it (no reboot: the file in
  // the guest's RAM is still there).
  ASSERT_EQ(server.Ctl({"suspend", "instance/" + name}).exit_code, 0);
  ASSERT_TRUE(phase_is("Suspended")) << server.Ctl({"describe", "instance/" + name}).out;
  EXPECT_NE(domstate().find("shut off"), std::string::npos) << domstate();
  EXPECT_NE(Virsh({"dominfo", dom}).out.find("Managed save:   yes"), std::string::npos) << Virsh({"dominfo", dom}).out;
  ASSERT_EQ(server.Ctl({"resume", "instance/" + name}).exit_code, 0);
  ASSERT_TRUE(phase_is("Running"));
  RunResult mark;
  ASSERT_TRUE(Eventually([&] { return (mark = remote("cat /tmp/mark")).out == "kept\n"; }, 90)) << mark.err;
  // resize: vCPUs are added to the running guest; the rest of the new type waits for a restart (RestartRequired says
  // so), which power-cycles it into the new size.
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.wide}\n"
                                              "spec: {vcpus: 2, memoryMiB: 320}\n").exit_code, 0);
  // A type larger than the node has room for is refused at once, naming the field and the node's reason.
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.huge}\n"
                                              "spec: {vcpus: 64, memoryMiB: 256}\n").exit_code, 0);
  RunResult huge = server.Ctl({"resize", "instance/" + name, "m1.huge"});
  EXPECT_NE(huge.exit_code, 0);
  EXPECT_NE(huge.err.find("spec.instanceType: the new size does not fit node"), std::string::npos) << huge.out << huge.err;
  EXPECT_NE(huge.err.find("[CoreFilter]"), std::string::npos) << huge.err;
  EXPECT_EQ(server.Http("GET", std::string(kNs) + "/instances/" + name).Json()["spec"].value("instanceType", ""),
            "m1.small") << "nothing half-done";
  ASSERT_EQ(server.Ctl({"resize", "instance/" + name, "m1.wide"}).exit_code, 0);
  std::string pending;
  ASSERT_TRUE(Eventually([&] {
    json inst = server.Http("GET", std::string(kNs) + "/instances/" + name).Json();
    for (const auto& c : inst["status"].value("conditions", json::array())) {
      if (c.value("type", "") == "RestartRequired" && c.value("status", "") == "True") pending = c.value("message", "");
    }
    return !pending.empty();
  }, 60));
  // The vCPU was added live (up to the node's CPUs; the guest onlines it), the memory waits for the restart.
  EXPECT_EQ(pending, "runs with 2 vCPU and 256 MiB; 2 vCPU and 320 MiB apply when it is restarted (stratusctl restart)");
  RunResult cpus;
  ASSERT_TRUE(Eventually([&] { return (cpus = remote("grep -c ^processor /proc/cpuinfo")).out == "2\n"; }, 60))
      << cpus.out << cpus.err << server.Ctl({"describe", "instance/" + name}).out;
  std::string mem_before = remote("grep MemTotal /proc/meminfo").out;
  ASSERT_EQ(server.Ctl({"restart", "instance/" + name}).exit_code, 0);
  RunResult mem;
  ASSERT_TRUE(Eventually([&] {
    mem = remote("grep MemTotal /proc/meminfo");
    return mem.exit_code == 0 && !mem.out.empty() && mem.out != mem_before;
  }, 120)) << mem.out << mem.err;
  EXPECT_GT(std::stol(mem.out.substr(mem.out.find_first_of("0123456789"))),
            std::stol(mem_before.substr(mem_before.find_first_of("0123456789"))));
  EXPECT_EQ(remote("grep -c ^processor /proc/cpuinfo").out, "2\n");
  json after = server.Http("GET", std::string(kNs) + "/instances/" + name).Json();
  for (const auto& c : after["status"].value("conditions", json::array())) {
    EXPECT_NE(c.value("type", ""), "RestartRequired") << c.dump();
  }

  // rebuild: a new spec.image alone is refused, naming rebuildPolicy; with rebuildPolicy Recreate the root volume is
  // made again from it (the boot count on the root disk starts over), while the address, the data volume (its
  // marker) and the key stay.
  std::string marker_cmd = "dd if=/dev/vdb bs=512 count=1 2>/dev/null | tr -d '\\000' | head -n1";
  std::string data_marker = remote(marker_cmd).out;
  EXPECT_EQ(data_marker.rfind("STRATUS-VOL ", 0), 0u) << data_marker;
  EXPECT_EQ(remote("cat /mnt/root/var/boot-count").out, "2\n");  // first boot, then the resize's power cycle
  auto patch = server.Http("PATCH", std::string(kNs) + "/instances/" + name, R"({"spec":{"image":"root-b"}})",
                           "application/merge-patch+json");
  EXPECT_EQ(patch.code, 422) << patch.body;
  EXPECT_NE(patch.body.find("spec.image: may only change with spec.rebuildPolicy: Recreate"), std::string::npos)
      << patch.body;
  patch = server.Http("PATCH", std::string(kNs) + "/instances/" + name,
                      R"({"spec":{"image":"root-b","rebuildPolicy":"Recreate"}})", "application/merge-patch+json");
  ASSERT_EQ(patch.code, 200) << patch.body;
  RunResult boots;
  ASSERT_TRUE(Eventually([&] { return (boots = remote("cat /mnt/root/var/boot-count")).out == "1\n"; }, 180))
      << boots.out << boots.err << server.Ctl({"describe", "instance/" + name}).out << server.log();
  EXPECT_EQ(remote(marker_cmd).out, data_marker);
  json rebuilt = server.Http("GET", std::string(kNs) + "/instances/" + name).Json();
  EXPECT_EQ(rebuilt["status"]["addresses"][0].value("ip", ""), ip);
  json root_vol = server.Http("GET", std::string(kNs) + "/volumes/" + name + "-root").Json();
  EXPECT_EQ(root_vol["spec"]["source"].value("image", ""), "root-b");

  // Gone with the instance: the domain and its seed; the network's bridge, dnsmasq and rules with the network.
  fs::path seed = data / "agent" / "instances" / ("default_" + name) / "seed.iso";
  EXPECT_TRUE(fs::exists(seed));
  EXPECT_EQ(server.Ctl({"delete", "instance", name, "--wait", "--timeout", "120s"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(seed));
  EXPECT_EQ(DomainCount("stratus_default_" + name), 0);
  EXPECT_EQ(server.Ctl({"delete", "network", "lan", "--wait", "--timeout", "120s"}).exit_code, 0);
}

}  // namespace
}  // namespace stratus::testing
