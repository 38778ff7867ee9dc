// Pure decisions of the volume reconciler: who holds a volume, how to create it, how to resize it.
#include <algorithm>
#include <functional>

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"
#include "stratus/volume/volume.h"

namespace stratus::volume {

std::string RootVolumeName(const json& inst) {
  std::string name = MetaString(inst, "name");
  if (name.size() + 5 <= 63) return name + "-root";
  // Keep it a DNS-1123 label and unique: a prefix of the name, then part of the uid.
  std::string uid = MetaString(inst, "uid");
  uid.erase(std::remove(uid.begin(), uid.end(), '-'), uid.end());
  std::string prefix = name.substr(0, 63 - 5 - 9);
  while (!prefix.empty() && prefix.back() == '-') prefix.pop_back();
  return prefix + "-" + uid.substr(0, 8) + "-root";
}

std::vector<VolumeUse> VolumesOf(const json& inst) {
  std::vector<VolumeUse> out;
  const json& spec = inst["spec"];
  if (!spec.value("image", "").empty()) {
    std::string root = inst.contains("status") ? inst["status"].value("rootVolume", "") : "";
    out.push_back({root.empty() ? RootVolumeName(inst) : root, "vda", true});
  }
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (const auto& v : spec["volumes"]) out.push_back({v.value("volume", ""), v.value("device", ""), false});
  }
  return out;
}

bool ReportsAttached(const json& inst, const std::string& volume) {
  if (!inst.contains("status") || !inst["status"].contains("volumes")) return false;
  for (const auto& v : inst["status"]["volumes"]) {
    if (v.value("name", "") == volume) return true;
  }
  return false;
}

namespace {
bool Asks(const json& inst, const std::string& volume) {
  if (!MetaString(inst, "deletionTimestamp").empty()) return false;  // a terminating instance releases
  for (const auto& u : VolumesOf(inst)) {
    if (u.volume == volume) return true;
  }
  return false;
}
}  // namespace

std::string ChooseHolder(const json& volume, const std::vector<json>& instances) {
  std::string name = MetaString(volume, "name");
  std::string ns = MetaString(volume, "namespace");
  std::string current;
  if (volume.contains("status") && volume["status"].contains("attachment") &&
      volume["status"]["attachment"].is_object()) {
    current = volume["status"]["attachment"].value("instance", "");
  }
  const json* best = nullptr;
  for (const auto& i : instances) {
    if (MetaString(i, "namespace") != ns) continue;
    bool asks = Asks(i, name);
    // The current holder keeps the volume while it asks for it or its domain still has it.
    if (!current.empty() && MetaString(i, "name") == current && (asks || ReportsAttached(i, name))) return current;
    if (!asks) continue;
    if (best == nullptr) {
      best = &i;
      continue;
    }
    std::string a = MetaString(i, "creationTimestamp"), b = MetaString(*best, "creationTimestamp");
    if (a < b || (a == b && MetaString(i, "name") < MetaString(*best, "name"))) best = &i;
  }
  // Someone else still has it attached (e.g. the spec entry was removed but the unplug has not finished).
  for (const auto& i : instances) {
    if (MetaString(i, "namespace") == ns && ReportsAttached(i, name) && !Asks(i, name)) {
      return MetaString(i, "name");
    }
  }
  return best ? MetaString(*best, "name") : "";
}

StatusOr<CreatePlan> PlanCreate(const std::string& pool_type, const std::string& format, uint64_t requested,
                                const std::string& kind, const SourceInfo* source) {
  CreatePlan p;
  p.format = pool_type == "logical" ? "raw" : (format.empty() ? "qcow2" : format);
  p.bytes = requested;
  if (source == nullptr) {
    p.method = CreatePlan::Method::kBlank;
    return p;
  }
  if (requested < source->virtual_bytes) {
    return InvalidError("spec.size: " + FormatQuantityBytes(requested) + " is smaller than the " + kind + " \"" +
                            source->name + "\" it is made from (" + FormatQuantityBytes(source->virtual_bytes) +
                            "); volumes never shrink their source",
                        {{"spec.size", "smaller than the source"}});
  }
  p.source_pool = source->pool;
  p.source_name = source->name;
  p.source_path = source->path;
  p.source_format = source->format;
  if (kind == "volume") {
    p.method = CreatePlan::Method::kCloneVolume;  // independent copy: the clone outlives its source
  } else if (pool_type == "dir" && p.format == "qcow2" && (source->format == "qcow2" || source->format == "raw")) {
    p.method = CreatePlan::Method::kBackingFile;  // copy-on-write over the node's cached image
  } else {
    p.method = CreatePlan::Method::kFullCopy;
  }
  return p;
}

ResizeAction PlanResize(uint64_t current, uint64_t requested, bool attached_running) {
  if (requested == current || requested == 0) return ResizeAction::kNone;
  if (requested < current) return ResizeAction::kRefuseShrink;
  return attached_running ? ResizeAction::kGrowLive : ResizeAction::kGrowOffline;
}

}  // namespace stratus::volume
