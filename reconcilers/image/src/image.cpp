#include "stratus/image/image.h"

#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "stratus/core/exec.h"
#include "stratus/core/object.h"
#include "stratus/core/sha256.h"
#include "stratus/core/tls.h"

namespace stratus::image {
namespace fs = std::filesystem;

namespace {

// Throttles progress callbacks to about one per 200 ms.
struct Throttle {
  std::chrono::steady_clock::time_point last{};
  bool Due() {
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(200)) return false;
    last = now;
    return true;
  }
};

}  // namespace

StatusOr<std::string> Fetch(const std::string& url, const std::string& dest,
                            const std::function<void(uint64_t, uint64_t)>& progress, const std::string& ca_file,
                            const std::string& bearer_token) {
  Sha256 h;
  Throttle t;
  std::ofstream out(dest, std::ios::binary | std::ios::trunc);
  if (!out) return Internal("cannot write " + dest);
  if (url.rfind("file://", 0) == 0) {
    std::string path = url.substr(7);
    std::error_code ec;
    uint64_t total = fs::file_size(path, ec);
    if (ec) return Status(Code::kUnavailable, "cannot read " + url + ": " + ec.message());
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(Code::kUnavailable, "cannot open " + url);
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      auto n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      h.Update(buf.data(), n);
      out.write(buf.data(), static_cast<std::streamsize>(n));
      done += n;
      if (progress && t.Due()) progress(done, total);
    }
    if (progress) progress(done, total);
  } else if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) {
    try {
      web::http::client::http_client_config cfg;
      cfg.set_timeout(std::chrono::seconds(60));
      if (!ca_file.empty() && url.rfind("https://", 0) == 0) {
        Status ca = CheckCaFile(ca_file);
        if (!ca.ok()) return Status(Code::kUnavailable, "cannot download " + url + ": " + ca.message());
        cfg.set_ssl_context_callback([ca_file](boost::asio::ssl::context& ctx) {
          (void)TrustOnlyCaFile(ctx.native_handle(), ca_file);  // checked above; on failure nothing is trusted
        });
      }
      // A token goes to the API server only, never on to wherever a redirect points.
      if (!bearer_token.empty()) cfg.set_max_redirects(0);
      web::http::client::http_client client(url, cfg);
      // Image URLs do redirect (mirrors, object stores), so redirects stay on. cpprestsdk's redirect follower
      // copies the request's headers while its I/O thread adds a Content-Type to them when there is none; with
      // one present, that thread only reads them.
      web::http::http_request get(web::http::methods::GET);
      get.headers().set_content_type("application/octet-stream");
      if (!bearer_token.empty()) get.headers().add("Authorization", "Bearer " + bearer_token);
      auto resp = client.request(get).get();
      if (resp.status_code() != 200) {
        return Status(Code::kUnavailable, "GET " + url + " answered HTTP " + std::to_string(resp.status_code()));
      }
      uint64_t total = resp.headers().content_length();
      auto body = resp.body();
      concurrency::streams::container_buffer<std::vector<uint8_t>> chunk;
      uint64_t done = 0;
      while (true) {
        chunk.collection().clear();
        chunk.seekpos(0, std::ios_base::out);
        size_t n = body.read(chunk, 1 << 20).get();
        if (n == 0) break;
        const auto& data = chunk.collection();
        h.Update(data.data(), n);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(n));
        done += n;
        if (progress && t.Due()) progress(done, total);
      }
      if (total && done != total) {
        return Status(Code::kUnavailable, "download of " + url + " ended early (" + std::to_string(done) + " of " +
                                              std::to_string(total) + " bytes)");
      }
      if (progress) progress(done, total);
    } catch (const std::exception& e) {
      return Status(Code::kUnavailable, "cannot download " + url + ": " + e.what());
    }
  } else {
    return BadRequest("unsupported image source " + url + " (use file://, http:// or https://)");
  }
  out.close();
  if (!out) return Internal("write failed: " + dest);
  return h.Hex();
}

StatusOr<FormatInfo> DetectFormat(const std::string& path) {
  auto out = ExecChecked({"qemu-img", "info", "--output=json", path}, 60);
  if (!out.ok()) return out.status();
  json j = json::parse(*out, nullptr, false);
  if (!j.is_object()) return Internal("qemu-img info printed no JSON for " + path);
  FormatInfo f;
  f.format = j.value("format", "");
  f.virtual_size = j.value("virtual-size", uint64_t{0});
  f.actual_size = j.value("actual-size", uint64_t{0});
  f.has_backing = j.contains("backing-filename");
  if (f.format == "raw") {
    // ISO 9660: "CD001" at offset 0x8001.
    std::ifstream in(path, std::ios::binary);
    char sig[5] = {};
    in.seekg(0x8001);
    if (in.read(sig, 5) && std::string(sig, 5) == "CD001") f.format = "iso";
  }
  return f;
}

CaptureSource SourceToCapture(const json& image) {
  CaptureSource c;
  if (!image.contains("spec") || !image["spec"].contains("source") || !image["spec"]["source"].is_object()) return c;
  const json& src = image["spec"]["source"];
  if (!src.value("volume", "").empty()) {
    c = {"volume", "volumes", src.value("volume", "")};
  } else if (!src.value("snapshot", "").empty()) {
    c = {"snapshot", "volumesnapshots", src.value("snapshot", "")};
  }
  return c;
}

Status ValidateImage(const json& image) {
  if (!image.contains("spec") || !image["spec"].is_object() || !image["spec"].contains("source")) return Status::Ok();
  const json& src = image["spec"]["source"];
  if (!src.is_object()) return Status::Ok();  // the schema names that
  int named = 0;
  for (const char* f : {"url", "volume", "snapshot"}) named += src.contains(f) ? 1 : 0;
  if (named != 1) {
    return InvalidError("spec.source: name exactly one of url, volume and snapshot",
                        {{"spec.source", "name exactly one of url, volume and snapshot", "FieldValueInvalid"}});
  }
  for (const char* f : {"volume", "snapshot"}) {
    if (src.contains(f) && image["spec"].value("type", "disk") != "disk") {
      std::string field = std::string("spec.source.") + f;
      std::string msg = std::string("only a disk image is captured from a ") + f;
      return InvalidError(field + ": " + msg, {{field, msg, "FieldValueInvalid"}});
    }
  }
  return Status::Ok();
}

CaptureDecision DecideCapture(const json& image, const json& source, const std::string& node) {
  CaptureDecision d;
  CaptureSource from = SourceToCapture(image);
  bool uploaded = image.contains("status") && image["status"].is_object() && image["status"].contains("upload");
  if (from.name.empty() || uploaded) return d;  // not captured, or captured already: import like any upload
  d.action = CaptureDecision::Action::kWait;
  const std::string what = from.kind + " " + from.name;
  if (!source.is_object()) {
    d.message = "waiting for " + what + " to capture";
    return d;
  }
  const json st = source.value("status", json::object());
  std::string holder = st.value("node", "");
  std::string phase = st.value("phase", "");
  bool ready = from.kind == "snapshot" ? phase == "Ready" : (phase == "Available" || phase == "InUse");
  if (holder.empty() || !ready) {
    d.message = "waiting for " + what + " to be ready (phase " + (phase.empty() ? "none" : phase) + ")";
    return d;
  }
  if (holder != node) {
    d.message = what + " is captured by node " + holder;
    return d;
  }
  d.path = st.value("path", "");
  if (d.path.empty()) {
    d.message = what + " reports no path yet";
    return d;
  }
  d.action = CaptureDecision::Action::kCapture;
  return d;
}

std::string SourceUrl(const json& image, const std::string& api_url, std::string* waiting) {
  const json& spec = image["spec"];
  if (spec.contains("source") && spec["source"].is_object() && !spec["source"].value("url", "").empty()) {
    return spec["source"].value("url", "");
  }
  bool uploaded = image.contains("status") && image["status"].is_object() && image["status"].contains("upload");
  if (!uploaded) {
    *waiting = "waiting for the image data: upload it with `stratusctl upload image/" + MetaString(image, "name") +
               " FILE` (PUT .../images/NAME/upload)";
    return "";
  }
  if (api_url.empty()) {
    *waiting = "this agent does not know the API server's URL to fetch uploaded data from";
    return "";
  }
  const ResourceInfo* r = FindByKind("Image");
  return api_url + ResourcePath(*r, MetaString(image, "namespace"), MetaString(image, "name"), "upload");
}

std::string CacheVolumeName(const json& image) { return "img-" + MetaString(image, "uid"); }

json NodeEntry(const json& image, const std::string& node) {
  if (!image.contains("status") || !image["status"].is_object()) return json();
  const json& st = image["status"];
  if (!st.contains("nodes") || !st["nodes"].is_object() || !st["nodes"].contains(node)) return json();
  const json& e = st["nodes"][node];
  return e.is_object() ? e : json();
}

bool CachedOn(const json& image, const std::string& node) {
  json e = NodeEntry(image, node);
  return e.is_object() && e.value("phase", "") == "Ready";
}

Status ImageReconciler::Report(const json& img, json entry) {
  return runtime::ReportNodeEntry(client_, "images", img, node_, entry);
}

ImageReconciler::ImageReconciler(ApiClient* client, runtime::Informer* images, host::StoragePools* storage,
                                 std::string pool, std::string work_dir, std::string node, std::string api_url,
                                 std::string api_ca_file, std::string api_token)
    : client_(client), images_(images), storage_(storage), pool_(std::move(pool)), work_dir_(std::move(work_dir)),
      node_(std::move(node)), api_url_(std::move(api_url)), api_ca_file_(std::move(api_ca_file)),
      api_token_(std::move(api_token)),
      events_(client, "image-cache", node_) {
  while (!api_url_.empty() && api_url_.back() == '/') api_url_.pop_back();
}

