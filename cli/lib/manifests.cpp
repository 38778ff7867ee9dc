#include "lib/manifests.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "stratus/core/yaml.h"

namespace stratus::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxManifestBytes = 64 * 1024 * 1024;

bool IsManifestFile(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

Status ReadFile(const fs::path& p, std::string& out) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  if (!ec && size > kMaxManifestBytes) {
    return BadRequest("file is larger than " + std::to_string(kMaxManifestBytes / (1024 * 1024)) + " MiB");
  }
  std::ifstream f(p, std::ios::binary);
  if (!f) return BadRequest("cannot open file: " + std::string(std::strerror(errno)));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return BadRequest("cannot read file");
  out = ss.str();
  return Status::Ok();
}

void AddObject(json obj, const std::string& source, std::vector<Manifest>& out) {
  // `kind: List` (or any *List with items) holds several objects.
  if (obj.is_object() && obj.contains("items") && obj["items"].is_array() && obj.contains("kind") &&
      obj["kind"].is_string()) {
    std::string kind = obj["kind"].get<std::string>();
    if (kind.size() >= 4 && kind.compare(kind.size() - 4, 4, "List") == 0) {
      for (auto& item : obj["items"]) AddObject(std::move(item), source, out);
      return;
    }
  }
  out.push_back({source, std::move(obj)});
}

}  // namespace

Status ParseManifests(const std::string& text, const std::string& source, std::vector<Manifest>& out) {
  auto docs = ParseYamlDocuments(text);
  if (!docs.ok()) return docs.status();
  for (auto& d : *docs) {
    if (d.is_null()) continue;
    if (!d.is_object()) {
      return BadRequest("a document is not an object (got " + std::string(d.type_name()) +
                        "); expected apiVersion, kind, metadata and spec");
    }
    AddObject(std::move(d), source, out);
  }
  return Status::Ok();
}

LoadedManifests LoadManifests(const std::vector<std::string>& paths, bool recursive, std::istream& in) {
  LoadedManifests result;
  auto load_file = [&](const fs::path& p) {
    std::string text;
    Status s = ReadFile(p, text);
    if (s.ok()) s = ParseManifests(text, p.string(), result.objects);
    if (!s.ok()) result.errors.emplace_back(p.string(), s);
  };
  for (const auto& path : paths) {
    if (path == "-") {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      Status s = ParseManifests(text, "-", result.objects);
      if (!s.ok()) result.errors.emplace_back("-", s);
      continue;
    }
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      result.errors.emplace_back(path, NotFound("the path \"" + path + "\" does not exist"));
      continue;
    }
    if (!fs::is_directory(st)) {
      load_file(path);
      continue;
    }
    std::vector<fs::path> files;
    if (recursive) {
      for (fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec), end;
           !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file() && IsManifestFile(it->path())) files.push_back(it->path());
      }
    } else {
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file() && IsManifestFile(it->path())) files.push_back(it->path());
      }
    }
    if (ec) {
      result.errors.emplace_back(path, BadRequest("cannot list directory: " + ec.message()));
      continue;
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      result.errors.emplace_back(
          path, NotFound("no .yaml, .yml or .json files in directory" + std::string(recursive ? "" : " (use -R to "
                                                                                                      "include subdirectories)")));
    }
    for (const auto& f : files) load_file(f);
  }
  return result;
}

}  // namespace stratus::cli
