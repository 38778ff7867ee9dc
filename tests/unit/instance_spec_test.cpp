// Instance -> domain spec: naming, uid as domain UUID, kernel command line, console path.
#include <gtest/gtest.h>

#include "stratus/instance/instance.h"

namespace stratus::instance {
namespace {

TEST(InstanceSpecTest, BuildsDomainFromInstance) {
  json inst = {{"metadata", {{"name", "web-1"}, {"namespace", "team-a"}, {"uid", "0b6f2a3e-1111-4222-8333-444455556666"}}},
               {"spec", {{"kernelArgs", "quiet stratus.marker=<hi&>"}}}};
  Resolved r;
  r.vcpus = 2;
  r.memory_mib = 384;
  r.kernel_path = "/pool/img-k";
  r.initrd_path = "/pool/img-i";
  Options o;
  o.data_dir = "/var/lib/stratus/agent";
  o.virt_type = "qemu";
  host::DomainSpec d = BuildDomainSpec(inst, r, o);
  EXPECT_EQ(d.name, "stratus_team-a_web-1");
  EXPECT_EQ(d.uuid, "0b6f2a3e-1111-4222-8333-444455556666");
  EXPECT_EQ(d.instance_uid, d.uuid);
  EXPECT_EQ(d.instance_ref, "team-a/web-1");
  EXPECT_EQ(d.vcpus, 2);
  EXPECT_EQ(d.memory_mib, 384u);
  EXPECT_EQ(d.cmdline, "console=ttyS0 quiet stratus.marker=<hi&>");
  EXPECT_EQ(d.serial_log_path, "/var/lib/stratus/agent/instances/team-a_web-1/console.log");
  // Names cannot collide across namespaces: '_' is not allowed in either part.
  EXPECT_NE(DomainName("a-b", "c"), DomainName("a", "b-c"));
}

}  // namespace
}  // namespace stratus::instance