Status ImageReconciler::Import(const json& img, const std::string& volume) {
  std::string key = runtime::KeyFor(img);
  auto [ns, name] = runtime::SplitKey(key);
  std::error_code ec;
  fs::create_directories(work_dir_, ec);
  std::string tmp = (fs::path(work_dir_) / (volume + ".part")).string();
  std::string waiting;
  std::string url = SourceUrl(img, api_url_, &waiting);
  int last_pct = -1;
  std::string last_phase;
  auto report = [&](const std::string& phase, int pct) {
    if (pct == last_pct && phase == last_phase) return;
    last_pct = pct;
    last_phase = phase;
    Status r = Report(img, {{"phase", phase}, {"progress", pct}, {"reason", phase},
                            {"message", phase == "Downloading" ? "fetching " + url : "converting"}});
    if (!r.ok()) spdlog::debug("image progress not reported: image={} error={}", key, r.message());
  };
  report("Downloading", 0);
  // Only the API server's own URL is verified against its CA; other sources against the system's CAs.
  bool from_api = !api_url_.empty() && url.rfind(api_url_ + "/", 0) == 0;
  auto sum = Fetch(url, tmp, [&](uint64_t done, uint64_t total) {
    if (total) report("Downloading", static_cast<int>(done * 100 / total));
  }, from_api ? api_ca_file_ : "", from_api ? api_token_ : "");
  auto fail = [&](const Status& s, const std::string& reason) {
    fs::remove(tmp, ec);
    Status r = Report(img, {{"phase", "Failed"}, {"reason", reason}, {"message", s.message()}});
    if (!r.ok()) spdlog::warn("image failure not reported: image={} error={}", key, r.message());
    events_.Record(img, "Warning", reason, s.message());
    return s;
  };
  if (!sum.ok()) return fail(sum.status(), "SourceUnavailable");
  std::string want = img["spec"].value("sha256", "");
  if (want.empty() && img.contains("status") && img["status"].contains("upload")) {
    want = img["status"]["upload"].value("sha256", "");  // what the server received must be what we got
  }
  if (!want.empty() && want != *sum) {
    return fail(Status(Code::kInvalid, "checksum mismatch: spec.sha256 is " + want + " but the source has " + *sum),
                "ChecksumMismatch");
  }
  auto fmt = DetectFormat(tmp);
  if (!fmt.ok()) return fail(fmt.status(), "FormatUnknown");
  if (fmt->has_backing) return fail(InvalidError("images with a backing file are refused"), "FormatRefused");
  std::string want_fmt = img["spec"].value("format", "auto");
  if (want_fmt != "auto" && want_fmt != fmt->format) {
    return fail(InvalidError("spec.format says " + want_fmt + " but the source is " + fmt->format), "FormatMismatch");
  }
  std::string type = img["spec"].value("type", "disk");
  std::string stored_format = fmt->format == "qcow2" ? "qcow2" : "raw";
  if (type == "disk" && fmt->format != "qcow2" && fmt->format != "raw" && fmt->format != "iso") {
    report("Converting", 100);
    std::string conv = tmp + ".qcow2";
    auto c = ExecChecked({"qemu-img", "convert", "-O", "qcow2", tmp, conv}, 1800);
    if (!c.ok()) {
      fs::remove(conv, ec);
      return fail(c.status(), "ConversionFailed");
    }
    fs::rename(conv, tmp, ec);
    stored_format = "qcow2";
  }
  auto vol = storage_->ImportFile(pool_, volume, tmp, stored_format, [&](uint64_t, uint64_t) {});
  fs::remove(tmp, ec);
  if (!vol.ok()) return fail(vol.status(), "CacheFailed");
  Status r = Report(img, {{"phase", "Ready"},
                          {"progress", 100},
                          {"reason", "Imported"},
                          {"message", "cached as " + vol->path},
                          {"size", fs::exists(vol->path) ? static_cast<int64_t>(fs::file_size(vol->path, ec))
                                                         : static_cast<int64_t>(vol->capacity_bytes)},
                          {"virtualSize", static_cast<int64_t>(fmt->virtual_size)},
                          {"format", fmt->format},
                          {"checksum", "sha256:" + *sum},
                          {"observedGeneration", img["metadata"].value("generation", 1)}});
  if (!r.ok()) return r;
  events_.Record(img, "Normal", "Imported", "cached on node " + node_ + " (" + fmt->format + ")");
  spdlog::info("image imported: image={} node={} path={}", key, node_, vol->path);
  return Status::Ok();
}

