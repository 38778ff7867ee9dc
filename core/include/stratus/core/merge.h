// JSON merge patch (RFC 7386) and kubectl-style client-side three-way apply.
#pragma once

#include "stratus/core/status.h"

namespace stratus {

// Applies an RFC 7386 merge patch to `target` and returns the result (null values delete keys; arrays and
// scalars replace).
json ApplyMergePatch(const json& target, const json& patch);

// Computes the merge patch that turns `from` into `to` (keys absent from `to` become null). Returns an empty
// object when they are equal.
json CreateMergePatch(const json& from, const json& to);

// kubectl's client-side apply: `last_applied` is what the user applied last time (may be null), `modified` is
// what the user applies now, `current` is the live object. Returns the merge patch that
//   - sets every field in `modified` that differs from `current`,
//   - deletes (null) every field that was in `last_applied` but is no longer in `modified`,
//   - leaves fields that only `current` has (set by the server or others) alone.
// Returns an empty object when nothing needs to change.
json ThreeWayMergePatch(const json& last_applied, const json& modified, const json& current);

}  // namespace stratus
