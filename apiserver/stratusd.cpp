// stratusd: `stratusd server` runs the API server on its SQLite store (the embedded default).
#include <CLI/CLI.hpp>
#include <pplx/threadpool.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <filesystem>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "stratus/agent/agent.h"
#include "stratus/apiserver/auth.h"
#include "stratus/apiserver/console.h"
#include "stratus/apiserver/etcd_store.h"
#include "stratus/apiserver/local_client.h"
#include "stratus/apiserver/registry.h"
#include "stratus/host/netdev.h"
#include "stratus/image/image.h"
#include "stratus/migration/migration.h"
#include "stratus/network/validation.h"
#include "stratus/apiserver/server.h"
#include "stratus/apiserver/sqlite_store.h"
#include "stratus/core/api_client.h"
#include "stratus/core/files.h"
#include "stratus/core/kubeconfig.h"
#include "stratus/core/object.h"
#include "stratus/core/schema.h"
#include "stratus/core/tls.h"
#include "stratus/gitops/gitops.h"
#include "stratus/ipam/ipam.h"
#include "stratus/address/address.h"
#include "stratus/nodelifecycle/nodelifecycle.h"
#include "stratus/placement/placement.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"
#include "stratus/runtime/informer_factory.h"
#include "stratus/runtime/leader.h"
#include "stratus/summary/summary.h"
#include "stratus/ec2/api.h"
#include "stratus/ec2/keys.h"
#include "stratus/ec2/listener.h"

namespace {

struct ServerFlags {
  std::string listen = "127.0.0.1:8774";
  std::string data_dir = "/var/lib/stratus";
  size_t max_body = 3 * 1024 * 1024;
  size_t history = 10000;
  bool agent = true;
  bool sync_full = true;
  int node_grace_seconds = 40;
  int evacuation_grace_seconds = 60;
  double cpu_overcommit = 4.0;
  double memory_overcommit = 1.0;
  double disk_overcommit = 1.0;
  int lease_seconds = 15;
  std::string store = "sqlite";
  std::string etcd_endpoints, etcd_prefix = "/stratus/", etcd_ca_file, etcd_cert_file, etcd_key_file;
  std::string scheduler_strategy = "spread";
  int placement_workers = 8;
  std::string ec2_listen = "127.0.0.1:8773";  // "off" turns the EC2 endpoint off
  std::string ec2_region = "us-east-1";
  std::string default_quota;  // "instances=10,cores=20,...": limits of namespaces without a Quota
  std::string audit_log;      // "" = DATA_DIR/audit.log; "off" = none
  int audit_log_max_mb = 64;
  double user_qps = 50;       // per-user request rate (cluster-admins and nodes are not limited)
  double user_burst = 100;
  // TLS: a certificate and key given, or (neither given) one made under DATA_DIR/tls for localhost, 127.0.0.1,
  // ::1 and tls_sans. insecure_http serves plain http instead.
  std::string tls_cert;
  std::string tls_key;
  std::vector<std::string> tls_sans;
  bool insecure_http = false;
};

// What an agent authenticates with: the node credential kept in its data dir, else a new one made with the
// bootstrap token (the bootstrap token itself can do nothing else), else the token of --token-file.
stratus::StatusOr<std::string> AgentToken(const std::string& server, const stratus::agent::Options& opts,
                                          const std::string& token_file, const std::string& bootstrap_file) {
  using namespace stratus;
  auto read = [](const std::string& path) -> StatusOr<std::string> {
    std::ifstream in(path);
    std::string t;
    if (!in || !std::getline(in, t) || t.empty()) return Status(Code::kBadRequest, "cannot read a token from " + path);
    return t;
  };
  if (!token_file.empty()) return read(token_file);
  if (bootstrap_file.empty()) return std::string();
  std::string cred = (std::filesystem::path(opts.data_dir) / "node.token").string();
  if (std::filesystem::exists(cred)) return read(cred);
  auto bootstrap = read(bootstrap_file);
  if (!bootstrap.ok()) return bootstrap.status();
  std::string node = opts.node;
  if (node.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    node = host;
  }
  HttpClientOptions co;
  co.bearer_token = *bootstrap;
  co.ca_file = opts.api_ca_file;
  co.field_manager = "stratus-agent";
  auto client = NewHttpApiClient(server, co);
  json req = {{"apiVersion", "stratus.io/v1"},
              {"kind", "Token"},
              {"metadata", {{"generateName", "node-"}}},
              {"spec", {{"user", std::string(UserInfo::kNodePrefix) + node},
                        {"description", "node credential of " + node + ", made with the bootstrap token"}}}};
  auto made = client->Create("tokens", "", req);
  if (!made.ok()) return Status(made.status().code(), "joining with the bootstrap token: " + made.status().message());
  std::string token = (*made)["status"].value("token", "");
  if (token.empty()) return Internal("the server answered no token to the join");
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir, ec);
  Status w = WriteFileAtomic(cred, token + "\n", 0600);
  if (!w.ok()) return w;
  return token;
}

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Blocks SIGTERM/SIGINT in the calling thread and so in every thread it starts later. Must run before the first
// thread exists: the kernel hands a process-directed signal to any thread that does not block it, and one that
// reached a pool thread before main sat in sigwait() killed the process (default action) instead of shutting
// it down (ApiTest.SigtermShutsDownGracefully under load, SIGTERM 0.25 s after start).
void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// Leaves at once, without running destructors (output flushed first).
[[noreturn]] void ExitNow(int code) {
  std::cerr.flush();
  std::fflush(nullptr);
  spdlog::shutdown();
  ::_exit(code);
}