Status ImageReconciler::Capture(const json& img, const std::string& path) {
  std::string key = runtime::KeyFor(img);
  auto [ns, name] = runtime::SplitKey(key);
  auto fail = [&](const Status& s) {
    Status r = Report(img, {{"phase", "Failed"}, {"reason", "CaptureFailed"}, {"message", s.message()}});
    if (!r.ok()) spdlog::warn("image failure not reported: image={} error={}", key, r.message());
    events_.Record(img, "Warning", "CaptureFailed", s.message());
    return s;
  };
  if (api_url_.empty()) return fail(Status(Code::kUnavailable, "this agent does not know the API server's URL to upload to"));
  std::error_code ec;
  fs::create_directories(work_dir_, ec);
  std::string tmp = (fs::path(work_dir_) / (CacheVolumeName(img) + ".capture.qcow2")).string();
  fs::remove(tmp, ec);
  const CaptureSource from = SourceToCapture(img);
  const std::string what = from.kind + " " + from.name;
  Status r = Report(img, {{"phase", "Capturing"}, {"progress", 0}, {"reason", "Capturing"},
                          {"message", "copying " + what}});
  if (!r.ok()) return r;
  // -U: the volume may be in use by a running guest; the copy is crash-consistent, as a power cut would leave it.
  auto c = ExecChecked({"qemu-img", "convert", "-U", "-O", "qcow2", path, tmp}, 1800);
  if (!c.ok()) {
    fs::remove(tmp, ec);
    return fail(c.status());
  }
  HttpClientOptions co;
  co.bearer_token = api_token_;
  co.ca_file = api_ca_file_;
  co.timeout_seconds = 600;
  co.field_manager = "stratus-agent";
  auto http = NewHttpApiClient(api_url_, co);
  int last = -1;
  auto up = http->UploadFile("images", ns, name, tmp, [&](uint64_t done, uint64_t total) {
    int pct = total ? static_cast<int>(done * 100 / total) : 0;
    if (pct / 10 == last / 10) return;
    last = pct;
    (void)Report(img, {{"phase", "Capturing"}, {"progress", pct}, {"reason", "Uploading"},
                       {"message", "uploading the copy of " + what}});
  });
  fs::remove(tmp, ec);
  if (!up.ok()) return fail(up.status());
  events_.Record(img, "Normal", "Captured", what + " copied on node " + node_ + " and uploaded");
  spdlog::info("image captured: image={} source={} node={}", key, what, node_);
  return Status::Ok();
}

StatusOr<runtime::Result> ImageReconciler::Reconcile(const std::string& key) {
  json img = images_->Get(key);
  if (img.is_null() || !MetaString(img, "deletionTimestamp").empty()) return runtime::Result::Done();
  std::string volume = CacheVolumeName(img);
  auto existing = storage_->Volume(pool_, volume);
  bool ready = CachedOn(img, node_);
  if (existing.ok() && ready) return runtime::Result::Done();
  if (existing.ok() && !ready) {
    // A volume without a finished import (agent killed mid-upload) cannot be told from a whole one: redo it.
    Status d = storage_->DeleteVolume(pool_, volume);
    if (!d.ok()) return d;
    existing = Status(Code::kNotFound, "removed partial import");
  }
  if (CaptureSource from = SourceToCapture(img); !from.name.empty()) {
    auto [ns, name] = runtime::SplitKey(key);
    auto src = client_->Get(from.plural, ns, from.name);
    if (!src.ok() && src.status().code() != Code::kNotFound) return src.status();
    CaptureDecision d = DecideCapture(img, src.ok() ? *src : json(), node_);
    if (d.action == CaptureDecision::Action::kWait) {
      Status r = Report(img, {{"phase", "Pending"}, {"progress", nullptr}, {"reason", "AwaitingCapture"},
                              {"message", d.message}});
      if (!r.ok()) return r;
      return runtime::Result::After(std::chrono::seconds(5));  // sources are not watched here: look again
    }
    if (d.action == CaptureDecision::Action::kCapture) {
      Status s = Capture(img, d.path);
      if (!s.ok()) return s;
      return runtime::Result::Done();  // the upload changes status.upload, which wakes us to import it
    }
  }
  std::string waiting;
  if (SourceUrl(img, api_url_, &waiting).empty()) {
    Status r = Report(img, {{"phase", "Pending"}, {"progress", nullptr}, {"reason", "AwaitingUpload"},
                            {"message", waiting}});
    if (!r.ok()) return r;
    return runtime::Result::Done();  // the upload changes status.upload, which wakes us
  }
  Status s = Import(img, volume);
  if (!s.ok()) return s;
  return runtime::Result::Done();
}

std::vector<runtime::WatchSpec> ImageReconciler::Watches() { return {{images_, nullptr}}; }

}  // namespace stratus::image
