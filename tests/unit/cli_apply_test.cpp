// stratusctl apply/diff/delete/get against an in-memory fake of the API.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "lib/apply.h"
#include "lib/commands.h"
#include "lib/manifests.h"
#include "stratus/core/merge.h"
#include "stratus/core/object.h"

namespace stratus::cli {
namespace {

// Stores objects by plural/ns/name with resourceVersions and a generation, like the real server: PATCH checks
// a resourceVersion carried in the patch (409 when stale) and ignores status.
class FakeApi : public ApiClient {
 public:
  int conflicts_to_inject = 0;  // PATCHes answered 409 before one succeeds
  int creates = 0, patches = 0, gets = 0;

  StatusOr<json> Get(const std::string& plural, const std::string& ns, const std::string& name) override {
    ++gets;
    auto it = objects_.find(Key(plural, ns, name));
    if (it == objects_.end()) return NotFound(plural + " \"" + name + "\" not found");
    return it->second;
  }
  StatusOr<json> List(const std::string& plural, const std::string& ns, const ListOptions&) override {
    json items = json::array();
    for (const auto& [k, v] : objects_) {
      if (k.rfind(plural + "/" + ns + "/", 0) == 0 || (ns.empty() && k.rfind(plural + "/", 0) == 0)) items.push_back(v);
    }
    return json{{"kind", "List"}, {"metadata", {{"resourceVersion", std::to_string(rv_)}}}, {"items", items}};
  }
  StatusOr<json> Create(const std::string& plural, const std::string& ns, const json& obj) override {
    ++creates;
    std::string key = Key(plural, ns, obj["metadata"]["name"]);
    if (objects_.count(key)) return Status(Code::kAlreadyExists, "already exists");
    json o = obj;
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    o["metadata"]["generation"] = 1;
    o["metadata"]["uid"] = "uid-" + std::to_string(rv_);
    o["status"] = {{"phase", "Pending"}};  // server-owned
    objects_[key] = o;
    return o;
  }
  StatusOr<json> Update(const std::string&, const std::string&, const json&) override {
    return Internal("not used");
  }
  StatusOr<json> UpdateStatus(const std::string&, const std::string&, const json&) override {
    return Internal("not used");
  }
  StatusOr<json> Patch(const std::string& plural, const std::string& ns, const std::string& name, const json& patch,
                       const std::string&) override {
    ++patches;
    auto it = objects_.find(Key(plural, ns, name));
    if (it == objects_.end()) return NotFound("not found");
    if (conflicts_to_inject > 0) {
      --conflicts_to_inject;
      Touch(it->second);  // someone else wrote meanwhile
      return Status(Code::kConflict, "the object has been modified");
    }
    const json* rv = patch.contains("metadata") ? &patch["metadata"] : nullptr;
    if (rv != nullptr && rv->contains("resourceVersion") &&
        (*rv)["resourceVersion"] != it->second["metadata"]["resourceVersion"]) {
      return Status(Code::kConflict, "stale resourceVersion");
    }
    json p = patch;
    p.erase("status");
    json updated = ApplyMergePatch(it->second, p);
    if (updated["spec"] != it->second["spec"]) {
      updated["metadata"]["generation"] = it->second["metadata"]["generation"].get<int>() + 1;
    }
    if (updated != it->second) updated["metadata"]["resourceVersion"] = std::to_string(++rv_);
    it->second = updated;
    return updated;
  }
  StatusOr<json> Delete(const std::string& plural, const std::string& ns, const std::string& name,
                        const std::string&) override {
    auto it = objects_.find(Key(plural, ns, name));
    if (it == objects_.end()) return NotFound(plural + " \"" + name + "\" not found");
    json o = it->second;
    objects_.erase(it);
    return o;
  }
  Status Watch(const std::string&, const std::string&, const ListOptions&,
               const std::function<bool(const WatchEvent&)>&, const std::atomic<bool>*) override {
    return Status(Code::kMethodNotAllowed, "no watch in the fake");
  }
  StatusOr<std::string> GetRaw(const std::string&) override { return NotFound("no raw paths"); }

  json& At(const std::string& plural, const std::string& ns, const std::string& name) {
    return objects_.at(Key(plural, ns, name));
  }
  void Touch(json& o) { o["metadata"]["resourceVersion"] = std::to_string(++rv_); }

