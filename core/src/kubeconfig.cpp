#include "stratus/core/kubeconfig.h"

#include "stratus/core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "stratus/core/base64.h"
#include "stratus/core/yaml.h"

namespace stratus {
namespace {

namespace fs = std::filesystem;

// Reads a kubeconfig document, recording the first problem as "SOURCE: FIELD: MESSAGE".
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  bool failed() const { return !error_.ok(); }
  Status error() const { return error_; }

  void Fail(const std::string& field, const std::string& message) {
    if (failed()) return;
    error_ = Status(Code::kBadRequest, source_ + ": " + field + ": " + message, {FieldCause{field, message}});
  }

  // "FIELD.KEY", or "KEY" at the top level.
  static std::string Join(const std::string& field, const char* key) {
    return field.empty() ? std::string(key) : field + "." + key;
  }

  // obj[key] as a string into `out`; absent and null leave it empty.
  void String(const json& obj, const char* key, const std::string& field, std::string& out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return;
    if (!it->is_string()) return Fail(Join(field, key), "must be a string");
    out = it->get<std::string>();
  }

  void Bool(const json& obj, const char* key, const std::string& field, bool& out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return;
    if (!it->is_boolean()) return Fail(Join(field, key), "must be true or false");
    out = it->get<bool>();
  }

  // The object at obj[key] ({} when absent or null), or nullptr after failing when it is something else.
  const json* Object(const json& obj, const char* key, const std::string& field) {
    static const json kEmpty = json::object();
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return &kEmpty;
    if (!it->is_object()) {
      Fail(Join(field, key), "must be a mapping");
      return nullptr;
    }
    return &*it;
  }

  // Calls `each(entry, field, name, body)` for every entry of the named list doc[list] ({name, <body_key>: {}}).
  template <typename F>
  void NamedList(const json& doc, const char* list, const char* body_key, F each) {
    auto it = doc.find(list);
    if (it == doc.end() || it->is_null()) return;
    if (!it->is_array()) return Fail(list, "must be a list");
    std::set<std::string> names;
    for (size_t i = 0; i < it->size() && !failed(); ++i) {
      const json& entry = (*it)[i];
      std::string field = std::string(list) + "[" + std::to_string(i) + "]";
      if (!entry.is_object()) return Fail(field, "must be a mapping");
      std::string name;
      String(entry, "name", field, name);
      if (failed()) return;
      if (name.empty()) return Fail(field + ".name", "is required");
      if (!names.insert(name).second) return Fail(field + ".name", "duplicate name \"" + name + "\"");
      const json* body = Object(entry, body_key, field);
      if (body == nullptr) return;
      each(entry, field + "." + body_key, name, *body);
    }
  }

