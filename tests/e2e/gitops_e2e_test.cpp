// GitOps on qemu:///system: an Instance committed to a git repository boots a real TCG guest (its boot marker shows
// in `stratusctl logs`), and deleting the ManifestSource prunes it (the domain goes). The repository is a local
// bare one (spec.url a path: the server runs in the guests' network namespace, where nothing else listens); the
// git daemon, credentials and every repository change are covered on the test driver (tests/integration/gitops_test.cpp).
#include <gtest/gtest.h>

#include <fstream>

#include "e2e.h"

namespace stratus::testing {
namespace {

using GitOpsE2eTest = E2eTest;

TEST_F(GitOpsE2eTest, CommittedInstanceBootsAndLeavesWithItsSource) {
  fs::path bare = dir_.path() / "app.git", work = dir_.path() / "work";
  auto git = [&](std::vector<std::string> args) {
    std::vector<std::string> a = {"/usr/bin/git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                                  "-c", "init.defaultBranch=main", "-C", dir_.path().string()};
    a.insert(a.end(), args.begin(), args.end());
    return stratus::testing::Run(a, "", {"HOME=" + dir_.path().string(), "GIT_CONFIG_NOSYSTEM=1"});
  };
  ASSERT_EQ(git({"init", "-q", "--bare", "-b", "main", bare.string()}).exit_code, 0);
  ASSERT_EQ(git({"clone", "-q", bare.string(), work.string()}).exit_code, 0);
  std::string inst = "gitops-" + std::to_string(::getpid());
  domains_.push_back("stratus_default_" + inst);
  // The manifests of the boot test, less the (cluster-scoped) InstanceType the operator applies.
  std::string all = Manifests(inst);
  std::string flavor = "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n---\n";
  ASSERT_NE(all.find(flavor), std::string::npos);
  std::string repo_text = all;
  repo_text.erase(repo_text.find(flavor), flavor.size());
  fs::create_directories(work / "deploy");
  std::ofstream(work / "deploy" / "app.yaml") << repo_text;
  ASSERT_EQ(git({"-C", work.string(), "add", "-A"}).exit_code, 0);
  ASSERT_EQ(git({"-C", work.string(), "commit", "-q", "-m", "boot"}).exit_code, 0);
  ASSERT_EQ(git({"-C", work.string(), "push", "-q", "origin", "main"}).exit_code, 0);

  ReservedPort agent_port = ReservePort();
  std::vector<std::string> flags = {"--agent=true"};
  for (auto& f : AgentFlags(agent_port)) flags.push_back(f);
  ServerProcess server(dir_.path() / "data", flags);
  ASSERT_TRUE(server.Start()) << server.log();
  ASSERT_EQ(server.Ctl({"apply", "-f", "-"}, flavor).exit_code, 0);
  auto a = server.Ctl({"apply", "-f", "-"}, "apiVersion: stratus.io/v1\nkind: ManifestSource\nmetadata: {name: app}\n"
                                            "spec: {url: \"" + bare.string() + "\", path: deploy, interval: 2s}\n");
  ASSERT_EQ(a.exit_code, 0) << a.err;

  std::string logs;
  ASSERT_TRUE(Eventually([&] {
    logs = server.Ctl({"logs", "instance/" + inst}).out;
    return logs.find("STRATUS-MARKER " + inst) != std::string::npos;
  }, 180)) << "no boot marker; logs:\n" << logs << "\nsource:\n"
           << server.Http("GET", std::string(kNs) + "/manifestsources/app").body << "\n" << server.log();
  json inst_obj = server.Http("GET", std::string(kNs) + "/instances/" + inst).Json();
  EXPECT_EQ(inst_obj["metadata"]["labels"].value("gitops.stratus.io/source", ""), "app");

  // The source goes, and with prune (the default) what it applied goes too: the guest's domain included.
  auto d = server.Ctl({"delete", "manifestsource", "app", "--wait", "--timeout", "120s"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_TRUE(Eventually([&] { return DomainCount("stratus_default_" + inst) == 0; }, 90)) << server.log();
  EXPECT_EQ(server.Http("GET", std::string(kNs) + "/images/demo-kernel").code, 404);
}

}  // namespace
}  // namespace stratus::testing
