#include "stratus/core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace stratus {

Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode) {
  namespace fs = std::filesystem;
  fs::path target(path);
  std::string tmpl = (target.parent_path() / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());  // 0600 from the start
  if (fd < 0) return Status(Code::kUnavailable, "cannot create a file next to " + path + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, mode) == 0;
  size_t off = 0;
  while (ok && off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) off += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok || ::rename(tmpl.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    ::unlink(tmpl.c_str());
    return Status(Code::kUnavailable, "cannot write " + path + ": " + std::strerror(err));
  }
  std::string dir = target.parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace stratus
