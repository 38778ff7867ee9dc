// EtcdStore: the Store on etcd v3 (3.4), through etcd's HTTP/JSON gateway (/v3/kv/*, /v3/watch) with libcurl.
//
// Why the JSON gateway and not gRPC: bench/README.md measured etcd 3.4 through this gateway on this machine
// (4,602 durable creates/s at 32 clients, get p99 well under 5 ms); the gateway's cost (base64 values, JSON) is
// small next to etcd's fsync per commit, and it needs no generated code, no gRPC runtime and no .proto files from
// golang-etcd-server-dev in the build. A gRPC client is left for when a measurement says the gateway limits.
//
// Layout: every object is one key, PREFIX + plural + "/" + namespace + "/" + name (cluster-scoped kinds: an empty
// namespace, "nodes//host1"), so a kind and a namespace of a kind are key prefixes. The value is the object's JSON
// without metadata.resourceVersion; resourceVersion is etcd's mod revision. Creates are transactions on
// create_revision == 0, updates and deletes on mod_revision == expected (409 otherwise); lists read one revision
// (paged by key, so items come in key order: namespace, then name); watches are etcd watches from a revision,
// with compaction answered as kGone. Writes are acknowledged once etcd has committed them (durable on a quorum).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stratus/apiserver/store.h"

namespace stratus {

struct EtcdStoreOptions {
  std::vector<std::string> endpoints;  // http(s)://host:port; tried in order, the next on a connection failure
  std::string prefix = "/stratus/";
  std::string ca_file;                 // https: the CA that signed etcd's certificate
  std::string cert_file, key_file;     // https: this client's certificate (etcd --client-cert-auth)
  int timeout_seconds = 10;            // per request (not watches)
  int writers = 8;                     // threads that carry asynchronous writes
};

// Connects (a first request must succeed) and returns the store.
StatusOr<std::unique_ptr<Store>> OpenEtcdStore(const EtcdStoreOptions& opts);

}  // namespace stratus
