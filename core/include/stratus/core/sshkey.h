// SSH key pairs as clouds hand them out: generated with OpenSSL (RSA 2048 or Ed25519), the private key in the
// format ssh reads (PEM "RSA PRIVATE KEY" for RSA, "OPENSSH PRIVATE KEY" for Ed25519, as EC2 returns them), the
// public key as an authorized_keys line, and the fingerprints EC2 shows.
#pragma once

#include <string>

#include "stratus/core/status.h"

namespace stratus {

struct SshKeyPair {
  std::string type;            // rsa | ed25519
  std::string private_key;     // PEM text
  std::string public_openssh;  // "ssh-ed25519 AAAA... COMMENT"
};

// kInvalid naming `type` unless it is rsa or ed25519.
StatusOr<SshKeyPair> GenerateSshKey(const std::string& type, const std::string& comment);

struct SshPublicKey {
  std::string type;  // rsa | ed25519 | ecdsa
  std::string blob;  // the decoded key blob (SSH wire format)
};
// Parses an authorized_keys line ("ssh-rsa AAAA... [comment]"); kInvalid with the reason otherwise.
StatusOr<SshPublicKey> ParseSshPublicKey(const std::string& line);

// EC2's fingerprints: base64 SHA-256 of the blob for Ed25519 (as `ssh-keygen -l` without its "SHA256:" and with
// padding), colon-separated hex MD5 of the blob for the others (RFC 4716).
std::string SshFingerprint(const SshPublicKey& key);

}  // namespace stratus
