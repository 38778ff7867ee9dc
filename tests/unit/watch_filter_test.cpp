// Selector-filtered watches: objects entering the selection are ADDED, leaving it DELETED.
#include <gtest/gtest.h>

#include "stratus/apiserver/watch_filter.h"

namespace stratus {
namespace {

json Inst(const std::string& name, const std::string& node) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}}, {"spec", {{"nodeName", node}}}};
}

TEST(WatchFilterTest, ObjectsEnterAndLeaveTheSelection) {
  WatchFilter f(*LabelSelector::Parse(""), *FieldSelector::Parse("spec.nodeName=a"), /*resumed=*/false);
  EXPECT_EQ(f.Translate("ADDED", Inst("x", "")), "");
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "a")), "ADDED");
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "a")), "MODIFIED");
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "b")), "DELETED");
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "b")), "");
  EXPECT_EQ(f.Translate("DELETED", Inst("x", "b")), "");
  f.Seed(Inst("y", "a"));
  EXPECT_EQ(f.Translate("DELETED", Inst("y", "a")), "DELETED");
}

TEST(WatchFilterTest, ResumedStreamsAssumeUnknownObjectsMayBeHeld) {
  WatchFilter f(*LabelSelector::Parse(""), *FieldSelector::Parse("spec.nodeName=a"), /*resumed=*/true);
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "b")), "DELETED") << "may have matched before the resume point";
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "b")), "") << "only once";
  EXPECT_EQ(f.Translate("MODIFIED", Inst("z", "a")), "MODIFIED");
}

TEST(WatchFilterTest, NoSelectorPassesEverythingThrough) {
  WatchFilter f(*LabelSelector::Parse(""), *FieldSelector::Parse(""), false);
  EXPECT_EQ(f.Translate("MODIFIED", Inst("x", "b")), "MODIFIED");
  EXPECT_EQ(f.Translate("DELETED", Inst("x", "b")), "DELETED");
}

}  // namespace
}  // namespace stratus
