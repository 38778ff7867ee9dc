// Admission rules that schemas cannot express because they need the stored object or other objects:
// immutable and grow-only fields on update, and deletes refused while other objects depend on the target.
#pragma once

#include "stratus/apiserver/store.h"
#include "stratus/core/resources.h"
#include "stratus/core/status.h"

namespace stratus {

// `cur` is the stored object, `next` the object about to be stored (defaults applied). kInvalid with field
// causes when a rule is broken: Volume spec.size never shrinks; Volume spec.source, format and pool, and a set
// spec.nodeName never change; Instance spec.image, spec.rootDisk.pool never change and spec.rootDisk.size
// never shrinks.
Status AdmitUpdate(const ResourceInfo& r, const json& cur, const json& next, const Store& store);

// kInvalid naming spec.volume when a VolumeSnapshot names no existing volume, or a raw volume that a running
// instance uses (a raw copy is the whole disk; the guest would be paused for all of it).
Status AdmitCreate(const ResourceInfo& r, const json& obj, const Store& store);

// kConflict naming the dependents when `obj` may not be deleted now: a Volume that an Instance lists in
// spec.volumes, or the root volume of an Instance that still exists; a VolumeSnapshot that a volume is an overlay
// over (or is about to be made from), or that an image is still being captured from.
Status AdmitDelete(const ResourceInfo& r, const json& obj, const Store& store);

}  // namespace stratus
