// Client configuration in Kubernetes' kubeconfig format (apiVersion: v1, kind: Config): named clusters (where
// the API server is and how to trust it), users (how to prove who you are) and contexts (a cluster, a user and
// a namespace), with a current-context. stratusctl reads and edits ~/.stratus/config in this format, stratusd
// writes an admin one, and the same file works with kubectl.
//
// Fields this model does not know (client certificates, exec plugins, extensions, preferences, ...) are kept
// as they were loaded and written back unchanged.
#pragma once

#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

inline constexpr const char* kDefaultServer = "https://127.0.0.1:8774";
inline constexpr const char* kDefaultNamespace = "default";

struct KubeCluster {
  std::string name;
  std::string server;                      // cluster.server
  std::string certificate_authority;       // cluster.certificate-authority: a PEM file
  std::string certificate_authority_data;  // cluster.certificate-authority-data: base64 of the PEM
  bool insecure_skip_tls_verify = false;   // cluster.insecure-skip-tls-verify
  json raw = json::object();               // the list entry as loaded (unknown fields)
};

struct KubeUser {
  std::string name;
  std::string token;       // user.token
  std::string token_file;  // user.tokenFile
  json raw = json::object();
};

struct KubeContext {
  std::string name;
  std::string cluster;    // context.cluster
  std::string user;       // context.user
  std::string ns;         // context.namespace
  json raw = json::object();
};

struct Kubeconfig {
  std::vector<KubeCluster> clusters;
  std::vector<KubeUser> users;
  std::vector<KubeContext> contexts;
  std::string current_context;
  json raw = json::object();  // the document as loaded (unknown top-level fields)
  // The file it was loaded from; relative file paths in it (certificate-authority, tokenFile) are relative to
  // this file's directory, as kubectl reads them. "" = relative to the working directory.
  std::string path;

  const KubeCluster* FindCluster(const std::string& name) const;
  const KubeUser* FindUser(const std::string& name) const;
  const KubeContext* FindContext(const std::string& name) const;
  // The entry named `name`, added at the end when there is none.
  KubeCluster& UpsertCluster(const std::string& name);
  KubeUser& UpsertUser(const std::string& name);
  KubeContext& UpsertContext(const std::string& name);

  // The kubeconfig document: known fields as set here, over the unknown ones kept from loading.
  json ToJson() const;
};

// Reads a kubeconfig from a JSON/YAML document. Errors (kBadRequest) name `source` and the field, e.g.
// "/home/u/.stratus/config: clusters[1].cluster.server: must be a string"; they never quote secret values.
StatusOr<Kubeconfig> KubeconfigFromJson(const json& doc, const std::string& source);
// Reads a kubeconfig file. kNotFound when it does not exist; an empty file is an empty config.
StatusOr<Kubeconfig> LoadKubeconfig(const std::string& path);
// Writes `cfg` as YAML to `path` atomically: a temporary file in the same directory, mode 0600, renamed over
// the old one (the file a symlink points to is replaced, the symlink kept). Creates a missing parent directory
// with mode 0700.
Status SaveKubeconfig(const Kubeconfig& cfg, const std::string& path);

// `doc` (a kubeconfig document) with secrets hidden as `kubectl config view` shows them: tokens and passwords
// REDACTED, certificate and key data DATA+OMITTED.
json RedactKubeconfig(json doc);

// What a client needs to reach the API through one context.
struct ClientSettings {
  std::string context;     // the context used; "" when none
  std::string server;
  std::string token;
  std::string token_file;  // where the token was read from (when it came from user.tokenFile)
  std::string ca_file;     // PEM file of the CA to verify the server with ("" = none given)
  std::string ca_data;     // PEM text from certificate-authority-data (when no ca_file)
  bool insecure = false;   // insecure-skip-tls-verify
  std::string ns;
};

// The settings context `name` (or the current-context when "") gives, with relative paths resolved against
// the config's directory and a tokenFile read. Empty settings (context "") when `name` is "" and there is no
// current-context. kNotFound naming the context when it is absent; kBadRequest when it names a cluster or user
// that is absent, or when its CA data or token file cannot be read.
StatusOr<ClientSettings> ResolveKubeconfigContext(const Kubeconfig& cfg, const std::string& name);

// One source of settings besides the config: "" = not given.
struct ClientOverrides {
  std::string server;
  std::string token;
  std::string ns;
  std::string ca_file;
};

// The effective settings, by precedence: `flags` > `env` > the config's context (`context`, or its
// current-context) > built-in defaults (kDefaultServer, kDefaultNamespace). `cfg` may be null (no config file).
// A token file or CA data of the context is not read when a flag or the environment overrides it.
StatusOr<ClientSettings> ResolveClientSettings(const Kubeconfig* cfg, const std::string& context,
                                               const ClientOverrides& flags, const ClientOverrides& env);

// A self-contained kubeconfig with one cluster, user and context (all named `name`), current: the CA PEM
// embedded as certificate-authority-data (when not empty) and the token inline. What `stratusctl config
// kubeconfig` prints and stratusd writes for its admin.
Kubeconfig MakeKubeconfig(const std::string& name, const std::string& server, const std::string& token,
                          const std::string& ca_pem, const std::string& ns = "", bool insecure = false);

}  // namespace stratus
