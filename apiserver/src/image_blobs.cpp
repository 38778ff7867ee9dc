#include "stratus/apiserver/image_blobs.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>

#include "stratus/core/object.h"
#include "stratus/core/sha256.h"

namespace stratus {
namespace fs = std::filesystem;

namespace {

// fsync of a file or directory; false when it cannot be opened or synced.
bool SyncPath(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

bool IsUploaded(const json& img) {
  return img.contains("status") && img["status"].is_object() && img["status"].contains("upload");
}

}  // namespace

ImageBlobs::ImageBlobs(Registry* registry, std::string dir, uint64_t max_bytes)
    : registry_(registry), dir_(std::move(dir)), max_bytes_(max_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) spdlog::error("cannot create the image upload dir: path={} error={}", dir_, ec.message());
}

std::string ImageBlobs::FinalPath(const std::string& uid) const { return (fs::path(dir_) / uid).string(); }

StatusOr<ImageBlobs::Upload> ImageBlobs::Begin(const std::string& ns, const std::string& name,
                                               int64_t content_length) {
  if (content_length < 0) {
    return BadRequest("an image upload needs a Content-Length header (the size of the data)");
  }
  if (content_length == 0) return BadRequest("the upload is empty: send the image data as the request body");
  if (static_cast<uint64_t>(content_length) > max_bytes_) {
    return Status(Code::kRequestEntityTooLarge, "image data of " + std::to_string(content_length) +
                                                    " bytes is larger than the limit of " +
                                                    std::to_string(max_bytes_) + " bytes");
  }
  auto img = registry_->Get(*FindByKind("Image"), ns, name);
  if (!img.ok()) return img.status();
  if (!MetaString(*img, "deletionTimestamp").empty()) {
    return Status(Code::kConflict, "image \"" + name + "\" is being deleted");
  }
  const json& spec = (*img)["spec"];
  if (spec.contains("source") && spec["source"].is_object() && spec["source"].contains("url")) {
    return Status(Code::kConflict, "image \"" + name + "\" imports from spec.source.url; only an image without "
                                   "spec.source takes uploaded data");
  }
  if (IsUploaded(*img)) {
    return Status(Code::kConflict, "image \"" + name + "\" already has its data (images are immutable: delete it "
                                   "and create it again to replace the data)");
  }
  std::string uid = MetaString(*img, "uid");
  std::lock_guard lock(mu_);
  if (in_flight_.count(uid)) {
    return Status(Code::kConflict, "an upload to image \"" + name + "\" is already in progress");
  }
  in_flight_.insert(uid);
  return Upload{uid, FinalPath(uid) + ".part"};
}

void ImageBlobs::Abort(const Upload& up) {
  std::error_code ec;
  fs::remove(up.tmp_path, ec);
  std::lock_guard lock(mu_);
  in_flight_.erase(up.uid);
}

StatusOr<json> ImageBlobs::Commit(const std::string& ns, const std::string& name, const Upload& up,
                                  uint64_t expected_bytes) {
  auto fail = [&](Status s) -> StatusOr<json> {
    Abort(up);
    return s;
  };
  std::error_code ec;
  uint64_t size = fs::file_size(up.tmp_path, ec);
  if (ec) return fail(Internal("upload not stored: " + ec.message()));
  if (size != expected_bytes) {
    return fail(BadRequest("the upload ended after " + std::to_string(size) + " of " +
                           std::to_string(expected_bytes) + " bytes"));
  }
  auto sum = Sha256File(up.tmp_path);
  if (!sum.ok()) return fail(sum.status());
  auto img = registry_->Get(*FindByKind("Image"), ns, name);
  if (!img.ok()) return fail(img.status());
  if (MetaString(*img, "uid") != up.uid) {
    return fail(Status(Code::kConflict, "image \"" + name + "\" was deleted during the upload"));
  }
  std::string want = (*img)["spec"].value("sha256", "");
  if (!want.empty() && want != *sum) {
    return fail(InvalidError("spec.sha256: the uploaded data has sha256 " + *sum + ", not " + want));
  }
  if (!SyncPath(up.tmp_path, false)) return fail(Internal("cannot fsync the uploaded data"));
  fs::rename(up.tmp_path, FinalPath(up.uid), ec);
  if (ec) return fail(Internal("cannot store the uploaded data: " + ec.message()));
  SyncPath(dir_, true);
  json patch = {{"status", {{"upload", {{"size", static_cast<int64_t>(size)},
                                        {"sha256", *sum},
                                        {"uploadedAt", NowRfc3339()}}}}}};
  auto out = registry_->Patch(*FindByKind("Image"), ns, name, patch, /*status_only=*/true);
  {
    std::lock_guard lock(mu_);
    in_flight_.erase(up.uid);
  }
  if (!out.ok()) {
    fs::remove(FinalPath(up.uid), ec);
    return out.status();
  }
  spdlog::info("image data uploaded: image={}/{} bytes={} sha256={}", ns, name, size, *sum);
  return out;
}

StatusOr<std::string> ImageBlobs::DataPath(const std::string& ns, const std::string& name) const {
  auto img = registry_->Get(*FindByKind("Image"), ns, name);
  if (!img.ok()) return img.status();
  if (!IsUploaded(*img)) return NotFound("image \"" + name + "\" has no uploaded data");
  std::string path = FinalPath(MetaString(*img, "uid"));
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("the data of image \"" + name + "\" is missing on the server");
  return path;
}

void ImageBlobs::Sweep() {
  auto list = registry_->List(*FindByKind("Image"), "", ListRequest{});
  if (!list.ok()) return;
  std::set<std::string> live;
  for (const auto& i : (*list)["items"]) live.insert(MetaString(i, "uid"));
  std::set<std::string> flying;
  {
    std::lock_guard lock(mu_);
    flying = in_flight_;
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string f = e.path().filename().string();
    std::string uid = f.size() > 5 && f.compare(f.size() - 5, 5, ".part") == 0 ? f.substr(0, f.size() - 5) : f;
    bool partial = uid != f;
    if (flying.count(uid)) continue;
    if (partial || !live.count(uid)) {
      std::error_code rm;
      fs::remove(e.path(), rm);
      spdlog::info("image data removed: file={} reason={}", f, partial ? "partial upload" : "image deleted");
    }
  }
}

}  // namespace stratus
