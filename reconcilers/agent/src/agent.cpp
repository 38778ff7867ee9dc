#include "stratus/agent/agent.h"

#include <cpprest/http_listener.h>
#include <cpprest/producerconsumerstream.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "stratus/agent/owner.h"
#include "stratus/core/exec.h"
#include "stratus/core/object.h"
#include "stratus/host/hypervisor.h"
#include "stratus/host/storage.h"
#include "stratus/image/image.h"
#include "stratus/host/netdev.h"
#include "stratus/instance/instance.h"
#include "stratus/migration/migration.h"
#include "stratus/network/network.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"
#include "stratus/runtime/informer_factory.h"
#include "stratus/agent/console_hub.h"
#include "stratus/host/console.h"
#include "stratus/host/names.h"
#include "stratus/snapshot/snapshot.h"
#include "stratus/volume/volume.h"

namespace stratus::agent {
namespace fs = std::filesystem;
using web::http::http_request;
using web::http::http_response;

struct NodeAgent::Impl {
  ApiClient* client;
  Options opts;
  std::shared_ptr<host::LibvirtConnection> conn;
  std::unique_ptr<host::Hypervisor> hv;
  std::unique_ptr<host::StoragePools> storage;
  host::HostCapacity cap;
  std::string virt_type;
  std::unique_ptr<runtime::InformerFactory> own_informers;  // when Options.informers is null
  runtime::InformerFactory* informers = nullptr;
  runtime::Informer *instances = nullptr, *images = nullptr, *flavors = nullptr, *volumes = nullptr,
                    *snapshots = nullptr;
  // Networking (opt-in): every Network, every Instance (peers, in-use checks), every SecurityGroup.
  runtime::Informer *networks = nullptr, *all_instances = nullptr, *groups = nullptr;
  std::unique_ptr<host::NetDev> netdev;
  std::unique_ptr<host::SeedDisks> seeds;
  std::shared_ptr<agent::ConsoleHub> consoles;  // interactive consoles (shared with their streaming threads)   // NoCloud seed writer of the instance reconciler (null: none)
  std::unique_ptr<network::Leases> leases;  // the node's dnsmasq leases, read by the instance reconciler
  std::unique_ptr<network::NetworkReconciler> net_rec;
  int netns_lock_fd = -1;  // host::LockNetworkNamespace, held while networking runs
  std::unique_ptr<runtime::Controller> net_ctl;
  std::unique_ptr<image::ImageReconciler> image_rec;
  std::unique_ptr<instance::InstanceReconciler> inst_rec;
  std::unique_ptr<volume::VolumeReconciler> vol_rec;
  std::unique_ptr<snapshot::SnapshotReconciler> snap_rec;
  std::unique_ptr<runtime::Controller> image_ctl, inst_ctl, vol_ctl, snap_ctl, mig_ctl;
  std::unique_ptr<migration::MigrationAgentReconciler> mig_rec;
  runtime::Informer* migrations = nullptr;
  volume::Options vopts;  // the node's volume pools
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;
  std::thread heartbeat;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::string failure_reason;  // why Start failed: a Node condition reason
  std::atomic<bool> refusing{false};  // stopped: the endpoint answers 503

  Owner owner;  // the cluster and node whose host resources this agent makes and touches
  std::vector<host::PoolConfig> owned_pools;  // every pool this node needs, ensured again at each heartbeat
  // A node's pools are its own in libvirt (several agents and clusters may share one libvirtd).
  std::string ImagePool() const { return PoolName(owner, "images"); }
  host::PoolConfig OwnedPool(const std::string& name, const std::string& type, const std::string& path,
                             const std::string& vg) const {
    host::PoolConfig c;
    c.name = PoolName(owner, name);
    c.type = type;
    c.path = path;
    c.source_vg = vg;
    c.uuid = PoolUuid(owner, name);
    c.adopt_name = LegacyPoolName(owner.node, name);
    return c;
  }