 private:
  static std::string Key(const std::string& plural, const std::string& ns, const std::string& name) {
    return plural + "/" + ns + "/" + name;
  }
  std::map<std::string, json> objects_;
  uint64_t rv_ = 0;
};

json Parse(const std::string& yaml) {
  std::vector<Manifest> out;
  Status s = ParseManifests(yaml, "test.yaml", out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? json() : out[0].object;
}

const char* kInstance = R"(
apiVersion: stratus.io/v1
kind: Instance
metadata:
  name: web-1
  labels: {app: web, tier: front}
spec:
  instanceType: m1.small
  image: debian
  powerState: Running
)";

PreparedObject Prepare(const std::string& yaml, const std::string& ns = "default") {
  auto p = PrepareForApply(Parse(yaml), ns, false);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return *p;
}

TEST(CliApply, PrepareAddsNamespaceAndLastApplied) {
  PreparedObject p = Prepare(kInstance, "team-a");
  EXPECT_EQ(p.ns, "team-a");
  EXPECT_EQ(p.Ref(), "instance/web-1");
  EXPECT_EQ(p.modified["metadata"]["namespace"], "team-a");
  json last = LastApplied(p.modified);
  ASSERT_TRUE(last.is_object());
  EXPECT_EQ(last["spec"]["image"], "debian");
  EXPECT_FALSE(last["metadata"].contains("annotations"));  // not itself inside
}

TEST(CliApply, PrepareDropsServerFieldsAndClusterNamespace) {
  PreparedObject p = Prepare(R"(
apiVersion: stratus.io/v1
kind: InstanceType
metadata: {name: m1.small, namespace: default, resourceVersion: "7", uid: abc}
spec: {vcpus: 1, memoryMiB: 256}
status: {x: 1}
)");
  EXPECT_EQ(p.ns, "");
  EXPECT_FALSE(p.modified["metadata"].contains("namespace"));
  EXPECT_FALSE(p.modified["metadata"].contains("resourceVersion"));
  EXPECT_FALSE(p.modified["metadata"].contains("uid"));
  EXPECT_FALSE(p.modified.contains("status"));
}

TEST(CliApply, PrepareRejectsBadObjects) {
  auto check = [](const std::string& yaml, const std::string& want) {
    auto p = PrepareForApply(Parse(yaml), "default", false);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.status().message().find(want), std::string::npos) << p.status().message();
  };
  check("apiVersion: stratus.io/v1\nmetadata: {name: a}\n", "kind");
  check("apiVersion: v1\nkind: Instance\nmetadata: {name: a}\n", "no matches for kind");
  check("apiVersion: stratus.io/v1\nkind: Frob\nmetadata: {name: a}\n", "Frob");
  check("apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {labels: {a: b}}\n", "metadata.name");
  auto mismatch = PrepareForApply(Parse("apiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: a, namespace: x}\n"),
                                  "y", /*ns_explicit=*/true);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("--namespace=x"), std::string::npos);
}

TEST(CliApply, CreateThenUnchangedKeepsResourceVersion) {
  FakeApi api;
  PreparedObject p = Prepare(kInstance);
  EXPECT_EQ(*ApplyObject(api, p), ApplyAction::kCreated);
  std::string rv = MetaString(api.At("instances", "default", "web-1"), "resourceVersion");
  EXPECT_EQ(*ApplyObject(api, Prepare(kInstance)), ApplyAction::kUnchanged);
  EXPECT_EQ(MetaString(api.At("instances", "default", "web-1"), "resourceVersion"), rv);
  EXPECT_EQ(api.patches, 0);
}

TEST(CliApply, RemovedFieldIsRemovedAndOthersWritesAreKept) {
  FakeApi api;
  ASSERT_EQ(*ApplyObject(api, Prepare(kInstance)), ApplyAction::kCreated);
  // Another writer (placement) sets a field the user never declared.
  api.At("instances", "default", "web-1")["spec"]["nodeName"] = "host-1";
  std::string edited = R"(
apiVersion: stratus.io/v1
kind: Instance
metadata:
  name: web-1
  labels: {app: web}
spec:
  instanceType: m1.medium
)";
  EXPECT_EQ(*ApplyObject(api, Prepare(edited)), ApplyAction::kConfigured);
  json live = api.At("instances", "default", "web-1");
  EXPECT_EQ(live["spec"]["instanceType"], "m1.medium");
  EXPECT_FALSE(live["spec"].contains("image"));               // removed from the file
  EXPECT_EQ(live["spec"]["powerState"], "Running");           // removed, but the schema defaults it
  EXPECT_FALSE(live["metadata"]["labels"].contains("tier"));  // removed from the file
  EXPECT_EQ(live["spec"]["nodeName"], "host-1");              // never ours: kept
  EXPECT_EQ(live["status"]["phase"], "Pending");              // status untouched
  EXPECT_EQ(LastApplied(live)["spec"]["instanceType"], "m1.medium");
  EXPECT_EQ(*ApplyObject(api, Prepare(edited)), ApplyAction::kUnchanged);
}

