// Two real compute hosts on this machine (scripts/hosts-up.sh: a libvirtd and virtlogd each in network and mount
// namespaces of their own, joined by an underlay bridge), each with its own `stratusd agent` joined to one API
// server, networking in its host's namespace with the underlay device "ul": an anti-affinity InstanceGroup puts
// its two TCG guests on different hosts (each host's libvirtd runs exactly its own one); they share one Network,
// which spans both hosts as a VXLAN segment: each leases its address from its own host's dnsmasq, they reach each
// other, and a security group between them closes and reopens a port live (group-to-group across hosts). Then the
// second host dies (agent, guests and libvirtd killed): it goes NotReady, its Evacuate guest is rebuilt on the
// first host while its Manual one waits saying why, and when the host comes back its old domain of the evacuated
// guest is fenced (removed, never started) and the Manual guest runs there again.
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "e2e.h"

namespace stratus::testing {
namespace {

using MultiHostE2eTest = E2eTest;

struct Host {
  std::string name, uri, netns, underlay;
};

// The last STRATUS-PROBE state for `target` in a guest's console ("open STRATUS-PEER x", "closed"), "" before any.
std::string LastProbe(const std::string& log, const std::string& target) {
  std::string prefix = "STRATUS-PROBE " + target + " ", last;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto at = line.find(prefix);
    if (at != std::string::npos) last = line.substr(at + prefix.size());
  }
  return last;
}

std::string Guest(const std::string& name, const std::string& ip, const std::string& group, const std::string& probe) {
  return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name + "}\nspec:\n"
         "  instanceType: m1.small\n  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n"
         "  kernelArgs: \"stratus.hostname=" + name + " stratus.listen=8080 stratus.probe=" + probe + "\"\n"
         "  instanceGroup: spread\n  networks: [{network: span, ip: " + ip + "}]\n  securityGroups: [" + group + "]\n";
}

std::string SecurityGroup(const std::string& name, const std::string& ingress) {
  return "apiVersion: stratus.io/v1\nkind: SecurityGroup\nmetadata: {name: " + name + "}\nspec:\n  ingress:\n" + ingress;
}

TEST_F(MultiHostE2eTest, SpreadGuestsShareANetworkAcrossHosts) {
  const std::string prefix = "mh" + std::to_string(::getpid() % 100000);
  const std::string up = (fs::path(SourceDir()) / "scripts" / "hosts-up.sh").string();
  const std::string down = (fs::path(SourceDir()) / "scripts" / "hosts-down.sh").string();
  RunResult r = stratus::testing::Run({"/bin/bash", up, "2", prefix}, "", {}, 120);
  struct Down {
    std::string script, prefix;
    ~Down() { stratus::testing::Run({"/bin/bash", script, prefix}, "", {}, 120); }
  } cleanup{down, prefix};
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<Host> hosts;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    Host h;
    f >> h.name >> h.uri >> h.netns >> h.underlay;
    if (!h.uri.empty()) hosts.push_back(h);
  }
  ASSERT_EQ(hosts.size(), 2u) << r.out;

  // Quick heartbeats and a short grace, so that losing a host is noticed in seconds.
  ServerProcess server(dir_.path() / "data", {"--node-grace-seconds", "10", "--evacuation-grace-seconds", "5"});
  ASSERT_TRUE(server.Start()) << server.log();
  std::vector<ReservedPort> ports;
  std::vector<pid_t> agents;
  std::vector<std::string> logs;
  auto start_agent = [&](size_t i) {
    std::vector<std::string> a = {StratusdBin(), "agent", "--server", server.url(), "--data-dir",
                                  (dir_.path() / ("agent-" + hosts[i].name)).string(), "--bootstrap-token-file",
                                  server.bootstrap_token_file(), "--node", hosts[i].name, "--libvirt-uri", hosts[i].uri,
                                  "--agent-listen", ports[i].hostport(), "--reserved-memory-mib", "0",
                                  "--virt-type", "qemu", "--networking", "true", "--netns", hosts[i].netns,
                                  "--underlay-interface", "ul", "--heartbeat-seconds", "2"};
    logs.push_back((dir_.path() / (hosts[i].name + "-" + std::to_string(logs.size()) + ".log")).string());
    return SpawnLogged(a, logs.back());
  };
  for (size_t i = 0; i < hosts.size(); ++i) ports.push_back(ReservePort());
  for (size_t i = 0; i < hosts.size(); ++i) agents.push_back(start_agent(i));
  struct Stop {
    std::vector<pid_t>* pids;
    ~Stop() {
      for (pid_t p : *pids) {
        ::kill(p, SIGTERM);
        ::waitpid(p, nullptr, 0);
      }
    }
  } stop_agents{&agents};
  auto agent_logs = [&] {
    std::string all;
    for (const auto& l : logs) all += "--- " + l + "\n" + ReadFile(l);
    return all;
  };
  ASSERT_TRUE(Eventually([&] {
    json nodes = server.Http("GET", "/apis/stratus.io/v1/nodes").Json();
    int ready = 0;
    for (const auto& n : nodes.value("items", json::array())) {
      for (const auto& c : n.value("status", json::object()).value("conditions", json::array())) {
        ready += c.value("type", "") == "Ready" && c.value("status", "") == "True";
      }
    }
    return ready == 2;
  }, 90)) << server.Http("GET", "/apis/stratus.io/v1/nodes").body << agent_logs();