  json NodeStatus() {
    json st;
    st["capacity"] = {{"vcpus", cap.vcpus}, {"memoryMiB", static_cast<int64_t>(cap.memory_mib)}};
    st["allocatable"] = {{"vcpus", std::max(0, cap.vcpus - opts.reserved_vcpus)},
                         {"memoryMiB", std::max<int64_t>(0, static_cast<int64_t>(cap.memory_mib) - opts.reserved_memory_mib)}};
    // Every pool with its free space; placement reads them (storage for volumes and root disks).
    json pools = json::array();
    uint64_t cap_total = 0, avail_total = 0;
    auto add = [&](const std::string& name, const std::string& libvirt_name, bool is_default, bool images) {
      auto pool = storage->Pool(libvirt_name);
      if (!pool.ok()) return;
      std::string path;  // where its volumes live: a migration maps this node's paths onto the target's
      for (const auto& c : owned_pools) {
        if (c.name == libvirt_name) path = c.path;
      }
      pools.push_back({{"name", name},
                       {"libvirtName", libvirt_name},
                       {"path", path},
                       {"type", pool->type},
                       {"default", is_default},
                       {"images", images},
                       {"capacityBytes", static_cast<int64_t>(pool->capacity_bytes)},
                       {"allocationBytes", static_cast<int64_t>(pool->allocation_bytes)},
                       {"availableBytes", static_cast<int64_t>(pool->available_bytes)}});
      if (!images) {
        cap_total += pool->capacity_bytes;
        avail_total += pool->available_bytes;
      }
    };
    for (const auto& [name, p] : vopts.pools) add(name, p.libvirt_name, name == vopts.default_pool, false);
    add("images", ImagePool(), false, true);
    st["pools"] = pools;
    st["capacity"]["storageGiB"] = static_cast<int64_t>(cap_total >> 30);
    st["allocatable"]["storageGiB"] = static_cast<int64_t>(avail_total >> 30);
    st["virtType"] = virt_type;
    st["lastHeartbeatTime"] = NowRfc3339();
    std::string url = opts.advertise.empty() ? "http://" + opts.listen : opts.advertise;
    st["addresses"] = json::array({{{"type", "AgentURL"}, {"address", url}},
                                   {{"type", "Hostname"}, {"address", cap.hostname}}});
    st["nodeInfo"] = {{"hostname", cap.hostname}, {"arch", "x86_64"}, {"agentVersion", "v0.1.0"}};
    if (netdev && !opts.underlay_interface.empty()) st["underlay"] = UnderlayStatus();
    json mig = {{"libvirtURI", opts.migration_uri.empty() ? opts.libvirt_uri : opts.migration_uri}};
    std::string addr = opts.migration_address;
    if (addr.empty() && st.contains("underlay")) addr = st["underlay"].value("address", "");
    if (!addr.empty()) mig["address"] = addr;
    st["migration"] = mig;
    return st;
  }

  // The underlay device as the node's network namespace shows it (read from a thread that enters it: the
  // heartbeat's own thread talks to the API server from this process' namespace).
  json UnderlayStatus() {
    json out = {{"interface", opts.underlay_interface}};
    std::thread t([&] {
      if (!opts.netns.empty()) {
        Status s = host::EnterNetns(opts.netns);
        if (!s.ok()) {
          out["error"] = s.message();
          return;
        }
      }
      auto l = netdev->Link(opts.underlay_interface);
      if (!l.ok()) {
        out["error"] = l.status().message();
      } else if (!l->exists || l->ipv4.empty()) {
        out["error"] = "underlay interface " + opts.underlay_interface +
                       (l->exists ? " has no IPv4 address" : " does not exist");
      } else {
        out["address"] = l->ipv4.front().substr(0, l->ipv4.front().find('/'));
        out["mtu"] = l->mtu;
      }
    });
    t.join();
    return out;
  }

  Status Register() {
    auto cur = client->Get("nodes", "", opts.node);
    if (!cur.ok() && cur.status().code() != Code::kNotFound) return cur.status();
    if (!cur.ok()) {
      json labels = {{"stratus.io/hostname", opts.node}, {"stratus.io/zone", opts.zone}};
      for (const auto& [k, v] : opts.labels) labels[k] = v;
      json node = {{"apiVersion", "stratus.io/v1"},
                   {"kind", "Node"},
                   {"metadata", {{"name", opts.node}, {"labels", labels}}},
                   {"spec", json::object()}};
      cur = client->Create("nodes", "", node);
      if (!cur.ok() && cur.status().code() != Code::kAlreadyExists) return cur.status();
      if (!cur.ok()) cur = client->Get("nodes", "", opts.node);
      if (!cur.ok()) return cur.status();
    }
    return Heartbeat(*cur);
  }

