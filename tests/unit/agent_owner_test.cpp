// The owner of a node's host resources: pool names and owner marks per cluster and node.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "runtime_test_env.h"
#include "stratus/agent/owner.h"

namespace stratus::agent {
namespace {

TEST(AgentOwnerTest, PoolNamesAndMarksDifferPerClusterNodeAndPool) {
  Owner a{"3f2a9c1b-1111-4222-8333-444455556666", "vm"};
  Owner b{"9e8d7c6b-1111-4222-8333-444455556666", "vm"};
  EXPECT_EQ(PoolName(a, "images"), "stratus-vm-images-3f2a9c1b");
  EXPECT_EQ(LegacyPoolName("vm", "images"), "stratus-vm-images");
  EXPECT_NE(PoolName(a, "images"), PoolName(b, "images")) << "two clusters on one libvirtd never share a pool name";
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> marks;
  for (const Owner& o : {a, b, Owner{a.cluster, "other"}}) {
    for (const char* pool : {"images", "default"}) {
      std::string m = PoolUuid(o, pool);
      EXPECT_TRUE(std::regex_match(m, uuid)) << m;
      EXPECT_EQ(m, PoolUuid(o, pool)) << "stable: the mark is found again after a restart";
      marks.insert(m);
    }
  }
  EXPECT_EQ(marks.size(), 6u);
}

class AgentOwnerApiTest : public testing_env::LocalApiTest {};

TEST_F(AgentOwnerApiTest, TheClusterIsTheDefaultNamespacesUid) {
  auto ns = client_->Get("namespaces", "", "default");
  ASSERT_TRUE(ns.ok());
  auto o = DiscoverOwner(client_.get(), "n1");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->cluster, MetaString(*ns, "uid"));
  EXPECT_EQ(o->node, "n1");
}

}  // namespace
}  // namespace stratus::agent