 private:
  std::string source_;
  Status error_;
};

// `path` relative to the directory of the config file `config_path` (kubectl resolves a kubeconfig's file
// references so); absolute paths and "" stay as they are.
std::string RelativeToConfig(const std::string& path, const std::string& config_path) {
  if (path.empty() || fs::path(path).is_absolute() || config_path.empty()) return path;
  return (fs::path(config_path).parent_path() / path).lexically_normal().string();
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Sets obj[key] = value, or removes the key when the value is empty/false (kubectl omits empty fields).
void SetOrErase(json& obj, const char* key, const std::string& value) {
  if (value.empty()) {
    obj.erase(key);
  } else {
    obj[key] = value;
  }
}

template <typename T>
T* FindByName(std::vector<T>& v, const std::string& name) {
  for (auto& e : v) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

template <typename T>
T& Upsert(std::vector<T>& v, const std::string& name) {
  if (T* e = FindByName(v, name)) return *e;
  v.emplace_back();
  v.back().name = name;
  return v.back();
}

// Creates `dir` and missing parents with mode 0700.
Status MakePrivateDirs(const fs::path& dir) {
  if (dir.empty()) return Status::Ok();
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  Status parent = MakePrivateDirs(dir.parent_path());
  if (!parent.ok()) return parent;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status(Code::kUnavailable, "creating " + dir.string() + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

}  // namespace

const KubeCluster* Kubeconfig::FindCluster(const std::string& name) const {
  return FindByName(const_cast<std::vector<KubeCluster>&>(clusters), name);
}
const KubeUser* Kubeconfig::FindUser(const std::string& name) const {
  return FindByName(const_cast<std::vector<KubeUser>&>(users), name);
}
const KubeContext* Kubeconfig::FindContext(const std::string& name) const {
  return FindByName(const_cast<std::vector<KubeContext>&>(contexts), name);
}
KubeCluster& Kubeconfig::UpsertCluster(const std::string& name) { return Upsert(clusters, name); }
KubeUser& Kubeconfig::UpsertUser(const std::string& name) { return Upsert(users, name); }
KubeContext& Kubeconfig::UpsertContext(const std::string& name) { return Upsert(contexts, name); }

json Kubeconfig::ToJson() const {
  json doc = raw.is_object() ? raw : json::object();
  doc["apiVersion"] = "v1";
  doc["kind"] = "Config";
  if (!doc.contains("preferences") || doc["preferences"].is_null()) doc["preferences"] = json::object();

  auto body = [](const json& entry_raw, const char* key) {
    json entry = entry_raw.is_object() ? entry_raw : json::object();
    if (!entry.contains(key) || !entry[key].is_object()) entry[key] = json::object();
    return entry;
  };
  json cl = json::array();
  for (const auto& c : clusters) {
    json e = body(c.raw, "cluster");
    e["name"] = c.name;
    json& b = e["cluster"];
    SetOrErase(b, "server", c.server);
    SetOrErase(b, "certificate-authority", c.certificate_authority);
    SetOrErase(b, "certificate-authority-data", c.certificate_authority_data);
    if (c.insecure_skip_tls_verify) {
      b["insecure-skip-tls-verify"] = true;
    } else {
      b.erase("insecure-skip-tls-verify");
    }
    cl.push_back(std::move(e));
  }
  json us = json::array();
  for (const auto& u : users) {
    json e = body(u.raw, "user");
    e["name"] = u.name;
    SetOrErase(e["user"], "token", u.token);
    SetOrErase(e["user"], "tokenFile", u.token_file);
    us.push_back(std::move(e));
  }
  json cx = json::array();
  for (const auto& c : contexts) {
    json e = body(c.raw, "context");
    e["name"] = c.name;
    SetOrErase(e["context"], "cluster", c.cluster);
    SetOrErase(e["context"], "user", c.user);
    SetOrErase(e["context"], "namespace", c.ns);
    cx.push_back(std::move(e));
  }
  doc["clusters"] = std::move(cl);
  doc["users"] = std::move(us);
  doc["contexts"] = std::move(cx);
  doc["current-context"] = current_context;
  return doc;
}

StatusOr<Kubeconfig> KubeconfigFromJson(const json& doc, const std::string& source) {
  Kubeconfig cfg;
  cfg.path = source;
  if (doc.is_null()) return cfg;
  Reader r(source);
  if (!doc.is_object()) {
    return Status(Code::kBadRequest, source + ": not a kubeconfig: the document must be a mapping");
  }
  std::string api_version, kind;
  r.String(doc, "apiVersion", "", api_version);
  r.String(doc, "kind", "", kind);
  if (!api_version.empty() && api_version != "v1") r.Fail("apiVersion", "must be v1, not \"" + api_version + "\"");
  if (!kind.empty() && kind != "Config") r.Fail("kind", "must be Config, not \"" + kind + "\"");
  cfg.raw = doc;

  r.NamedList(doc, "clusters", "cluster", [&](const json& entry, const std::string& f, const std::string& name,
                                               const json& b) {
    KubeCluster c;
    c.name = name;
    c.raw = entry;
    r.String(b, "server", f, c.server);
    r.String(b, "certificate-authority", f, c.certificate_authority);
    r.String(b, "certificate-authority-data", f, c.certificate_authority_data);
    r.Bool(b, "insecure-skip-tls-verify", f, c.insecure_skip_tls_verify);
    if (!c.certificate_authority_data.empty() && !Base64Decode(c.certificate_authority_data)) {
      r.Fail(f + ".certificate-authority-data", "is not base64");
    }
    cfg.clusters.push_back(std::move(c));
  });
  r.NamedList(doc, "users", "user", [&](const json& entry, const std::string& f, const std::string& name,
                                         const json& b) {
    KubeUser u;
    u.name = name;
    u.raw = entry;
    r.String(b, "token", f, u.token);
    r.String(b, "tokenFile", f, u.token_file);
    cfg.users.push_back(std::move(u));
  });
  r.NamedList(doc, "contexts", "context", [&](const json& entry, const std::string& f, const std::string& name,
                                               const json& b) {
    KubeContext c;
    c.name = name;
    c.raw = entry;
    r.String(b, "cluster", f, c.cluster);
    r.String(b, "user", f, c.user);
    r.String(b, "namespace", f, c.ns);
    cfg.contexts.push_back(std::move(c));
  });
  auto cc = doc.find("current-context");
  if (cc != doc.end() && !cc->is_null()) {
    if (cc->is_string()) {
      cfg.current_context = cc->get<std::string>();
    } else {
      r.Fail("current-context", "must be a string");
    }
  }
  if (r.failed()) return r.error();
  return cfg;
}

StatusOr<Kubeconfig> LoadKubeconfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::error_code ec;
    if (!fs::exists(path, ec)) return Status(Code::kNotFound, path + ": no such file");
    return Status(Code::kUnavailable, path + ": cannot read: " + ErrnoText(err));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto docs = ParseYamlDocuments(ss.str());
  if (!docs.ok()) return Status(Code::kBadRequest, path + ": " + docs.status().message());
  if (docs->size() > 1) return Status(Code::kBadRequest, path + ": holds more than one YAML document");
  return KubeconfigFromJson(docs->empty() ? json() : docs->front(), path);
}

Status SaveKubeconfig(const Kubeconfig& cfg, const std::string& path) {
  fs::path target = path;
  std::error_code ec;
  // Replace what a symlink points to, not the link (a config kept elsewhere and linked stays where it is).
  if (fs::is_symlink(target, ec)) {
    fs::path to = fs::read_symlink(target, ec);
    if (!ec) target = to.is_absolute() ? to : target.parent_path() / to;
  }
  fs::path dir = target.parent_path();
  Status made = MakePrivateDirs(dir);
  if (!made.ok()) return made;

  Status w = WriteFileAtomic(target.string(), ToYaml(cfg.ToJson()), 0600);
  if (!w.ok()) return Status(w.code(), "writing " + path + ": " + w.message());
  return Status::Ok();
}

json RedactKubeconfig(json doc) {
  auto hide = [](json& obj, const char* key, const char* with) {
    if (obj.is_object() && obj.contains(key) && obj[key].is_string() && !obj[key].get<std::string>().empty()) {
      obj[key] = with;
    }
  };
  if (doc.contains("clusters") && doc["clusters"].is_array()) {
    for (auto& e : doc["clusters"]) {
      if (e.is_object() && e.contains("cluster")) hide(e["cluster"], "certificate-authority-data", "DATA+OMITTED");
    }
  }
  if (doc.contains("users") && doc["users"].is_array()) {
    for (auto& e : doc["users"]) {
      if (!e.is_object() || !e.contains("user")) continue;
      json& u = e["user"];
      hide(u, "token", "REDACTED");
      hide(u, "password", "REDACTED");
      hide(u, "client-certificate-data", "DATA+OMITTED");
      hide(u, "client-key-data", "DATA+OMITTED");
    }
  }
  return doc;
}

namespace {

// ResolveKubeconfigContext, reading the token file and decoding CA data only when asked.
StatusOr<ClientSettings> ResolveContext(const Kubeconfig& cfg, const std::string& name, bool want_token,
                                        bool want_ca) {
  ClientSettings s;
  std::string ctx_name = name.empty() ? cfg.current_context : name;
  if (ctx_name.empty()) return s;
  const std::string where = cfg.path.empty() ? std::string("the config") : cfg.path;
  const KubeContext* ctx = cfg.FindContext(ctx_name);
  if (ctx == nullptr) return Status(Code::kNotFound, "context \"" + ctx_name + "\" not found in " + where);
  s.context = ctx->name;
  s.ns = ctx->ns;
  if (!ctx->cluster.empty()) {
    const KubeCluster* c = cfg.FindCluster(ctx->cluster);
    if (c == nullptr) {
      return Status(Code::kBadRequest, "context \"" + ctx_name + "\": cluster \"" + ctx->cluster + "\" not found in " +
                                           where);
    }
    s.server = c->server;
    s.insecure = c->insecure_skip_tls_verify;
    if (want_ca) {
      if (!c->certificate_authority.empty()) {
        s.ca_file = RelativeToConfig(c->certificate_authority, cfg.path);
      } else if (!c->certificate_authority_data.empty()) {
        auto pem = Base64Decode(c->certificate_authority_data);
        if (!pem) {
          return Status(Code::kBadRequest, where + ": cluster \"" + c->name + "\": certificate-authority-data is not base64");
        }
        s.ca_data = std::move(*pem);
      }
    }
  }
  if (!ctx->user.empty()) {
    const KubeUser* u = cfg.FindUser(ctx->user);
    if (u == nullptr) {
      return Status(Code::kBadRequest, "context \"" + ctx_name + "\": user \"" + ctx->user + "\" not found in " + where);
    }
    if (want_token) {
      if (!u->token.empty()) {
        s.token = u->token;
      } else if (!u->token_file.empty()) {
        s.token_file = RelativeToConfig(u->token_file, cfg.path);
        std::ifstream in(s.token_file, std::ios::binary);
        if (!in) {
          return Status(Code::kBadRequest, "user \"" + u->name + "\": cannot read tokenFile " + s.token_file + ": " +
                                               ErrnoText(errno));
        }
        std::stringstream ss;
        ss << in.rdbuf();
        s.token = ss.str();
        while (!s.token.empty() && std::isspace(static_cast<unsigned char>(s.token.back()))) s.token.pop_back();
      }
    }
  }
  return s;
}

}  // namespace

StatusOr<ClientSettings> ResolveKubeconfigContext(const Kubeconfig& cfg, const std::string& name) {
  return ResolveContext(cfg, name, true, true);
}

StatusOr<ClientSettings> ResolveClientSettings(const Kubeconfig* cfg, const std::string& context,
                                               const ClientOverrides& flags, const ClientOverrides& env) {
  ClientSettings s;
  bool token_given = !flags.token.empty() || !env.token.empty();
  bool ca_given = !flags.ca_file.empty() || !env.ca_file.empty();
  if (cfg != nullptr) {
    auto r = ResolveContext(*cfg, context, !token_given, !ca_given);
    if (!r.ok()) return r.status();
    s = std::move(*r);
  } else if (!context.empty()) {
    return Status(Code::kNotFound, "context \"" + context + "\" not found: there is no config file");
  }
  auto pick = [](std::string& field, const std::string& flag, const std::string& env_value, const char* fallback) {
    if (!flag.empty()) {
      field = flag;
    } else if (!env_value.empty()) {
      field = env_value;
    } else if (field.empty()) {
      field = fallback;
    }
  };
  pick(s.server, flags.server, env.server, kDefaultServer);
  pick(s.ns, flags.ns, env.ns, kDefaultNamespace);
  if (token_given) {
    s.token = !flags.token.empty() ? flags.token : env.token;
    s.token_file.clear();
  }
  if (ca_given) {
    s.ca_file = !flags.ca_file.empty() ? flags.ca_file : env.ca_file;
    s.ca_data.clear();
  }
  return s;
}

Kubeconfig MakeKubeconfig(const std::string& name, const std::string& server, const std::string& token,
                          const std::string& ca_pem, const std::string& ns, bool insecure) {
  Kubeconfig cfg;
  KubeCluster& c = cfg.UpsertCluster(name);
  c.server = server;
  if (!ca_pem.empty()) c.certificate_authority_data = Base64Encode(ca_pem);
  c.insecure_skip_tls_verify = insecure;
  cfg.UpsertUser(name).token = token;
  KubeContext& x = cfg.UpsertContext(name);
  x.cluster = name;
  x.user = name;
  x.ns = ns;
  cfg.current_context = name;
  return cfg;
}

}  // namespace stratus