  // Posts the node's status; retries on conflicts with other status writers (node lifecycle).
  Status Heartbeat(json cur) {
    json st = NodeStatus();
    for (int attempt = 0;; ++attempt) {
      json desired = cur;
      for (auto& [k, v] : st.items()) desired["status"][k] = v;
      runtime::SetCondition(desired, "Ready", "True", "AgentReady",
                            "agent is heartbeating; libvirt " + opts.libvirt_uri + " reachable");
      auto u = runtime::UpdateStatusIfChanged(client, "nodes", cur, desired);
      if (u.ok()) return Status::Ok();
      if (u.status().code() != Code::kConflict || attempt >= 5) return u.status();
      auto again = client->Get("nodes", "", opts.node);
      if (!again.ok()) return again.status();
      cur = *again;
    }
  }

  // What the node needs to keep working, checked at every heartbeat: its pools (a destroyed or undefined pool is
  // made again; one that cannot be says so) and its network namespace. Ok, or the Ready=False reason and why.
  std::pair<std::string, Status> NodeProblem() {
    for (const auto& pc : owned_pools) {
      Status s = storage->EnsurePool(pc);
      if (!s.ok()) return {"StoragePoolFailed", Status(s.code(), "pool " + pc.name + ": " + s.message())};
    }
    if (opts.networking && !opts.netns.empty() && !fs::exists("/run/netns/" + opts.netns)) {
      return {"NetworkNamespaceMissing",
              NotFound("network namespace " + opts.netns + " is gone (/run/netns/" + opts.netns +
                       "): the node's bridges and guests' taps live there; recreate it and restart libvirtd in it")};
    }
    return {"", Status::Ok()};
  }

