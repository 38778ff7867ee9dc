#include "stratus/instance/seed.h"

#include "stratus/core/sha256.h"
#include "stratus/core/yaml.h"

namespace stratus::instance {
namespace {

bool Utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

// The MIME type cloud-init gives a user-data part by its first line.
std::string PartType(const std::string& data) {
  if (data.rfind("#!", 0) == 0) return "text/x-shellscript";
  if (data.rfind("#cloud-config", 0) == 0) return "text/cloud-config";
  if (data.rfind("#cloud-boothook", 0) == 0) return "text/cloud-boothook";
  if (data.rfind("#include", 0) == 0) return "text/x-include-url";
  return "text/plain";
}

}  // namespace

StatusOr<SeedFiles> MakeSeed(const SeedInput& in) {
  if (in.user_data.size() > 16384) {
    return InvalidError("spec.userData: must be at most 16 KiB (got " + std::to_string(in.user_data.size()) + " bytes)",
                        {{"spec.userData", "must be at most 16 KiB"}});
  }
  if (!Utf8(in.user_data)) {
    return InvalidError("spec.userData: must be UTF-8 text (base64-encode binary data)",
                        {{"spec.userData", "must be UTF-8 text"}});
  }
  SeedFiles out;
  out.meta_data = ToYaml(json{{"instance-id", in.instance_id}, {"local-hostname", in.hostname}});

  // The keys go in a cloud-config; with user data too, both go as a multipart message that cloud-init merges.
  std::string keys;
  if (!in.ssh_keys.empty()) keys = "#cloud-config\n" + ToYaml(json{{"ssh_authorized_keys", in.ssh_keys}});
  if (keys.empty()) {
    out.user_data = in.user_data.empty() ? "#cloud-config\n{}\n" : in.user_data;
  } else if (in.user_data.empty()) {
    out.user_data = keys;
  } else {
    // A boundary that cannot occur in the parts, and the same for the same inputs.
    Sha256 h;
    std::string both = keys + in.user_data;
    h.Update(both.data(), both.size());
    std::string boundary = "stratus-" + h.Hex().substr(0, 24);
    auto part = [&](const std::string& type, const std::string& body) {
      return "--" + boundary + "\nContent-Type: " + type + "; charset=\"utf-8\"\nMIME-Version: 1.0\n\n" + body +
             (body.empty() || body.back() == '\n' ? "" : "\n");
    };
    out.user_data = "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\nMIME-Version: 1.0\n\n" +
                    part("text/cloud-config", keys) + part(PartType(in.user_data), in.user_data) + "--" + boundary +
                    "--\n";
  }

  json ethernets = json::object();
  for (size_t i = 0; i < in.nics.size(); ++i) {
    const SeedNic& n = in.nics[i];
    json e = {{"match", {{"macaddress", n.mac}}}, {"set-name", "eth" + std::to_string(i)}};
    if (n.address.empty()) {
      e["dhcp4"] = true;
    } else {
      e["addresses"] = json::array({n.address});
      if (!n.gateway.empty()) e["gateway4"] = n.gateway;
      if (!n.dns.empty()) e["nameservers"] = {{"addresses", n.dns}};
    }
    ethernets["eth" + std::to_string(i)] = e;
  }
  out.network_config = ToYaml(json{{"version", 2}, {"ethernets", ethernets}});
  return out;
}

}  // namespace stratus::instance
