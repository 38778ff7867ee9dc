// Fuzzes label and field selector parsing and matching. Input: selector text, then optionally a NUL byte and a
// JSON object to match against (labels for the label selector, the whole object for the field selector).
#include <cstring>
#include <string>

#include "stratus/core/selector.h"
#include "stratus/core/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  const void* nul = memchr(p, 0, size);
  size_t sel_len = nul ? static_cast<const char*>(nul) - p : size;
  std::string sel(p, sel_len);
  stratus::json obj = stratus::json::object();
  if (nul) {
    auto parsed = stratus::ParseJson(std::string(p + sel_len + 1, size - sel_len - 1));
    if (parsed.ok()) obj = *parsed;
  }
  auto ls = stratus::LabelSelector::Parse(sel);
  if (ls.ok()) {
    (void)ls->Matches(obj);
    (void)ls->Matches(obj.is_object() && obj.contains("labels") ? obj["labels"] : obj);
  }
  auto fs = stratus::FieldSelector::Parse(sel);
  if (fs.ok()) {
    (void)fs->Matches(obj);
    (void)fs->ExactName();
  }
  if (obj.is_object()) (void)stratus::ValidateLabels(obj, "metadata.labels");
  return 0;
}
