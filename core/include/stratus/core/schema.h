// Schema-driven validation, defaulting and `explain`, one schema per kind in schemas/<kind lowercase>.yaml.
//
// Schema files are a structural subset of OpenAPI v3 / JSON Schema written in YAML, the way Kubernetes CRDs
// declare them:
//   type: object|string|integer|number|boolean|array
//   description, properties, required, additionalProperties (false by default for objects with `properties`:
//   unknown fields are rejected; a schema for map values otherwise), items, enum, minimum, maximum,
//   minLength, maxLength, minItems, maxItems, pattern (ECMAScript), format (dns1123-label, dns1123-subdomain,
//   ipv4, cidr, quantity, date-time, mac), default, x-stratus-preserve-unknown-fields: true (free-form).
// Each file's top level describes the whole object; common metadata is in schemas/metadata.yaml and is
// referenced with `$ref: metadata`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

class SchemaRegistry {
 public:
  // The schemas compiled into the binary from schemas/*.yaml. Aborts at start-up if one does not parse
  // (a build defect, caught by unit tests).
  static const SchemaRegistry& Builtin();
  // Loads schemas from {name -> YAML text} (tests use this).
  static StatusOr<std::shared_ptr<SchemaRegistry>> Load(const std::vector<std::pair<std::string, std::string>>& files);

  // Validates a whole object of `kind` (apiVersion, kind, metadata, spec, status). Returns kInvalid with one
  // FieldCause per problem; message reads like `Instance.stratus.io "web-1" is invalid: spec.resources.memoryMiB:
  // Invalid value: 32: must be >= 64`.
  Status Validate(const std::string& kind, const json& obj) const;

  // Fills in defaults declared by the schema, recursively, for fields absent in `obj` (never overwrites).
  void ApplyDefaults(const std::string& kind, json& obj) const;

  // Removes the fields of `obj` (a whole object, or a merge patch of one) that the schema of `kind` does not
  // declare, and returns their paths (`spec.bogus`): what fieldValidation=Warn reports and Ignore drops.
  std::vector<std::string> DropUnknownFields(const std::string& kind, json& obj) const;

  // Human-readable documentation of `kind` or of a dotted field path inside it (`instance.spec.networks`),
  // formatted like `kubectl explain`: KIND, VERSION, FIELD, DESCRIPTION, FIELDS with types.
  StatusOr<std::string> Explain(const std::string& kind, const std::string& field_path) const;

  // The schema of `kind` as JSON (for discovery / OpenAPI-ish dumps); null when unknown.
  json SchemaOf(const std::string& kind) const;

  struct Impl;
  ~SchemaRegistry();
  SchemaRegistry();
 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratus
