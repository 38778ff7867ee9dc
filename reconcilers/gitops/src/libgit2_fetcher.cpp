// GitFetcher over libgit2: one bare repository per source under the cache directory, fetched with forced refspecs
// (a force-pushed branch is followed), the revision's tree read straight from the object database (no checkout).
#include <git2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <mutex>

#include "stratus/gitops/fetcher.h"

namespace stratus::gitops {
namespace {

namespace fs = std::filesystem;

template <typename T, void (*Free)(T*)>
struct Owned {
  T* p = nullptr;
  ~Owned() {
    if (p) Free(p);
  }
  T** out() { return &p; }
};
using Repo = Owned<git_repository, git_repository_free>;
using Remote = Owned<git_remote, git_remote_free>;
using Commit = Owned<git_commit, git_commit_free>;
using Tree = Owned<git_tree, git_tree_free>;
using TreeEntry = Owned<git_tree_entry, git_tree_entry_free>;
using Object = Owned<git_object, git_object_free>;
using Blob = Owned<git_blob, git_blob_free>;

std::string LastError() {
  const git_error* e = git_error_last();
  return e && e->message ? e->message : "unknown libgit2 error";
}

// Credentials are offered once: a refused password is an answer, not a reason to ask again forever.
struct CredState {
  const FetchSpec* spec;
  int offered = 0;
  bool asked = false;
};

int Credentials(git_credential** out, const char* /*url*/, const char* user_from_url, unsigned int allowed,
                void* payload) {
  auto* st = static_cast<CredState*>(payload);
  st->asked = true;
  if (!(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) || st->spec->password.empty() || st->offered > 0) {
    git_error_set_str(GIT_ERROR_NET, st->spec->password.empty()
                                         ? "the repository asks for credentials and spec.secretRef names none"
                                         : "the repository refused the credentials of spec.secretRef");
    return GIT_EUSER;
  }
  ++st->offered;
  std::string user = !st->spec->username.empty() ? st->spec->username
                                                 : (user_from_url && *user_from_url ? user_from_url : "git");
  return git_credential_userpass_plaintext_new(out, user.c_str(), st->spec->password.c_str());
}

bool IsManifest(const std::string& name) {
  auto ends = [&](const char* suf) {
    std::string s(suf);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".yaml") || ends(".yml") || ends(".json");
}

struct WalkState {
  git_repository* repo;
  std::string prefix;  // spec.path + "/" (empty for the root)
  Snapshot* snap;
  size_t bytes = 0;
  Status error = Status::Ok();
};

Status ReadBlob(git_repository* repo, const git_oid* id, const std::string& path, WalkState* st) {
  Blob blob;
  if (git_blob_lookup(blob.out(), repo, id) != 0) return Internal(path + ": " + LastError());
  size_t size = static_cast<size_t>(git_blob_rawsize(blob.p));
  if (size > kMaxManifestFileBytes) {
    return BadRequest(path + ": " + std::to_string(size) + " bytes is larger than the limit of " +
                      std::to_string(kMaxManifestFileBytes) + " for one manifest file");
  }
  st->bytes += size;
  if (st->bytes > kMaxManifestBytes || st->snap->files.size() >= kMaxManifestFiles) {
    return BadRequest("the manifests under the path are larger than the limit of " +
                      std::to_string(kMaxManifestFiles) + " files or " + std::to_string(kMaxManifestBytes) +
                      " bytes");
  }
  st->snap->files.push_back({path, std::string(static_cast<const char*>(git_blob_rawcontent(blob.p)), size)});
  return Status::Ok();
}

int WalkEntry(const char* root, const git_tree_entry* entry, void* payload) {
  auto* st = static_cast<WalkState*>(payload);
  if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB) return 0;
  std::string path = st->prefix + root + git_tree_entry_name(entry);
  if (!IsManifest(path)) {
    st->snap->skipped.push_back(path);
    return 0;
  }
  st->error = ReadBlob(st->repo, git_tree_entry_id(entry), path, st);
  return st->error.ok() ? 0 : -1;
}

class Libgit2Fetcher : public GitFetcher {
 public:
  explicit Libgit2Fetcher(std::string dir) : dir_(std::move(dir)) {
    git_libgit2_init();
    std::error_code ec;
    fs::create_directories(dir_, ec);
  }
  ~Libgit2Fetcher() override { git_libgit2_shutdown(); }

  StatusOr<Snapshot> Fetch(const std::string& cache_key, const FetchSpec& spec) override {
    std::string path = CachePath(cache_key);
    auto snap = FetchInto(path, spec);
    if (!snap.ok() && (snap.status().code() == Code::kInternal ||
                       snap.status().message().find("lock") != std::string::npos)) {
      // A damaged cache (a fetch killed half-way leaves locks behind): start from nothing once.
      spdlog::info("gitops cache reset: source={} error={}", cache_key, snap.status().message());
      Forget(cache_key);
      snap = FetchInto(path, spec);
    }
    return snap;
  }

