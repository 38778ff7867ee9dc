// Images as EC2 shows them (Glance's AMI/AKI/ARI): DescribeImages, RegisterImage (an Image imported from a URL,
// with a default kernel and ramdisk), DeregisterImage and DescribeImageAttribute onto Image objects. What EC2 keeps
// about an image beyond the object's spec (its EC2 name when that is not a DNS label, description, default kernel
// and ramdisk) is kept in annotations on the object.
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/object.h"

namespace stratus::ec2::actions {
namespace {

constexpr const char* kNameAnnotation = "ec2.stratus.io/name";
constexpr const char* kDescriptionAnnotation = "ec2.stratus.io/description";
constexpr const char* kKernelAnnotation = "ec2.stratus.io/kernel-id";
constexpr const char* kRamdiskAnnotation = "ec2.stratus.io/ramdisk-id";

const std::regex& ImageIdPattern() {
  static const std::regex k("(ami|aki|ari)-[0-9a-f]{8,17}");
  return k;
}

std::string Annotation(const json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].contains("annotations")) return "";
  const json& a = obj["metadata"]["annotations"];
  return a.is_object() && a.contains(key) && a[key].is_string() ? a[key].get<std::string>() : "";
}

std::string ImageName(const json& img) {
  std::string n = Annotation(img, kNameAnnotation);
  return n.empty() ? Name(img) : n;
}

std::string ImageState(const json& img) {
  if (img.contains("metadata") && img["metadata"].contains("deletionTimestamp")) return "deregistered";
  std::string phase = Str(img, "status", "phase");
  return phase == "Ready" ? "available" : phase == "Failed" ? "failed" : "pending";
}

std::string ImageType(const json& img) {
  std::string type = Str(img, "spec", "type");
  return type == "kernel" ? "kernel" : type == "ramdisk" ? "ramdisk" : "machine";
}

// The caller's image ImageId names.
std::optional<Error> OneImage(ApiClient* api, const Call& c, json* out) {
  auto id = c.params.Get("ImageId");
  if (!id || id->empty()) return MissingParameter("ImageId");
  if (!std::regex_match(*id, ImageIdPattern())) return Error{"InvalidAMIID.Malformed", "Invalid id: \"" + *id + "\"", 400};
  auto list = api->List("images", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  for (const auto& img : (*list)["items"]) {
    if (Ec2IdOf(img) == *id) {
      *out = img;
      return std::nullopt;
    }
  }
  return Error{"InvalidAMIID.NotFound", "The image id '[" + *id + "]' does not exist", 400};
}

// An AMI name as EC2 allows it: 3-128 characters of letters, digits, ( ) [ ] space . / - ' @ _.
std::optional<Error> CheckImageName(const std::string& name) {
  if (name.size() < 3 || name.size() > 128) return InvalidParameterValue("Name must be 3 to 128 characters long");
  static const std::regex kEc2Name("[A-Za-z0-9()\\[\\] ./\\-'@_]+");
  if (!std::regex_match(name, kEc2Name)) {
    return InvalidParameterValue("Name may contain letters, digits, ( ) [ ] space . / - ' @ _ only");
  }
  return std::nullopt;
}

// Makes the disk Image RegisterImage and CreateImage describe: named by `name` when that is a DNS label (else
// generated, the EC2 name kept in an annotation), with its description and tags, and answers its id.
std::optional<Error> MakeImage(ApiClient* api, const Call& c, Response* r, const std::string& name,
                               const std::optional<std::string>& description, json md, const json& source) {
  if (ValidateDns1123Label(name, "Name").ok()) {
    md["name"] = name;
  } else {
    md["generateName"] = "ami-";
    md["annotations"][kNameAnnotation] = name;
  }
  if (description && !description->empty()) md["annotations"][kDescriptionAnnotation] = *description;
  Tags tags;
  if (auto err = SpecTags(c.params, {"image"}, "image", &tags)) return err;
  PutTags(&md, tags);
  json obj = {{"apiVersion", "stratus.io/v1"}, {"kind", "Image"}, {"metadata", md},
              {"spec", {{"type", "disk"}, {"source", source}}}};
  auto made = api->Create("images", c.caller->ns, obj);
  if (!made.ok()) {
    if (made.status().code() == Code::kAlreadyExists) return Error{"InvalidAMIName.Duplicate", "AMI name " + name + " is already in use", 400};
    if (made.status().code() == Code::kInvalid || made.status().code() == Code::kBadRequest) return InvalidParameterValue(made.status().message());
    if (made.status().reason() == "QuotaExceeded") return Error{"ResourceLimitExceeded", made.status().message(), 400};
    return FromStatus(made.status());
  }
  AddText(r->root(), "imageId", Ec2IdOf(*made));
  return std::nullopt;
}

}  // namespace

