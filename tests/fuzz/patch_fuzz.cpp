// Fuzzes merge patch (RFC 7386), JSON patch (RFC 6902, applied with nlohmann's json::patch as the registry
// does) and the three-way apply. Input: a JSON array [target, patch, last_applied?]; anything else is used as a
// patch against a fixed object.
#include <cstdlib>
#include <exception>
#include <string>

#include "stratus/core/merge.h"
#include "stratus/core/yaml.h"

using stratus::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = stratus::ParseJson(std::string(reinterpret_cast<const char*>(data), size));
  if (!in.ok()) return 0;
  json target = json{{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"},
                     {"metadata", {{"name", "web-1"}, {"labels", {{"app", "web"}}}}},
                     {"spec", {{"cpu", 2}, {"networks", json::array({"default"})}}}};
  json patch = *in, last = nullptr;
  if (in->is_array() && in->size() >= 2 && in->size() <= 3) {
    target = (*in)[0];
    patch = (*in)[1];
    if (in->size() == 3) last = (*in)[2];
  }
  json merged = stratus::ApplyMergePatch(target, patch);
  // A merge patch computed between two values must turn the first into the second.
  json diff = stratus::CreateMergePatch(target, merged);
  if (target.is_object() && merged.is_object() && stratus::ApplyMergePatch(target, diff) != merged) abort();
  (void)stratus::ThreeWayMergePatch(last, patch, target);
  if (patch.is_array()) {
    try {
      json patched = target.patch(patch);
      (void)json::diff(target, patched);
    } catch (const std::exception&) {
      // A malformed or inapplicable JSON patch is a clean error (the registry turns it into a 422).
    }
  }
  return 0;
}
