// The real NoCloud seed writer: the files go into a private temporary directory beside the image, xorriso makes
// an ISO 9660 image (Joliet and Rock Ridge, volume id "cidata") from it into a temporary file, which is renamed
// over the image; the stamp file is written last.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "stratus/core/exec.h"
#include "stratus/core/files.h"
#include "stratus/host/seed_disk.h"

namespace stratus::host {
namespace {
namespace fs = std::filesystem;

std::string ReadSmallFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return "";
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s.size() > 256 ? "" : s;
}

class IsoSeedDisks : public SeedDisks {
 public:
  std::string Stamp(const std::string& path) override {
    std::error_code ec;
    if (!fs::exists(path, ec)) return "";
    return ReadSmallFile(path + ".stamp");
  }

  Status Write(const std::string& path, const std::map<std::string, std::string>& files,
               const std::string& stamp) override {
    fs::path target(path);
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) return Status(Code::kUnavailable, "seed " + path + ": " + ec.message());
    std::string tmpl = (target.parent_path() / ".seed.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return Status(Code::kUnavailable, "seed " + path + ": cannot make a temporary directory");
    fs::path work(tmpl);
    struct Cleanup {
      fs::path p;
      ~Cleanup() {
        std::error_code e;
        fs::remove_all(p, e);
      }
    } cleanup{work};
    fs::path content = work / "cidata";
    fs::create_directory(content, ec);
    for (const auto& [name, data] : files) {
      if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
        return InvalidError("seed file name \"" + name + "\" is not a plain file name");
      }
      std::ofstream f(content / name, std::ios::binary);
      f << data;
      if (!f.good()) return Status(Code::kUnavailable, "seed " + path + ": cannot write " + name);
    }
    fs::path iso = work / "seed.iso";
    auto r = ExecChecked({"xorriso", "-as", "mkisofs", "-quiet", "-o", iso.string(), "-V", "cidata", "-J", "-r",
                          content.string()},
                         60);
    if (!r.ok()) return Status(Code::kUnavailable, "seed " + path + ": " + r.status().message());
    fs::permissions(iso, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                             fs::perms::others_read, ec);
    fs::remove(path + ".stamp", ec);  // a crash from here on leaves no stamp: written again
    fs::rename(iso, target, ec);
    if (ec) return Status(Code::kUnavailable, "seed " + path + ": " + ec.message());
    return WriteFileAtomic(path + ".stamp", stamp, 0644);
  }
};

}  // namespace

std::unique_ptr<SeedDisks> NewIsoSeedDisks() { return std::make_unique<IsoSeedDisks>(); }

}  // namespace stratus::host
