// NetDev on Linux: links and addresses over rtnetlink (libnl-route-3), dnsmasq as a daemon tracked by its pid
// file, nftables through libnftables, sysctls through /proc/sys. Each call opens its own netlink socket, so it
// acts in the network namespace of the calling thread.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/link/vxlan.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "stratus/core/files.h"
#include "stratus/core/exec.h"
#include "stratus/host/netdev.h"

namespace stratus::host {

namespace {

namespace fs = std::filesystem;

// ---- netlink plumbing ----

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;
using AddrPtr = std::unique_ptr<rtnl_addr, AddrDeleter>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrDeleter>;
using CachePtr = std::unique_ptr<nl_cache, CacheDeleter>;

Status NlError(const std::string& what, int err) {
  Code code = Code::kInternal;
  if (err == -NLE_PERM) code = Code::kForbidden;
  if (err == -NLE_EXIST) code = Code::kAlreadyExists;
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) code = Code::kNotFound;
  return Status(code, what + ": " + nl_geterror(err));
}

StatusOr<Sock> Connect() {
  Sock s(nl_socket_alloc());
  if (!s) return Internal("netlink: cannot allocate a socket");
  int err = nl_connect(s.get(), NETLINK_ROUTE);
  if (err < 0) return NlError("netlink: connect", err);
  return s;
}

bool IsNotFound(int err) { return err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV; }

// The kernel's view of link `name`; a null pointer (and Ok) when absent.
StatusOr<LinkPtr> GetLink(nl_sock* sk, const std::string& name) {
  rtnl_link* l = nullptr;
  int err = rtnl_link_get_kernel(sk, 0, name.c_str(), &l);
  if (IsNotFound(err)) return LinkPtr();
  if (err < 0) return NlError("netlink: get link " + name, err);
  return LinkPtr(l);
}

StatusOr<LinkPtr> MustGetLink(nl_sock* sk, const std::string& name) {
  auto l = GetLink(sk, name);
  if (!l.ok()) return l.status();
  if (!*l) return NotFound("link " + name + " does not exist");
  return l;
}

struct ParsedAddr {
  uint32_t ip_be = 0;
  int prefix = 0;
};

StatusOr<ParsedAddr> ParseCidrAddr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return InvalidError("'" + s + "' is not address/prefix");
  in_addr a{};
  if (inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1) return InvalidError("'" + s + "' is not IPv4");
  std::string p = s.substr(slash + 1);
  if (p.empty() || p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidError("'" + s + "' has a bad prefix");
  }
  int prefix = std::stoi(p);
  if (prefix < 1 || prefix > 32) return InvalidError("'" + s + "' has a bad prefix");
  return ParsedAddr{a.s_addr, prefix};
}

// rtnl_addr for `cidr_addr` on link `ifindex`, with broadcast for prefixes up to /30.
StatusOr<AddrPtr> BuildAddr(int ifindex, const std::string& cidr_addr) {
  auto p = ParseCidrAddr(cidr_addr);
  if (!p.ok()) return p.status();
  AddrPtr a(rtnl_addr_alloc());
  if (!a) return Internal("netlink: cannot allocate an address");
  rtnl_addr_set_ifindex(a.get(), ifindex);
  rtnl_addr_set_family(a.get(), AF_INET);
  NlAddrPtr local(nl_addr_build(AF_INET, &p->ip_be, 4));
  if (!local) return Internal("netlink: cannot build an address");
  nl_addr_set_prefixlen(local.get(), p->prefix);
  int err = rtnl_addr_set_local(a.get(), local.get());
  if (err < 0) return NlError("netlink: address " + cidr_addr, err);
  rtnl_addr_set_prefixlen(a.get(), p->prefix);
  if (p->prefix <= 30) {
    uint32_t host_mask = p->prefix == 32 ? 0 : (~uint32_t{0} >> p->prefix);
    uint32_t bcast = htonl(ntohl(p->ip_be) | host_mask);
    NlAddrPtr b(nl_addr_build(AF_INET, &bcast, 4));
    if (b) rtnl_addr_set_broadcast(a.get(), b.get());
  }
  return a;
}

