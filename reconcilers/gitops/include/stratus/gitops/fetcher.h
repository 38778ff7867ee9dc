// The GitOps reconciler's one host effect: fetching a git repository and reading the manifest files of one
// revision. Behind this interface so that the reconciler runs against libgit2 (the server) or a fake (unit tests).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::gitops {

struct FetchSpec {
  std::string url;     // local path, file://, git://, http(s)://
  std::string branch;  // one of branch, tag, commit (branch "main" when none)
  std::string tag;
  std::string commit;
  std::string path;    // directory or file inside the repository ("" = all)
  // http(s) basic credentials (a token goes in password); empty: none offered.
  std::string username;
  std::string password;
};

struct ManifestFile {
  std::string path;  // inside the repository
  std::string text;
};

struct Snapshot {
  std::string revision;               // the commit's full hex id
  std::vector<ManifestFile> files;    // *.yaml, *.yml and *.json under spec.path, in path order
  std::vector<std::string> skipped;   // other files under the path (not manifests; reported, never applied)
};

// Limits on what one revision may hold (a repository is user input).
inline constexpr size_t kMaxManifestFiles = 2000;
inline constexpr size_t kMaxManifestFileBytes = 1 << 20;
inline constexpr size_t kMaxManifestBytes = 32 << 20;

class GitFetcher {
 public:
  virtual ~GitFetcher() = default;
  // Fetches `spec.url` into the cache kept under `cache_key` (one per source: a ManifestSource's uid) and reads
  // the revision it names. Errors (kUnavailable: unreachable; kUnauthorized: credentials refused; kNotFound: no
  // such branch, tag, commit or path; kBadRequest: too large) carry the reason in words.
  virtual StatusOr<Snapshot> Fetch(const std::string& cache_key, const FetchSpec& spec) = 0;
  // Drops the cache of a source that is gone.
  virtual void Forget(const std::string& cache_key) = 0;
};

// libgit2 over bare repositories under `cache_dir` (created when missing).
std::unique_ptr<GitFetcher> NewLibgit2Fetcher(const std::string& cache_dir);

}  // namespace stratus::gitops
