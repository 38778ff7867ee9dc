#include "stratus/apiserver/admission.h"

#include "stratus/core/object.h"
#include "stratus/core/quantity.h"

namespace stratus {
namespace {

json SpecField(const json& obj, const char* field) {
  if (!obj.contains("spec") || !obj["spec"].is_object() || !obj["spec"].contains(field)) return json();
  return obj["spec"][field];
}

void Immutable(const json& cur, const json& next, const char* field, std::vector<FieldCause>* causes) {
  json a = SpecField(cur, field), b = SpecField(next, field);
  if (a != b) {
    causes->push_back({std::string("spec.") + field,
                       "field is immutable (was " + (a.is_null() ? std::string("unset") : a.dump()) + ")",
                       "FieldValueForbidden"});
  }
}

void GrowOnly(const std::string& field, const std::string& before, const std::string& after,
              std::vector<FieldCause>* causes) {
  if (before.empty() || after.empty()) return;
  auto a = ParseQuantityBytes(before), b = ParseQuantityBytes(after);
  if (a.ok() && b.ok() && *b < *a) {
    causes->push_back({field, "may not shrink from " + before + " to " + after + " (volumes only grow)",
                       "FieldValueForbidden"});
  }
}

Status Refuse(const ResourceInfo& r, const json& next, std::vector<FieldCause> causes) {
  std::string msg = r.kind + " \"" + MetaString(next, "name") + "\" is invalid: ";
  for (size_t i = 0; i < causes.size(); ++i) msg += (i ? ", " : "") + causes[i].field + ": " + causes[i].message;
  return InvalidError(msg, std::move(causes));
}

}  // namespace

// True when a Migration in phase Migrated moved `volume` (its status.volumes names it) to node `to`: the server
// binds the volume there, where its storage now is.
bool MovedByMigration(const json& volume, const std::string& to, const Store& store) {
  StoreListOptions lo;
  lo.plural = "migrations";
  lo.ns = MetaString(volume, "namespace");
  for (const auto& m : store.List(lo).items) {
    const json st = m->value("status", json::object());
    if (st.value("phase", "") != "Migrated" || st.value("targetNode", "") != to) continue;
    for (const auto& v : st.value("volumes", json::array())) {
      if (v.is_object() && v.value("name", "") == MetaString(volume, "name")) return true;
    }
  }
  return false;
}

Status AdmitUpdate(const ResourceInfo& r, const json& cur, const json& next, const Store& store) {
  std::vector<FieldCause> causes;
  if (r.kind == "Volume") {
    GrowOnly("spec.size", SpecField(cur, "size").is_string() ? SpecField(cur, "size").get<std::string>() : "",
             SpecField(next, "size").is_string() ? SpecField(next, "size").get<std::string>() : "", &causes);
    for (const char* f : {"source", "format", "pool"}) Immutable(cur, next, f, &causes);
    json node = SpecField(cur, "nodeName"), to = SpecField(next, "nodeName");
    bool migrated = to.is_string() && MovedByMigration(cur, to.get<std::string>(), store);
    if (node.is_string() && !node.get<std::string>().empty() && !migrated) Immutable(cur, next, "nodeName", &causes);
  } else if (r.kind == "VolumeSnapshot") {
    Immutable(cur, next, "volume", &causes);  // a snapshot is of one volume at one time
  } else if (r.kind == "Migration") {
    for (const char* f : {"instance", "targetNode"}) Immutable(cur, next, f, &causes);  // a new move is a new object
  } else if (r.kind == "Token") {
    Immutable(cur, next, "user", &causes);
  } else if (r.kind == "RoleBinding" || r.kind == "ClusterRoleBinding") {
    // As Kubernetes' roleRef: a binding is replaced, not edited into another grant.
    for (const char* f : {"user", "role"}) Immutable(cur, next, f, &causes);
  } else if (r.kind == "AccessKey") {
    for (const char* f : {"accessKeyId", "user", "namespace"}) Immutable(cur, next, f, &causes);
  } else if (r.kind == "Address") {
    // The address is allocated once from one pool; association (spec.instance) is what changes.
    for (const char* f : {"pool", "ip"}) Immutable(cur, next, f, &causes);
  } else if (r.kind == "AddressPool") {
    // Allocations are recorded against this range; another range would strand them.
    Immutable(cur, next, "cidr", &causes);
  } else if (r.kind == "Instance") {
    // spec.image changes only as a rebuild (the root volume is made again from the new image), never silently.
    json a_img = SpecField(cur, "image"), b_img = SpecField(next, "image");
    if (a_img != b_img) {
      json policy = SpecField(next, "rebuildPolicy");
      if (a_img.is_null() || b_img.is_null()) {
        causes.push_back({"spec.image", "may not be added or removed (was " +
                                            (a_img.is_null() ? std::string("unset") : a_img.dump()) + ")",
                          "FieldValueForbidden"});
      } else if (!(policy.is_string() && policy.get<std::string>() == "Recreate")) {
        causes.push_back({"spec.image", "may only change with spec.rebuildPolicy: Recreate, which rebuilds the "
                                        "instance from the new image (was " + a_img.dump() + ")",
                          "FieldValueForbidden"});
      }
    }
    json a = SpecField(cur, "rootDisk"), b = SpecField(next, "rootDisk");
    if (!a.is_object()) a = json::object();
    if (!b.is_object()) b = json::object();
    if (a.value("pool", "") != b.value("pool", "")) {
      causes.push_back({"spec.rootDisk.pool", "field is immutable", "FieldValueForbidden"});
    }
    GrowOnly("spec.rootDisk.size", a.value("size", ""), b.value("size", ""), &causes);
  }
  if (causes.empty()) return Status::Ok();
  return Refuse(r, next, std::move(causes));
}

namespace {

// A pool is kept while Addresses name it: deleting it would strand their ips (and let them be handed out again
// if a pool with that range came back). Delete or move the Addresses first.
Status AdmitPoolDelete(const json& obj, const Store& store) {
  std::string name = MetaString(obj, "name");
  StoreListOptions lo;
  lo.plural = "addresses";
  std::vector<std::string> users;
  for (const auto& a : store.List(lo).items) {
    const json& spec = (*a)["spec"];
    if (spec.is_object() && spec.value("pool", "") == name) {
      users.push_back(MetaString(*a, "namespace") + "/" + MetaString(*a, "name"));
    }
  }
  if (users.empty()) return Status::Ok();
  std::string who;
  for (size_t i = 0; i < users.size() && i < 5; ++i) who += (i ? ", " : "") + users[i];
  if (users.size() > 5) who += " and " + std::to_string(users.size() - 5) + " more";
  return Status(Code::kConflict, "addresspool \"" + name + "\" is used by Address " + who + "; delete those first");
}

std::string StatusField(const json& o, const char* field) {
  return o.contains("status") && o["status"].is_object() ? o["status"].value(field, "") : "";
}

std::string Names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 5) out += " and " + std::to_string(names.size() - 5) + " more";
  return out;
}

