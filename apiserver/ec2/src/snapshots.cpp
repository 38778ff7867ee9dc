// Snapshots (EBS's, as EC2 shows them): CreateSnapshot, DescribeSnapshots and DeleteSnapshot onto VolumeSnapshot
// objects; CreateVolume --snapshot-id (volumes.cpp) makes a Volume from one.
#include <regex>
#include <set>

#include "internal.h"
#include "stratus/core/object.h"
#include "stratus/core/quantity.h"

namespace stratus::ec2::actions {
namespace {

const std::regex& SnapshotIdPattern() {
  static const std::regex k("snap-[0-9a-f]{8,17}");
  return k;
}
const std::regex& VolumeIdPattern() {
  static const std::regex k("vol-[0-9a-f]{8,17}");
  return k;
}

constexpr const char* kDescriptionAnnotation = "ec2.stratus.io/description";

// EC2's snapshot state for a VolumeSnapshot.
std::string SnapshotState(const json& snap) {
  std::string phase = Str(snap, "status", "phase");
  if (phase == "Ready") return "completed";
  if (phase == "Failed") return "error";
  return "pending";
}

long long SnapshotGiB(const json& snap) {
  auto b = ParseQuantityBytes(Str(snap, "status", "size"));
  if (!b.ok()) return 0;
  return static_cast<long long>((*b + (1ull << 30) - 1) >> 30);
}

std::string VolumeIdOf(const json& snap, const std::map<std::string, std::string>& volume_ids) {
  auto it = volume_ids.find(Str(snap, "spec", "volume"));
  if (it != volume_ids.end()) return it->second;
  std::string uid = Str(snap, "status", "volumeUID");  // the volume may be gone; its id stays
  return uid.empty() ? "" : Ec2Id("vol", uid);
}

void SnapshotItem(pugi::xml_node item, const json& snap, const std::string& volume_id, const std::string& owner) {
  AddText(item, "snapshotId", Ec2Id("snap", Uid(snap)));
  AddText(item, "volumeId", volume_id);
  std::string state = SnapshotState(snap);
  AddText(item, "status", state);
  AddText(item, "startTime", Str(snap, "metadata", "creationTimestamp"));
  AddText(item, "progress", state == "completed" ? "100%" : "0%");
  AddText(item, "ownerId", owner);
  AddText(item, "volumeSize", std::to_string(SnapshotGiB(snap)));
  const json& md = snap["metadata"];
  std::string desc = md.contains("annotations") && md["annotations"].is_object()
                         ? md["annotations"].value(kDescriptionAnnotation, "")
                         : "";
  AddText(item, "description", desc);
  AddBool(item, "encrypted", false);
  if (state == "error") {
    json c = json::object();
    for (const auto& cond : snap["status"].value("conditions", json::array())) {
      if (cond.value("type", "") == "Ready") c = cond;
    }
    AddText(item, "stateMessage", c.value("message", ""));
  }
  AddTagSet(item, snap);
}

// Volume name -> its EC2 id, in the caller's namespace.
std::map<std::string, std::string> VolumeIds(ApiClient* api, const std::string& ns) {
  std::map<std::string, std::string> out;
  auto vols = api->List("volumes", ns, {});
  if (vols.ok()) {
    for (const auto& v : (*vols)["items"]) out[Name(v)] = Ec2Id("vol", Uid(v));
  }
  return out;
}

}  // namespace

std::optional<Error> FindSnapshot(ApiClient* api, const Call& c, const std::string& id, json* out) {
  if (!std::regex_match(id, SnapshotIdPattern())) return Error{"InvalidSnapshotID.Malformed", "Invalid id: \"" + id + "\"", 400};
  auto list = api->List("volumesnapshots", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  for (const auto& s : (*list)["items"]) {
    if (Ec2Id("snap", Uid(s)) == id) {
      *out = s;
      return std::nullopt;
    }
  }
  return Error{"InvalidSnapshot.NotFound", "The snapshot '" + id + "' does not exist.", 400};
}

std::optional<Error> CreateSnapshot(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  auto vol_id = c.params.Get("VolumeId");
  if (!vol_id || vol_id->empty()) return MissingParameter("VolumeId");
  if (!std::regex_match(*vol_id, VolumeIdPattern())) return Error{"InvalidVolumeID.Malformed", "Invalid id: \"" + *vol_id + "\"", 400};
  auto vols = api->List("volumes", c.caller->ns, {});
  if (!vols.ok()) return FromStatus(vols.status());
  json vol;
  for (const auto& v : (*vols)["items"]) {
    if (Ec2Id("vol", Uid(v)) == *vol_id) vol = v;
  }
  if (vol.is_null()) return Error{"InvalidVolume.NotFound", "The volume '" + *vol_id + "' does not exist.", 400};
  Tags tags;
  if (auto err = SpecTags(c.params, {"snapshot"}, "snapshot", &tags)) return err;
  std::string name = NameFromTags(tags, true);
  json md = json::object();
  if (!name.empty()) {
    md["name"] = name;
  } else {
    md["generateName"] = "snap-";
  }
  PutTags(&md, tags);
  if (auto d = c.params.Get("Description"); d && !d->empty()) {
    if (d->size() > 255) return InvalidParameterValue("Description: at most 255 characters");
    md["annotations"][kDescriptionAnnotation] = *d;
  }
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "VolumeSnapshot"},
              {"metadata", md},
              {"spec", {{"volume", Name(vol)}}}};
  auto made = api->Create("volumesnapshots", c.caller->ns, obj);
  if (!made.ok()) {
    if (made.status().code() == Code::kInvalid) return Error{"IncorrectState", made.status().message(), 400};
    if (made.status().code() == Code::kAlreadyExists) {
      return InvalidParameterValue("a snapshot named '" + name + "' already exists");
    }
    return FromStatus(made.status());
  }
  SnapshotItem(r->root(), *made, *vol_id, c.caller->ns);
  // Before the copy, EC2 already says the size: the volume's.
  if (auto size = r->root().child("volumeSize"); size) {
    auto b = ParseQuantityBytes(Str(vol, "spec", "size"));
    if (b.ok()) size.text().set(std::to_string((*b + (1ull << 30) - 1) >> 30).c_str());
  }
  return std::nullopt;
}