std::vector<std::string> Ipv4Of(nl_sock* sk, int ifindex) {
  std::vector<std::string> out;
  nl_cache* raw = nullptr;
  if (rtnl_addr_alloc_cache(sk, &raw) < 0) return out;
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local || nl_addr_get_len(local) != 4) continue;
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, nl_addr_get_binary_addr(local), buf, sizeof(buf));
    out.push_back(std::string(buf) + "/" + std::to_string(rtnl_addr_get_prefixlen(a)));
  }
  return out;
}

// ---- files and processes ----

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(s.size() - n); }

int ReadPid(const std::string& pid_file) {
  std::string s = ReadAll(pid_file);
  try {
    long v = std::stol(s);
    return v > 1 && v < (1L << 22) ? static_cast<int>(v) : 0;
  } catch (...) {
    return 0;
  }
}

// True when `pid` is alive (not a zombie) and is a dnsmasq started with `--conf-file=<conf>`.
bool IsOurDnsmasq(int pid, const std::string& conf) {
  if (pid <= 1) return false;
  std::string stat = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  auto rp = stat.rfind(')');
  if (stat.empty() || rp == std::string::npos || rp + 2 >= stat.size()) return false;
  char state = stat[rp + 2];
  if (state == 'Z' || state == 'X') return false;
  std::string cmdline = ReadAll("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  std::string cur;
  for (char c : cmdline) {
    if (c == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) args.push_back(cur);
  if (args.empty() || fs::path(args[0]).filename().string().find("dnsmasq") == std::string::npos) return false;
  for (const auto& a : args) {
    if (a == "--conf-file=" + conf) return true;
  }
  return false;
}

bool WaitGone(int pid, const std::string& conf, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!IsOurDnsmasq(pid, conf)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !IsOurDnsmasq(pid, conf);
}

Status WriteSysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  if (!f) return Internal("cannot open " + path + ": " + std::strerror(errno));
  f << value;
  f.close();
  if (!f) return Internal("cannot write " + path);
  return Status::Ok();
}

class LinuxNetDev : public NetDev {
 public:
  explicit LinuxNetDev(std::string dnsmasq) : dnsmasq_(std::move(dnsmasq)) {}

  StatusOr<LinkState> Link(const std::string& name) override {
    Status v = ValidateIfName(name, "link");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto l = GetLink(sk->get(), name);
    if (!l.ok()) return l.status();
    LinkState st;
    st.name = name;
    if (!*l) return st;
    rtnl_link* link = l->get();
    st.exists = true;
    const char* type = rtnl_link_get_type(link);
    st.is_bridge = type && std::string(type) == "bridge";
    st.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
    st.mtu = static_cast<int>(rtnl_link_get_mtu(link));
    if (const char* alias = rtnl_link_get_ifalias(link)) st.alias = alias;
    if (type) st.kind = type;
    if (st.kind == "vxlan") {
      uint32_t id = 0;
      if (rtnl_link_vxlan_get_id(link, &id) == 0) st.vxlan_id = id;
      nl_addr* local = nullptr;
      if (rtnl_link_vxlan_get_local(link, &local) == 0 && local) {
        NlAddrPtr owned(local);
        char buf[64] = {};
        if (nl_addr_get_family(local) == AF_INET && nl_addr_get_len(local) == 4 &&
            inet_ntop(AF_INET, nl_addr_get_binary_addr(local), buf, sizeof(buf))) {
          st.vxlan_local = buf;
        }
      }
    }
    int master = rtnl_link_get_master(link);
    if (master > 0) {
      char buf[IF_NAMESIZE] = {};
      if (if_indextoname(static_cast<unsigned>(master), buf)) st.master = buf;
    }
    st.ipv4 = Ipv4Of(sk->get(), rtnl_link_get_ifindex(link));
    return st;
  }

  StatusOr<std::vector<std::string>> ListBridges(const std::string& prefix) override {
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    nl_cache* raw = nullptr;
    int err = rtnl_link_alloc_cache(sk->get(), AF_UNSPEC, &raw);
    if (err < 0) return NlError("netlink: list links", err);
    CachePtr cache(raw);
    std::vector<std::string> out;
    for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
      auto* l = reinterpret_cast<rtnl_link*>(o);
      const char* type = rtnl_link_get_type(l);
      const char* name = rtnl_link_get_name(l);
      if (!type || !name || std::string(type) != "bridge") continue;
      if (std::string(name).rfind(prefix, 0) == 0) out.push_back(name);
    }
    return out;
  }

  Status CreateBridge(const std::string& name, int mtu) override {
    Status v = ValidateIfName(name, "bridge");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    LinkPtr l(rtnl_link_alloc());
    if (!l) return Internal("netlink: cannot allocate a link");
    int err = rtnl_link_set_type(l.get(), "bridge");
    if (err < 0) return NlError("netlink: bridge type", err);
    rtnl_link_set_name(l.get(), name.c_str());
    if (mtu > 0) rtnl_link_set_mtu(l.get(), static_cast<unsigned>(mtu));
    err = rtnl_link_add(sk->get(), l.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0) return NlError("netlink: create bridge " + name, err);
    spdlog::info("network: created bridge {} (mtu {})", name, mtu > 0 ? std::to_string(mtu) : "default");
    return Status::Ok();
  }

  Status SetAlias(const std::string& name, const std::string& alias) override {
    if (alias.size() > 255 || std::any_of(alias.begin(), alias.end(), [](char c) { return c == '\0' || c == '\n'; })) {
      return InvalidError("link alias must be one line of at most 255 bytes");
    }
    return Change(name, [&alias](rtnl_link* c) { rtnl_link_set_ifalias(c, alias.c_str()); }, "set alias");
  }

  Status SetMtu(const std::string& name, int mtu) override {
    if (mtu < 68 || mtu > 65535) return InvalidError("mtu " + std::to_string(mtu) + " is out of range");
    return Change(name, [mtu](rtnl_link* c) { rtnl_link_set_mtu(c, static_cast<unsigned>(mtu)); }, "set mtu");
  }

  Status SetUp(const std::string& name) override {
    return Change(name, [](rtnl_link* c) { rtnl_link_set_flags(c, IFF_UP); }, "set up");
  }

  Status AddAddress(const std::string& name, const std::string& cidr_addr) override {
    Status v = ValidateIfName(name, "link");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto l = MustGetLink(sk->get(), name);
    if (!l.ok()) return l.status();
    auto a = BuildAddr(rtnl_link_get_ifindex(l->get()), cidr_addr);
    if (!a.ok()) return a.status();
    int err = rtnl_addr_add(sk->get(), a->get(), 0);
    if (err == -NLE_EXIST) return Status::Ok();
    if (err < 0) return NlError("netlink: add " + cidr_addr + " to " + name, err);
    return Status::Ok();
  }

  Status DeleteAddress(const std::string& name, const std::string& cidr_addr) override {
    Status v = ValidateIfName(name, "link");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto l = GetLink(sk->get(), name);
    if (!l.ok()) return l.status();
    if (!*l) return Status::Ok();
    auto a = BuildAddr(rtnl_link_get_ifindex(l->get()), cidr_addr);
    if (!a.ok()) return a.status();
    int err = rtnl_addr_delete(sk->get(), a->get(), 0);
    if (err < 0 && err != -NLE_NOADDR && !IsNotFound(err)) {
      return NlError("netlink: delete " + cidr_addr + " from " + name, err);
    }
    return Status::Ok();
  }

  Status DeleteLink(const std::string& name) override {
    Status v = ValidateIfName(name, "link");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto l = GetLink(sk->get(), name);
    if (!l.ok()) return l.status();
    if (!*l) return Status::Ok();
    int err = rtnl_link_delete(sk->get(), l->get());
    if (err < 0 && !IsNotFound(err)) return NlError("netlink: delete link " + name, err);
    spdlog::info("network: deleted link {}", name);
    return Status::Ok();
  }

  Status SetMaster(const std::string& port, const std::string& bridge) override {
    Status v = ValidateIfName(port, "port");
    if (!v.ok()) return v;
    v = ValidateIfName(bridge, "bridge");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto p = MustGetLink(sk->get(), port);
    if (!p.ok()) return p.status();
    auto b = MustGetLink(sk->get(), bridge);
    if (!b.ok()) return b.status();
    int err = rtnl_link_enslave(sk->get(), b->get(), p->get());
    if (err < 0) return NlError("netlink: attach " + port + " to " + bridge, err);
    return SetUp(port);
  }

  Status EnsureVlan(const std::string& name, const std::string& parent, int vlan) override {
    Status v = ValidateIfName(name, "vlan link");
    if (!v.ok()) return v;
    v = ValidateIfName(parent, "vlan parent");
    if (!v.ok()) return v;
    if (vlan < 1 || vlan > 4094) return InvalidError("vlan id " + std::to_string(vlan) + " is out of range");
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto existing = GetLink(sk->get(), name);
    if (!existing.ok()) return existing.status();
    if (*existing) return Status::Ok();
    auto p = MustGetLink(sk->get(), parent);
    if (!p.ok()) return p.status();
    LinkPtr l(rtnl_link_vlan_alloc());
    if (!l) return Internal("netlink: cannot allocate a vlan link");
    rtnl_link_set_name(l.get(), name.c_str());
    rtnl_link_set_link(l.get(), rtnl_link_get_ifindex(p->get()));
    int err = rtnl_link_vlan_set_id(l.get(), vlan);
    if (err < 0) return NlError("netlink: vlan id", err);
    err = rtnl_link_add(sk->get(), l.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0) return NlError("netlink: create vlan link " + name, err);
    return Status::Ok();
  }

  Status CreateVxlan(const std::string& name, uint32_t vni, const std::string& local, const std::string& dev,
                     int mtu) override {
    Status v = ValidateIfName(name, "vxlan link");
    if (!v.ok()) return v;
    v = ValidateIfName(dev, "underlay device");
    if (!v.ok()) return v;
    if (vni < 1 || vni > 16777215) return InvalidError("vni " + std::to_string(vni) + " is out of range 1..16777215");
    in_addr a{};
    if (inet_pton(AF_INET, local.c_str(), &a) != 1) return InvalidError("vxlan local address '" + local + "' is not IPv4");
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto parent = MustGetLink(sk->get(), dev);
    if (!parent.ok()) return parent.status();
    LinkPtr l(rtnl_link_vxlan_alloc());
    if (!l) return Internal("netlink: cannot allocate a vxlan link");
    rtnl_link_set_name(l.get(), name.c_str());
    rtnl_link_set_link(l.get(), rtnl_link_get_ifindex(parent->get()));
    if (mtu > 0) rtnl_link_set_mtu(l.get(), static_cast<unsigned>(mtu));
    int err = rtnl_link_vxlan_set_id(l.get(), vni);
    if (err < 0) return NlError("netlink: vxlan id", err);
    NlAddrPtr addr(nl_addr_build(AF_INET, &a, sizeof(a)));
    if (!addr) return Internal("netlink: cannot build an address");
    err = rtnl_link_vxlan_set_local(l.get(), addr.get());
    if (err < 0) return NlError("netlink: vxlan local", err);
    err = rtnl_link_vxlan_set_port(l.get(), 4789);
    if (err < 0) return NlError("netlink: vxlan port", err);
    err = rtnl_link_vxlan_set_learning(l.get(), 1);
    if (err < 0) return NlError("netlink: vxlan learning", err);
    err = rtnl_link_add(sk->get(), l.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0) return NlError("netlink: create vxlan link " + name, err);
    spdlog::info("network: created vxlan {} vni {} local {} dev {}", name, vni, local, dev);
    return Status::Ok();
  }

  // The flood list through iproute2's `bridge` (argument vectors, JSON output): libnl has no helper for the
  // AF_BRIDGE neighbour entries of a VXLAN device.
  StatusOr<std::vector<std::string>> FloodPeers(const std::string& vxlan) override {
    Status v = ValidateIfName(vxlan, "vxlan link");
    if (!v.ok()) return v;
    auto out = ExecChecked({"bridge", "-j", "fdb", "show", "dev", vxlan}, 30);
    if (!out.ok()) return out.status();
    std::vector<std::string> peers;
    json entries = json::parse(*out, nullptr, false);
    if (!entries.is_array()) return Internal("bridge fdb show dev " + vxlan + ": unexpected output");
    for (const auto& e : entries) {
      if (!e.is_object() || e.value("mac", "") != "00:00:00:00:00:00") continue;
      std::string dst = e.value("dst", "");
      if (!dst.empty()) peers.push_back(dst);
    }
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    return peers;
  }

  Status AddFloodPeer(const std::string& vxlan, const std::string& remote) override {
    return FloodPeerChange("append", vxlan, remote);
  }
  Status DeleteFloodPeer(const std::string& vxlan, const std::string& remote) override {
    return FloodPeerChange("del", vxlan, remote);
  }

  StatusOr<DnsmasqState> Dnsmasq(const DnsmasqFiles& files) override {
    DnsmasqState st;
    st.pid = ReadPid(files.pid());
    st.running = IsOurDnsmasq(st.pid, files.conf());
    st.conf = ReadAll(files.conf());
    st.hosts = ReadAll(files.hosts());
    return st;
  }

  Status StartDnsmasq(const DnsmasqFiles& files, const std::string& conf, const std::string& hosts) override {
    if (files.dir.empty() || files.dir[0] != '/') return InvalidError("dnsmasq directory must be absolute");
    std::error_code ec;
    fs::create_directories(files.dir, ec);
    if (ec) return Internal("cannot create " + files.dir + ": " + ec.message());
    ::chmod(files.dir.c_str(), 0755);  // dnsmasq re-reads the hosts file after dropping privileges
    for (fs::path p = fs::path(files.dir).parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      struct stat st {};
      if (::stat(p.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH)) {
        spdlog::warn("network: {} is not searchable by other users: dnsmasq (after dropping privileges) cannot "
                     "re-read {} on reload; make it 0755 or run dnsmasq as root (DnsmasqOptions.user)",
                     p.string(), files.hosts());
        break;
      }
    }
    int old = ReadPid(files.pid());
    if (IsOurDnsmasq(old, files.conf())) return AlreadyRunning(old);
    Status s = WriteFileAtomic(files.conf(), conf, 0644);
    if (!s.ok()) return s;
    s = WriteFileAtomic(files.hosts(), hosts, 0644);
    if (!s.ok()) return s;
    fs::remove(files.pid(), ec);
    // dnsmasq daemonises: the process we start exits once the daemon is ready (non-zero on a startup error,
    // which it prints to stderr: that goes to the log file).
    std::string log = files.log();
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Internal("cannot open " + log + ": " + std::strerror(errno));
    size_t log_start = static_cast<size_t>(::lseek(fd, 0, SEEK_END));
    auto spawned = Spawn({dnsmasq_, "--conf-file=" + files.conf()}, fd, fd);
    ::close(fd);
    if (!spawned.ok()) return spawned.status();
    pid_t pid = *spawned;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    pid_t w = 0;
    while ((w = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto log_tail = [&] {
      std::string all = ReadAll(log);
      return Tail(all.size() > log_start ? all.substr(log_start) : all, 600);
    };
    if (w == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return Status(Code::kTimeout, "dnsmasq did not start within 15 s: " + log_tail());
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Internal("dnsmasq failed to start (exit " +
                      std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) +
                      "): " + log_tail());
    }
    // The daemon writes its pid file before its parent exits; allow a moment for slow filesystems.
    int dpid = 0;
    for (int i = 0; i < 100 && !(dpid = ReadPid(files.pid())); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!IsOurDnsmasq(dpid, files.conf())) {
      return Internal("dnsmasq exited right after starting: " + log_tail());
    }
    spdlog::info("network: started dnsmasq pid={} conf={}", dpid, files.conf());
    return Status::Ok();
  }

  Status ReloadDnsmasq(const DnsmasqFiles& files, const std::string& hosts) override {
    int pid = ReadPid(files.pid());
    if (!IsOurDnsmasq(pid, files.conf())) return NotFound("dnsmasq for " + files.conf() + " is not running");
    Status s = WriteFileAtomic(files.hosts(), hosts, 0644);
    if (!s.ok()) return s;
    if (::kill(pid, SIGHUP) != 0) return Internal("cannot signal dnsmasq " + std::to_string(pid) + ": " + std::strerror(errno));
    spdlog::debug("network: reloaded dnsmasq pid={}", pid);
    return Status::Ok();
  }

  Status StopDnsmasq(const DnsmasqFiles& files) override {
    int pid = ReadPid(files.pid());
    std::error_code ec;
    if (!IsOurDnsmasq(pid, files.conf())) {
      fs::remove(files.pid(), ec);
      return Status::Ok();
    }
    ::kill(pid, SIGTERM);
    if (!WaitGone(pid, files.conf(), std::chrono::seconds(3))) {
      ::kill(pid, SIGKILL);
      if (!WaitGone(pid, files.conf(), std::chrono::seconds(2))) {
        return Internal("dnsmasq " + std::to_string(pid) + " does not exit");
      }
    }
    fs::remove(files.pid(), ec);
    spdlog::info("network: stopped dnsmasq pid={}", pid);
    return Status::Ok();
  }

  Status ApplyNftables(const std::string& ruleset) override {
    std::string out, err;
    int rc = RunNft(ruleset, &out, &err);
    if (rc != 0) return Internal("nftables: " + Tail(err, 2000));
    return Status::Ok();
  }

  StatusOr<std::string> ListNftTable(const std::string& family, const std::string& table) override {
    if (family != "inet" && family != "ip" && family != "bridge" && family != "ip6" && family != "netdev" &&
        family != "arp") {
      return InvalidError("unknown nftables family '" + family + "'");
    }
    for (unsigned char c : table) {
      if (!std::isalnum(c) && c != '_' && c != '-') return InvalidError("bad nftables table name '" + table + "'");
    }
    std::string out, err;
    int rc = RunNft("list table " + family + " " + table, &out, &err);
    if (rc != 0) {
      if (err.find("No such file or directory") != std::string::npos) return std::string();
      return Internal("nftables: " + Tail(err, 2000));
    }
    return out;
  }

  Status EnableIpForward() override { return WriteSysctl("/proc/sys/net/ipv4/ip_forward", "1"); }

  Status EnableBridgeNetfilter() override {
    return WriteSysctl("/proc/sys/net/bridge/bridge-nf-call-iptables", "1");
  }

 private:
  Status FloodPeerChange(const std::string& verb, const std::string& vxlan, const std::string& remote) {
    Status v = ValidateIfName(vxlan, "vxlan link");
    if (!v.ok()) return v;
    in_addr a{};
    if (inet_pton(AF_INET, remote.c_str(), &a) != 1) return InvalidError("flood peer '" + remote + "' is not IPv4");
    auto have = FloodPeers(vxlan);
    if (!have.ok()) return have.status();
    bool present = std::find(have->begin(), have->end(), remote) != have->end();
    if (present == (verb == "append")) return Status::Ok();
    auto r = ExecChecked({"bridge", "fdb", verb, "00:00:00:00:00:00", "dev", vxlan, "dst", remote}, 30);
    return r.ok() ? Status::Ok() : r.status();
  }

  template <typename F>
  Status Change(const std::string& name, F set, const char* what) {
    Status v = ValidateIfName(name, "link");
    if (!v.ok()) return v;
    auto sk = Connect();
    if (!sk.ok()) return sk.status();
    auto l = MustGetLink(sk->get(), name);
    if (!l.ok()) return l.status();
    LinkPtr change(rtnl_link_alloc());
    if (!change) return Internal("netlink: cannot allocate a link");
    set(change.get());
    int err = rtnl_link_change(sk->get(), l->get(), change.get(), 0);
    if (err < 0) return NlError(std::string("netlink: ") + what + " " + name, err);
    return Status::Ok();
  }

  Status AlreadyRunning(int pid) {
    return Status(Code::kAlreadyExists, "dnsmasq is already running (pid " + std::to_string(pid) + ")");
  }

  int RunNft(const std::string& cmd, std::string* out, std::string* err) {
    std::lock_guard<std::mutex> lock(nft_mu_);
    nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
      *err = "cannot create an nftables context";
      return -1;
    }
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    int rc = nft_run_cmd_from_buffer(ctx, cmd.c_str());
    const char* o = nft_ctx_get_output_buffer(ctx);
    const char* e = nft_ctx_get_error_buffer(ctx);
    *out = o ? o : "";
    *err = e ? e : "";
    nft_ctx_free(ctx);
    return rc;
  }

  std::string dnsmasq_;
  std::mutex nft_mu_;
};

}  // namespace