  // Both nodes report their underlay address (the other floods to it).
  ASSERT_TRUE(Eventually([&] {
    json nodes = server.Http("GET", "/apis/stratus.io/v1/nodes").Json();
    int with = 0;
    for (const auto& n : nodes.value("items", json::array())) {
      with += !n.value("status", json::object()).value("underlay", json::object()).value("address", "").empty();
    }
    return with == 2;
  }, 60)) << server.Http("GET", "/apis/stratus.io/v1/nodes").body << agent_logs();

  // "The outside": a web server on the underlay switch (10.250.0.1, the hosts' default route).
  const std::string outside = "10.250.0.1:8080";
  const std::string server_py =
      "import http.server\n"
      "class H(http.server.BaseHTTPRequestHandler):\n"
      "    def do_GET(self):\n"
      "        b = b'STRATUS-PEER outside\\n'\n"
      "        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers()\n"
      "        self.wfile.write(b)\n"
      "    def log_message(self, *a): pass\n"
      "http.server.ThreadingHTTPServer(('10.250.0.1', 8080), H).serve_forever()\n";
  pid_t web = SpawnLogged({"/bin/ip", "netns", "exec", prefix + "-ul", "/usr/bin/python3", "-c", server_py},
                          (dir_.path() / "outside.log").string());
  struct StopWeb {
    pid_t pid;
    ~StopWeb() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } stop_web{web};

  // One network for both; A is in group web (8080 from the network), B in clients; each probes the other.
  const std::string a_ip = "10.79.0.11", b_ip = "10.79.0.12", m_ip = "10.79.0.13";
  std::string base = Manifests("x").substr(0, Manifests("x").find("---\napiVersion: stratus.io/v1\nkind: Instance\n"));
  std::string yaml = base +
                     "---\napiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: span}\n"
                     "spec: {cidr: 10.79.0.0/24, mode: nat}\n---\n"
                     "apiVersion: stratus.io/v1\nkind: InstanceGroup\nmetadata: {name: spread}\nspec: {policy: anti-affinity}\n---\n" +
                     SecurityGroup("web", "    - {protocol: tcp, fromPort: 8080, toPort: 8080, cidr: 10.79.0.0/24}\n") + "---\n" +
                     SecurityGroup("clients", "    - {protocol: tcp, fromPort: 8080, toPort: 8080, cidr: 10.79.0.0/24}\n") + "---\n" +
                     Guest("spread-a", a_ip, "web", b_ip + ":8080," + m_ip + ":8080," + outside) + "---\n" +
                     Guest("spread-b", b_ip, "clients", a_ip + ":8080," + m_ip + ":8080," + outside);
  auto a = server.Ctl({"apply", "-f", "-"}, yaml);
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  auto logs_of = [&](const std::string& inst) { return server.Ctl({"logs", "instance/" + inst}).out; };
  auto say = [](const std::string& what) { std::cout << "[ e2e ] " << what << std::endl; };
  auto dump = [&] {
    return "\n--- spread-a:\n" + logs_of("spread-a") + "\n--- spread-b:\n" + logs_of("spread-b") + "\n--- network:\n" +
           server.Http("GET", std::string(kNs) + "/networks/span").body + "\n" + agent_logs();
  };
  std::map<std::string, std::string> node_of;
  ASSERT_TRUE(Eventually([&] {
    for (const char* n : {"spread-a", "spread-b"}) {
      json inst = server.Http("GET", std::string(kNs) + "/instances/" + n).Json();
      if (inst.value("status", json::object()).value("phase", "") != "Running") return false;
      node_of[n] = inst.value("spec", json::object()).value("nodeName", "");
    }
    return true;
  }, 180)) << server.Ctl({"get", "instances", "-o", "wide"}).out << agent_logs();
  EXPECT_NE(node_of["spread-a"], node_of["spread-b"]) << "anti-affinity: one host each";
  // Each host's own libvirtd runs exactly the guest placed on it.
  for (const auto& h : hosts) {
    RunResult l = stratus::testing::Run({"/usr/bin/virsh", "-c", h.uri, "list", "--name"}, "", {}, 30);
    std::string want = node_of["spread-a"] == h.name ? "stratus_default_spread-a" : "stratus_default_spread-b";
    EXPECT_EQ(l.out, want + "\n\n") << h.name << ": " << l.out << l.err;
  }

