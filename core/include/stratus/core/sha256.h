// SHA-256 over OpenSSL's EVP interface: incremental hashing for streams, and a whole-file helper.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "stratus/core/status.h"

namespace stratus {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n);
  // Lowercase hex digest (64 characters). Call once.
  std::string Hex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lowercase hex of `n` bytes.
std::string HexLower(const unsigned char* p, size_t n);

// SHA-256 hex digest of a file's contents; kUnavailable when it cannot be read.
StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace stratus
