// The node agent: registers this host's Node (capacity read from libvirt), heartbeats, runs the node-local
// reconcilers (image cache, instances) for what is placed here, and serves console logs to the API server.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/core/status.h"

namespace stratus::runtime {
class InformerFactory;
}

namespace stratus::agent {

struct Options {
  std::string node;                         // Node name; defaults to the hostname
  std::string libvirt_uri = "qemu:///system";
  std::string data_dir = "/var/lib/stratus/agent";
  std::string listen = "127.0.0.1:8775";    // the agent's own endpoint (console logs, domain listing)
  std::string advertise;                    // URL the API server uses to reach it; default http://<listen>
  std::string api_url;                      // the API server's URL (uploaded image data is fetched from it)
  std::string api_ca_file;                  // PEM CA the https API server is verified against ("" = system CAs)
  std::string api_token;                    // bearer token for the API server's URL (image data downloads)
  std::string zone = "default";
  std::map<std::string, std::string> labels;
  int reserved_vcpus = 0;
  int64_t reserved_memory_mib = 512;
  std::string virt_type = "auto";           // auto | kvm | qemu
  std::chrono::seconds heartbeat{10};
  std::chrono::seconds shutdown_timeout{30};
  int workers = 2;
  // Volume storage pools: "NAME=dir:PATH" or "NAME=logical:VG" (an existing LVM volume group). A `dir` pool
  // named "default" in DATA_DIR/pools/default exists unless one named "default" is given.
  std::vector<std::string> pools;
  // Run the node's network reconciler (Linux bridges, dnsmasq, nftables) in this process's network namespace,
  // and give instances NICs. Off: instances boot without NICs and say so (NetworkReady=False).
  bool networking = false;
  // With networking: the network namespace (name under /run/netns) the network reconciler acts in — the one
  // libvirtd runs in, so that its taps meet our bridges there. "" = this process's namespace.
  std::string netns;
  // With networking: the underlay device (in `netns`) whose IPv4 address is this node's VXLAN tunnel endpoint
  // (reported as Node status.underlay); Networks then span every node that has one. "" = this host only.
  std::string underlay_interface;
  // Live migration: how other hosts' libvirtd reach this host's ("" = libvirt_uri) and the address incoming
  // migrations' QEMU listens on ("" = the underlay address). Reported in Node status.migration.
  std::string migration_uri;
  std::string migration_address;
  // Give every instance a NoCloud seed (cloud-init's cidata cdrom: hostname, the KeyPair's key, user data,
  // network-config), written with Debian's xorriso. Off, or xorriso missing: instances boot without one.
  bool seed_disks = true;
  bool debug_endpoints = false;             // fault injection for tests: destroy/undefine domains behind our back
  // Shared informers (the embedded agent uses the server's, so each collection is watched once per process);
  // null: the agent makes and owns its own.
  runtime::InformerFactory* informers = nullptr;
};

struct PoolSpec {
  std::string name, type, path, vg;
};
// Parses one --pool value; kInvalid naming the problem ("fast=ssd:/x": type must be dir or logical).
StatusOr<PoolSpec> ParsePoolSpec(const std::string& text);

// Registers (or updates) the Node as Ready=False with `reason` and `message` (what is wrong and what to do), and
// records a Warning Event when the condition changed: an agent that cannot work says so through the API.
Status ReportNodeNotReady(ApiClient* client, const Options& opts, const std::string& reason, const std::string& message);

class NodeAgent {
 public:
  NodeAgent(ApiClient* client, Options opts);
  ~NodeAgent();
  // Connects to libvirt, registers the Node and starts heartbeats, informers and reconcilers.
  Status Start();
  void Stop();
  const Options& options() const;
  // After a failed Start: the Node condition reason for it (LibvirtUnreachable, StoragePoolFailed,
  // NetworkNamespaceMissing, ...), "" when the failure was not the host's (e.g. the API unreachable).
  const std::string& failure_reason() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratus::agent
