// stratusctl's commands. Each returns the process exit code and writes to the streams in Env, so tests can
// run them against a fake ApiClient.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"
#include "stratus/core/kubeconfig.h"

namespace stratus::cli {

struct Env {
  ApiClient* client = nullptr;  // null only for commands that work offline (explain, version --client)
  std::string server;           // for messages
  std::string ns = "default";   // -n
  bool ns_explicit = false;     // -n was given
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  std::istream* in = &std::cin;
  std::function<int64_t()> now;  // seconds since the epoch; defaults to the wall clock
  int64_t Now() const;
};

struct ApplyOptions {
  std::vector<std::string> files;
  bool recursive = false;
  bool server_side = false;     // PATCH application/apply-patch+yaml instead of the client-side three-way merge
  bool force_conflicts = false;  // server-side: take over fields other managers own
  std::string field_manager = "stratusctl";
  // --prune -l SELECTOR: afterwards, delete the objects matching the selector that the files no longer hold (in
  // the namespaces the files touch, of the kinds they hold and the cloud kinds), as kubectl apply --prune does.
  bool prune = false;
  std::string selector;
  bool dry_run = false;  // print what apply (and prune) would do; write nothing
};
int RunApply(Env& env, const ApplyOptions& opts);

struct GetOptions {
  std::vector<std::string> args;  // KIND [NAME...] | KIND/NAME... | KIND1,KIND2
  std::string output;             // "", wide, yaml, json, name
  std::string selector;
  std::string field_selector;
  bool all_namespaces = false;
  bool watch = false;
  bool watch_only = false;
  bool show_labels = false;
  std::chrono::milliseconds watch_timeout{0};  // 0: until interrupted
};
int RunGet(Env& env, const GetOptions& opts);

struct DescribeOptions {
  std::vector<std::string> args;  // KIND [NAME...] | KIND/NAME...
  std::string selector;
  bool all_namespaces = false;
};
int RunDescribe(Env& env, const DescribeOptions& opts);

struct DeleteOptions {
  std::vector<std::string> args;  // KIND NAME... | KIND/NAME...
  std::vector<std::string> files;
  bool recursive = false;
  std::string selector;
  bool all = false;
  bool ignore_not_found = false;
  bool wait = false;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};
int RunDelete(Env& env, const DeleteOptions& opts);

struct WaitOptions {
  std::vector<std::string> args;  // KIND/NAME... | KIND NAME...
  std::string for_condition;      // condition=Ready[=True] | delete | phase=Running
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  bool quiet = false;             // no progress lines
};
int RunWait(Env& env, const WaitOptions& opts);

struct DiffOptions {
  std::vector<std::string> files;
  bool recursive = false;
};
int RunDiff(Env& env, const DiffOptions& opts);

struct ExplainOptions {
  std::string target;  // KIND[.field.path]
};
int RunExplain(Env& env, const ExplainOptions& opts);

struct VersionOptions {
  bool client_only = false;
  std::string output;  // "", json, yaml
};
int RunVersion(Env& env, const VersionOptions& opts);

struct CanIOptions {
  std::string verb;                // get list watch create update patch delete
  std::string target;              // KIND, KIND/NAME
  std::string name;                // optional NAME after KIND
  std::string subresource;         // status, upload, log
  bool all_namespaces = false;     // -A: across every namespace
};
// Asks the server whether the caller may do something (a SelfSubjectAccessReview): prints yes (exit 0) or no
// (exit 1, the reason on stderr).
int RunCanI(Env& env, const CanIOptions& opts);

struct ApiResourcesOptions {
  std::string output;  // "", wide, name
};
int RunApiResources(Env& env, const ApiResourcesOptions& opts);

struct LogsOptions {
  std::string target;       // instance/NAME or NAME
  int64_t tail_bytes = 0;   // 0 = everything
};
// Prints an Instance's serial console (proxied by the API server from the node agent).
int RunLogs(Env& env, const LogsOptions& opts);

struct PowerOptions {
  std::string action;             // restart | start | stop | pause | suspend | resume | resize
  std::vector<std::string> args;  // instance/NAME... or NAME...
  std::string instance_type;      // resize: the new spec.instanceType
};
// Declarative power actions: patch spec.powerState / spec.restartRequestedAt (resize: spec.instanceType).
int RunPower(Env& env, const PowerOptions& opts);

struct CordonOptions {
  bool cordon = true;              // false: uncordon
  std::vector<std::string> nodes;  // NAME or node/NAME
};
// cordon/uncordon: Node spec.unschedulable (placement puts nothing new there; what runs stays).
int RunCordon(Env& env, const CordonOptions& opts);

struct MigrateOptions {
  std::string target;   // instance/NAME or NAME
  std::string to;       // target node ("" = the scheduler's choice)
  bool wait = true;     // follow it until it ends
  bool quiet = false;   // only the end
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};
// Creates a Migration of one instance (live when it runs, cold otherwise) and follows it with its progress;
// exit 1 when it failed (the instance stays where it was; the reason is printed).
int RunMigrate(Env& env, const MigrateOptions& opts);

struct DrainOptions {
  std::string node;     // NAME or node/NAME
  bool quiet = false;
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
};
// Cordons the node and moves every instance off it (a Migration each: live when running, cold otherwise), waiting
// for all; exit 1 when any could not move (each says why).
int RunDrain(Env& env, const DrainOptions& opts);

struct UploadOptions {
  std::string target;  // image/NAME or NAME
  std::string file;
  bool quiet = false;  // no progress lines
};
// Uploads an Image's data (the Image must exist without spec.source).
int RunUpload(Env& env, const UploadOptions& opts);

struct CreateAccessKeyOptions {
  std::string name;
  std::string user;
};
int RunCreateAccessKey(Env& env, const CreateAccessKeyOptions& opts);

struct CreateTokenOptions {
  std::string name;
  std::string user;
  std::string expires_at;  // RFC 3339, optional
  std::string description;
};
// Makes a bearer token for a user and prints it (shown only this once).
int RunCreateToken(Env& env, const CreateTokenOptions& opts);

struct CreateKeyPairOptions {
  std::string name;
  std::string type = "ed25519";  // ed25519 | rsa (the server makes the pair)
  std::string key_dir;           // "" = KeyDir()
};
// `stratusctl create keypair NAME`: the server makes the pair; the private key, answered only this once, is saved
// as KeyDir()/NAMESPACE/NAME (mode 0600), where `stratusctl ssh` finds it.
int RunCreateKeyPair(Env& env, const CreateKeyPairOptions& opts);

struct SshOptions {
  std::string target;                // instance/NAME or NAME
  std::string identity;              // -i FILE ("" = the saved key of the instance's keyName, when there is one)
  std::string user = "root";         // -l USER
  std::string network;               // the address on this network ("" = the first address)
  std::vector<std::string> command;  // after --: run this instead of a login shell
  std::string key_dir;               // "" = KeyDir()
  std::string ssh_command;           // "" = $STRATUS_SSH_COMMAND, else "ssh" (split on spaces; no shell)
};
// Where saved private keys live: $STRATUS_KEY_DIR, else ~/.stratus/keys.
std::string KeyDir();
// The ssh command line for `inst` (pure): the address from status.addresses, the key file, a known_hosts entry
// per instance uid (HostKeyAlias, so a reused address never trips a host-key warning), the command.
StatusOr<std::vector<std::string>> SshArgv(const json& inst, const std::string& ns, const SshOptions& opts);
// `stratusctl ssh instance/NAME [-- COMMAND]`: runs ssh (replacing this process) to the instance's address.
int RunSsh(Env& env, const SshOptions& opts);

struct ConsoleOptions {
  std::string target;      // instance/NAME or NAME
  bool read_only = false;  // watch only, never the writer
};
// `stratusctl console instance/NAME`: attaches to the serial console both ways (raw terminal; Ctrl-] leaves).
int RunConsole(Env& env, const ConsoleOptions& opts);
// The typed bytes before the escape character (Ctrl-] by default), and whether it was typed.
struct EscapeScan {
  std::string send;
  bool escaped = false;
};
EscapeScan ScanForEscape(const std::string& typed, char escape = 0x1d);
// The console stream without the NUL bytes the agent sends to keep a quiet stream alive.
std::string StripKeepalives(const std::string& bytes);

// The global options that say which API server to reach and how (see ResolveGlobal).
struct GlobalOptions {
  std::string config;      // --config FILE ("" = env STRATUS_CONFIG, else ~/.stratus/config)
  std::string context;     // --context NAME ("" = the config's current-context)
  ClientOverrides flags;   // --server, --token, --namespace, as given on the command line ("" = not given)
};

// The client config file: --config, else STRATUS_CONFIG, else ~/.stratus/config. `explicit_file` when named
// by the flag or the environment (then it must exist for commands that read it).
struct ConfigLocation {
  std::string path;
  bool explicit_file = false;
};
ConfigLocation LocateConfig(const std::string& flag);

// A file removed when this object goes (the CA of a context given as certificate-authority-data, written
// out for the HTTP client, which takes a file).
class TempFile {
 public:
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();
  // Writes `content` to a new private (0600) file under $TMPDIR; path() names it.
  Status Write(const std::string& content);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The effective settings for API commands: flags > env (STRATUS_SERVER, STRATUS_TOKEN) > the config's context >
// defaults. The context's CA data, if any, is written to `ca_temp` and named by ca_file.
StatusOr<ClientSettings> ResolveGlobal(const GlobalOptions& global, TempFile& ca_temp);

struct ConfigOptions {
  std::string action;  // view, use-context, set-context, set-cluster, set-credentials, current-context,
                       // get-contexts, kubeconfig
  std::vector<std::string> names;  // NAME (set-*, use-context), or the contexts get-contexts shows
  bool raw = false;                // view: show secrets
  bool minify = false;             // view: only the current context and what it uses
  std::string output;              // view: yaml (default) or json; get-contexts: name
  bool current = false;            // set-context --current
  std::string cluster, user, ns;   // set-context
  bool cluster_set = false, user_set = false, ns_set = false;
  std::string server;              // set-cluster --server
  std::string certificate_authority;  // set-cluster --certificate-authority FILE
  bool embed_certs = false;           // set-cluster --embed-certs
  bool insecure_set = false, insecure = false;  // set-cluster --insecure-skip-tls-verify[=false]
  std::string token;                  // set-credentials --token
  bool token_set = false;
};
// `stratusctl config ...`: reads and edits the client config (works offline).
int RunConfig(Env& env, const GlobalOptions& global, const ConfigOptions& opts);

// The client's version string ("0.1.0").
const char* ClientVersion();

}  // namespace stratus::cli
