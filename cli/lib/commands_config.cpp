// stratusctl config: the client config (~/.stratus/config, kubeconfig format) and how the global options,
// the environment and the config's context combine into the settings API commands use.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lib/commands.h"
#include "lib/table.h"
#include "stratus/core/base64.h"
#include "stratus/core/yaml.h"

namespace stratus::cli {
namespace {

namespace fs = std::filesystem;

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string HomeDir() {
  std::string home = Getenv("HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) return pw->pw_dir;
  return ".";
}

// The config at `loc`. A missing file is an empty config (that SaveKubeconfig creates), unless `must_exist`.
StatusOr<Kubeconfig> LoadAt(const ConfigLocation& loc, bool must_exist) {
  auto cfg = LoadKubeconfig(loc.path);
  if (cfg.ok() || cfg.status().code() != Code::kNotFound) return cfg;
  if (must_exist) return Status(Code::kNotFound, "config file " + loc.path + " does not exist");
  Kubeconfig empty;
  empty.path = loc.path;
  return empty;
}

StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kBadRequest, "cannot read " + what + " " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A CA file's PEM text; an error naming the file when it cannot be read or holds no PEM block.
StatusOr<std::string> ReadPem(const std::string& path) {
  auto pem = ReadWholeFile(path, "certificate-authority");
  if (!pem.ok()) return pem;
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return Status(Code::kBadRequest, "certificate-authority " + path + " is not a PEM file");
  }
  return pem;
}

// Settings for API commands, with CA data left in ca_data.
StatusOr<ClientSettings> ResolveSettings(const GlobalOptions& global) {
  ConfigLocation loc = LocateConfig(global.config);
  auto cfg = LoadAt(loc, loc.explicit_file);
  if (!cfg.ok()) return cfg.status();
  ClientOverrides env;
  env.server = Getenv("STRATUS_SERVER");
  env.token = Getenv("STRATUS_TOKEN");
  env.ca_file = Getenv("STRATUS_CA_FILE");
  return ResolveClientSettings(&*cfg, global.context, global.flags, env);
}

int Fail(Env& env, const std::string& message) {
  *env.err << "error: " << message << "\n";
  return 1;
}
int Fail(Env& env, const Status& s) { return Fail(env, s.message()); }

int Save(Env& env, const Kubeconfig& cfg, const ConfigLocation& loc) {
  Status s = SaveKubeconfig(cfg, loc.path);
  return s.ok() ? 0 : Fail(env, s);
}

void Print(Env& env, const json& doc, const std::string& output) {
  if (output == "json") {
    *env.out << doc.dump(2) << "\n";
  } else {
    *env.out << ToYaml(doc);
  }
}

// Only the current context and the cluster and user it names (kubectl config view --minify).
StatusOr<Kubeconfig> Minify(const Kubeconfig& cfg, const std::string& context) {
  std::string name = context.empty() ? cfg.current_context : context;
  if (name.empty()) return Status(Code::kBadRequest, "current-context is not set");
  const KubeContext* ctx = cfg.FindContext(name);
  if (ctx == nullptr) return Status(Code::kNotFound, "context \"" + name + "\" not found in " + cfg.path);
  Kubeconfig out;
  out.raw = cfg.raw;
  out.path = cfg.path;
  out.contexts.push_back(*ctx);
  if (const KubeCluster* c = cfg.FindCluster(ctx->cluster)) out.clusters.push_back(*c);
  if (const KubeUser* u = cfg.FindUser(ctx->user)) out.users.push_back(*u);
  out.current_context = name;
  return out;
}

int View(Env& env, const GlobalOptions& global, const ConfigOptions& opts, const ConfigLocation& loc) {
  if (!opts.output.empty() && opts.output != "yaml" && opts.output != "json") {
    return Fail(env, "--output must be yaml or json, not \"" + opts.output + "\"");
  }
  auto cfg = LoadAt(loc, loc.explicit_file);
  if (!cfg.ok()) return Fail(env, cfg.status());
  if (opts.minify) {
    cfg = Minify(*cfg, global.context);
    if (!cfg.ok()) return Fail(env, cfg.status());
  }
  json doc = cfg->ToJson();
  Print(env, opts.raw ? doc : RedactKubeconfig(doc), opts.output);
  return 0;
}

int UseContext(Env& env, const ConfigOptions& opts, const ConfigLocation& loc) {
  if (opts.names.size() != 1) return Fail(env, "use-context takes one context name");
  const std::string& name = opts.names[0];
  auto cfg = LoadAt(loc, loc.explicit_file);
  if (!cfg.ok()) return Fail(env, cfg.status());
  if (cfg->FindContext(name) == nullptr) {
    return Fail(env, "no context exists with the name: \"" + name + "\" in " + loc.path);
  }
  cfg->current_context = name;
  if (int rc = Save(env, *cfg, loc)) return rc;
  *env.out << "Switched to context \"" << name << "\".\n";
  return 0;
}

int SetContext(Env& env, const GlobalOptions& global, const ConfigOptions& opts, const ConfigLocation& loc) {
  auto cfg = LoadAt(loc, false);
  if (!cfg.ok()) return Fail(env, cfg.status());
  std::string name;
  if (opts.current) {
    if (!opts.names.empty()) return Fail(env, "give a context name or --current, not both");
    name = cfg->current_context;
    if (name.empty()) return Fail(env, "--current: current-context is not set in " + loc.path);
  } else {
    if (opts.names.size() != 1) return Fail(env, "set-context takes one context name (or --current)");
    name = opts.names[0];
  }
  bool existed = cfg->FindContext(name) != nullptr;
  KubeContext& c = cfg->UpsertContext(name);
  if (opts.cluster_set) c.cluster = opts.cluster;
  if (opts.user_set) c.user = opts.user;
  // `-n NS` is the global namespace flag; kubectl takes it as set-context's --namespace too.
  if (opts.ns_set) {
    c.ns = opts.ns;
  } else if (!global.flags.ns.empty()) {
    c.ns = global.flags.ns;
  }
  if (int rc = Save(env, *cfg, loc)) return rc;
  *env.out << "Context \"" << name << "\" " << (existed ? "modified" : "created") << ".\n";
  return 0;
}

int SetCluster(Env& env, const ConfigOptions& opts, const ConfigLocation& loc) {
  if (opts.names.size() != 1) return Fail(env, "set-cluster takes one cluster name");
  const std::string& name = opts.names[0];
  if (opts.embed_certs && opts.certificate_authority.empty()) {
    return Fail(env, "--embed-certs needs --certificate-authority FILE");
  }
  auto cfg = LoadAt(loc, false);
  if (!cfg.ok()) return Fail(env, cfg.status());
  if (cfg->FindCluster(name) == nullptr && opts.server.empty()) {
    return Fail(env, "cluster \"" + name + "\" is new: --server URL is required");
  }
  KubeCluster& c = cfg->UpsertCluster(name);
  if (!opts.server.empty()) c.server = opts.server;
  if (!opts.certificate_authority.empty()) {
    auto pem = ReadPem(opts.certificate_authority);
    if (!pem.ok()) return Fail(env, pem.status());
    if (opts.embed_certs) {
      c.certificate_authority_data = Base64Encode(*pem);
      c.certificate_authority.clear();
    } else {
      // Absolute, so that the config means the same file from any working directory.
      c.certificate_authority = fs::absolute(opts.certificate_authority).lexically_normal().string();
      c.certificate_authority_data.clear();
    }
  }
  if (opts.insecure_set) c.insecure_skip_tls_verify = opts.insecure;
  if (int rc = Save(env, *cfg, loc)) return rc;
  *env.out << "Cluster \"" << name << "\" set.\n";
  return 0;
}

int SetCredentials(Env& env, const ConfigOptions& opts, const ConfigLocation& loc) {
  if (opts.names.size() != 1) return Fail(env, "set-credentials takes one user name");
  const std::string& name = opts.names[0];
  auto cfg = LoadAt(loc, false);
  if (!cfg.ok()) return Fail(env, cfg.status());
  KubeUser& u = cfg->UpsertUser(name);
  if (opts.token_set) {
    u.token = opts.token;
    u.token_file.clear();  // the inline token is the one meant now
  }
  if (int rc = Save(env, *cfg, loc)) return rc;
  *env.out << "User \"" << name << "\" set.\n";
  return 0;
}

int CurrentContext(Env& env, const ConfigLocation& loc) {
  auto cfg = LoadAt(loc, loc.explicit_file);
  if (!cfg.ok()) return Fail(env, cfg.status());
  if (cfg->current_context.empty()) return Fail(env, "current-context is not set");
  *env.out << cfg->current_context << "\n";
  return 0;
}

int GetContexts(Env& env, const ConfigOptions& opts, const ConfigLocation& loc) {
  if (!opts.output.empty() && opts.output != "name") return Fail(env, "--output must be name");
  auto cfg = LoadAt(loc, loc.explicit_file);
  if (!cfg.ok()) return Fail(env, cfg.status());
  std::vector<const KubeContext*> shown;
  for (const auto& name : opts.names) {
    const KubeContext* c = cfg->FindContext(name);
    if (c == nullptr) return Fail(env, "context \"" + name + "\" not found in " + loc.path);
    shown.push_back(c);
  }
  if (opts.names.empty()) {
    for (const auto& c : cfg->contexts) shown.push_back(&c);
    std::sort(shown.begin(), shown.end(), [](const KubeContext* a, const KubeContext* b) { return a->name < b->name; });
  }
  if (opts.output == "name") {
    for (const auto* c : shown) *env.out << c->name << "\n";
    return 0;
  }
  Table t({"CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"});
  for (const auto* c : shown) {
    t.AddRow({c->name == cfg->current_context ? "*" : "", c->name, c->cluster, c->user, c->ns});
  }
  t.Render(*env.out);
  return 0;
}

// A self-contained kubeconfig for the effective settings: kubectl (or anything else) needs nothing else.
int SelfContained(Env& env, const GlobalOptions& global) {
  auto s = ResolveSettings(global);
  if (!s.ok()) return Fail(env, s.status());
  std::string pem = s->ca_data;
  if (!s->ca_file.empty()) {
    auto read = ReadPem(s->ca_file);
    if (!read.ok()) return Fail(env, read.status());
    pem = std::move(*read);
  }
  std::string name = s->context.empty() ? "stratus" : s->context;
  Kubeconfig k = MakeKubeconfig(name, s->server, s->token, pem, s->ns, s->insecure);
  *env.out << ToYaml(k.ToJson());
  return 0;
}

}  // namespace

ConfigLocation LocateConfig(const std::string& flag) {
  if (!flag.empty()) return {flag, true};
  std::string env = Getenv("STRATUS_CONFIG");
  if (!env.empty()) return {env, true};
  return {(fs::path(HomeDir()) / ".stratus" / "config").string(), false};
}

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

Status TempFile::Write(const std::string& content) {
  std::string dir = Getenv("TMPDIR");
  if (dir.empty()) dir = "/tmp";
  std::string tmpl = (fs::path(dir) / "stratusctl-XXXXXX").string();
  int fd = ::mkstemp(tmpl.data());  // 0600
  if (fd < 0) return Status(Code::kUnavailable, "creating a temporary file in " + dir + ": " + std::strerror(errno));
  path_ = tmpl;
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status(Code::kUnavailable, "writing " + path_ + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

StatusOr<ClientSettings> ResolveGlobal(const GlobalOptions& global, TempFile& ca_temp) {
  auto s = ResolveSettings(global);
  if (!s.ok()) return s;
  if (!s->ca_data.empty()) {
    Status w = ca_temp.Write(s->ca_data);
    if (!w.ok()) return w;
    s->ca_file = ca_temp.path();
    s->ca_data.clear();
  } else if (!s->ca_file.empty() && ::access(s->ca_file.c_str(), R_OK) != 0) {
    return Status(Code::kBadRequest, "cannot read certificate-authority " + s->ca_file);
  }
  return s;
}

int RunConfig(Env& env, const GlobalOptions& global, const ConfigOptions& opts) {
  ConfigLocation loc = LocateConfig(global.config);
  const std::string& a = opts.action;
  if (a == "view") return View(env, global, opts, loc);
  if (a == "use-context") return UseContext(env, opts, loc);
  if (a == "set-context") return SetContext(env, global, opts, loc);
  if (a == "set-cluster") return SetCluster(env, opts, loc);
  if (a == "set-credentials") return SetCredentials(env, opts, loc);
  if (a == "current-context") return CurrentContext(env, loc);
  if (a == "get-contexts") return GetContexts(env, opts, loc);
  if (a == "kubeconfig") return SelfContained(env, global);
  return Fail(env, "unknown config command \"" + a + "\"");
}

}  // namespace stratus::cli