std::optional<Error> DescribeSnapshots(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "SnapshotId", SnapshotIdPattern(), "InvalidSnapshotID.Malformed", &ids)) return e;
  std::vector<std::string> owners;
  Error oe;
  if (!c.params.List("Owner", &owners, &oe)) return oe;
  std::vector<Filter> filters;
  Error fe;
  if (!c.params.Filters(&filters, &fe)) return fe;
  for (const auto& f : filters) {
    if (f.name != "status" && f.name != "snapshot-id" && f.name != "volume-id" && f.name != "owner-id" &&
        !IsTagFilter(f.name)) {
      return Error{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", 400};
    }
  }
  auto list = api->List("volumesnapshots", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  auto volume_ids = VolumeIds(api, c.caller->ns);
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "snapshotSet");
  for (const auto& s : (*list)["items"]) {
    std::string id = Ec2Id("snap", Uid(s));
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    // Owners: "self" and this account's id are the caller's; no snapshot here is public ("amazon" finds none).
    bool owner_ok = owners.empty();
    for (const auto& o : owners) owner_ok |= o == "self" || o == c.caller->ns;
    if (!owner_ok) continue;
    std::string vid = VolumeIdOf(s, volume_ids);
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, s);
        continue;
      }
      std::string val = f.name == "status" ? SnapshotState(s) : f.name == "snapshot-id" ? id
                      : f.name == "volume-id" ? vid : c.caller->ns;
      match = match && AnyMatch(f.values, val);
    }
    if (match) SnapshotItem(AddItem(set), s, vid, c.caller->ns);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidSnapshot.NotFound", "The snapshot '" + id + "' does not exist.", 400};
  }
  return std::nullopt;
}

std::optional<Error> DeleteSnapshot(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  auto id = c.params.Get("SnapshotId");
  if (!id || id->empty()) return MissingParameter("SnapshotId");
  json snap;
  if (auto e = FindSnapshot(api, c, *id, &snap)) return e;
  auto d = api->Delete("volumesnapshots", c.caller->ns, Name(snap), Uid(snap));
  if (!d.ok() && d.status().code() != Code::kNotFound) {
    if (d.status().code() == Code::kConflict) return Error{"InvalidSnapshot.InUse", d.status().message(), 400};
    return FromStatus(d.status());
  }
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
