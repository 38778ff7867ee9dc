// `stratusctl create keypair` and `stratusctl ssh`: log in to an instance with the key the server made for it.
// The private key is answered once by the server (KeyPair created without spec.publicKey) and kept in the user's
// key directory; ssh then finds the instance's address in its status and that key by the instance's keyName.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "commands.h"
#include "stratus/core/files.h"
#include "stratus/core/object.h"
#include "stratus/core/sshkey.h"
#include "targets.h"

namespace stratus::cli {
namespace fs = std::filesystem;

std::string KeyDir() {
  const char* d = getenv("STRATUS_KEY_DIR");
  if (d && *d) return d;
  const char* home = getenv("HOME");
  return (fs::path(home && *home ? home : ".") / ".stratus" / "keys").string();
}

namespace {

std::string KeyFile(const std::string& dir, const std::string& ns, const std::string& name) {
  return (fs::path(dir.empty() ? KeyDir() : dir) / ns / name).string();
}

}  // namespace

int RunCreateKeyPair(Env& env, const CreateKeyPairOptions& opts) {
  Status v = ValidateDns1123Label(opts.name, "key pair name");
  if (!v.ok()) {
    *env.err << "error: " << v.message() << "\n";
    return 1;
  }
  std::string path = KeyFile(opts.key_dir, env.ns, opts.name);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    *env.err << "error: " << path << " exists: delete it (or the key pair) first; a private key is never replaced\n";
    return 1;
  }
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "KeyPair"},
              {"metadata", {{"name", opts.name}}},
              {"spec", {{"keyType", opts.type}}}};
  auto made = env.client->Create("keypairs", env.ns, obj);
  if (!made.ok()) {
    *env.err << "error: " << made.status().message() << "\n";
    return 1;
  }
  std::string key = made->value("status", json::object()).value("privateKey", "");
  if (key.empty()) {
    *env.err << "error: the server did not answer the private key\n";
    return 1;
  }
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (!ec) fs::permissions(fs::path(path).parent_path(), fs::perms::owner_all, ec);
  Status w = ec ? Status(Code::kUnavailable, ec.message()) : WriteFileAtomic(path, key, 0600);
  if (!w.ok()) {
    // The key exists only in this answer: print it rather than lose it.
    *env.err << "error: cannot save the private key to " << path << ": " << w.message()
             << "\nhere it is, shown only now:\n";
    *env.out << key;
    return 1;
  }
  *env.out << "keypair/" << opts.name << " created; private key saved to " << path << "\n";
  auto pub = ParseSshPublicKey(made->value("spec", json::object()).value("publicKey", ""));
  if (pub.ok()) *env.out << "fingerprint: SHA256:" << SshFingerprint(*pub) << "\n";
  return 0;
}

StatusOr<std::vector<std::string>> SshArgv(const json& inst, const std::string& ns, const SshOptions& opts) {
  const std::string name = MetaString(inst, "name");
  const json st = inst.value("status", json::object());
  std::string ip;
  std::vector<std::string> have;
  for (const auto& a : st.value("addresses", json::array())) {
    std::string net = a.value("network", "");
    have.push_back(net);
    if (ip.empty() && (opts.network.empty() || net == opts.network)) ip = a.value("ip", "");
  }
  if (ip.empty()) {
    if (!opts.network.empty()) {
      std::string list;
      for (const auto& h : have) list += (list.empty() ? "" : ", ") + h;
      return BadRequest("instance " + name + " has no address on network " + opts.network +
                        (list.empty() ? "" : " (it has addresses on: " + list + ")"));
    }
    return BadRequest("instance " + name + " has no address yet (phase " + st.value("phase", "Pending") +
                      "): it needs spec.networks and an address from IPAM");
  }
  std::string identity = opts.identity;
  const std::string key_name = inst.value("spec", json::object()).value("keyName", "");
  if (identity.empty() && !key_name.empty()) {
    std::string saved = KeyFile(opts.key_dir, ns, key_name);
    std::error_code ec;
    if (fs::exists(saved, ec)) identity = saved;
  }
  std::string ssh_command = opts.ssh_command;
  if (ssh_command.empty()) {
    const char* c = getenv("STRATUS_SSH_COMMAND");
    ssh_command = c && *c ? c : "ssh";
  }
  std::vector<std::string> argv;
  std::istringstream words(ssh_command);
  for (std::string w; words >> w;) argv.push_back(w);
  std::string dir = opts.key_dir.empty() ? KeyDir() : opts.key_dir;
  // One known_hosts entry per instance (its uid), kept beside the keys: an address used again by another
  // instance is another host, not a changed key.
  argv.insert(argv.end(), {"-o", "HostKeyAlias=stratus-" + MetaString(inst, "uid"), "-o",
                           "UserKnownHostsFile=" + (fs::path(dir) / "known_hosts").string(), "-o",
                           "StrictHostKeyChecking=accept-new"});
  if (!identity.empty()) argv.insert(argv.end(), {"-i", identity, "-o", "IdentitiesOnly=yes"});
  // "--" ends ssh's options before the host: everything after the host is the remote command, as given.
  argv.insert(argv.end(), {"-l", opts.user, "--", ip});
  auto cmd = opts.command.begin();
  if (cmd != opts.command.end() && *cmd == "--") ++cmd;  // the argument parser may keep the separator
  argv.insert(argv.end(), cmd, opts.command.end());
  return argv;
}

int RunSsh(Env& env, const SshOptions& opts) {
  auto names = InstanceNames({opts.target});
  if (!names.ok()) {
    *env.err << "error: " << names.status().message() << "\n";
    return 1;
  }
  auto inst = env.client->Get("instances", env.ns, (*names)[0]);
  if (!inst.ok()) {
    *env.err << "error: " << inst.status().message() << "\n";
    return 1;
  }
  auto argv = SshArgv(*inst, env.ns, opts);
  if (!argv.ok()) {
    *env.err << "error: " << argv.status().message() << "\n";
    return 1;
  }
  std::error_code ec;
  fs::create_directories(opts.key_dir.empty() ? KeyDir() : opts.key_dir, ec);  // for known_hosts
  std::vector<char*> cargv;
  for (auto& a : *argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  env.out->flush();
  env.err->flush();
  execvp(cargv[0], cargv.data());
  *env.err << "error: cannot run " << (*argv)[0] << ": " << std::strerror(errno) << "\n";
  return 1;
}

}  // namespace stratus::cli
