// Images (Glance's job) on each node: fetch the source (file://, http://, https://), verify the sha256, detect
// the format with qemu-img and convert when needed, and cache the result once per node in a libvirt storage
// pool. Nothing half-imported is ever visible: work happens in a temporary file that is removed on failure.
#pragma once

#include <functional>
#include <string>

#include "stratus/core/api_client.h"
#include "stratus/host/storage.h"
#include "stratus/runtime/conditions.h"
#include "stratus/runtime/controller.h"
#include "stratus/runtime/informer.h"

namespace stratus::image {

// Copies or downloads `url` to `dest`, hashing as it goes; returns the sha256 hex digest.
// `progress(done, total)` (total 0 when unknown). kBadRequest for unsupported schemes, kUnavailable when the
// source cannot be read. `ca_file` (PEM) is the only CA an https source is verified against; "" = the system's.
StatusOr<std::string> Fetch(const std::string& url, const std::string& dest,
                            const std::function<void(uint64_t, uint64_t)>& progress, const std::string& ca_file = "",
                            const std::string& bearer_token = "");

struct FormatInfo {
  std::string format;       // qcow2, raw, iso (qemu-img reports iso images as raw; detected by signature)
  uint64_t virtual_size = 0;
  uint64_t actual_size = 0;
  bool has_backing = false;
};
// `qemu-img info` of a local file.
StatusOr<FormatInfo> DetectFormat(const std::string& path);

// Where the image's bytes come from: spec.source.url, or for an uploaded image the API server's copy
// (`api_url` + .../images/NAME/upload). Empty with `*waiting` set when the data has not been uploaded yet.
std::string SourceUrl(const json& image, const std::string& api_url, std::string* waiting);

// An Image captured from a Volume (spec.source.volume: EC2's CreateImage, Glance's image from a server) or from a
// VolumeSnapshot (spec.source.snapshot): the node that holds it copies it (a live volume crash-consistent:
// qemu-img convert -U of the live file) and uploads the copy to the API server; from then on every node imports
// it like any uploaded image.
struct CaptureSource {
  std::string kind;    // "volume" | "snapshot" ("" when the image is not captured)
  std::string plural;  // volumes | volumesnapshots
  std::string name;
};
// spec.source.volume or spec.source.snapshot.
CaptureSource SourceToCapture(const json& image);
struct CaptureDecision {
  enum class Action { kNone, kWait, kCapture } action = Action::kNone;
  std::string message;  // why we wait
  std::string path;     // kCapture: the volume's (snapshot's) file
};
// Pure: what this node does about `image`'s source volume or snapshot. `source` is that object (null when
// missing); a volume is ready when Available or InUse, a snapshot when Ready.
CaptureDecision DecideCapture(const json& image, const json& source, const std::string& node);
// Admission: spec.source names exactly one of url, volume and snapshot; the last two only for a disk image.
Status ValidateImage(const json& image);

// The pool volume name caching an Image (stable across restarts; derived from its uid).
std::string CacheVolumeName(const json& image);

// This node's entry in the Image's status (status.nodes.<node>: phase, progress, reason, message, size,
// virtualSize, format, checksum), or null. Each node's image reconciler is the only writer of its own entry; the
// cluster's image-status reconciler summarizes them into the top-level status.
json NodeEntry(const json& image, const std::string& node);
// True when the image is imported and cached on `node` (its entry says Ready).
bool CachedOn(const json& image, const std::string& node);

// Owns status.nodes.<this node> of every Image (written by merge patch, so nodes never overwrite each other).
class ImageReconciler : public runtime::Reconciler {
 public:
  // `api_url` is the API server's base URL, from which uploaded image data is fetched
  // (GET .../images/NAME/upload); empty when uploads cannot be imported. `api_ca_file`: the CA that server's
  // https certificate is verified against ("" = the system's CAs); other sources use the system's CAs.
  ImageReconciler(ApiClient* client, runtime::Informer* images, host::StoragePools* storage, std::string pool,
                  std::string work_dir, std::string node, std::string api_url = "", std::string api_ca_file = "",
                  std::string api_token = "");
  std::string Name() const override { return "image"; }
  std::vector<const runtime::Informer*> Reads() const override { return {images_}; }
  std::vector<runtime::WatchSpec> Watches() override;
  StatusOr<runtime::Result> Reconcile(const std::string& key) override;

 private:
  Status Import(const json& img, const std::string& volume);
  // Copies the volume file at `path` and uploads the copy as the image's data.
  Status Capture(const json& img, const std::string& path);
  // Writes this node's entry (only the fields given; null removes one) unless it already says so.
  Status Report(const json& img, json entry);

  ApiClient* client_;
  runtime::Informer* images_;
  host::StoragePools* storage_;
  std::string pool_;
  std::string work_dir_;
  std::string node_;
  std::string api_url_;
  std::string api_ca_file_;
  std::string api_token_;  // sent to the API server's URL only
  runtime::EventRecorder events_;
};

}  // namespace stratus::image