  // 1. Each guest leases its address from its own host's dnsmasq (DHCP does not cross the segment), with the
  //    gateway on its own host as router.
  for (const auto& [inst, ip] : {std::pair<std::string, std::string>{"spread-a", a_ip}, {"spread-b", b_ip}}) {
    ASSERT_TRUE(Eventually([&] { return logs_of(inst).find("STRATUS-NET eth0 ip=" + ip + "/24 router=10.79.0.1") !=
                                        std::string::npos; }, 180, 500))
        << inst << " leased " << ip << dump();
    // DHCP option 26: what fits in an underlay frame (1500) after the VXLAN header.
    std::string log = logs_of(inst);
    auto at = log.find("STRATUS-NET eth0 ip=" + ip);
    EXPECT_NE(log.substr(at, log.find('\n', at) - at).find(" mtu=1450"), std::string::npos) << log.substr(at, 200);
  }
  // Both hosts' bridges joined VNI IPAM gave the network, flooding to the other host.
  json net = server.Http("GET", std::string(kNs) + "/networks/span").Json();
  json st = net.value("status", json::object());
  uint32_t vni = st.value("vni", 0u);
  EXPECT_GT(vni, 0u) << net.dump(2);
  for (const auto& h : hosts) {
    json entry = st.value("nodes", json::object()).value(h.name, json::object());
    EXPECT_EQ(entry.value("vxlan", json::object()).value("vni", 0u), vni) << h.name << " " << net.dump(2);
    std::string other = h.name == hosts[0].name ? hosts[1].underlay : hosts[0].underlay;
    EXPECT_EQ(entry.value("vxlan", json::object()).value("peers", json::array()), json::array({other})) << net.dump(2);
    EXPECT_EQ(entry.value("vxlan", json::object()).value("mtu", 0), 1450) << net.dump(2);
  }

  // 2. They reach each other across the hosts.
  const std::string to_a = a_ip + ":8080", to_b = b_ip + ":8080";
  EXPECT_TRUE(Eventually([&] { return LastProbe(logs_of("spread-b"), to_a) == "open STRATUS-PEER spread-a"; }, 90, 500))
      << "B reaches A across the hosts" << dump();
  EXPECT_TRUE(Eventually([&] { return LastProbe(logs_of("spread-a"), to_b) == "open STRATUS-PEER spread-b"; }, 90, 500))
      << "A reaches B across the hosts" << dump();

  // ... and the outside, each through its own host's masquerade (a nat network leaves from every host).
  for (const char* g : {"spread-a", "spread-b"}) {
    EXPECT_TRUE(Eventually([&] { return LastProbe(logs_of(g), outside) == "open STRATUS-PEER outside"; }, 60, 500))
        << g << " reaches the outside" << dump() << ReadFile((dir_.path() / "outside.log").string());
  }

  // 3. Group web stops allowing 8080: B's connections to A (from the other host) are dropped on A's host; A still
  //    reaches B.
  a = server.Ctl({"apply", "-f", "-"}, SecurityGroup("web", "    - {protocol: tcp, fromPort: 22, toPort: 22, cidr: 0.0.0.0/0}\n"));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_TRUE(Eventually([&] { return LastProbe(logs_of("spread-b"), to_a) == "closed"; }, 60, 500)) << dump();
  EXPECT_EQ(LastProbe(logs_of("spread-a"), to_b), "open STRATUS-PEER spread-b") << dump();

  // 4. Allowed again from the members of group clients (B, on the other host): open, live.
  a = server.Ctl({"apply", "-f", "-"}, SecurityGroup("web", "    - {protocol: tcp, fromPort: 8080, toPort: 8080, securityGroup: clients}\n"));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_TRUE(Eventually([&] { return LastProbe(logs_of("spread-b"), to_a) == "open STRATUS-PEER spread-a"; }, 60, 500))
      << dump();

