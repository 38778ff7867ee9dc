#include "stratus/apiserver/watch_filter.h"

#include "stratus/core/object.h"

namespace stratus {
namespace {
std::string Key(const json& obj) { return MetaString(obj, "namespace") + "/" + MetaString(obj, "name"); }
}  // namespace

WatchFilter::WatchFilter(LabelSelector labels, FieldSelector fields, bool resumed)
    : labels_(std::move(labels)), fields_(std::move(fields)), trivial_(labels_.empty() && fields_.empty()),
      resumed_(resumed) {}

bool WatchFilter::Matches(const json& obj) const {
  if (trivial_) return true;
  if (!obj.is_object() || !obj.contains("metadata")) return false;
  static const json kNull;
  const json& md = obj["metadata"];
  return labels_.Matches(md.contains("labels") ? md["labels"] : kNull) && fields_.Matches(obj);
}

void WatchFilter::Seed(const json& obj) {
  if (!trivial_) visible_[Key(obj)] = true;
}

std::string WatchFilter::Translate(const std::string& type, const json& obj) {
  if (trivial_) return type;
  std::string key = Key(obj);
  auto it = visible_.find(key);
  bool known = it != visible_.end();
  // An object created after the resume point cannot have been held before.
  bool was = known ? it->second : (resumed_ && type != "ADDED");
  bool now = type != "DELETED" && Matches(obj);
  if (type == "DELETED") {
    visible_.erase(key);
    return was || Matches(obj) ? "DELETED" : "";
  }
  visible_[key] = now;
  if (now) {
    if (known) return was ? "MODIFIED" : "ADDED";
    return resumed_ ? type : "ADDED";  // unknown: a resumed client may already hold it
  }
  return was ? "DELETED" : "";
}

}  // namespace stratus
