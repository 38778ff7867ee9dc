// `stratusctl upload image/NAME FILE`: sends an Image's data to the API server (Glance's image-data upload),
// showing progress; every node's agent then imports it from there.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "stratus/core/object.h"
#include "targets.h"

namespace stratus::cli {

int RunUpload(Env& env, const UploadOptions& opts) {
  std::string name = opts.target;
  auto slash = name.find('/');
  if (slash != std::string::npos) {
    auto r = ResolveKind(name.substr(0, slash));
    if (!r.ok()) {
      *env.err << "error: " << r.status().message() << "\n";
      return 1;
    }
    if ((*r)->kind != "Image") {
      *env.err << "error: only images take uploaded data, not " << (*r)->plural << "\n";
      return 1;
    }
    name = name.substr(slash + 1);
  }
  Status v = ValidateDns1123Label(name, "image name");
  if (!v.ok()) {
    *env.err << "error: " << v.message() << "\n";
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  auto last = Clock::now() - std::chrono::seconds(10);
  int last_pct = -1;
  bool tty = env.err == &std::cerr && isatty(STDERR_FILENO);
  auto progress = [&](uint64_t sent, uint64_t total) {
    if (opts.quiet || total == 0) return;
    int pct = static_cast<int>(sent * 100 / total);
    auto now = Clock::now();
    if (pct == last_pct || (pct != 100 && now - last < std::chrono::milliseconds(tty ? 200 : 2000))) return;
    last = now;
    last_pct = pct;
    char line[160];
    std::snprintf(line, sizeof line, "image/%s: uploading %d%% (%.1f of %.1f MiB)", name.c_str(), pct,
                  static_cast<double>(sent) / (1 << 20), static_cast<double>(total) / (1 << 20));
    *env.err << (tty ? "\r" : "") << line << (tty ? "" : "\n") << std::flush;
  };
  auto out = env.client->UploadFile("images", env.ns, name, opts.file, progress);
  if (tty && last_pct >= 0) *env.err << "\n";
  if (!out.ok()) {
    *env.err << "error: " << out.status().ToString() << "\n";
    return 1;
  }
  const json& up = (*out)["status"]["upload"];
  *env.out << "image/" << name << " uploaded (" << up.value("size", int64_t{0}) << " bytes, sha256 "
           << up.value("sha256", "") << ")\n";
  return 0;
}

}  // namespace stratus::cli
