// EtcdStore: the Store on etcd v3 (3.4), through etcd's HTTP/JSON gateway (/v3/kv/*, /v3/watch) with libcurl.
//
// Why the JSON gateway and not gRPC, measured (bench/etcd/etcd_transport_bench.cpp, numbers in bench/README.md):
// gRPC (grpc++ on etcd's own .proto files) makes 1.6x the raw creates/s of the gateway at 1 client, 1.7x at 32,
// and etcd spends about half the CPU per operation without the gateway's JSON-to-gRPC hop. But the store's writes
// are bound by stratusd's own work per create (~500-600 us of CPU against ~80 us for either transport's client
// side), its reads are served from its cache, and the gateway needs no grpc++/protobuf runtime, no generated code
// and no .proto files from golang-etcd-server-dev in the build. So: the gateway, with the transport kept to the
// calls below; a gRPC transport is the change to make when a deployment's etcd CPU is the limit.
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
