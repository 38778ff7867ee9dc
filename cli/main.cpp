// stratusctl: the command-line client of the Stratus API. This file only parses arguments (CLI11); the
// commands live in lib/ (stratus_cli_lib).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "lib/commands.h"
#include "lib/util.h"

namespace {

using namespace stratus;
using namespace stratus::cli;

void OnSignal(int) {
  if (Interrupted().exchange(true)) _exit(130);  // a second Ctrl-C ends at once
}

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Parses a duration option, printing the error; false when malformed.
bool Duration(const std::string& text, std::chrono::milliseconds& out) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    std::cerr << "error: " << d.status().message() << "\n";
    return false;
  }
  out = *d;
  return true;
}

int Run(int argc, char** argv) {
  CLI::App app{"stratusctl controls a Stratus cloud: declare Instances, Volumes, Networks and Images in YAML and "
               "apply them.",
               "stratusctl"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_help_all_flag("--help-all", "Help for every command");

  // Server, token and namespace: these flags > env STRATUS_SERVER, STRATUS_TOKEN > the config's context > defaults
  // (ResolveGlobal).
  GlobalOptions global;
  std::string request_timeout = "30s";
  app.add_option("-s,--server", global.flags.server,
                 "API server URL (env STRATUS_SERVER, else the context's, else https://127.0.0.1:8774)");
  app.add_option("--token", global.flags.token, "Bearer token to authenticate with (env STRATUS_TOKEN, else the context's)");
  auto* ns_opt =
      app.add_option("-n,--namespace", global.flags.ns, "Namespace of namespaced objects (else the context's, else default)");
  app.add_option("--config", global.config, "Client config file, kubeconfig format (env STRATUS_CONFIG; default ~/.stratus/config)");
  app.add_option("--context", global.context, "The config's context to use (default: its current-context)");
  app.add_option("--certificate-authority", global.flags.ca_file,
                 "PEM file of the CA the https API server is verified against, e.g. its DATA_DIR/tls/ca.crt "
                 "(env STRATUS_CA_FILE, else the context's; default: the system's CAs)");
  bool insecure_skip_tls_verify = false;
  app.add_flag("--insecure-skip-tls-verify", insecure_skip_tls_verify,
               "Do not verify the server's certificate (the connection can be intercepted)");
  app.add_option("--request-timeout", request_timeout, "Timeout of each API request (e.g. 30s)")
      ->capture_default_str();

  // apply
  ApplyOptions apply;
  auto* apply_cmd = app.add_subcommand("apply", "Create or update objects from YAML/JSON manifests");
  apply_cmd->add_option("-f,--filename", apply.files, "File, directory or - (stdin); repeatable")->required();
  apply_cmd->add_flag("-R,--recursive", apply.recursive, "Include subdirectories of directories given with -f");
  apply_cmd->add_flag("--server-side", apply.server_side,
                      "Let the server merge (server-side apply): fields other managers own are conflicts");
  apply_cmd->add_flag("--force-conflicts", apply.force_conflicts,
                      "With --server-side: take over the conflicting fields instead of failing");
  apply_cmd->add_option("--field-manager", apply.field_manager, "Name this client's changes are recorded under")
      ->capture_default_str();
  apply_cmd->add_flag("--prune", apply.prune,
                      "Delete objects matching -l that the files no longer hold (try --dry-run first)");
  apply_cmd->add_option("-l,--selector", apply.selector, "With --prune: the label selector of the objects it may delete");
  apply_cmd->add_flag("--dry-run", apply.dry_run, "Print what would be created, configured and pruned; change nothing");

  // get
  GetOptions get;
  std::string get_timeout = "0";
  auto* get_cmd = app.add_subcommand("get", "List objects or show some in a table, YAML or JSON");
  get_cmd->add_option("args", get.args, "KIND [NAME...] | KIND/NAME... | KIND1,KIND2 | all");
  get_cmd->add_option("-o,--output", get.output, "Output format: wide, yaml, json or name");
  get_cmd->add_option("-l,--selector", get.selector, "Label selector (app=web,tier!=db,env in (a,b))");
  get_cmd->add_option("--field-selector", get.field_selector, "Field selector (metadata.name=web-1)");
  get_cmd->add_flag("-A,--all-namespaces", get.all_namespaces, "List across all namespaces");
  get_cmd->add_flag("-w,--watch", get.watch, "After listing, print changes as they happen");
  get_cmd->add_flag("--watch-only", get.watch_only, "Print changes only, without the initial list");
  get_cmd->add_flag("--show-labels", get.show_labels, "Add a LABELS column");
  get_cmd->add_option("--timeout", get_timeout, "With -w: stop watching after this long (0: until Ctrl-C)");

  // describe
  DescribeOptions describe;
  auto* describe_cmd = app.add_subcommand("describe", "Show an object's details, conditions and recent events");
  describe_cmd->add_option("args", describe.args, "KIND [NAME...] | KIND/NAME...");
  describe_cmd->add_option("-l,--selector", describe.selector, "Label selector");
  describe_cmd->add_flag("-A,--all-namespaces", describe.all_namespaces, "Across all namespaces");

  // delete
  DeleteOptions del;
  std::string delete_timeout = "5m";
  auto* delete_cmd = app.add_subcommand("delete", "Delete objects by name, selector or manifest");
  delete_cmd->add_option("args", del.args, "KIND NAME... | KIND/NAME...");
  delete_cmd->add_option("-f,--filename", del.files, "Delete the objects in these manifests");
  delete_cmd->add_flag("-R,--recursive", del.recursive, "Include subdirectories of directories given with -f");
  delete_cmd->add_option("-l,--selector", del.selector, "Delete the objects matching this label selector");
  delete_cmd->add_flag("--all", del.all, "Delete every object of the kind in the namespace");
  delete_cmd->add_flag("--ignore-not-found", del.ignore_not_found, "Treat absent objects as deleted");
  delete_cmd->add_flag("--wait", del.wait, "Wait until the objects are gone (finalizers done)");
  delete_cmd->add_option("--timeout", delete_timeout, "With --wait: how long to wait")->capture_default_str();

  // wait
  WaitOptions wait;
  std::string wait_timeout = "30s";
  auto* wait_cmd = app.add_subcommand("wait", "Wait for a condition, a phase or deletion of objects");
  wait_cmd->add_option("args", wait.args, "KIND/NAME... | KIND NAME...");
  wait_cmd->add_option("--for", wait.for_condition, "condition=Ready[=True|False], phase=PHASE or delete")
      ->required();
  wait_cmd->add_option("--timeout", wait_timeout, "Give up after this long (e.g. 60s, 2m, 1h)")
      ->capture_default_str();
  wait_cmd->add_flag("-q,--quiet", wait.quiet, "Do not print progress");

  // diff
  DiffOptions diff;
  auto* diff_cmd = app.add_subcommand("diff", "Show what apply -f would change (exit 0: none, 1: changes, >1: error)");
  diff_cmd->add_option("-f,--filename", diff.files, "File, directory or - (stdin)")->required();
  diff_cmd->add_flag("-R,--recursive", diff.recursive, "Include subdirectories");

  // explain
  ExplainOptions explain;
  auto* explain_cmd = app.add_subcommand("explain", "Document a kind or one of its fields (works offline)");
  explain_cmd->add_option("target", explain.target, "KIND[.field.path], e.g. instance.spec.networks")->required();

  // version
  VersionOptions version;
  auto* version_cmd = app.add_subcommand("version", "Print the client and server versions");
  version_cmd->add_flag("--client", version.client_only, "Client version only (no server needed)");
  version_cmd->add_option("-o,--output", version.output, "json or yaml");

  // auth can-i
  CanIOptions can_i;
  auto* auth_cmd = app.add_subcommand("auth", "Inspect what the server lets you do");
  auth_cmd->require_subcommand(1);
  auto* can_i_cmd = auth_cmd->add_subcommand("can-i", "Check whether you may do VERB on KIND (yes/no)");
  can_i_cmd->add_option("verb", can_i.verb, "get, list, watch, create, update, patch or delete")->required();
  can_i_cmd->add_option("kind", can_i.target, "KIND or KIND/NAME (e.g. instances, instance/web)")->required();
  can_i_cmd->add_option("name", can_i.name, "NAME of one object");
  can_i_cmd->add_option("--subresource", can_i.subresource, "status, upload or log");
  can_i_cmd->add_flag("-A,--all-namespaces", can_i.all_namespaces, "across every namespace");

  // config
  ConfigOptions config;
  auto* config_cmd = app.add_subcommand("config", "Show and edit the client config (clusters, users, contexts)");
  config_cmd->require_subcommand(1);
  auto config_sub = [&](const char* name, const char* help, const char* names_help) {
    auto* c = config_cmd->add_subcommand(name, help);
    if (names_help != nullptr) c->add_option("name", config.names, names_help);
    c->callback([&config, name] { config.action = name; });
    return c;
  };
  auto* view_cmd = config_sub("view", "Print the config (tokens and certificate data hidden unless --raw)", nullptr);
  view_cmd->add_flag("--raw", config.raw, "Show tokens and certificate data");
  view_cmd->add_flag("--minify", config.minify, "Only the current context (or --context) and its cluster and user");
  view_cmd->add_option("-o,--output", config.output, "yaml (default) or json");
  config_sub("use-context", "Make a context the current one", "context name");
  auto* set_ctx_cmd = config_sub("set-context", "Create or update a context", "context name");
  set_ctx_cmd->add_flag("--current", config.current, "Update the current context");
  auto* ctx_cluster = set_ctx_cmd->add_option("--cluster", config.cluster, "cluster of the context");
  auto* ctx_user = set_ctx_cmd->add_option("--user", config.user, "user of the context");
  auto* ctx_ns = set_ctx_cmd->add_option("--namespace", config.ns, "namespace of the context");
  auto* set_cluster_cmd = config_sub("set-cluster", "Create or update a cluster", "cluster name");
  set_cluster_cmd->add_option("--server", config.server, "API server URL");
  set_cluster_cmd->add_option("--certificate-authority", config.certificate_authority, "PEM file of the server's CA");
  set_cluster_cmd->add_flag("--embed-certs", config.embed_certs, "Store the CA in the config, not its path");
  auto* insecure_flag = set_cluster_cmd->add_flag("--insecure-skip-tls-verify", config.insecure,
                                                  "Do not verify the server's certificate");
  auto* set_creds_cmd = config_sub("set-credentials", "Create or update a user", "user name");
  auto* creds_token = set_creds_cmd->add_option("--token", config.token, "bearer token of the user");
  config_sub("current-context", "Print the current context's name", nullptr);
  auto* get_ctx_cmd = config_sub("get-contexts", "List the contexts (* marks the current one)", "context names");
  get_ctx_cmd->add_option("-o,--output", config.output, "name: names only");
  config_sub("kubeconfig", "Print a self-contained kubeconfig (CA and token inline) for the current settings", nullptr);

  // api-resources
  ApiResourcesOptions api_resources;
  auto* api_resources_cmd = app.add_subcommand("api-resources", "List the kinds the server serves");
  api_resources_cmd->add_option("-o,--output", api_resources.output, "wide or name");

  // logs, restart/start/stop
  LogsOptions logs;
  auto* logs_cmd = app.add_subcommand("logs", "Print an instance's serial console");
  logs_cmd->add_option("target", logs.target, "instance/NAME")->required();
  logs_cmd->add_option("--tail-bytes", logs.tail_bytes, "Only the last N bytes");
  // The power verbs: each patches spec (powerState, restartRequestedAt) of the instances it names.
  struct PowerCmd {
    const char* name;
    const char* help;
    PowerOptions opts;
    CLI::App* cmd = nullptr;
  };
  std::vector<PowerCmd> power = {
      {"restart", "Reboot instances (sets spec.restartRequestedAt)", {}},
      {"start", "Power instances on (spec.powerState: Running)", {}},
      {"stop", "Shut instances down (spec.powerState: Stopped)", {}},
      {"pause", "Pause instances: vCPUs stopped, memory kept (powerState: Paused)", {}},
      {"suspend", "Save instances' memory to disk and stop them (powerState: Suspended)", {}},
      {"resume", "Run paused or suspended instances again (powerState: Running)", {}}};
  for (auto& p : power) {
    p.opts.action = p.name;
    p.cmd = app.add_subcommand(p.name, p.help);
    p.cmd->add_option("targets", p.opts.args, "instance/NAME...")->required();
  }
  PowerOptions resize;
  resize.action = "resize";
  auto* resize_cmd = app.add_subcommand("resize", "Change an instance's type (spec.instanceType; applied at its next restart)");
  std::string resize_target;
  resize_cmd->add_option("target", resize_target, "instance/NAME")->required();
  resize_cmd->add_option("type", resize.instance_type, "the InstanceType")->required();
  CordonOptions cordon, uncordon;
  uncordon.cordon = false;
  auto* cordon_cmd = app.add_subcommand("cordon", "Keep placement from putting new instances on nodes");
  cordon_cmd->add_option("nodes", cordon.nodes, "NODE...")->required();
  auto* uncordon_cmd = app.add_subcommand("uncordon", "Let placement use nodes again");
  uncordon_cmd->add_option("nodes", uncordon.nodes, "NODE...")->required();

  MigrateOptions migrate;
  std::string migrate_timeout = "10m";
  auto* migrate_cmd = app.add_subcommand("migrate", "Move an instance to another node (live when it runs) and follow it");
  migrate_cmd->add_option("target", migrate.target, "instance/NAME")->required();
  migrate_cmd->add_option("--to", migrate.to, "target node (default: the scheduler chooses)");
  migrate_cmd->add_option("--wait", migrate.wait, "follow it until it ends")->capture_default_str();
  migrate_cmd->add_option("--timeout", migrate_timeout, "give up following after this long")->capture_default_str();
  migrate_cmd->add_flag("-q,--quiet", migrate.quiet, "print only how it ended");
  DrainOptions drain;
  std::string drain_timeout = "30m";
  auto* drain_cmd = app.add_subcommand("drain", "Cordon a node and move every instance off it");
  drain_cmd->add_option("node", drain.node, "NODE")->required();
  drain_cmd->add_option("--timeout", drain_timeout, "give up after this long")->capture_default_str();
  drain_cmd->add_flag("-q,--quiet", drain.quiet, "print only how each move ended");

  UploadOptions upload;
  auto* upload_cmd = app.add_subcommand("upload", "Upload the data of an Image created without spec.source");
  upload_cmd->add_option("target", upload.target, "image/NAME")->required();
  upload_cmd->add_option("file", upload.file, "file with the image data (qcow2, raw, iso, kernel, initrd)")->required();
  upload_cmd->add_flag("-q,--quiet", upload.quiet, "no progress lines");

  CreateAccessKeyOptions create_ak;
  CreateTokenOptions create_token;
  auto* create_cmd = app.add_subcommand("create", "Create objects whose secrets the server answers once");
  create_cmd->require_subcommand(1);
  auto* create_ak_cmd = create_cmd->add_subcommand("accesskey", "An EC2 access key for a user, acting in -n NAMESPACE");
  create_ak_cmd->add_option("name", create_ak.name, "name of the AccessKey object")->required();
  create_ak_cmd->add_option("--user", create_ak.user, "the user the key acts for")->required();
  auto* create_token_cmd = create_cmd->add_subcommand("token", "A bearer token for a user (printed once)");
  create_token_cmd->add_option("name", create_token.name, "name of the Token object")->required();
  create_token_cmd->add_option("--user", create_token.user, "the user the token authenticates as")->required();
  create_token_cmd->add_option("--expires-at", create_token.expires_at, "when it stops working (RFC 3339)");
  create_token_cmd->add_option("--description", create_token.description, "what the token is for");

  CreateKeyPairOptions create_kp;
  auto* create_kp_cmd = create_cmd->add_subcommand(
      "keypair", "An SSH key pair made by the server; the private key is saved for `stratusctl ssh`");
  create_kp_cmd->add_option("name", create_kp.name, "name of the KeyPair object")->required();
  create_kp_cmd->add_option("--type", create_kp.type, "ed25519 or rsa")->capture_default_str();
  create_kp_cmd->add_option("--key-dir", create_kp.key_dir,
                            "where to save the private key (default $STRATUS_KEY_DIR, else ~/.stratus/keys)");

  SshOptions ssh;
  ConsoleOptions console;
  auto* console_cmd = app.add_subcommand("console", "Attach to an instance's serial console (Ctrl-] leaves)");
  console_cmd->add_option("target", console.target, "instance/NAME")->required();
  console_cmd->add_flag("--read-only", console.read_only, "watch only; never type into the console");
  auto* ssh_cmd = app.add_subcommand("ssh", "Log in to an instance (or run COMMAND there) with ssh");
  ssh_cmd->add_option("target", ssh.target, "instance/NAME")->required();
  ssh_cmd->add_option("-i,--identity", ssh.identity,
                      "private key file (default: the saved key of the instance's keyName)");
  ssh_cmd->add_option("-l,--login", ssh.user, "user to log in as")->capture_default_str();
  ssh_cmd->add_option("--network", ssh.network, "use the instance's address on this network");
  ssh_cmd->add_option("--key-dir", ssh.key_dir, "where saved keys are (default $STRATUS_KEY_DIR, else ~/.stratus/keys)");
  ssh_cmd->add_option("command", ssh.command, "-- COMMAND [ARG...]: run it instead of a login shell");
  ssh_cmd->positionals_at_end();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::chrono::milliseconds req_timeout{};
  if (!Duration(request_timeout, req_timeout)) return 1;
  if (ns_opt->count() > 0 && global.flags.ns.empty()) {
    std::cerr << "error: --namespace must not be empty\n";
    return 1;
  }

  if (config_cmd->parsed()) {  // offline: works whatever the context says
    config.cluster_set = ctx_cluster->count() > 0;
    config.user_set = ctx_user->count() > 0;
    config.ns_set = ctx_ns->count() > 0;
    config.insecure_set = insecure_flag->count() > 0;
    config.token_set = creds_token->count() > 0;
    Env config_env;
    return RunConfig(config_env, global, config);
  }
  TempFile ca_temp;  // the context's certificate-authority-data as a file, while the client runs
  auto settings = ResolveGlobal(global, ca_temp);
  if (!settings.ok()) {
    std::cerr << "error: " << settings.status().message() << "\n";
    return 1;
  }

  InstallSignalHandlers();
  Env env;
  env.server = settings->server;
  env.ns = settings->ns;
  env.ns_explicit = ns_opt->count() > 0;
  int secs = static_cast<int>(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(req_timeout).count()));
  HttpClientOptions client_opts;
  client_opts.timeout_seconds = secs;
  client_opts.bearer_token = settings->token;
  client_opts.ca_file = settings->ca_file;
  client_opts.insecure_skip_tls_verify = insecure_skip_tls_verify || settings->insecure;
  client_opts.field_manager = "stratusctl";
  std::unique_ptr<ApiClient> client = NewHttpApiClient(settings->server, client_opts);
  env.client = client.get();

  if (apply_cmd->parsed()) return RunApply(env, apply);
  if (get_cmd->parsed()) {
    if (!Duration(get_timeout, get.watch_timeout)) return 1;
    return RunGet(env, get);
  }
  if (describe_cmd->parsed()) return RunDescribe(env, describe);
  if (delete_cmd->parsed()) {
    if (!Duration(delete_timeout, del.timeout)) return 1;
    if (del.args.empty() && del.files.empty()) {
      std::cerr << "error: you must specify KIND NAME..., KIND/NAME... or -f FILE\n";
      return 1;
    }
    return RunDelete(env, del);
  }
  if (wait_cmd->parsed()) {
    if (!Duration(wait_timeout, wait.timeout)) return 1;
    return RunWait(env, wait);
  }
  if (diff_cmd->parsed()) return RunDiff(env, diff);
  if (explain_cmd->parsed()) return RunExplain(env, explain);
  if (can_i_cmd->parsed()) return RunCanI(env, can_i);
  if (version_cmd->parsed()) return RunVersion(env, version);
  if (api_resources_cmd->parsed()) return RunApiResources(env, api_resources);
  if (logs_cmd->parsed()) return RunLogs(env, logs);
  for (auto& p : power) {
    if (p.cmd->parsed()) return RunPower(env, p.opts);
  }
  if (resize_cmd->parsed()) {
    resize.args = {resize_target};
    return RunPower(env, resize);
  }
  if (cordon_cmd->parsed()) return RunCordon(env, cordon);
  if (migrate_cmd->parsed()) {
    if (!Duration(migrate_timeout, migrate.timeout)) return 1;
    return RunMigrate(env, migrate);
  }
  if (drain_cmd->parsed()) {
    if (!Duration(drain_timeout, drain.timeout)) return 1;
    return RunDrain(env, drain);
  }
  if (uncordon_cmd->parsed()) return RunCordon(env, uncordon);
  if (upload_cmd->parsed()) return RunUpload(env, upload);
  if (create_ak_cmd->parsed()) return RunCreateAccessKey(env, create_ak);
  if (create_token_cmd->parsed()) return RunCreateToken(env, create_token);
  if (create_kp_cmd->parsed()) return RunCreateKeyPair(env, create_kp);
  if (ssh_cmd->parsed()) return RunSsh(env, ssh);
  if (console_cmd->parsed()) return RunConsole(env, console);
  std::cerr << "error: unknown command\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "error: unexpected failure\n";
    return 1;
  }
}
