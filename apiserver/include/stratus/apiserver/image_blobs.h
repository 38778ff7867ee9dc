// Uploaded image data (Glance's image-data API): the bytes of an Image without spec.source are PUT to
// .../images/NAME/upload, kept in the server's data dir under the Image's uid, and served back on GET so that
// every node agent imports them over HTTP like any other source. Images are immutable: data is accepted once.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "stratus/apiserver/registry.h"

namespace stratus {

class ImageBlobs {
 public:
  // `dir` holds one file per uploaded image (named by uid); uploads larger than `max_bytes` are refused.
  ImageBlobs(Registry* registry, std::string dir, uint64_t max_bytes);

  struct Upload {
    std::string uid;
    std::string tmp_path;
  };
  // Checks that image ns/name accepts `content_length` bytes of data (exists, has no spec.source, not uploaded
  // yet, not being deleted, no other upload in flight) and returns where to write them.
  StatusOr<Upload> Begin(const std::string& ns, const std::string& name, int64_t content_length);
  // Verifies size and sha256 (against spec.sha256 when set), makes the file durable, and records
  // status.upload {size, sha256, uploadedAt}. Returns the updated Image. The temporary file is gone afterwards
  // either way.
  StatusOr<json> Commit(const std::string& ns, const std::string& name, const Upload& up, uint64_t expected_bytes);
  // Drops an upload that failed while receiving.
  void Abort(const Upload& up);
  // The file holding image ns/name's uploaded data; kNotFound (with the reason) when there is none.
  StatusOr<std::string> DataPath(const std::string& ns, const std::string& name) const;
  // Removes data of Images that no longer exist and leftover partial uploads. Safe to call any time.
  void Sweep();

 private:
  std::string FinalPath(const std::string& uid) const;

  Registry* registry_;
  std::string dir_;
  uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::set<std::string> in_flight_;  // uids
};

}  // namespace stratus
