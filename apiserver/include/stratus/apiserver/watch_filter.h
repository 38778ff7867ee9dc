// What a selector-filtered watch sees, as in Kubernetes' watch cache: an object that starts matching arrives as
// ADDED, one that stops matching (a label removed, spec.nodeName changed) as DELETED, so informers never keep
// objects that left their selection. Used by the HTTP watch and the in-process client.
#pragma once

#include <map>
#include <string>

#include "stratus/core/selector.h"
#include "stratus/core/status.h"

namespace stratus {

class WatchFilter {
 public:
  // `resumed`: the watch starts from a resourceVersion, so objects this stream has not seen may have matched
  // before; the first non-matching change of such an object is sent as DELETED (at most once per object).
  WatchFilter(LabelSelector labels, FieldSelector fields, bool resumed);
  bool Matches(const json& obj) const;
  // Records that `obj` was sent as part of the initial state.
  void Seed(const json& obj);
  // The event type to send for a store event ("ADDED", "MODIFIED", "DELETED"), or "" to send nothing.
  std::string Translate(const std::string& type, const json& obj);

 private:
  LabelSelector labels_;
  FieldSelector fields_;
  bool trivial_;
  bool resumed_;
  std::map<std::string, bool> visible_;  // key -> currently visible to this stream
};

}  // namespace stratus