  // 5. Live migration: guest "mig" (serving 8080, no groups) starts on spread-a's host, both spread guests probe it,
  //    and it moves to the other host while they keep probing.
  const std::string from = node_of["spread-a"], to = node_of["spread-b"];
  const std::string token = "mig" + std::to_string(::getpid());
  ASSERT_EQ(server.Ctl({"cordon", to}).exit_code, 0);
  a = server.Ctl({"apply", "-f", "-"},
                 "apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {name: migdata}\nspec: {size: 16Mi, format: qcow2}\n---\n"
                 "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: mig}\nspec:\n"
                 "  instanceType: m1.small\n  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n"
                 "  kernelArgs: \"stratus.hostname=mig stratus.listen=8080 stratus.volmarker=" + token + "\"\n"
                 "  networks: [{network: span, ip: " + m_ip + "}]\n  volumes: [{volume: migdata, device: vdb}]\n");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  auto on = [&](const std::string& n) {
    json i = server.Http("GET", std::string(kNs) + "/instances/" + n).Json();
    if (!i.is_object() || i.value("status", json::object()).value("phase", "") != "Running") return std::string();
    return i.value("spec", json::object()).value("nodeName", "");
  };
  ASSERT_TRUE(Eventually([&] { return on("mig") == from; }, 180)) << dump();
  ASSERT_EQ(server.Ctl({"uncordon", to}).exit_code, 0);
  const std::string to_m = m_ip + ":8080";
  // Its data volume (on this host's pool; the only disk, so the guest calls it vda) carries the marker it wrote at boot.
  ASSERT_TRUE(Eventually([&] { return logs_of("mig").find("STRATUS-VOLUME-WROTE vda " + token) != std::string::npos; },
                         60, 500)) << logs_of("mig");
  for (const char* g : {"spread-a", "spread-b"}) {
    ASSERT_TRUE(Eventually([&] { return LastProbe(logs_of(g), to_m) == "open STRATUS-PEER mig"; }, 120, 500))
        << g << " reaches mig" << dump();
  }
  // A target that does not exist: refused, and mig stays.
  auto bad = server.Ctl({"migrate", "instance/mig", "--to", "no-such-node", "--timeout", "60s"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("Failed: spec.targetNode: no node named no-such-node"), std::string::npos) << bad.out;
  // The move, watched from both peers: the longest time either saw mig unreachable.
  RunResult moved;
  std::atomic<bool> moving{true};
  std::thread mover([&] {
    moved = server.Ctl({"migrate", "instance/mig", "--to", to, "--timeout", "300s"});
    moving = false;
  });
  std::map<std::string, std::chrono::steady_clock::time_point> down_since;
  double longest = 0;
  while (moving) {
    auto now = std::chrono::steady_clock::now();
    for (const char* g : {"spread-a", "spread-b"}) {
      bool open = LastProbe(logs_of(g), to_m) == "open STRATUS-PEER mig";
      if (!open && !down_since.count(g)) down_since[g] = now;
      if (open && down_since.count(g)) {
        longest = std::max(longest, std::chrono::duration<double>(now - down_since[g]).count());
        down_since.erase(g);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  mover.join();
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err << agent_logs();
  EXPECT_NE(moved.out.find("Succeeded"), std::string::npos) << moved.out;
  EXPECT_EQ(on("mig"), to) << "bound to the target";
  for (const char* g : {"spread-a", "spread-b"}) {
    EXPECT_TRUE(Eventually([&] {
      bool open = LastProbe(logs_of(g), to_m) == "open STRATUS-PEER mig";
      if (open && down_since.count(g)) {
        longest = std::max(longest, std::chrono::duration<double>(std::chrono::steady_clock::now() - down_since[g]).count());
        down_since.erase(g);
      }
      return open;
    }, 60, 300)) << g << " still reaches mig after the move" << dump();
  }
  say("mig moved from " + from + " to " + to + "; its peers lost it for at most " + std::to_string(longest) + " s");
  EXPECT_LE(longest, 10.0) << "a probe across the migration loses no more than a few seconds";
  auto domains_on = [&](const std::string& node) {
    for (const auto& h : hosts) {
      if (h.name == node) return stratus::testing::Run({"/usr/bin/virsh", "-c", h.uri, "list", "--all", "--name"}, "", {}, 30).out;
    }
    return std::string();
  };
  EXPECT_EQ(domains_on(from).find("stratus_default_mig"), std::string::npos) << domains_on(from);
  EXPECT_NE(domains_on(to).find("stratus_default_mig"), std::string::npos) << domains_on(to);
  // Its volume moved with it: bound to the target, at a path in the target's pool; the source's copy goes.
  json migs = server.Http("GET", std::string(kNs) + "/migrations").Json();
  json moved_vol;
  for (const auto& m : migs.value("items", json::array())) {
    if (m.value("status", json::object()).value("phase", "") == "Succeeded") {
      for (const auto& v : m["status"].value("volumes", json::array())) moved_vol = v;
    }
  }
  ASSERT_TRUE(moved_vol.is_object()) << migs.dump(2);
  EXPECT_TRUE(Eventually([&] {
    json v = server.Http("GET", std::string(kNs) + "/volumes/migdata").Json();
    return v.is_object() && v["spec"].value("nodeName", "") == to &&
           v.value("status", json::object()).value("path", "") == moved_vol.value("targetPath", "") &&
           v["status"].value("phase", "") == "InUse";
  }, 60)) << server.Http("GET", std::string(kNs) + "/volumes/migdata").body;
  EXPECT_TRUE(fs::exists(moved_vol.value("targetPath", "")));
  EXPECT_TRUE(Eventually([&] { return !fs::exists(moved_vol.value("sourcePath", "")); }, 60))
      << "the source's copy is removed: " << moved_vol.dump();
  // Its data came along: restarted on the target, the guest finds the marker it wrote on the source.
  ASSERT_EQ(server.Ctl({"restart", "instance/mig"}).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return logs_of("mig").find("STRATUS-VOLUME-FOUND vda " + token) != std::string::npos; },
                         180, 500)) << logs_of("mig");
  for (const char* g : {"spread-a", "spread-b"}) {
    EXPECT_TRUE(Eventually([&] { return LastProbe(logs_of(g), to_m) == "open STRATUS-PEER mig"; }, 120, 500)) << g;
  }

  // 6. Drain: the spread guests go, and draining the host mig runs on moves it back, live; the host is empty.
  auto d = server.Ctl({"delete", "instances", "spread-a", "spread-b", "--wait", "--timeout", "120s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  auto dr = server.Ctl({"drain", to, "--timeout", "300s"});
  EXPECT_EQ(dr.exit_code, 0) << dr.out << dr.err << agent_logs();
  EXPECT_NE(dr.out.find("node/" + to + " drained"), std::string::npos) << dr.out;
  EXPECT_EQ(on("mig"), from);
  EXPECT_EQ(domains_on(to), "\n") << "drained: no domain left on " << to;
  ASSERT_EQ(server.Ctl({"uncordon", to}).exit_code, 0);
  say(to + " drained");

  d = server.Ctl({"delete", "instances", "--all", "--wait", "--timeout", "120s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;

  // Host failure. Two guests on the second host (the first cordoned meanwhile): one Evacuate, one Manual.
  const Host& keep = hosts[0];
  const Host& lose = hosts[1];
  ASSERT_EQ(server.Ctl({"cordon", keep.name}).exit_code, 0);
  auto boot_only = [&](const std::string& name, const std::string& policy) {
    return "apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: " + name + "}\nspec:\n"
           "  instanceType: m1.small\n  kernelImage: demo-kernel\n  ramdiskImage: demo-initrd\n"
           "  kernelArgs: stratus.marker=" + name + "\n  evacuationPolicy: " + policy + "\n";
  };
  a = server.Ctl({"apply", "-f", "-"}, boot_only("evac-e", "Evacuate") + "---\n" + boot_only("evac-m", "Manual"));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  auto inst_json = [&](const std::string& n) {
    json i = server.Http("GET", std::string(kNs) + "/instances/" + n).Json();
    return i.is_object() ? i : json::object();
  };
  auto running_on = [&](const std::string& n, const std::string& node) {
    json i = inst_json(n);
    return i.value("spec", json::object()).value("nodeName", "") == node &&
           i.value("status", json::object()).value("phase", "") == "Running";
  };
  ASSERT_TRUE(Eventually([&] { return running_on("evac-e", lose.name) && running_on("evac-m", lose.name); }, 180))
      << server.Ctl({"get", "instances", "-o", "wide"}).out << agent_logs();
  ASSERT_EQ(server.Ctl({"uncordon", keep.name}).exit_code, 0);
  say("evac-e and evac-m run on " + lose.name);

  // The second host dies: its agent, its guests and its libvirtd are killed (as a power cut would).
  ::kill(agents[1], SIGKILL);
  ::waitpid(agents[1], nullptr, 0);
  agents.erase(agents.begin() + 1);
  const fs::path state = fs::path(std::getenv("STRATUS_HOSTS_DIR") ? std::getenv("STRATUS_HOSTS_DIR") : "/run/stratus-hosts") / lose.name;
  std::vector<fs::path> pidfiles = {state / "libvirtd.pid"};
  for (const auto& e : fs::directory_iterator(state / "run" / "qemu")) {
    if (e.path().extension() == ".pid") pidfiles.push_back(e.path());
  }
  for (const auto& f : pidfiles) {
    pid_t pid = static_cast<pid_t>(std::atol(ReadFile(f.string()).c_str()));
    ASSERT_GT(pid, 1) << f;
    ::kill(pid, SIGKILL);
  }
  say(lose.name + " killed");
  // Lost: the node says so, the Manual guest waits saying why, the Evacuate one is rebuilt on the first host.
  EXPECT_TRUE(Eventually([&] {
    json n = server.Http("GET", "/apis/stratus.io/v1/nodes/" + lose.name).Json();
    for (const auto& c : n.value("status", json::object()).value("conditions", json::array())) {
      if (c.value("type", "") == "Ready") return c.value("status", "") == "Unknown";
    }
    return false;
  }, 60)) << server.Http("GET", "/apis/stratus.io/v1/nodes/" + lose.name).body;
  EXPECT_TRUE(Eventually([&] {
    json i = inst_json("evac-m");
    for (const auto& c : i.value("status", json::object()).value("conditions", json::array())) {
      if (c.value("type", "") == "Ready") {
        return c.value("status", "") == "Unknown" && c.value("reason", "") == "NodeNotReady" &&
               c.value("message", "").find("evacuationPolicy is Manual") != std::string::npos;
      }
    }
    return false;
  }, 60)) << inst_json("evac-m").dump(2);
  EXPECT_EQ(inst_json("evac-m").value("spec", json::object()).value("nodeName", ""), lose.name)
      << "Manual: it stays where it was";
  say("evac-m waits, saying why");
  ASSERT_TRUE(Eventually([&] { return running_on("evac-e", keep.name); }, 180))
      << inst_json("evac-e").dump(2) << agent_logs() << server.log();
  EXPECT_TRUE(Eventually([&] {
    return server.Ctl({"logs", "instance/evac-e"}).out.find("STRATUS-MARKER evac-e") != std::string::npos;
  }, 120)) << server.Ctl({"logs", "instance/evac-e"}).out;
  say("evac-e runs on " + keep.name);
  json ee = inst_json("evac-e");
  std::string evacuated;
  if (ee.contains("status") && ee["status"].is_object() && ee["status"].contains("conditions")) {
    for (const auto& c : ee["status"]["conditions"]) {
      if (c.is_object() && c.value("type", "") == "Evacuated") evacuated = c.value("reason", "");
    }
  }
  EXPECT_EQ(evacuated, "NodeLost") << ee.dump(2);

  // The host comes back (libvirtd restarted, the agent too): its old evac-e domain is fenced (removed, never
  // started), and the Manual guest runs there again.
  r = stratus::testing::Run({"/bin/bash", up, "2", prefix}, "", {}, 120);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  agents.push_back(start_agent(1));
  say(lose.name + " is back");
  EXPECT_TRUE(Eventually([&] { return running_on("evac-m", lose.name); }, 180))
      << inst_json("evac-m").dump(2) << agent_logs();
  EXPECT_TRUE(Eventually([&] {
    RunResult l = stratus::testing::Run({"/usr/bin/virsh", "-c", lose.uri, "list", "--all", "--name"}, "", {}, 30);
    return l.exit_code == 0 && l.out.find("stratus_default_evac-e") == std::string::npos &&
           l.out.find("stratus_default_evac-m") != std::string::npos;
  }, 60)) << stratus::testing::Run({"/usr/bin/virsh", "-c", lose.uri, "list", "--all"}, "", {}, 30).out << agent_logs();
  EXPECT_TRUE(running_on("evac-e", keep.name)) << "still on the first host only";
  d = server.Ctl({"delete", "instances", "--all", "--wait", "--timeout", "120s"});
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
}

}  // namespace
}  // namespace stratus::testing