  void Forget(const std::string& cache_key) override {
    std::error_code ec;
    fs::remove_all(CachePath(cache_key), ec);
  }

 private:
  std::string CachePath(const std::string& key) const {
    std::string safe;
    for (char c : key) safe += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
    return (fs::path(dir_) / (safe + ".git")).string();
  }

  StatusOr<Snapshot> FetchInto(const std::string& path, const FetchSpec& spec) {
    Repo repo;
    int rc = fs::exists(path) ? git_repository_open_bare(repo.out(), path.c_str())
                              : git_repository_init(repo.out(), path.c_str(), /*is_bare=*/1);
    if (rc != 0) return Internal("cannot open the cache at " + path + ": " + LastError());
    Remote remote;
    if (git_remote_create_anonymous(remote.out(), repo.p, spec.url.c_str()) != 0) {
      return BadRequest("spec.url: " + LastError());
    }
    git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
    CredState cred{&spec};
    fo.callbacks.credentials = Credentials;
    fo.callbacks.payload = &cred;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    char heads[] = "+refs/heads/*:refs/remotes/origin/*";
    char tags[] = "+refs/tags/*:refs/tags/*";
    char* specs[] = {heads, tags};
    git_strarray refspecs = {specs, 2};
    if (git_remote_fetch(remote.p, &refspecs, &fo, nullptr) != 0) {
      std::string why = LastError();
      if (cred.asked) return Status(Code::kUnauthorized, "fetching " + spec.url + ": " + why);
      return Status(Code::kUnavailable, "fetching " + spec.url + ": " + why);
    }
    git_oid id;
    std::string what;
    if (!spec.commit.empty()) {
      what = "commit " + spec.commit;
      Object obj;
      if (git_revparse_single(obj.out(), repo.p, (spec.commit + "^{commit}").c_str()) != 0) {
        return NotFound("spec.commit: " + spec.commit + " is not a commit of " + spec.url);
      }
      git_oid_cpy(&id, git_object_id(obj.p));
    } else if (!spec.tag.empty()) {
      what = "tag " + spec.tag;
      Object obj;
      if (git_revparse_single(obj.out(), repo.p, ("refs/tags/" + spec.tag + "^{commit}").c_str()) != 0) {
        return NotFound("spec.tag: " + spec.url + " has no tag \"" + spec.tag + "\"");
      }
      git_oid_cpy(&id, git_object_id(obj.p));
    } else {
      std::string branch = spec.branch.empty() ? "main" : spec.branch;
      what = "branch " + branch;
      int valid = 0;
      std::string ref = "refs/remotes/origin/" + branch;
      if (git_reference_name_is_valid(&valid, ref.c_str()) != 0 || !valid) {
        return BadRequest("spec.branch: \"" + branch + "\" is not a valid branch name");
      }
      if (git_reference_name_to_id(&id, repo.p, ref.c_str()) != 0) {
        return NotFound("spec.branch: " + spec.url + " has no branch \"" + branch + "\"");
      }
    }
    Commit commit;
    if (git_commit_lookup(commit.out(), repo.p, &id) != 0) return Internal(what + ": " + LastError());
    Tree tree;
    if (git_commit_tree(tree.out(), commit.p) != 0) return Internal(what + ": " + LastError());
    Snapshot snap;
    char hex[GIT_OID_HEXSZ + 1] = {0};
    git_oid_tostr(hex, sizeof(hex), &id);
    snap.revision = hex;
    WalkState st{repo.p, "", &snap};
    std::string sub = spec.path;
    while (!sub.empty() && sub.back() == '/') sub.pop_back();
    while (sub.rfind("./", 0) == 0) sub = sub.substr(2);
    git_tree* walk = tree.p;
    Tree subtree;
    if (!sub.empty() && sub != ".") {
      TreeEntry entry;
      if (git_tree_entry_bypath(entry.out(), tree.p, sub.c_str()) != 0) {
        return NotFound("spec.path: \"" + spec.path + "\" is not in " + what + " of " + spec.url);
      }
      if (git_tree_entry_type(entry.p) == GIT_OBJECT_BLOB) {
        Status s = ReadBlob(repo.p, git_tree_entry_id(entry.p), sub, &st);
        if (!s.ok()) return s;
        return snap;
      }
      if (git_tree_lookup(subtree.out(), repo.p, git_tree_entry_id(entry.p)) != 0) {
        return Internal("spec.path: " + LastError());
      }
      walk = subtree.p;
      st.prefix = sub + "/";
    }
    if (git_tree_walk(walk, GIT_TREEWALK_PRE, WalkEntry, &st) != 0 && !st.error.ok()) return st.error;
    std::sort(snap.files.begin(), snap.files.end(),
              [](const ManifestFile& a, const ManifestFile& b) { return a.path < b.path; });
    return snap;
  }

  std::string dir_;
};

}  // namespace

std::unique_ptr<GitFetcher> NewLibgit2Fetcher(const std::string& cache_dir) {
  return std::make_unique<Libgit2Fetcher>(cache_dir);
}

}  // namespace stratus::gitops
