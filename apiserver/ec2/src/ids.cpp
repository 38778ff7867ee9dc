#include "stratus/ec2/ids.h"

#include "stratus/core/sha256.h"

namespace stratus::ec2 {

std::string Ec2Id(const std::string& prefix, const std::string& uid) {
  Sha256 h;
  h.Update(uid.data(), uid.size());
  return prefix + "-" + h.Hex().substr(0, 17);
}

std::string Ec2Prefix(const std::string& kind, const json& obj) {
  if (kind == "Instance") return "i";
  if (kind == "Volume") return "vol";
  if (kind == "VolumeSnapshot") return "snap";
  if (kind == "SecurityGroup") return "sg";
  if (kind == "KeyPair") return "key";
  if (kind == "Network") return "subnet";
  if (kind == "Address") return "eipalloc";
  if (kind == "Image") {
    std::string type;
    if (obj.contains("spec") && obj["spec"].is_object() && obj["spec"].contains("type") && obj["spec"]["type"].is_string()) {
      type = obj["spec"]["type"].get<std::string>();
    }
    return type == "kernel" ? "aki" : type == "ramdisk" ? "ari" : "ami";
  }
  return "";
}

std::string Ec2IdOf(const json& obj) {
  if (!obj.is_object()) return "";
  std::string prefix = Ec2Prefix(obj.value("kind", ""), obj);
  std::string uid = MetaString(obj, "uid");
  if (prefix.empty() || uid.empty()) return "";
  return Ec2Id(prefix, uid);
}

}  // namespace stratus::ec2
