// Fuzzes the YAML decoder (ParseYamlDocuments, ParseJsonOrYaml) and checks that ToYaml's output reads back as
// the same value.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "stratus/core/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto docs = stratus::ParseYamlDocuments(text);
  (void)stratus::ParseJsonOrYaml(text);
  if (!docs.ok()) return 0;
  for (const auto& doc : *docs) {
    std::string out = stratus::ToYaml(doc);
    auto back = stratus::ParseYamlDocuments(out);
    // ToYaml of a value the parser accepted must parse back to that value.
    if (!back.ok() || back->size() != 1 || (*back)[0] != doc) {
      if (!(doc.is_null() && back.ok() && back->empty())) {
        fprintf(stderr, "round trip differs:\n parsed: %s\n ToYaml: %s\n reparsed: %s\n", doc.dump().c_str(),
                out.c_str(), back.ok() ? stratus::json(*back).dump().c_str() : back.status().message().c_str());
        abort();
      }
    }
  }
  return 0;
}