  void HeartbeatLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      cv.wait_for(lock, opts.heartbeat);
      if (stopping) break;
      lock.unlock();
      auto [reason, problem] = NodeProblem();
      if (!problem.ok()) {
        Status r = ReportNodeNotReady(client, opts, reason, problem.message());
        if (!r.ok()) spdlog::warn("heartbeat failed: node={} error={}", opts.node, r.message());
        spdlog::warn("node not ready: node={} reason={} error={}", opts.node, reason, problem.message());
        lock.lock();
        continue;
      }
      auto cur = client->Get("nodes", "", opts.node);
      Status s = cur.ok() ? Heartbeat(*cur) : (cur.status().code() == Code::kNotFound ? Register() : cur.status());
      if (!s.ok()) spdlog::warn("heartbeat failed: node={} error={}", opts.node, s.message());
      lock.lock();
    }
  }

  static void Reply(http_request& req, int code, const std::string& body, const std::string& type) {
    http_response r(static_cast<web::http::status_code>(code));
    r.set_body(body, type);
    req.reply(r).then([](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
    });
  }

  // Interactive consoles: GET /console/NS/NAME?session=S[&write=true] streams the output (NUL bytes keep a
  // quiet stream alive; the client drops them), POST /console/NS/NAME/input?session=S sends the body from the
  // writer, DELETE /console/NS/NAME?session=S detaches.
  void HandleConsole(http_request& req, const std::vector<std::string>& seg, std::map<std::string, std::string>& query) {
    auto fail = [&](const Status& s) { Reply(req, s.http_code(), s.ToJson().dump(), "application/json"); };
    if (!consoles) return fail(Status(Code::kUnavailable, "this agent serves no consoles"));
    if (!ValidateDns1123Label(seg[1], "namespace").ok() || !ValidateDns1123Label(seg[2], "name").ok()) {
      return fail(BadRequest("invalid instance name"));
    }
    const std::string id = query["session"];
    if (Status v = agent::ValidateSessionId(id); !v.ok()) return fail(v);
    if (instances == nullptr || instances->Get(seg[1] + "/" + seg[2]).is_null()) {
      return fail(NotFound("instance " + seg[1] + "/" + seg[2] + " is not on node " + opts.node));
    }
    const std::string domain = host::DomainName(seg[1], seg[2]);
    auto m = req.method();
    if (seg.size() == 4 && seg[3] == "input" && m == web::http::methods::POST) {
      // Read asynchronously: this runs on cpprestsdk's pool, which the body's own reading needs.
      req.extract_vector().then([hub = consoles, domain, id, req](pplx::task<std::vector<unsigned char>> t) mutable {
        try {
          auto body = t.get();
          Status s = hub->Input(domain, id, std::string(body.begin(), body.end()));
          if (!s.ok()) return Reply(req, s.http_code(), s.ToJson().dump(), "application/json");
          Reply(req, 204, "", "text/plain");
        } catch (const std::exception& e) {
          Reply(req, 400, BadRequest(std::string("cannot read the input: ") + e.what()).ToJson().dump(),
                "application/json");
        }
      });
      return;
    }
    if (seg.size() != 3) return fail(NotFound("not found"));
    if (m == web::http::methods::DEL) {
      consoles->Detach(domain, id);
      return Reply(req, 204, "", "text/plain");
    }
    if (m != web::http::methods::GET) return fail(Status(Code::kMethodNotAllowed, "GET, POST .../input or DELETE"));
    auto session = consoles->Attach(domain, id, query["write"] == "true");
    if (!session.ok()) return fail(session.status());
    StreamConsole(req, consoles, domain, *session);
  }

  // Streams a session's output as the chunked body of the reply, from a thread of its own (never a pool thread:
  // it waits for output).
  static void StreamConsole(http_request& req, std::shared_ptr<agent::ConsoleHub> hub, const std::string& domain,
                            std::shared_ptr<agent::ConsoleSession> session) {
    auto buf = std::make_shared<concurrency::streams::producer_consumer_buffer<uint8_t>>();
    http_response r(web::http::status_codes::OK);
    r.headers().add("X-Stratus-Console-Writer", session->writer() ? "true" : "false");
    r.headers().add("Cache-Control", "no-cache");
    r.set_body(buf->create_istream(), "application/octet-stream");
    req.reply(r).then([session](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
      session->Cancel();  // the client went away (or the body ended)
    });
    std::thread([hub, domain, session, buf] {
      auto put = [&](const std::string& bytes) {
        // Copied synchronously; the returned task is not waited for (see the API server's watch streams).
        buf->putn_nocopy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        buf->sync();
      };
      for (;;) {
        auto next = session->Next(std::chrono::seconds(10));
        if (!next) break;
        if (buf->in_avail() > (1u << 20)) break;  // the client stopped reading
        put(next->empty() ? std::string(1, '\0') : *next);  // NUL: a keepalive on a quiet console
      }
      Status why = session->ended();
      if (!why.ok() && why.message() != "the client went away") {
        put("\r\n[stratus: console ended: " + why.message() + "]\r\n");
      }
      buf->close(std::ios_base::out);
      hub->Detach(domain, session->id());
    }).detach();
  }

  void Handle(http_request req) {
    if (refusing.load()) return Reply(req, 503, Status(Code::kUnavailable, "the node agent is stopping").ToJson().dump(),
                                      "application/json");
    try {
      auto seg = web::uri::split_path(req.relative_uri().path());
      for (auto& s : seg) s = web::uri::decode(s);
      auto query = web::uri::split_query(req.relative_uri().query());
      if (seg.size() == 1 && seg[0] == "healthz") return Reply(req, 200, "ok", "text/plain");
      if (req.method() == web::http::methods::GET && seg.size() == 3 && seg[0] == "logs") {
        if (!ValidateDns1123Label(seg[1], "namespace").ok() || !ValidateDns1123Label(seg[2], "name").ok()) {
          return Reply(req, 400, Status(Code::kBadRequest, "invalid instance name").ToJson().dump(), "application/json");
        }
        std::string path = instance::ConsoleLogPath(opts.data_dir, seg[1], seg[2]);
        std::ifstream in(path, std::ios::binary);
        if (!in) {
          return Reply(req, 404, NotFound("no console log for instance " + seg[1] + "/" + seg[2] + " on node " + opts.node)
                                     .ToJson().dump(), "application/json");
        }
        uint64_t tail = 0;
        if (query.count("tailBytes")) tail = std::stoull(query["tailBytes"]);
        in.seekg(0, std::ios::end);
        uint64_t size = static_cast<uint64_t>(in.tellg());
        uint64_t start = tail && tail < size ? size - tail : 0;
        std::string data(size - start, '\0');
        in.seekg(static_cast<std::streamoff>(start));
        in.read(data.data(), static_cast<std::streamsize>(data.size()));
        return Reply(req, 200, data, "text/plain");
      }
      if (seg.size() >= 3 && seg[0] == "console") return HandleConsole(req, seg, query);
      if (req.method() == web::http::methods::GET && seg.size() == 1 && seg[0] == "domains") {
        auto l = hv->List();
        if (!l.ok()) return Reply(req, 500, l.status().ToJson().dump(), "application/json");
        json out = json::array();
        for (const auto& d : *l) {
          out.push_back({{"name", d.name}, {"uuid", d.uuid}, {"instanceUID", d.instance_uid},
                         {"running", d.state == host::DomainState::kRunning}, {"state", static_cast<int>(d.state)}});
        }
        return Reply(req, 200, out.dump(), "application/json");
      }
      if (req.method() == web::http::methods::GET && seg.size() == 3 && seg[0] == "domains" && seg[2] == "xml") {
        auto x = hv->DomainXml(seg[1], query.count("inactive") > 0);
        if (!x.ok()) return Reply(req, x.status().http_code(), x.status().ToJson().dump(), "application/json");
        return Reply(req, 200, *x, "application/xml");
      }
      if (req.method() == web::http::methods::GET && seg.size() == 1 && seg[0] == "volumes") {
        // The storage of this node's volume pools, as libvirt sees it (operators and tests check for orphans).
        json out = json::array();
        for (const auto& [name, p] : vopts.pools) {
          auto l = storage->ListVolumes(p.libvirt_name);
          if (!l.ok()) return Reply(req, 500, l.status().ToJson().dump(), "application/json");
          for (const auto& v : *l) {
            out.push_back({{"pool", name}, {"name", v.name}, {"path", v.path},
                           {"capacityBytes", static_cast<int64_t>(v.capacity_bytes)}, {"format", v.format}});
          }
        }
        return Reply(req, 200, out.dump(), "application/json");
      }
      if (opts.debug_endpoints && req.method() == web::http::methods::POST && seg.size() == 4 && seg[0] == "debug" &&
          seg[1] == "domains") {
        Status s = seg[3] == "destroy" ? hv->Destroy(seg[2])
                   : seg[3] == "undefine" ? (hv->Destroy(seg[2]).ok() ? hv->Undefine(seg[2]) : hv->Undefine(seg[2]))
                                          : NotFound("unknown action");
        return Reply(req, s.ok() ? 200 : s.http_code(), s.ToJson().dump(), "application/json");
      }
      Reply(req, 404, NotFound("not found").ToJson().dump(), "application/json");
    } catch (const std::exception& e) {
      Reply(req, 500, Internal(e.what()).ToJson().dump(), "application/json");
    }
  }
};