// A snapshot is kept while volumes are qcow2 overlays over it (or are about to be made from it) and while an
// image is still being captured from it.
Status AdmitSnapshotDelete(const json& obj, const Store& store) {
  std::string ns = MetaString(obj, "namespace"), name = MetaString(obj, "name");
  StoreListOptions lo;
  lo.plural = "volumes";
  lo.ns = ns;
  std::vector<std::string> volumes, images;
  for (const auto& v : store.List(lo).items) {
    const json& spec = (*v)["spec"];
    bool from = spec.is_object() && spec.contains("source") && spec["source"].is_object() &&
                spec["source"].value("snapshot", "") == name;
    bool pending = from && StatusField(*v, "path").empty() && MetaString(*v, "deletionTimestamp").empty();
    if (StatusField(*v, "backingSnapshot") == name || pending) volumes.push_back(MetaString(*v, "name"));
  }
  lo.plural = "images";
  for (const auto& i : store.List(lo).items) {
    const json& spec = (*i)["spec"];
    bool from = spec.is_object() && spec.contains("source") && spec["source"].is_object() &&
                spec["source"].value("snapshot", "") == name;
    bool uploaded = (*i).contains("status") && (*i)["status"].is_object() && (*i)["status"].contains("upload");
    if (from && !uploaded) images.push_back(MetaString(*i, "name"));
  }
  if (!volumes.empty()) {
    return Status(Code::kConflict, "volumesnapshot \"" + name + "\" backs volume " + Names(volumes) +
                                       " (a qcow2 overlay over the snapshot's data); delete those volumes first");
  }
  if (!images.empty()) {
    return Status(Code::kConflict, "volumesnapshot \"" + name + "\" is being copied into image " + Names(images) +
                                       "; delete it once the image is Ready");
  }
  return Status::Ok();
}

}  // namespace