TEST(CliApply, RetriesOnConflict) {
  FakeApi api;
  ASSERT_EQ(*ApplyObject(api, Prepare(kInstance)), ApplyAction::kCreated);
  api.conflicts_to_inject = 2;
  std::string edited = std::string(kInstance) + "  keyName: laptop\n";
  EXPECT_EQ(*ApplyObject(api, Prepare(edited)), ApplyAction::kConfigured);
  EXPECT_EQ(api.patches, 3);
  EXPECT_EQ(api.At("instances", "default", "web-1")["spec"]["keyName"], "laptop");
}

TEST(CliApply, GivesUpAfterFiveConflicts) {
  FakeApi api;
  ASSERT_EQ(*ApplyObject(api, Prepare(kInstance)), ApplyAction::kCreated);
  api.conflicts_to_inject = 100;
  auto res = ApplyObject(api, Prepare(std::string(kInstance) + "  keyName: laptop\n"));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kConflict);
  EXPECT_EQ(api.patches, 5);
}

struct Captured {
  std::ostringstream out, err;
  std::istringstream in;
  Env env;
  explicit Captured(ApiClient* api, const std::string& stdin_text = "") : in(stdin_text) {
    env.client = api;
    env.out = &out;
    env.err = &err;
    env.in = &in;
    env.now = [] { return int64_t{1767225600}; };
  }
};

TEST(CliCommands, ApplyFromStdinReportsEachObjectAndContinuesAfterErrors) {
  FakeApi api;
  std::string docs = std::string(kInstance) +
                     "---\napiVersion: stratus.io/v1\nkind: Frob\nmetadata: {name: x}\n"
                     "---\napiVersion: stratus.io/v1\nkind: Network\nmetadata: {name: net-1}\nspec: {cidr: "
                     "10.0.0.0/24}\n";
  Captured c(&api, docs);
  ApplyOptions opts;
  opts.files = {"-"};
  EXPECT_EQ(RunApply(c.env, opts), 1);
  EXPECT_EQ(c.out.str(), "instance/web-1 created\nnetwork/net-1 created\n");
  EXPECT_NE(c.err.str().find("error: -: frob/x: BadRequest: no matches for kind \"Frob\""), std::string::npos)
      << c.err.str();

  Captured again(&api, std::string(kInstance));
  EXPECT_EQ(RunApply(again.env, opts), 0);
  EXPECT_EQ(again.out.str(), "instance/web-1 unchanged\n");
}

TEST(CliCommands, DiffExitCodes) {
  FakeApi api;
  DiffOptions opts;
  opts.files = {"-"};
  {
    Captured c(&api, kInstance);
    EXPECT_EQ(RunDiff(c.env, opts), 1);  // does not exist yet: everything is new
    EXPECT_NE(c.out.str().find("+  instanceType: m1.small"), std::string::npos) << c.out.str();
  }
  ASSERT_EQ(*ApplyObject(api, Prepare(kInstance)), ApplyAction::kCreated);
  {
    Captured c(&api, kInstance);
    EXPECT_EQ(RunDiff(c.env, opts), 0);
    EXPECT_EQ(c.out.str(), "");
  }
  {
    Captured c(&api, std::string(kInstance) + "  keyName: laptop\n");
    EXPECT_EQ(RunDiff(c.env, opts), 1);
    EXPECT_NE(c.out.str().find("+  keyName: laptop"), std::string::npos) << c.out.str();
    // diff changes nothing.
    EXPECT_FALSE(api.At("instances", "default", "web-1")["spec"].contains("keyName"));
  }
  {
    Captured c(&api, "a: [1,\n");
    EXPECT_EQ(RunDiff(c.env, opts), 2);
  }
}

TEST(CliCommands, GetAndDelete) {
  FakeApi api;
  {
    Captured c(&api);
    GetOptions g;
    g.args = {"instances"};
    EXPECT_EQ(RunGet(c.env, g), 0);
    EXPECT_EQ(c.err.str(), "No resources found in default namespace.\n");
  }
  ASSERT_EQ(*ApplyObject(api, Prepare(kInstance)), ApplyAction::kCreated);
  {
    Captured c(&api);
    GetOptions g;
    g.args = {"inst"};
    g.output = "name";
    EXPECT_EQ(RunGet(c.env, g), 0);
    EXPECT_EQ(c.out.str(), "instance/web-1\n");
  }
  {
    Captured c(&api);
    DeleteOptions d;
    d.args = {"instance/web-1", "instance/nope"};
    EXPECT_EQ(RunDelete(c.env, d), 1);
    EXPECT_EQ(c.out.str(), "instance \"web-1\" deleted\n");
    EXPECT_NE(c.err.str().find("NotFound"), std::string::npos);
  }
}

}  // namespace
}  // namespace stratus::cli
