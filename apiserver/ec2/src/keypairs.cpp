// Key pairs and instance types (flavors): CreateKeyPair, ImportKeyPair, DeleteKeyPair, DescribeInstanceTypes.
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/base64.h"
#include "stratus/core/object.h"
#include "stratus/core/sshkey.h"

namespace stratus::ec2::actions {
namespace {

// The KeyPair's name: EC2 allows 255 ASCII characters, the object a DNS label.
std::optional<Error> KeyName(const Call& c, std::string* name) {
  auto n = c.params.Get("KeyName");
  if (!n || n->empty()) return MissingParameter("KeyName");
  if (!ValidateDns1123Label(*n, "KeyName").ok()) {
    return InvalidParameterValue("KeyName '" + *n + "' must be a DNS label here (lowercase letters, digits and '-', "
                                 "at most 63 characters)");
  }
  *name = *n;
  return std::nullopt;
}

std::optional<Error> MakeKeyPair(ApiClient* api, const Call& c, const std::string& name, const std::string& pub,
                                 json* made) {
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "KeyPair"},
              {"metadata", {{"name", name}}},
              {"spec", {{"publicKey", pub}}}};
  auto r = api->Create("keypairs", c.caller->ns, obj);
  if (!r.ok()) {
    if (r.status().code() == Code::kAlreadyExists) {
      return Error{"InvalidKeyPair.Duplicate", "The keypair '" + name + "' already exists.", 400};
    }
    if (r.status().code() == Code::kInvalid) return InvalidParameterValue(r.status().message());
    return FromStatus(r.status());
  }
  *made = std::move(*r);
  return std::nullopt;
}

}  // namespace

std::optional<Error> CreateKeyPair(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::string name;
  if (auto e = KeyName(c, &name)) return e;
  std::string type = c.params.Get("KeyType").value_or("rsa");
  if (type != "rsa" && type != "ed25519") return InvalidParameterValue("KeyType must be rsa or ed25519");
  std::string format = c.params.Get("KeyFormat").value_or("pem");
  if (format != "pem") return InvalidParameterValue("KeyFormat must be pem");
  auto key = GenerateSshKey(type, name);
  if (!key.ok()) return Error{"InternalError", key.status().message(), 500};
  json made;
  if (auto e = MakeKeyPair(api, c, name, key->public_openssh, &made)) return e;
  auto parsed = ParseSshPublicKey(key->public_openssh);
  AddText(r->root(), "keyName", name);
  AddText(r->root(), "keyFingerprint", parsed.ok() ? SshFingerprint(*parsed) : "");
  AddText(r->root(), "keyMaterial", key->private_key);  // answered once: only the public key is stored
  AddText(r->root(), "keyPairId", Ec2Id("key", Uid(made)));
  return std::nullopt;
}

std::optional<Error> ImportKeyPair(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::string name;
  if (auto e = KeyName(c, &name)) return e;
  auto material = c.params.Get("PublicKeyMaterial");
  if (!material || material->empty()) return MissingParameter("PublicKeyMaterial");
  if (material->size() > 16384) return InvalidParameterValue("PublicKeyMaterial is longer than 16 KiB");
  // awscli sends the file's bytes base64-encoded (fileb://); a raw key line is accepted too.
  std::string line = *material;
  if (line.rfind("ssh-", 0) != 0 && line.rfind("ecdsa-", 0) != 0) {
    auto decoded = Base64Decode(line);
    if (!decoded) return InvalidParameterValue("PublicKeyMaterial is neither an OpenSSH public key nor its base64");
    line = *decoded;
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' ')) line.pop_back();
  auto parsed = ParseSshPublicKey(line);
  if (!parsed.ok()) return Error{"InvalidKey.Format", "Key is not in valid OpenSSH public key format: " + parsed.status().message(), 400};
  json made;
  if (auto e = MakeKeyPair(api, c, name, line, &made)) return e;
  AddText(r->root(), "keyName", name);
  AddText(r->root(), "keyFingerprint", SshFingerprint(*parsed));
  AddText(r->root(), "keyPairId", Ec2Id("key", Uid(made)));
  return std::nullopt;
}

std::optional<Error> DeleteKeyPair(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  auto name = c.params.Get("KeyName");
  auto id = c.params.Get("KeyPairId");
  if ((!name || name->empty()) && (!id || id->empty())) return MissingParameter("KeyName");
  std::string target = name.value_or("");
  if (id && !id->empty()) {
    static const std::regex kId("key-[0-9a-f]{17}");
    if (!std::regex_match(*id, kId)) return Error{"InvalidKeyPair.Malformed", "Invalid id: \"" + *id + "\"", 400};
    auto list = api->List("keypairs", c.caller->ns, {});
    if (!list.ok()) return FromStatus(list.status());
    target.clear();
    for (const auto& kp : (*list)["items"]) {
      if (Ec2Id("key", Uid(kp)) == *id) target = Name(kp);
    }
    if (target.empty()) return Error{"InvalidKeyPair.NotFound", "The key pair '" + *id + "' does not exist", 400};
  }
  // EC2 answers true for a name that does not exist; so does this.
  if (ValidateDns1123Label(target, "KeyName").ok()) {
    auto d = api->Delete("keypairs", c.caller->ns, target, "");
    if (!d.ok() && d.status().code() != Code::kNotFound) return FromStatus(d.status());
  }
  AddBool(r->root(), "return", true);
  AddText(r->root(), "keyPairId", id.value_or(""));
  return std::nullopt;
}

std::optional<Error> DescribeInstanceTypes(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::string> names;
  Error e;
  if (!c.params.List("InstanceType", &names, &e)) return e;
  auto list = api->List("instancetypes", "", {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(names.begin(), names.end()), seen;
  auto set = AddSet(r->root(), "instanceTypeSet");
  for (const auto& it : (*list)["items"]) {
    std::string name = Name(it);
    if (!wanted.empty() && !wanted.count(name)) continue;
    seen.insert(name);
    const json spec = it.value("spec", json::object());
    auto item = AddItem(set);
    AddText(item, "instanceType", name);
    AddBool(item, "currentGeneration", true);
    AddBool(item, "bareMetal", false);
    AddText(item, "hypervisor", "kvm");
    auto pi = item.append_child("processorInfo");
    AddItem(AddSet(pi, "supportedArchitectures")).text().set("x86_64");
    auto vcpu = item.append_child("vCpuInfo");
    AddText(vcpu, "defaultVCpus", std::to_string(spec.value("vcpus", 1)));
    auto mem = item.append_child("memoryInfo");
    AddText(mem, "sizeInMiB", std::to_string(spec.value("memoryMiB", 0)));
    AddBool(item, "instanceStorageSupported", spec.value("diskGiB", 0) > 0);
    if (spec.value("diskGiB", 0) > 0) {
      auto storage = item.append_child("instanceStorageInfo");
      AddText(storage, "totalSizeInGB", std::to_string(spec.value("diskGiB", 0)));
    }
  }
  for (const auto& n : wanted) {
    if (!seen.count(n)) {
      return Error{"InvalidInstanceType", "The following supplied instance types do not exist: [" + n + "]", 400};
    }
  }
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
