// EC2 ids of Stratus objects: derived once from the object's uid (`prefix` + "-" + 17 hex digits) and recorded on
// the object as the label `ec2.stratus.io/id` when it is created, so `stratusctl get -l ec2.stratus.io/id=i-...`
// finds what an EC2 tool names, and the id never changes across restarts.
#pragma once

#include <string>

#include "stratus/core/object.h"

namespace stratus::ec2 {

inline constexpr const char* kIdLabel = "ec2.stratus.io/id";

// EC2's stable id for an object of this uid: `prefix` + "-" + 17 lowercase hex digits (i-, ami-, vol-, ...).
std::string Ec2Id(const std::string& prefix, const std::string& uid);

// The id prefix EC2 uses for an object of `kind` ("i" for an Instance, "ami"/"aki"/"ari" for an Image by its
// spec.type, ...), or "" for kinds EC2 does not name.
std::string Ec2Prefix(const std::string& kind, const json& obj);

// The object's EC2 id ("" for kinds EC2 does not name): Ec2Id(Ec2Prefix(kind), uid).
std::string Ec2IdOf(const json& obj);

}  // namespace stratus::ec2
