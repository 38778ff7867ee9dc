// Fuzzes schema defaulting and validation: the first byte picks a kind, the rest is a JSON/YAML body that is
// defaulted and validated against that kind's built-in schema, the way the registry does on create/update.
#include <string>

#include "stratus/core/schema.h"
#include "stratus/core/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kKinds[] = {"Instance", "Volume", "Network", "Image", "KeyPair", "Namespace",
                                       "Node", "SecurityGroup", "Event", "InstanceType", "NoSuchKind"};
  if (size < 1) return 0;
  const char* kind = kKinds[data[0] % (sizeof(kKinds) / sizeof(kKinds[0]))];
  auto obj = stratus::ParseJsonOrYaml(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  if (!obj.ok()) return 0;
  const auto& reg = stratus::SchemaRegistry::Builtin();
  (void)reg.Validate(kind, *obj);
  stratus::json defaulted = *obj;
  reg.ApplyDefaults(kind, defaulted);
  (void)reg.Validate(kind, defaulted);
  return 0;
}