std::string ImageDefault(const json& image, const std::string& param) {
  return Annotation(image, param == "KernelId" ? kKernelAnnotation : kRamdiskAnnotation);
}

std::optional<Error> DescribeImages(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::set<std::string> kFilters = {"image-id", "name", "state", "image-type", "architecture",
                                                 "is-public", "owner-id", "description", "kernel-id", "ramdisk-id"};
  std::vector<std::string> ids, owners;
  if (auto e = IdList(c.params, "ImageId", ImageIdPattern(), "InvalidAMIID.Malformed", &ids)) return e;
  Error e;
  if (!c.params.List("Owner", &owners, &e)) return e;
  std::vector<Filter> filters;
  if (!c.params.Filters(&filters, &e)) return e;
  for (const auto& f : filters) {
    if (!kFilters.count(f.name) && !IsTagFilter(f.name)) return InvalidParameterValue("The filter '" + f.name + "' is invalid");
  }
  // Owner: "self" and the caller's account (its namespace) are its own images; every image here is the caller's.
  for (const auto& o : owners) {
    if (o != "self" && o != c.caller->ns) return std::nullopt;  // nobody else's images are visible: an empty set
  }
  auto list = api->List("images", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "imagesSet");
  for (const auto& img : (*list)["items"]) {
    std::string id = Ec2IdOf(img);
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, img);
        continue;
      }
      std::string v = f.name == "image-id" ? id : f.name == "name" ? ImageName(img) : f.name == "state" ? ImageState(img)
                    : f.name == "image-type" ? ImageType(img) : f.name == "architecture" ? "x86_64"
                    : f.name == "is-public" ? "false" : f.name == "owner-id" ? c.caller->ns
                    : f.name == "description" ? Annotation(img, kDescriptionAnnotation)
                    : f.name == "kernel-id" ? Annotation(img, kKernelAnnotation) : Annotation(img, kRamdiskAnnotation);
      match = match && AnyMatch(f.values, v);
    }
    if (!match) continue;
    auto item = AddItem(set);
    AddText(item, "imageId", id);
    std::string url = img.contains("spec") ? Str(img["spec"], "source", "url") : "";
    AddText(item, "imageLocation", url.empty() ? c.caller->ns + "/" + Name(img) : url);
    AddText(item, "imageState", ImageState(img));
    AddText(item, "imageOwnerId", c.caller->ns);
    AddBool(item, "isPublic", false);
    AddText(item, "architecture", "x86_64");
    AddText(item, "imageType", ImageType(img));
    if (!Annotation(img, kKernelAnnotation).empty()) AddText(item, "kernelId", Annotation(img, kKernelAnnotation));
    if (!Annotation(img, kRamdiskAnnotation).empty()) AddText(item, "ramdiskId", Annotation(img, kRamdiskAnnotation));
    AddText(item, "name", ImageName(img));
    if (!Annotation(img, kDescriptionAnnotation).empty()) AddText(item, "description", Annotation(img, kDescriptionAnnotation));
    AddText(item, "rootDeviceType", "ebs");
    AddText(item, "rootDeviceName", "/dev/vda");
    AddSet(item, "blockDeviceMapping");
    AddText(item, "virtualizationType", "hvm");
    AddText(item, "hypervisor", "xen");
    AddText(item, "creationDate", Str(img, "metadata", "creationTimestamp"));
    AddTagSet(item, img);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidAMIID.NotFound", "The image id '[" + id + "]' does not exist", 400};
  }
  return std::nullopt;
}