// Waits for SIGTERM/SIGINT; from then on a second one exits at once (the operator insists).
int WaitForTermination(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  std::thread([set] {
    int again = 0;
    sigwait(&set, &again);
    std::cerr << "stratusd: second signal " << again << ", exiting now" << std::endl;
    ExitNow(130);
  }).detach();
  return sig;
}

// Cluster-wide reconcilers run by the server: placement (instances, volumes), IPAM and node lifecycle.
struct ClusterControllers {
  ClusterControllers(stratus::ApiClient* client, stratus::ApiClient* gitops_client,
                     stratus::runtime::InformerFactory* informers, const ServerFlags& f) {
    using namespace stratus;
    runtime::Informer* instances = informers->For("instances");
    runtime::Informer* nodes = informers->For("nodes");
    runtime::Informer* flavors = informers->For("instancetypes");
    runtime::Informer* volumes = informers->For("volumes");
    runtime::Informer* images = informers->For("images");
    runtime::Informer* networks = informers->For("networks");
    placement::Options po;
    po.cpu_overcommit = f.cpu_overcommit;
    po.memory_overcommit = f.memory_overcommit;
    po.disk_overcommit = f.disk_overcommit;
    po.strategy = f.scheduler_strategy;
    po.heartbeat_grace_seconds = f.node_grace_seconds;
    placement = std::make_unique<placement::PlacementReconciler>(client, instances, nodes, flavors, po, volumes, images,
                                                                 informers->For("instancegroups"));
    // Several workers: each decides and assumes under the capacity cache's lock (so they never overcommit a node)
    // and then writes its bind outside it, so the binds of a burst share the store's group commits.
    specs.push_back({placement.get(), f.placement_workers});
    volume_placement = std::make_unique<placement::VolumePlacementReconciler>(client, volumes, nodes, instances, po,
                                                                          informers->For("volumesnapshots"));
    specs.push_back({volume_placement.get(), f.placement_workers});
    ipam = std::make_unique<ipam::IpamReconciler>(client, networks, instances);
    // One worker: the allocation table of a network has a single writer here (and optimistic concurrency
    // against any other).
    specs.push_back({ipam.get(), 1});
    // Floating addresses: one worker, as IPAM (each pool's table has a single writer here, and optimistic
    // concurrency against any other).
    addresses = std::make_unique<address::AddressReconciler>(client, informers->For("addresspools"),
                                                             informers->For("addresses"), instances, networks);
    specs.push_back({addresses.get(), 1});
    // Single writers of the top-level Image and Network status, from the nodes' own entries.
    image_summary = std::make_unique<summary::SummaryReconciler>(client, "images", images, nodes, summary::SummarizeImage);
    network_summary =
        std::make_unique<summary::SummaryReconciler>(client, "networks", networks, nodes, summary::SummarizeNetwork);
    for (auto* rec : {image_summary.get(), network_summary.get()}) {
      specs.push_back({rec, 1});
    }
    lifecycle = std::make_unique<nodelifecycle::NodeLifecycleReconciler>(
        client, nodes, std::chrono::seconds(f.node_grace_seconds), instances,
        std::chrono::seconds(f.evacuation_grace_seconds));
    specs.push_back({lifecycle.get(), 1});
    // Migrations: the server's phases (target chosen, then the instance bound to it once its domain runs there).
    migrations = std::make_unique<migration::MigrationReconciler>(client, informers->For("migrations"), instances,
                                                                 nodes, flavors, po);
    specs.push_back({migrations.get(), 2});
    // GitOps: repositories cached under the data dir; its applies go through their own client, whose writes are
    // the stratus-gitops field manager's. Two workers: one slow repository does not hold up another.
    fetcher = gitops::NewLibgit2Fetcher((std::filesystem::path(f.data_dir) / "gitops").string());
    gitops = std::make_unique<gitops::ManifestSourceReconciler>(gitops_client, informers->For("manifestsources"),
                                                                fetcher.get());
    specs.push_back({gitops.get(), 2});
    // The caches are kept warm on every server; only the leader runs the workers (Lead/Unlead).
    informers->Start();
  }
  ~ClusterControllers() { Unlead(); }
  // Called by the leader elector: this server now runs the cluster reconcilers (fresh controllers over the same
  // reconcilers and caches; each controller's workers wait until the caches its reconciler reads have listed).
  void Lead() {
    std::lock_guard lock(mu);
    if (!running.empty()) return;
    for (const auto& [rec, workers] : specs) running.push_back(std::make_unique<stratus::runtime::Controller>(rec, workers));
    for (auto& c : running) c->Start();
  }
  // Another server leads now (or this one stops): the workers stop before the lease can pass on.
  void Unlead() {
    std::lock_guard lock(mu);
    for (auto& c : running) c->Stop();
    running.clear();
  }
  std::mutex mu;
  std::vector<std::pair<stratus::runtime::Reconciler*, int>> specs;
  std::vector<std::unique_ptr<stratus::runtime::Controller>> running;
  std::unique_ptr<stratus::gitops::GitFetcher> fetcher;
  std::unique_ptr<stratus::gitops::ManifestSourceReconciler> gitops;
  std::unique_ptr<stratus::ipam::IpamReconciler> ipam;
  std::unique_ptr<stratus::address::AddressReconciler> addresses;
  std::unique_ptr<stratus::placement::PlacementReconciler> placement;
  std::unique_ptr<stratus::placement::VolumePlacementReconciler> volume_placement;
  std::unique_ptr<stratus::nodelifecycle::NodeLifecycleReconciler> lifecycle;
  std::unique_ptr<stratus::migration::MigrationReconciler> migrations;
  std::unique_ptr<stratus::summary::SummaryReconciler> image_summary, network_summary;
};

