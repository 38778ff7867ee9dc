#include "stratus/core/sshkey.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <memory>
#include <sstream>
#include <vector>

#include "stratus/core/base64.h"
#include "stratus/core/sha256.h"

namespace stratus {
namespace {

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using BnPtr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;

// SSH wire format (RFC 4251): uint32 lengths, big-endian.
void PutU32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>((v >> s) & 0xff));
}
void PutString(std::string* out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  *out += s;
}
void PutMpint(std::string* out, const BIGNUM* bn) {
  std::string b(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(b.data()));
  if (!b.empty() && (static_cast<unsigned char>(b[0]) & 0x80)) b.insert(b.begin(), '\0');
  PutString(out, b);
}
bool GetString(const std::string& in, size_t* pos, std::string* out) {
  if (in.size() - *pos < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(in[*pos + i]);
  *pos += 4;
  if (in.size() - *pos < n) return false;
  *out = in.substr(*pos, n);
  *pos += n;
  return true;
}

std::string Wrap(const std::string& b64, size_t width) {
  std::string out;
  for (size_t i = 0; i < b64.size(); i += width) out += b64.substr(i, width) + "\n";
  return out;
}

StatusOr<std::string> RawKey(EVP_PKEY* k, bool priv) {
  size_t n = 0;
  int ok = priv ? EVP_PKEY_get_raw_private_key(k, nullptr, &n) : EVP_PKEY_get_raw_public_key(k, nullptr, &n);
  if (ok != 1) return Internal("cannot read the raw Ed25519 key");
  std::string out(n, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  ok = priv ? EVP_PKEY_get_raw_private_key(k, p, &n) : EVP_PKEY_get_raw_public_key(k, p, &n);
  if (ok != 1) return Internal("cannot read the raw Ed25519 key");
  return out;
}

// OpenSSH's own private key format (PROTOCOL.key), unencrypted: what ssh and EC2 use for Ed25519.
std::string OpenSshPrivate(const std::string& pub_blob, const std::string& pub, const std::string& seed,
                           const std::string& comment) {
  unsigned char check[4];
  RAND_bytes(check, sizeof check);
  uint32_t c = (uint32_t{check[0]} << 24) | (uint32_t{check[1]} << 16) | (uint32_t{check[2]} << 8) | check[3];
  std::string priv;
  PutU32(&priv, c);
  PutU32(&priv, c);
  PutString(&priv, "ssh-ed25519");
  PutString(&priv, pub);
  PutString(&priv, seed + pub);
  PutString(&priv, comment);
  for (char pad = 1; priv.size() % 8 != 0; ++pad) priv.push_back(pad);
  std::string body("openssh-key-v1", 15);  // with its NUL
  PutString(&body, "none");
  PutString(&body, "none");
  PutString(&body, "");
  PutU32(&body, 1);
  PutString(&body, pub_blob);
  PutString(&body, priv);
  return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + Wrap(Base64Encode(body), 70) + "-----END OPENSSH PRIVATE KEY-----\n";
}

}  // namespace

StatusOr<SshKeyPair> GenerateSshKey(const std::string& type, const std::string& comment) {
  if (type != "rsa" && type != "ed25519") {
    return InvalidError("KeyType: \"" + type + "\" is not supported: use rsa or ed25519");
  }
  PkeyPtr key(type == "rsa" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                            : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"),
              EVP_PKEY_free);
  if (!key) return Internal("cannot generate an " + type + " key");
  SshKeyPair out;
  out.type = type;
  std::string blob;
  if (type == "rsa") {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    if (EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
      BN_free(n);
      BN_free(e);
      return Internal("cannot read the RSA key");
    }
    BnPtr np(n, BN_free), ep(e, BN_free);
    PutString(&blob, "ssh-rsa");
    PutMpint(&blob, ep.get());
    PutMpint(&blob, np.get());
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio || PEM_write_bio_PrivateKey_traditional(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      return Internal("cannot write the RSA private key");
    }
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    out.private_key.assign(data, static_cast<size_t>(len));
    out.public_openssh = "ssh-rsa " + Base64Encode(blob);
  } else {
    auto pub = RawKey(key.get(), false);
    auto seed = RawKey(key.get(), true);
    if (!pub.ok()) return pub.status();
    if (!seed.ok()) return seed.status();
    PutString(&blob, "ssh-ed25519");
    PutString(&blob, *pub);
    out.private_key = OpenSshPrivate(blob, *pub, *seed, comment);
    out.public_openssh = "ssh-ed25519 " + Base64Encode(blob);
  }
  if (!comment.empty()) out.public_openssh += " " + comment;
  return out;
}

StatusOr<SshPublicKey> ParseSshPublicKey(const std::string& line) {
  std::istringstream in(line);
  std::string algo, b64;
  in >> algo >> b64;
  if (algo.empty() || b64.empty()) return InvalidError("not an OpenSSH public key (TYPE BASE64 [COMMENT])");
  SshPublicKey k;
  if (algo == "ssh-rsa") {
    k.type = "rsa";
  } else if (algo == "ssh-ed25519") {
    k.type = "ed25519";
  } else if (algo.rfind("ecdsa-sha2-", 0) == 0) {
    k.type = "ecdsa";
  } else {
    return InvalidError("key type \"" + algo + "\" is not supported (ssh-rsa, ssh-ed25519, ecdsa-sha2-*)");
  }
  auto blob = Base64Decode(b64);
  if (!blob) return InvalidError("the key's base64 does not decode");
  size_t pos = 0;
  std::string inner;
  if (!GetString(*blob, &pos, &inner) || inner != algo) return InvalidError("the key's blob does not say " + algo);
  if (k.type == "ed25519") {
    std::string pub;
    if (!GetString(*blob, &pos, &pub) || pub.size() != 32 || pos != blob->size()) {
      return InvalidError("not a valid Ed25519 key");
    }
  } else if (k.type == "rsa") {
    std::string e, n;
    if (!GetString(*blob, &pos, &e) || !GetString(*blob, &pos, &n) || pos != blob->size() || n.size() < 128) {
      return InvalidError("not a valid RSA key (at least 1024 bits)");
    }
  }
  k.blob = std::move(*blob);
  return k;
}

std::string SshFingerprint(const SshPublicKey& key) {
  if (key.type == "ed25519") {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(key.blob.data(), key.blob.size(), d, &n, EVP_sha256(), nullptr);
    return Base64Encode(std::string(reinterpret_cast<char*>(d), n));
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(key.blob.data(), key.blob.size(), d, &n, EVP_md5(), nullptr);
  std::string hex = HexLower(d, n), out;
  for (size_t i = 0; i < hex.size(); i += 2) out += (i ? ":" : "") + hex.substr(i, 2);
  return out;
}

}  // namespace stratus