NodeAgent::NodeAgent(ApiClient* client, Options opts) : impl_(std::make_unique<Impl>()) {
  impl_->client = client;
  impl_->opts = std::move(opts);
  if (impl_->opts.node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    impl_->opts.node = host;
    for (auto& c : impl_->opts.node) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
}

NodeAgent::~NodeAgent() {
  Stop();
  if (impl_ && impl_->listener) (void)impl_.release();  // its listener still calls into Impl: see Stop
}

const Options& NodeAgent::options() const { return impl_->opts; }

const std::string& NodeAgent::failure_reason() const { return impl_->failure_reason; }

Status ReportNodeNotReady(ApiClient* client, const Options& opts, const std::string& reason,
                          const std::string& message) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cur = client->Get("nodes", "", opts.node);
    if (!cur.ok() && cur.status().code() != Code::kNotFound) return cur.status();
    if (!cur.ok()) {
      json labels = {{"stratus.io/hostname", opts.node}, {"stratus.io/zone", opts.zone}};
      for (const auto& [k, v] : opts.labels) labels[k] = v;
      cur = client->Create("nodes", "",
                           {{"apiVersion", "stratus.io/v1"},
                            {"kind", "Node"},
                            {"metadata", {{"name", opts.node}, {"labels", labels}}},
                            {"spec", json::object()}});
      if (!cur.ok() && cur.status().code() == Code::kAlreadyExists) continue;
      if (!cur.ok()) return cur.status();
    }
    json desired = *cur;
    desired["status"]["lastHeartbeatTime"] = NowRfc3339();
    bool changed = runtime::SetCondition(desired, "Ready", "False", reason, message);
    auto u = runtime::UpdateStatusIfChanged(client, "nodes", *cur, desired);
    if (u.ok()) {
      if (changed) runtime::EventRecorder(client, "node-agent", opts.node).Record(*u, "Warning", reason, message);
      return Status::Ok();
    }
    if (u.status().code() != Code::kConflict) return u.status();
  }
  return Status(Code::kConflict, "node " + opts.node + " keeps changing");
}