// Starts the agent, retrying in the background while libvirt is unreachable, until `stop`.
class AgentRunner {
 public:
  AgentRunner(stratus::ApiClient* client, stratus::agent::Options opts) : client_(client), opts_(std::move(opts)) {
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!stop_) {
        lock.unlock();
        auto a = std::make_unique<stratus::agent::NodeAgent>(client_, opts_);
        stratus::Status s = a->Start();
        lock.lock();
        if (s.ok()) {
          agent_ = std::move(a);
          return;
        }
        std::string reason = a->failure_reason();
        bool first = last_error_ != s.message();
        last_error_ = s.message();
        if (first) {
          spdlog::error("node agent cannot start, retrying every 10 s: reason={} error={}", reason, s.message());
          std::cerr << "stratusd: node agent cannot start (retrying): " << s.message() << std::endl;
        }
        if (!reason.empty()) {
          // Say it where users look: the Node's Ready condition (and one Event), not only this log.
          stratus::agent::Options named = a->options();
          stratus::Status r = stratus::agent::ReportNodeNotReady(client_, named, reason, s.message());
          if (!r.ok()) spdlog::warn("node condition not written: error={}", r.message());
        }
        cv_.wait_for(lock, std::chrono::seconds(10), [&] { return stop_; });
      }
    });
  }
  ~AgentRunner() { Stop(); }
  // Stops retrying and stops the agent (guests and their dnsmasq keep running).
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (agent_) agent_->Stop();
  }

 private:
  stratus::ApiClient* client_;
  stratus::agent::Options opts_;
  std::unique_ptr<stratus::agent::NodeAgent> agent_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string last_error_;
  std::thread thread_;
};