// RegisterImage: a machine image imported from ImageLocation (an http:// or https:// URL: a tenant never names a
// file on the hosts), with KernelId/RamdiskId as the kernel and ramdisk its instances boot by default.
std::optional<Error> RegisterImage(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  auto name = c.params.Get("Name");
  if (!name || name->empty()) return MissingParameter("Name");
  if (auto err = CheckImageName(*name)) return err;
  auto location = c.params.Get("ImageLocation");
  if (!location || location->empty()) {
    return MissingParameter("ImageLocation");  // no snapshots to register from: an image comes from a URL
  }
  static const std::regex kUrl("https?://[^\\s]+");
  if (location->size() > 4096 || !std::regex_match(*location, kUrl)) {
    return InvalidParameterValue("ImageLocation must be an http:// or https:// URL of the image");
  }
  if (auto arch = c.params.Get("Architecture"); arch && *arch != "x86_64") {
    return InvalidParameterValue("Architecture '" + *arch + "' is not served (x86_64 is)");
  }
  auto description = c.params.Get("Description");
  if (description && description->size() > 255) return InvalidParameterValue("Description is longer than 255 characters");
  auto images = api->List("images", c.caller->ns, {});
  if (!images.ok()) return FromStatus(images.status());
  json md = json::object();
  for (const auto& img : (*images)["items"]) {
    if (ImageName(img) == *name) return Error{"InvalidAMIName.Duplicate", "AMI name " + *name + " is already in use", 400};
  }
  for (const auto& [param, prefix, key] : {std::tuple<const char*, const char*, const char*>{"KernelId", "aki", kKernelAnnotation},
                                           {"RamdiskId", "ari", kRamdiskAnnotation}}) {
    auto id = c.params.Get(param);
    if (!id || id->empty()) continue;
    bool found = false;
    for (const auto& img : (*images)["items"]) found = found || Ec2IdOf(img) == *id;
    if (id->rfind(std::string(prefix) + "-", 0) != 0 || !std::regex_match(*id, ImageIdPattern())) {
      return Error{"InvalidAMIID.Malformed", "Invalid id: \"" + *id + "\" (" + param + " is a " + prefix + "- id)", 400};
    }
    if (!found) return Error{"InvalidAMIID.NotFound", "The image id '[" + *id + "]' does not exist", 400};
    md["annotations"][key] = *id;
  }
  return MakeImage(api, c, r, *name, description, md, {{"url", *location}});
}