Status NodeAgent::Start() {
  Impl& m = *impl_;
  auto conn = host::ConnectLibvirt(m.opts.libvirt_uri);
  if (!conn.ok()) {
    m.failure_reason = "LibvirtUnreachable";
    return Status(conn.status().code(), "libvirt " + m.opts.libvirt_uri + ": " + conn.status().message() +
                                            " (is libvirtd running? check --libvirt-uri)");
  }
  m.conn = *conn;
  m.hv = host::NewLibvirtHypervisor(m.conn);
  if (!m.consoles) m.consoles = std::make_shared<agent::ConsoleHub>(host::NewLibvirtConsoles(m.opts.libvirt_uri));
  m.storage = host::NewLibvirtStorage(m.conn);
  auto cap = m.hv->Capacity();
  if (!cap.ok()) {
    m.failure_reason = "LibvirtUnreachable";
    return cap.status();
  }
  m.cap = *cap;
  m.virt_type = m.opts.virt_type == "auto" ? m.cap.virt_type : m.opts.virt_type;
  auto owner = DiscoverOwner(m.client, m.opts.node);
  if (!owner.ok()) return owner.status();
  m.owner = *owner;
  m.vopts.node = m.opts.node;
  m.vopts.image_pool = m.ImagePool();
  // The image cache, then the volume pools: one list, made here and ensured again at every heartbeat.
  std::vector<PoolSpec> pools = {{"images", "dir", (fs::path(m.opts.data_dir) / "pools" / "images").string(), ""}};
  bool have_default = false;
  for (const auto& text : m.opts.pools) {
    auto p = ParsePoolSpec(text);
    if (!p.ok()) return p.status();
    have_default |= p->name == "default";
    pools.push_back(*p);
  }
  if (!have_default) {
    pools.push_back({"default", "dir", (fs::path(m.opts.data_dir) / "pools" / "default").string(), ""});
  }
  m.owned_pools.clear();
  m.vopts.pools.clear();
  for (const auto& p : pools) {
    host::PoolConfig pc = m.OwnedPool(p.name, p.type, p.type == "logical" ? "/dev/" + p.vg : p.path, p.vg);
    std::error_code ec;
    if (p.type == "dir") fs::create_directories(p.path, ec);
    Status e = m.storage->EnsurePool(pc);
    if (!e.ok()) {
      m.failure_reason = "StoragePoolFailed";
      return Status(e.code(), "pool \"" + p.name + "\": " + e.message());
    }
    m.owned_pools.push_back(pc);
    if (p.name != "images") m.vopts.pools[p.name] = {p.name, pc.name, p.type};
  }
  if (m.opts.networking && !m.netdev) m.netdev = host::NewLinuxNetDev();  // the underlay is in Node status
  Status rs = m.Register();
  if (!rs.ok()) return rs;

  if (m.opts.informers) {
    m.informers = m.opts.informers;
  } else {
    if (!m.own_informers) m.own_informers = std::make_unique<runtime::InformerFactory>(m.client);
    m.informers = m.own_informers.get();
  }
  runtime::InformerOptions io;
  io.plural = "instances";
  io.field_selector = "spec.nodeName=" + m.opts.node;
  m.instances = m.informers->For(io);
  m.images = m.informers->For("images");
  m.flavors = m.informers->For("instancetypes");
  m.volumes = m.informers->For("volumes");
  m.snapshots = m.informers->For("volumesnapshots");

  m.image_rec = std::make_unique<image::ImageReconciler>(m.client, m.images, m.storage.get(), m.ImagePool(),
                                                         (fs::path(m.opts.data_dir) / "tmp").string(), m.opts.node,
                                                         m.opts.api_url, m.opts.api_ca_file,
                                                         m.opts.api_token);
  instance::Options iopt;
  iopt.node = m.opts.node;
  iopt.data_dir = m.opts.data_dir;
  iopt.image_pool = m.ImagePool();
  iopt.virt_type = m.virt_type;
  iopt.shutdown_timeout = m.opts.shutdown_timeout;
  iopt.max_vcpus = m.cap.vcpus;  // vCPUs can be hot-added up to the node's CPUs
  iopt.owner = OwnerMark(m.owner);  // its domains carry it: the fence removes ours whose instance left
  if (m.opts.seed_disks && !m.seeds) {
    if (ProgramInPath("xorriso")) {
      m.seeds = host::NewIsoSeedDisks();
    } else {
      spdlog::warn("agent: xorriso not found (Debian's xorriso): instances get no NoCloud seed, so no key pair "
                   "or user data reaches their guests: node={}", m.opts.node);
    }
  }
  iopt.seeds = m.seeds.get();
  if (m.opts.networking && !m.opts.netns.empty() && !fs::exists("/run/netns/" + m.opts.netns)) {
    m.failure_reason = "NetworkNamespaceMissing";
    return InvalidError("--netns " + m.opts.netns + ": no such network namespace (/run/netns/" + m.opts.netns +
                        "; create it with `ip netns add` and start libvirtd in it)");
  }
  if (m.opts.networking) {
    if (m.netns_lock_fd < 0) {  // Start may be retried: keep what an earlier attempt took
      auto lock = host::LockNetworkNamespace(m.opts.netns);
      if (!lock.ok()) {
        m.failure_reason = "NetworkNamespaceBusy";
        return lock.status();
      }
      m.netns_lock_fd = *lock;
    }
    m.networks = m.informers->For("networks");
    m.all_instances = m.informers->For("instances");
    m.groups = m.informers->For("securitygroups");
    network::Options nopt;
    nopt.node = m.opts.node;
    nopt.state_dir = (fs::path(m.opts.data_dir) / "networks").string();
    m.leases = network::NewDnsmasqLeases(nopt.state_dir);
    iopt.leases = m.leases.get();  // leases confirm instance addresses
    nopt.netns = m.opts.netns;
    nopt.owner_mark = OwnerMark(m.owner);
    nopt.underlay_interface = m.opts.underlay_interface;
    m.net_rec = std::make_unique<network::NetworkReconciler>(
        m.client, m.networks, m.all_instances, m.groups, m.netdev.get(), nopt, m.informers->For("addresses"),
        m.informers->For("addresspools"), m.opts.underlay_interface.empty() ? nullptr : m.informers->For("nodes"),
        m.informers->For("migrations"));
    m.net_ctl = std::make_unique<runtime::Controller>(m.net_rec.get(), 1);
  }
  m.migrations = m.informers->For("migrations");
  m.inst_rec = std::make_unique<instance::InstanceReconciler>(m.client, m.instances, m.images, m.flavors, m.hv.get(),
                                                              m.storage.get(), iopt, m.volumes, m.networks,
                                                              m.migrations);
  migration::AgentOptions mopt;
  mopt.node = m.opts.node;
  m.mig_rec = std::make_unique<migration::MigrationAgentReconciler>(m.client, m.migrations, m.informers->For("nodes"),
                                                                    m.inst_rec.get(), m.hv.get(), mopt,
                                                                    m.storage.get());
  m.mig_ctl = std::make_unique<runtime::Controller>(m.mig_rec.get(), 2);
  m.vol_rec = std::make_unique<volume::VolumeReconciler>(m.client, m.volumes, m.instances, m.images, m.storage.get(),
                                                         m.hv.get(), m.vopts, m.snapshots);
  m.snap_rec = std::make_unique<snapshot::SnapshotReconciler>(m.client, m.snapshots, m.volumes, m.storage.get(),
                                                              m.hv.get(), m.vopts);
  // Each controller watches what its reconciler names (Reconciler::Watches).
  m.vol_ctl = std::make_unique<runtime::Controller>(m.vol_rec.get(), m.opts.workers);
  m.snap_ctl = std::make_unique<runtime::Controller>(m.snap_rec.get(), 1);
  m.image_ctl = std::make_unique<runtime::Controller>(m.image_rec.get(), m.opts.workers);
  m.inst_ctl = std::make_unique<runtime::Controller>(m.inst_rec.get(), m.opts.workers);
  m.informers->Start();  // informers made after a shared factory started are running already
  if (m.net_ctl) m.net_ctl->Start();
  m.image_ctl->Start();
  m.inst_ctl->Start();
  m.mig_ctl->Start();
  m.inst_ctl->queue().Add(instance::InstanceReconciler::kSweepKey);  // a node back from the dead fences first
  m.vol_ctl->Start();
  m.snap_ctl->Start();
  Impl* impl = &m;
  m.heartbeat = std::thread([impl] { impl->HeartbeatLoop(); });
  try {
    m.listener = std::make_unique<web::http::experimental::listener::http_listener>("http://" + m.opts.listen);
    m.listener->support([impl](http_request req) { impl->Handle(std::move(req)); });
    m.listener->open().wait();
  } catch (const std::exception& e) {
    m.listener.reset();
    spdlog::error("agent endpoint not served: listen={} error={}", m.opts.listen, e.what());
  }
  spdlog::info("node agent started: node={} libvirt={} virtType={} vcpus={} memoryMiB={}", m.opts.node,
               m.opts.libvirt_uri, m.virt_type, m.cap.vcpus, m.cap.memory_mib);
  return Status::Ok();
}