namespace {
// A name `ip netns` keeps under /run/netns: never a path.
Status CheckNetnsName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63 && name != "." && name != "..";
  for (unsigned char c : name) ok = ok && (std::isalnum(c) || c == '_' || c == '.' || c == '-');
  if (!ok) return InvalidError("network namespace '" + name + "': 1 to 63 letters, digits, '_', '.' or '-'");
  return Status::Ok();
}
}  // namespace

Status EnterNetns(const std::string& name) {
  Status v = CheckNetnsName(name);
  if (!v.ok()) return v;
  std::string path = "/run/netns/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return Status(e == ENOENT ? Code::kNotFound : Code::kInternal,
                  "network namespace " + name + ": cannot open " + path + ": " + std::strerror(e));
  }
  int rc = ::setns(fd, CLONE_NEWNET);
  int e = errno;
  ::close(fd);
  if (rc != 0) return Internal("setns(" + path + "): " + std::strerror(e));
  return Status::Ok();
}

StatusOr<int> LockNetworkNamespace(const std::string& name, const std::string& lock_dir) {
  std::string ns_file = name.empty() ? "/proc/thread-self/ns/net" : "/run/netns/" + name;
  if (!name.empty()) {
    Status v = CheckNetnsName(name);
    if (!v.ok()) return v;
  }
  struct stat st {};
  if (::stat(ns_file.c_str(), &st) != 0) {
    return Status(Code::kNotFound, "network namespace " + (name.empty() ? "of this thread" : name) + ": " +
                                       ns_file + ": " + std::strerror(errno));
  }
  std::error_code ec;
  fs::create_directories(lock_dir, ec);
  std::string path = lock_dir + "/netns-" + std::to_string(st.st_ino) + ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Internal("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    std::string holder = ReadAll(path);
    ::close(fd);
    if (e != EWOULDBLOCK) return Internal("flock " + path + ": " + std::strerror(e));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Status(Code::kAlreadyExists,
                  "another Stratus agent (pid " + (holder.empty() ? std::string("?") : holder) +
                      ") already runs networking in network namespace " + (name.empty() ? "of this process" : name) +
                      " (" + path + "); two would undo each other's bridges and nftables tables");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    spdlog::debug("network: cannot record pid in {}: {}", path, std::strerror(errno));
  }
  return fd;
}

std::unique_ptr<NetDev> NewLinuxNetDev(std::string dnsmasq_binary) {
  return std::make_unique<LinuxNetDev>(std::move(dnsmasq_binary));
}

}  // namespace stratus::host