std::optional<Error> DeregisterImage(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json img;
  if (auto e = OneImage(api, c, &img)) return e;
  auto d = api->Delete("images", c.caller->ns, Name(img), Uid(img));
  if (!d.ok() && d.status().code() != Code::kNotFound) {
    if (d.status().code() == Code::kConflict || d.status().code() == Code::kForbidden) {
      return Error{"InvalidAMIID.InUse", d.status().message(), 400};
    }
    return FromStatus(d.status());
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

std::optional<Error> DescribeImageAttribute(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::set<std::string> kAttrs = {"description", "kernel", "ramdisk", "launchPermission",
                                               "productCodes", "blockDeviceMapping", "sriovNetSupport", "bootMode"};
  auto attr = c.params.Get("Attribute");
  if (!attr || attr->empty()) return MissingParameter("Attribute");
  if (!kAttrs.count(*attr)) return InvalidParameterValue("Value (" + *attr + ") for parameter attribute is invalid.");
  json img;
  if (auto e = OneImage(api, c, &img)) return e;
  AddText(r->root(), "imageId", Ec2IdOf(img));
  auto value = [&](const char* elem, const std::string& v) {
    auto n = r->root().append_child(elem);
    if (!v.empty()) AddText(n, "value", v);
  };
  if (*attr == "description") value("description", Annotation(img, kDescriptionAnnotation));
  if (*attr == "kernel") value("kernel", Annotation(img, kKernelAnnotation));
  if (*attr == "ramdisk") value("ramdisk", Annotation(img, kRamdiskAnnotation));
  if (*attr == "launchPermission") AddSet(r->root(), "launchPermission");  // private to its namespace
  if (*attr == "productCodes") AddSet(r->root(), "productCodes");
  if (*attr == "blockDeviceMapping") AddSet(r->root(), "blockDeviceMapping");
  if (*attr == "sriovNetSupport") value("sriovNetSupport", "");
  if (*attr == "bootMode") value("bootMode", "legacy-bios");
  return std::nullopt;
}

// CreateImage: a disk Image captured from the instance's root volume (spec.source.volume) by the node that holds
// it: a crash-consistent copy of the running disk (NoReboot is how it is always done: the guest is not stopped),
// with the instance's kernel and ramdisk as the image's defaults.
std::optional<Error> CreateImage(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kInstance("i-[0-9a-f]{8,17}");
  auto inst_id = c.params.Get("InstanceId");
  if (!inst_id || inst_id->empty()) return MissingParameter("InstanceId");
  if (!std::regex_match(*inst_id, kInstance)) return Error{"InvalidInstanceID.Malformed", "Invalid id: \"" + *inst_id + "\"", 400};
  auto name = c.params.Get("Name");
  if (!name || name->empty()) return MissingParameter("Name");
  if (auto err = CheckImageName(*name)) return err;
  auto description = c.params.Get("Description");
  if (description && description->size() > 255) return InvalidParameterValue("Description is longer than 255 characters");
  bool no_reboot = false;
  Error e;
  if (!c.params.Bool("NoReboot", false, &no_reboot, &e)) return e;
  if (c.params.Has("BlockDeviceMapping.1.DeviceName")) return InvalidParameterValue("BlockDeviceMapping: only the root volume is captured");
  auto insts = api->List("instances", c.caller->ns, {});
  if (!insts.ok()) return FromStatus(insts.status());
  json inst;
  for (const auto& i : (*insts)["items"]) {
    if (Ec2IdOf(i) == *inst_id) inst = i;
  }
  if (inst.is_null()) return Error{"InvalidInstanceID.NotFound", "The instance ID '" + *inst_id + "' does not exist", 400};
  std::string root = Str(inst, "status", "rootVolume");
  if (Str(inst, "spec", "image").empty()) {
    return Error{"InvalidParameterValue", "instance " + *inst_id + " boots without a root volume (no image); nothing to capture", 400};
  }
  if (root.empty() || inst["metadata"].contains("deletionTimestamp")) {
    return Error{"IncorrectInstanceState", "The instance '" + *inst_id + "' has no root volume yet", 400};
  }
  auto images = api->List("images", c.caller->ns, {});
  if (!images.ok()) return FromStatus(images.status());
  json md = json::object();
  for (const auto& img : (*images)["items"]) {
    if (ImageName(img) == *name) return Error{"InvalidAMIName.Duplicate", "AMI name " + *name + " is already in use", 400};
  }
  // The instance's kernel and ramdisk become the image's defaults.
  for (const auto& [field, key] : {std::pair<const char*, const char*>{"kernelImage", kKernelAnnotation}, {"ramdiskImage", kRamdiskAnnotation}}) {
    std::string want = Str(inst, "spec", field);
    for (const auto& img : (*images)["items"]) {
      if (!want.empty() && Name(img) == want) md["annotations"][key] = Ec2IdOf(img);
    }
  }
  return MakeImage(api, c, r, *name, description, md, {{"volume", root}});
}

}  // namespace stratus::ec2::actions