// The PEM text of a CA file ("" for no file).
std::string ReadPem(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sets up how the API is served: plain http (--insecure-http), the given --tls-cert/--tls-key, or a CA and serving
// certificate made (once; re-issued when names change or it nears expiry) under DATA_DIR/tls. `*ca_file` is the
// CA clients verify the server against when we made it, else "".
stratus::Status ConfigureTls(const ServerFlags& f, stratus::ApiServerOptions* ao, std::string* ca_file) {
  using stratus::InvalidError;
  if (f.insecure_http) {
    if (!f.tls_cert.empty() || !f.tls_key.empty() || !f.tls_sans.empty()) {
      return InvalidError("--insecure-http cannot be combined with --tls-cert, --tls-key or --tls-san");
    }
    spdlog::warn("serving plain http (--insecure-http): requests and tokens travel unencrypted");
    return stratus::Status::Ok();
  }
  if (f.tls_cert.empty() != f.tls_key.empty()) return InvalidError("--tls-cert and --tls-key go together");
  if (!f.tls_cert.empty()) {
    if (!f.tls_sans.empty()) return InvalidError("--tls-san names the generated certificate; not with --tls-cert");
    ao->tls_cert_file = f.tls_cert;
    ao->tls_key_file = f.tls_key;
    return stratus::Status::Ok();
  }
  auto files = stratus::EnsureServingCertificate((std::filesystem::path(f.data_dir) / "tls").string(), f.tls_sans);
  if (!files.ok()) return files.status();
  ao->tls_cert_file = files->cert;
  ao->tls_key_file = files->key;
  *ca_file = files->ca_cert;
  spdlog::info("tls: clients verify the API server with ca={} (cert={} ca_created={} cert_issued={})",
               files->ca_cert, files->cert, files->ca_created, files->cert_issued);
  std::cerr << "stratusd: TLS CA " << files->ca_cert << " (stratusctl --certificate-authority, curl --cacert)"
            << std::endl;
  return stratus::Status::Ok();
}

// Opens "sqlite:DIR" or "etcd:URL,URL" (the store of `stratusd server --data-dir DIR` / `--store etcd`).
stratus::StatusOr<std::unique_ptr<stratus::Store>> OpenStoreSpec(const std::string& spec) {
  using namespace stratus;
  if (spec.rfind("sqlite:", 0) == 0) {
    SqliteStoreOptions so;
    so.path = (std::filesystem::path(spec.substr(7)) / "stratus.db").string();
    return OpenSqliteStore(so);
  }
  if (spec.rfind("etcd:", 0) == 0) {
    EtcdStoreOptions eo;
    std::stringstream eps(spec.substr(5));
    for (std::string ep; std::getline(eps, ep, ',');) {
      if (!ep.empty()) eo.endpoints.push_back(ep);
    }
    return OpenEtcdStore(eo);
  }
  return BadRequest("\"" + spec + "\": use sqlite:DATA_DIR or etcd:URL,URL,...");
}

// Copies every object of every kind, as stored (uids, finalizers, status and managed fields kept; resourceVersions
// are the destination's). Refuses a destination that holds objects: a half-copied or mixed store is never made.
int MigrateStore(const std::string& from, const std::string& to) {
  using namespace stratus;
  auto src = OpenStoreSpec(from);
  if (!src.ok()) {
    std::cerr << "error: --from: " << src.status().message() << "\n";
    return 1;
  }
  auto dst = OpenStoreSpec(to);
  if (!dst.ok()) {
    std::cerr << "error: --to: " << dst.status().message() << "\n";
    return 1;
  }
  for (const auto& r : AllResources()) {
    StoreListOptions lo;
    lo.plural = r.plural;
    lo.limit = 1;
    if (!(*dst)->List(lo).items.empty()) {
      std::cerr << "error: --to already holds " << r.plural << ": migrate into an empty store\n";
      return 1;
    }
  }
  size_t copied = 0;
  for (const auto& r : AllResources()) {
    StoreListOptions lo;
    lo.plural = r.plural;
    auto list = (*src)->List(lo);
    for (const auto& obj : list.items) {
      ObjectKey key = KeyOf(r.plural, *obj);
      auto c = (*dst)->Create(key, *obj);
      if (!c.ok()) {
        std::cerr << "error: " << key.ToString() << ": " << c.status().message() << "\n";
        return 1;
      }
      ++copied;
    }
    if (!list.items.empty()) std::cerr << "migrate-store: " << r.plural << ": " << list.items.size() << "\n";
  }
  std::cerr << "migrate-store: copied " << copied << " objects from " << from << " to " << to << std::endl;
  return 0;
}

// This server's identity for leader election: the host name and an id kept in the data dir (made once).
std::string ServerIdentity(const std::string& data_dir) {
  std::string path = (std::filesystem::path(data_dir) / "server-id").string();
  std::ifstream in(path);
  std::string id;
  if (!(in && std::getline(in, id) && !id.empty())) {
    id = stratus::NewUuid().substr(0, 8);
    stratus::Status w = stratus::WriteFileAtomic(path, id + "\n", 0600);
    if (!w.ok()) spdlog::warn("server id not saved: path={} error={}", path, w.message());
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "_" + id;
}

int RunServer(const ServerFlags& f, stratus::agent::Options aopts) {
  using namespace stratus;
  const std::string& data_dir = f.data_dir;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    spdlog::critical("cannot create data dir: path={} error={}", data_dir, ec.message());
    std::cerr << "error: cannot create --data-dir " << data_dir << ": " << ec.message() << "\n";
    return 1;
  }
  // Termination signals are blocked in every thread (main does it first); this thread waits for them below.
  sigset_t set = TerminationSignals();

  StatusOr<std::unique_ptr<Store>> store = Status(Code::kInternal, "no store");
  if (f.store == "etcd") {
    // Desired state in etcd (HA); the data dir keeps the rest (TLS, tokens' files, uploads, the agent's state).
    EtcdStoreOptions eo;
    std::stringstream eps(f.etcd_endpoints);
    for (std::string ep; std::getline(eps, ep, ',');) {
      if (!ep.empty()) eo.endpoints.push_back(ep);
    }
    eo.prefix = f.etcd_prefix;
    eo.ca_file = f.etcd_ca_file;
    eo.cert_file = f.etcd_cert_file;
    eo.key_file = f.etcd_key_file;
    store = OpenEtcdStore(eo);
  } else {
    SqliteStoreOptions so;
    so.path = (std::filesystem::path(data_dir) / "stratus.db").string();
    so.history_window = f.history;
    so.synchronous_full = f.sync_full;
    store = OpenSqliteStore(so);
  }
  if (!store.ok()) {
    std::cerr << "error: " << store.status().message() << "\n";
    return 1;
  }
  Registry registry(store->get(), &SchemaRegistry::Builtin());
  // Admission that needs the reconcilers' own rules: refused at the API, not discovered on every node.
  registry.AddValidator("Network", network::ValidateNetwork);
  registry.AddValidator("SecurityGroup", network::ValidateSecurityGroup);
  registry.AddValidator("Image", image::ValidateImage);
  registry.AddValidator("ManifestSource", gitops::ValidateManifestSource);
  // A resize (spec.instanceType or spec.resources of a bound instance) must fit its node as placement counts it:
  // refused here, naming the field and the node's reason, rather than found out when it restarts.
  {
    placement::Options fit;
    fit.cpu_overcommit = f.cpu_overcommit;
    fit.memory_overcommit = f.memory_overcommit;
    Store* st = store->get();
    registry.AddUpdateValidator("Instance", [st, fit](const json& cur, const json& next) -> Status {
      const json& spec = next["spec"];
      std::string node = spec.value("nodeName", "");
      if (node.empty() || (cur["spec"].value("instanceType", "") == spec.value("instanceType", "") &&
                           cur["spec"].value("resources", json()) == spec.value("resources", json()))) {
        return Status::Ok();
      }
      const std::string field = spec.contains("resources") ? "spec.resources" : "spec.instanceType";
      std::map<std::string, json> flavors;
      StoreListOptions lo;
      lo.plural = "instancetypes";
      for (const auto& t : st->List(lo).items) flavors[MetaString(*t, "name")] = *t;
      auto demand = placement::DemandOf(next, flavors);
      if (!demand.ok()) return InvalidError(field + ": " + demand.status().message(), {{field, demand.status().message()}});
      auto node_obj = st->Get({"nodes", "", node});
      if (!node_obj.ok()) return Status::Ok();  // placement decides again when it comes
      lo.plural = "instances";
      const std::string uid = MetaString(next, "uid");
      lo.filter = [&](const json& i) {
        return i["spec"].value("nodeName", "") == node && MetaString(i, "uid") != uid &&
               MetaString(i, "deletionTimestamp").empty();
      };
      std::vector<json> others;
      for (const auto& i : st->List(lo).items) others.push_back(*i);
      std::string why = placement::ResizeMisfit(*demand, **node_obj, others, flavors, fit);
      if (why.empty()) return Status::Ok();
      std::string msg = "the new size does not fit node " + why + "; choose a smaller type or move the instance";
      return InvalidError(field + ": " + msg, {{field, msg, "FieldValueInvalid"}});
    });
  }
  auto default_quota = ParseQuotaAmounts(f.default_quota);
  if (!default_quota.ok()) {
    std::cerr << "error: --default-quota: " << default_quota.status().message() << "\n";
    return 1;
  }
  registry.SetDefaultQuota(*default_quota);
  Status b = registry.Bootstrap();
  if (!b.ok()) {
    std::cerr << "error: bootstrap: " << b.ToString() << "\n";
    return 1;
  }
  // The first administrator and the agents' bootstrap token (both files 0600 in the data dir).
  auto admin_token = EnsureTokenFile(&registry, (std::filesystem::path(data_dir) / "admin.token").string(), "admin",
                                     "admin", /*cluster_admin=*/true);
  if (!admin_token.ok()) {
    std::cerr << "error: admin credentials: " << admin_token.status().message() << "\n";
    return 1;
  }
  auto bootstrap_token = EnsureTokenFile(&registry, (std::filesystem::path(data_dir) / "bootstrap.token").string(),
                                         "bootstrap", "system:bootstrap", false);
  if (!bootstrap_token.ok()) {
    std::cerr << "error: bootstrap token: " << bootstrap_token.status().message() << "\n";
    return 1;
  }
  registry.StartBackground();
  // AccessKeys' secrets are derived from this key (never stored with the objects).
  auto master_key = ec2::LoadOrCreateMasterKey((std::filesystem::path(data_dir) / "ec2-access-keys.key").string());
  if (!master_key.ok()) {
    std::cerr << "error: " << master_key.status().message() << "\n";
    return 1;
  }
  ApiServerOptions ao;
  ao.ec2_master_key = *master_key;
  ao.listen = f.listen;
  ao.max_body_bytes = f.max_body;
  ao.upload_dir = (std::filesystem::path(data_dir) / "images").string();
  if (f.audit_log != "off") {
    ao.audit_log = f.audit_log.empty() ? (std::filesystem::path(data_dir) / "audit.log").string() : f.audit_log;
  }
  ao.audit_max_bytes = static_cast<uint64_t>(f.audit_log_max_mb) << 20;
  ao.user_qps = f.user_qps;
  ao.user_burst = f.user_burst;
  std::string tls_ca;
  if (Status t = ConfigureTls(f, &ao, &tls_ca); !t.ok()) {
    std::cerr << "error: " << t.message() << "\n";
    return 1;
  }
  ApiServer server(&registry, ao);
  // The admin's client config (kubeconfig format, 0600), written before the server answers so that whoever sees
  // it healthy finds the config: `STRATUS_CONFIG=... stratusctl` and `KUBECONFIG=... kubectl`.
  std::string admin_config = (std::filesystem::path(data_dir) / "admin.kubeconfig").string();
  Status wrote = SaveKubeconfig(MakeKubeconfig("stratus", server.url(), *admin_token, ReadPem(tls_ca)), admin_config);
  if (!wrote.ok()) spdlog::warn("admin config not written: path={} error={}", admin_config, wrote.message());
  Status s = server.Start();
  if (!s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  std::cerr << "stratusd: serving on " << server.url() << " (data dir " << data_dir << ")" << std::endl;
  std::cerr << "stratusd: admin credentials in " << admin_config << " (export STRATUS_CONFIG=" << admin_config
            << "); agents join with --bootstrap-token-file "
            << (std::filesystem::path(data_dir) / "bootstrap.token").string() << std::endl;
  auto local = NewLocalApiClient(&registry);
  // The EC2 Query API: a translation onto the same objects, served in-process, writing as its own field manager.
  auto ec2_local = NewLocalApiClient(&registry, "stratus-ec2");
  auto ec2_keys = ec2::NewObjectAccessKeys(ec2_local.get(), *master_key);
  ec2::ApiOptions ec2_opts;
  ec2_opts.region = f.ec2_region;
  // EC2 callers are authorized as their key's user, by the same RoleBindings as the main API.
  auto ec2_authn = std::make_shared<Authenticator>(&registry);
  auto ec2_authz = std::make_shared<Authorizer>(&registry);
  ec2_opts.authorize = [ec2_authn, ec2_authz](const ec2::AccessKey& k, const std::string& verb,
                                              const std::string& plural) -> Status {
    Status s = ec2_authn->CheckUser(k.user);
    if (!s.ok()) return s;
    RequestAttributes a;
    a.verb = verb;
    a.resource = FindByPlural(plural);
    a.ns = k.ns;
    if (plural == "namespaces") {  // "may this key use its namespace at all"
      a.ns = "";
      a.name = k.ns;
    }
    return ec2_authz->Authorize(UserInfo{k.user}, a);
  };
  // GetConsoleOutput: EC2 handlers run on a thread that may wait; the log is read from the instance's agent.
  ec2_opts.console_output = [&registry](const std::string& ns, const std::string& name) {
    return ReadConsoleLog(registry, ns, name, 64 * 1024, 10);
  };
  ec2::Api ec2_api(ec2_local.get(), ec2_keys.get(), ec2_opts);
  std::unique_ptr<ec2::Listener> ec2_listener;
  if (!f.ec2_listen.empty() && f.ec2_listen != "off") {
    // TLS like the main API (its certificate), plain http only when the main API is.
    ec2_listener = std::make_unique<ec2::Listener>(&ec2_api, f.ec2_listen, 1 << 20, ao.tls_cert_file, ao.tls_key_file);
    Status es = ec2_listener->Start();
    if (!es.ok()) {
      std::cerr << "error: " << es.message() << " (--ec2-listen off turns the EC2 endpoint off)\n";
      ExitNow(1);
    }
    std::cerr << "stratusd: EC2 API on " << ec2_listener->url() << " (region " << f.ec2_region << ")" << std::endl;
  }
  // One informer per collection for the cluster reconcilers and the embedded agent alike.
  auto informers = std::make_unique<runtime::InformerFactory>(local.get());
  auto gitops_local = NewLocalApiClient(&registry, gitops::kFieldManager);
  auto cluster = std::make_unique<ClusterControllers>(local.get(), gitops_local.get(), informers.get(), f);
  // The cluster reconcilers run on one server at a time: the holder of the Lease "stratus-controllers" (several
  // servers share one etcd). A server's identity is stable across its restarts, so a restarted leader leads again
  // at once instead of waiting for its own old lease to expire.
  runtime::LeaderOptions lo;
  lo.identity = ServerIdentity(data_dir);
  lo.duration = std::chrono::milliseconds(f.lease_seconds * 1000);
  lo.renew_deadline = lo.duration * 2 / 3;
  lo.retry = std::max(std::chrono::milliseconds(200), lo.duration * 2 / 15);
  ClusterControllers* cc = cluster.get();
  auto elector = std::make_unique<runtime::LeaderElector>(local.get(), lo, [cc] { cc->Lead(); }, [cc] { cc->Unlead(); });
  elector->Start();
  std::unique_ptr<AgentRunner> agent;
  if (f.agent) {
    if (aopts.data_dir.empty()) aopts.data_dir = (std::filesystem::path(data_dir) / "agent").string();
    if (aopts.api_url.empty()) aopts.api_url = server.url();
    if (aopts.api_ca_file.empty()) aopts.api_ca_file = tls_ca;
    aopts.api_token = *admin_token;  // in-process and trusted: it fetches uploaded image data as the admin
    aopts.informers = informers.get();
    agent = std::make_unique<AgentRunner>(local.get(), aopts);
  }
  int sig = WaitForTermination(set);
  spdlog::warn("shutting down: signal={}", sig);
  // Refuse new requests and end every watch first (remote agents and clients see their streams end), then stop
  // the reconcilers, then flush and close the store.
  if (ec2_listener) ec2_listener->Stop();
  if (!server.Stop(std::chrono::seconds(3))) {
    // A handler or connection is still busy after the grace period: tearing down the store under it would crash.
    // Every acknowledged write is already durable (each commit is synced), so leave without destructors.
    std::cerr << "stratusd: requests still running at shutdown; exiting without waiting for them" << std::endl;
    ExitNow(0);
  }
  agent.reset();
  elector.reset();  // stops leading (the workers stop) and releases the lease to the next server
  cluster.reset();
  informers.reset();
  registry.StopBackground();
  store->reset();  // flushed and closed: everything acknowledged is on disk
  std::cerr << "stratusd: stopped" << std::endl;
  // The HTTP listeners stay open until the process ends (see ApiServer::Stop); leave without running static
  // destructors under cpprestsdk's threads.
  ExitNow(0);
}

int RunAgent(const std::string& server, stratus::agent::Options opts, const std::string& token_file,
             const std::string& bootstrap_file) {
  sigset_t set = TerminationSignals();
  auto token = AgentToken(server, opts, token_file, bootstrap_file);
  if (!token.ok()) {
    std::cerr << "error: " << token.status().message() << "\n";
    return 1;
  }
  stratus::HttpClientOptions copts;
  copts.bearer_token = *token;
  copts.ca_file = opts.api_ca_file;
  copts.field_manager = "stratus-agent";
  auto client = stratus::NewHttpApiClient(server, copts);
  if (opts.api_url.empty()) opts.api_url = server;
  opts.api_token = *token;  // uploaded image data is fetched from the API with it
  AgentRunner runner(client.get(), opts);
  std::cerr << "stratusd agent: registering with " << server << std::endl;
  int sig = WaitForTermination(set);
  spdlog::warn("agent shutting down: signal={}", sig);
  runner.Stop();
  std::cerr << "stratusd agent: stopped" << std::endl;
  ExitNow(0);  // as the server: the agent's HTTP endpoint is left open to the process exit
}

}  // namespace

int main(int argc, char** argv) {
  BlockTerminationSignals();  // before any thread starts (cpprestsdk's pool, spdlog, the store)
  CLI::App app{"stratusd: the Stratus API server and node agent"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags such as --log-level may follow the subcommand
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  int http_threads = 0;
  app.add_option("--http-threads", http_threads,
                 "threads serving HTTP (the API, agent endpoints, clients); 0 = 2 per core, at least 4")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));

  auto* server = app.add_subcommand("server", "run the API server, the cluster reconcilers and an embedded node agent");
  ServerFlags f;
  stratus::agent::Options ao;
  ao.data_dir = "";
  server->add_option("--listen", f.listen, "host:port to serve the API on")->capture_default_str();
  server->add_option("--ec2-listen", f.ec2_listen, "host:port of the EC2 Query API, or off")->capture_default_str();
  server->add_option("--default-quota", f.default_quota,
                     "limits of namespaces without a Quota, e.g. instances=10,cores=20,ramMiB=51200,volumes=10,"
                     "gigabytes=1000 (none by default)");
  server->add_option("--ec2-region", f.ec2_region, "the one region the EC2 API serves")->capture_default_str();
  server->add_option("--data-dir", f.data_dir, "directory for the SQLite store (and the embedded agent)")->capture_default_str();
  server->add_option("--tls-cert", f.tls_cert, "PEM certificate chain to serve https with (with --tls-key)");
  server->add_option("--tls-key", f.tls_key, "PEM private key of --tls-cert");
  server->add_option("--tls-san", f.tls_sans,
                     "extra DNS name or IP address of the certificate made in DATA_DIR/tls (repeatable)")
      ->delimiter(',');
  server->add_flag("--insecure-http", f.insecure_http,
                   "serve plain http instead of https (only where TLS is not wanted, e.g. tests)");
  server->add_option("--max-body-bytes", f.max_body, "largest accepted request body")->capture_default_str();
  server->add_option("--store", f.store, "where desired state lives: sqlite (embedded, in the data dir) or etcd")
      ->check(CLI::IsMember({"sqlite", "etcd"}))
      ->capture_default_str();
  server->add_option("--etcd-endpoints", f.etcd_endpoints, "with --store etcd: URL,URL,... of etcd's client endpoints");
  server->add_option("--etcd-prefix", f.etcd_prefix, "key prefix of this cluster's objects in etcd")->capture_default_str();
  server->add_option("--etcd-ca-file", f.etcd_ca_file, "CA of etcd's https certificate");
  server->add_option("--etcd-cert-file", f.etcd_cert_file, "client certificate for etcd (--client-cert-auth)");
  server->add_option("--etcd-key-file", f.etcd_key_file, "key of the client certificate");
  server->add_option("--leader-lease-seconds", f.lease_seconds,
                     "leader election of the cluster reconcilers: lease duration (renew deadline 2/3 of it)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  server->add_option("--watch-history", f.history, "changes kept for watch resume; older versions get 410")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10000000}));
  server->add_option("--agent", f.agent, "run an embedded node agent")->capture_default_str();
  server->add_option("--fsync", f.sync_full, "fsync every commit (synchronous=FULL)")->capture_default_str();
  server->add_option("--node-grace-seconds", f.node_grace_seconds, "heartbeat age after which a node is NotReady")
      ->capture_default_str()->check(CLI::Range(1, 86400));
  server->add_option("--evacuation-grace-seconds", f.evacuation_grace_seconds,
                     "how long a node must have been NotReady before its instances with evacuationPolicy Evacuate "
                     "are rebuilt on other nodes")
      ->capture_default_str()->check(CLI::Range(0, 86400));
  server->add_option("--cpu-overcommit", f.cpu_overcommit, "vcpus placed per allocatable host cpu")->capture_default_str();
  server->add_option("--memory-overcommit", f.memory_overcommit, "memory placed per allocatable MiB")->capture_default_str();
  server->add_option("--disk-overcommit", f.disk_overcommit, "root-disk bytes placed per byte of pool capacity")
      ->capture_default_str();
  server->add_option("--scheduler-strategy", f.scheduler_strategy,
                     "spread (emptiest node first) or pack (fullest node first)")
      ->check(CLI::IsMember({"spread", "pack"}))
      ->capture_default_str();
  server->add_option("--placement-workers", f.placement_workers,
                     "instances (and volumes) placement binds at once; decisions stay one at a time")
      ->capture_default_str()
      ->check(CLI::Range(1, stratus::placement::kMaxPlacementWorkers));

  auto* agent = app.add_subcommand("agent", "run a node agent that registers this host with an API server");
  std::string agent_server = "https://127.0.0.1:8774";
  agent->add_option("--server", agent_server, "API server URL")->capture_default_str();
  std::string agent_token_file, agent_bootstrap_file;
  agent->add_option("--token-file", agent_token_file, "file holding the bearer token the agent authenticates with");
  agent->add_option("--bootstrap-token-file", agent_bootstrap_file,
                    "file holding the cluster's bootstrap token (DATA_DIR/bootstrap.token of the server): the agent "
                    "joins with it once and keeps its node credential in its data dir");
  server->add_option("--audit-log", f.audit_log, "audit log file (default DATA_DIR/audit.log), or off");
  server->add_option("--audit-log-max-mb", f.audit_log_max_mb, "the audit log rotates past this size")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  server->add_option("--user-qps", f.user_qps,
                     "requests per second per user (token bucket; cluster-admins and nodes are not limited; 0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  server->add_option("--user-burst", f.user_burst, "requests a user may send at once before --user-qps applies")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e9));
  agent->add_option("--certificate-authority", ao.api_ca_file,
                    "PEM file of the CA that signed the API server's certificate (DATA_DIR/tls/ca.crt on it)");
  for (CLI::App* a : {server, agent}) {
    bool is_agent = a == agent;
    a->add_option("--node", ao.node, "Node name (default: hostname)")
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
              // It names the Node object and its stratus.io/hostname label, and goes into libvirt pool names.
              stratus::Status s = stratus::ValidateDns1123Subdomain(v, "--node");
              if (s.ok() && v.size() > 63) s = stratus::InvalidError("--node must be at most 63 characters");
              std::string m = s.message();
              if (m.rfind("--node: ", 0) == 0) m = m.substr(8);  // CLI11 names the option itself
              return s.ok() ? std::string() : m;
            },
            "NODE"));
    a->add_option("--pool", ao.pools,
                  "volume storage pool NAME=dir:PATH or NAME=logical:VG (repeatable; a dir pool named default "
                  "is made in the data dir unless given)");
    a->add_option("--libvirt-uri", ao.libvirt_uri, "libvirt URI (test:///default for tests)")->capture_default_str();
    a->add_option("--agent-listen", ao.listen, "the agent's endpoint (console logs)")->capture_default_str();
    a->add_option("--zone", ao.zone, "value of the node's stratus.io/zone label")->capture_default_str();
    a->add_option("--virt-type", ao.virt_type, "auto|kvm|qemu")->check(CLI::IsMember({"auto", "kvm", "qemu"}))->capture_default_str();
    a->add_option("--reserved-memory-mib", ao.reserved_memory_mib, "memory kept for the host")->capture_default_str();
    a->add_option("--heartbeat-seconds", [&ao](const CLI::results_t& r) {
      ao.heartbeat = std::chrono::seconds(std::stoi(r[0]));
      return true;
    }, "seconds between heartbeats (default 10)");
    a->add_option("--seed-disks", ao.seed_disks,
                  "give instances a NoCloud seed cdrom (hostname, key pair, user data, network-config; needs xorriso)")
        ->capture_default_str();
    a->add_option("--networking", ao.networking,
                  "run the node's network reconciler (bridges, dnsmasq, nftables) and give instances NICs")
        ->capture_default_str();
    a->add_option("--netns", ao.netns,
                  "with --networking: network namespace (ip netns name) that libvirtd runs in; bridges, dnsmasq and "
                  "nftables are made there");
    a->add_option("--underlay-interface", ao.underlay_interface,
                  "with --networking: the device (in --netns) that links the hosts; every nat or isolated Network "
                  "joins a VXLAN segment over it, so one Network spans hosts")
        ->check([](const std::string& v) { return stratus::host::ValidateIfName(v, "--underlay-interface").message(); });
    a->add_option("--migration-uri", ao.migration_uri,
                  "libvirt URI by which other hosts' libvirtd reach this host's, for live migration (default: "
                  "--libvirt-uri)");
    a->add_option("--migration-address", ao.migration_address,
                  "address on this host where incoming migrations' QEMU listens (default: the underlay address)");
    a->add_flag("--debug-endpoints", ao.debug_endpoints, "serve fault-injection endpoints (tests only)");
    if (is_agent) a->add_option("--data-dir", ao.data_dir, "agent state: image pool, console logs");
    else a->add_option("--agent-data-dir", ao.data_dir, "embedded agent state (default DATA_DIR/agent)");
  }

  std::string migrate_from, migrate_to;
  auto* migrate = app.add_subcommand("migrate-store",
                                     "copy every object from one store to another, keeping uids (stop the servers first)");
  migrate->add_option("--from", migrate_from, "sqlite:DATA_DIR or etcd:URL,URL,...")->required();
  migrate->add_option("--to", migrate_to, "sqlite:DATA_DIR or etcd:URL,URL,... (must hold no objects)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*migrate) return MigrateStore(migrate_from, migrate_to);
  // cpprestsdk runs every listener, client and continuation on one shared pool, 40 threads by default; on two
  // cores most of that is context switches (bench/README.md: 25 per GET at 8 clients, get p99 19 ms at 32). No
  // request handler waits for the store any more (a write replies from its commit's completion), so the pool only
  // needs threads for CPU work: every idle thread costs wake-ups (asio hands its reactor from thread to thread),
  // measured 22 context switches per create at 8 clients with 8 threads, 9 with 4, 4 with 2 (etcd: 7-8), while 2
  // threads slowed 1,000-object lists at 32 clients. 2 per core, at least 4.
  if (http_threads == 0) http_threads = static_cast<int>(std::max(4u, 2 * std::thread::hardware_concurrency()));
  try {
    crossplat::threadpool::initialize_with_threads(static_cast<size_t>(http_threads));
  } catch (const std::exception& e) {
    spdlog::warn("http thread pool already initialized: error={}", e.what());
  }
  auto level = spdlog::level::from_str(log_level);
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (*agent) {
    try {
      if (ao.data_dir.empty()) ao.data_dir = "/var/lib/stratus/agent";
      return RunAgent(agent_server, ao, agent_token_file, agent_bootstrap_file);
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  if (*server) {
    try {
      return RunServer(f, ao);
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  return 0;
}