void NodeAgent::Stop() {
  if (!impl_) return;
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
  }
  m.cv.notify_all();
  if (m.heartbeat.joinable()) m.heartbeat.join();
  // The endpoint is not closed (cpprestsdk's listener cannot be closed safely while connections are in flight;
  // see ApiServer::Stop): it answers 503 from now on, and ~NodeAgent leaves it to the process exit.
  m.refusing.store(true);
  if (m.consoles) m.consoles->Shutdown();  // ends the console streams and their sessions
  if (m.net_ctl) m.net_ctl->Stop();
  if (m.vol_ctl) m.vol_ctl->Stop();
  if (m.snap_ctl) m.snap_ctl->Stop();
  if (m.mig_ctl) m.mig_ctl->Stop();  // waits for a migration in flight (libvirt's own bounds apply)
  if (m.inst_ctl) m.inst_ctl->Stop();
  if (m.image_ctl) m.image_ctl->Stop();
  if (m.own_informers) m.own_informers->Stop();  // shared ones belong to whoever made the factory
  if (m.netns_lock_fd >= 0) {
    ::close(m.netns_lock_fd);  // another agent may take this namespace's networking now
    m.netns_lock_fd = -1;
  }
}

StatusOr<PoolSpec> ParsePoolSpec(const std::string& text) {
  auto eq = text.find('=');
  auto colon = text.find(':', eq == std::string::npos ? 0 : eq);
  if (eq == std::string::npos || colon == std::string::npos) {
    return InvalidError("--pool \"" + text + "\": expected NAME=dir:PATH or NAME=logical:VG");
  }
  PoolSpec p;
  p.name = text.substr(0, eq);
  p.type = text.substr(eq + 1, colon - eq - 1);
  std::string where = text.substr(colon + 1);
  Status n = ValidateDns1123Label(p.name, "pool name");
  if (!n.ok()) return InvalidError("--pool \"" + text + "\": " + n.message());
  if (p.name == "images") return InvalidError("--pool: the name \"images\" is the image cache's");
  if (p.type == "dir") {
    if (where.empty() || where[0] != '/') return InvalidError("--pool \"" + text + "\": PATH must be absolute");
    p.path = where;
  } else if (p.type == "logical") {
    bool ok = !where.empty() && where.size() <= 127 && where[0] != '-';
    for (char c : where) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '+';
    if (!ok) return InvalidError("--pool \"" + text + "\": \"" + where + "\" is not a volume group name");
    p.vg = where;
  } else {
    return InvalidError("--pool \"" + text + "\": type must be dir or logical, not \"" + p.type + "\"");
  }
  return p;
}

}  // namespace stratus::agent