Status AdmitCreate(const ResourceInfo& r, const json& obj, const Store& store) {
  if (r.kind != "VolumeSnapshot") return Status::Ok();
  // A raw volume in use by a running guest: its copy is the whole disk, too long to pause the guest for.
  std::string ns = MetaString(obj, "namespace");
  std::string vol_name = SpecField(obj, "volume").is_string() ? SpecField(obj, "volume").get<std::string>() : "";
  auto vol = store.Get({"volumes", ns, vol_name});
  if (!vol.ok()) {
    // Nothing would ever take it (a snapshot belongs to its volume's node): say so now.
    std::string msg = "volume \"" + vol_name + "\" does not exist in namespace " + ns;
    return InvalidError("VolumeSnapshot \"" + MetaString(obj, "name") + "\" is invalid: spec.volume: " + msg,
                        {{"spec.volume", msg, "FieldValueNotFound"}});
  }
  const json& v = **vol;
  std::string holder = v.contains("status") && v["status"].is_object() && v["status"].contains("attachment") &&
                               v["status"]["attachment"].is_object()
                           ? v["status"]["attachment"].value("instance", "")
                           : "";
  if (StatusField(v, "format") != "raw" || holder.empty()) return Status::Ok();
  auto inst = store.Get({"instances", ns, holder});
  if (!inst.ok()) return Status::Ok();
  std::string phase = StatusField(**inst, "phase");
  if (phase != "Running" && phase != "Paused") return Status::Ok();
  std::string msg = "volume \"" + vol_name + "\" is raw and in use by running instance \"" + holder +
                    "\": a raw volume is copied whole, so it is snapshotted only while no guest writes it; stop the "
                    "instance or detach the volume first";
  return InvalidError("VolumeSnapshot \"" + MetaString(obj, "name") + "\" is invalid: spec.volume: " + msg,
                      {{"spec.volume", msg, "FieldValueInvalid"}});
}

namespace {

// True when `vol` is the root disk of `inst` on a node that is not Ready (lost) and the instance may be evacuated
// (spec.evacuationPolicy: Evacuate): node lifecycle gives such a disk up before it rebuilds the instance elsewhere.
bool GivenUpByEvacuation(const json& inst, const json& vol, const Store& store) {
  const json ispec = inst.value("spec", json::object());
  if (ispec.value("evacuationPolicy", json()) != json("Evacuate")) return false;
  std::string node = vol.value("spec", json::object()).value("nodeName", "");
  if (node.empty()) return false;
  auto n = store.GetStored({"nodes", "", node});
  if (!n.ok()) return true;  // the node is gone altogether
  const json& st = n->object->value("status", json::object());
  for (const auto& c : st.value("conditions", json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "") != "True";
  }
  return false;
}

}  // namespace

Status AdmitDelete(const ResourceInfo& r, const json& obj, const Store& store) {
  if (r.kind == "AddressPool") return AdmitPoolDelete(obj, store);
  if (r.kind == "VolumeSnapshot") return AdmitSnapshotDelete(obj, store);
  if (r.kind != "Volume") return Status::Ok();
  std::string ns = MetaString(obj, "namespace"), name = MetaString(obj, "name");
  StoreListOptions lo;
  lo.plural = "instances";
  lo.ns = ns;
  std::vector<std::string> users;
  for (const auto& i : store.List(lo).items) {
    if (!MetaString(*i, "deletionTimestamp").empty()) continue;  // it is letting go
    const json& spec = (*i)["spec"];
    if (spec.contains("volumes") && spec["volumes"].is_array()) {
      for (const auto& e : spec["volumes"]) {
        if (e.is_object() && e.value("volume", "") == name) users.push_back(MetaString(*i, "name"));
      }
    }
    if (obj["metadata"].contains("ownerReferences")) {
      for (const auto& o : obj["metadata"]["ownerReferences"]) {
        if (o.value("kind", "") == "Instance" && o.value("uid", "") == MetaString(*i, "uid")) {
          // A rebuild: its node deletes the root volume made from the old image (and makes a new one).
          if (RebuildReplaces(*i, obj)) continue;
          // An evacuation: the root disk of an Evacuate instance on a node that is not Ready is given up.
          if (GivenUpByEvacuation(*i, obj, store)) continue;
          return Status(Code::kConflict, "volume \"" + name + "\" is the root disk of instance \"" +
                                             MetaString(*i, "name") + "\"; delete the instance instead (the root "
                                             "volume goes with it unless rootDisk.deleteOnTermination is false)");
        }
      }
    }
  }
  if (users.empty()) return Status::Ok();
  std::string who;
  for (const auto& u : users) who += (who.empty() ? "" : ", ") + u;
  return Status(Code::kConflict, "volume \"" + name + "\" is attached to instance " + who +
                                     "; remove it from that instance's spec.volumes first (detach), then delete it");
}

}  // namespace stratus
