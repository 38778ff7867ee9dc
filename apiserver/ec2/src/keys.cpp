#include "stratus/ec2/keys.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "stratus/core/sha256.h"

namespace stratus::ec2 {
namespace {


class ObjectAccessKeys : public AccessKeys {
 public:
  ObjectAccessKeys(ApiClient* client, std::string master) : client_(client), master_(std::move(master)) {}
  std::optional<AccessKey> Find(const std::string& id) override {
    if (id.size() != 20 || id.compare(0, 4, "AKIA") != 0) return std::nullopt;
    auto list = client_->List("accesskeys", "", {});
    if (!list.ok()) return std::nullopt;
    for (const auto& o : (*list)["items"]) {
      const json& spec = o.value("spec", json::object());
      if (spec.value("accessKeyId", "") != id) continue;
      if (o["metadata"].contains("deletionTimestamp")) return std::nullopt;
      std::string uid = o["metadata"].value("uid", "");
      return AccessKey{id, SecretFor(master_, uid), spec.value("user", ""), spec.value("namespace", "")};
    }
    return std::nullopt;
  }

 private:
  ApiClient* client_;
  std::string master_;
};

}  // namespace

std::string AccessKeyIdFor(const std::string& uid) {
  static const char* kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  Sha256 h;
  std::string in = "stratus-access-key-id:" + uid;
  h.Update(in.data(), in.size());
  std::string hex = h.Hex();
  std::string id = "AKIA";
  for (int i = 0; i < 16; ++i) id += kBase32[std::stoi(hex.substr(i * 2, 2), nullptr, 16) & 31];
  return id;
}

std::string SecretFor(const std::string& master_key, const std::string& uid) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  std::string in = "stratus-secret-access-key:" + uid;
  HMAC(EVP_sha256(), master_key.data(), static_cast<int>(master_key.size()),
       reinterpret_cast<const unsigned char*>(in.data()), in.size(), mac, &len);
  unsigned char b64[64];
  EVP_EncodeBlock(b64, mac, static_cast<int>(len));  // 44 characters for 32 bytes
  return std::string(reinterpret_cast<char*>(b64), 40);
}

StatusOr<std::string> LoadOrCreateMasterKey(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) {
      ::close(fd);
      ::unlink(path.c_str());
      return Status(Code::kInternal, "cannot draw random bytes for " + path);
    }
    std::string text = HexLower(b, sizeof b) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      return Status(Code::kUnavailable, "cannot write " + path);
    }
  } else if (errno != EEXIST) {
    return Status(Code::kUnavailable, "cannot create " + path + ": " + std::strerror(errno));
  }
  std::ifstream in(path);
  std::string key;
  std::getline(in, key);
  if (key.size() != 64) return Status(Code::kInvalid, path + ": expected 64 hexadecimal digits");
  return key;
}

std::unique_ptr<AccessKeys> NewObjectAccessKeys(ApiClient* client, std::string master_key) {
  return std::make_unique<ObjectAccessKeys>(client, std::move(master_key));
}

}  // namespace stratus::ec2
