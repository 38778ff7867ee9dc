// NoCloud seed disks on a node: an ISO 9660 volume labelled "cidata" holding cloud-init's files (meta-data,
// user-data, network-config), which the instance's domain attaches as a read-only cdrom. A narrow interface, so the
// Instance reconciler runs the same against the real writer and the in-memory fake of the unit tests.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "stratus/core/status.h"

namespace stratus::host {

class SeedDisks {
 public:
  virtual ~SeedDisks() = default;
  // The stamp the seed at `path` was last written with; "" when there is none (never written, removed, or torn by
  // a crash between the image and its stamp: then it is written again).
  virtual std::string Stamp(const std::string& path) = 0;
  // Writes the seed image at `path` (file name -> contents) atomically: a reader sees the old image or the new one,
  // never a partial one. Then records `stamp`. kUnavailable naming the path and the tool's error.
  virtual Status Write(const std::string& path, const std::map<std::string, std::string>& files,
                       const std::string& stamp) = 0;
};

// (An instance's seed lives in its directory under the agent's data dir, which its teardown removes.)
// The real writer: Debian's xorriso (`xorriso -as mkisofs -V cidata -J -r`), run by argument vector; the stamp is a
// file beside the image (PATH.stamp).
std::unique_ptr<SeedDisks> NewIsoSeedDisks();

}  // namespace stratus::host
